#!/usr/bin/env bash
# mailbeacon-server under load, with faults:
#   1. Redis killed (SIGKILL) in the middle of a load of many thousand hits,
#      then restarted from its append-only file: every answered hit ends up
#      in the stream, none twice (events spooled meanwhile are replayed);
#   2. SIGTERM in the middle of a load: the server stops accepting, drains,
#      exits 0, and every hit it answered is in the stream, none twice.
# usage: server_faults.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-faults.XXXXXX)
spid= port= aport=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$MB_RUN/server.log" >&2 || true; exit 1; }
ulimit -n 8192 2>/dev/null || true

mb_redis_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
# both listeners on any free port (port 0): the start line says which
export MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
  MAILBEACON_REDIS_STREAM=mb:faults MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0
start_server() { # sets port and aport from the start line
  local from
  from=$(mb_log_size "$MB_RUN/server.log")
  "$server" >> "$MB_RUN/server.log" 2>&1 &
  spid=$!
  port=$(mb_wait_port $spid "$MB_RUN/server.log" listen 15 "$from") &&
    aport=$(mb_wait_port $spid "$MB_RUN/server.log" admin 15 "$from") || fail "server did not start"
}
# 64 pixels (different messages and recipients) that wrk requests in turn (bench/rotate.lua)
for i in $(seq 1 64); do
  python3 "$here/server_check.py" token "$MB_RUN/keys" o "$(printf '%032x' $((i * 7919)))" $i 0
done > "$MB_RUN/tokens"
rotate="$here/../../bench/rotate.lua"
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
drained() { # wait until the queue and the spool are empty
  for _ in $(seq 1 600); do
    h=$(curl -s "http://127.0.0.1:$aport/healthz")
    grep -q '"redis":"up","queue_events":0,"queue_bytes":0,"spool_bytes":0' <<< "$h" && return 0
    sleep 0.1
  done
  fail "not drained: $h"
}
count() { # events in the stream, and how many event ids appear twice
  python3 "$here/server_check.py" events "$(mb_redis_sock)" mb:faults > "$MB_RUN/ev.json"
  python3 -c '
import json, sys
ids = [json.loads(l)["id"] for l in open(sys.argv[1])]
print(len(ids), len(ids) - len(set(ids)))' "$MB_RUN/ev.json"
}
answered() { # requests wrk completed
  awk '/requests in/ {print $1}' "$1"
}

# 1. Redis killed during the load, restarted from its AOF
start_server
wrk -t2 -c64 -d6s -s "$rotate" "http://127.0.0.1:$port" -- "$MB_RUN/tokens" > "$MB_RUN/wrk1" 2>&1 &
wpid=$!
sleep 1.5
kill -9 "$(cat "$MB_RUN/redis/pid")"
rm -f "$MB_RUN/redis/pid"
sleep 2
[ "$(metric mailbeacon_redis_up)" = 0 ] || fail "Redis down not noticed"
mb_redis_start
wait $wpid || fail "wrk"
! grep -q "Non-2xx\|Socket errors" "$MB_RUN/wrk1" || fail "errors while Redis was down: $(cat "$MB_RUN/wrk1")"
drained
done1=$(answered "$MB_RUN/wrk1")
valid=$(metric 'mailbeacon_hits_total{kind="open",result="valid"}')
spooled=$(metric 'mailbeacon_events_total{to="spool"}')
read -r n dup <<< "$(count)"
echo "Redis killed: wrk completed $done1, server answered $valid, $spooled spooled, stream holds $n ($dup twice)"
[ "$spooled" -gt 0 ] || fail "nothing was spooled while Redis was down"
[ "$dup" = 0 ] || fail "$dup events twice"
[ "$n" = "$valid" ] || fail "stream holds $n events, the server answered $valid"
[ "$n" -ge "$done1" ] || fail "stream holds $n events, wrk completed $done1"

# 1b. Redis frozen (SIGSTOP: connections hang, commands time out) during the load: the HTTP threads
#     never wait on it or on the disk (the writer spools between tries), nothing is lost
n_before=$n valid_before=$valid
t0=$(date +%s)
wrk -t2 -c64 -d4s --latency -s "$rotate" "http://127.0.0.1:$port" -- "$MB_RUN/tokens" > "$MB_RUN/wrk1b" 2>&1 &
wpid=$!
sleep 1
kill -STOP "$(cat "$MB_RUN/redis/pid")"
sleep 2
kill -CONT "$(cat "$MB_RUN/redis/pid")"
wait $wpid || fail "wrk"
! grep -q "Non-2xx\|Socket errors" "$MB_RUN/wrk1b" || fail "errors while Redis was frozen: $(cat "$MB_RUN/wrk1b")"
drained
t1=$(date +%s)
valid=$(metric 'mailbeacon_hits_total{kind="open",result="valid"}')
read -r n dup <<< "$(count)"
echo "Redis frozen 2 s: drained $(( t1 - t0 )) s after the load began; wrk completed $(answered "$MB_RUN/wrk1b"), p99 $(awk '$1 == "99%" {print $2}' "$MB_RUN/wrk1b"), queue full $(metric mailbeacon_events_queue_full_total), lost $(metric 'mailbeacon_events_total{to="lost"}'), spooled $(metric 'mailbeacon_events_total{to="spool"}') in all"
[ "$(metric 'mailbeacon_events_total{to="lost"}')" = 0 ] || fail "events lost while Redis was frozen"
[ "$dup" = 0 ] || fail "$dup events twice"
[ $((n - n_before)) = $((valid - valid_before)) ] || fail "stream holds $((n - n_before)) new events, the server answered $((valid - valid_before))"

# 2. SIGTERM during the load
wrk -t2 -c64 -d4s -s "$rotate" "http://127.0.0.1:$port" -- "$MB_RUN/tokens" > "$MB_RUN/wrk2" 2>&1 &
wpid=$!
sleep 1.5
valid_before=$valid
kill -TERM $spid
wait $spid || fail "server exit status after SIGTERM"
spid=
wait $wpid || true
grep -q "stopped: .* 0 lost" "$MB_RUN/server.log" || fail "shutdown summary: $(tail -1 "$MB_RUN/server.log")"
stored=$(sed -n 's/.*stopped: \([0-9]*\) events to Redis, \([0-9]*\) to the spool.*/\1 \2/p' "$MB_RUN/server.log" | tail -1)
read -r n2 dup2 <<< "$(count)"
done2=$(answered "$MB_RUN/wrk2")
echo "SIGTERM: wrk completed $done2 (before the stop), stream holds $((n2 - n)) more ($dup2 twice); server: $stored"
[ "$dup2" = 0 ] || fail "$dup2 events twice"
[ $((n2 - n)) -ge "$done2" ] || fail "answered $done2 hits, only $((n2 - n)) in the stream"
echo "server_faults: 3 passed, 0 failed"
