#!/usr/bin/env bash
# Webhooks (docs/alerts.md "Webhooks") through the real path: a private
# Redis and PostgreSQL, mailbeacon-server with webhooks_file, stream entries
# with chosen facts, and webhook_receiver.py, which verifies each signature
# with the Standard Webhooks algorithm:
#   - an alert posted once, signed, {type, timestamp, data}, webhook-id;
#   - 410 Gone disables the endpoint: the next alert is not posted to it;
#   - Slack's format for the default endpoint (text and blocks, unsigned);
#   - the receiver down (503), the batcher stopped between attempts and
#     started again, the receiver up: delivered once, with the first
#     attempt's webhook-id;
#   - a broken webhooks file on SIGHUP: refused with file:line, the
#     endpoints in use stay.
# usage: webhooks.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-webhooks.XXXXXX)
spid= rpid=
trap 'for p in $spid $rpid; do kill -9 $p 2>/dev/null || true; done; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -20 "$MB_RUN/server.log" >&2 || true
  cat "$MB_RUN/requests.jsonl" >&2 2>/dev/null || true
  exit 1
}
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
python3 "$here/webhook_receiver.py" "$MB_RUN" "$secret" &
rpid=$!
for _ in $(seq 1 100); do [ -f "$MB_RUN/port" ] && break; sleep 0.05; done
r=http://127.0.0.1:$(cat "$MB_RUN/port")
cat > "$MB_RUN/hooks" <<HOOKS
# address            URL            secret   [format]
sam@ourco.example    $r/ok          $secret
lee@ourco.example    $r/gone        $secret  standard
dana@ourco.example   $r/flaky       $secret
*                    $r/slack       -        slack
HOOKS

mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) \
  MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
  MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_BATCH_WAIT_MS=20 \
  MAILBEACON_WEBHOOKS_FILE=$MB_RUN/hooks
"$server" migrate > "$MB_RUN/migrate.log" || fail "migrate: $(cat "$MB_RUN/migrate.log")"
start() {
  local from
  from=$(mb_log_size "$MB_RUN/server.log")
  "$server" >> "$MB_RUN/server.log" 2>&1 &
  spid=$!
  mb_wait_port $spid "$MB_RUN/server.log" listen 15 "$from" > /dev/null || fail "server did not start"
}
start
for _ in $(seq 1 200); do grep -q "webhooks: 4 endpoints from $MB_RUN/hooks" "$MB_RUN/server.log" && break; sleep 0.05; done
grep -q "webhooks: 4 endpoints from $MB_RUN/hooks" "$MB_RUN/server.log" || fail "webhooks file not read"
requests() { # requests PATH: the requests it got, one JSON line each
  grep -F "\"path\": \"$1\"" "$MB_RUN/requests.jsonl" 2>/dev/null || true
}
wait_requests() { # wait_requests PATH N [SECONDS]
  for _ in $(seq 1 $((${3:-15} * 20))); do [ "$(requests "$1" | wc -l)" -ge "$2" ] && return 0; sleep 0.05; done
  fail "$1: $(requests "$1" | wc -l) requests, not $2"
}

now=$(date +%s%6N)
t0=$((now - 6 * H))
n=0
alert_for() { # alert_for REP: a message of REP's, opened by a person hours ago (final at once)
  n=$((n + 1))
  xadd type sent v 1 message "$(uuid $n)" message_id "m$n@ourco.example" rep "$1" \
    recipients "[{\"i\":1,\"addr\":\"r$n@acme.example\"}]" token_recipient 1 subject "s$n <&>" sent_at $t0 \
    links '[]' client_ip ''
  hits "$(ev $n o 0 $((t0 + 20 * M)) 198.18.0.$n GET "$outlook")"
}

# ---- signed, once
alert_for sam@ourco.example
wait_requests /ok 1
sleep 0.5
[ "$(requests /ok | wc -l)" = 1 ] || fail "/ok: $(requests /ok | wc -l) requests"
requests /ok | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["verified"], r
assert r["id"] == "msg_mb1" and r["type"] == "application/json", r
b = r["body"]
assert b["type"] == "alert.open" and b["timestamp"] and b["data"]["id"] == 1 and b["data"]["rep"] == "sam@ourco.example", b
assert b["data"]["text"] == "r1@acme.example opened \"s1 <&>\"", b
' || fail "the delivery: $(requests /ok)"
expect "SELECT state, attempts, last_status FROM mailbeacon.webhook_deliveries WHERE url LIKE '%/ok'" "delivered 1 200"
echo "ok an alert posted once, signed as Standard Webhooks says, {type, timestamp, data}"

# ---- 410 Gone disables the endpoint
alert_for lee@ourco.example
wait_requests /gone 1
wait_rows "SELECT reason FROM mailbeacon.webhook_endpoints WHERE url LIKE '%/gone'" "410 Gone"
alert_for lee@ourco.example
wait_rows "SELECT state FROM mailbeacon.webhook_deliveries WHERE alert_id = 3" "disabled"
sleep 0.5
[ "$(requests /gone | wc -l)" = 1 ] || fail "/gone was posted to after 410: $(requests /gone | wc -l)"
echo "ok 410 Gone disables the endpoint"

# ---- Slack's format for the default endpoint
alert_for kim@ourco.example
wait_requests /slack 1
requests /slack | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["id"] is None and not r["verified"], r
b = r["body"]
assert b["text"] == "r4@acme.example opened \"s4 <&>\"", b
assert b["blocks"][0]["text"]["text"] == "r4@acme.example opened \"s4 &lt;&amp;&gt;\"", b
' || fail "slack: $(requests /slack)"
echo "ok Slack's incoming webhook format for the default endpoint"

# ---- the receiver down, the batcher restarted between attempts, the receiver up
touch "$MB_RUN/down"
alert_for dana@ourco.example
wait_requests /flaky 1
wait_rows "SELECT attempts, last_status, state FROM mailbeacon.webhook_deliveries WHERE url LIKE '%/flaky'" "1 503 pending"
kill -TERM $spid
wait $spid || fail "exit status $? on SIGTERM"
rm "$MB_RUN/down"
start
wait_requests /flaky 2 20 # the schedule's 5 s, with jitter
wait_rows "SELECT attempts, last_status, state FROM mailbeacon.webhook_deliveries WHERE url LIKE '%/flaky'" "2 200 delivered"
sleep 1
requests /flaky | python3 -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin]
assert [r["status"] for r in rs] == [503, 200], rs
assert rs[0]["id"] == rs[1]["id"] == "msg_mb5" and all(r["verified"] for r in rs), rs
' || fail "the retried delivery: $(requests /flaky)"
[ "$(requests /ok | wc -l)" = 1 ] || fail "the restart posted /ok again"
echo "ok receiver down, batcher restarted between attempts, receiver up: delivered once, the same webhook-id"

# ---- a broken file on SIGHUP
echo "* ftp://x.example/ - slack" >> "$MB_RUN/hooks"
kill -HUP $spid
for _ in $(seq 1 100); do grep -q "webhooks not reloaded" "$MB_RUN/server.log" && break; sleep 0.05; done
grep -q "webhooks not reloaded: $MB_RUN/hooks:6: not an http(s) URL; the endpoints in use stay" "$MB_RUN/server.log" ||
  fail "a broken webhooks file"
alert_for sam@ourco.example
wait_requests /ok 2
echo "ok a broken webhooks file is refused with file:line, the endpoints in use stay"
kill -TERM $spid
wait $spid || fail "exit status $? on SIGTERM"
spid=
