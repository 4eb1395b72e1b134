#!/usr/bin/env bash
# Postfix with and without the mailbeacon milter, side by side in one run:
# a private Postfix (scripts/lib/postfix.sh: no TCP port, its listeners are
# Unix sockets, delivery over LMTP to smtp-sink on a Unix socket) with five
# smtpd listeners that differ only in
# smtpd_milters (none; the milter on a Unix socket; the milter over TCP; and,
# as the floor any milter pays, the milter with max_message_size = 1K, which
# receives every message and changes none; and the replacing floor,
# bench/mb-bench-milter-replace.c, on a Unix socket: a milter that agrees
# with Postfix on the same protocol as the milter and sends back the same
# header changes and the same new body, in the same chunks, read from files
# made once at start by mailbeacon-rewrite in pipe mode on the message (as
# the milter gets it, CRLF), with none of the milter's work: what Postfix
# spends taking a rewritten message back, which the pass-through floor
# never pays), relaying to smtp-sink. Throughput: smtp-source pushing
# 50 KB HTML messages (SESSIONS parallel sessions, MESSAGES each run).
# Added latency: one session sending messages one after another, per-message
# time p50/p99 with the milter minus without (LATENCY_MESSAGES, 1,500: a p99
# of 400 moved by several ms between runs; Postfix's daemons restart every
# 100 messages, max_use, on every listener). REPS interleaved repetitions.
# Cost: the whole machine's busy CPU time (/proc/stat) from the start of a
# throughput run until Postfix has delivered it all, per message: what a
# message costs Postfix, the sink, the source and the milter together; and
# the milter process's own CPU time (/proc/PID/stat) over the same span.
# The rewriting milter against the replacing floor is what rewriting itself
# costs; the replacing floor against the pass-through floor is what a
# replaced body and header changes cost Postfix.
# usage: bash bench/run-milter.sh [path/to/mailbeacon-rewrite [path/to/mb-bench-milter-replace]]   (as root)
#   (the second by default next to the first: BUILD/bench/mb-bench-milter-replace)
set -euo pipefail
cd "$(dirname "$0")/.."
rewrite=${1:-build/mailbeacon-rewrite}
[ -x "$rewrite" ] || { echo "no $rewrite: build first (cmake --build build)" >&2; exit 2; }
replace=${2:-$(dirname "$rewrite")/bench/mb-bench-milter-replace}
[ -x "$replace" ] || { echo "no $replace: build first (cmake --build build)" >&2; exit 2; }
reps=${REPS:-3} messages=${MESSAGES:-2000} sessions=${SESSIONS:-8} lat_n=${LATENCY_MESSAGES:-1500}
. scripts/lib/services.sh
. scripts/lib/postfix.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-milter.XXXXXX)
MB_PF=$MB_RUN/pf
mpid=
trap '[ -n "$mpid" ] && { kill $mpid 2>/dev/null || true; }; mb_postfix_stop; rm -rf "$MB_RUN"' EXIT

python3 bench/gen-mail50k.py "$MB_RUN/mail50k.eml"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN
chmod 755 "$MB_RUN"
# The replacing floor's changes: the milter's for this message, made once.
# The milter gets the message as smtp-source -F sends it, each line ended
# with CRLF and one empty line more at the end, with Postfix's Received:
# field on top (not here: no change touches it); the envelope is
# smtp-source's. Its new body as the milter sends it (repl.body), and its
# header changes as rewriter/milter.c's apply_header_changes finds them,
# old header block against new (repl.edits: "add NAME LEN" and "chg NAME
# INDEX LEN", each followed by the value's LEN bytes and a newline, and
# "del NAME INDEX"). Its tokens are not the milter's, their lengths are.
{ sed 's/$/\r/' "$MB_RUN/mail50k.eml"; printf '\r\n'; } > "$MB_RUN/mail50k.crlf"
"$rewrite" --sender sam@ourco.example --recipient dana@acme.example < "$MB_RUN/mail50k.crlf" > "$MB_RUN/rewritten.eml"
python3 - "$MB_RUN/mail50k.crlf" "$MB_RUN/rewritten.eml" "$MB_RUN/repl.body" "$MB_RUN/repl.edits" <<'PY'
import sys
def split(path): # the header block (each field with its CRLF) and the body
    m = open(path, "rb").read()
    i = m.find(b"\r\n\r\n")
    if i < 0: sys.exit("%s: no end of header" % path)
    return m[:i + 2], m[i + 4:]
def fields(h): # rewriter/milter.c's split_fields: (name, value after the colon less its CRLF)
    out, p = [], 0
    while p < len(h) and h[p:p + 1] not in (b"\r", b"\n"):
        colon = h.find(b":", p)
        if colon < 0: break
        end = p
        while True:
            nl = h.find(b"\n", end)
            if nl < 0:
                end = len(h)
                break
            end = nl + 1
            if end >= len(h) or h[end:end + 1] not in (b" ", b"\t"): break
        v = h[colon + 1:end]
        v = v[:-2] if v.endswith(b"\r\n") else v[:-1] if v.endswith(b"\n") else v
        out.append((h[p:colon], v))
        p = end
    return out
(oh, ob), (nh, nb) = split(sys.argv[1]), split(sys.argv[2])
if nb == ob: sys.exit("the rewriter left the message's body unchanged: nothing for the replacing floor to replace")
of, nf = fields(oh), fields(nh)
same_name = lambda a, b: a[0].lower() == b[0].lower()
same = lambda a, b: same_name(a, b) and a[1] == b[1]
nth = lambda f, i: 1 + sum(same_name(f[k], f[i]) for k in range(i)) # its index among the fields of its name
edits, i, j = [], 0, 0
while i < len(of) or j < len(nf): # apply_header_changes, step by step
    if i < len(of) and j < len(nf) and same(of[i], nf[j]):
        i, j = i + 1, j + 1
    elif i < len(of) and j < len(nf) and same_name(of[i], nf[j]):
        edits.append(b"chg %s %d %d\n%s\n" % (of[i][0], nth(of, i), len(nf[j][1]), nf[j][1]))
        i, j = i + 1, j + 1
    elif i < len(of) and (j == len(nf) or (i + 1 < len(of) and same(of[i + 1], nf[j]))):
        edits.append(b"del %s %d\n" % (of[i][0], nth(of, i)))
        i += 1
    else:
        edits.append(b"add %s %d\n%s\n" % (nf[j][0], len(nf[j][1]), nf[j][1]))
        j += 1
open(sys.argv[3], "wb").write(nb)
open(sys.argv[4], "wb").write(b"".join(edits))
print("replacing floor: a body of %d bytes (the message's: %d), %d header changes" % (len(nb), len(ob), len(edits)),
      file=sys.stderr)
PY
# the milter over TCP on any free port (inet:0), which it says in its log
"$rewrite" --milter "inet:0@127.0.0.1" 2> "$MB_RUN/milter-tcp.log" &
mpid=$!
mport=$(mb_wait_port "$mpid" "$MB_RUN/milter-tcp.log" milter)
"$rewrite" --milter "unix:$MB_RUN/milter.sock" 2> "$MB_RUN/milter.log" &
mpid="$mpid $!"
MAILBEACON_MAX_MESSAGE_SIZE=1K "$rewrite" --milter "unix:$MB_RUN/noop.sock" 2> "$MB_RUN/milter-noop.log" &
mpid="$mpid $!"
"$replace" "unix:$MB_RUN/repl.sock" "$MB_RUN/repl.body" "$MB_RUN/repl.edits" 2> "$MB_RUN/milter-repl.log" &
mpid="$mpid $!"
for _ in $(seq 1 100); do
  [ -S "$MB_RUN/milter.sock" ] && [ -S "$MB_RUN/noop.sock" ] && [ -S "$MB_RUN/repl.sock" ] && break
  sleep 0.05
done
# sockets are 0660: Postfix reaches them through its group
chgrp postfix "$MB_RUN/milter.sock" "$MB_RUN/noop.sock" "$MB_RUN/repl.sock"
mb_postfix_init
mb_postfix_smtpd mbmilter "-o smtpd_milters=unix:$MB_RUN/milter.sock"
mb_postfix_smtpd mbtcp "-o smtpd_milters=inet:127.0.0.1:$mport"
mb_postfix_smtpd mbnoop "-o smtpd_milters=unix:$MB_RUN/noop.sock"
mb_postfix_smtpd mbrepl "-o smtpd_milters=unix:$MB_RUN/repl.sock"
mb_postfix_main "milter_default_action = accept" "milter_protocol = 6" "default_process_limit = 100"
mb_postfix_start
# the five listeners' sockets
plain=$(mb_postfix_socket) milter=$(mb_postfix_socket mbmilter) tcp=$(mb_postfix_socket mbtcp) noop=$(mb_postfix_socket mbnoop)
repl=$(mb_postfix_socket mbrepl)
delivered=0
drain() { mb_postfix_wait_sent "$delivered" 600; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # jiffies, all cores
ptime() { awk '{print $14 + $15}' "/proc/$1/stat"; } # ptime PID: its user + system jiffies
milter_of() { # milter_of SOCKET: the pid of the milter behind it, none for Postfix alone
  case $1 in "$milter") echo "$mpid" | awk '{print $2}' ;; "$tcp") echo "$mpid" | awk '{print $1}' ;;
    "$noop") echo "$mpid" | awk '{print $3}' ;; "$repl") echo "$mpid" | awk '{print $4}' ;; esac
}
run_source() { # run_source SOCKET COUNT: prints "messages/s:busy-CPU-ms:milter-CPU-ms" (per message)
  local t0 t1 b0 b1 p m0=0 m1=0
  p=$(milter_of "$1")
  [ -n "$p" ] && m0=$(ptime "$p")
  b0=$(busy)
  t0=$(date +%s.%N)
  smtp-source -s "$sessions" -m "$2" -F "$MB_RUN/mail50k.eml" -f sam@ourco.example -t dana@acme.example \
    "unix:$1"
  t1=$(date +%s.%N)
  delivered=$((delivered + $2))
  drain
  b1=$(busy)
  [ -n "$p" ] && m1=$(ptime "$p")
  python3 -c "import os; t = 1000.0 / os.sysconf('SC_CLK_TCK') / $2; print('%.1f:%.3f:%.3f' % ($2 / ($t1 - $t0), ($b1 - $b0) * t, ($m1 - $m0) * t))"
}
latency() { # latency SOCKET FILE N: bench/latency.py, its SMTP session on the Unix socket
  python3 - "$@" <<'PY'
import runpy, smtplib, socket, sys
path = sys.argv[1]
class UnixSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s
smtplib.SMTP = UnixSMTP
sys.argv = ["bench/latency.py", "0"] + sys.argv[2:]
runpy.run_path("bench/latency.py", run_name="__main__")
PY
}
if [ -n "${PERF:-}" ]; then
  mp=$(echo $mpid | awk '{print $2}')
  perf record ${PERF_G:--g} -o "$MB_RUN/perf.data" -p "$mp" -- sleep 8 >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5; run_source "$milter" 1000 >/dev/null; wait $perf_pid
  perf report -i "$MB_RUN/perf.data" --no-children ${PERF_REPORT:--g none --sort dso,symbol} 2>/dev/null | grep -v "^#" | grep -v "^$" | head -${PERF_LINES:-40}
  exit 0
fi
echo "warm-up" >&2
run_source "$plain" 100 >/dev/null
run_source "$milter" 100 >/dev/null
grep -q ": info: [0-9A-F]*: rewritten: message" "$MB_RUN/milter.log" || { echo "the milter rewrote nothing" >&2; exit 1; }

run_source "$tcp" 20 >/dev/null
run_source "$noop" 20 >/dev/null
run_source "$repl" 20 >/dev/null
# the replacing floor's messages were queued as the milter's: Postfix took
# its body (the size qmgr logs is the queue file's, after the milter)
python3 - "$MB_PF/maillog" "$MB_RUN/milter.log" "$MB_RUN/milter-repl.log" <<'PY'
import re, sys
size = dict(re.findall(r"qmgr\[\d+\]: ([0-9A-F]+): from=<[^>]*>, size=(\d+)", open(sys.argv[1]).read()))
def sizes(log, what):
    return sorted({size.get(q, "none") for q in re.findall(r": info: ([0-9A-F]+): %s:" % what, open(log).read())})
rw, rp = sizes(sys.argv[2], "rewritten"), sizes(sys.argv[3], "replaced")
if not rp or rp != rw:
    sys.exit("the replacing floor's messages were queued with sizes %s, the rewriting milter's with %s" % (rp, rw))
print("queued size of a message through the rewriting milter and the replacing floor: %s bytes" % ", ".join(rp),
      file=sys.stderr)
PY
declare -a rp rm rt rn rr lp lm lt ln lr
for r in $(seq 1 "$reps"); do
  echo "rep $r/$reps: throughput" >&2
  rp+=("$(run_source "$plain" "$messages")")
  rm+=("$(run_source "$milter" "$messages")")
  rt+=("$(run_source "$tcp" "$messages")")
  rn+=("$(run_source "$noop" "$messages")")
  rr+=("$(run_source "$repl" "$messages")")
  echo "rep $r/$reps: latency" >&2
  for pair in "plain lp" "milter lm" "tcp lt" "noop ln" "repl lr"; do
    set -- $pair
    v=$(latency "${!1}" "$MB_RUN/mail50k.eml" "$lat_n")
    eval "$2+=('$v')"
    delivered=$((delivered + lat_n)); drain
  done
done
rewritten=$(cat "$MB_RUN/milter.log" "$MB_RUN/milter-tcp.log" | grep -c ": info: [0-9A-F]*: rewritten: message")
replaced=$(grep -c ": info: [0-9A-F]*: replaced: " "$MB_RUN/milter-repl.log")
python3 - "$rewritten" "$replaced" "${rp[*]}" "${rm[*]}" "${rt[*]}" "${rn[*]}" "${rr[*]}" \
  "${lp[*]}" "${lm[*]}" "${lt[*]}" "${ln[*]}" "${lr[*]}" <<'PY'
import json, statistics, sys
rewritten, replaced = int(sys.argv[1]), int(sys.argv[2])
rate = [[float(x.split(":")[0]) for x in a.split()] for a in sys.argv[3:8]]
cpu = [[float(x.split(":")[1]) for x in a.split()] for a in sys.argv[3:8]]
lat = [[json.loads(x) for x in a.replace("} {", "}\n{").split("\n")] for a in sys.argv[8:13]]
med = statistics.median
names = ["without milter", "milter, Unix socket", "milter, TCP", "pass-through milter (floor)",
         "replacing milter (floor)"]
print("| | " + " | ".join(names) + " |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
print("| messages/s (median of %d) | %s |" % (len(rate[0]), " | ".join("%.1f" % med(r) for r in rate)))
print("| ratio to without | 1.00× | " + " | ".join("%.2f×" % (med(r) / med(rate[0])) for r in rate[1:]) + " |")
print("| busy CPU per message, whole machine (ms) | %s |" % " | ".join("%.2f" % med(c) for c in cpu))
print("| CPU ratio (without / with) | 1.00× | " + " | ".join("%.2f×" % (med(cpu[0]) / med(c)) for c in cpu[1:]) + " |")
mcpu = [[float(x.split(":")[2]) for x in a.split()] for a in sys.argv[3:8]]
print("| CPU per message, the milter process (ms) | — | " + " | ".join("%.3f" % med(c) for c in mcpu[1:]) + " |")
for k in ("p50_ms", "p99_ms"):
    v = [med([x[k] for x in l]) for l in lat]
    print("| latency %s (ms) | %.2f | " % (k[:3], v[0]) + " | ".join("%.2f (+%.2f)" % (x, x - v[0]) for x in v[1:]) + " |")
print()
print("Against the floor: the rewriting milter (Unix socket) gives %.2f× its messages/s; rewriting adds %.2f ms of "
      "the whole machine's CPU per message, %.3f ms of it in the milter process; p99 latency %+.2f ms over "
      "Postfix alone (%+.2f over the floor)."
      % (med(rate[1]) / med(rate[3]), med(cpu[1]) - med(cpu[3]), med(mcpu[1]) - med(mcpu[3]),
         med([x["p99_ms"] for x in lat[1]]) - med([x["p99_ms"] for x in lat[0]]),
         med([x["p99_ms"] for x in lat[1]]) - med([x["p99_ms"] for x in lat[3]])))
print()
print("Against the replacing floor: the rewriting milter (Unix socket) gives %.2f× its messages/s; rewriting adds "
      "%.2f ms of the whole machine's CPU per message over it, %.3f ms of it in the milter process; p99 latency "
      "%+.2f ms over it."
      % (med(rate[1]) / med(rate[4]), med(cpu[1]) - med(cpu[4]), med(mcpu[1]) - med(mcpu[4]),
         med([x["p99_ms"] for x in lat[1]]) - med([x["p99_ms"] for x in lat[4]])))
print("The replacing floor gives %.2f× the pass-through floor's messages/s: taking the new body and header changes "
      "back costs %.2f ms of the whole machine's CPU per message (%.3f ms of it in the milter process)."
      % (med(rate[4]) / med(rate[3]), med(cpu[4]) - med(cpu[3]), med(mcpu[4]) - med(mcpu[3])))
print()
print("runs (messages/s): %s; CPU ms per message: %s; the milter's: %s; messages rewritten by the milters: %d; "
      "replaced by the replacing floor: %d" % (rate, cpu, mcpu, rewritten, replaced))
PY
