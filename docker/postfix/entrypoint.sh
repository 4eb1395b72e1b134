#!/bin/bash
# Postfix's entrypoint in the compose stack: writes main.cf and master.cf for its role, then runs
# Postfix in the foreground with its log on standard output.
#   postfix-entrypoint mta    MILTER (inet:milter:10025), RELAYHOST ([sink]:25), MYHOSTNAME
#   postfix-entrypoint sink   MYHOSTNAME
set -euo pipefail
role=${1:-mta}
name=${MYHOSTNAME:-$role.mailbeacon.test}
# the package installed with "No configuration" may leave either file out
[ -e /etc/postfix/master.cf ] || cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
[ -e /etc/postfix/main.cf ] || : > /etc/postfix/main.cf
postconf -e \
  "compatibility_level = 3.6" \
  "myhostname = $name" \
  "mydestination =" \
  "inet_interfaces = all" \
  "inet_protocols = ipv4" \
  "mynetworks_style = subnet" \
  "smtpd_banner = \$myhostname ESMTP" \
  "alias_maps =" \
  "alias_database =" \
  "biff = no" \
  "append_dot_mydomain = no" \
  "readme_directory = no" \
  "maillog_file = /dev/stdout" \
  "smtp_dns_support_level = disabled" \
  "smtp_host_lookup = native" \
  "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"
# no chroot: the services resolve the other containers' names with the container's resolver
postconf -F '*/*/chroot = n'
case $role in
  mta)
    # mailbeacon first; a DKIM signer would be listed after it (docs/mta.md)
    postconf -e \
      "relayhost = ${RELAYHOST:-[sink]:25}" \
      "smtpd_milters = ${MILTER:-inet:milter:10025}" \
      "non_smtpd_milters = \$smtpd_milters" \
      "milter_default_action = accept" \
      "milter_protocol = 6"
    # submission: the reps' clients (here: anyone on the stack's network and the published port)
    postconf -M "submission/inet=submission inet n - n - - smtpd"
    postconf -P "submission/inet/syslog_name=postfix/submission" \
      "submission/inet/smtpd_relay_restrictions=permit_mynetworks,reject"
    ;;
  sink)
    postconf -e \
      "virtual_mailbox_domains = static:all" \
      "virtual_mailbox_base = /var/mail" \
      "virtual_mailbox_maps = static:sink/" \
      "virtual_uid_maps = static:$(id -u sink)" \
      "virtual_gid_maps = static:$(id -g sink)" \
      "smtpd_relay_restrictions = permit_mynetworks, reject"
    ;;
  *)
    echo "usage: postfix-entrypoint mta|sink" >&2
    exit 64
    ;;
esac
# a main.cf younger than 2 s makes Postfix wait for it to "cool down"
touch -d '1 minute ago' /etc/postfix/main.cf /etc/postfix/master.cf
postfix check
exec postfix start-fg
