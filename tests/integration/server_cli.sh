#!/usr/bin/env bash
# mailbeacon-server's commands as an administrator meets them, without
# services: rep-token (a token on standard output, its expiry on standard
# error, a clear line and a non-zero exit for each mistake).
# usage: server_cli.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -uo pipefail
server=$1 rewrite=$2
tmp=$(mktemp -d /tmp/mb-server-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # check NAME COMMAND...: the command must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name" >&2; fi
}
exits() { # exits CODE COMMAND...: the command must exit with CODE
  local want=$1; shift
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  [ "$rc" = "$want" ] || { echo "exit $rc, want $want: $*: $(cat "$tmp/err")" >&2; return 1; }
}
unset $(env | grep -o '^MAILBEACON_[A-Z_]*')
"$rewrite" --keygen "$tmp/keys" >/dev/null
export MAILBEACON_KEY_FILE=$tmp/keys

# the expiry's day, read before and after the command (it may run across midnight)
in_days() { echo "($(date -u -d "+$1 days" +%Y-%m-%d)|$2)"; }
d30=$(date -u -d '+30 days' +%Y-%m-%d) d2=$(date -u -d '+2 days' +%Y-%m-%d)
check "rep-token prints a token" bash -c "'$server' rep-token sam@ourco.example > '$tmp/t1' 2> '$tmp/e1'"
check "rep-token: mbr1. and base64url" grep -qE '^mbr1\.[A-Za-z0-9_-]+$' "$tmp/t1"
check "rep-token: one line" test "$(wc -l < "$tmp/t1")" = 1
check "rep-token: its expiry, 30 days" grep -qE "rep token for sam@ourco.example, valid until $(in_days 30 "$d30")" "$tmp/e1"
"$server" rep-token --days 2 lee@ourco.example 2> "$tmp/e2" > /dev/null
check "rep-token --days 2" grep -qE "valid until $(in_days 2 "$d2")" "$tmp/e2"
"$server" admin-token dpo@ourco.example > "$tmp/a1" 2> "$tmp/ea"
check "admin-token: mba1." grep -qE '^mba1\.[A-Za-z0-9_-]+$' "$tmp/a1"
check "admin-token: says so" grep -q "admin token for dpo@ourco.example, valid until" "$tmp/ea"
check "forget needs an address" exits 64 "$server" forget
check "export: one address" exits 64 "$server" export a@b.example c@d.example
check "two tokens differ by address" test "$("$server" rep-token lee@ourco.example 2>/dev/null)" != "$(cat "$tmp/t1")"

check "not an address: 64" exits 64 "$server" rep-token sam
check "...says so" grep -q "'sam' is not an e-mail address" "$tmp/err"
check "no address: 64" exits 64 "$server" rep-token
check "two addresses: 64" exits 64 "$server" rep-token a@b.example c@d.example
check "bad --days: 64" exits 64 "$server" rep-token --days 0 sam@ourco.example
check "...says so" grep -q -- "--days is a whole number of days from 1 to 3650, not '0'" "$tmp/err"
check "no key file: 78" exits 78 env MAILBEACON_KEY_FILE="$tmp/none" "$server" rep-token sam@ourco.example
check "...names it" grep -q "$tmp/none" "$tmp/err"

echo "server_cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
