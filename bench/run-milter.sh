#!/usr/bin/env bash
# Postfix with and without the mailbeacon milter, side by side in one run:
# a private Postfix (scripts/lib/postfix.sh: no TCP port, its listeners are
# Unix sockets, delivery over LMTP to smtp-sink on a Unix socket) with four
# smtpd listeners that differ only in
# smtpd_milters (none; the milter on a Unix socket; the milter over TCP; and,
# as the floor any milter pays, the milter with max_message_size = 1K, which
# receives every message and changes none), relaying to smtp-sink. Throughput: smtp-source pushing
# 50 KB HTML messages (SESSIONS parallel sessions, MESSAGES each run).
# Added latency: one session sending messages one after another, per-message
# time p50/p99 with the milter minus without. REPS interleaved repetitions.
# Cost: the whole machine's busy CPU time (/proc/stat) from the start of a
# throughput run until Postfix has delivered it all, per message: what a
# message costs Postfix, the sink, the source and the milter together; and
# the milter process's own CPU time (/proc/PID/stat) over the same span.
# usage: bash bench/run-milter.sh [path/to/mailbeacon-rewrite]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
rewrite=${1:-build/mailbeacon-rewrite}
[ -x "$rewrite" ] || { echo "no $rewrite: build first (cmake --build build)" >&2; exit 2; }
reps=${REPS:-3} messages=${MESSAGES:-2000} sessions=${SESSIONS:-8} lat_n=${LATENCY_MESSAGES:-400}
. scripts/lib/services.sh
. scripts/lib/postfix.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-milter.XXXXXX)
MB_PF=$MB_RUN/pf
mpid=
trap '[ -n "$mpid" ] && kill $mpid 2>/dev/null; mb_postfix_stop; rm -rf "$MB_RUN"' EXIT

python3 bench/gen-mail50k.py "$MB_RUN/mail50k.eml"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN
chmod 755 "$MB_RUN"
# the milter over TCP on any free port (inet:0), which it says in its log
"$rewrite" --milter "inet:0@127.0.0.1" 2> "$MB_RUN/milter-tcp.log" &
mpid=$!
mport=$(mb_wait_port "$mpid" "$MB_RUN/milter-tcp.log" milter)
"$rewrite" --milter "unix:$MB_RUN/milter.sock" 2> "$MB_RUN/milter.log" &
mpid="$mpid $!"
MAILBEACON_MAX_MESSAGE_SIZE=1K "$rewrite" --milter "unix:$MB_RUN/noop.sock" 2> "$MB_RUN/milter-noop.log" &
mpid="$mpid $!"
for _ in $(seq 1 100); do [ -S "$MB_RUN/milter.sock" ] && [ -S "$MB_RUN/noop.sock" ] && break; sleep 0.05; done
chgrp postfix "$MB_RUN/milter.sock" "$MB_RUN/noop.sock" # sockets are 0660: Postfix reaches them through its group
mb_postfix_init
mb_postfix_smtpd mbmilter "-o smtpd_milters=unix:$MB_RUN/milter.sock"
mb_postfix_smtpd mbtcp "-o smtpd_milters=inet:127.0.0.1:$mport"
mb_postfix_smtpd mbnoop "-o smtpd_milters=unix:$MB_RUN/noop.sock"
mb_postfix_main "milter_default_action = accept" "milter_protocol = 6" "default_process_limit = 100"
mb_postfix_start
# the four listeners' sockets
plain=$(mb_postfix_socket) milter=$(mb_postfix_socket mbmilter) tcp=$(mb_postfix_socket mbtcp) noop=$(mb_postfix_socket mbnoop)
delivered=0
drain() { mb_postfix_wait_sent "$delivered" 600; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # jiffies, all cores
ptime() { awk '{print $14 + $15}' "/proc/$1/stat"; } # ptime PID: its user + system jiffies
milter_of() { # milter_of SOCKET: the pid of the milter behind it, none for Postfix alone
  case $1 in "$milter") echo "$mpid" | awk '{print $2}' ;; "$tcp") echo "$mpid" | awk '{print $1}' ;;
    "$noop") echo "$mpid" | awk '{print $3}' ;; esac
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
declare -a rp rm rt rn lp lm lt ln
for r in $(seq 1 "$reps"); do
  echo "rep $r/$reps: throughput" >&2
  rp+=("$(run_source "$plain" "$messages")")
  rm+=("$(run_source "$milter" "$messages")")
  rt+=("$(run_source "$tcp" "$messages")")
  rn+=("$(run_source "$noop" "$messages")")
  echo "rep $r/$reps: latency" >&2
  for pair in "plain lp" "milter lm" "tcp lt" "noop ln"; do
    set -- $pair
    v=$(latency "${!1}" "$MB_RUN/mail50k.eml" "$lat_n")
    eval "$2+=('$v')"
    delivered=$((delivered + lat_n)); drain
  done
done
rewritten=$(cat "$MB_RUN/milter.log" "$MB_RUN/milter-tcp.log" | grep -c ": info: [0-9A-F]*: rewritten: message")
python3 - "$rewritten" "${rp[*]}" "${rm[*]}" "${rt[*]}" "${rn[*]}" "${lp[*]}" "${lm[*]}" "${lt[*]}" "${ln[*]}" <<'PY'
import json, statistics, sys
rewritten = int(sys.argv[1])
rate = [[float(x.split(":")[0]) for x in a.split()] for a in sys.argv[2:6]]
cpu = [[float(x.split(":")[1]) for x in a.split()] for a in sys.argv[2:6]]
lat = [[json.loads(x) for x in a.replace("} {", "}\n{").split("\n")] for a in sys.argv[6:10]]
med = statistics.median
names = ["without milter", "milter, Unix socket", "milter, TCP", "pass-through milter (floor)"]
print("| | " + " | ".join(names) + " |")
print("| --- | ---: | ---: | ---: | ---: |")
print("| messages/s (median of %d) | %s |" % (len(rate[0]), " | ".join("%.1f" % med(r) for r in rate)))
print("| ratio to without | 1.00× | " + " | ".join("%.2f×" % (med(r) / med(rate[0])) for r in rate[1:]) + " |")
print("| busy CPU per message, whole machine (ms) | %s |" % " | ".join("%.2f" % med(c) for c in cpu))
print("| CPU ratio (without / with) | 1.00× | " + " | ".join("%.2f×" % (med(cpu[0]) / med(c)) for c in cpu[1:]) + " |")
mcpu = [[float(x.split(":")[2]) for x in a.split()] for a in sys.argv[2:6]]
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
print("runs (messages/s): %s; CPU ms per message: %s; the milter's: %s; messages rewritten by the milters: %d"
      % (rate, cpu, mcpu, rewritten))
PY
