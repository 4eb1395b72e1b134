#!/usr/bin/env bash
# The rep page in Debian's Chromium (headless, through playwright-core):
# a private Redis and PostgreSQL, mailbeacon-server with rep_listen on
# 127.0.0.1 (a secure context: the Notification API works), a message whose
# subject and recipient name are HTML. rep_page.mjs signs in with a rep
# token, has a hit recorded (hit.sh, below), and checks that the alert
# appears without a reload, as text, with a desktop notification; that the
# messages and the timeline show class and reason; that nothing breaks the
# Content-Security-Policy. A screenshot is kept ($MB_BROWSER_ARTIFACTS, or
# ./artifacts).
# usage: rep_page.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
[ -x /usr/bin/chromium ] || { echo "no /usr/bin/chromium: run scripts/install-deps.sh" >&2; exit 1; }
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  { echo "no playwright-core in $here/node_modules: run scripts/install-deps.sh" >&2; exit 1; }
. "$here/../../scripts/lib/services.sh"
. "$here/../integration/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-reppage.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -20 "$MB_RUN/server.log" >&2 || true
  exit 1
}
mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" > /dev/null
export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) \
  MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_LISTEN=127.0.0.1:0 \
  MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_REP_LISTEN=127.0.0.1:0 MAILBEACON_BATCH_WAIT_MS=20
"$server" migrate > "$MB_RUN/migrate.log" || fail "migrate: $(cat "$MB_RUN/migrate.log")"
"$server" >> "$MB_RUN/server.log" 2>&1 &
spid=$!
api=$(mb_wait_port $spid "$MB_RUN/server.log" api) || fail "server did not start"
token=$("$server" rep-token sam@ourco.example 2>/dev/null)

now=$(date +%s%6N)
subject='Q3 <img src=x onerror="window.__xss=1"> & pricing'
xadd type sent v 1 message "$(uuid 1)" message_id m1@ourco.example rep sam@ourco.example \
  recipients '[{"i":1,"addr":"dana@acme.example","name":"Dana <b>Whitfield</b>"}]' token_recipient 1 \
  subject "$subject" sent_at $((now - 2 * H)) links '[{"i":1,"url":"https://e.example/offer"}]' client_ip ''
wait_rows "SELECT count(*) FROM mailbeacon.messages" 1
# what the page's script runs once signed in: an open an hour ago (final at once: it alerts now)
cat > "$MB_RUN/hit.sh" <<HIT
set -euo pipefail
MB_RUN=$MB_RUN
. "$here/../../scripts/lib/services.sh"
. "$here/../integration/lib/scenario.sh"
hits "\$(ev 1 o 0 $((now - H)) 198.18.0.1 GET "\$outlook")"
HIT
node "$here/rep_page.mjs" "http://127.0.0.1:$api" "$token" "$MB_RUN/hit.sh" "$subject" \
  "${MB_BROWSER_ARTIFACTS:-$PWD/artifacts}" || fail "the rep page"
