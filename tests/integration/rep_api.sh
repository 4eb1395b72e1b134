#!/usr/bin/env bash
# The rep API (docs/alerts.md) through the real path: a private Redis and
# PostgreSQL, mailbeacon-server --role all with rep_listen, stream entries
# with chosen facts, curl as the client.
#   - Server-Sent Events: one hit, exactly one alert on the stream; two
#     streams of one rep both get it, another rep's stream does not; the
#     stream dropped, a hit, a reconnection with Last-Event-ID: the missed
#     alert and nothing twice; the heartbeat of an idle stream; the headers;
#   - alert_share: a shared address's alerts reach the rep it names, who
#     may read its messages;
#   - isolation: another rep's message 403; no token, a forged one, an
#     expired one (made here from docs/tokens.md with the key file) and one
#     a new signing key revoked: 401;
#   - the cookie a token is exchanged for (HttpOnly, SameSite=Strict; Secure
#     over HTTPS), and signing out;
#   - JSON: /v1/alerts?after=, /v1/messages, /v1/messages/UUID;
#   - HTTPS: --role api alone with a certificate, its page's headers;
#   - SIGTERM with streams open: a prompt, clean stop.
# usage: rep_api.sh MAILBEACON_SERVER MAILBEACON_REWRITE
set -euo pipefail
server=$1 rewrite=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-repapi.XXXXXX)
spid= tpid= curls=()
trap 'for p in ${curls[@]+"${curls[@]}"} $spid $tpid; do kill -9 $p 2>/dev/null || true; done; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -30 "$MB_RUN/server.log" >&2 || true
  exit 1
}

scenario_rules "$here/../../rules/mailbeacon.rules"
export MAILBEACON_REP_LISTEN=127.0.0.1:0 MAILBEACON_ALERT_SHARE=sales@ourco.example=dana@ourco.example
scenario_start "$server" "$rewrite" edge-r
api=$(mb_wait_port $spid "$MB_RUN/server.log" api) || fail "the rep API did not start"
base=http://127.0.0.1:$api
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
token() { "$server" rep-token "$1" 2>/dev/null; }
sam=$(token sam@ourco.example) lee=$(token lee@ourco.example) dana=$(token Dana@ourco.example)
get() { # get TOKEN PATH: the body; the status in $MB_RUN/status
  curl -s -o "$MB_RUN/body" -w '%{http_code}' -H "Authorization: Bearer $1" "$base$2" > "$MB_RUN/status" || true
  cat "$MB_RUN/body"
}
status() { cat "$MB_RUN/status"; }
open_stream() { # open_stream NAME TOKEN [LAST_EVENT_ID]: curl reading the stream into $MB_RUN/NAME
  local h=()
  [ -n "${3:-}" ] && h=(-H "Last-Event-ID: $3")
  curl -sN -D "$MB_RUN/$1.headers" -H "Authorization: Bearer $2" ${h[@]+"${h[@]}"} "$base/v1/alerts/stream" \
    > "$MB_RUN/$1" 2>/dev/null &
  curls+=($!)
  eval "pid_$1=$!"
}
wait_streams() { # wait_streams N: until N streams are open
  for _ in $(seq 1 200); do [ "$(metric mailbeacon_api_streams)" = "$1" ] && return 0; sleep 0.05; done
  fail "streams open: $(metric mailbeacon_api_streams), not $1"
}
ids() { sed -n 's/^id: //p' "$MB_RUN/$1" | tr '\n' ' '; } # the alert ids a stream got, in order
wait_id() { # wait_id NAME ID
  for _ in $(seq 1 300); do grep -qx "id: $2" "$MB_RUN/$1" && return 0; sleep 0.05; done
  fail "stream $1 did not get alert $2: $(ids "$1")"
}

now=$(date +%s%6N)
t0=$((now - 6 * H))
sent() { # sent N REP
  xadd type sent v 1 message "$(uuid "$1")" message_id "m$1@ourco.example" rep "$2" \
    recipients "[{\"i\":1,\"addr\":\"r$1@acme.example\",\"name\":\"R $1\"}]" token_recipient 1 subject "s$1" \
    sent_at $t0 links '[{"i":1,"url":"https://e.example/1"},{"i":2,"url":"https://e.example/2"}]' client_ip ''
}
sent 1 sam@ourco.example
sent 2 lee@ourco.example
sent 3 sales@ourco.example
wait_rows "SELECT count(*) FROM mailbeacon.messages" 3
open_stream idle "$lee" # no alert of lee's comes before the end: it shows the heartbeat
open_stream s1 "$sam"
open_stream s2 "$sam"
open_stream d1 "$dana"
wait_streams 4

# ---- one hit, one alert, on both of sam's streams, not on lee's
hits "$(ev 1 o 0 $((t0 + 20 * M)) 198.18.0.1 GET "$outlook")"
wait_id s1 1
wait_id s2 1
sleep 0.3
[ "$(ids s1)" = "1 " ] && [ "$(ids s2)" = "1 " ] || fail "sam's streams: $(ids s1) / $(ids s2)"
[ -z "$(ids idle)" ] || fail "lee's stream got sam's alert: $(ids idle)"
grep -q '^data: {.*"text": "R 1 <r1@acme.example> opened \\"s1\\"".*}$' "$MB_RUN/s1" || fail "event: $(cat "$MB_RUN/s1")"
head -1 "$MB_RUN/s1" | grep -qx "retry: 3000" || fail "no retry: $(head -2 "$MB_RUN/s1")"
for h in 'Content-Type: text/event-stream; charset=utf-8' 'Cache-Control: no-cache' 'X-Accel-Buffering: no'; do
  grep -qi "^$h"$'\r'"$" "$MB_RUN/s1.headers" || fail "stream header '$h': $(cat "$MB_RUN/s1.headers")"
done
echo "ok one hit: exactly one alert on each of the rep's two streams, none on another rep's; the headers"

# ---- dropped, a hit meanwhile, back with Last-Event-ID
kill $pid_s1
wait $pid_s1 2>/dev/null || true
# (the server notices a client gone from an idle stream at its next write:
# the next alert or heartbeat)
hits "$(ev 1 c 2 $((t0 + 30 * M)) 198.18.0.1 GET "$chrome")"
wait_id s2 2
open_stream s1b "$sam" 1
wait_id s1b 2
hits "$(ev 1 c 1 $((t0 + 31 * M)) 198.18.0.1 GET "$chrome")"
wait_id s1b 3
wait_id s2 3
sleep 0.3
[ "$(ids s1b)" = "2 3 " ] || fail "after Last-Event-ID 1: $(ids s1b)"
[ "$(ids s2)" = "1 2 3 " ] || fail "the stream that stayed: $(ids s2)"
echo "ok reconnected with Last-Event-ID: the missed alert, then live ones, nothing twice"

# ---- a shared address: its alerts reach dana (alert_share)
hits "$(ev 3 o 0 $((t0 + 40 * M)) 198.18.0.3 GET "$outlook")"
wait_id d1 4
[ "$(ids d1)" = "4 " ] || fail "dana's stream: $(ids d1)"
get "$dana" /v1/me | grep -q '"reads":\["dana@ourco.example","sales@ourco.example"\]' || fail "dana: $(cat "$MB_RUN/body")"
get "$dana" "/v1/messages/$(uuid 3)" > /dev/null
[ "$(status)" = 200 ] || fail "dana on the shared address's message: $(status)"
get "$lee" "/v1/messages/$(uuid 3)" > /dev/null
[ "$(status)" = 403 ] || fail "lee on the shared address's message: $(status)"
echo "ok alert_share: a shared address's alerts and messages reach the rep it names, nobody else"

# ---- isolation and tokens
get "$sam" "/v1/messages/$(uuid 2)" | grep -q '"error"' && [ "$(status)" = 403 ] || fail "sam on lee's message: $(status)"
get "$sam" "/v1/messages/$(uuid 9)" > /dev/null
[ "$(status)" = 404 ] || fail "no such message: $(status)"
curl -s -o /dev/null -w '%{http_code}' "$base/v1/alerts" | grep -qx 401 || fail "no token"
forged=${sam%?}$([ "${sam: -1}" = A ] && echo B || echo A)
get "$forged" /v1/alerts > /dev/null
[ "$(status)" = 401 ] || fail "forged token: $(status)"
expired=$(python3 - "$MB_RUN/keys" <<'PY'
import base64, hashlib, hmac, struct, sys, time
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 3 and f[2] == "sign":
        kid, key = int(f[0]), bytes.fromhex(f[1])
addr = b"sam@ourco.example"
raw = bytes([kid]) + struct.pack(">Q", int(time.time()) - 60) + bytes([len(addr)]) + addr
raw += hmac.new(key, b"mailbeacon rep token v1" + raw, hashlib.sha256).digest()
print("mbr1." + base64.urlsafe_b64encode(raw).decode().rstrip("="))
PY
)
get "$expired" /v1/alerts | grep -q expired && [ "$(status)" = 401 ] || fail "expired token: $(status) $(cat "$MB_RUN/body")"
get "$sam" "/v1/alerts?after=1" | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert [x["id"] for x in a] == [2, 3], a
assert a[0]["kind"] == "click" and a[0]["url"] == "https://e.example/2" and a[0]["recipient_name"] == "R 1", a[0]
' || fail "/v1/alerts?after=1: $(cat "$MB_RUN/body")"
get "$sam" "/v1/alerts?after=x" > /dev/null
[ "$(status)" = 400 ] || fail "after=x: $(status)"
get "$sam" /v1/messages | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert [x["subject"] for x in m] == ["s1"], m
assert m[0]["opened"] and m[0]["clicked"] and m[0]["recipients"] == [{"i": 1, "address": "r1@acme.example", "name": "R 1"}], m
' || fail "/v1/messages: $(cat "$MB_RUN/body")"
get "$sam" "/v1/messages/$(uuid 1)" | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert [(e["kind"], e["class"], e["reason"]) for e in m["events"]] == [("open", "human", "no_machine_signal"),
  ("click", "human", "no_machine_signal"), ("click", "human", "no_machine_signal")], m["events"]
assert "ip" not in m["events"][0], m["events"][0]
# the user agent only as its client family (docs/privacy.md)
assert [e["client"] for e in m["events"]] == ["Outlook", "Chrome", "Chrome"], m["events"]
assert all("user_agent" not in e for e in m["events"]), m["events"][0]
' || fail "/v1/messages/UUID: $(cat "$MB_RUN/body")"
echo "ok another rep's message 403, none 404; no token, forged, expired 401; the JSON of alerts and messages"

# ---- the cookie
curl -s -D "$MB_RUN/cookie.headers" -o /dev/null -X POST -H "Authorization: Bearer $sam" "$base/v1/session"
grep -qi '^Set-Cookie: mb_rep=mbr1\.[^;]*; Path=/; HttpOnly; SameSite=Strict; Max-Age=[0-9]*'$'\r''$' "$MB_RUN/cookie.headers" ||
  fail "session cookie: $(cat "$MB_RUN/cookie.headers")"
cookie=$(sed -n 's/^Set-Cookie: \(mb_rep=[^;]*\);.*/\1/pi' "$MB_RUN/cookie.headers")
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$cookie" "$base/v1/me")" = 200 ] || fail "the cookie is not taken"
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$cookie" -X POST "$base/v1/session")" = 401 ] ||
  fail "a cookie made a new session (only a bearer token may)"
curl -s -D - -o /dev/null -X DELETE "$base/v1/session" | grep -qi '^Set-Cookie: mb_rep=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0' ||
  fail "signing out"
echo "ok a token for an HttpOnly SameSite=Strict cookie, taken by the API; signing out clears it"

# ---- heartbeat: lee's stream, idle since the start
for _ in $(seq 1 400); do grep -qx ':' "$MB_RUN/idle" && break; sleep 0.05; done
grep -qx ':' "$MB_RUN/idle" || fail "no heartbeat on an idle stream: $(cat "$MB_RUN/idle")"
echo "ok an idle stream gets a heartbeat comment"

# ---- a new signing key revokes the tokens made before (SIGHUP)
"$rewrite" --keygen "$MB_RUN/keys" > /dev/null
kill -HUP $spid
for _ in $(seq 1 100); do grep -q "rep API: 2 keys loaded" "$MB_RUN/server.log" && break; sleep 0.05; done
get "$sam" /v1/me > /dev/null
[ "$(status)" = 401 ] || fail "a revoked token: $(status)"
[ "$(get "$(token sam@ourco.example)" /v1/me > /dev/null; status)" = 200 ] || fail "a new token: $(status)"
echo "ok a new signing key revokes rep tokens"

# ---- HTTPS: the API alone, with a certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$MB_RUN/key.pem" -out "$MB_RUN/cert.pem" 2>/dev/null
MAILBEACON_REP_TLS_CERT=$MB_RUN/cert.pem MAILBEACON_REP_TLS_KEY=$MB_RUN/key.pem MAILBEACON_API_ADMIN_LISTEN=127.0.0.1:0 \
  "$server" --role api >> "$MB_RUN/tls.log" 2>&1 &
tpid=$!
tls=$(mb_wait_port $tpid "$MB_RUN/tls.log" api) || fail "--role api: $(cat "$MB_RUN/tls.log")"
grep -q "rep API on .*(port $tls), HTTPS; admin on" "$MB_RUN/tls.log" || fail "$(cat "$MB_RUN/tls.log")"
sam=$(token sam@ourco.example)
curl -s --cacert "$MB_RUN/cert.pem" -D "$MB_RUN/tls.headers" -X POST -H "Authorization: Bearer $sam" \
  "https://127.0.0.1:$tls/v1/session" | grep -q '"rep":"sam@ourco.example"' || fail "HTTPS: $(cat "$MB_RUN/tls.log")"
grep -qi '^Set-Cookie: .*; Secure'$'\r''$' "$MB_RUN/tls.headers" || fail "no Secure cookie over HTTPS: $(cat "$MB_RUN/tls.headers")"
curl -s --cacert "$MB_RUN/cert.pem" -D "$MB_RUN/page.headers" "https://127.0.0.1:$tls/" | grep -q '<script src="/app.js"' ||
  fail "the page"
grep -qi "^Content-Security-Policy: default-src 'self'" "$MB_RUN/page.headers" || fail "CSP: $(cat "$MB_RUN/page.headers")"
curl -s -o /dev/null "http://127.0.0.1:$tls/v1/me" && fail "plain HTTP answered on the HTTPS listener"
echo "ok --role api alone over HTTPS: a Secure cookie, the page with its Content-Security-Policy"

# ---- SIGTERM with streams open
t=$(date +%s%N)
kill -TERM $spid
wait $spid || fail "exit status $? on SIGTERM"
spid=
[ $((($(date +%s%N) - t) / 1000000)) -lt 5000 ] || fail "stopping took $((($(date +%s%N) - t) / 1000000)) ms"
kill -TERM $tpid
wait $tpid || fail "--role api: exit status $? on SIGTERM"
tpid=
echo "ok SIGTERM with streams open: a clean stop"
