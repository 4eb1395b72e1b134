#!/usr/bin/env bash
# Runs in a clean Debian 12 container (tests/package/deb.sh): installs
# /pkg/mailbeacon.deb with apt and checks what it made, then purges it.
set -euo pipefail
fail() { echo "FAIL (in the container): $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string mail.example.test" | debconf-set-selections
apt-get update -qq
# Postfix first (the milter's directory is made when it is there), systemd for systemd-analyze
apt-get install -y -qq --no-install-recommends postfix systemd > /tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; fail "apt: postfix systemd"; }
apt-get install -y -qq --no-install-recommends /pkg/mailbeacon.deb > /tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; fail "apt install the package"; }

[ "$(mailbeacon-server --version)" = "mailbeacon-server 0.1.0" ] || fail "mailbeacon-server --version: $(mailbeacon-server --version)"
mailbeacon-rewrite --version | grep -q '^mailbeacon-rewrite ' || fail "mailbeacon-rewrite --version"
getent passwd mailbeacon | grep -q ':/var/lib/mailbeacon:/usr/sbin/nologin$' || fail "the user: $(getent passwd mailbeacon)"
mode() { stat -c '%a %U %G' "$1"; }
[ "$(mode /etc/mailbeacon/keys)" = "600 mailbeacon mailbeacon" ] || fail "the key ring: $(mode /etc/mailbeacon/keys)"
[ "$(mode /var/spool/mailbeacon)" = "700 mailbeacon mailbeacon" ] || fail "the spool: $(mode /var/spool/mailbeacon)"
[ "$(mode /var/lib/mailbeacon)" = "750 mailbeacon mailbeacon" ] || fail "the state directory: $(mode /var/lib/mailbeacon)"
[ "$(mode /var/spool/postfix/mailbeacon)" = "2750 mailbeacon postfix" ] ||
  fail "the milter's directory: $(mode /var/spool/postfix/mailbeacon)"
[ "$(mode /etc/mailbeacon/mailbeacon.conf)" = "644 root root" ] || fail "the configuration: $(mode /etc/mailbeacon/mailbeacon.conf)"
dpkg-query -W -f='${Conffiles}\n' mailbeacon | grep -q '^ /etc/mailbeacon/mailbeacon.conf ' || fail "mailbeacon.conf is not a conffile"
# every key commented, but for what the shipped file sets on purpose
set_keys=$(grep -v '^#' /etc/mailbeacon/mailbeacon.conf | grep -v '^[[:space:]]*$' || true)
[ "$set_keys" = "ip_truncate = yes" ] || fail "keys set in the shipped configuration: $set_keys"
echo "ok installed: programs, user, key ring 0600, spool 0700, milter directory 2750 mailbeacon:postfix, conffile"

# check on the installed configuration, as the units run the programs: the key ring is
# readable by its user; what the administrator has to fill in is named
rc=0
runuser -u mailbeacon -- mailbeacon-server check > /tmp/check.out 2>&1 || rc=$?
cat /tmp/check.out
[ "$rc" = 1 ] || fail "check on the unfilled configuration: exit $rc, want 1"
grep -q '^ok: configuration /etc/mailbeacon/mailbeacon.conf read$' /tmp/check.out || fail "check: not the installed configuration"
grep -q '^ok: key ring /etc/mailbeacon/keys: 1 key$' /tmp/check.out || fail "check: the key ring"
grep -q '^problem: redis is not set' /tmp/check.out || fail "check: redis unset not said"
rc=0
runuser -u mailbeacon -- mailbeacon-rewrite --check > /tmp/check.out 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat /tmp/check.out; fail "rewrite --check on the unfilled configuration: exit $rc, want 1"; }
grep -q '^ok: key ring /etc/mailbeacon/keys: 1 key, key 1 signs$' /tmp/check.out || { cat /tmp/check.out; fail "rewrite --check: the key ring"; }
grep -q '^problem: base_url is not set' /tmp/check.out || { cat /tmp/check.out; fail "rewrite --check: base_url unset not said"; }
echo "ok check as the service user: key ring readable, the unset keys named"

# the units, verified where the binaries they name are
units=$(ls /lib/systemd/system/mailbeacon-*)
[ "$(echo "$units" | wc -l)" = 6 ] || fail "units installed: $units"
systemd-analyze verify $units > /tmp/verify.out 2>&1 || { cat /tmp/verify.out; fail "systemd-analyze verify"; }
[ ! -s /tmp/verify.out ] || { cat /tmp/verify.out; fail "systemd-analyze verify said something"; }
for u in /lib/systemd/system/mailbeacon-*.service; do
  line=$(systemd-analyze security --offline=true --no-pager "$u" 2>&1 | grep 'Overall exposure level') || fail "security $u"
  echo "$line"
  [[ $line =~ ' '(SAFE|OK)' ' ]] || fail "$u not rated OK or better"
done
! ls /etc/systemd/system/multi-user.target.wants/mailbeacon-* > /dev/null 2>&1 || fail "a unit was enabled on install"
echo "ok units: verify passes, every service OK or better, none enabled"

# a key rotation as root keeps the ring the service user's
mailbeacon-rewrite --keygen /etc/mailbeacon/keys > /dev/null
[ "$(mode /etc/mailbeacon/keys)" = "600 mailbeacon mailbeacon" ] || fail "the key ring after a rotation: $(mode /etc/mailbeacon/keys)"

# purge: what the install made goes, but for the key ring
apt-get purge -y -qq mailbeacon > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "purge"; }
grep -q "the key ring /etc/mailbeacon/keys is left in place" /tmp/purge.log || { cat /tmp/purge.log; fail "purge did not say it keeps the key ring"; }
for p in /usr/sbin/mailbeacon-server /usr/sbin/mailbeacon-rewrite /etc/mailbeacon/mailbeacon.conf \
  /etc/mailbeacon/mailbeacon.rules /var/spool/mailbeacon /var/lib/mailbeacon /var/spool/postfix/mailbeacon \
  /lib/systemd/system/mailbeacon-edge.service; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
[ -f /etc/mailbeacon/keys ] || fail "purge removed the key ring"
echo "ok purge: all removed but the key ring (and the system user, as Debian does)"
