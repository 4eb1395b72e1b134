#!/usr/bin/env bash
# The classifier through the real path (docs/classifier.md): a private Redis
# and PostgreSQL, mailbeacon-server (edge and batcher) with the shipped rules
# file, its IP lists pointed at small files in the publishers' formats.
# Stream entries with chosen times, addresses, user agents and methods, and
# real hits through the edge for the header facts; class and reason checked
# per event:
#   Apple MPP prefetch at delivery; a Gmail proxy open hours later; a Gmail
#   prefetch seconds after sending; a person's open in a desktop client and
#   click from a browser; a scanner's burst over all links in a second; a
#   HEAD probe and a Sec-Purpose prefetch through the edge; a click-time scan
#   paired with the person's click; a fast click alone (a person) and with a
#   second signal; the honeypot and its neighbours; the rep's self-open from
#   the submitting address and the office; a late click that re-judges the
#   earlier ones, and finality after the look-ahead window; the views;
#   rules reloaded on SIGHUP and a broken file refused; reclassify.
# usage: classify.sh MAILBEACON_SERVER MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
server=$1 rewrite=$2 data=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-classify.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$MB_RUN/server.log" >&2 || true
  mb_psql -tA -c "SELECT part, reason, left(entry, 300) FROM mailbeacon.rejected LIMIT 5" >&2 || true
  exit 1
}
judged() { # judged MESSAGE: every event of the message, in time order: kind link ip class reason
  sql "SELECT kind, link_idx, host(ip), class, reason FROM mailbeacon.events WHERE message = '$1'
        ORDER BY occurred_at, event_id"
}

scenario_rules "$here/../../rules/mailbeacon.rules"

scenario_start "$server" "$rewrite" edge-c
grep -q "rules $MB_RUN/mailbeacon.rules version $version: 4 lists, 7 address ranges" "$MB_RUN/server.log" ||
  fail "rules not loaded as expected"
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# ---- stream entries with chosen facts
now=$(date +%s%6N)
sent() { # sent N SENT_AT_US [CLIENT_IP]: a message to one recipient with 4 links
  xadd type sent v 1 message "$(uuid "$1")" message_id "m$1@ourco.example" rep sam@ourco.example \
    recipients "[{\"i\":1,\"addr\":\"r$1@acme.example\"}]" token_recipient 1 subject "s$1" sent_at "$2" \
    links '[{"i":1,"url":"https://e.example/1"},{"i":2,"url":"https://e.example/2"},{"i":3,"url":"https://e.example/3"},{"i":4,"url":"https://e.example/4"}]' \
    client_ip "${3:-}"
}
gmail_prefetch='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0'

t0=$((now - 6 * H))
for m in 1 2 3 4 5 6 7 8 9; do sent $m $t0 "$([ $m = 9 ] && echo 192.0.2.99 || true)"; done
hits "$(ev 1 o 0 $((t0 + 3 * S)) 203.0.113.5 GET 'Mozilla/5.0')" \
  "$(ev 2 o 0 $((t0 + 5 * H)) 66.249.84.1 GET 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)')" \
  "$(ev 3 o 0 $((t0 + 4 * S)) 192.0.2.200 GET "$gmail_prefetch")" \
  "$(ev 4 o 0 $((t0 + 20 * M)) 198.18.0.4 GET "$outlook")" \
  "$(ev 4 c 2 $((t0 + 22 * M)) 198.18.0.4 GET "$chrome")" "$(ev 4 c 3 $((t0 + 22 * M + S)) 198.18.0.4 GET "$chrome")"
# a scanner's burst: every link in a second, a browser's user agent, a minute after delivery
hits "$(ev 5 c 1 $((t0 + M)) 198.18.0.5 GET "$chrome")" "$(ev 5 c 2 $((t0 + M + 200000)) 198.18.0.5 GET "$chrome")" \
  "$(ev 5 c 3 $((t0 + M + 400000)) 198.18.0.5 GET "$chrome")" "$(ev 5 c 4 $((t0 + M + 600000)) 198.18.0.5 GET "$chrome")"
# a click-time scan paired with the person's click (an unknown scanner, then the browser a
# second later), and a known one (Microsoft 365's ranges) before another person's click
hits "$(ev 6 c 1 $((t0 + 2 * H)) 198.18.0.61 GET "$chrome")" "$(ev 6 c 1 $((t0 + 2 * H + S)) 198.18.0.6 GET "$chrome")" \
  "$(ev 6 c 3 $((t0 + 3 * H)) 192.0.2.130 GET "$chrome")" "$(ev 6 c 3 $((t0 + 3 * H + S)) 198.18.0.6 GET "$chrome")"
# fast clicks: a person on the phone with the rep (alone: a person); no browser, Google's ranges
hits "$(ev 7 c 1 $((t0 + 2 * S)) 198.18.0.7 GET "$chrome")" "$(ev 7 c 2 $((t0 + 3 * S)) 198.18.0.70 GET "")" \
  "$(ev 7 c 3 $((t0 + 4 * S)) 192.0.2.201 GET "$chrome")"
# the honeypot and what came from the same source (address and user agent) around it: the
# scanner rendering the pixel, a link before, a slow one after; a person behind the same NAT
# with a browser of their own; a person later
firefox='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
hits "$(ev 8 o 0 $((t0 + 5 * M - S)) 198.18.0.8 GET "$chrome")" "$(ev 8 c 1 $((t0 + 5 * M)) 198.18.0.8 GET "$chrome")" \
  "$(ev 8 h 0 $((t0 + 5 * M + S)) 198.18.0.8 GET "$chrome")" "$(ev 8 c 3 $((t0 + 5 * M + 2 * S)) 198.18.0.8 GET "$firefox")" \
  "$(ev 8 c 2 $((t0 + 6 * M)) 198.18.0.8 GET "$chrome")" "$(ev 8 c 1 $((t0 + 2 * H)) 198.18.0.80 GET "$chrome")"
# the rep: from the address that submitted the message, and from the office
hits "$(ev 9 o 0 $((t0 + 10 * S)) 192.0.2.99 GET "$outlook")" "$(ev 9 c 1 $((t0 + 11 * S)) 198.51.100.20 GET "$chrome")" \
  "$(ev 9 o 0 $((t0 + 2 * H)) 198.18.0.9 GET "$outlook")"
wait_rows "SELECT count(*) FROM mailbeacon.events" 26

expect "SELECT DISTINCT rules_version FROM mailbeacon.events" "$version"
open="SELECT count(*) FROM mailbeacon.events WHERE NOT mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())"
wait_rows "$open" 0 # hours old: final once the next second's window closes
[ "$(judged "$(uuid 1)")" = "open 0 203.0.113.5 prefetch apple_mpp" ] || fail "MPP: $(judged "$(uuid 1)")"
[ "$(judged "$(uuid 2)")" = "open 0 66.249.84.1 proxy gmail_image_proxy" ] || fail "Gmail proxy: $(judged "$(uuid 2)")"
[ "$(judged "$(uuid 3)")" = "open 0 192.0.2.200 prefetch gmail_prefetch" ] || fail "Gmail prefetch: $(judged "$(uuid 3)")"
[ "$(judged "$(uuid 4)")" = "open 0 198.18.0.4 human no_machine_signal
click 2 198.18.0.4 human no_machine_signal
click 3 198.18.0.4 human no_machine_signal" ] || fail "a person (two links into tabs): $(judged "$(uuid 4)")"
[ "$(judged "$(uuid 5)")" = "click 1 198.18.0.5 scanner burst
click 2 198.18.0.5 scanner burst
click 3 198.18.0.5 scanner burst
click 4 198.18.0.5 scanner burst" ] || fail "burst: $(judged "$(uuid 5)")"
[ "$(judged "$(uuid 6)")" = "click 1 198.18.0.61 scanner paired_scan
click 1 198.18.0.6 human no_machine_signal
click 3 192.0.2.130 scanner m365_link_check
click 3 198.18.0.6 human no_machine_signal" ] || fail "pairs: $(judged "$(uuid 6)")"
[ "$(judged "$(uuid 7)")" = "click 1 198.18.0.7 human no_machine_signal
click 2 198.18.0.70 scanner fast_click_not_browser
click 3 192.0.2.201 scanner fast_click_from_google" ] || fail "fast clicks: $(judged "$(uuid 7)")"
[ "$(judged "$(uuid 8)")" = "open 0 198.18.0.8 scanner honeypot_neighbour
click 1 198.18.0.8 scanner honeypot_neighbour
honeypot 0 198.18.0.8 scanner honeypot
click 3 198.18.0.8 human no_machine_signal
click 2 198.18.0.8 scanner honeypot_neighbour
click 1 198.18.0.80 human no_machine_signal" ] || fail "honeypot: $(judged "$(uuid 8)")"
[ "$(judged "$(uuid 9)")" = "open 0 192.0.2.99 sender submitting_client
click 1 198.51.100.20 sender sender_ip
open 0 198.18.0.9 human no_machine_signal" ] || fail "the rep: $(judged "$(uuid 9)")"
echo "ok scenarios: MPP, Gmail proxy and prefetch, a person, a burst, pairs, fast clicks, the honeypot, the rep"

# ---- the views count people: human, proxy opens, the open a click implies
expect "SELECT message, opens, human_opens, implied_opens, prefetch_opens, proxy_opens, clicks, human_clicks, scanner_clicks,
               sender_opens, sender_clicks, machine_opens, machine_clicks
          FROM mailbeacon.message_engagement WHERE message <= '$(uuid 9)' ORDER BY message" \
  "$(uuid 1) 1 0 0 1 0 0 0 0 0 0 1 0
$(uuid 2) 1 1 0 0 1 0 0 0 0 0 0 0
$(uuid 3) 1 0 0 1 0 0 0 0 0 0 1 0
$(uuid 4) 1 1 0 0 0 2 2 0 0 0 0 0
$(uuid 5) 0 0 0 0 0 4 0 4 0 0 0 4
$(uuid 6) 0 1 1 0 0 4 2 2 0 0 0 2
$(uuid 7) 0 1 1 0 0 3 1 2 0 0 0 2
$(uuid 8) 1 1 1 0 0 4 2 2 0 0 1 2
$(uuid 9) 2 1 0 0 0 1 0 0 1 1 1 1"
expect "SELECT human_opened, opened FROM mailbeacon.rep_daily" "6 6"
expect "SELECT link_idx, clicks, human_clicks, scanner_clicks FROM mailbeacon.link_clicks WHERE message = '$(uuid 6)' AND clicks > 0 ORDER BY 1" \
  "1 2 1 1
3 2 1 1"
expect "SELECT address, messages, opened, clicked, machine_hits FROM mailbeacon.contact_engagement
          WHERE address IN ('r1@acme.example', 'r6@acme.example', 'r9@acme.example') ORDER BY 1" \
  "r1@acme.example 1 0 0 1
r6@acme.example 1 1 1 2
r9@acme.example 1 1 0 2"
expect "SELECT count(*) FROM mailbeacon.recipient_timeline WHERE kind = 'honeypot'" 0
echo "ok views: people counted (proxy opens, implied opens), machines per class, contact_engagement"

# ---- real hits through the edge: the header facts
export MAILBEACON_BASE_URL=http://127.0.0.1:$port
"$rewrite" --sender sam@ourco.example --recipient kim@beta.example < "$data/01-single-html-7bit.eml" \
  > "$MB_RUN/out.eml" 2> "$MB_RUN/rewrite.log" || fail "rewrite: $(cat "$MB_RUN/rewrite.log")"
pixel=$(grep -o "http://127.0.0.1:$port/o/[A-Za-z0-9_-]*\.gif" "$MB_RUN/out.eml" | head -1)
link=$(grep -o "http://127.0.0.1:$port/c/[^\"]*" "$MB_RUN/out.eml" | sed 's/&amp;/\&/g' | head -1)
[ -n "$pixel" ] && [ -n "$link" ] || fail "no tracking URLs"
curl -s -o /dev/null -H 'Sec-Purpose: prefetch;prerender' -A "$chrome" "$pixel"
curl -s -o /dev/null -I -A "$chrome" "$link"
for _ in $(seq 1 100); do
  real=$(sql "SELECT message FROM mailbeacon.messages WHERE message::text NOT LIKE '00000000-0000-4000-8000-%'")
  [ -n "$real" ] && break
  sleep 0.05
done
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE message = '$real'" 2
[ "$(judged "$real")" = "open 0 127.0.0.1 prefetch sec_purpose
click 1 127.0.0.1 scanner head_request" ] || fail "through the edge: $(judged "$real")"
expect "SELECT purpose, method FROM mailbeacon.events WHERE message = '$real' ORDER BY occurred_at" \
  "prefetch;prerender GET
 HEAD"
echo "ok through the edge: Sec-Purpose kept and judged prefetch, HEAD a scanner"

# ---- a late click re-judges the earlier ones; final when the window closes
sent 10 $((now - 10 * M))
t=$(date +%s%6N)
hits "$(ev 10 c 1 "$t" 198.18.0.10 GET "$chrome")" "$(ev 10 c 4 "$t" 198.18.0.11 GET "$firefox")"
wait_rows "SELECT host(ip), class, reason, mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())
             FROM mailbeacon.events WHERE message = '$(uuid 10)' ORDER BY ip" "198.18.0.10 human no_machine_signal f
198.18.0.11 human no_machine_signal f"
hits "$(ev 10 c 2 $((t + 300000)) 198.18.0.10 GET "$chrome")" "$(ev 10 c 3 $((t + 600000)) 198.18.0.10 GET "$chrome")"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE message = '$(uuid 10)' AND reason = 'burst'" 3
[ "$(metric mailbeacon_batcher_rejudged_total)" -ge 3 ] || fail "rejudged: $(metric mailbeacon_batcher_rejudged_total)"
# the window (lookahead_ms, 5 s) closes by the timer, with the stream idle: the other person's
# click becomes final as it is
for _ in $(seq 1 200); do
  [ "$(sql "$open")" = 0 ] && break
  sleep 0.1
done
expect "$open" 0
expect "SELECT class, occurred_at < mailbeacon.final_before() FROM mailbeacon.events WHERE host(ip) = '198.18.0.11'" "human t"
[ "$(curl -s "http://127.0.0.1:$aport/metrics" | awk '$1 == "mailbeacon_batcher_final_lag_seconds" {print ($2 < 30)}')" = 1 ] ||
  fail "final lag: $(curl -s "http://127.0.0.1:$aport/metrics" | grep final_lag)"
echo "ok a late click re-judged two earlier ones (a burst); final when the window closed, the stream idle"

# ---- SIGHUP: new rules judge the next batch; a broken file is refused and the rules stay
sed -e 's/^version .*/version t-2/' "$MB_RUN/mailbeacon.rules" > "$MB_RUN/r2"
echo 'rule scanner test_bot ua~"TestBot"' >> "$MB_RUN/r2"
cp "$MB_RUN/r2" "$MB_RUN/mailbeacon.rules"
kill -HUP $spid
for _ in $(seq 1 100); do grep -q "SIGHUP: rules .* version t-2" "$MB_RUN/server.log" && break; sleep 0.05; done
grep -q "SIGHUP: rules .* version t-2" "$MB_RUN/server.log" || fail "rules not reloaded"
hits "$(ev 4 c 3 $((t0 + 4 * H)) 198.18.0.44 GET 'TestBot/1.0')"
wait_rows "SELECT class, reason, rules_version FROM mailbeacon.events WHERE host(ip) = '198.18.0.44'" "scanner test_bot t-2"
printf 'version t-3\nrule robot x kind=open\n' > "$MB_RUN/mailbeacon.rules"
kill -HUP $spid
for _ in $(seq 1 100); do grep -q "rules not reloaded" "$MB_RUN/server.log" && break; sleep 0.05; done
grep -q "SIGHUP: rules not reloaded, the old ones stay: $MB_RUN/mailbeacon.rules:2: unknown class 'robot'" \
  "$MB_RUN/server.log" || fail "broken rules file not refused with file:line"
[ "$(metric 'mailbeacon_rules_reloads_total{result="failed"}')" = 1 ] || fail "failed reload not counted"
hits "$(ev 4 c 4 $((t0 + 4 * H + S)) 198.18.0.45 GET 'TestBot/1.0')"
wait_rows "SELECT class, reason, rules_version FROM mailbeacon.events WHERE host(ip) = '198.18.0.45'" "scanner test_bot t-2"
echo "ok SIGHUP: new rules judge the next batch; a broken file refused with file:line, the old rules kept"

# ---- reclassify: stored events judged again with the rules as they are now
"$server" reclassify > "$MB_RUN/rc0.out" 2>&1 && fail "reclassify ran with a broken rules file"
grep -q "mailbeacon.rules:2: unknown class 'robot'" "$MB_RUN/rc0.out" || fail "reclassify: $(cat "$MB_RUN/rc0.out")"
raw="SELECT md5(string_agg(concat_ws('|', event_id, kind, message, recipient_idx, link_idx, occurred_at, ip, method,
       edge, user_agent, url, purpose), ',' ORDER BY event_id)) FROM mailbeacon.events"
before=$(sql "$raw")
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE occurred_at >= mailbeacon.final_before()" 0
total=$(sql "SELECT count(*) FROM mailbeacon.events")
sed -e 's/^version .*/version t-4/' "$MB_RUN/r2" > "$MB_RUN/mailbeacon.rules"
echo 'rule prefetch outlook_test kind=open ua~"Microsoft Outlook"' >> "$MB_RUN/mailbeacon.rules"
since=$(date -u -d "@$((t0 / 1000000 - 3600))" '+%Y-%m-%d %H:%M:%S+00')
"$server" reclassify --since "$since" > "$MB_RUN/rc1.out" 2> "$MB_RUN/rc1.err" || fail "reclassify: $(cat "$MB_RUN/rc1.err")"
grep -q "^$total events from .* judged with rules t-4 (.*): 2 changed class or reason$" "$MB_RUN/rc1.out" ||
  fail "reclassify said: $(cat "$MB_RUN/rc1.out"); not final yet: $(sql "SELECT kind, host(ip), occurred_at, mailbeacon.final_before(), now() FROM mailbeacon.events WHERE occurred_at >= mailbeacon.final_before()")"
[ "$(judged "$(uuid 4)" | head -1)" = "open 0 198.18.0.4 prefetch outlook_test" ] || fail "reclassified: $(judged "$(uuid 4)")"
[ "$(judged "$(uuid 9)")" = "open 0 192.0.2.99 sender submitting_client
click 1 198.51.100.20 sender sender_ip
open 0 198.18.0.9 prefetch outlook_test" ] || fail "reclassified: $(judged "$(uuid 9)")"
[ "$(judged "$(uuid 5)" | awk '{print $5}' | sort -u)" = burst ] || fail "the burst lost: $(judged "$(uuid 5)")"
[ "$(judged "$(uuid 8)" | awk '{print $5}' | sort | uniq -c | tr -s ' ')" = " 1 honeypot
 3 honeypot_neighbour
 2 no_machine_signal" ] || fail "the honeypot lost: $(judged "$(uuid 8)")"
expect "SELECT DISTINCT rules_version FROM mailbeacon.events" "t-4"
[ "$(sql "$raw")" = "$before" ] || fail "reclassify changed raw facts"
# the bounds: nothing before --since
"$server" reclassify --until "$since" > "$MB_RUN/rc2.out" || fail "reclassify --until"
grep -q "^0 events from -infinity to " "$MB_RUN/rc2.out" || fail "reclassify --until: $(cat "$MB_RUN/rc2.out")"
"$server" reclassify --since yesterday-ish > "$MB_RUN/rc3.out" 2>&1 && fail "reclassify took a bad time"
grep -q "since/--until" "$MB_RUN/rc3.out" || fail "bad time: $(cat "$MB_RUN/rc3.out")"
echo "ok reclassify: the rules of now, context judged again, raw facts unchanged, bounds kept, a bad file refused"

# ---- once the batcher trusts what it saw lately (server/recent.h: a window after its start, no
# other batcher), it asks PostgreSQL only for the messages a rule may fire for; the rules still fire
kill -TERM $spid && wait $spid
spid=
sed -e 's/^version .*/version t-5/' -e 's/^set burst_window_ms .*/set burst_window_ms 1000/' \
  -e 's/^set pair_window_ms .*/set pair_window_ms 500/' -e 's/^set honeypot_window_ms .*/set honeypot_window_ms 2000/' \
  "$MB_RUN/r2" > "$MB_RUN/mailbeacon.rules"
"$server" > "$MB_RUN/server2.log" 2>&1 &
spid=$!
aport=$(mb_wait_port $spid "$MB_RUN/server2.log" admin) || fail "server did not start again"
skipped() { metric 'mailbeacon_batcher_context_messages_total{result="skipped"}'; }
for m in 12 13 14 15; do sent $m $(($(date +%s%6N) - 10 * M)); done
for i in $(seq 1 40); do # a person's lone open, until one is not asked for (the old batcher's idle
  # time and the windows pass first)
  sent $((100 + i)) $(($(date +%s%6N) - 10 * M))
  hits "$(ev $((100 + i)) o 0 "$(date +%s%6N)" 198.18.1.1 GET "$outlook")"
  sleep 0.5
  [ "$(skipped)" -gt 0 ] && break
done
[ "$(skipped)" -gt 0 ] || fail "recent never trusted: $(curl -s "http://127.0.0.1:$aport/metrics" | grep context)"
t=$(date +%s%6N)
hits "$(ev 13 c 1 "$t" 198.18.0.13 GET "$chrome")" "$(ev 13 c 2 $((t + 100000)) 198.18.0.13 GET "$chrome")"
hits "$(ev 13 c 3 $((t + 200000)) 198.18.0.13 GET "$chrome")" \
  "$(ev 14 h 0 "$t" 198.18.0.14 GET "$chrome")" "$(ev 15 c 1 "$t" 198.18.0.150 GET "$chrome")"
hits "$(ev 14 c 1 $((t + 300000)) 198.18.0.14 GET "$chrome")" "$(ev 15 c 1 $((t + 300000)) 198.18.0.151 GET "$firefox")" \
  "$(ev 12 o 0 $((t + 300000)) 198.18.0.12 GET "$outlook")"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE message IN ('$(uuid 12)', '$(uuid 13)', '$(uuid 14)', '$(uuid 15)')" 8
for _ in $(seq 1 100); do [ "$(sql "SELECT count(*) FROM mailbeacon.events WHERE reason = 'paired_scan' AND message = '$(uuid 15)'")" = 1 ] && break; sleep 0.05; done
[ "$(judged "$(uuid 13)")" = "click 1 198.18.0.13 scanner burst
click 2 198.18.0.13 scanner burst
click 3 198.18.0.13 scanner burst" ] || fail "burst with recent trusted: $(judged "$(uuid 13)")"
[ "$(judged "$(uuid 14)")" = "honeypot 0 198.18.0.14 scanner honeypot
click 1 198.18.0.14 scanner honeypot_neighbour" ] || fail "honeypot with recent trusted: $(judged "$(uuid 14)")"
[ "$(judged "$(uuid 15)")" = "click 1 198.18.0.150 scanner paired_scan
click 1 198.18.0.151 human no_machine_signal" ] || fail "pair with recent trusted: $(judged "$(uuid 15)")"
[ "$(judged "$(uuid 12)")" = "open 0 198.18.0.12 human no_machine_signal" ] || fail "a person: $(judged "$(uuid 12)")"
echo "ok recent trusted: $(skipped) messages not asked for; bursts, honeypot neighbours and pairs still judged"
