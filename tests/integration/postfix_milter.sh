#!/usr/bin/env bash
# The milter inside a real, private Postfix: mail sent with swaks, captured
# by Postfix's smtp-sink after Postfix relayed it.
# usage: postfix_milter.sh MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
rewrite=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/../../scripts/lib/postfix.sh"
MB_RUN=$(mktemp -d /tmp/mb-pfm.XXXXXX)
MB_PF=$MB_RUN/pf
mpid=
cleanup() { [ -n "$mpid" ] && kill -9 $mpid 2>/dev/null; mb_postfix_stop; [ -n "${KEEP:-}" ] || rm -rf "$MB_RUN"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; mb_postfix_log | tail -40 >&2; cat "$MB_RUN/milter.log" >&2 2>/dev/null; exit 1; }

"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys \
  MAILBEACON_NEVER_TRACK=ourco.example MAILBEACON_SPOOL_DIR=$MB_RUN
# a Unix socket, as recommended (docs/mta.md); Postfix reaches it through its group
chmod 755 "$MB_RUN"
"$rewrite" --milter "unix:$MB_RUN/milter.sock" 2> "$MB_RUN/milter.log" &
mpid=$!
for _ in $(seq 1 100); do [ -S "$MB_RUN/milter.sock" ] && break; sleep 0.05; done
chgrp postfix "$MB_RUN/milter.sock"

mb_postfix_init
mb_postfix_main "smtpd_milters = unix:$MB_RUN/milter.sock" "non_smtpd_milters = \$smtpd_milters" \
  "milter_default_action = accept" "milter_protocol = 6"
mb_postfix_start || fail "postfix did not start"

sent=0
send() { # send FILE RCPT...: one message through Postfix; echo the captured file
  local file=$1; shift
  local to; to=$(IFS=,; echo "$*")
  swaks --silent 2 --socket "$(mb_postfix_socket)" --from sam@ourco.example --to "$to" --data - < "$file" \
    > "$MB_RUN/swaks.log" 2>&1 || fail "swaks: $(cat "$MB_RUN/swaks.log")"
  sent=$((sent + $#))
  mb_postfix_wait_sent "$sent" || fail "not delivered: $file"
}
# the newest captured file whose envelope names RCPT
captured() { grep -l "^X-Rcpt-Args: <$1>" "$MB_PF"/sink/* | xargs ls -t | head -1; }

python_check() { python3 "$here/postfix_check.py" "$@" || fail "check: $*"; }

send "$data/12-mixed-related-alternative-pdf.eml" dana@acme.example
python_check rewritten "$(captured dana@acme.example)" "$data/12-mixed-related-alternative-pdf.eml" "$MB_RUN/keys"
send "$data/06-multipart-signed.eml" lee@acme.example
python_check body-identical "$(captured lee@acme.example)" "$data/06-multipart-signed.eml"
send "$data/01-single-html-7bit.eml" colleague@ourco.example
python_check body-identical "$(captured colleague@ourco.example)" "$data/01-single-html-7bit.eml"
send "$data/22-qp-64k-boundary-link.eml" kim@acme.example
python_check rewritten "$(captured kim@acme.example)" "$data/22-qp-64k-boundary-link.eml" "$MB_RUN/keys"
grep -q "rewritten: message" "$MB_RUN/milter.log" || fail "milter logged no rewrite"

# key rotation under the running milter: a new signing key, SIGUSR1 (SIGHUP would stop it: libmilter
# takes SIGHUP as "stop"), then new mail carries the new key and the earlier mail's tokens still verify
send "$data/01-single-html-7bit.eml" pat@acme.example
first=$(captured pat@acme.example)
[ "$(python3 "$here/postfix_check.py" keyids "$first" "$MB_RUN/keys")" = 1 ] || fail "before the rotation: not key 1"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
kill -USR1 $mpid
for _ in $(seq 1 100); do grep -q "SIGUSR1: 2 keys loaded, key 2 signs" "$MB_RUN/milter.log" && break; sleep 0.05; done
grep -q "SIGUSR1: 2 keys loaded, key 2 signs" "$MB_RUN/milter.log" || fail "no reload on SIGUSR1"
send "$data/01-single-html-7bit.eml" quinn@acme.example
[ "$(python3 "$here/postfix_check.py" keyids "$(captured quinn@acme.example)" "$MB_RUN/keys")" = 2 ] ||
  fail "after the rotation: not key 2"
python_check rewritten "$first" "$data/01-single-html-7bit.eml" "$MB_RUN/keys"
kill -0 $mpid || fail "the milter stopped on SIGUSR1"

# the milter stopped: mail still flows, unchanged (milter_default_action = accept)
kill -TERM $mpid
for _ in $(seq 1 200); do kill -0 $mpid 2>/dev/null || break; sleep 0.05; done
wait $mpid || fail "milter exit status"
mpid=
send "$data/12-mixed-related-alternative-pdf.eml" ray@acme.example
python_check body-identical "$(captured ray@acme.example)" "$data/12-mixed-related-alternative-pdf.eml"
echo "postfix_milter: 6 passed, 0 failed"
