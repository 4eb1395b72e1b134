#!/usr/bin/env bash
# The batcher (Redis stream -> PostgreSQL, exactly once) against the
# per-event INSERT design (Postal, listmonk: one INSERT per event, each its
# own transaction) and against a raw COPY of the same rows with no
# exactly-once machinery (the practical limit), side by side in one run on
# this machine; then end to end from wrk hits to committed rows, and the
# batch lag at a paced 10k hits/s. Prints every command it runs.
#
# 1. rows/s, REPS interleaved repetitions, the same ROWS events each time
#    (bench/mb-bench-pg.c makes them from a seed: unique ids, recent times,
#    opens and clicks), into the same table (mailbeacon.events: partitioned,
#    primary key, index), TRUNCATE + CHECKPOINT before every run:
#    - batcher: the events preloaded in the stream as the edge writes them
#      (entries of 256); timed from starting `mailbeacon-server --role
#      batcher` until the stream is empty (the batcher deletes entries after
#      their commit and XACK); rows/s = ROWS / that time. "steady" excludes
#      start-up: from the first entry deleted to the last.
#    - copy: the same rows (made by the batcher's own conversion before the
#      clock starts), BATCH rows per COPY, each COPY its own transaction.
#    - insert: the first INSERT_ROWS of them, one prepared INSERT each, autocommit.
#    Checks after each run: count(*) = rows; for the batcher also its
#    counters (loaded = ROWS, duplicate = rejected = 0).
# 2. end to end: `mailbeacon-server` (edge + batcher in one process) under wrk
#    -t1 -cE2E_CONNS with bench/rotate.lua for DURATION s; committed rows/s
#    over the run (batcher counter before/after), hits/s, the stream lag at
#    the end, then after draining: rows in the table = events the edge
#    recorded = requests wrk sent.
# 3. lag: the same server, wrk paced by a delay() of LAG_CONNS*1000/LAG_RATE
#    ms per connection (connections scaled by two calibration runs to give
#    ~LAG_RATE hits/s) for
#    LAG_DURATION s; p50/p99/max of loaded_at - occurred_at over the run's
#    rows (loaded_at is the batch's transaction start: the commit is a few ms
#    later) and p99 from the server's mailbeacon_batcher_load_delay_seconds
#    histogram (hit -> commit; interpolated within its bucket).
# CPU seconds used by the batcher, PostgreSQL and Redis are shown per run.
#
# usage: bash bench/run-batcher.sh [build/mailbeacon-server [build/mailbeacon-rewrite [build/bench/mb-bench-pg]]]   (as root)
# env: ROWS (1000000) INSERT_ROWS (30000) REPS (3) BATCH (5000: the batcher's batch_size and the COPY batch)
#      DURATION (20) E2E_CONNS (64) LAG_DURATION (20) LAG_RATE (10000) LAG_CONNS (100 for the pause,
#      then scaled by two 3 s calibration runs; set it to skip them) TOKENS (1000)
#      E2E=0 runs part 1 only; KEEP=1 keeps the temp dir (logs, raw results)
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-build/mailbeacon-server}
rewrite=${2:-build/mailbeacon-rewrite}
driver=${3:-build/bench/mb-bench-pg}
rows=${ROWS:-1000000} insert_rows=${INSERT_ROWS:-30000} reps=${REPS:-3} batch=${BATCH:-5000}
duration=${DURATION:-20} e2e_conns=${E2E_CONNS:-64}
lag_duration=${LAG_DURATION:-20} lag_rate=${LAG_RATE:-10000} lag_conns=${LAG_CONNS:-100} ntok=${TOKENS:-1000}
stream=mailbeacon:events seed=1
for b in "$server" "$rewrite" "$driver"; do
  [ -x "$b" ] || { echo "no $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ "$insert_rows" -le "$rows" ] || { echo "INSERT_ROWS must be <= ROWS" >&2; exit 2; }

show() { printf '+' >&2; printf ' %q' "$@" >&2; printf '\n' >&2; }
run() { show "$@"; "$@"; }

missing=
command -v wrk >/dev/null || missing="$missing wrk"
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v curl >/dev/null || missing="$missing curl"
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$missing postgresql"
if [ -n "$missing" ]; then
  run apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq $missing >/dev/null
fi

. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-batcher.XXXXXX)
bpid='' spid='' samp='' redis='' pg=''
stop_pid() { # stop_pid PID NAME: SIGTERM, wait, report a bad exit
  local st=0
  kill -TERM "$1" 2>/dev/null || return 0
  wait "$1" 2>/dev/null || st=$?
  [ "$st" = 0 ] || echo "$2 exited $st on SIGTERM" >&2
}
cleanup() {
  set +e
  [ -n "$samp" ] && { kill "$samp" 2>/dev/null; wait "$samp" 2>/dev/null; }
  [ -n "$bpid" ] && stop_pid "$bpid" batcher
  [ -n "$spid" ] && stop_pid "$spid" mailbeacon-server
  [ -n "$redis" ] && mb_redis_stop
  [ -n "$pg" ] && mb_pg_stop
  if [ -n "${KEEP:-}" ]; then echo "kept $MB_RUN" >&2; else rm -rf "$MB_RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis without persistence (scripts/lib/services.sh: the stream is not what is measured), on
# TCP as well: the batcher, the edge and the driver reach it over TCP
redis=1
run mb_redis_start no tcp
raddr=$(mb_redis_addr tcp)

# PostgreSQL 15, private, default settings (synchronous_commit on), reached over TCP
pg=1
show mb_pg_start tcp "(scripts/lib/services.sh: initdb in $MB_RUN/pg, pg_ctl start, TCP on 127.0.0.1)"
mb_pg_start tcp
conninfo=$(mb_pg_conninfo tcp)
psql_() { show psql "$@"; mb_psql "$@"; }
export MAILBEACON_POSTGRES=$conninfo MAILBEACON_REDIS=$raddr MAILBEACON_REDIS_STREAM=$stream \
  MAILBEACON_BATCH_SIZE=$batch
echo "+ export MAILBEACON_POSTGRES='$conninfo' MAILBEACON_REDIS=$raddr MAILBEACON_REDIS_STREAM=$stream MAILBEACON_BATCH_SIZE=$batch" >&2
run "$server" migrate >/dev/null

# the events: times 50 µs apart from 10 minutes ago; their partitions exist
base_us=$(( ($(date +%s) - 600) * 1000000 ))
psql_ -tAc "SELECT mailbeacon.ensure_partition(to_timestamp($base_us / 1e6)), mailbeacon.ensure_partition(to_timestamp(($base_us + 50 * $rows) / 1e6))" >/dev/null

pg_pid=$(head -1 "$MB_RUN/pg/data/postmaster.pid")
ticks=$(getconf CLK_TCK)
# cpu_of PID...: CPU seconds (user + system, and reaped children) of those processes and their children
cpu_of() {
  local t=0 p s
  for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ,)" 2>/dev/null || true); do
    s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
    # fields after the command: 3 state ... 14 utime 15 stime 16 cutime 17 cstime
    t=$((t + $(echo "$s" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "$t"
}
secs() { awk -v t="$1" -v k="$ticks" 'BEGIN {printf "%.1f", t / k}'; }
reset_events() { psql_ -c "TRUNCATE mailbeacon.events" -c "CHECKPOINT" >/dev/null; }
count_rows() { mb_psql -tAc "SELECT count(*) FROM mailbeacon.events"; }
metric() { curl -fs "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }
wait_http() { # wait_http ADMIN_PORT LOG
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  cat "$2" >&2
  return 1
}

# ---- 1. rows/s: batcher vs raw COPY vs per-event INSERT ----
run_batcher() { # run_batcher REP: appends "batcher ..." to results
  local aport t0 out first done_ns pg0 pg1 rd0 rd1 bc loaded dup rej n
  mb_redis_cli DEL "$stream" >/dev/null
  run "$driver" preload "$raddr" "$stream" "$rows" "$seed" "$base_us" >&2
  reset_events
  pg0=$(cpu_of "$pg_pid") rd0=$(cpu_of "$(cat "$MB_RUN/redis/pid")")
  echo "+ MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 $server --role batcher &" >&2
  t0=$(date +%s%N)
  MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 "$server" --role batcher 2> "$MB_RUN/batcher.$1.log" &
  bpid=$!
  show "$driver" drain "$raddr" "$stream" 600
  out=$("$driver" drain "$raddr" "$stream" 600) || { echo "$out" >&2; cat "$MB_RUN/batcher.$1.log" >&2; exit 1; }
  # its admin port (port 0 above), from its start line, read once the clock has stopped
  aport=$(mb_wait_port "$bpid" "$MB_RUN/batcher.$1.log" admin) || exit 1
  first=${out#*first_ns=} done_ns=${out#*done_ns=}
  first=${first%% *} done_ns=${done_ns%% *}
  bc=$(cpu_of "$bpid") pg1=$(cpu_of "$pg_pid") rd1=$(cpu_of "$(cat "$MB_RUN/redis/pid")")
  loaded=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="loaded"}')
  dup=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="duplicate"}')
  rej=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="rejected"}')
  stop_pid "$bpid" batcher
  bpid=''
  n=$(count_rows)
  echo "batcher rep$1 rows=$n seconds=$(awk -v a="$t0" -v b="$done_ns" 'BEGIN {printf "%.3f", (b - a) / 1e9}')" \
    "steady_seconds=$(awk -v a="$first" -v b="$done_ns" 'BEGIN {printf "%.3f", (b - a) / 1e9}')" \
    "loaded=$loaded duplicate=$dup rejected=$rej cpu_batcher=$(secs "$bc") cpu_pg=$(secs $((pg1 - pg0)))" \
    "cpu_redis=$(secs $((rd1 - rd0)))" | tee -a "$MB_RUN/results" >&2
  if [ "$n" != "$rows" ] || [ "$loaded" != "$rows" ] || [ "$dup" != 0 ] || [ "$rej" != 0 ]; then
    echo "batcher: $n rows in the table, counters loaded=$loaded duplicate=$dup rejected=$rej; want $rows, 0, 0" >&2
    exit 1
  fi
}
run_driver() { # run_driver copy|insert REP
  local out n pg0 pg1 want=$rows
  reset_events
  pg0=$(cpu_of "$pg_pid")
  if [ "$1" = copy ]; then
    show "$driver" copy "$conninfo" "$rows" "$seed" "$base_us" "$batch"
    out=$("$driver" copy "$conninfo" "$rows" "$seed" "$base_us" "$batch")
  else
    want=$insert_rows
    show "$driver" insert "$conninfo" "$insert_rows" "$seed" "$base_us"
    out=$("$driver" insert "$conninfo" "$insert_rows" "$seed" "$base_us")
  fi
  pg1=$(cpu_of "$pg_pid")
  n=$(count_rows)
  echo "$1 rep$2 $out cpu_pg=$(secs $((pg1 - pg0)))" | tee -a "$MB_RUN/results" >&2
  [ "$n" = "$want" ] || { echo "$1: $n rows in the table, want $want" >&2; exit 1; }
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; PostgreSQL $(psql -V | awk '{print $3}');" \
  "Redis $(redis-server --version | awk '{print $3}'); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')" >&2
: > "$MB_RUN/results"
cores=$(nproc)
orders=("batcher copy insert" "insert copy batcher" "copy batcher insert" "batcher insert copy" "insert batcher copy" "copy insert batcher")
for rep in $(seq 1 "$reps"); do
  for m in ${orders[$(( (rep - 1) % 6 ))]}; do
    case $m in
      batcher) run_batcher "$rep" ;;
      *) run_driver "$m" "$rep" ;;
    esac
  done
done

# ---- 2. end to end, and 3. lag ----
if [ "${E2E:-1}" != 0 ]; then
run "$rewrite" --keygen "$MB_RUN/keys" >/dev/null
echo "+ python3 (tests/integration/server_check.py token()) $MB_RUN/keys $ntok > $MB_RUN/tokens" >&2
python3 - "$MB_RUN/keys" "$ntok" > "$MB_RUN/tokens" <<'PY'
import runpy, sys
keyfile, n = sys.argv[1], int(sys.argv[2])
sys.argv = ["server_check.py", "-"]  # the module dispatches on argv[1] when loaded
token = runpy.run_path("tests/integration/server_check.py")["token"]
for i in range(n):  # n/10 messages with 10 recipients each
    print(token(keyfile, "o", "%032x" % (0x6d620000 << 96 | i // 10), i % 10, 0))
PY
cat > "$MB_RUN/paced.lua" <<'LUA'
-- bench/rotate.lua with a pause of PACE_MS before each request on every connection
dofile("bench/rotate.lua")
local pace = tonumber(os.getenv("PACE_MS") or "10")
function delay() return pace end
LUA
mb_redis_cli DEL "$stream" >/dev/null
reset_events
mkdir -p "$MB_RUN/spool"
# the listeners on any free port (port 0): the start line says which
export MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_LISTEN=127.0.0.1:0 \
  MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_EDGE_ID=bench
env | grep '^MAILBEACON_' | sort | sed 's/^/+ export /' >&2
show "$server" "&"
"$server" 2> "$MB_RUN/server.log" &
spid=$!
sport=$(mb_wait_port "$spid" "$MB_RUN/server.log" listen) && aport=$(mb_wait_port "$spid" "$MB_RUN/server.log" admin) ||
  exit 1
wait_http "$aport" "$MB_RUN/server.log"

healthz() { curl -fs "http://127.0.0.1:$aport/healthz"; }
drained() { # edge queue and spool empty, stream empty (all committed and acknowledged); at most 300 s
  local h
  for _ in $(seq 1 3000); do
    h=$(healthz) || h=
    if [[ $h == *'"queue_events":0,'* && $h == *'"spool_bytes":0,'* ]] && [ "$(mb_redis_cli XLEN "$stream")" = 0 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "not drained in 300 s: $h; stream $(mb_redis_cli XLEN "$stream") entries" >&2
  return 1
}
sampler() { # every second: time rows_loaded lag_seconds
  while :; do
    curl -fs "http://127.0.0.1:$aport/metrics" |
      awk -v t="$(date +%s.%N)" '$1 == "mailbeacon_batcher_rows_total{result=\"loaded\"}" {r = $2}
        $1 == "mailbeacon_batcher_lag_seconds" {l = $2} END {print t, r, l}'
    sleep 1
  done
}
buckets() { curl -fs "http://127.0.0.1:$aport/metrics" | awk '/^mailbeacon_batcher_load_delay_seconds_bucket/ {print $2}' | paste -sd' '; }
cpu_all() { echo "$(cpu_of "$spid") $(cpu_of "$pg_pid") $(cpu_of "$(cat "$MB_RUN/redis/pid")")"; }

# one_load NAME WRK_ARGS...: a wrk run against the server; appends "NAME ..." to results
one_load() {
  local name=$1 r0 r1 r2 e0 e2 t0 t1 t2 lag_end n res c0 c1 h0 h1
  shift
  drained
  reset_events
  r0=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="loaded"}')
  e0=$(metric "$aport" 'mailbeacon_events_total{to="redis"}')
  h0=$(buckets) c0=$(cpu_all)
  sampler > "$MB_RUN/samples.$name" &
  samp=$!
  rm -f "$MB_RUN/wrk.$name.res"
  { printf '+ ROTATE_RESULT=%q' "$MB_RUN/wrk.$name.res"; printf ' %q' "$@"; printf '\n'; } >&2
  t0=$(date +%s%N)
  ROTATE_RESULT=$MB_RUN/wrk.$name.res "$@" > "$MB_RUN/wrk.$name" 2>&1 || { cat "$MB_RUN/wrk.$name" >&2; exit 1; }
  t1=$(date +%s%N)
  r1=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="loaded"}')
  lag_end=$(metric "$aport" 'mailbeacon_batcher_lag_seconds')
  c1=$(cpu_all)
  kill "$samp"; wait "$samp" 2>/dev/null || true; samp=''
  drained
  t2=$(date +%s%N)
  r2=$(metric "$aport" 'mailbeacon_batcher_rows_total{result="loaded"}')
  e2=$(metric "$aport" 'mailbeacon_events_total{to="redis"}')
  h1=$(buckets)
  n=$(count_rows)
  res=$(cat "$MB_RUN/wrk.$name.res")
  # shellcheck disable=SC2086
  echo "$name $res seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}') rows_during=$((r1 - r0))" \
    "drain_seconds=$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.3f", (b - a) / 1e9}') rows_total=$((r2 - r0)) table=$n" \
    "recorded=$((e2 - e0)) lag_end=$lag_end" \
    "lag_max=$(awk '{if ($3 > m) m = $3} END {print m + 0}' "$MB_RUN/samples.$name")" \
    "cpu=$(echo $c0 $c1 | awk -v k="$ticks" '{printf "%.1f/%.1f/%.1f", ($4 - $1) / k, ($5 - $2) / k, ($6 - $3) / k}')" \
    "hist=$(echo $h0 $h1 | awk '{h = NF / 2; s = ""; for (i = 1; i <= h; i++) s = s (i > 1 ? "," : "") ($(i + h) - $i); print s}')" |
    tee -a "$MB_RUN/results" >&2
  if [ "$name" = lag ]; then
    show psql -tAc "SELECT percentile_cont(ARRAY[0.5, 0.99]) ... (loaded_at - occurred_at), max(...) FROM mailbeacon.events"
    mb_psql -tAc "SELECT 'sql_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY d))::numeric, 1),
        round((percentile_cont(0.99) WITHIN GROUP (ORDER BY d))::numeric, 1), round(max(d)::numeric, 1)
      FROM (SELECT extract(epoch FROM loaded_at - occurred_at) * 1000 AS d FROM mailbeacon.events) x" |
      tr '|' ' ' | tee -a "$MB_RUN/results" >&2
  fi
}

echo "warm-up (3 s, not counted)" >&2
show timeout 30 wrk -t1 -c"$e2e_conns" -d3s -s bench/rotate.lua "http://127.0.0.1:$sport" -- "$MB_RUN/tokens"
timeout 30 wrk -t1 -c"$e2e_conns" -d3s -s bench/rotate.lua "http://127.0.0.1:$sport" -- "$MB_RUN/tokens" >/dev/null 2>&1
one_load e2e timeout $((duration + 30)) wrk -t1 -c"$e2e_conns" -d"${duration}s" --latency -s bench/rotate.lua \
  "http://127.0.0.1:$sport" -- "$MB_RUN/tokens"
# wrk's delay() has millisecond timers and each request adds its latency: the
# rate a pace gives is measured (3 s, not counted) and the connections scaled
pace=$(( (lag_conns * 1000 + lag_rate / 2) / lag_rate ))
export PACE_MS=$pace
echo "+ export PACE_MS=$pace" >&2
if [ -z "${LAG_CONNS:-}" ]; then
  for round in 1 2; do
    drained
    show timeout 30 wrk -t1 -c"$lag_conns" -d3s -s "$MB_RUN/paced.lua" "http://127.0.0.1:$sport" -- "$MB_RUN/tokens"
    got=$(timeout 30 wrk -t1 -c"$lag_conns" -d3s -s "$MB_RUN/paced.lua" "http://127.0.0.1:$sport" -- "$MB_RUN/tokens" |
      sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
    [ -n "$got" ] || { echo "calibration run failed" >&2; exit 1; }
    was=$lag_conns
    lag_conns=$(awk -v c="$lag_conns" -v want="$lag_rate" -v got="$got" 'BEGIN {n = int(c * want / got + 0.5); print (n < 1 ? 1 : n > 2000 ? 2000 : n)}')
    echo "calibration $round: $got hits/s with $PACE_MS ms pauses on $was connections: $lag_conns connections for $lag_rate/s" >&2
  done
fi
one_load lag timeout $((lag_duration + 30)) wrk -t1 -c"$lag_conns" -d"${lag_duration}s" --latency -s "$MB_RUN/paced.lua" \
  "http://127.0.0.1:$sport" -- "$MB_RUN/tokens"

stop_pid "$spid" mailbeacon-server
spid=''
fi

python3 - "$MB_RUN/results" "$rows" "$insert_rows" "$reps" "$batch" "$cores" "$duration" "$lag_duration" "$lag_rate" <<'PY'
import statistics, sys
path, rows, insert_rows, reps, batch, cores, duration, lag_duration, lag_rate = sys.argv[1:]
med = statistics.median
runs, e2e, lag, sql = [], None, None, None
for line in open(path):
    f = line.split()
    if f[0] == "sql_ms":
        sql = [float(x) for x in f[1:]]
        continue
    d = {"name": f[0]}
    for kv in f[1:]:
        if "=" in kv:
            k, v = kv.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
        else:
            d["rep"] = kv
    if d["name"] == "e2e":
        e2e = d
    elif d["name"] == "lag":
        lag = d
    else:
        runs.append(d)

by = {}
for r in runs:
    if r["name"] == "batcher":
        r["rps"] = r["rows"] / r["seconds"]
        r["steady_rps"] = (r["rows"] - float(batch)) / r["steady_seconds"] if r["steady_seconds"] > 0 else r["rps"]
    else:
        r["rps"] = r["rows_per_s"]
    by.setdefault(r["rep"], {})[r["name"]] = r
reps_ = sorted(by)
def m(name, key="rps"):
    return med([by[k][name][key] for k in reps_])
r_ins = med([by[k]["batcher"]["rps"] / by[k]["insert"]["rps"] for k in reps_])
r_copy = med([by[k]["batcher"]["rps"] / by[k]["copy"]["rps"] for k in reps_])
r_copy_s = med([by[k]["batcher"]["steady_rps"] / by[k]["copy"]["rps"] for k in reps_])
print(f"\n## rows/s into mailbeacon.events ({cores} cores; medians of {reps} interleaved runs; "
      f"{int(rows):,} events, per-event INSERT {int(insert_rows):,})\n")
print("| method | rows/s | batcher ÷ it | CPU s (PostgreSQL) | exactly once |")
print("| --- | ---: | ---: | ---: | --- |")
print(f"| per-event INSERT, autocommit (Postal, listmonk) | {m('insert'):,.0f} | **{r_ins:.1f}×** | "
      f"{m('insert', 'cpu_pg'):.1f} | no (a retry inserts again) |")
print(f"| raw COPY, {int(batch)} rows per transaction | {m('copy'):,.0f} | **{r_copy:.2f}×** | "
      f"{m('copy', 'cpu_pg'):.1f} | no |")
print(f"| batcher: stream → COPY → commit → XACK/XDEL, batch_size {int(batch)} | {m('batcher'):,.0f} | 1 | "
      f"{m('batcher', 'cpu_pg'):.1f} | yes (loaded = {int(rows):,}, duplicate = 0, rejected = 0, every run) |")
print(f"\nBatcher without its start-up (first entry deleted → last, ≈ rows − one batch): {m('batcher', 'steady_rps'):,.0f} rows/s, "
      f"{r_copy_s:.2f}× raw COPY. Batcher process CPU {m('batcher', 'cpu_batcher'):.1f} s, "
      f"Redis {m('batcher', 'cpu_redis'):.1f} s, PostgreSQL {m('batcher', 'cpu_pg'):.1f} s "
      f"in {m('batcher', 'seconds'):.1f} s (median).")
print("\nRatios are medians of the per-run ratios (each repetition runs the three in a different order); "
      "rows/s are medians of the runs.")
print("\nPer run (rows/s):")
for k in reps_:
    print(f"- {k}: " + ", ".join(f"{n} {by[k][n]['rps']:,.0f}" for n in ("batcher", "copy", "insert"))
          + f"; batcher/INSERT {by[k]['batcher']['rps'] / by[k]['insert']['rps']:.1f}×, "
          f"batcher/COPY {by[k]['batcher']['rps'] / by[k]['copy']['rps']:.2f}×")

def hist_p(h, q):
    bounds = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, float("inf")]
    c = [float(x) for x in h.split(",")]
    total = c[-1]
    if total <= 0:
        return "n/a"
    want, lo = q * total, 0.0
    prev = 0.0
    for b, cum in zip(bounds, c):
        if cum >= want:
            if b == float("inf"):
                return "> 60 s"
            return f"{(lo + (b - lo) * (want - prev) / max(cum - prev, 1)) * 1000:.0f} ms (bucket ≤ {b:g} s)"
        lo, prev = b, cum
    return "n/a"

def check(d):
    ok = d["table"] == d["rows_total"] == d["recorded"] and d["requests"] <= d["table"] <= d["sent"] and not d["non2xx"]
    return ("exact: table rows = rows loaded = hits recorded = wrk sent" + (
        f" (completed {d['requests']:.0f} + {d['table'] - d['requests']:.0f} in flight when wrk stopped)"
        if d["table"] != d["requests"] else "")) if ok else (
        f"MISMATCH: table {d['table']:.0f}, loaded {d['rows_total']:.0f}, recorded {d['recorded']:.0f}, "
        f"wrk completed {d['requests']:.0f} sent {d['sent']:.0f}, non-2xx {d['non2xx']:.0f}")

if e2e is None or lag is None:
    sys.exit(0)
print(f"\n## end to end: wrk → mailbeacon-server (edge + batcher, one process) → Redis → PostgreSQL\n")
print("| run | hits/s (wrk) | rows committed/s during the run | stream lag at end / max | drain after | "
      "load delay p99 (histogram) | CPU s server/PostgreSQL/Redis | check |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for d, label in ((e2e, f"full speed, {duration} s"), (lag, f"paced ~{int(lag_rate):,}/s, {lag_duration} s")):
    print(f"| {label} | {d['rps']:,.0f} | {d['rows_during'] / d['seconds']:,.0f} | "
          f"{d['lag_end']:.2f} s / {d['lag_max']:.2f} s | {d['drain_seconds']:.1f} s | {hist_p(d['hist'], 0.99)} | "
          f"{d['cpu']} | {check(d)} |")
if sql:
    print(f"\nLag at {lag['rps']:,.0f} hits/s (loaded_at − occurred_at over the run's {lag['table']:,.0f} rows; "
          f"loaded_at is the batch's transaction start): p50 {sql[0]:.0f} ms, **p99 {sql[1]:.0f} ms**, max {sql[2]:.0f} ms.")
print(f"End to end: {e2e['rows_total']:,.0f} hits → rows in {e2e['seconds'] + e2e['drain_seconds']:.1f} s = "
      f"**{e2e['rows_total'] / (e2e['seconds'] + e2e['drain_seconds']):,.0f} events/s** "
      f"(wrk start → last row committed).")
PY
