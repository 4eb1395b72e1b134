#!/usr/bin/env bash
# The milter on its own: the protocol exchange (milter_protocol.py), clean
# shutdown on SIGTERM, and the Unix socket removed on the way out; with
# Redis, the sent records carry the SMTP client's address (client_ip) and
# the rep made an address from the SASL login (rep_map).
# usage: milter.sh MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
rewrite=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-milter.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; mb_redis_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$MB_RUN/milter.log" >&2 || true; exit 1; }

"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys \
  MAILBEACON_NEVER_TRACK=ourco.example MAILBEACON_SPOOL_DIR=$MB_RUN

wait_stopped() { # wait_stopped PID: libmilter polls its stop flag, allow 10 s
  for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}

# 1. TCP socket (any free port: inet:0, read back from its log): the protocol test, then SIGTERM
"$rewrite" --milter "inet:0@127.0.0.1" 2> "$MB_RUN/milter.log" &
pid=$!
port=$(mb_wait_port $pid "$MB_RUN/milter.log" milter) || fail "milter did not start on TCP"
python3 "$here/milter_protocol.py" "$port" "$MB_RUN/keys" "$rewrite" "$data" || fail "protocol test"
grep -q "TESTQ1: rewritten" "$MB_RUN/milter.log" || fail "no log line with the queue id"
grep -q "login 'jdoe' is not an address" "$MB_RUN/milter.log" || fail "no word of the unmapped login"
kill -TERM $pid
wait_stopped $pid || fail "milter did not stop on SIGTERM"
wait $pid || fail "milter exited non-zero"
grep -q "milter stopped: .* rewritten" "$MB_RUN/milter.log" || fail "no shutdown summary"

# 2. Unix socket: created, the protocol test again (no replies before end of
#    message there), then removed on SIGTERM; the sent records go to Redis
#    with the SMTP client's address
mb_redis_start
sock=$MB_RUN/milter.sock
MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_REP_MAP=JDoe=jane.doe@ourco.example "$rewrite" --milter "unix:$sock" \
  2> "$MB_RUN/milter.log" &
pid=$!
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "socket not created"
MB_MILTER_CLIENT=192.0.2.33 python3 "$here/milter_protocol.py" "$sock" "$MB_RUN/keys" "$rewrite" "$data" ||
  fail "protocol test (Unix socket)"
# the reps of the sent records: the login when it is an address, a bare one by rep_map;
# without a mapping the envelope sender (the TCP run above logged why)
reps=$(mb_redis_cli --raw XRANGE mailbeacon:events - + | awk 'prev=="rep"{print} {prev=$0}' | LC_ALL=C sort -u | tr '\n' ' ')
[ "$reps" = "jane.doe@ourco.example sam.ortega@ourco.example sam@ourco.example " ] || fail "sent records' reps: $reps"
ips=$(mb_redis_cli --raw XRANGE mailbeacon:events - + | awk 'prev=="client_ip"{print} {prev=$0}' | sort | uniq -c)
[ "$(echo "$ips" | wc -l)" = 1 ] && [ "$(echo "$ips" | awk '{print $2}')" = 192.0.2.33 ] &&
  [ "$(echo "$ips" | awk '{print $1}')" -ge 5 ] || fail "sent records' client_ip: $ips"
kill -TERM $pid
wait_stopped $pid || fail "milter did not stop on SIGTERM"
wait $pid || fail "milter exited non-zero"
pid=
[ ! -e "$sock" ] || fail "socket file left behind"

# 3. a spool_dir it cannot make, with redis set: it refuses to start (sent records would be
#    lost while Redis is down) and says why
if MAILBEACON_REDIS=unix:$MB_RUN/no-redis.sock MAILBEACON_SPOOL_DIR=$MB_RUN/no/such/spool \
  "$rewrite" --milter "unix:$sock" 2> "$MB_RUN/milter.log"; then
  fail "the milter started without a spool for sent records"
fi
grep -q "cannot create spool_dir $MB_RUN/no/such/spool" "$MB_RUN/milter.log" || fail "no reason given"
[ ! -e "$sock" ] || fail "socket made though it refused to start"
echo "milter: 3 passed, 0 failed"
