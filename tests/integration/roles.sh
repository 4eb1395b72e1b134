#!/usr/bin/env bash
# An edge and a batcher started from ONE configuration file on one host, as
# the systemd units run them (mailbeacon-server --config FILE --role edge, and
# --role batcher): the file sets neither admin_listen nor batcher_admin_listen,
# so each takes its default (127.0.0.1:9090 and 127.0.0.1:9091) and they must
# not collide. Checked: both admin listeners answer /healthz (the batcher's
# with PostgreSQL up), a hit at the edge is loaded by the batcher into
# PostgreSQL, and both exit 0 on SIGTERM with their shutdown summary.
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
epid= bpid=
cleanup() {
  for p in $epid $bpid; do kill -9 "$p" 2>/dev/null || true; done
  mb_redis_stop
  mb_pg_stop
  rm -rf "$MB_RUN"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in edge batcher; do [ -f "$MB_RUN/$f.log" ] && { echo "--- $f" >&2; tail -15 "$MB_RUN/$f.log" >&2; }; done
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
edge_id = roles-edge
batch_wait_ms = 20
CONF
if [ "$netns" = yes ]; then
  echo "in a private network namespace: admin listeners on their defaults, public listener on its default"
  want_eport=9090 want_bport=9091
else
  echo "NOTE: no private network namespace (not root, or unshare --net refused): every listener on port 0" \
    "in the config file instead of the defaults 9090/9091; the defaults are not checked"
  printf 'listen = 127.0.0.1:0\nadmin_listen = 127.0.0.1:0\nbatcher_admin_listen = 127.0.0.1:0\n' >> "$conf"
  want_eport= want_bport=
fi
# the environment must not override the file
for v in $(env | sed -n 's/^\(MAILBEACON_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

"$server" --config "$conf" migrate > "$MB_RUN/migrate.log" 2>&1 || fail "migrate: $(cat "$MB_RUN/migrate.log")"

# 1. both units from the one file: each on its own admin listener
"$server" --config "$conf" --role edge 2> "$MB_RUN/edge.log" &
epid=$!
"$server" --config "$conf" --role batcher 2> "$MB_RUN/batcher.log" &
bpid=$!
port=$(mb_wait_port $epid "$MB_RUN/edge.log" listen) && eport=$(mb_wait_port $epid "$MB_RUN/edge.log" admin) ||
  fail "the edge did not start"
bport=$(mb_wait_port $bpid "$MB_RUN/batcher.log" admin) || fail "the batcher did not start"
if [ -n "$want_eport" ]; then
  [ "$eport" = "$want_eport" ] && [ "$bport" = "$want_bport" ] ||
    fail "admin listeners on $eport and $bport, not the defaults $want_eport and $want_bport"
fi
[ "$eport" != "$bport" ] || fail "both admin listeners on port $eport"
healthy() { # healthy PYTHON_CONDITION: the /healthz answer in $h meets it
  python3 -c "import json, sys; h = json.loads(sys.argv[1]); sys.exit(0 if $1 else 1)" "$h" 2>/dev/null
}
h=$(curl -s "http://127.0.0.1:$eport/healthz")
healthy 'h["status"] == "ok" and h["redis"] == "up"' || fail "edge /healthz: $h"
for _ in $(seq 1 100); do
  h=$(curl -s "http://127.0.0.1:$bport/healthz")
  healthy 'h["batcher"]["postgres"] == "up"' && break
  sleep 0.05
done
healthy 'h["status"] == "ok" and h["batcher"]["postgres"] == "up" and h["batcher"]["redis"] == "up"' ||
  fail "batcher /healthz: $h"
ok "edge (admin port $eport) and batcher (admin port $bport) from one config file, both /healthz answer"

# 2. a hit at the edge is loaded by the batcher
msg=00000000000000000000000000c0ffee
tok=$(python3 "$here/server_check.py" token "$MB_RUN/keys" o "$msg" 1 0)
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/o/$tok.gif")" = 200 ] || fail "pixel not answered"
q="SELECT kind, recipient_idx, edge FROM mailbeacon.events WHERE message = '$msg'"
for _ in $(seq 1 200); do [ -n "$(mb_psql -tA -F ' ' -c "$q")" ] && break; sleep 0.05; done
got=$(mb_psql -tA -F ' ' -c "$q")
[ "$got" = "open 1 roles-edge" ] || fail "events row: '$got', want 'open 1 roles-edge'"
ok "a hit at the edge loaded into PostgreSQL by the batcher"

# 3. both stop cleanly on SIGTERM
kill -TERM "$epid" "$bpid"
wait "$epid" || fail "edge exit status $? after SIGTERM"
epid=
wait "$bpid" || fail "batcher exit status $? after SIGTERM"
bpid=
grep -q "stopped: .* 0 lost" "$MB_RUN/edge.log" || fail "edge shutdown summary: $(tail -2 "$MB_RUN/edge.log")"
grep -q "batcher stopped: 1 rows loaded" "$MB_RUN/batcher.log" || fail "batcher shutdown summary: $(tail -2 "$MB_RUN/batcher.log")"
ok "both exit 0 on SIGTERM"
echo "roles: $passed passed, 0 failed"
