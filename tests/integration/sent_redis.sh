#!/usr/bin/env bash
# The "sent" record reaches a real Redis stream; with Redis stopped it is
# spooled on disk (mail is not held up) and replayed, in order and once,
# when Redis is back.
# usage: sent_redis.sh MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
rewrite=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-sent-redis.XXXXXX)
trap 'mb_redis_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mb_redis_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
# spool_dir does not exist yet: the rewriter makes it when it first needs it
# the rewriter's log to standard error (pipe mode's default is syslog)
export MAILBEACON_LOG_FILE=stderr
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys \
  MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_REDIS_STREAM=mb:test
rcli() { mb_redis_cli "$@"; }

# 1. Redis up: one entry per rewritten message, with the fields documented in docs/events.md.
"$rewrite" --client-address 192.0.2.44 < "$data/01-single-html-7bit.eml" > "$MB_RUN/01.out"
[ "$(rcli XLEN mb:test)" = 1 ] || fail "expected 1 entry, got $(rcli XLEN mb:test)"
link=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$MB_RUN/01.out" | head -1 | sed 's/&amp;/\&/g')
msg=$("$rewrite" --explain "$link" | python3 -c 'import json,sys; print(json.load(sys.stdin)["message"])')
rcli --raw XRANGE mb:test - + > "$MB_RUN/entry1"
python3 - "$MB_RUN/entry1" "$msg" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
f = dict(zip(lines[1:-1:2], lines[2:-1:2]))
assert f["type"] == "sent" and f["v"] == "1", f
assert f["message"] == sys.argv[2], (f["message"], sys.argv[2])
links = json.loads(f["links"])
assert [l["i"] for l in links] == [1, 2, 3], links
assert all(l["url"].startswith("https://example.com/") for l in links), links
rc = json.loads(f["recipients"])
assert rc == [{"i": 1, "addr": "dana@acme.example", "name": "Dana Whitfield",
               "track": "opens,clicks", "basis": "default_unknown"}], rc  # the tracking policy's decision
assert f["policy"].startswith("p1-") and len(f["policy"]) == 15, f
assert f["rep"].endswith("@ourco.example"), f["rep"]
assert f["subject"] and f["message_id"] and int(f["sent_at"]) > 1.6e15, f
assert f["client_ip"] == "192.0.2.44", f  # the submitting client (the classifier's ip@submitter)
PY
# the rep from the SASL login (--login, pipe(8)'s ${sasl_username}): a bare login with
# auth_domain, not the shared envelope sender
MAILBEACON_AUTH_DOMAIN=ourco.example "$rewrite" --sender sales@ourco.example --login lee \
  < "$data/01-single-html-7bit.eml" > /dev/null
rep=$(rcli --raw XREVRANGE mb:test + - COUNT 1 | awk 'prev=="rep"{print} {prev=$0}')
[ "$rep" = lee@ourco.example ] || fail "rep from --login: '$rep'"
rcli XDEL mb:test "$(rcli --raw XREVRANGE mb:test + - COUNT 1 | head -1)" >/dev/null
# a loopback or malformed submitting address is left out: it says nothing of the rep
for a in 127.0.0.1 ::1 not-an-ip; do
  "$rewrite" --client-address "$a" < "$data/01-single-html-7bit.eml" > /dev/null
  [ "$(rcli --raw XREVRANGE mb:test + - COUNT 1 | awk 'prev=="client_ip"{print "[" $0 "]"} {prev=$0}')" = "[]" ] ||
    fail "client_ip $a kept"
  rcli XDEL mb:test "$(rcli --raw XREVRANGE mb:test + - COUNT 1 | head -1)" >/dev/null
done

# 2. Redis down: the message is still rewritten and the record is spooled (into a spool_dir the
#    rewriter creates: it did not, and the record was lost).
mb_redis_stop
"$rewrite" < "$data/03-alternative-qp-latin1.eml" > "$MB_RUN/03.out" 2> "$MB_RUN/03.err"
grep -q 't.mailbeacon.test/c/' "$MB_RUN/03.out" || fail "message not rewritten while Redis is down"
grep -q 'spooled' "$MB_RUN/03.err" || fail "no spool notice: $(cat "$MB_RUN/03.err")"
[ "$(stat -c %s "$MB_RUN/spool/sent.spool")" -gt 16 ] || fail "spool is empty"
[ "$(stat -c %a "$MB_RUN/spool")" = 700 ] || fail "spool_dir made with mode $(stat -c %a "$MB_RUN/spool"), want 700"

# 3. Redis back (its append-only file kept entry 1): the spool is replayed before the new record.
mb_redis_start
"$rewrite" < "$data/19-lf-only.eml" > "$MB_RUN/19.out"
[ "$(rcli XLEN mb:test)" = 3 ] || fail "expected 3 entries, got $(rcli XLEN mb:test)"
[ "$(stat -c %s "$MB_RUN/spool/sent.spool")" = 16 ] || fail "spool not emptied after replay"
ids=$(rcli --raw XRANGE mb:test - + | awk 'prev=="message_id"{print} {prev=$0}')
expect=$(for f in 01-single-html-7bit 03-alternative-qp-latin1 19-lf-only; do
  grep -i -m1 '^Message-ID:' "$data/$f.eml" | sed 's/^[^<]*<//; s/>.*//'; done)
[ "$ids" = "$expect" ] || fail "order or content differs: got [$ids] want [$expect]"
[ "$(rcli --raw XRANGE mb:test - + | awk 'prev=="message"{print} {prev=$0}' | sort | uniq -d)" = "" ] || fail "a record twice"
echo "sent_redis: 1 passed, 0 failed"
