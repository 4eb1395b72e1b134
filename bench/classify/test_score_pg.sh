#!/usr/bin/env bash
# score.py reading PostgreSQL (--psql), without the classifier: a private
# PostgreSQL with a fake mailbeacon.events (event_id uuid, class, reason,
# final) filled from a generated set's labels, with known mistakes: a scanner
# burst judged human, MPP prefetches judged human, people judged scanners, a
# NULL class, a missing row. The figures must be the ones worked out here,
# and the same as score.py --events on the same rows.
# usage: bash bench/classify/test_score_pg.sh   (as root or the postgres user)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/services.sh
. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-score-pg.XXXXXX)
trap 'mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 bench/classify/gen_scenarios.py --out "$MB_RUN/set" --seed 3 --messages 300 --now 1764633600000000 2>/dev/null
mb_pg_start
mb_psql -c "CREATE SCHEMA mailbeacon;
  CREATE TABLE mailbeacon.events (event_id uuid PRIMARY KEY, class text, reason text, final boolean NOT NULL)"
# the rows: the true class, except
#   every unknown_scanner_burst click -> human (reason empty: no rule)
#   the first 10 apple_mpp_prefetch -> human
#   every human_tabs_burst -> scanner "burst"
#   the first rep_self_open -> NULL class
#   the first human_click -> no row
python3 - "$MB_RUN/set/labels.tsv" > "$MB_RUN/rows.tsv" <<'EOF'
import sys
seen = {}
for line in list(open(sys.argv[1]))[1:]:
    eid, cls, beh, kind, actor = line.rstrip("\n").split("\t")
    n = seen[beh] = seen.get(beh, 0) + 1
    reason = "rule_" + cls
    if beh == "unknown_scanner_burst":
        cls, reason = "human", "\\N"
    elif beh == "apple_mpp_prefetch" and n <= 10:
        cls, reason = "human", "\\N"
    elif beh == "human_tabs_burst":
        cls, reason = "scanner", "burst"
    elif beh == "rep_self_open" and n == 1:
        cls, reason = "\\N", "\\N"
    elif beh == "human_click" and n == 1:
        continue
    print(f"{eid}\t{cls}\t{reason}\tt")
EOF
mb_psql -c "\\copy mailbeacon.events FROM '$MB_RUN/rows.tsv'"
python3 bench/classify/score.py --labels "$MB_RUN/set/labels.tsv" --psql "$(mb_pg_conninfo)" > "$MB_RUN/pg.out" ||
  fail "score.py --psql"
mb_psql -tA -F $'\t' -c "SELECT event_id, class, reason, final FROM mailbeacon.events" > "$MB_RUN/events.tsv"
python3 bench/classify/score.py --labels "$MB_RUN/set/labels.tsv" --events "$MB_RUN/events.tsv" > "$MB_RUN/tsv.out"
diff "$MB_RUN/pg.out" "$MB_RUN/tsv.out" || fail "--psql and --events disagree"

# the expected figures, from the labels
read -r tp fp fn htp hfp hfn < <(python3 - "$MB_RUN/set/labels.tsv" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in list(open(sys.argv[1]))[1:]]
seen, judged = {}, []
for eid, cls, beh, kind, actor in rows:
    n = seen[beh] = seen.get(beh, 0) + 1
    j = cls
    if beh == "unknown_scanner_burst" or (beh == "apple_mpp_prefetch" and n <= 10):
        j = "human"
    elif beh == "human_tabs_burst":
        j = "scanner"
    elif (beh == "rep_self_open" and n == 1) or (beh == "human_click" and n == 1):
        j = None
    judged.append((cls, j))
P = {"human", "proxy"}
def f(pos):
    tp = sum(1 for c, j in judged if c in pos and j in pos)
    fp = sum(1 for c, j in judged if c not in pos and j in pos)
    fn = sum(1 for c, j in judged if c in pos and j not in pos)
    return tp, fp, fn
print(*f(P), *f({"human"}))
EOF
)
grep -q "a person (human or proxy) *precision .* ($tp/$((tp + fp))) *recall .* ($tp/$((tp + fn)))" "$MB_RUN/pg.out" ||
  fail "person figures (want $tp/$((tp + fp)), $tp/$((tp + fn))): $(grep person "$MB_RUN/pg.out")"
grep -q "^human  *precision .* ($htp/$((htp + hfp))) *recall .* ($htp/$((htp + hfn)))" "$MB_RUN/pg.out" ||
  fail "human figures (want $htp/$((htp + hfp)), $htp/$((htp + hfn))): $(grep '^human' "$MB_RUN/pg.out")"
grep -q "missing 1," "$MB_RUN/pg.out" || fail "missing row not counted"
grep -Eq "^ +[0-9]+ +human_tabs_burst +human -> scanner +burst [0-9]+$" "$MB_RUN/pg.out" || fail "misjudged tabs burst"
grep -Eq "^ +10 +apple_mpp_prefetch +prefetch -> human +- 10$" "$MB_RUN/pg.out" || fail "misjudged MPP"
grep -Eq "^ +1 +rep_self_open +sender -> \(none\) +- 1$" "$MB_RUN/pg.out" || fail "NULL class"
echo "ok score.py --psql: person $tp/$((tp + fp)) $tp/$((tp + fn)), human $htp/$((htp + hfp)) $htp/$((htp + hfn)), same as --events"
