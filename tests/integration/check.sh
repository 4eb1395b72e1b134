#!/usr/bin/env bash
# mailbeacon-server check and mailbeacon-rewrite --check, as an administrator
# runs them after editing the configuration: with a private Redis and
# PostgreSQL, everything right gives exit 0 and an "ok" line per check; each
# mistake gives its own "problem" line and exit 1: a key ring others can
# read, a schema not migrated, Redis not answering, a broken rules file, a
# listener address that is none, a consent copy that is missing.
# usage: check.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-check.XXXXXX)
trap 'mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$MB_RUN/out" >&2 2>/dev/null || true; exit 1; }
unset $(env | grep -o '^MAILBEACON_[A-Z_]*') || true
mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" > /dev/null
cp "$here/../../rules/mailbeacon.rules" "$MB_RUN/mailbeacon.rules"
cat > "$MB_RUN/mailbeacon.conf" <<CONF
base_url = https://t.mailbeacon.test
key_file = $MB_RUN/keys
redis = $(mb_redis_addr)
postgres = $(mb_pg_conninfo)
spool_dir = $MB_RUN/spool
rules_file = $MB_RUN/mailbeacon.rules
CONF
runs() { # runs WANT_RC COMMAND...: output in $MB_RUN/out
  local want=$1 rc=0
  shift
  "$@" > "$MB_RUN/out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$*: exit $rc, want $want"
}
c=$MB_RUN/mailbeacon.conf

# the schema not migrated yet: said, with what to do
runs 1 "$server" --config "$c" check
grep -q '^problem: PostgreSQL: [0-9]* migrations to apply: run mailbeacon-server migrate$' "$MB_RUN/out" ||
  fail "no word of the migrations"
"$server" --config "$c" migrate > /dev/null
# everything right
runs 0 "$server" --config "$c" check
grep -q '^ok: PostgreSQL answers; the schema is current$' "$MB_RUN/out" || fail "PostgreSQL not checked"
grep -q "^ok: redis .* answers$" "$MB_RUN/out" || fail "Redis not checked"
grep -q "^ok: rules $MB_RUN/mailbeacon.rules version " "$MB_RUN/out" || fail "rules not checked"
grep -q '^mailbeacon-server: the configuration is fine$' "$MB_RUN/out" || fail "no verdict"
runs 0 "$rewrite" --config "$c" --check
grep -q '^ok: key ring .*: 1 key, key 1 signs$' "$MB_RUN/out" || fail "rewrite: key ring not checked"
grep -q "^ok: spool $MB_RUN/spool/sent.spool can be written" "$MB_RUN/out" || fail "rewrite: spool not checked"
[ ! -e "$MB_RUN/spool" ] || fail "a check made the spool (run as root, it would be root's)"
: > "$MB_RUN/afile"
MAILBEACON_SPOOL_DIR=$MB_RUN/afile runs 1 "$server" --config "$c" check
grep -q "^problem: spool: $MB_RUN/afile is not a directory" "$MB_RUN/out" || fail "a spool that is a file: not said"

# each mistake, its own line
chmod 644 "$MB_RUN/keys"
runs 1 "$server" --config "$c" check
grep -q "^problem: .*keys: key file mode 0644 lets group or others read it" "$MB_RUN/out" || fail "a key ring others can read: not said"
runs 1 "$rewrite" --config "$c" --check
grep -q "^problem: .*keys: key file mode 0644 lets group or others read it" "$MB_RUN/out" || fail "rewrite: a key ring others can read: not said"
chmod 600 "$MB_RUN/keys"
printf 'rule broken\n' >> "$MB_RUN/mailbeacon.rules"
runs 1 "$server" --config "$c" check
grep -q "^problem: $MB_RUN/mailbeacon.rules:[0-9]*:" "$MB_RUN/out" || fail "a broken rules file: not said with its line"
cp "$here/../../rules/mailbeacon.rules" "$MB_RUN/mailbeacon.rules"
MAILBEACON_REDIS=127.0.0.1:1 MAILBEACON_LISTEN=nowhere runs 1 "$server" --config "$c" check
grep -q '^problem: redis 127.0.0.1:1: ' "$MB_RUN/out" || fail "Redis down: not said"
grep -q '^problem: listen: ' "$MB_RUN/out" || fail "a bad listen address: not said"
grep -q '^mailbeacon-server: 2 problems$' "$MB_RUN/out" || fail "the count of problems"
MAILBEACON_CONSENT_COPY=$MB_RUN/missing.cdb runs 1 "$rewrite" --config "$c" --check
grep -q "^problem: consent copy: .*missing.cdb" "$MB_RUN/out" || fail "a missing consent copy: not said"
printf 'nonsense_key = 1\n' >> "$c"
runs 78 "$server" --config "$c" check
runs 78 "$rewrite" --config "$c" --check
grep -q "unknown key 'nonsense_key'" "$MB_RUN/out" || fail "a bad configuration: not said"
echo "check: all checks passed"
