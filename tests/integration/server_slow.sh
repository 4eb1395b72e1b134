#!/usr/bin/env bash
# mailbeacon-server against slow clients (issue 11, item 1), under a lowered
# file descriptor limit (soft 256, hard 1024: the server raises the soft
# limit and derives its connection limit from it):
#   1. one address opens 300 connections that never finish a request: the
#      cap per address (100 here) refuses the rest at once; the deadline for
#      a request's headers (3 s here) closes the ones it took, although they
#      keep sending a byte a second, and those whose body trickles; a
#      trusted proxy's address is not capped;
#   2. 3,000 such connections from 30 addresses that reconnect when closed,
#      more than the connection limit: a normal client keeps getting its
#      pixel and /healthz keeps answering, the server sheds the connections
#      that waited longest, does not spin (CPU time well under the wall
#      time: two threads spinning would take twice it; accepting and shedding
#      about 10,000 connections a second took 0.4 of it here) and its log
#      stays small (repeated lines limited).
# usage: server_slow.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-slow.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$MB_RUN/server.log" >&2 || true; exit 1; }
ulimit -n 8192 2>/dev/null || true # for the slow clients
[ "$(ulimit -n)" -ge 4096 ] || { echo "FAIL: the slow clients need 4096 open files, the hard limit is $(ulimit -Hn)" >&2; exit 1; }

mb_redis_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
  MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_HTTP_THREADS=2 \
  MAILBEACON_MAX_CONNECTIONS_PER_IP=100 MAILBEACON_REQUEST_HEADER_TIMEOUT_MS=3000 \
  MAILBEACON_TRUSTED_PROXIES=127.0.2.1
(ulimit -Sn 256 && ulimit -Hn 1024 && exec "$server") > "$MB_RUN/server.log" 2>&1 &
spid=$!
port=$(mb_wait_port $spid "$MB_RUN/server.log" listen 15) &&
  aport=$(mb_wait_port $spid "$MB_RUN/server.log" admin 15) || fail "server did not start"
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
pixel="/o/$(python3 "$here/server_check.py" token "$MB_RUN/keys" o "$(printf '%032x' 4242)" 1 0).gif"
cpu() { awk '{print $14 + $15}' "/proc/$spid/stat"; } # utime + stime, in clock ticks
json() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

grep -q "file descriptor limit raised from 256 to 1024" "$MB_RUN/server.log" || fail "soft limit not raised"
limit=$(metric mailbeacon_connections_limit)
# 1024 - 64 (reserve) - 64 (admin) - 2 per thread = 892, less 10 per thread (accept bursts), less 1/9 (headroom)
[ "$limit" = 775 ] || fail "connection limit $limit, expected 775 from 1024 file descriptors"

# 1. one address over its cap; the deadline for a request's headers
r=$(python3 "$here/slow_clients.py" "$port" "$aport" "$pixel" 1.5 1 300) || fail "slow_clients.py"
echo "one address, 300 slow connections: $r"
[ "$(json "$r" refused_fast)" = 200 ] || fail "refused at once: $(json "$r" refused_fast), expected 200 over the cap"
[ "$(metric 'mailbeacon_connections_closed_total{reason="per_ip_limit"}')" = 200 ] || fail "per_ip_limit count"
[ "$(json "$r" normal_failed)" = 0 ] || fail "normal requests failed: $r"
# the 100 left open are closed by the deadline before the next 100 come
for _ in $(seq 1 100); do [ "$(metric mailbeacon_connections)" = 0 ] && break; sleep 0.1; done
r=$(python3 "$here/slow_clients.py" "$port" "$aport" "$pixel" 6 1 100) || fail "slow_clients.py"
echo "100 slow connections for 6 s: $r"
[ "$(json "$r" still_open)" = 0 ] || fail "slow connections outlived the 3 s deadline: $r"
[ "$(json "$r" refused_fast)" = 0 ] || fail "refused below the cap: $r"
late=$(metric 'mailbeacon_connections_closed_total{reason="header_timeout"}')
[ "$late" -ge 100 ] || fail "header_timeout count $late"
# a whole request has the deadline, its body too: headers in at once, then a byte of body a second
python3 - "$port" <<'PY' || fail "a request whose body trickles outlived the 3 s deadline"
import socket, sys, time
socks = []
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.3.1", 0))
    s.sendall(b"GET /o/x.gif HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
    s.setblocking(False)
    socks.append(s)
end, open_ = time.monotonic() + 6, set(range(5))
while open_ and time.monotonic() < end:
    time.sleep(1)
    for i in list(open_):
        try:
            socks[i].send(b"x")
            if socks[i].recv(1) == b"": open_.discard(i)
        except BlockingIOError:
            pass
        except OSError:
            open_.discard(i)
sys.exit(1 if open_ else 0)
PY
# a trusted proxy (127.0.2.1) is not capped
python3 - "$port" <<'PY' || fail "a trusted proxy was capped"
import socket, sys, time
socks = []
for _ in range(150):
    s = socket.socket(); s.bind(("127.0.2.1", 0)); s.connect(("127.0.0.1", int(sys.argv[1]))); socks.append(s)
time.sleep(0.5)
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"": sys.exit(1)
    except BlockingIOError:
        pass
PY

# 2. 3,000 slow connections from 30 addresses, more than the limit
size0=$(mb_log_size "$MB_RUN/server.log")
cpu0=$(cpu) t0=$(date +%s.%N)
r=$(python3 "$here/slow_clients.py" "$port" "$aport" "$pixel" 10 30 100 reconnect) || fail "slow_clients.py"
cpu1=$(cpu) t1=$(date +%s.%N)
echo "3,000 slow connections from 30 addresses, reconnecting, for 10 s: $r"
shed=$(metric 'mailbeacon_connections_closed_total{reason="at_limit"}')
logged=$(($(mb_log_size "$MB_RUN/server.log") - size0))
read -r cpu_s wall_s <<< "$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
  'BEGIN {printf "%.2f %.2f", (b - a) / hz, t1 - t0}')"
echo "shed at the limit: $shed; server CPU $cpu_s s in $wall_s s; log grew $logged bytes"
# a normal client's connection is shed only when its request comes in later than about 400 new
# connections on its thread (tens of ms here): a rare descheduling on a busy machine, not a rule
ok=$(json "$r" normal_ok) failed=$(json "$r" normal_failed)
[ "$ok" -ge 20 ] && [ $((failed * 20)) -le "$ok" ] || fail "normal requests under the flood: $r"
[ "$(json "$r" health_failed)" = 0 ] || fail "/healthz failed under the flood: $r"
[ "$shed" -gt 0 ] || fail "nothing shed at the limit"
awk -v c="$cpu_s" -v w="$wall_s" 'BEGIN {exit !(c < 1.0 * w)}' || fail "server CPU $cpu_s s in $wall_s s: spinning?"
[ "$logged" -lt 20000 ] || fail "log grew $logged bytes: $(tail -5 "$MB_RUN/server.log")"
! grep -q "Too many open files" "$MB_RUN/server.log" || fail "ran out of file descriptors"
curl -sf "http://127.0.0.1:$port$pixel" -o /dev/null || fail "no pixel after the flood"
kill -TERM $spid
wait $spid || fail "server exit status $?"
spid=
echo "server_slow: ok"
