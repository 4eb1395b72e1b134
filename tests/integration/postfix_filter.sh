#!/usr/bin/env bash
# The re-injecting content filter inside a real, private Postfix: Postfix
# pipes each message (one recipient per call) to mailbeacon-rewrite
# --reinject, which hands one copy per recipient to a second smtpd listener
# without the filter; smtp-sink captures what Postfix relays.
# usage: postfix_filter.sh MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
rewrite=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/../../scripts/lib/postfix.sh"
MB_RUN=$(mktemp -d /tmp/mb-pff.XXXXXX)
MB_PF=$MB_RUN/pf
trap 'mb_postfix_stop; [ -n "${KEEP:-}" ] || rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; mb_postfix_log | tail -40 >&2; exit 1; }

# pipe(8) runs the filter as nobody: its binary, key, config and spool must suit that user
chmod 755 "$MB_RUN"
mkdir -p "$MB_RUN/bin" "$MB_RUN/spool"
cp "$rewrite" "$MB_RUN/bin/mailbeacon-rewrite"
chmod 755 "$MB_RUN/bin" "$MB_RUN/bin/mailbeacon-rewrite"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
chown nobody "$MB_RUN/keys" "$MB_RUN/spool"
# the re-injection listener is a Unix socket of Postfix (public/mbreinject); a socket
# path where nothing listens stands for a listener that is down
reinject=$MB_PF/queue/public/mbreinject closed=$MB_RUN/no-listener.sock
conf() { # conf REINJECT_SOCKET
  cat > "$MB_RUN/mb.conf" <<CONF
base_url = https://t.mailbeacon.test
key_file = $MB_RUN/keys
never_track = ourco.example
spool_dir = $MB_RUN/spool
reinject_via = smtp
reinject_smtp = unix:$1
per_recipient = yes
log_file = stderr
CONF
  chmod 644 "$MB_RUN/mb.conf"
}
conf "$reinject"

mb_postfix_init
: > "$MB_PF/etc/tempfail"
sed -i "s/^mbsmtp .*/& -o content_filter=mbfilter:dummy/" "$MB_PF/etc/master.cf"
mb_postfix_master \
  "mbfilter unix - n n - 10 pipe flags=q user=nobody null_sender= argv=$MB_RUN/bin/mailbeacon-rewrite --config $MB_RUN/mb.conf --reinject -f \${sender} --login=\${sasl_username} -- \${recipient}" \
  "mbfilter10 unix - n n - 10 pipe flags=q user=nobody null_sender= argv=$MB_RUN/bin/mailbeacon-rewrite --config $MB_RUN/mb.conf --reinject -f \${sender} --login=\${sasl_username} -- \${recipient}" \
  "mbreinject unix n - n - 10 smtpd -o content_filter= -o smtpd_milters= -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters -o smtpd_recipient_restrictions=check_recipient_access,texthash:$MB_PF/etc/tempfail,permit_mynetworks,reject"
mb_postfix_main "mbfilter_destination_recipient_limit = 1" "mbfilter10_destination_recipient_limit = 10"
mb_postfix_start || fail "postfix did not start"
# the filter (user nobody) must reach the re-injection socket: Postfix makes
# public/ 0710 postfix:postdrop and the sockets in it 0666; let others through
chmod o+x "$MB_PF/queue/public"

delivered=0
send() { # send FILE RCPT,...
  swaks --silent 2 --socket "$(mb_postfix_socket)" --from sam@ourco.example --to "$2" --data - < "$1" \
    > "$MB_RUN/swaks.log" 2>&1 || fail "swaks: $(cat "$MB_RUN/swaks.log")"
}
captured() { grep -l "^X-Rcpt-Args: <$1>" "$MB_PF"/sink/* 2>/dev/null || true; }
index_of() { python3 "$here/postfix_check.py" index "$1" "$MB_RUN/keys" || fail "tokens of $1"; }

# 1. two recipients: two messages, each with that recipient's index, one message UUID
send "$data/20-folded-encoded-headers.eml" dana@acme.example,joerg@globex.example
delivered=$((delivered + 2))
mb_postfix_wait_sent $delivered || fail "copies not delivered"
[ "$(captured dana@acme.example | wc -l)" = 1 ] || fail "dana: want one copy"
[ "$(captured joerg@globex.example | wc -l)" = 1 ] || fail "joerg: want one copy"
read -r i1 u1 <<< "$(index_of "$(captured dana@acme.example)")"
read -r i2 u2 <<< "$(index_of "$(captured joerg@globex.example)")"
[ "$i1" = 1 ] && [ "$i2" = 2 ] || fail "recipient indexes $i1 $i2, want 1 2 (their places in To)"
[ "$u1" = "$u2" ] || fail "the copies should share one message UUID"
python3 "$here/postfix_check.py" rewritten "$(captured dana@acme.example)" "$data/20-folded-encoded-headers.eml" \
  "$MB_RUN/keys" 1 || fail "copy for dana"

# 2. the filter fails (its re-injection listener is down): Postfix defers, then delivers once
conf "$closed"
send "$data/01-single-html-7bit.eml" kim@acme.example
for _ in $(seq 1 200); do grep -q "to=<kim@acme.example>.*status=deferred" "$MB_PF/maillog" && break; sleep 0.05; done
grep -q "to=<kim@acme.example>.*status=deferred" "$MB_PF/maillog" || fail "no deferral when the filter fails"
[ -z "$(captured kim@acme.example)" ] || fail "delivered although the filter failed"
conf "$reinject"
postqueue -c "$MB_PF/etc" -f
delivered=$((delivered + 1))
mb_postfix_wait_sent $delivered || fail "not delivered after the filter recovered"
[ "$(captured kim@acme.example | wc -l)" = 1 ] || fail "kim: want exactly one copy"

# 3. several recipients in one filter call, the second copy refused for now:
#    the retry sends only what is missing (the ledger), so no one gets two
sed -i "s/content_filter=mbfilter:dummy/content_filter=mbfilter10:dummy/" "$MB_PF/etc/master.cf"
echo "ray@acme.example 451 4.7.1 try again later" > "$MB_PF/etc/tempfail"
mb_postfix_reload
sleep 1
send "$data/01-single-html-7bit.eml" lou@acme.example,ray@acme.example
delivered=$((delivered + 1))
mb_postfix_wait_sent $delivered || fail "first copy not delivered"
for _ in $(seq 1 200); do grep -q "to=<lou@acme.example>.*relay=mbfilter10.*status=deferred\|to=<ray@acme.example>.*relay=mbfilter10.*status=deferred" "$MB_PF/maillog" && break; sleep 0.05; done
: > "$MB_PF/etc/tempfail"
mb_postfix_reload # texthash maps are read when a process starts
sleep 1
postqueue -c "$MB_PF/etc" -f
delivered=$((delivered + 1))
mb_postfix_wait_sent $delivered || fail "second copy not delivered after the retry"
sleep 1
[ "$(captured lou@acme.example | wc -l)" = 1 ] || fail "lou: want exactly one copy, got $(captured lou@acme.example | wc -l)"
[ "$(captured ray@acme.example | wc -l)" = 1 ] || fail "ray: want exactly one copy"
# (pipe(8) logs the start of a filter's output with its status, cut short)
grep -q "copy for lou@acme.example was handed on" "$MB_PF/maillog" || fail "the ledger was not used"
echo "postfix_filter: 3 passed, 0 failed"
