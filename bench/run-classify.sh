#!/usr/bin/env bash
# The batcher with the classifier against the same batcher without it
# (issue 12: rows/s with classification >= 0.9x without), side by side in
# one run on this machine.
#
# "Without" is mailbeacon-server built from BASE (default 948c75a, the last
# commit before the classifier), "with" is the build given (the current
# tree) with the shipped rules file, its IP lists pointed at generated files
# the size of the real ones (LIST_RANGES ranges in Apple's CSV format, a
# Microsoft 365 JSON and an office CIDR list). Each has its own database in
# one private PostgreSQL 15 (migrated by its own binary), and reads the same
# stream: ROWS events as the edge writes them (mb-bench-pg preload: 3 opens
# for 1 click, 5 recipients, 8 links, events 50 µs apart, from 10 minutes
# ago) on MESSAGES messages (each message's hits are a few in the run, as
# live, where they spread over days), in two flows:
#   warm: a running batcher has loaded the MESSAGES sent records from the
#         stream (mb-bench-pg sent; not timed), as the rewriter writes them
#         before the hits come: the classifier learned each message's sent
#         time and sender from them as they passed. Then the hits are added
#         while it runs, timed from the first XADD to the stream emptied;
#   cold: the messages are in PostgreSQL already (mb-bench-pg messages,
#         before the clock starts) and the stream holds only the hits: the
#         classifier must ask PostgreSQL for every message (a batcher just
#         started, or one that shares the stream with others).
# Timed from starting `mailbeacon-server --role batcher` until the stream is
# empty (entries are deleted after their commit and XACK); rows/s = ROWS /
# that time. REPS repetitions each, interleaved (base, new, new, base, ...),
# TRUNCATE + CHECKPOINT before every run. Checks: ROWS rows loaded, and with
# the classifier every row classified and final.
#
# A third batcher, "floor", is BASE loading into the current schema with the
# verdict columns' defaults set to the commonest verdict (human,
# no_machine_signal, the rules' version): rows as wide as with the
# classifier, no judging. floor/without is what storing a verdict costs by
# itself; with/floor what judging costs.
#
# usage: bash bench/run-classify.sh [build/mailbeacon-server [build/bench/mb-bench-pg]]   (as root)
# env: ROWS (500000) REPS (3) BATCH (5000) BASE (948c75a) LIST_RANGES (50000) MESSAGES (100000)
#      FLOWS ("warm cold") KEEP=1 keeps the temp dir; PERF=judge (or new) profiles that batcher during the timed
#      phase only (perf.FLOW.WHICH.REP.data, kept with KEEP=1; report with perf report -i, --sort sym);
#      PERF_ALL=1 the whole machine during each timed run; PGLOG=1 logs every statement's duration (pg/pg.log);
#      PGSTAT=1 prints the statements taking most of PostgreSQL's time in each run with the classifier;
#      PGEXPLAIN=MS logs the plans of statements over MS ms (1: 300; pg/pg.log, with KEEP=1)
set -euo pipefail
cd "$(dirname "$0")/.."
server=$(realpath "${1:-build/mailbeacon-server}")
driver=$(realpath "${2:-build/bench/mb-bench-pg}")
rows=${ROWS:-500000} reps=${REPS:-3} batch=${BATCH:-5000} base_rev=${BASE:-948c75a} nranges=${LIST_RANGES:-50000}
export MB_BENCH_MESSAGES=${MESSAGES:-100000}
flows=${FLOWS:-warm cold}
stream=mailbeacon:events seed=1
for b in "$server" "$driver"; do
  [ -x "$b" ] || { echo "no $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
show() { printf '+' >&2; printf ' %q' "$@" >&2; printf '\n' >&2; }
run() { show "$@"; "$@"; }

. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-classify.XXXXXX)
bpid='' redis='' pg=''
cleanup() {
  set +e
  [ -n "$bpid" ] && { kill -TERM "$bpid"; wait "$bpid"; }
  [ -n "$redis" ] && mb_redis_stop
  [ -n "$pg" ] && mb_pg_stop
  git worktree remove --force "$MB_RUN/base-src" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $MB_RUN" >&2; else rm -rf "$MB_RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the batcher without the classifier, built from BASE
run git worktree add --detach "$MB_RUN/base-src" "$base_rev" >/dev/null 2>&1
run cmake -S "$MB_RUN/base-src" -B "$MB_RUN/base-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_TESTS=OFF >/dev/null
run cmake --build "$MB_RUN/base-build" -j"$(nproc)" --target mailbeacon-server >/dev/null
base_server=$MB_RUN/base-build/mailbeacon-server

# ---- the rules and lists the classifier reads
lists=$MB_RUN/lists
mkdir -p "$lists"
python3 - "$lists" "$nranges" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
# Apple's format, n /28 ranges (as many lines as its egress list has tens of thousands of)
with open(f"{d}/egress-ip-ranges.csv", "w") as f:
    for i in range(n):
        a = 0x64400000 + i * 16  # 100.64.0.0 upwards
        f.write(f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}/28,US,US-CA,Cupertino,\n")
ips = [f"40.{i >> 8 & 255}.{i & 255}.0/24" for i in range(300)] + [f"2603:10a6:{i:x}::/48" for i in range(200)]
json.dump([{"id": 1, "serviceArea": "Exchange", "ips": ips}], open(f"{d}/m365.json", "w"))
json.dump({"prefixes": [{"ipv4Prefix": f"66.{i}.0.0/16"} for i in range(100)]}, open(f"{d}/goog.json", "w"))
open(f"{d}/office.txt", "w").write("198.51.100.0/24\n")
PY
sed -e "s|^list office cidr .*|list office cidr $lists/office.txt|" \
  -e "s|^list apple_egress apple-csv .*|list apple_egress apple-csv $lists/egress-ip-ranges.csv|" \
  -e "s|^list google google-json .*|list google google-json $lists/goog.json|" \
  -e "s|^list m365_exchange m365-json .*|list m365_exchange m365-json $lists/m365.json|" \
  rules/mailbeacon.rules > "$MB_RUN/mailbeacon.rules"

# ---- Redis (no persistence: the stream is not what is measured) and PostgreSQL, over TCP
redis=1
run mb_redis_start no tcp
raddr=$(mb_redis_addr tcp)
pg=1
mb_pg_start tcp
conninfo=$(mb_pg_conninfo tcp)
mb_psql -qc "CREATE DATABASE base" -c "CREATE DATABASE floor" -c "CREATE DATABASE judge" >/dev/null
if [ -n "${PGSTAT:-}" ]; then # the statements taking most of PostgreSQL's time in each run with the classifier
  mb_psql -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  mb_pg_stop
  mb_pg_start tcp
  mb_psql -qc "CREATE EXTENSION pg_stat_statements" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
fi
if [ -n "${PGEXPLAIN:-}" ]; then # the plans of statements over PGEXPLAIN ms (1: 300), nested ones too (pg/pg.log)
  [ "$PGEXPLAIN" = 1 ] && PGEXPLAIN=300
  mb_psql -qc "LOAD 'auto_explain'" -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" -c "ALTER SYSTEM SET auto_explain.log_min_duration = $PGEXPLAIN" \
    -c "ALTER SYSTEM SET auto_explain.log_nested_statements = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
if [ -n "${PGLOG:-}" ]; then
  mb_psql -qc "ALTER SYSTEM SET log_min_duration_statement = 0" -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
    -c "ALTER SYSTEM SET log_checkpoints = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
base_conninfo=${conninfo/dbname=mailbeacon/dbname=base}
judge_conninfo=${conninfo/dbname=mailbeacon/dbname=judge}
MAILBEACON_POSTGRES=$base_conninfo run "$base_server" migrate >/dev/null
MAILBEACON_POSTGRES=$conninfo run "$server" migrate >/dev/null
# floor: the batcher without the classifier (BASE) loading into this schema, its rows as wide as
# the classifier's (the commonest verdict as the columns' defaults): what storing a verdict costs
floor_conninfo=${conninfo/dbname=mailbeacon/dbname=floor}
MAILBEACON_POSTGRES=$floor_conninfo run "$server" migrate >/dev/null
# judge: this build judging as "new" does, with make_alerts making none: the classifier's cost
# alone (issue 12), new/judge what making alerts adds (issue 13; this stream's hits are nearly all
# a recipient's first, and each alerts)
MAILBEACON_POSTGRES=$judge_conninfo run "$server" migrate >/dev/null
psql "$judge_conninfo" -qc "CREATE OR REPLACE FUNCTION mailbeacon.make_alerts(c mailbeacon.alert_candidate[], reopen interval)
  RETURNS bigint LANGUAGE sql AS \$\$ SELECT 0::bigint \$\$"
version=$(awk '$1 == "version" {print $2; exit}' rules/mailbeacon.rules)
psql "$floor_conninfo" -qc "ALTER TABLE mailbeacon.events ALTER COLUMN class SET DEFAULT 'human',
  ALTER COLUMN reason SET DEFAULT 'no_machine_signal', ALTER COLUMN rules_version SET DEFAULT '$version'" \
  -c "CREATE FUNCTION mailbeacon.load_sent(text, text, text, text, text, text, text, text) RETURNS boolean
      LANGUAGE sql AS \$\$ SELECT mailbeacon.load_sent(\$1, \$2, \$3, \$4, \$5, \$6, \$7, \$8, '') \$\$" # BASE's
export MAILBEACON_REDIS=$raddr MAILBEACON_REDIS_STREAM=$stream MAILBEACON_BATCH_SIZE=$batch \
  MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0
base_us=$(( ($(date +%s) - 600) * 1000000 ))
for db in "$base_conninfo" "$floor_conninfo" "$judge_conninfo" "$conninfo"; do
  psql "$db" -qtAc "SELECT mailbeacon.ensure_partition(to_timestamp($base_us / 1e6)),
                           mailbeacon.ensure_partition(to_timestamp(($base_us + 50 * $rows) / 1e6))" >/dev/null
done

pg_pid=$(head -1 "$MB_RUN/pg/data/postmaster.pid")
ticks=$(getconf CLK_TCK)
cpu_of() { # CPU ticks of the processes and their children
  local t=0 p s
  for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ,)" 2>/dev/null || true); do
    s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + $(echo "$s" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "$t"
}
secs() { awk -v t="$1" -v k="$ticks" 'BEGIN {printf "%.1f", t / k}'; }

start_perf() { # start_perf WHICH REP FLOW: PERF=WHICH profiles the batcher from the clock's start
  [ "${PERF:-}" = "$1" ] || return 0
  perf record -F 4000 -o "$MB_RUN/perf.$3.$1.$2.data" -p "$bpid" 2>/dev/null &
  perf=$!
}

run_one() { # run_one base|floor|judge|new REP FLOW
  local which=$1 flow=$3 db=$conninfo bin=$server extra=() t0 out done_ns n pg0 pg1 bc bc0=0 open unclassified
  [ "$which" = base ] && db=$base_conninfo bin=$base_server
  [ "$which" = floor ] && db=$floor_conninfo bin=$base_server
  [ "$which" = judge ] && db=$judge_conninfo
  [ "$which" = new ] || [ "$which" = judge ] && extra=(env "MAILBEACON_RULES_FILE=$MB_RUN/mailbeacon.rules")
  mb_redis_cli DEL "$stream" >/dev/null
  psql "$db" -qc "SET client_min_messages = warning" -c "TRUNCATE mailbeacon.events, mailbeacon.messages CASCADE" >/dev/null
  # and the alerts the run before made of the same events (no foreign key ties them to the messages)
  [ "$which" = base ] || psql "$db" -qc "SET client_min_messages = warning" -c "TRUNCATE mailbeacon.alerts CASCADE" >/dev/null
  # and what the batchers before kept of the events (the same times again: recent's trust, finality)
  [ "$which" = base ] || psql "$db" -qc "UPDATE mailbeacon.classifier_state SET final_before = '-infinity', newest_loaded = NULL"
  if [ "$flow" = warm ]; then
    "$driver" sent "$raddr" "$stream" "$base_us" >/dev/null
  else
    "$driver" messages "$db" "$base_us" >/dev/null
    "$driver" preload "$raddr" "$stream" "$rows" "$seed" "$base_us" >/dev/null
    psql "$db" -qc "VACUUM ANALYZE mailbeacon.messages" -c "VACUUM ANALYZE mailbeacon.links" -c "CHECKPOINT" >/dev/null
  fi
  pg0=$(cpu_of "$pg_pid")
  t0=$(date +%s%N)
  # a consumer group of its own: the batcher before it (of another build) left its consumer in
  # the group, which would look like another batcher sharing the stream
  MAILBEACON_BATCHER_GROUP=bench-$flow-$which-$2 MAILBEACON_POSTGRES=$db "${extra[@]}" "$bin" --role batcher \
    2> "$MB_RUN/batcher.$flow.$which.$2.log" &
  bpid=$!
  perf=''
  [ "$flow" = cold ] && start_perf "$which" "$2" "$flow"
  if [ "$flow" = warm ]; then # the sent records loaded, then the clock starts with the hits
    "$driver" drain "$raddr" "$stream" 900 >/dev/null || { tail "$MB_RUN/batcher.$flow.$which.$2.log" >&2; exit 1; }
    psql "$db" -qc "VACUUM ANALYZE mailbeacon.messages" -c "CHECKPOINT" >/dev/null
    pg0=$(cpu_of "$pg_pid") bc0=$(cpu_of "$bpid")
    t0=$(date +%s%N)
    start_perf "$which" "$2" "$flow"
    "$driver" preload "$raddr" "$stream" "$rows" "$seed" "$base_us" >/dev/null
  fi
  [ "$which" != base ] && [ "$which" != floor ] && [ -n "${PGSTAT:-}" ] && mb_psql -qtAc "SELECT pg_stat_statements_reset()" >/dev/null
  local sysperf=''
  if [ -n "${PERF_ALL:-}" ]; then
    perf record -a -g -F 1000 -o "$MB_RUN/perf-all.$flow.$which.$2.data" 2>/dev/null &
    sysperf=$!
  fi
  out=$("$driver" drain "$raddr" "$stream" 900) || { echo "$out" >&2; tail "$MB_RUN/batcher.$flow.$which.$2.log" >&2; exit 1; }
  [ -n "$sysperf" ] && { kill -INT "$sysperf"; wait "$sysperf" || true; }
  [ -n "$perf" ] && { kill -INT "$perf"; wait "$perf" || true; }
  done_ns=${out#*done_ns=}
  done_ns=${done_ns%% *}
  bc=$(($(cpu_of "$bpid") - bc0)) pg1=$(cpu_of "$pg_pid")
  kill -TERM "$bpid"
  wait "$bpid"
  bpid=''
  n=$(psql "$db" -qtAc "SELECT count(*) FROM mailbeacon.events")
  [ "$n" = "$rows" ] || { echo "$which: $n rows, want $rows" >&2; exit 1; }
  if [ "$which" = new ] || [ "$which" = judge ]; then
    unclassified=$(psql "$db" -qtAc "SELECT count(*) FROM mailbeacon.events WHERE class IS NULL")
    open=$(psql "$db" -qtAc "SELECT count(*) FROM mailbeacon.events WHERE occurred_at >= mailbeacon.final_before() AND class = 'human'")
    [ "$unclassified" = 0 ] && [ "$open" = 0 ] || { echo "new: $unclassified unclassified, $open open" >&2; exit 1; }
    psql "$db" -qtAc "SELECT class || '/' || reason || '=' || count(*) FROM mailbeacon.events GROUP BY class, reason
                       ORDER BY count(*) DESC" | tr '\n' ' ' > "$MB_RUN/classes"
    printf '%s alerts=%s ' "$which" "$(psql "$db" -qtAc "SELECT count(*) FROM mailbeacon.alerts")" >> "$MB_RUN/classes"
    [ -n "${PGSTAT:-}" ] && echo "PostgreSQL's statements in the $flow $which run (rep $2; its rows/s follow):" >&2
    [ -n "${PGSTAT:-}" ] && mb_psql -c "SELECT round(total_exec_time) AS ms, calls, rows,
        regexp_replace(left(query, 100), '\s+', ' ', 'g') AS query
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '${db##*dbname=}')
      ORDER BY total_exec_time DESC LIMIT 12" >&2
  fi
  awk -v w="$which" -v r="$2" -v f="$flow" -v a="$t0" -v b="$done_ns" -v n="$rows" -v bc="$(secs "$bc")" \
    -v pc="$(secs $((pg1 - pg0)))" \
    'BEGIN {s = (b - a) / 1e9; printf "%s %s rep%s seconds=%.3f rows_per_s=%.0f cpu_batcher=%s cpu_pg=%s\n", f, w, r, s, n / s, bc, pc}' |
    tee -a "$MB_RUN/results" >&2
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; PostgreSQL $(psql -V | awk '{print $3}');" \
  "commit $(git rev-parse --short HEAD) against $base_rev; $rows events, batch_size $batch, $nranges Apple ranges" >&2
: > "$MB_RUN/results"
for rep in $(seq 1 "$reps"); do
  for flow in $flows; do
    case $((rep % 3)) in
      1) run_one base "$rep" "$flow"; run_one judge "$rep" "$flow"; run_one new "$rep" "$flow"; run_one floor "$rep" "$flow" ;;
      2) run_one judge "$rep" "$flow"; run_one floor "$rep" "$flow"; run_one base "$rep" "$flow"; run_one new "$rep" "$flow" ;;
      0) run_one floor "$rep" "$flow"; run_one new "$rep" "$flow"; run_one base "$rep" "$flow"; run_one judge "$rep" "$flow" ;;
    esac
  done
done
echo "classes (the last run with the classifier): $(cat "$MB_RUN/classes")" >&2
# floor: the same batcher without the classifier, rows as wide as with it
for flow in $flows; do
  awk -v f="$flow" '$1 == f {for (i = 4; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "rows_per_s") v[$2 "," $3] = kv[2]}
                              reps[$3] = 1}
       END {for (r in reps) printf "%s %.0f %.4f %.4f\n", r, v["floor," r], v["floor," r] / v["base," r], v["judge," r] / v["floor," r]}' \
    "$MB_RUN/results" | sort > "$MB_RUN/floor.$flow"
  echo "$flow: the rows alone (rep, rows/s without the classifier but rows as wide, ratio to without, the classifier's to it):" >&2
  sed 's/^/  /' "$MB_RUN/floor.$flow" >&2
done
# per flow and repetition: rows/s without and with, and their ratio; medians
med() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for flow in $flows; do
  awk -v f="$flow" '$1 == f {for (i = 4; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "rows_per_s") v[$2 "," $3] = kv[2]}
                              reps[$3] = 1}
       END {for (r in reps) printf "%s %.0f %.0f %.4f %.0f %.4f\n", r, v["base," r], v["judge," r], v["judge," r] / v["base," r],
                                   v["new," r], v["new," r] / v["judge," r]}' \
    "$MB_RUN/results" | sort > "$MB_RUN/ratios.$flow"
  echo "$flow: per repetition (rep, rows/s without, with the classifier, ratio; with alerts too, ratio to the classifier alone):" >&2
  sed 's/^/  /' "$MB_RUN/ratios.$flow" >&2
  printf '%s: median rows/s without the classifier %s, with it %s; ratio with/without (median of the per-repetition ratios) %s (min %s, max %s)\n' \
    "$flow" "$(cut -d' ' -f2 "$MB_RUN/ratios.$flow" | med)" "$(cut -d' ' -f3 "$MB_RUN/ratios.$flow" | med)" \
    "$(cut -d' ' -f4 "$MB_RUN/ratios.$flow" | med)" "$(cut -d' ' -f4 "$MB_RUN/ratios.$flow" | sort -g | head -1)" \
    "$(cut -d' ' -f4 "$MB_RUN/ratios.$flow" | sort -g | tail -1)"
  printf '%s: with alerts made too, median rows/s %s, ratio to the classifier alone %s\n' "$flow" \
    "$(cut -d' ' -f5 "$MB_RUN/ratios.$flow" | med)" "$(cut -d' ' -f6 "$MB_RUN/ratios.$flow" | med)"
done
