#!/usr/bin/env bash
# mailbeacon-server with a private Redis: hits become events with the right
# fields, bad tokens are answered but never recorded or redirected, limits
# and methods, many keep-alive connections, idle connections, and the
# events of a load all in the stream when it stops.
# usage: server_hits.sh MAILBEACON_SERVER MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
server=$1 rewrite=$2 data=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-server.XXXXXX)
spid= port= aport= base=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; rm -rf "$MB_RUN"' EXIT
passed=0
ok() { passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; tail -20 "$MB_RUN/server.log" >&2 || true; exit 1; }
check() { python3 "$here/server_check.py" "$@"; }
ulimit -n 8192 2>/dev/null || true

mb_redis_start
"$rewrite" --keygen "$MB_RUN/oldkeys" >/dev/null   # a key the server will not know
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
# both listeners on any free port (port 0): each start's log line says which
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$MB_RUN/keys \
  MAILBEACON_REDIS=$(mb_redis_addr) MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_REDIS_STREAM=mb:hits \
  MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_EDGE_ID=edge-test
start_server() { # sets port, aport and base from the start line (in log_file when that is set)
  local log=${MAILBEACON_LOG_FILE:-$MB_RUN/server.log} from host
  from=$(mb_log_size "$log")
  "$server" >> "$MB_RUN/server.log" 2>&1 &
  spid=$!
  port=$(mb_wait_port $spid "$log" listen 15 "$from") && aport=$(mb_wait_port $spid "$log" admin 15 "$from") ||
    fail "server did not start"
  host=${MAILBEACON_LISTEN%:*}
  base=http://$host:$port
}
stop_server() {
  kill -TERM $spid
  wait $spid || fail "server exit status $?"
  spid=
}
start_server
stream=mb:hits
events() { check events "$(mb_redis_sock)" "$stream"; }
# events in the stream: the sum of the entries' n, counted inside Redis
nevents() {
  mb_redis_cli EVAL "local t, s = 0, '-'
    while true do
      local r = redis.call('XRANGE', KEYS[1], s, '+', 'COUNT', 1000)
      if #r == 0 then return t end
      for _, e in ipairs(r) do local f = e[2]
        for i = 1, #f, 2 do if f[i] == 'n' then t = t + tonumber(f[i + 1]) end end end
      s = '(' .. r[#r][1]
    end" 1 "$stream"
}

# tracked URLs from a real rewrite (without Redis for the sent record)
MAILBEACON_REDIS= "$rewrite" --recipient dana@acme.example < "$data/12-mixed-related-alternative-pdf.eml" \
  > "$MB_RUN/out.eml"
python3 - "$MB_RUN/out.eml" > "$MB_RUN/urls" <<'PY'
import email, re, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
for p in m.walk():
    if p.get_content_type() == "text/html":
        html = p.get_payload(decode=True).decode()
        for u in re.findall(r'https://t\.mailbeacon\.test(/[oc]/[^"]+)"', html):
            print(u.replace("&amp;", "&"))
PY
[ "$(wc -l < "$MB_RUN/urls")" = 4 ] || fail "expected 3 links and a pixel"
honeypot=$(python3 - "$MB_RUN/out.eml" <<'PY'
import email, re, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
for p in m.walk():
    if p.get_content_type() == "text/html":
        print(" ".join(re.findall(r'https://t\.mailbeacon\.test(/h/[A-Za-z0-9_-]+)"', p.get_payload(decode=True).decode())))
PY
)
[ "$(wc -w <<< "$honeypot")" = 1 ] || fail "expected one honeypot link: $honeypot"
pixel=$(grep '^/o/' "$MB_RUN/urls")
click=$(grep '^/c/' "$MB_RUN/urls" | head -1)
msg=$("$rewrite" --explain "https://t.mailbeacon.test$pixel" | python3 -c 'import json,sys; print(json.load(sys.stdin)["message"])')

# 1. the pixel and a redirect, GET and HEAD
hdr=$(curl -s -D - -o "$MB_RUN/gif" "$base$pixel")
grep -q "200 OK" <<< "$hdr" && grep -qi "^Content-Type: image/gif" <<< "$hdr" || fail "pixel headers: $hdr"
grep -qi "^Cache-Control: no-store, no-cache, must-revalidate, private, max-age=0" <<< "$hdr" || fail "pixel cache"
grep -qi "^Pragma: no-cache" <<< "$hdr" && grep -qi "^Expires: 0" <<< "$hdr" || fail "pixel pragma/expires"
[ "$(stat -c %s "$MB_RUN/gif")" = 43 ] && [ "$(head -c 6 "$MB_RUN/gif")" = GIF89a ] || fail "not the 43-byte GIF"
hdr=$(curl -s -D - -o /dev/null "$base$click")
grep -q "302 Found" <<< "$hdr" && grep -qi "^Location: https://example.com/pricing" <<< "$hdr" || fail "redirect: $hdr"
grep -qi "^Referrer-Policy: no-referrer" <<< "$hdr" && grep -qi "^Cache-Control: no-store" <<< "$hdr" || fail "redirect headers"
[ "$(curl -s -I -o /dev/null -w '%{http_code}' "$base$pixel")" = 200 ] || fail "HEAD pixel"
ok

# 2. N hits over keep-alive -> exactly N events with the right fields
n=300
res=$(check hits "$port" "$MB_RUN/urls" $n)
[ "$res" = '{"200": 75, "302": 225}' ] || fail "statuses $res"
for _ in $(seq 1 100); do [ "$(nevents)" -ge $((n + 3)) ] && break; sleep 0.05; done
events > "$MB_RUN/ev.json"
python3 - "$MB_RUN/ev.json" "$msg" $((n + 3)) <<'PY' || fail "event fields"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert len(ev) == int(sys.argv[3]), (len(ev), sys.argv[3])
assert len({e["id"] for e in ev}) == len(ev), "duplicate event ids"
for e in ev:
    assert e["message"] == sys.argv[2] and e["recipient"] == 1 and e["edge"] == "edge-test", e
    assert e["ip"] == "127.0.0.1" and e["method"] in ("GET", "HEAD"), e
    if e["kind"] == "o":
        assert e["link"] == 0 and e["url"] == "", e
    else:
        assert e["kind"] == "c" and 1 <= e["link"] <= 3 and e["url"].startswith("https://example.com/"), e
assert sum(e["ua"] == "mailbeacon-test/1.0" for e in ev) == int(sys.argv[3]) - 3
PY
ok

# 3. bad tokens: pixel still served, click 404, nothing recorded, no redirect
before=$(nevents)
tok=${pixel:3:48} ctok=${click:3:48} cq=${click#*\?}
flip() { local t=$1; local c=${t:20:1}; [ "$c" = A ] && c=B || c=A; echo "${t:0:20}$c${t:21}"; }
old=$(MAILBEACON_KEY_FILE=$MB_RUN/oldkeys "$rewrite" < "$data/01-single-html-7bit.eml" | grep -o '/o/[^"]*' | head -1)
for p in "/o/$(flip "$tok").gif" "/o/${tok:0:40}.gif" "/o/${tok}AAAA.gif" "/o/${tok:0:47}+.gif" "$old" \
         "/o/$(printf 'A%.0s' $(seq 1 300)).gif"; do
  [ "$(curl -s -o "$MB_RUN/g2" -w '%{http_code}' "$base$p")" = 200 ] || fail "bad pixel $p not answered 200"
  cmp -s "$MB_RUN/gif" "$MB_RUN/g2" || fail "bad pixel $p: not the GIF"
done
for p in "/c/$(flip "$ctok")?$cq" "/c/${ctok:0:47}?$cq" "/c/$ctok?u=https://evil.example/" "/c/$ctok" \
         "/c/$ctok?u=" "/c/$tok?$cq"; do
  hdr=$(curl -s -D - -o /dev/null "$base$p")
  grep -q "404 Not Found" <<< "$hdr" || fail "bad click $p: $(head -1 <<< "$hdr")"
  ! grep -qi "^Location:" <<< "$hdr" || fail "bad click $p redirected"
done
# correctly signed, but for a target that must not be redirected to
m=$(echo -n "$msg" | tr -d '-')
for target in $'https://example.com/a\r\nSet-Cookie: x=1' 'javascript:alert(1)' 'ftp://example.com/' \
              $'https://example.com/\x01' $'https://example.com/\x7f'; do
  t=$(check token "$MB_RUN/keys" c "$m" 1 1 "$target")
  q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$target")
  hdr=$(curl -s -D - -o /dev/null "$base/c/$t?u=$q")
  grep -q "404 Not Found" <<< "$hdr" || fail "smuggled target $(printf %q "$target"): $(head -1 <<< "$hdr")"
done
sleep 0.3
[ "$(nevents)" = "$before" ] || fail "a bad token was recorded"
# a space is a target (browsers follow such links; the rewriter tracks them): redirected, encoded
t=$(check token "$MB_RUN/keys" c "$m" 1 1 'https://example.com/ a')
hdr=$(curl -s -D - -o /dev/null "$base/c/$t?u=https%3A%2F%2Fexample.com%2F%20a")
grep -q "302 Found" <<< "$hdr" && grep -qi "^Location: https://example.com/%20a"$'\r'"$" <<< "$hdr" ||
  fail "a target with a space: $hdr"
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 1)) ] && break; sleep 0.05; done
ok

# 3b. the honeypot link: 204, no Location, not cached; one event of kind h (link 0, no url); a bad
#     token the same 204, nothing recorded, counted
before=$(nevents)
hdr=$(curl -s -D - -o "$MB_RUN/h204" -A "scanner-test/1.0" "$base$honeypot")
grep -q "^HTTP/1.1 204 No Content" <<< "$hdr" || fail "honeypot: $(head -1 <<< "$hdr")"
grep -qi "^Cache-Control: no-store, private"$'\r'"$" <<< "$hdr" || fail "honeypot cache: $hdr"
! grep -qi "^Location:" <<< "$hdr" || fail "the honeypot redirected: $hdr"
[ ! -s "$MB_RUN/h204" ] || fail "the honeypot answered a body"
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 1)) ] && break; sleep 0.05; done
[ "$(nevents)" = $((before + 1)) ] || fail "honeypot: $(( $(nevents) - before )) events, want 1"
events | tail -1 | python3 -c '
import json, sys; e = json.load(sys.stdin)
assert e["kind"] == "h" and e["link"] == 0 and e["url"] == "" and e["recipient"] == 1, e
assert e["message"] == sys.argv[1] and e["method"] == "GET" and e["ua"] == "scanner-test/1.0", e' "$msg" ||
  fail "honeypot event: $(events | tail -1)"
"$rewrite" --explain "https://t.mailbeacon.test$honeypot" | grep -q '"kind":"honeypot".*"link":0.*"valid":true' ||
  fail "explain honeypot: $("$rewrite" --explain "https://t.mailbeacon.test$honeypot")"
[ "$(curl -s -I -o /dev/null -w '%{http_code}' "$base$honeypot")" = 204 ] || fail "HEAD honeypot"
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 2)) ] && break; sleep 0.05; done
before=$(nevents)
htok=${honeypot:3:48}
for p in "/h/$(flip "$htok")" "/h/${htok:0:47}" "/h/${tok}" "/h/${ctok}?$cq" "/h/" \
         "/h/$(check token "$MB_RUN/keys" o "$m" 1 0)" "/h/$htok.gif"; do
  hdr=$(curl -s -D - -o /dev/null "$base$p")
  grep -q "^HTTP/1.1 204 No Content" <<< "$hdr" || fail "bad honeypot $p: $(head -1 <<< "$hdr")"
  ! grep -qi "^Location:" <<< "$hdr" || fail "bad honeypot $p redirected"
done
# signed here, independently: kind 3 verifies, and is recorded
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/h/$(check token "$MB_RUN/keys" h "$m" 1 0)")" = 204 ] ||
  fail "an independently signed honeypot"
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 1)) ] && break; sleep 0.05; done
sleep 0.3
[ "$(nevents)" = $((before + 1)) ] || fail "bad honeypot tokens recorded: $(( $(nevents) - before - 1 ))"
hp_metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="mailbeacon_hits_total{kind=\"honeypot\",result=\"$1\"}" '$1 == k {print $2}'; }
[ "$(hp_metric invalid)" = 7 ] && [ "$(hp_metric valid)" = 3 ] ||
  fail "honeypot metrics: valid $(hp_metric valid), invalid $(hp_metric invalid)"
ok

# 4. methods, unknown paths, limits
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base$pixel")" = 405 ] || fail "POST not 405"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base$click")" = 405 ] || fail "DELETE not 405"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/")" = 404 ] || fail "/ not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 404 ] || fail "admin path on the public port"
big=$(head -c 70000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$base$pixel")
[ "$code" = 431 ] || fail "huge header answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/c/$ctok?u=https://example.com/$big")
[ "$code" = 414 ] || fail "huge URL answered $code"
# the longest tracking URL the rewriter writes (6 KB with its base), with 4 KB of a browser's headers and cookie
long_target=https://example.com/$(head -c 6037 /dev/zero | tr '\0' b)
t=$(check token "$MB_RUN/keys" c "$m" 1 1 "$long_target")
q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$long_target")
[ $((${#MAILBEACON_BASE_URL} + 3 + ${#t} + 3 + ${#q})) -le 6144 ] || fail "test URL over 6 KB"
code=$(curl -s -o /dev/null -w '%{http_code}' -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" \
  -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7' \
  -H 'Accept-Language: en-GB,en;q=0.9,de;q=0.8' -H 'Accept-Encoding: gzip, deflate, br, zstd' \
  -H 'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"' -H 'sec-ch-ua-mobile: ?0' \
  -H 'sec-ch-ua-platform: "Windows"' -H 'Sec-Fetch-Site: cross-site' -H 'Sec-Fetch-Mode: navigate' \
  -H 'Sec-Fetch-User: ?1' -H 'Sec-Fetch-Dest: document' -H 'Upgrade-Insecure-Requests: 1' \
  -H "Cookie: session=$(head -c 3300 /dev/zero | tr '\0' c)" "$base/c/$t?u=$q" || true)
[ "$code" = 302 ] || fail "the longest tracking URL with browser headers answered $code"
# ambiguity and what libmicrohttpd let through: two different Content-Length 400 (one kept: fine);
# the target argument is exactly "u" and given once; 600 query arguments 414 at once (the
# connection's memory ran out and libmicrohttpd closed it after ~1 s without an answer)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Content-Length: 0" -H "Content-Length: 5" "$base$pixel")
[ "$code" = 400 ] || fail "two different Content-Length answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Content-Length: 0" -H "Content-Length: 0" "$base$pixel")
[ "$code" = 200 ] || fail "two equal Content-Length answered $code"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base$click")" = 302 ] || fail "the click itself"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base${click/\?u=/?U=}")" = 404 ] || fail "U= redirected"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base$click&u=https://evil.example/")" = 404 ] || fail "two u redirected"
many=$(python3 -c "print('&'.join('a%d=1' % i for i in range(600)))")
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$base$click&$many")
[ "$code" = 414 ] || fail "600 query arguments answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base$click&$(python3 -c "print('&'.join('a%d=1' % i for i in range(62)))")")
[ "$code" = 302 ] || fail "64 query arguments answered $code"
ok

# 5. admin: health and metrics
curl -s "http://127.0.0.1:$aport/healthz" | python3 -c '
import json, sys; h = json.load(sys.stdin)
assert h["redis"] == "up" and h["queue_events"] == 0 and h["spool_bytes"] == 0 and h["version"], h' || fail healthz
curl -s "http://127.0.0.1:$aport/metrics" > "$MB_RUN/metrics"
grep -q '^mailbeacon_hits_total{kind="open",result="invalid"} 6$' "$MB_RUN/metrics" || fail "metrics: invalid opens"
grep -q '^mailbeacon_request_duration_seconds_bucket{le="+Inf"} ' "$MB_RUN/metrics" || fail "metrics: histogram"
ok

# 6. 128, 256 and 1000 keep-alive connections all get answers, every answered
#    hit recorded. libmicrohttpd's own epoll loop stalls a thread that gets
#    exactly 128 ready sockets at once (a few hundred answers a second instead
#    of tens of thousands; server/listener.h): at least 10,000 answers in 2 s
#    tells a stalled listener from a slow one (a build with sanitizers too).
for c in 128 256 1000; do
  before=$(nevents)
  wrk -t2 -c$c -d2s "$base$pixel" > "$MB_RUN/wrk.$c" 2>&1 || fail "wrk -c$c"
  done_n=$(awk '/requests in/ {print $1}' "$MB_RUN/wrk.$c")
  ! grep -q "Non-2xx" "$MB_RUN/wrk.$c" || fail "-c$c: errors $(cat "$MB_RUN/wrk.$c")"
  [ "$done_n" -ge 10000 ] || fail "-c$c: only $done_n requests in 2 s (stalled?): $(cat "$MB_RUN/wrk.$c")"
  for _ in $(seq 1 200); do [ "$(nevents)" -ge $((before + done_n)) ] && break; sleep 0.05; done
  got=$(( $(nevents) - before ))
  [ "$got" -ge "$done_n" ] || fail "-c$c: $done_n answered, $got recorded"
done
ok

# 7. idle connections that never finish their headers do not block others
python3 - "$port" <<'PY' &
import socket, sys, time
socks = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /o/")
    socks.append(s)
time.sleep(4)
PY
slow=$!
sleep 0.5
[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$base$pixel")" = 200 ] || fail "blocked by idle connections"
wait $slow || true
ok

# 8. SIGHUP reloads the keys: a key added with --keygen verifies without a restart
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
new=$(MAILBEACON_REDIS= "$rewrite" < "$data/01-single-html-7bit.eml" | grep -o '/o/[^"]*' | head -1)
"$rewrite" --explain "https://t.mailbeacon.test$new" | grep -q '"key":2' || fail "the new key does not sign"
before=$(nevents)
curl -s -o /dev/null "$base$new"
sleep 0.3
[ "$(nevents)" = "$before" ] || fail "a token of a key not loaded yet was recorded"
kill -HUP $spid
for _ in $(seq 1 100); do grep -q "SIGHUP: 2 keys loaded, key 2 signs" "$MB_RUN/server.log" && break; sleep 0.05; done
curl -s -o /dev/null "$base$new"
curl -s -o /dev/null "$base$pixel" # and the old key still verifies
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 2)) ] && break; sleep 0.05; done
[ "$(nevents)" = $((before + 2)) ] || fail "after SIGHUP: $(( $(nevents) - before )) of 2 hits recorded"
ok

# 8b. reloads never run out (the 65th used to be refused): 200 SIGHUPs, then a new key, one more:
#     the new key's tokens verify, the old keys' too; a reload that fails shows in /healthz and /metrics
reloads() { curl -s "http://127.0.0.1:$aport/metrics" | awk '$1 == "mailbeacon_key_reloads_total{result=\"'"$1"'\"}" {print $2}'; }
r0=$(reloads ok)
for i in $(seq 1 200); do
  kill -HUP $spid
  for _ in $(seq 1 200); do [ "$(reloads ok)" -ge $((r0 + i)) ] && break; sleep 0.01; done
done
[ "$(reloads ok)" = $((r0 + 200)) ] || fail "200 reloads: $(( $(reloads ok) - r0 )) done"
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
third=$(MAILBEACON_REDIS= "$rewrite" < "$data/01-single-html-7bit.eml" | grep -o '/o/[^"]*' | head -1)
"$rewrite" --explain "https://t.mailbeacon.test$third" | grep -q '"key":3' || fail "key 3 does not sign"
kill -HUP $spid
for _ in $(seq 1 200); do [ "$(reloads ok)" = $((r0 + 201)) ] && break; sleep 0.01; done
before=$(nevents)
for u in "$third" "$new" "$pixel"; do curl -s -o /dev/null "$base$u"; done
for _ in $(seq 1 100); do [ "$(nevents)" = $((before + 3)) ] && break; sleep 0.05; done
[ "$(nevents)" = $((before + 3)) ] || fail "after 201 reloads: $(( $(nevents) - before )) of 3 hits recorded"
chmod 644 "$MB_RUN/keys" # refused: others may read it
kill -HUP $spid
for _ in $(seq 1 200); do [ "$(reloads failed)" = 1 ] && break; sleep 0.01; done
[ "$(reloads failed)" = 1 ] || fail "a failed reload not counted"
curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"status":"degraded","problems":\["keys_not_reloaded"\]' ||
  fail "a failed reload not in /healthz: $(curl -s "http://127.0.0.1:$aport/healthz")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/readyz")" = 200 ] || fail "/readyz: not ready"
curl -s -o /dev/null "$base$third" # the loaded ring goes on verifying
chmod 600 "$MB_RUN/keys"
kill -HUP $spid
for _ in $(seq 1 200); do curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"status":"ok"' && break; sleep 0.01; done
curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"status":"ok"' || fail "still degraded after a good reload"
ok

# 8c. the rewriter and the edge agree on what a click target is: every link the rewriter tracks
#     (random targets: spaces, non-ASCII, every printable special) the edge redirects to, as the
#     browser would have requested it (a link with a space was tracked, then answered 404)
rt=$(MAILBEACON_REDIS= check roundtrip "$rewrite" "$port" 11 400) || fail "round trip: $rt"
python3 -c 'import json,sys; r = json.loads(sys.argv[1]); assert r["tracked"] > r["targets"] // 2 and r["with_spaces"] >= 2, r' "$rt" ||
  fail "round trip tracked too few: $rt"
ok

# 9. SIGTERM: stops accepting, drains the queue, exits 0 with nothing lost
stop_server
grep -q "stopped: .* 0 lost" "$MB_RUN/server.log" || fail "shutdown summary"
ok

# 10. the client address: X-Forwarded-For only from a trusted proxy; truncation
xff() { # xff EXPECTED_IP [curl args]: one hit, the recorded IP must be EXPECTED_IP
  local want=$1; shift
  local n0; n0=$(nevents)
  curl -s -o /dev/null "$@" "$base$pixel"
  for _ in $(seq 1 100); do [ "$(nevents)" -gt "$n0" ] && break; sleep 0.05; done
  got=$(events | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')
  [ "$got" = "$want" ] || fail "client ip $got, want $want ($*)"
}
export MAILBEACON_REDIS_STREAM=mb:xff # a small stream of its own
stream=mb:xff
start_server # no trusted proxies
xff 127.0.0.1 -H "X-Forwarded-For: 198.51.100.7"
stop_server
MAILBEACON_TRUSTED_PROXIES="127.0.0.0/8, 10.0.0.1" start_server
xff 198.51.100.7 -H "X-Forwarded-For: 198.51.100.7"
xff 198.51.100.7 -H "X-Forwarded-For: 203.0.113.9, 198.51.100.7, 10.0.0.1" # the rightmost untrusted
xff 2001:db8::5 -H "X-Forwarded-For: 2001:db8::5"
# several headers (HAProxy appends one): one list, read from the right
xff 198.51.100.8 -H "X-Forwarded-For: 203.0.113.9" -H "X-Forwarded-For: 198.51.100.8, 10.0.0.1"
# Forwarded (RFC 7239) read the same way, and preferred
xff 2001:db8:cafe::17 -H 'Forwarded: for=203.0.113.9, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.1' \
  -H "X-Forwarded-For: 198.51.100.99"
stop_server
# ip_truncate is applied by the batcher as it loads (batcher.sh): the stream carries the whole address
MAILBEACON_TRUSTED_PROXIES=127.0.0.1 MAILBEACON_IP_TRUNCATE=yes start_server
xff 198.51.100.7 -H "X-Forwarded-For: 198.51.100.7"
xff 2001:db8:1:2:3::5 -H "X-Forwarded-For: 2001:db8:1:2:3::5"
stop_server
ok

# 11. the listener: a port in use is an error at start, not a silent second
#     server; an IPv6 address listens, the public and the admin one (where
#     the loopback has ::1; the admin one failed: "Address family not supported")
start_server
# the second server on the first one's port (its admin listener on any port)
if MAILBEACON_LISTEN=127.0.0.1:$port "$server" > "$MB_RUN/second.log" 2>&1; then
  fail "a second server started on a port in use"
fi
grep -q "cannot listen on 127.0.0.1:$port (listen)" "$MB_RUN/second.log" || fail "second server: $(cat "$MB_RUN/second.log")"
stop_server
if ip -6 addr show dev lo 2>/dev/null | grep -q "inet6 ::1/"; then
  MAILBEACON_LISTEN="[::1]:0" MAILBEACON_ADMIN_LISTEN="[::1]:0" start_server
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://[::1]:$port$pixel")" = 200 ] || fail "no answer on [::1]:$port"
  curl -s "http://[::1]:$aport/healthz" | grep -q '"status":"ok"' || fail "no admin answer on [::1]:$aport"
  stop_server
fi
ok

# 12. log_file: the log goes there; after logrotate moves it, SIGHUP opens a
#     new one and the old one gets nothing more
MAILBEACON_LOG_FILE=$MB_RUN/edge.log start_server
grep -q "listening on 127.0.0.1:0 (port $port)" "$MB_RUN/edge.log" || fail "log_file: no start line in it"
mv "$MB_RUN/edge.log" "$MB_RUN/edge.log.1"
kill -HUP $spid
for _ in $(seq 1 100); do grep -qs "SIGHUP: log reopened" "$MB_RUN/edge.log" && break; sleep 0.05; done
grep -qs "SIGHUP: log reopened" "$MB_RUN/edge.log" || fail "log_file: not reopened on SIGHUP"
stop_server
grep -q "stopped: .* 0 lost" "$MB_RUN/edge.log" || fail "log_file: the shutdown summary went elsewhere"
! grep -q "SIGHUP\|stopped:" "$MB_RUN/edge.log.1" || fail "log_file: the moved file still written"
if MAILBEACON_LOG_FILE=$MB_RUN/no/such/dir/edge.log "$server" 2> "$MB_RUN/nolog"; then fail "started with a log_file it cannot open"; fi
grep -q "cannot open log_file" "$MB_RUN/nolog" || fail "log_file error: $(cat "$MB_RUN/nolog")"
ok

# 13. the spool's cap: with Redis down, what the spool (spool_max_bytes) cannot take is lost and
#     counted, never silently; /healthz says so (losing_events, redis_down), /readyz answers 503;
#     Redis back: the spool drains and the edge is ready again
export MAILBEACON_REDIS_STREAM=mb:cap
stream=mb:cap
MAILBEACON_SPOOL_MAX_BYTES=64K MAILBEACON_SPOOL_DIR=$MB_RUN/capspool start_server
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
mb_redis_stop
echo "$pixel" > "$MB_RUN/pixel-url"
check hits "$port" "$MB_RUN/pixel-url" 2000 > "$MB_RUN/cap-hits"
grep -q '"200": 2000' "$MB_RUN/cap-hits" || fail "hits while the spool was full: $(cat "$MB_RUN/cap-hits")"
# every hit accounted for (the writer may still be taking the queue): spooled or lost
for _ in $(seq 1 200); do
  lost=$(metric 'mailbeacon_events_total{to="lost"}') spooled=$(metric 'mailbeacon_events_total{to="spool"}')
  [ $((lost + spooled)) = 2000 ] && break
  sleep 0.05
done
[ $((lost + spooled)) = 2000 ] || fail "spool cap: 2000 hits, $spooled spooled and $lost lost"
[ "$lost" -gt 0 ] && [ "$spooled" -gt 0 ] || fail "spool cap: lost $lost, spooled $spooled"
[ "$(stat -c %s "$MB_RUN/capspool/events.spool")" -le 65536 ] || fail "the spool grew past its cap"
curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"status":"degraded","problems":\["redis_down","losing_events"\]' ||
  fail "spool cap: $(curl -s "http://127.0.0.1:$aport/healthz")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/readyz")" = 503 ] || fail "/readyz while losing events"
grep -q "events lost: .*spool_max_bytes" "$MB_RUN/server.log" || fail "the loss not logged"
[ "$(grep -c "events lost" "$MB_RUN/server.log")" -le 3 ] || fail "the loss logged for every batch"
mb_redis_start
for _ in $(seq 1 200); do [ "$(nevents)" = "$spooled" ] && break; sleep 0.05; done
[ "$(nevents)" = "$spooled" ] || fail "spooled $spooled, the stream holds $(nevents)"
[ "$(metric mailbeacon_spool_bytes)" = 0 ] || fail "the spool did not drain"
stop_server
ok
echo "server_hits: $passed passed, 0 failed"
