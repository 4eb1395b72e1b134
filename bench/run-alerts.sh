#!/usr/bin/env bash
# Issue 13's figures: the rep's alerts.
#   1. hit -> alert latency on the rep's stream (from the hit's time at the
#      edge to the alert read by a client, bench/alerts.py latency), p50 and
#      p99, idle and under BG_RATE hits/s of background load (wrk with
#      bench/paced.lua on other reps' messages), for opens final on arrival
#      (Gmail's image proxy: class proxy) and for a person's opens, which wait
#      for the look-ahead window (5 s);
#   2. STREAMS concurrent idle streams of one rep: the server's memory per
#      stream, and the p99 of one alert's delivery to all of them;
#   3. webhook deliveries/s, signed, to a local receiver (nginx answering
#      204), for HOOK_ALERTS alerts made at once.
# Everything on this machine: a private Redis (AOF, appendfsync everysec, as
# deployed) and PostgreSQL, and mailbeacon-server as its units run it, one
# process per role from one configuration (--role edge, batcher, api), with
# the shipped rules, rep_listen and webhooks_file.
# usage: bash bench/run-alerts.sh [build/mailbeacon-server [build/mailbeacon-rewrite]]   (as root)
# env: PROBES (200) BG_RATE (10000) STREAMS (10000) HOOK_ALERTS (5000) KEEP=1
#      diagnostics: NO_IDLE=1 and NO_STREAMS=1 leave phases out, PGSLOW=1 lists PostgreSQL's
#      statements over 200 ms, PGSTAT=1 the statements taking most of PostgreSQL's time
#      under load (pg_stat_statements), SHOW_IDS=1 the alert ids made and read and the rep API's counters
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-build/mailbeacon-server}
rewrite=${2:-build/mailbeacon-rewrite}
probes=${PROBES:-200} rate=${BG_RATE:-10000} nstreams=${STREAMS:-10000} hook_alerts=${HOOK_ALERTS:-5000}
for b in "$server" "$rewrite"; do
  [ -x "$b" ] || { echo "no $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
show() { printf '+' >&2; printf ' %q' "$@" >&2; printf '\n' >&2; }
for c in wrk nginx redis-server; do
  command -v $c >/dev/null || PATH=$PATH:/usr/sbin command -v $c >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx redis-server >/dev/null
done
export PATH=$PATH:/usr/sbin
ulimit -n "$(ulimit -Hn)" # 10,000 streams: a descriptor each, in the client and in the server

. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-alerts.XXXXXX)
epid='' bpid='' apid='' npid=''
cleanup() {
  for p in $epid $bpid $apid $npid; do kill "$p" 2>/dev/null || true; done
  mb_redis_stop
  mb_pg_stop
  [ -n "${KEEP:-}" ] && echo "kept $MB_RUN" >&2 || rm -rf "$MB_RUN"
}
trap cleanup EXIT

# ---- the webhook receiver: nginx on a random port (it cannot bind port 0), another when taken
mkdir -p "$MB_RUN/nginx"
for try in 1 2 3 4 5 6 7 8 9 10; do
  nport=$(mb_random_port)
  sed -e "s|@PREFIX@|$MB_RUN/nginx|g" -e "s|@PORT@|$nport|g" bench/nginx-webhook.conf.in > "$MB_RUN/nginx/nginx.conf"
  nginx -p "$MB_RUN/nginx" -c "$MB_RUN/nginx/nginx.conf" 2> "$MB_RUN/nginx/stderr" &
  npid=$!
  [ "$(mb_listen_port "$npid" 2>/dev/null)" = "$nport" ] && break
  kill "$npid" 2>/dev/null
  wait "$npid" 2>/dev/null || true
  npid=''
done
[ -n "$npid" ] || { echo "nginx did not start" >&2; exit 1; }
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
echo "* http://127.0.0.1:$nport/hook $secret" > "$MB_RUN/hooks"

# ---- services, keys, the server
mb_redis_start
mb_pg_start
if [ -n "${PGSTAT:-}" ]; then
  mb_psql -q -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  mb_pg_stop
  mb_pg_start
  mb_psql -q -c "CREATE EXTENSION pg_stat_statements" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" > /dev/null
fi
sed -i 's/^appendfsync .*//' "$MB_RUN/redis/redis.conf" 2>/dev/null || true
mb_redis_cli CONFIG SET appendfsync everysec > /dev/null
"$rewrite" --keygen "$MB_RUN/keys" > /dev/null
export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_KEY_FILE=$MB_RUN/keys \
  MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 \
  MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_API_ADMIN_LISTEN=127.0.0.1:0 \
  MAILBEACON_REP_LISTEN=127.0.0.1:0 MAILBEACON_RULES_FILE=$PWD/rules/mailbeacon.rules \
  MAILBEACON_WEBHOOKS_FILE=$MB_RUN/hooks MAILBEACON_EDGE_ID=bench
"$server" migrate > /dev/null
for role in edge batcher api; do
  show "$server" --role $role
  "$server" --role $role 2> "$MB_RUN/$role.log" &
  eval "${role:0:1}pid=$!"
done
edge=$(mb_wait_port $epid "$MB_RUN/edge.log" listen) && api=$(mb_wait_port $apid "$MB_RUN/api.log" api) &&
  badmin=$(mb_wait_port $bpid "$MB_RUN/batcher.log" admin) || exit 1
# the batcher's figures every 2 s, while the load runs: where the time goes
sample() {
  while sleep 2; do
    curl -s "http://127.0.0.1:$badmin/metrics" |
      awk '/^mailbeacon_batcher_(rows_per_second|lag_seconds|final_lag_seconds) |^mailbeacon_alerts_total |^mailbeacon_webhook_deliveries_total\{result="delivered"/ {printf "%s=%s ", $1, $2} END {print ""}'
  done
}
token=$("$server" rep-token bench@ourco.example 2>/dev/null)
[ -n "${PGSLOW:-}" ] && mb_psql -q -c "ALTER SYSTEM SET log_min_duration_statement = 200" -c "SELECT pg_reload_conf()" > /dev/null

# ---- messages and their open tokens (the test suite's independent implementation signs them):
# 8 sets of PROBES messages of bench@ (one recipient each), 1000 messages of other@ with 10 recipients
python3 - "$MB_RUN" "$probes" <<'PY'
import runpy, sys
d, n = sys.argv[1], int(sys.argv[2])
sys.argv = ["server_check.py", "-"]
token = runpy.run_path("tests/integration/server_check.py")["token"]
now = __import__("time").time()
with open(d + "/sent.redis", "w") as sent:
    def msg(m, rep, rcpts):
        u = "%032x" % m
        uid = "%s-%s-%s-%s-%s" % (u[:8], u[8:12], u[12:16], u[16:20], u[20:])
        rc = ",".join('{"i":%d,"addr":"r%d@acme.example"}' % (i, i) for i in range(1, rcpts + 1))
        sent.write("XADD mailbeacon:events * type sent v 1 message %s message_id m%x rep %s recipients '[%s]' "
                   'token_recipient %d subject s%x sent_at %d links [] client_ip ""\n'
                   % (uid, m, rep, rc, 1 if rcpts == 1 else 0, m, int((now - 3600) * 1e6)))
        return u
    for s in range(8):
        with open("%s/probes%d" % (d, s), "w") as f:
            for i in range(n):
                f.write(token(d + "/keys", "o", msg(0x6200 << 112 | s << 32 | i, "bench@ourco.example", 1), 1, 0) + "\n")
    with open(d + "/background", "w") as f:
        for m in range(1000):
            u = msg(0x6f00 << 112 | m, "other@ourco.example", 10)
            for r in range(10):
                f.write(token(d + "/keys", "o", u, r + 1, 0) + "\n")
PY
mb_redis_cli < "$MB_RUN/sent.redis" > /dev/null
for _ in $(seq 1 600); do
  [ "$(mb_psql -tAc 'SELECT count(*) FROM mailbeacon.messages')" = $((8 * probes + 1000)) ] && break
  sleep 0.1
done
echo "$(mb_psql -tAc 'SELECT count(*) FROM mailbeacon.messages') messages loaded" >&2

proxy='Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'
person='Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)'
results=$MB_RUN/results
latency() { # latency NAME PROBE_SET UA
  show python3 bench/alerts.py latency "$api" "$edge" TOKEN "$MB_RUN/probes$2" UA 25
  printf '%s %s\n' "$1" "$(python3 bench/alerts.py latency "$api" "$edge" "$token" "$MB_RUN/probes$2" "$3" 25)" | tee -a "$results"
}
if [ -z "${NO_IDLE:-}" ]; then
  latency idle_proxy 0 "$proxy"
  latency idle_person 1 "$person"
fi
# under load: wrk paced to BG_RATE: each connection waits 10 ms after each
# response (wrk's delay()), and with the response's own time and wrk's
# millisecond timers a turn takes about 11.5 ms: BG_RATE * 11.5 / 1000 connections
conns=$(((rate * 23 + 1999) / 2000))
show env PACE_MS=10 wrk -t2 -c$conns -d40s -s bench/paced.lua "http://127.0.0.1:$edge" -- "$MB_RUN/background"
PACE_MS=10 wrk -t2 -c$conns -d40s -s bench/paced.lua "http://127.0.0.1:$edge" -- "$MB_RUN/background" > "$MB_RUN/wrk.out" 2>&1 &
wpid=$!
sample > "$MB_RUN/samples" &
samp=$!
[ -n "${PGSTAT:-}" ] && mb_psql -q -tAc "SELECT pg_stat_statements_reset()" > /dev/null
sleep 5
latency load_proxy 2 "$proxy"
latency load_person 3 "$person"
wait $wpid || true
sleep 4
kill $samp
grep background "$MB_RUN/wrk.out" | tee -a "$results"
[ -n "${PGSTAT:-}" ] && mb_psql -c "SELECT round(total_exec_time) AS ms, calls, round(mean_exec_time::numeric, 2) AS mean_ms,
    rows, regexp_replace(left(query, 110), '\s+', ' ', 'g') AS query
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" | tee -a "$results"
sed 's/mailbeacon_//g; s/batcher_//g' "$MB_RUN/samples" | tee -a "$results"
[ -n "${SHOW_IDS:-}" ] && mb_psql -tAc "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mailbeacon.alerts WHERE rep = 'bench@ourco.example'" >&2
[ -n "${SHOW_IDS:-}" ] && curl -s "http://127.0.0.1:$(mb_wait_port $apid "$MB_RUN/api.log" admin)/metrics" | grep '^mailbeacon_api' >&2
[ -n "${SHOW_IDS:-}" ] && mb_psql -tAc "SELECT count(*), max(id) FROM mailbeacon.alerts" >&2
# the probes' events and alerts, per set: how many, judged how, alerted how
mb_psql -c "SELECT substr(m.message::text, 19, 4) AS set, e.class, e.reason, count(*) AS events, count(a.id) AS alerts
              FROM mailbeacon.messages m JOIN mailbeacon.events e USING (message)
              LEFT JOIN mailbeacon.alerts a ON a.event_id = e.event_id
             WHERE m.rep = 'bench@ourco.example' GROUP BY 1, 2, 3 ORDER BY 1" | tee -a "$results"

if [ -n "${PGSLOW:-}" ]; then # PostgreSQL's statements over 200 ms, by kind
  grep -o "duration: [0-9.]* ms  statement: .\{0,90\}" "$MB_RUN/pg/pg.log" | sed 's/duration: \([0-9]*\)[0-9.]* ms/\1/' |
    awk '{ms=$1; $1=""; n[$0]++; t[$0]+=ms} END {for (k in n) printf "%6d ms in %4d: %s\n", t[k], n[k], k}' | sort -rn | head -8
fi
[ -n "${NO_STREAMS:-}" ] && exit 0
# ---- idle streams
echo "+ SERVER_PID=$apid python3 bench/alerts.py streams $api TOKEN $nstreams $edge PROBE UA" >&2
printf 'streams %s\n' "$(SERVER_PID=$apid python3 bench/alerts.py streams "$api" "$token" "$nstreams" "$edge" \
  "$(head -1 "$MB_RUN/probes4")" "$proxy")" | tee -a "$results"

# ---- webhooks: HOOK_ALERTS alerts made at once, each posted, signed, to nginx
sleep 2
start=$(mb_psql -tAc "SELECT count(*) FROM mailbeacon.webhook_deliveries WHERE state = 'delivered'")
show mb_psql -c "INSERT INTO mailbeacon.alerts (...) SELECT ... generate_series(1, $hook_alerts); NOTIFY"
mb_psql -q -c "BEGIN; LOCK mailbeacon.classifier_state;
  INSERT INTO mailbeacon.alerts (rep, kind, message, recipient_idx, recipient, subject, occurred_at, event_id, class, opens, clicks)
  SELECT 'hook@ourco.example', 'open', gen_random_uuid(), 1, 'r@acme.example', 'bench ' || g, now(), gen_random_uuid(), 'human', 1, 0
    FROM generate_series(1, $hook_alerts) g;
  SELECT pg_notify('mailbeacon_alerts', '0'); COMMIT;"
t0=$(date +%s%N)
for _ in $(seq 1 1200); do
  [ "$(mb_psql -tAc "SELECT count(*) FROM mailbeacon.webhook_deliveries WHERE state = 'delivered'")" -ge $((start + hook_alerts)) ] && break
  sleep 0.1
done
t1=$(date +%s%N)
done_n=$(($(mb_psql -tAc "SELECT count(*) FROM mailbeacon.webhook_deliveries WHERE state = 'delivered'") - start))
printf 'webhooks {"alerts": %d, "delivered": %d, "seconds": %.2f, "per_second": %.0f}\n' "$hook_alerts" "$done_n" \
  "$(echo "($t1 - $t0) / 1000000000" | bc -l)" "$(echo "$done_n / (($t1 - $t0) / 1000000000)" | bc -l)" | tee -a "$results"
echo "== results"
cat "$results"
