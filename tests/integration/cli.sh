#!/usr/bin/env bash
# mailbeacon-rewrite as an administrator meets it: keygen, --explain, config
# errors, fail-open pipe mode, exit codes.
# usage: cli.sh MAILBEACON_REWRITE DATA_DIR
set -uo pipefail
rewrite=$1 data=$2
tmp=$(mktemp -d /tmp/mb-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # check NAME COMMAND...: the command must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name" >&2; fi
}
unset MAILBEACON_BASE_URL MAILBEACON_KEY_FILE MAILBEACON_REDIS MAILBEACON_NEVER_TRACK
msg=$data/01-single-html-7bit.eml

# keygen: a private file; a second run adds a signing key
check "keygen creates" "$rewrite" --keygen "$tmp/keys"
check "keygen mode 600" test "$(stat -c %a "$tmp/keys")" = 600
check "keygen rotates" bash -c "'$rewrite' --keygen '$tmp/keys' | grep -q 'key 2 added'"
check "two keys, one signer" test "$(grep -c ' sign$' "$tmp/keys")" = 1

# pipe mode logs to syslog by default (the MTA throws its standard error away): here, to standard error
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$tmp/keys MAILBEACON_LOG_FILE=stderr
"$rewrite" < "$msg" > "$tmp/out.eml"
link=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$tmp/out.eml" | head -1 | sed 's/&amp;/\&/g')
pixel=$(grep -o 'https://t.mailbeacon.test/o/[^"]*' "$tmp/out.eml" | head -1)

# --explain: JSON fields; exit 0 valid, 1 not
check "explain click" bash -c "'$rewrite' --explain '$link' > '$tmp/e.json'"
check "explain fields" python3 -c "
import json; e = json.load(open('$tmp/e.json'))
assert e['kind'] == 'click' and e['valid'] is True and e['key'] == 2 and e['link'] == 1, e
assert e['url'].startswith('https://example.com/') and len(e['message']) == 36 and e['recipient'] == 1, e"
check "explain pixel" bash -c "'$rewrite' --explain '$pixel' | grep -q '\"kind\":\"open\".*\"valid\":true'"
"$rewrite" --explain "${link/example.com/evil.example}" > "$tmp/bad.json"; rc=$?
check "tampered url exit 1" test $rc = 1
check "tampered url says why" grep -q '"valid":false,"error":"signature does not match"' "$tmp/bad.json"
"$rewrite" --explain "https://t.mailbeacon.test/o/short.gif" > /dev/null; rc=$?
check "garbled token exit 1" test $rc = 1

# a key file others can read is refused, clearly; the message still goes out unchanged
cp "$tmp/keys" "$tmp/keys644"; chmod 644 "$tmp/keys644"
MAILBEACON_KEY_FILE=$tmp/keys644 "$rewrite" < "$msg" > "$tmp/o2" 2> "$tmp/e2"; rc=$?
check "fail open exit 0" test $rc = 0
check "fail open byte-identical" cmp -s "$msg" "$tmp/o2"
check "mode error names the fix" grep -q "chmod 600 $tmp/keys644" "$tmp/e2"

# config errors name file, line and key
printf 'base_url = https://t.example\n\nmax_mesage_size = 1M\n' > "$tmp/bad.conf"
"$rewrite" --config "$tmp/bad.conf" --print-config > /dev/null 2> "$tmp/e3"; rc=$?
check "bad config exit 78" test $rc = 78
check "bad config message" grep -q "$tmp/bad.conf:3: unknown key 'max_mesage_size'" "$tmp/e3"
"$rewrite" --config "$tmp/bad.conf" < "$msg" > "$tmp/o3" 2>/dev/null
check "bad config passes mail" cmp -s "$msg" "$tmp/o3"
printf 'base_url = https://file.example\nmax_message_size = 64K\n' > "$tmp/ok.conf"
check "env wins over file" bash -c "'$rewrite' --config '$tmp/ok.conf' --print-config | grep -q '^base_url = https://t.mailbeacon.test$'"
"$rewrite" --config "$tmp/ok.conf" < "$data/22-qp-64k-boundary-link.eml" > "$tmp/o4"
check "over size limit untouched" cmp -s "$data/22-qp-64k-boundary-link.eml" "$tmp/o4"

# the output cannot be written: non-zero, so the MTA keeps the message
"$rewrite" < "$msg" > /dev/full 2>/dev/null; rc=$?
check "unwritable output exit 74" test $rc = 74
# garbage and empty input pass through
head -c 3000 /dev/urandom > "$tmp/junk"
"$rewrite" < "$tmp/junk" > "$tmp/o5"; rc=$?
check "junk exit 0" test $rc = 0
check "junk identical" cmp -s "$tmp/junk" "$tmp/o5"
"$rewrite" < /dev/null > "$tmp/o6"
check "empty identical" test ! -s "$tmp/o6"
# --sender/--recipient: one recipient gets its own index
"$rewrite" --sender rep@ourco.example --recipient dana@acme.example < "$data/20-folded-encoded-headers.eml" > "$tmp/o7"
l7=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$tmp/o7" | head -1 | sed 's/&amp;/\&/g')
check "recipient index 1" bash -c "'$rewrite' --explain '$l7' | grep -q '\"recipient\":1,'"
"$rewrite" < "$data/20-folded-encoded-headers.eml" > "$tmp/o8"
l8=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$tmp/o8" | head -1 | sed 's/&amp;/\&/g')
check "several recipients index 0" bash -c "'$rewrite' --explain '$l8' | grep -q '\"recipient\":0,'"

# the log's default in pipe mode is syslog (the MTA throws a filter's standard error away):
# nothing on standard error; syslog copies its line to a terminal
MAILBEACON_LOG_FILE= MAILBEACON_KEY_FILE=$tmp/nokeys "$rewrite" < "$msg" > "$tmp/o9" 2> "$tmp/e9"
check "pipe mode logs to syslog, not standard error" test ! -s "$tmp/e9"
check "pipe mode without keys passes the message" cmp -s "$msg" "$tmp/o9"
MAILBEACON_LOG_FILE= MAILBEACON_KEY_FILE=$tmp/nokeys script -qec "'$rewrite' < '$msg' > '$tmp/o10'" /dev/null > "$tmp/tty"
check "syslog line copied to a terminal" \
  grep -q "mailbeacon-rewrite\[[0-9]*\]: pipe: error: $tmp/nokeys: cannot open key file.*passed through unchanged" "$tmp/tty"

# the configuration the project ships (scripts/gen-conf.py): it parses, names every key, and sets
# what a new installation gets on (docs/privacy.md: ip_truncate)
shipped=$(cd "$(dirname "$0")/../.." && pwd)/etc/mailbeacon.conf
check "shipped config parses" bash -c "'$rewrite' --config '$shipped' --print-config > '$tmp/shipped'"
check "shipped config: ip_truncate on" grep -qx 'ip_truncate = yes' "$tmp/shipped"
# and the compose stack's (docker/mailbeacon.conf)
compose_conf=$(dirname "$shipped")/../docker/mailbeacon.conf
check "compose config parses" bash -c "'$rewrite' --config '$compose_conf' --print-config > '$tmp/compose'"
check "compose config: ip_truncate on" grep -qx 'ip_truncate = yes' "$tmp/compose"
check "shipped config: every key" bash -c "'$rewrite' --print-config | awk '{print \$1}' | while read k; do
  grep -qE \"^#?\$k =( |\$)\" '$shipped' || { echo \"not in etc/mailbeacon.conf: \$k (scripts/gen-conf.py)\" >&2; exit 1; }; done"
echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
