#!/usr/bin/env python3
"""Score the classifier against the labeled scenario set (bench/classify).

usage: score.py --labels LABELS.tsv (--events EVENTS.tsv | --psql CONNINFO)
                [--goal-precision 98] [--goal-recall 95] [--top N]

LABELS.tsv is gen_scenarios.py's (event_id, class, behaviour, kind, actor,
with a header line). The judgements come either from EVENTS.tsv (event_id,
class, reason[, final]: tab-separated, no header, \\N or empty for NULL, as
`psql -tA -F '<tab>'` or COPY ... TO STDOUT writes them) or straight from
PostgreSQL (psql with CONNINFO: SELECT event_id, class, reason, and whether final, FROM
mailbeacon.events). Event ids compare as 32 hex digits (the uuid column's
dashes dropped).

Prints:
  - "a person": positive = true class human or proxy; predicted positive =
    judged human or proxy. Precision, recall (and the counts behind them);
  - the same for "human" alone, against the issue's goal (precision >= 98 %,
    recall >= 95 %);
  - the confusion matrix, true class (rows) x judged class (columns), with
    (none) for an event loaded without a class and (missing) for one not
    in the table;
  - every behaviour with its accuracy, then the misjudged behaviours: true
    class, judged class, count and the reasons the classifier gave.
Exit status 0 when scored (whatever the figures), 2 on bad input.
"""
import argparse
import subprocess
import sys
from collections import Counter, defaultdict

CLASSES = ("human", "proxy", "prefetch", "scanner", "sender")
PERSON = {"human", "proxy"}


def norm_id(s):
    return s.replace("-", "").strip().lower()


def read_labels(path):
    labels = {}
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        if head[:3] != ["event_id", "class", "behaviour"]:
            raise SystemExit(f"score: {path}: not a labels file (header {head})")
        for n, line in enumerate(f, 2):
            p = line.rstrip("\n").split("\t")
            if len(p) < 3 or p[1] not in CLASSES:
                raise SystemExit(f"score: {path}:{n}: bad line")
            eid = norm_id(p[0])
            if eid in labels:
                raise SystemExit(f"score: {path}:{n}: event {p[0]} twice")
            labels[eid] = dict(cls=p[1], beh=p[2], kind=p[3] if len(p) > 3 else "", actor=p[4] if len(p) > 4 else "")
    return labels


def parse_rows(lines, where):
    judged = {}
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line:
            continue
        p = line.split("\t")
        if len(p) < 3:
            raise SystemExit(f"score: {where}:{n}: want event_id, class, reason[, final]")
        val = [None if x in ("\\N", "") else x for x in p]
        final = None
        if len(p) > 3 and val[3] is not None:
            final = val[3] in ("t", "true", "1")
        judged[norm_id(p[0])] = dict(cls=val[1], reason=val[2], final=final)
    return judged


def read_psql(conninfo):
    # finality: derived from mailbeacon.final_before() (the schema since the classifier), else a
    # column (a test's table), else none
    queries = ["SELECT event_id, class, reason, mailbeacon.is_final(class, occurred_at, mailbeacon.final_before()) "
               "FROM mailbeacon.events",
               "SELECT event_id, class, reason, final FROM mailbeacon.events",
               "SELECT event_id, class, reason FROM mailbeacon.events"]
    for i, q in enumerate(queries):
        try:
            out = subprocess.run(["psql", "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c",
                                  q], check=True, capture_output=True, text=True).stdout
            break
        except subprocess.CalledProcessError as e:
            if i == len(queries) - 1 or "does not exist" not in e.stderr:
                raise SystemExit(f"score: psql: {e.stderr.strip()}")
    # psql -tA prints NULL as an empty string: the same as parse_rows' empty
    return parse_rows(out.splitlines(), "psql")


def pct(a, b):
    return f"{100.0 * a / b:6.2f} %" if b else "     - "


def binary(labels, judged, pos_true, pos_pred):
    tp = fp = fn = 0
    for eid, l in labels.items():
        j = judged.get(eid)
        t = l["cls"] in pos_true
        p = j is not None and j["cls"] in pos_pred
        tp += t and p
        fp += (not t) and p
        fn += t and not p
    return tp, fp, fn


def judged_name(j):
    if j is None:
        return "(missing)"
    return j["cls"] or "(none)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--events")
    g.add_argument("--psql")
    ap.add_argument("--goal-precision", type=float, default=98.0)
    ap.add_argument("--goal-recall", type=float, default=95.0)
    ap.add_argument("--top", type=int, default=4, help="reasons shown per misjudged behaviour")
    a = ap.parse_args()

    labels = read_labels(a.labels)
    if a.events:
        with open(a.events) as f:
            judged = parse_rows(f, a.events)
    else:
        judged = read_psql(a.psql)
    extra = sum(1 for e in judged if e not in labels)
    missing = sum(1 for e in labels if e not in judged)
    notfinal = sum(1 for e in labels if e in judged and judged[e]["final"] is False)
    print(f"events labeled: {len(labels)}; in the table: {len(labels) - missing} "
          f"(missing {missing}, not final {notfinal}, unlabeled rows {extra})")
    print()

    for title, pos, goal in (("a person (human or proxy)", PERSON, False), ("human", {"human"}, True)):
        tp, fp, fn = binary(labels, judged, pos, pos)
        prec, rec = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)
        line = (f"{title:27s} precision {pct(tp, tp + fp)} ({tp}/{tp + fp})   "
                f"recall {pct(tp, tp + fn)} ({tp}/{tp + fn})")
        if goal:
            ok = 100 * prec >= a.goal_precision and 100 * rec >= a.goal_recall
            line += (f"   goal >= {a.goal_precision:g} % / >= {a.goal_recall:g} %: "
                     f"{'met' if ok else 'NOT met'}")
        print(line)
    # by kind, for the person figure: opens and clicks behave differently
    for kind in ("open", "click"):
        sub = {e: l for e, l in labels.items() if l["kind"] == kind}
        if not sub:
            continue
        tp, fp, fn = binary(sub, judged, PERSON, PERSON)
        tph, fph, fnh = binary(sub, judged, {"human"}, {"human"})
        print(f"  {kind + 's':7s} person    precision {pct(tp, tp + fp)}  recall {pct(tp, tp + fn)}"
              f"      human precision {pct(tph, tph + fph)}  recall {pct(tph, tph + fnh)}")
    print()

    cols = list(CLASSES) + ["(none)", "(missing)"]
    m = Counter((l["cls"], judged_name(judged.get(e))) for e, l in labels.items())
    cols = [c for c in cols if c in CLASSES or any(m[(t, c)] for t in CLASSES)]
    w = max(9, max(len(c) for c in cols) + 1)
    print("confusion matrix: true class (rows) x judged class (columns)")
    print(f"{'':10s}" + "".join(f"{c:>{w}s}" for c in cols) + f"{'total':>{w}s}{'correct':>{w + 2}s}")
    for t in CLASSES:
        n = sum(m[(t, c)] for c in cols)
        print(f"{t:10s}" + "".join(f"{m[(t, c)]:>{w}d}" for c in cols) + f"{n:>{w}d}" + f"{pct(m[(t, t)], n):>{w + 2}s}")
    tot = [sum(m[(t, c)] for t in CLASSES) for c in cols]
    print(f"{'total':10s}" + "".join(f"{x:>{w}d}" for x in tot) + f"{len(labels):>{w}d}"
          + f"{pct(sum(m[(t, t)] for t in CLASSES), len(labels)):>{w + 2}s}")
    print()

    beh = defaultdict(Counter)  # behaviour -> judged class -> n
    reasons = defaultdict(Counter)  # (behaviour, judged) -> reason -> n
    truec = {}
    for e, l in labels.items():
        j = judged.get(e)
        jn = judged_name(j)
        beh[l["beh"]][jn] += 1
        truec[l["beh"]] = l["cls"]
        reasons[(l["beh"], jn)][(j or {}).get("reason") or "-"] += 1
    print("every behaviour: judged classes (correct share)")
    bw = max(len(b) for b in beh) + 1
    for b in sorted(beh, key=lambda b: (CLASSES.index(truec[b]), -sum(beh[b].values()), b)):
        n = sum(beh[b].values())
        ok = beh[b][truec[b]]
        parts = ", ".join(f"{c} {k}" for c, k in beh[b].most_common())
        print(f"  {b:{bw}s} {truec[b]:9s} {n:5d}  {pct(ok, n)}  {parts}")
    print()

    rows = []
    for (b, jn), rs in reasons.items():
        if jn != truec[b]:
            rows.append((sum(rs.values()), b, truec[b], jn, rs))
    rows.sort(key=lambda r: (-r[0], r[1], r[3]))
    print("misjudged behaviours: true -> judged, count, the classifier's reasons")
    if not rows:
        print("  (none)")
    for n, b, t, jn, rs in rows:
        shown = ", ".join(f"{r} {k}" for r, k in rs.most_common(a.top))
        more = len(rs) - a.top
        if more > 0:
            shown += f", {more} more"
        print(f"  {n:5d}  {b:{bw}s} {t:>8s} -> {jn:9s}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
