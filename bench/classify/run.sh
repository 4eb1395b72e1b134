#!/usr/bin/env bash
# The classifier benchmark (issue 12), end to end: a labeled scenario set
# (gen_scenarios.py) goes through the real batcher and is scored against its
# ground truth (score.py).
#
#   1. gen_scenarios.py writes the stream entries, their labels, small IP
#      lists in the publishers' formats and the bench's rules file (the
#      repository's rules/mailbeacon.rules with its list paths pointed at
#      those lists), in a temp dir, with times relative to now;
#   2. a private Redis and PostgreSQL (scripts/lib/services.sh),
#      `mailbeacon-server migrate`, then `mailbeacon-server --role batcher`
#      with rules_file set to the bench's rules;
#   3. the entries are added with redis-cli --pipe before the batcher starts, sent records and hits
#      in time order, each with a stream id made from its time (as the
#      rewriter and the edge would have added it): the batcher makes an event
#      final lookahead_ms before the oldest entry still in the stream, so the
#      replay of days in seconds closes each look-ahead window where it
#      would have closed live (a later event changes only what was still
#      open then); batch_size 1 (BATCH_SIZE) makes each entry its own batch,
#      as entries arrive live, rather than days of them in one batch;
#   4. waits until every event is loaded and none is left non-final (at
#      least lookahead_ms after the last one loaded), then score.py reads
#      event_id, class, reason and finality from mailbeacon.events and prints
#      precision and recall of "a person" and of "human", the confusion
#      matrix and the misjudged behaviours with the reasons given.
# Services are stopped on exit.
#
# usage: bash bench/classify/run.sh [build/mailbeacon-server [build/mailbeacon-rewrite]]
# env: SEED (12) MESSAGES (2000) RULES (rules/mailbeacon.rules) TIMEOUT (300 s, for loading and finality)
#      BATCH_SIZE (1: each entry its own batch, as live)
#      HITS_VERSION (2; 1 tries the plumbing against a batcher without the classifier)
#      KEEP=1 keeps the temp dir (scenarios, labels, logs, the events as scored)
set -euo pipefail
cd "$(dirname "$0")/../.."
server=${1:-build/mailbeacon-server}
rewrite=${2:-build/mailbeacon-rewrite}
seed=${SEED:-12} messages=${MESSAGES:-2000} rules=${RULES:-rules/mailbeacon.rules} timeout=${TIMEOUT:-300}
hv=${HITS_VERSION:-2}
for b in "$server" "$rewrite"; do
  [ -x "$b" ] || { echo "no $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done

# shellcheck source=scripts/lib/services.sh
. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-classify.XXXXXX)
bpid=
cleanup() {
  if [ -n "$bpid" ] && kill -TERM "$bpid" 2>/dev/null; then wait "$bpid" 2>/dev/null || true; fi
  mb_redis_stop
  mb_pg_stop
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $MB_RUN" >&2; else rm -rf "$MB_RUN"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$MB_RUN/batcher.log" >&2 2>/dev/null || true; exit 1; }
sql() { mb_psql -tA -c "$1"; }

# --- 1. the scenarios
python3 bench/classify/gen_scenarios.py --out "$MB_RUN/set" --seed "$seed" --messages "$messages" \
  --rules "$rules" --hits-version "$hv" 2> "$MB_RUN/gen.log" || fail "gen_scenarios: $(cat "$MB_RUN/gen.log")"
cat "$MB_RUN/gen.log"
nevents=$(($(wc -l < "$MB_RUN/set/labels.tsv") - 1))
nentries=$(wc -l < "$MB_RUN/set/entries.jsonl")
lookahead=$(sed -n 's/^[[:space:]]*set[[:space:]][[:space:]]*lookahead_ms[[:space:]][[:space:]]*\([0-9][0-9]*\).*/\1/p' \
  "$MB_RUN/set/rules/mailbeacon.rules" | tail -1)
lookahead=${lookahead:-5000}

# --- 2. services, schema, batcher
mb_redis_start no
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" > /dev/null
MAILBEACON_POSTGRES=$(mb_pg_conninfo) MAILBEACON_REDIS=$(mb_redis_addr)
export MAILBEACON_POSTGRES MAILBEACON_REDIS \
  MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
  MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_RULES_FILE=$MB_RUN/set/rules/mailbeacon.rules \
  MAILBEACON_BATCH_SIZE=${BATCH_SIZE:-1} MAILBEACON_BATCH_WAIT_MS=1
"$server" migrate > "$MB_RUN/migrate.log" 2>&1 || fail "migrate: $(cat "$MB_RUN/migrate.log")"
has_final=$(sql "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'mailbeacon' AND p.proname = 'final_before'")
echo "rules: $rules (version $(sed -n 's/^[[:space:]]*version[[:space:]][[:space:]]*\([^[:space:]#]*\).*/\1/p' \
  "$MB_RUN/set/rules/mailbeacon.rules" | head -1)), lookahead_ms $lookahead; commit $(git rev-parse --short HEAD)"

# --- 3. the entries, in order, all in the stream before the batcher starts: it makes final what
# is older than lookahead_ms before the oldest entry still there (an empty stream would let it
# take now, days after the replay's times, and every replayed event would be final at once)
mb_redis_cli --pipe < "$MB_RUN/set/entries.resp" > "$MB_RUN/pipe.log" || fail "redis-cli --pipe: $(cat "$MB_RUN/pipe.log")"
grep -q "errors: 0, replies: $nentries" "$MB_RUN/pipe.log" || fail "XADD: $(cat "$MB_RUN/pipe.log")"
t0=$(date +%s.%N)
"$server" --role batcher >> "$MB_RUN/batcher.log" 2>&1 &
bpid=$!
aport=$(mb_wait_port $bpid "$MB_RUN/batcher.log" admin) || fail "the batcher did not start"
for _ in $(seq 1 200); do curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"postgres":"up"' && break; sleep 0.05; done

# --- 4. loaded and final
loaded=0
for ((i = 0; i < timeout * 10; i++)); do
  loaded=$(sql "SELECT count(*) FROM mailbeacon.events")
  [ "$loaded" -ge "$nevents" ] && [ "$(mb_redis_cli XLEN mailbeacon:events)" = 0 ] && break
  kill -0 $bpid 2>/dev/null || fail "the batcher exited"
  sleep 0.1
done
t1=$(date +%s.%N)
[ "$loaded" -ge "$nevents" ] || fail "only $loaded of $nevents events loaded in $timeout s"
sleep "$(awk -v ms="$lookahead" 'BEGIN { printf "%.3f", ms / 1000 + 0.5 }')"
if [ "$has_final" = 1 ]; then
  for ((i = 0; i < timeout * 10; i++)); do
    open=$(sql "SELECT count(*) FROM mailbeacon.events WHERE NOT mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())")
    [ "$open" = 0 ] && break
    sleep 0.1
  done
  [ "$open" = 0 ] || echo "WARNING: $open events still not final after $timeout s (scored as they are)" >&2
else
  echo "WARNING: no mailbeacon.final_before() (no classifier in this build?)" >&2
fi
t2=$(date +%s.%N)
rejected=$(sql "SELECT count(*) FROM mailbeacon.rejected")
[ "$rejected" = 0 ] || { echo "WARNING: $rejected entries or lines rejected; the first:" >&2
  sql "SELECT reason || ': ' || left(entry, 160) FROM mailbeacon.rejected ORDER BY stream_id, part LIMIT 3" >&2; }
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$nevents" -v e="$nentries" -v f="$has_final" 'BEGIN {
  printf "loaded %d events (%d entries) in %.1f s", n, e, b - a
  if (f == 1) printf "; all final %.1f s later", c - b
  printf "\n" }'
unclassified=$(sql "SELECT count(*) FROM mailbeacon.events WHERE class IS NULL")
[ "$unclassified" = 0 ] || echo "WARNING: $unclassified events have no class" >&2
echo

mb_psql -tA -F $'\t' -c "SELECT event_id, class, reason$([ "$has_final" = 1 ] &&
  echo ", mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())") FROM mailbeacon.events" \
  > "$MB_RUN/events.tsv"
python3 bench/classify/score.py --labels "$MB_RUN/set/labels.tsv" --psql "$(mb_pg_conninfo)"
