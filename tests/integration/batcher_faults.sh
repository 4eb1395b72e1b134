#!/usr/bin/env bash
# Exactly once under faults: an edge takes wrk's load of pixel hits into a
# private Redis (AOF on); batchers (separate processes, --role batcher)
# load the stream into a private PostgreSQL. Each fault is made while
# thousands of events are in flight:
#   1. the batcher SIGKILLed holding a batch (its entries pending): a new
#      batcher takes them over (XAUTOCLAIM);
#   2. PostgreSQL crashed (immediate stop) for several seconds, restarted;
#   3. Redis SIGKILLed, restarted from its append-only file (the edge
#      spools meanwhile and replays);
#   4. two batchers in the same group at once.
# After each: rows == events the edge recorded, no event twice, stream empty.
# usage: batcher_faults.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-bfaults.XXXXXX)
epid= b1= b2= wpid= port= eport= bport1= bport2=
cleanup() {
  for p in $wpid $epid $b1 $b2; do kill -9 "$p" 2>/dev/null || true; done
  mb_redis_stop
  mb_pg_stop
  rm -rf "$MB_RUN"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in edge b1 b2; do [ -f "$MB_RUN/$f.log" ] && { echo "--- $f" >&2; tail -15 "$MB_RUN/$f.log" >&2; }; done
  exit 1
}
sql() { mb_psql -tA -c "$1"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }
ulimit -n 8192 2>/dev/null || true

mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) \
  MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_REDIS_STREAM=mb:bf \
  MAILBEACON_RECLAIM_IDLE_MS=1000
"$server" migrate > /dev/null || fail "migrate"

# every listener on any free port (port 0): the start lines say which
MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 "$server" --role edge > "$MB_RUN/edge.log" 2>&1 &
epid=$!
port=$(mb_wait_port $epid "$MB_RUN/edge.log" listen) && eport=$(mb_wait_port $epid "$MB_RUN/edge.log" admin) ||
  fail "the edge did not start"
start_batcher() { # start_batcher PIDVAR PORTVAR LOG: a batcher process, its pid in PIDVAR, its admin port in PORTVAR
  local from pid aport
  from=$(mb_log_size "$MB_RUN/$3.log")
  MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 "$server" --role batcher >> "$MB_RUN/$3.log" 2>&1 &
  pid=$!
  printf -v "$1" '%s' $pid
  aport=$(mb_wait_port $pid "$MB_RUN/$3.log" admin 15 "$from") || fail "batcher $3 did not start"
  printf -v "$2" '%s' "$aport"
  for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"postgres":"up"' && return 0; sleep 0.05; done
  fail "batcher $3 did not start"
}
start_batcher b1 bport1 b1

# 64 pixels (different messages and recipients) that wrk requests in turn (bench/rotate.lua)
for i in $(seq 1 64); do
  python3 "$here/server_check.py" token "$MB_RUN/keys" o "$(printf '%032x' $((i * 7919)))" $i 0
done > "$MB_RUN/tokens"
rotate="$here/../../bench/rotate.lua"
load() { # load SECONDS: wrk in the background
  wrk -t1 -c16 -d"$1"s -s "$rotate" "http://127.0.0.1:$port" -- "$MB_RUN/tokens" > "$MB_RUN/wrk.out" 2>&1 &
  wpid=$!
}
recorded() { # events the edge recorded (to Redis or its spool)
  echo $(($(metric "$eport" 'mailbeacon_hits_total{kind="open",result="valid"}')))
}
settled() { # settled NAME: every recorded event is one row, the stream is empty
  local want rows xlen
  wait "$wpid" || fail "$1: wrk failed"
  wpid=
  [ "$(metric "$eport" 'mailbeacon_events_total{to="lost"}')" = 0 ] || fail "$1: the edge lost events"
  want=$(recorded)
  for _ in $(seq 1 1200); do
    rows=$(sql "SELECT count(*) FROM mailbeacon.events")
    xlen=$(mb_redis_cli XLEN mb:bf 2>/dev/null || echo -1)
    [ "$rows" = "$want" ] && [ "$xlen" = 0 ] && [ "$(recorded)" = "$want" ] && break
    sleep 0.1
  done
  [ "$rows" = "$want" ] || fail "$1: $rows rows for $want recorded events (stream: $xlen entries)"
  [ "$xlen" = 0 ] || fail "$1: $xlen entries left in the stream"
  [ "$(sql "SELECT count(*) - count(DISTINCT event_id) FROM mailbeacon.events")" = 0 ] || fail "$1: an event twice"
  [ "$(sql "SELECT count(*) FROM mailbeacon.rejected")" = 0 ] || fail "$1: rejected rows"
  echo "ok $1: $want events recorded = $rows rows, none twice"
}

# 1. SIGKILL while holding a batch
load 5
sleep 1.5
held=0
for _ in $(seq 1 50); do
  kill -STOP "$b1"
  held=$(mb_redis_cli XPENDING mb:bf mailbeacon-batchers | sed -n 1p)
  [ "${held:-0}" -gt 0 ] 2>/dev/null && break
  kill -CONT "$b1"
  sleep 0.02
done
[ "${held:-0}" -gt 0 ] || fail "the batcher never held a batch"
kill -9 "$b1"
wait "$b1" 2>/dev/null || true
b1=
sleep 0.3
start_batcher b2 bport2 b2
settled "batcher SIGKILLed holding $held entries"
reclaimed=$(metric "$bport2" mailbeacon_batcher_reclaimed_total)
[ "${reclaimed:-0}" -ge "$held" ] || fail "the new batcher took over ${reclaimed:-0} entries, not the $held pending"

# 2. PostgreSQL crashes for several seconds
load 6
sleep 1
mb_pg_stop immediate
sleep 3
mb_pg_start
settled "PostgreSQL crashed for 3 s"
[ "$(metric "$bport2" 'mailbeacon_batcher_errors_total{system="postgres"}')" -gt 0 ] || fail "no PostgreSQL error seen"

# 3. Redis SIGKILLed, restarted from its AOF
load 6
sleep 1
kill -9 "$(cat "$MB_RUN/redis/pid")"
sleep 2
mb_redis_start
settled "Redis SIGKILLed for 2 s"
spooled=$(metric "$eport" 'mailbeacon_events_total{to="spool"}')
[ "${spooled:-0}" -gt 0 ] || fail "the edge spooled nothing while Redis was down"

# 4. two batchers in one group
start_batcher b1 bport1 b1
before1=$(metric "$bport1" 'mailbeacon_batcher_rows_total{result="loaded"}')
before2=$(metric "$bport2" 'mailbeacon_batcher_rows_total{result="loaded"}')
load 5
settled "two batchers in one group"
d1=$(($(metric "$bport1" 'mailbeacon_batcher_rows_total{result="loaded"}') - before1))
d2=$(($(metric "$bport2" 'mailbeacon_batcher_rows_total{result="loaded"}') - before2))
[ "$d1" -gt 0 ] && [ "$d2" -gt 0 ] || fail "both batchers should have loaded rows: $d1 and $d2"
echo "   (batcher 1 loaded $d1 rows, batcher 2 $d2)"

# the consumer of the batcher killed in 1 was forgotten (idle for 10 x reclaim_idle_ms, nothing pending)
consumers=$(mb_redis_cli XINFO CONSUMERS mb:bf mailbeacon-batchers | grep -c '^name$' || true)
[ "$consumers" = 2 ] || fail "$consumers consumers in the group, not the 2 live batchers"
for p in $b1 $b2 $epid; do kill -TERM "$p"; wait "$p" || fail "exit status $? after SIGTERM"; done
b1= b2= epid=
echo "batcher_faults: all passed"
