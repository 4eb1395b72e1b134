#!/usr/bin/env bash
# The main job, as far as the parts exist today: installs what is missing,
# builds, starts a private Redis and PostgreSQL on Unix sockets in a temp dir,
# creates a key and the schema, starts the tracking edge, rewrites a sample
# message as the MTA would, shows its tracked links and pixel (decoded with
# --explain), hits the pixel and links as a security scanner, a link
# checker, a prefetching browser and the recipient would, shows what landed
# in the Redis stream (the "sent" record and the hits), then starts the
# batcher and shows the rows it loaded into PostgreSQL, each judged human or
# machine with its reason, and the engagement views; then stops everything
# and removes its temp dir.
# usage: bash scripts/demo.sh [MESSAGE.eml]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mailbeacon-rewrite mailbeacon-server >/dev/null
rewrite=$PWD/build/mailbeacon-rewrite
server=$PWD/build/mailbeacon-server
sample=${1:-tests/data/12-mixed-related-alternative-pdf.eml}

. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mailbeacon-demo.XXXXXX)
spid= bpid= apid= cpid=
trap 'for p in $spid $bpid $apid $cpid; do kill $p 2>/dev/null || true; done; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
mb_redis_start
mb_pg_start
mkdir -p "$MB_RUN/spool"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
cat > "$MB_RUN/mailbeacon.conf" <<CONF
base_url = https://t.mailbeacon.test
key_file = $MB_RUN/keys
never_track = ourco.example
redis = $(mb_redis_addr)
spool_dir = $MB_RUN/spool
listen = 127.0.0.1:0
admin_listen = 127.0.0.1:0
batcher_admin_listen = 127.0.0.1:0
postgres = $(mb_pg_conninfo)
batch_wait_ms = 50
rep_listen = 127.0.0.1:0
api_admin_listen = 127.0.0.1:0
log_file = stderr
rules_file = $PWD/rules/mailbeacon.rules
trusted_proxies = 127.0.0.1
ip_truncate = yes
CONF
echo "== mailbeacon-server migrate (creates the PostgreSQL schema)"
"$server" --config "$MB_RUN/mailbeacon.conf" migrate | sed 's/^/   /'
echo
# the edge alone first, so that the stream can be shown before the batcher empties it
# (listeners on port 0: any free port, which the start line in its log says)
"$server" --config "$MB_RUN/mailbeacon.conf" --role edge 2> "$MB_RUN/server.log" &
spid=$!
http=$(mb_wait_port $spid "$MB_RUN/server.log" listen) && admin=$(mb_wait_port $spid "$MB_RUN/server.log" admin)

echo "== rewriting $sample (as Postfix would pipe it)"
"$rewrite" --config "$MB_RUN/mailbeacon.conf" --verbose < "$sample" > "$MB_RUN/out.eml"
echo "   $(wc -c < "$sample") bytes in, $(wc -c < "$MB_RUN/out.eml") bytes out; diff of the lines that changed:"
diff <(tr -d '\r' < "$sample") <(tr -d '\r' < "$MB_RUN/out.eml") | grep '^[<>]' | cut -c1-160 | sed 's/^/   /' || true

echo
echo "== what each tracking URL says (mailbeacon-rewrite --explain)"
python3 - "$MB_RUN/out.eml" > "$MB_RUN/urls" <<'PY'
import email, re, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"))
for part in msg.walk():
    if part.get_content_type() == "text/html" and not part.get_filename():
        html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for u in re.findall(r'(https://t\.mailbeacon\.test/[oc]/[^"]+)"', html):
            print(u.replace("&amp;", "&"))
PY
while read -r url; do
  echo "   ${url:0:96}..."
  echo "     $("$rewrite" --config "$MB_RUN/mailbeacon.conf" --explain "$url")"
done < "$MB_RUN/urls"

echo
echo "== hits served by mailbeacon-server (trusted_proxies = 127.0.0.1: X-Forwarded-For says who)"
hit() { # hit URL ADDRESS USER_AGENT [CURL_ARGS...]
  local url=$1 addr=$2 ua=$3
  shift 3
  curl -s -o /dev/null -H "X-Forwarded-For: $addr" -A "$ua" "$@" \
    -w "   %{http_code} %{content_type}%{redirect_url}  <- $addr ${url:26:30}...\n" \
    "http://127.0.0.1:$http${url#https://t.mailbeacon.test}"
}
pixel=$(grep -m1 '/o/' "$MB_RUN/urls")
mapfile -t links < <(grep '/c/' "$MB_RUN/urls")
browser="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
echo "-- at delivery, a security scanner fetches every link at once"
for l in "${links[@]}"; do hit "$l" 198.51.100.23 "$browser"; done
echo "-- a link checker probes one with HEAD; a browser prefetches the pixel"
hit "${links[0]}" 192.0.2.10 "LinkChecker/1.0" -I
hit "$pixel" 203.0.113.50 "$browser" -H "Sec-Purpose: prefetch"
echo "-- the recipient opens the message, then follows two links"
hit "$pixel" 203.0.113.50 "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928)"
sleep 1
hit "${links[0]}" 203.0.113.50 "$browser"
sleep 2
hit "${links[1]}" 203.0.113.50 "$browser"
sleep 0.3
echo
echo "== the Redis stream mailbeacon:events: the sent record, then the hits"
mb_redis_cli --raw XRANGE mailbeacon:events - + | sed 's/^/   /'
echo
echo "== mailbeacon-server /healthz"
echo "   $(curl -s "http://127.0.0.1:$admin/healthz")"
kill -TERM $spid && wait $spid && spid=
echo "   $(tail -1 "$MB_RUN/server.log")"

echo
echo "== the rep API (mailbeacon-server --role api): the rep's live alert stream, opened now"
"$server" --config "$MB_RUN/mailbeacon.conf" --role api 2> "$MB_RUN/api.log" &
apid=$!
api=$(mb_wait_port $apid "$MB_RUN/api.log" api)
rep=$(sed -n 's/^From:.*<\(.*\)>.*/\1/p' "$sample" | head -1)
token=$("$server" --config "$MB_RUN/mailbeacon.conf" rep-token "$rep" 2>/dev/null)
echo "   rep token for $rep: ${token:0:24}... (mailbeacon-server rep-token $rep)"
curl -sN -H "Authorization: Bearer $token" "http://127.0.0.1:$api/v1/alerts/stream" > "$MB_RUN/alerts.sse" &
cpid=$!
echo "   the rep page: http://127.0.0.1:$api/ (sign in with the token)"

echo
echo "== the batcher (mailbeacon-server --role batcher) loads the stream into PostgreSQL"
"$server" --config "$MB_RUN/mailbeacon.conf" --role batcher 2> "$MB_RUN/batcher.log" &
bpid=$!
badmin=$(mb_wait_port $bpid "$MB_RUN/batcher.log" admin)
want=$((${#links[@]} + 5))
for _ in $(seq 1 200); do
  [ "$(mb_psql -tAc 'SELECT count(*) FROM mailbeacon.events')" -ge "$want" ] && break
  sleep 0.05
done
echo "   each event judged (docs/classifier.md); a person's click stays open to re-judgement for 5 s:"
for _ in $(seq 1 100); do
  [ "$(mb_psql -tAc 'SELECT count(*) FROM mailbeacon.events
                     WHERE NOT mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())')" = 0 ] && break
  sleep 0.1
done
echo "   stream entries left: $(mb_redis_cli XLEN mailbeacon:events)"
echo "-- mailbeacon.events"
mb_psql -c "SELECT kind, link_idx AS link, occurred_at, host(ip) AS ip, method, class, reason,
                           mailbeacon.is_final(class, occurred_at, mailbeacon.final_before()) AS final,
                           left(url, 32) AS url FROM mailbeacon.events ORDER BY occurred_at" | sed 's/^/   /'
echo "-- mailbeacon.message_engagement (per message)"
mb_psql -x -c "SELECT message, rep, subject, sent_at, recipients, opens, human_opens, first_open, clicks,
                            human_clicks, human_unique_clicks, prefetch_opens, scanner_clicks
                       FROM mailbeacon.message_engagement" | sed 's/^/   /'
echo "-- mailbeacon.link_clicks"
mb_psql -c "SELECT link_idx, url, clicks, human_clicks, scanner_clicks FROM mailbeacon.link_clicks ORDER BY link_idx" |
  sed 's/^/   /'
echo "-- mailbeacon.rep_daily"
mb_psql -c "SELECT * FROM mailbeacon.rep_daily" | sed 's/^/   /'
echo "-- mailbeacon.recipient_timeline"
mb_psql -c "SELECT address, occurred_at, kind, class, url FROM mailbeacon.recipient_timeline ORDER BY occurred_at" |
  sed 's/^/   /'
echo "-- mailbeacon.contact_engagement"
mb_psql -c "SELECT * FROM mailbeacon.contact_engagement" | sed 's/^/   /'
echo "   batcher /healthz: $(curl -s "http://127.0.0.1:$badmin/healthz")"
kill -TERM $bpid && wait $bpid && bpid=
echo "   $(tail -1 "$MB_RUN/batcher.log")"
echo
echo "== the rep's alerts, as the stream delivered them (docs/alerts.md): people only, never a machine"
for _ in $(seq 1 100); do
  [ "$(grep -c '^id: ' "$MB_RUN/alerts.sse")" -ge "$(mb_psql -tAc 'SELECT count(*) FROM mailbeacon.alerts')" ] && break
  sleep 0.05
done
python3 - "$MB_RUN/alerts.sse" <<'PY' | sed 's/^/   /'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("data: "):
        a = json.loads(line[6:])
        print("alert %d (%s, %s): %s" % (a["id"], a["kind"], a["class"], a["text"]))
PY
echo "-- mailbeacon.alerts"
mb_psql -c "SELECT id, rep, kind, recipient, left(url, 32) AS url, occurred_at, implied_open, opens, clicks
              FROM mailbeacon.alerts ORDER BY id" | sed 's/^/   /'
kill $cpid 2>/dev/null || true
cpid=
kill -TERM $apid && wait $apid && apid=
echo
echo "done."
