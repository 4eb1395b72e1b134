#!/usr/bin/env bash
# Every role started from ONE configuration file on one host, as the systemd
# units run them (mailbeacon-server --config FILE --role edge, --role batcher,
# --role api; mailbeacon-rewrite --config FILE --milter SOCKET), each told
# where systemd listens for readiness (NOTIFY_SOCKET: the units are
# Type=notify). The file sets no admin listener, so each takes its default
# (127.0.0.1:9090, 9091, 9092) and they must not collide. Checked:
# - the batcher started before `migrate` (as compose starts them side by side)
#   says so, waits, and loads once the schema is current;
# - each program says READY=1 only when its listeners answer; a reload
#   (SIGHUP; the milter's SIGUSR1) is RELOADING=1 then READY=1; SIGTERM gives
#   STOPPING=1 and exit 0 with the shutdown summary;
# - the milter's socket, in a directory of another group with the
#   set-group-ID bit (as /var/spool/postfix/mailbeacon of group postfix), is
#   of that group and mode 0660: Postfix can reach it;
# - a hit at the edge is loaded by the batcher into PostgreSQL.
#
# The fixed default ports are used inside a private network namespace
# (unshare --net, only its own loopback), where nothing else on the machine
# can hold them; Redis and PostgreSQL listen on Unix sockets, which reach into
# it. Without one (not root, or unshare refused), the file sets port 0 for
# every listener instead and the test says so.
# usage: roles.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)

# into a private network namespace, once
netns=${MB_ROLES_NETNS:-}
if [ -z "$netns" ]; then
  if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && unshare --net true 2>/dev/null; then
    exec unshare --net env MB_ROLES_NETNS=yes bash "$0" "$@"
  fi
  netns=no
fi
if [ "$netns" = yes ]; then
  ip link set lo up
fi

. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-roles.XXXXXX)
epid= bpid= apid= mpid= npid=
cleanup() {
  for p in $epid $bpid $apid $mpid $npid; do kill -9 "$p" 2>/dev/null || true; done
  mb_redis_stop
  mb_pg_stop
  rm -rf "$MB_RUN"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in edge batcher api milter; do
    [ -f "$MB_RUN/$f.log" ] && { echo "--- $f" >&2; tail -15 "$MB_RUN/$f.log" >&2; }
    [ -f "$MB_RUN/notify-$f.log" ] && { echo "--- $f told systemd" >&2; cat "$MB_RUN/notify-$f.log" >&2; }
  done
  exit 1
}
passed=0
ok() { passed=$((passed + 1)); echo "ok $*"; }

mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
mkdir -p "$MB_RUN/spool"
conf=$MB_RUN/mailbeacon.conf
cat > "$conf" <<CONF
# one file for both units (no admin_listen, no batcher_admin_listen: their defaults)
key_file = $MB_RUN/keys
redis = $(mb_redis_addr)
spool_dir = $MB_RUN/spool
postgres = $(mb_pg_conninfo)
rep_listen = 127.0.0.1:8443
base_url = https://t.roles.test
edge_id = roles-edge
batch_wait_ms = 20
CONF
if [ "$netns" = yes ]; then
  echo "in a private network namespace: admin listeners on their defaults, public listener on its default"
  want_eport=9090 want_bport=9091 want_aport=9092
else
  echo "NOTE: no private network namespace (not root, or unshare --net refused): every listener on port 0" \
    "in the config file instead of the defaults 9090/9091; the defaults are not checked"
  printf 'listen = 127.0.0.1:0\nadmin_listen = 127.0.0.1:0\nbatcher_admin_listen = 127.0.0.1:0\n' >> "$conf"
  printf 'api_admin_listen = 127.0.0.1:0\nrep_listen = 127.0.0.1:0\n' >> "$conf"
  want_eport= want_bport= want_aport=
fi
# the environment must not override the file
for v in $(env | sed -n 's/^\(MAILBEACON_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

# what each program tells systemd: a datagram socket per program, as systemd
# gives NOTIFY_SOCKET; each datagram one line of $MB_RUN/notify-NAME.log
python3 - "$MB_RUN" edge batcher api milter <<'PY' &
import os, select, socket, sys
d, names = sys.argv[1], sys.argv[2:]
socks = {}
for n in names:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(f"{d}/notify-{n}.tmp")
    os.rename(f"{d}/notify-{n}.tmp", f"{d}/notify-{n}")
    socks[s] = n
while True:
    for s in select.select(list(socks), [], [])[0]:
        msg = s.recv(4096).decode().replace("\n", " ")
        with open(f"{d}/notify-{socks[s]}.log", "a") as f:
            f.write(msg + "\n")
PY
npid=$!
for n in edge batcher api milter; do
  for _ in $(seq 1 100); do [ -S "$MB_RUN/notify-$n" ] && break; sleep 0.05; done
  [ -S "$MB_RUN/notify-$n" ] || fail "the notify socket for $n was not made"
done
told() { # told NAME N WORD: the Nth datagram from NAME that starts with WORD came within 30 s
  local i
  for ((i = 0; i < 600; i++)); do
    [ "$(grep -c "^$3" "$MB_RUN/notify-$1.log" 2>/dev/null)" -ge "$2" ] && return 0
    sleep 0.05
  done
  fail "$1 did not tell systemd $3 (#$2)"
}
run() { # run NAME ARGS...: a program as its unit runs it, with its own NOTIFY_SOCKET
  local name=$1
  shift
  NOTIFY_SOCKET=$MB_RUN/notify-$name "$@" 2> "$MB_RUN/$name.log" &
}

# 1. the batcher before migrate: it waits for the schema (not exiting), then loads
run batcher "$server" --config "$conf" --role batcher
bpid=$!
bport=$(mb_wait_port $bpid "$MB_RUN/batcher.log" admin) || fail "the batcher did not start"
told batcher 1 READY=1
h=$(curl -s "http://127.0.0.1:$bport/healthz")
healthy() { # healthy PYTHON_CONDITION: the /healthz answer in $h meets it
  python3 -c "import json, sys; h = json.loads(sys.argv[1]); sys.exit(0 if $1 else 1)" "$h" 2>/dev/null
}
for _ in $(seq 1 200); do grep -q "migrations to apply" "$MB_RUN/batcher.log" && break; sleep 0.05; done
grep -q "the PostgreSQL schema is not current ([0-9]* migrations to apply)" "$MB_RUN/batcher.log" ||
  fail "the batcher did not say the schema is not current"
h=$(curl -s "http://127.0.0.1:$bport/healthz")
healthy 'h["batcher"]["postgres"] == "down"' || fail "batcher /healthz before migrate: $h"
kill -0 "$bpid" || fail "the batcher exited on a schema not current"
"$server" --config "$conf" migrate > "$MB_RUN/migrate.log" 2>&1 || fail "migrate: $(cat "$MB_RUN/migrate.log")"
for _ in $(seq 1 400); do
  h=$(curl -s "http://127.0.0.1:$bport/healthz")
  healthy 'h["batcher"]["postgres"] == "up"' && break
  sleep 0.05
done
healthy 'h["status"] == "ok" and h["batcher"]["postgres"] == "up" and h["batcher"]["redis"] == "up"' ||
  fail "batcher /healthz after migrate: $h"
ok "the batcher started before migrate waited, and took the schema once migrated"

# 2. the edge, the rep API and the milter from the same file: READY=1 once they answer
run edge "$server" --config "$conf" --role edge
epid=$!
run api "$server" --config "$conf" --role api
apid=$!
mkdir -p "$MB_RUN/postfix/mailbeacon"
chgrp daemon "$MB_RUN/postfix/mailbeacon" && chmod 2750 "$MB_RUN/postfix/mailbeacon"
run milter "$rewrite" --config "$conf" --milter "unix:$MB_RUN/postfix/mailbeacon/milter.sock"
mpid=$!
told edge 1 READY=1
told api 1 READY=1
told milter 1 READY=1
port=$(mb_wait_port $epid "$MB_RUN/edge.log" listen) && eport=$(mb_wait_port $epid "$MB_RUN/edge.log" admin) ||
  fail "the edge did not start"
aport=$(mb_wait_port $apid "$MB_RUN/api.log" admin) && rport=$(mb_wait_port $apid "$MB_RUN/api.log" api) ||
  fail "the rep API did not start"
if [ -n "$want_eport" ]; then
  [ "$eport/$bport/$aport" = "$want_eport/$want_bport/$want_aport" ] ||
    fail "admin listeners on $eport, $bport, $aport, not the defaults $want_eport, $want_bport, $want_aport"
fi
[ "$(printf '%s\n' "$eport" "$bport" "$aport" | sort -u | wc -l)" = 3 ] || fail "admin listeners collide: $eport $bport $aport"
h=$(curl -s "http://127.0.0.1:$eport/healthz")
healthy 'h["status"] == "ok" and h["redis"] == "up"' || fail "edge /healthz: $h"
h=$(curl -s "http://127.0.0.1:$aport/healthz")
healthy 'h["status"] == "ok"' || fail "rep API /healthz: $h"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$rport/rep/")" != 000 ] || fail "the rep API does not answer"
grep -q "^READY=1 STATUS=listening on unix:$MB_RUN/postfix/mailbeacon/milter.sock" "$MB_RUN/notify-milter.log" ||
  fail "the milter's readiness: $(cat "$MB_RUN/notify-milter.log")"
[ "$(stat -c '%A %G' "$MB_RUN/postfix/mailbeacon/milter.sock")" = "srw-rw---- daemon" ] ||
  fail "the milter socket: $(stat -c '%A %G' "$MB_RUN/postfix/mailbeacon/milter.sock"), want srw-rw---- daemon"
ok "edge (admin $eport), batcher (admin $bport), rep API (admin $aport) and milter from one file, each READY=1"

# 3. a hit at the edge is loaded by the batcher
msg=00000000000000000000000000c0ffee
tok=$(python3 "$here/server_check.py" token "$MB_RUN/keys" o "$msg" 1 0)
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/o/$tok.gif")" = 200 ] || fail "pixel not answered"
q="SELECT kind, recipient_idx, edge FROM mailbeacon.events WHERE message = '$msg'"
for _ in $(seq 1 200); do [ -n "$(mb_psql -tA -F ' ' -c "$q")" ] && break; sleep 0.05; done
got=$(mb_psql -tA -F ' ' -c "$q")
[ "$got" = "open 1 roles-edge" ] || fail "events row: '$got', want 'open 1 roles-edge'"
ok "a hit at the edge loaded into PostgreSQL by the batcher"

# 3b. a CRM's privacy endpoints on the admin listener of each role with PostgreSQL (batcher, rep API):
#     an admin token is served, a rep token refused; the edge, without PostgreSQL, has none
atok=$("$server" --config "$conf" admin-token dpo@ourco.example 2>/dev/null) &&
  rtok=$("$server" --config "$conf" rep-token sam@ourco.example 2>/dev/null) || fail "cannot make the tokens"
code() { curl -s -o "$MB_RUN/resp" -w '%{http_code}' "$@"; }
for p in "$bport" "$aport"; do
  [ "$(code -H "Authorization: Bearer $atok" "http://127.0.0.1:$p/privacy/export?address=nobody@client.example")" = 200 ] ||
    fail "export on admin port $p: $(cat "$MB_RUN/resp")"
  [ "$(code -H "Authorization: Bearer $rtok" "http://127.0.0.1:$p/privacy/export?address=nobody@client.example")" = 403 ] ||
    fail "export with a rep token on admin port $p: not 403"
done
[ "$(code -H "Authorization: Bearer $atok" "http://127.0.0.1:$eport/privacy/export?address=nobody@client.example")" = 404 ] ||
  fail "the edge's admin listener answers privacy requests: $(cat "$MB_RUN/resp")"
ok "privacy endpoints on the batcher's and the rep API's admin listeners, admin token only; none on the edge"

# 4. reloads, as the units' ExecReload sends them: RELOADING=1, then READY=1 again
kill -HUP "$epid" "$bpid" "$apid"
kill -USR1 "$mpid"
for n in edge batcher api milter; do
  told $n 1 RELOADING=1
  told $n 2 READY=1
done
grep -q "SIGUSR1: 1 keys loaded" "$MB_RUN/milter.log" || fail "the milter did not reload its keys"
kill -0 "$mpid" || fail "the milter stopped on its reload signal"
ok "SIGHUP (server) and SIGUSR1 (milter): RELOADING=1 then READY=1"

# 5. all stop cleanly on SIGTERM, saying STOPPING=1
kill -TERM "$epid" "$bpid" "$apid" "$mpid"
for p in epid bpid apid mpid; do
  wait "${!p}" || fail "$p: exit status $? after SIGTERM"
  eval "$p="
done
for n in edge batcher api milter; do told $n 1 STOPPING=1; done
grep -q "stopped: .* 0 lost" "$MB_RUN/edge.log" || fail "edge shutdown summary: $(tail -2 "$MB_RUN/edge.log")"
grep -q "batcher stopped: 1 rows loaded" "$MB_RUN/batcher.log" || fail "batcher shutdown summary: $(tail -2 "$MB_RUN/batcher.log")"
grep -q "milter stopped: " "$MB_RUN/milter.log" || fail "milter shutdown summary: $(tail -2 "$MB_RUN/milter.log")"
[ ! -e "$MB_RUN/postfix/mailbeacon/milter.sock" ] || fail "the milter left its socket behind"
ok "all exit 0 on SIGTERM, each STOPPING=1"
echo "roles: $passed passed, 0 failed"
