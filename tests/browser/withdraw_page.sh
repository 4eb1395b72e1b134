#!/usr/bin/env bash
# Withdrawal through the page in Debian's Chromium (headless, JavaScript
# off): a private Redis and PostgreSQL and mailbeacon-server; a recipient
# who consented (consent import, consent copy) gets a message through
# mailbeacon-rewrite, with the disclosure line; an open is stored and alerts; then
# withdraw_page.mjs opens the line's link and confirms. After it: the
# consent is withdrawn, and hits on that (now old) message get their pixel
# and redirect while nothing more is stored and no alert is made (a first
# click would alert). Screenshots are kept
# ($MB_BROWSER_ARTIFACTS, or ./artifacts).
# usage: withdraw_page.sh MAILBEACON_SERVER MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
server=$1 rewrite=$2 data=$3
here=$(cd "$(dirname "$0")" && pwd)
[ -x /usr/bin/chromium ] || { echo "no /usr/bin/chromium: run scripts/install-deps.sh" >&2; exit 1; }
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  { echo "no playwright-core in $here/node_modules: run scripts/install-deps.sh" >&2; exit 1; }
. "$here/../../scripts/lib/services.sh"
. "$here/../integration/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-withdraw.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -20 "$MB_RUN/server.log" >&2 || true
  exit 1
}
scenario_rules "$here/../../rules/mailbeacon.rules"
export MAILBEACON_CONSENT_COPY=$MB_RUN/consent.cdb # one host, one config: the batcher keeps the copy current
scenario_start "$server" "$rewrite" edge-w
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

printf 'address,state,source,time\ndana@kunde.de,granted,crm,2020-03-12T10:00:00Z\n' > "$MB_RUN/crm.csv"
"$server" consent import "$MB_RUN/crm.csv" > /dev/null
"$server" consent copy "$MB_RUN/consent.cdb" > /dev/null
export MAILBEACON_BASE_URL=http://127.0.0.1:$port MAILBEACON_TRACK_DEFAULT_EU=none
"$rewrite" --sender sam@ourco.example --recipient dana@kunde.de < "$data/01-single-html-7bit.eml" > "$MB_RUN/out.eml"
w=$(grep -o "http://127.0.0.1:$port/w/[A-Za-z0-9_-]*" "$MB_RUN/out.eml" | head -1)
pixel=$(grep -o "http://127.0.0.1:$port/o/[A-Za-z0-9_-]*\.gif" "$MB_RUN/out.eml" | head -1)
link=$(grep -o "http://127.0.0.1:$port/c/[^\"]*" "$MB_RUN/out.eml" | head -1)
[ -n "$w" ] && [ -n "$pixel" ] && [ -n "$link" ] || fail "no disclosure line, pixel or link in the message"
events="SELECT count(*) FROM mailbeacon.events"
curl -s -o /dev/null -A "$outlook" "$pixel"
wait_rows "$events" 1
# its alert, once the look-ahead window (5 s) closed: the next hit would alert again only as a re-open
for _ in $(seq 1 300); do [ "$(sql "SELECT count(*) FROM mailbeacon.alerts")" = 1 ] && break; sleep 0.05; done
expect "SELECT count(*) FROM mailbeacon.alerts" 1
node "$here/withdraw_page.mjs" "$w" "${MB_BROWSER_ARTIFACTS:-$PWD/artifacts}" || fail "the withdrawal page"
wait_rows "SELECT state || '/' || source FROM mailbeacon.consent WHERE address = 'dana@kunde.de'" \
  "withdrawn/withdrawal page"
alerts=$(sql "SELECT count(*) FROM mailbeacon.alerts")
[ "$(curl -s -o "$MB_RUN/gif" -w '%{http_code} %{content_type}' -A "$outlook" "$pixel")" = "200 image/gif" ] ||
  fail "the pixel after the withdrawal"
# a first click would alert ("clicked"), were it stored
[ "$(curl -s -o /dev/null -w '%{http_code}' -A "$chrome" "$link")" = 302 ] || fail "the link after the withdrawal"
for _ in $(seq 1 300); do [ "$(metric mailbeacon_batcher_events_silenced_total)" = 2 ] && break; sleep 0.05; done
[ "$(metric mailbeacon_batcher_events_silenced_total)" = 2 ] || fail "the hits after the withdrawal were not dropped"
expect "$events" 1
sleep 6 # past the look-ahead window: an alert would have been made by now
expect "SELECT count(*) FROM mailbeacon.alerts" "$alerts"
# new mail to them is not tracked: the batcher wrote the consent copy again after the withdrawal
grep -q "consent copy $MB_RUN/consent.cdb written (withdrawals)" "$MB_RUN/server.log" || fail "the copy not written again"
sleep 1.1
"$rewrite" --sender sam@ourco.example --recipient dana@kunde.de < "$data/01-single-html-7bit.eml" > "$MB_RUN/new.eml"
cmp -s "$data/01-single-html-7bit.eml" "$MB_RUN/new.eml" || fail "a new message to the withdrawn recipient is tracked"
echo "withdraw_page: all checks passed"
