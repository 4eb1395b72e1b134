#!/usr/bin/env bash
# Alerts to the sending rep (docs/alerts.md), through the real path: a
# private Redis and PostgreSQL, mailbeacon-server (edge and batcher) with the
# shipped rules file; stream entries with chosen facts. Checks which events
# make alerts and what they say:
#   a person's first open, "opened again" at most once per window, the
#   first click of each link and the open it implies; no alert for Apple's
#   prefetch, a HEAD probe, a scanner's burst, the rep's own open; a proxy's
#   open alerts; a copy to several recipients says who it went to; display
#   names; a person's fresh open alerts only when its look-ahead window
#   closes, with the stream idle; a redelivered batch makes no second alert.
# usage: alerts.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-alerts.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$MB_RUN/server.log" >&2 || true
  mb_psql -tA -c "SELECT part, reason, left(entry, 300) FROM mailbeacon.rejected LIMIT 5" >&2 || true
  exit 1
}
alerts() { # alerts MESSAGE: its alerts in order: kind recipient_idx link implied opens clicks class
  sql "SELECT kind, recipient_idx, link_idx, implied_open, opens, clicks, class FROM mailbeacon.alerts
        WHERE message = '$(uuid "$1")' ORDER BY id"
}

scenario_rules "$here/../../rules/mailbeacon.rules"
scenario_start "$server" "$rewrite" edge-a

now=$(date +%s%6N)
links='[{"i":1,"url":"https://e.example/1"},{"i":2,"url":"https://e.example/2"},{"i":3,"url":"https://e.example/3"},{"i":4,"url":"https://e.example/4"}]'
sent() { # sent N SENT_AT_US [CLIENT_IP]: a message to one recipient, named, with 4 links
  xadd type sent v 1 message "$(uuid "$1")" message_id "m$1@ourco.example" rep sam@ourco.example \
    recipients "[{\"i\":1,\"addr\":\"r$1@acme.example\",\"name\":\"R $1\"}]" token_recipient 1 \
    subject "s$1" sent_at "$2" links "$links" client_ip "${3:-}"
}
t0=$((now - 6 * H))
for m in 1 2 3 4 5; do sent $m $t0 "$([ $m = 4 ] && echo 192.0.2.99 || true)"; done
xadd type sent v 1 message "$(uuid 6)" message_id m6@ourco.example rep sam@ourco.example \
  recipients '[{"i":1,"addr":"dana@acme.example"},{"i":2,"addr":"lee@acme.example"}]' token_recipient 0 \
  subject s6 sent_at $t0 links "$links" client_ip ''

# ---- hours old: final as they are loaded
# message 1: a person opens, again 10 min later (within the hour: nothing), 70 min later
# ("opened again"), 75 min later (nothing)
hits "$(ev 1 o 0 $((t0 + 20 * M)) 198.18.0.1 GET "$outlook")" "$(ev 1 o 0 $((t0 + 30 * M)) 198.18.0.1 GET "$outlook")" \
  "$(ev 1 o 0 $((t0 + 90 * M)) 198.18.0.1 GET "$outlook")" "$(ev 1 o 0 $((t0 + 95 * M)) 198.18.0.1 GET "$outlook")"
# message 2: a click with no open before it (the open implied), the same link again, another link
hits "$(ev 2 c 2 $((t0 + H)) 198.18.0.2 GET "$chrome")" "$(ev 2 c 2 $((t0 + H + 5 * M)) 198.18.0.2 GET "$chrome")" \
  "$(ev 2 c 3 $((t0 + H + 6 * M)) 198.18.0.2 GET "$chrome")"
# message 3: machines only: Apple's prefetch, a HEAD probe, a scanner's burst over every link
hits "$(ev 3 o 0 $((t0 + 3 * S)) 203.0.113.5 GET 'Mozilla/5.0')" "$(ev 3 c 1 $((t0 + 4 * S)) 198.18.0.3 HEAD "$chrome")" \
  "$(ev 3 c 1 $((t0 + M)) 198.18.0.33 GET "$chrome")" "$(ev 3 c 2 $((t0 + M + 200000)) 198.18.0.33 GET "$chrome")" \
  "$(ev 3 c 3 $((t0 + M + 400000)) 198.18.0.33 GET "$chrome")" "$(ev 3 c 4 $((t0 + M + 600000)) 198.18.0.33 GET "$chrome")"
# message 4: the rep opens their own mail from the submitting address
hits "$(ev 4 o 0 $((t0 + 2 * M)) 192.0.2.99 GET "$outlook")"
# message 5: Gmail's image proxy opens (a person behind it), then the person clicks
hits "$(ev 5 o 0 $((t0 + 2 * H)) 66.249.84.1 GET "$gmail_proxy")" "$(ev 5 c 1 $((t0 + 2 * H + M)) 198.18.0.5 GET "$chrome")"
# message 6: one copy to two recipients ("someone")
R=0 hits "$(R=0 ev 6 o 0 $((t0 + 3 * H)) 198.18.0.6 GET "$outlook")"
wait_rows "SELECT count(*) FROM mailbeacon.events" 17
wait_rows "SELECT count(*) FROM mailbeacon.alerts" 7

[ "$(alerts 1)" = "open 1 0 f 1 0 human
reopen 1 0 f 3 0 human" ] || fail "message 1: $(alerts 1)"
echo "ok a first open alerts; opened again: once per hour"
[ "$(alerts 2)" = "click 1 2 t 0 1 human
click 1 3 f 0 3 human" ] || fail "message 2: $(alerts 2)"
echo "ok the first click of each link alerts; the first says the open is implied"
[ -z "$(alerts 3)" ] || fail "message 3 (machines): $(alerts 3)"
[ "$(sql "SELECT string_agg(DISTINCT class, ',') FROM mailbeacon.events WHERE message = '$(uuid 3)'")" = prefetch,scanner ] ||
  fail "message 3 judged: $(sql "SELECT class, reason FROM mailbeacon.events WHERE message = '$(uuid 3)'")"
[ -z "$(alerts 4)" ] || fail "message 4 (the rep's own open): $(alerts 4)"
echo "ok no alert for Apple's prefetch, a HEAD probe, a scanner's burst, the rep's own open"
[ "$(alerts 5)" = "open 1 0 f 1 0 proxy
click 1 1 f 1 1 human" ] || fail "message 5: $(alerts 5)"
echo "ok a proxy's open alerts; a click after it implies nothing"
expect "SELECT recipient_idx, recipient, recipient_name, rep, subject FROM mailbeacon.alerts WHERE message = '$(uuid 6)'" \
  "0 dana@acme.example, lee@acme.example  sam@ourco.example s6"
expect "SELECT recipient, recipient_name, url FROM mailbeacon.alerts WHERE message = '$(uuid 2)' ORDER BY id LIMIT 1" \
  "r2@acme.example R 2 https://e.example/2"
echo "ok a copy to several recipients names them all; display names and links"

# ---- a person's fresh open: not final (no alert) until its window closes, with the stream idle
sent 7 $((now - M))
t=$(date +%s%6N)
hits "$(ev 7 o 0 $t 198.18.0.7 GET "$outlook")"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE message = '$(uuid 7)'" 1
[ -z "$(alerts 7)" ] || [ $(($(date +%s%6N) - t)) -gt $((5 * S)) ] || fail "an alert before the window closed: $(alerts 7)"
wait_rows "SELECT kind, class FROM mailbeacon.alerts WHERE message = '$(uuid 7)'" "open human"
echo "ok a person's fresh open alerts when its look-ahead window closes"

# ---- redelivered: the same entry again, and the same open under a new event id
before=$(sql "SELECT count(*) FROM mailbeacon.alerts")
hits "$(ev 1 o 0 $((t0 + 20 * M)) 198.18.0.1 GET "$outlook")" "$(ev 2 c 2 $((t0 + H)) 198.18.0.2 GET "$chrome")"
hits "$(ev 6 o 0 $((t0 + 3 * H + 1)) 198.18.0.6 GET "$outlook")" # recipient 1 of message 6: its first open
wait_rows "SELECT count(*) FROM mailbeacon.events" 19
wait_rows "SELECT count(*) FROM mailbeacon.alerts" $((before + 1))
expect "SELECT count(*) FROM mailbeacon.alerts WHERE message IN ('$(uuid 1)', '$(uuid 2)')" 4
echo "ok a redelivered batch makes no second alert"
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
[ "$(metric mailbeacon_alerts_total)" = "$((before + 1))" ] || fail "mailbeacon_alerts_total: $(metric mailbeacon_alerts_total)"
echo "ok mailbeacon_alerts_total"
