#!/usr/bin/env bash
# The tracking policy per recipient (docs/privacy.md) through the real path:
# a private Redis and PostgreSQL and mailbeacon-server; the CRM's consent
# states imported (CSV and JSON lines, a bad file refused whole with its
# line, an older state not undoing a later one), the consent copy written
# from PostgreSQL, then mailbeacon-rewrite in its three modes deciding per
# recipient: consent granted, refused, withdrawn and unknown, in and outside
# the EU list (pipe); one copy per recipient (re-inject); one copy to several
# (milter, milter_protocol.py); and each decision stored with the message.
# Then withdrawal through the page (also before the message's sent record is
# loaded, and not undone by a CRM sync without a time), export and forget
# (rows of every kind, in two partitions, compared table by table; a copy to
# several and its webhook bodies; rejected entries matched as a whole; hits
# after it dropped; consent given before it not undoing it) and the admin
# endpoints.
# usage: consent.sh MAILBEACON_SERVER MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
server=$1 rewrite=$2 data=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
. "$here/lib/scenario.sh"
MB_RUN=$(mktemp -d /tmp/mb-consent.XXXXXX)
spid='' mpid=''
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; [ -n "$mpid" ] && kill -9 $mpid 2>/dev/null
      mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -n 20 "$MB_RUN/server.log" "$MB_RUN/rewrite.log" >&2 || true
  mb_psql -tA -c "SELECT part, reason, left(entry, 300) FROM mailbeacon.rejected LIMIT 5" >&2 || true
  exit 1
}

scenario_rules "$here/../../rules/mailbeacon.rules"
scenario_start "$server" "$rewrite" edge-p
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# ---- import
cat > "$MB_RUN/crm.csv" <<'EOF'
address,state,source,time,country
Granted@Kunde.de,granted,crm,2020-03-12T10:00:00Z,
refused@client.com,refused,crm,2020-03-12T10:00:00Z,US
withdrawn@client.fr,withdrawn,crm,2020-03-12T10:00:00Z,
unknown-fr@client.com,unknown,crm,,FR
granted-us@client.com,granted,crm,2020-03-12T10:00:00Z,US
refused@firma.de,refused,crm,2020-03-12T10:00:00Z,
EOF
"$server" consent import "$MB_RUN/crm.csv" > "$MB_RUN/out" || fail "import: $(cat "$MB_RUN/out")"
grep -q "crm.csv: 6 records imported, 6 addresses changed state" "$MB_RUN/out" || fail "import said: $(cat "$MB_RUN/out")"
printf '%s\n' '{"address":"later@client.com","state":"granted","source":"form 7","time":"2020-04-01T00:00:00Z","country":"US"}' \
  '{"address":"later@client.com","state":"withdrawn","source":"form 7","time":"2020-05-01T00:00:00+02:00"}' \
  > "$MB_RUN/crm.jsonl"
"$server" consent import "$MB_RUN/crm.jsonl" > "$MB_RUN/out" || fail "import jsonl"
expect "SELECT count(*) FROM mailbeacon.consent" 7
expect "SELECT state, country, source FROM mailbeacon.consent WHERE address = 'granted@kunde.de'" "granted  crm"
expect "SELECT state, country FROM mailbeacon.consent WHERE address = 'later@client.com'" "withdrawn US"

# a bad line: a clear error naming it, and nothing of the file imported
printf 'address,state\nnew@client.com,granted\nother@client.com,maybe\n' > "$MB_RUN/bad.csv"
set +e
"$server" consent import "$MB_RUN/bad.csv" > /dev/null 2> "$MB_RUN/err"
rc=$?
set -e
[ $rc = 65 ] || fail "a bad file: exit $rc, want 65"
grep -q "bad.csv: line 3: state 'maybe' is not granted, refused, withdrawn or unknown; nothing imported" "$MB_RUN/err" ||
  fail "a bad file said: $(cat "$MB_RUN/err")"
expect "SELECT count(*) FROM mailbeacon.consent WHERE address = 'new@client.com'" 0

# an older state does not undo a later withdrawal; both are in the history
printf 'address,state,time\nwithdrawn@client.fr,granted,2020-01-01T00:00:00Z\n' > "$MB_RUN/old.csv"
"$server" consent import "$MB_RUN/old.csv" > "$MB_RUN/out"
grep -q "1 record imported, 0 addresses changed state" "$MB_RUN/out" || fail "old import said: $(cat "$MB_RUN/out")"
expect "SELECT state FROM mailbeacon.consent WHERE address = 'withdrawn@client.fr'" withdrawn
expect "SELECT string_agg(state, ',' ORDER BY id) FROM mailbeacon.consent_history WHERE address = 'withdrawn@client.fr'" \
  "withdrawn,granted"

# ---- the copy the rewriter reads
"$server" consent copy "$MB_RUN/consent.cdb" > "$MB_RUN/out" || fail "consent copy"
grep -q "consent.cdb: 7 records written" "$MB_RUN/out" || fail "copy said: $(cat "$MB_RUN/out")"

export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_CONSENT_COPY=$MB_RUN/consent.cdb \
  MAILBEACON_TRACK_DEFAULT_EU=none MAILBEACON_TRACK_DEFAULT_OTHER=all MAILBEACON_TRACK_DEFAULT_UNKNOWN=opens \
  MAILBEACON_NEVER_TRACK=ourco.example
msg=$data/01-single-html-7bit.eml
pipe() { # pipe RECIPIENT OUT
  "$rewrite" --sender sam@ourco.example --recipient "$1" < "$msg" > "$2" 2>> "$MB_RUN/rewrite.log"
}
tracked() { grep -q 't.mailbeacon.test/o/' "$1" && grep -q 't.mailbeacon.test/c/' "$1"; }

# ---- pipe mode, one recipient each
pipe granted@kunde.de "$MB_RUN/granted.eml"
tracked "$MB_RUN/granted.eml" || fail "consent granted: not tracked"
pipe granted-us@client.com "$MB_RUN/granted-us.eml" # granted outside the EU
tracked "$MB_RUN/granted-us.eml" || fail "consent granted outside the EU: not tracked"
# refused outside the EU and in it; withdrawn in and outside; unknown in the EU by record and by domain
for r in refused@client.com refused@firma.de withdrawn@client.fr unknown-fr@client.com nobody@firma.de \
  later@client.com; do
  pipe "$r" "$MB_RUN/out.eml"
  cmp -s "$msg" "$MB_RUN/out.eml" || fail "$r: the message changed"
done
pipe buyer@empresa.com.br "$MB_RUN/other.eml" # unknown consent outside the EU: all
tracked "$MB_RUN/other.eml" || fail "default_other: not tracked"
pipe buyer@client.com "$MB_RUN/opens.eml" # country unknown: opens only
grep -q 't.mailbeacon.test/o/' "$MB_RUN/opens.eml" || fail "default_unknown: no pixel"
! grep -q 't.mailbeacon.test/[ch]/' "$MB_RUN/opens.eml" || fail "default_unknown: links tracked"

# each decision stored with its message, as proof
wait_rows "SELECT count(*) FROM mailbeacon.recipients WHERE track IS NOT NULL" 4
expect "SELECT r.track, r.track_basis, r.consent_source, to_char(r.consent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
               m.policy_version ~ '^p1-[0-9a-f]{12}\$'
          FROM mailbeacon.recipients r JOIN mailbeacon.messages m USING (message)
         WHERE r.address = 'granted@kunde.de'" "opens,clicks consent_granted crm 2020-03-12 10:00 t"
expect "SELECT track, track_basis FROM mailbeacon.recipients WHERE address = 'buyer@client.com'" "opens default_unknown"
expect "SELECT count(*) FROM mailbeacon.recipients WHERE address IN ('refused@client.com', 'refused@firma.de', 'nobody@firma.de')" 0

# ---- re-inject mode: one copy per recipient, each its own decision
cat > "$MB_RUN/sendmail" <<EOF
#!/bin/sh
for a; do last=\$a; done
cat > "$MB_RUN/copy.\$last"
EOF
chmod +x "$MB_RUN/sendmail"
MAILBEACON_SENDMAIL_PATH=$MB_RUN/sendmail "$rewrite" --reinject -f sam@ourco.example -- \
  granted@kunde.de refused@client.com < "$msg" 2>> "$MB_RUN/rewrite.log" || fail "reinject"
tracked "$MB_RUN/copy.granted@kunde.de" || fail "reinject: the consenting recipient's copy not tracked"
cmp -s "$msg" "$MB_RUN/copy.refused@client.com" || fail "reinject: the refusing recipient's copy changed"
wait_rows "SELECT count(*) FROM mailbeacon.recipients WHERE address = 'granted@kunde.de' AND track IS NOT NULL" 2
# withdrawn in and outside the EU, unknown in the EU (record) and outside it: each its own copy
MAILBEACON_SENDMAIL_PATH=$MB_RUN/sendmail "$rewrite" --reinject -f sam@ourco.example -- withdrawn@client.fr \
  later@client.com unknown-fr@client.com comprador@loja.com.br < "$msg" 2>> "$MB_RUN/rewrite.log" || fail "reinject 2"
for r in withdrawn@client.fr later@client.com unknown-fr@client.com; do
  cmp -s "$msg" "$MB_RUN/copy.$r" || fail "reinject: $r's copy changed"
done
tracked "$MB_RUN/copy.comprador@loja.com.br" || fail "reinject: unknown outside the EU not tracked"

# ---- milter: one copy to several, tracked only when every recipient allows it (the protocol
#      test's own recipients, in .example, are tracked as they were: unknown is all here)
export MAILBEACON_TRACK_DEFAULT_UNKNOWN=all # for its pipe-mode comparisons too
"$rewrite" --milter "inet:0@127.0.0.1" 2> "$MB_RUN/milter.log" &
mpid=$!
mport=$(mb_wait_port $mpid "$MB_RUN/milter.log" milter) || fail "milter did not start"
MB_MILTER_CONSENT=1 python3 "$here/milter_protocol.py" "$mport" "$MB_RUN/keys" "$rewrite" "$data" ||
  fail "milter: $(tail -5 "$MB_RUN/milter.log")"
grep -q "not rewritten: a recipient refused tracking (consent)" "$MB_RUN/milter.log" || fail "milter: no reason logged"

# ---- withdrawal: the disclosure line (on for a recipient tracked by consent) links to a page on
#      the edge; a GET shows it and records nothing, its button POSTs the withdrawal; from then on
#      that recipient's hits get their pixel and redirect, and nothing is stored, on old messages too
grep -q 'The sender of this message is told when you open it' "$MB_RUN/granted.eml" || fail "no disclosure line"
! grep -q 't.mailbeacon.test/w/' "$MB_RUN/other.eml" || fail "a disclosure line without consent (disclosure = consent)"
edge=http://127.0.0.1:$port
w=$(grep -o 'https://t.mailbeacon.test/w/[A-Za-z0-9_-]*' "$MB_RUN/granted.eml" | head -1)
pixel=$(grep -o 'https://t.mailbeacon.test/o/[A-Za-z0-9_-]*\.gif' "$MB_RUN/granted.eml" | head -1)
link=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$MB_RUN/granted.eml" | head -1)
[ -n "$w" ] && [ -n "$pixel" ] && [ -n "$link" ] || fail "links not found in the tracked message"
events_sql="SELECT count(*) FROM mailbeacon.events e JOIN mailbeacon.recipients r
              ON r.message = e.message AND r.idx = e.recipient_idx WHERE r.address = 'granted@kunde.de'"
curl -s -o /dev/null "${pixel/https:\/\/t.mailbeacon.test/$edge}"
wait_rows "SELECT ($events_sql) > 0" t
before=$(sql "$events_sql")
[ "$(curl -s -o "$MB_RUN/page" -w '%{http_code}' "${w/https:\/\/t.mailbeacon.test/$edge}")" = 200 ] || fail "page: not 200"
grep -q '<form method="post"><button type="submit">Stop tracking my opens and clicks</button></form>' "$MB_RUN/page" ||
  fail "page: no form"
curl -s -D "$MB_RUN/headers" -o /dev/null "${w/https:\/\/t.mailbeacon.test/$edge}"
grep -qi "^content-security-policy: default-src 'none'" "$MB_RUN/headers" || fail "page: no CSP"
! grep -qi '^set-cookie' "$MB_RUN/headers" || fail "page: a cookie"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$edge/w/AAAA${w: -44}")" = 404 ] || fail "a forged token: not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$edge/c/${w: -48}")" = 405 ] || fail "POST elsewhere: not 405"
sleep 0.3
expect "SELECT state FROM mailbeacon.consent WHERE address = 'granted@kunde.de'" granted # a GET records nothing
[ "$(curl -s -o "$MB_RUN/done" -w '%{http_code}' -X POST "${w/https:\/\/t.mailbeacon.test/$edge}")" = 200 ] ||
  fail "confirm: not 200"
grep -q 'Tracking stopped' "$MB_RUN/done" || fail "confirm: no answer"
wait_rows "SELECT state || ' ' || source FROM mailbeacon.consent WHERE address = 'granted@kunde.de'" \
  "withdrawn withdrawal page"
expect "SELECT via FROM mailbeacon.consent_history WHERE address = 'granted@kunde.de' ORDER BY id DESC LIMIT 1" \
  "withdrawal page"
# a CRM sync that gives no time does not undo it (the record is in the history, the state stays)
printf 'address,state,source\ngranted@kunde.de,granted,crm\n' > "$MB_RUN/sync.csv"
"$server" consent import "$MB_RUN/sync.csv" > "$MB_RUN/out"
grep -q "1 record imported, 0 addresses changed state" "$MB_RUN/out" || fail "timeless sync said: $(cat "$MB_RUN/out")"
expect "SELECT state, via FROM mailbeacon.consent WHERE address = 'granted@kunde.de'" "withdrawn withdrawal page"
expect "SELECT state, time_given FROM mailbeacon.consent_history WHERE address = 'granted@kunde.de' ORDER BY id DESC LIMIT 1" \
  "granted f"
alerts=$(sql "SELECT count(*) FROM mailbeacon.alerts")
[ "$(curl -s -o /dev/null -w '%{http_code}' "${pixel/https:\/\/t.mailbeacon.test/$edge}")" = 200 ] || fail "pixel after"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${link/https:\/\/t.mailbeacon.test/$edge}")" = 302 ] || fail "link after"
for _ in $(seq 1 300); do [ "$(metric mailbeacon_batcher_events_silenced_total)" = 2 ] && break; sleep 0.05; done
[ "$(metric mailbeacon_batcher_events_silenced_total)" = 2 ] || fail "hits after the withdrawal: not silenced"
expect "$events_sql" "$before"
expect "SELECT count(*) FROM mailbeacon.alerts" "$alerts"
# new mail to them is not tracked, once the copy is written again
"$server" consent copy "$MB_RUN/consent.cdb" > /dev/null
sleep 1.1 # the copy's age is checked at most once a second; each pipe run reads it afresh anyway
pipe granted@kunde.de "$MB_RUN/out.eml"
cmp -s "$msg" "$MB_RUN/out.eml" || fail "withdrawn: a new message still tracked"

# ---- a copy sent to several (index 0): its withdrawal link withdraws every recipient of it
MAILBEACON_DISCLOSURE=always "$rewrite" --sender sam@ourco.example --recipient x1@client.com \
  --recipient x2@client.com < "$msg" > "$MB_RUN/shared.eml" 2>> "$MB_RUN/rewrite.log"
ws=$(grep -o 'https://t.mailbeacon.test/w/[A-Za-z0-9_-]*' "$MB_RUN/shared.eml" | head -1)
[ -n "$ws" ] || fail "a copy to several: no disclosure line"
wait_rows "SELECT count(*) FROM mailbeacon.recipients WHERE address IN ('x1@client.com', 'x2@client.com')" 2
curl -s -o /dev/null -X POST "${ws/https:\/\/t.mailbeacon.test/$edge}"
wait_rows "SELECT string_agg(address || '=' || state, ' ' ORDER BY address) FROM mailbeacon.consent
            WHERE address IN ('x1@client.com', 'x2@client.com')" "x1@client.com=withdrawn x2@client.com=withdrawn"

# ---- a withdrawal confirmed before its message's sent record is loaded (the record still in the
#      rewriter's spool, Redis being away for it): kept by its token's message and index, its hits
#      dropped meanwhile, and recorded for the recipients when the sent record comes (one recipient's
#      copy, index 1, and a copy to several, index 0)
away() { # away OUT RECIPIENT...: a message rewritten while the rewriter cannot reach Redis
  local out=$1 r=()
  shift
  for a; do r+=(--recipient "$a"); done
  MAILBEACON_REDIS=unix:$MB_RUN/nowhere.sock MAILBEACON_SPOOL_DIR=$MB_RUN/rspool MAILBEACON_DISCLOSURE=always \
    "$rewrite" --sender sam@ourco.example "${r[@]}" < "$msg" > "$out" 2>> "$MB_RUN/rewrite.log"
}
away "$MB_RUN/early1.eml" early1@client.com
away "$MB_RUN/early2.eml" early2@client.com early3@client.com
[ "$(stat -c %s "$MB_RUN/rspool/sent.spool")" -gt 16 ] || fail "the sent records were not spooled"
for f in early1 early2; do
  we=$(grep -o 'https://t.mailbeacon.test/w/[A-Za-z0-9_-]*' "$MB_RUN/$f.eml" | head -1)
  [ -n "$we" ] || fail "$f: no disclosure line"
  curl -s -o "$MB_RUN/done" -X POST "${we/https:\/\/t.mailbeacon.test/$edge}"
  grep -q 'Tracking stopped' "$MB_RUN/done" || fail "$f: the page did not confirm"
done
wait_rows "SELECT string_agg(idx::text, ',' ORDER BY idx) FROM mailbeacon.withdrawals_waiting" "0,1"
expect "SELECT count(*) FROM mailbeacon.consent WHERE address LIKE 'early_@client.com'" 0
silenced=$(metric mailbeacon_batcher_events_silenced_total)
epixel=$(grep -o 'https://t.mailbeacon.test/o/[A-Za-z0-9_-]*\.gif' "$MB_RUN/early1.eml" | head -1)
[ "$(curl -s -o /dev/null -w '%{http_code}' -A "$chrome" "${epixel/https:\/\/t.mailbeacon.test/$edge}")" = 200 ] ||
  fail "early1: no pixel"
for _ in $(seq 1 300); do [ "$(metric mailbeacon_batcher_events_silenced_total)" = $((silenced + 1)) ] && break; sleep 0.05; done
[ "$(metric mailbeacon_batcher_events_silenced_total)" = $((silenced + 1)) ] || fail "a hit after a waiting withdrawal: not silenced"
# Redis reachable again: the next message replays the spool first, and the withdrawals are recorded
MAILBEACON_SPOOL_DIR=$MB_RUN/rspool "$rewrite" --sender sam@ourco.example --recipient early4@client.com < "$msg" \
  > /dev/null 2>> "$MB_RUN/rewrite.log"
[ "$(stat -c %s "$MB_RUN/rspool/sent.spool")" = 16 ] || fail "the spool was not replayed"
wait_rows "SELECT string_agg(address || '=' || state || ' ' || via, ', ' ORDER BY address) FROM mailbeacon.consent
            WHERE address LIKE 'early_@client.com'" \
  "early1@client.com=withdrawn withdrawal page, early2@client.com=withdrawn withdrawal page, early3@client.com=withdrawn withdrawal page"
expect "SELECT count(*) FROM mailbeacon.withdrawals_waiting" 0
expect "SELECT count(*) FROM mailbeacon.consent_history WHERE address LIKE 'early_@client.com' AND via = 'withdrawal page'" 3
expect "SELECT count(*) FROM mailbeacon.events e JOIN mailbeacon.recipients r ON r.message = e.message
         WHERE r.address LIKE 'early_@client.com'" 0
# one that waited while another batch loaded its sent record (neither saw the other's row) is applied
# when the batchers read the silenced pairs (every minute, or told)
m4=$(sql "SELECT message FROM mailbeacon.recipients WHERE address = 'early4@client.com'")
sql "INSERT INTO mailbeacon.withdrawals_waiting (message, idx, at) VALUES ('$m4', 1, now()); NOTIFY mailbeacon_silenced" > /dev/null
wait_rows "SELECT state FROM mailbeacon.consent WHERE address = 'early4@client.com'" withdrawn
expect "SELECT count(*) FROM mailbeacon.withdrawals_waiting" 0

# ---- export and forget: buyer@empresa.com.br (tracked by default, one message, an open and a click;
#      and a copy sent to it and x3@empresa.com.br, index 0, opened once, with an alert and its webhooks)
b=buyer@empresa.com.br
"$rewrite" --sender sam@ourco.example --recipient "$b" --recipient x3@empresa.com.br < "$msg" \
  > "$MB_RUN/bshared.eml" 2>> "$MB_RUN/rewrite.log"
wait_rows "SELECT count(*) FROM mailbeacon.recipients WHERE address = 'x3@empresa.com.br'" 1
ms=$(sql "SELECT message FROM mailbeacon.recipients WHERE address = 'x3@empresa.com.br'")
spixel=$(grep -o 'https://t.mailbeacon.test/o/[A-Za-z0-9_-]*\.gif' "$MB_RUN/bshared.eml" | head -1)
[ -n "$spixel" ] || fail "the copy to several: not tracked"
curl -s -o /dev/null -A "$chrome" "${spixel/https:\/\/t.mailbeacon.test/$edge}"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE message = '$ms' AND recipient_idx = 0" 1
bpixel=$(grep -o 'https://t.mailbeacon.test/o/[A-Za-z0-9_-]*\.gif' "$MB_RUN/other.eml" | head -1)
blink=$(grep -o 'https://t.mailbeacon.test/c/[^"]*' "$MB_RUN/other.eml" | head -1)
curl -s -o /dev/null -A "$chrome" "${bpixel/https:\/\/t.mailbeacon.test/$edge}"
curl -s -o /dev/null -A "$chrome" "${blink/https:\/\/t.mailbeacon.test/$edge}"
bevents="SELECT count(*) FROM mailbeacon.events e JOIN mailbeacon.recipients r
           ON r.message = e.message AND r.idx = e.recipient_idx WHERE r.address = '$b'"
wait_rows "$bevents" 2
# and an open of its message 40 days ago, in an earlier month's partition of the events
mb=$(sql "SELECT r.message FROM mailbeacon.recipients r JOIN mailbeacon.messages m USING (message)
           WHERE r.address = '$b' AND m.recipient_count = 1")
t_old=$((($(date +%s) - 40 * 86400) * 1000000))
hits "$(printf '%08x%02x%022x\to\t%s\t1\t0\t%s\t198.18.0.7\tGET\tedge-x\t%s\t\t' 45232 "'o" "$t_old" "$mb" "$t_old" "$chrome")"
wait_rows "$bevents" 3
parts=$(sql "SELECT string_agg(DISTINCT tableoid::regclass::text, ' ') FROM mailbeacon.events
              WHERE message = '$mb' AND recipient_idx = 1")
[ "$(wc -w <<< "$parts")" -ge 2 ] || fail "the address's events are in one partition: $parts"
# every one of these events final (the look-ahead closed): no alert is made between export and forget
wait_rows "SELECT count(*) FROM mailbeacon.events
            WHERE message IN (SELECT message FROM mailbeacon.recipients WHERE address = '$b')
              AND NOT mailbeacon.is_final(class, occurred_at, mailbeacon.final_before())" 0
# the alert of the copy to several names every recipient, and so do its webhook deliveries' bodies
sql "INSERT INTO mailbeacon.alerts (rep, kind, message, recipient_idx, recipient, subject, occurred_at, event_id, class,
                                    opens, clicks)
     SELECT 'sam@ourco.example', 'open', '$ms', 0, string_agg(address, ', ' ORDER BY idx), 's', now(),
            gen_random_uuid(), 'human', 1, 0
       FROM mailbeacon.recipients WHERE message = '$ms'
     ON CONFLICT DO NOTHING" > /dev/null
sql "INSERT INTO mailbeacon.webhook_deliveries (alert_id, url, webhook_id, format, body)
     SELECT a.id, 'https://hooks.example/' || f, 'msg_mb' || a.id, f, mailbeacon.webhook_body(a, f)
       FROM mailbeacon.alerts a, unnest(ARRAY['standard', 'slack']) AS f
      WHERE a.message = '$ms' AND a.recipient_idx = 0" > /dev/null
expect "SELECT count(*) FROM mailbeacon.webhook_deliveries WHERE body ILIKE '%$b%'" 2
# and the alerts of its own message have theirs
sql "INSERT INTO mailbeacon.webhook_deliveries (alert_id, url, webhook_id, format, body)
     SELECT a.id, 'https://hooks.example/standard', 'msg_mb' || a.id, 'standard', mailbeacon.webhook_body(a, 'standard')
       FROM mailbeacon.alerts a JOIN mailbeacon.recipients r ON r.message = a.message AND r.idx = a.recipient_idx
      WHERE r.address = '$b'" > /dev/null
# a consent record and a rejected entry that name the address (the test's times are in 2020: what is
# recorded now, by the page or without a time, is later whatever today's date); it withdrew, so the
# copy to several is silenced too (index 0)
printf 'address,state,time\n%s,withdrawn,2020-02-01\n' "$b" > "$MB_RUN/b.csv"
"$server" consent import "$MB_RUN/b.csv" > /dev/null
# rejected entries: two name it (a line, a sent record's JSON in another case), two name addresses
# that contain it (x<address>, <address>.example), which are not its
mb_psql <<EOF || fail "rejected entries"
INSERT INTO mailbeacon.rejected VALUES
  ('1-1', 1, 'a line naming $b', 'test'),
  ('1-2', 0, '{"type":"sent","message":"x","recipients":"[{\"i\":1,\"addr\":\"Buyer@Empresa.com.br\"}]"}', 'bad uuid'),
  ('1-3', 1, 'a line naming x$b', 'test'),
  ('1-4', 1, 'a line naming $b.example', 'test');
EOF
"$server" export "$b" > "$MB_RUN/export.json" || fail "export"
python3 - "$MB_RUN/export.json" "$b" <<'PY' || fail "export: $(head -c 600 "$MB_RUN/export.json")"
import json, sys
text = open(sys.argv[1]).read()
d = json.loads(text)
assert d["address"] == sys.argv[2] and d["suppressed"] is False, d
assert sorted(j["stream_id"] for j in d["rejected"]) == ["1-1", "1-2"], d["rejected"]
sa = d["shared_alerts"]
assert len(sa) == 1 and sa[0]["recipient"] == sys.argv[2] + ", (another recipient)", sa
assert len(sa[0]["webhook_deliveries"]) == 2 and all("body" not in w for w in sa[0]["webhook_deliveries"]), sa
assert "x3@" not in text, "another recipient's address in the export"
assert len(d["messages"]) == 2 and d["messages"][0]["recipient"]["track_basis"] == "default_other", d["messages"]
ev = [e for m in d["messages"] for e in m["events"]]
assert sorted(e["kind"] for e in ev) == ["click", "open", "open"] and all(e["class"] for e in ev), ev
assert d["consent"]["state"] == "withdrawn" and len(d["consent_history"]) == 1, d
PY
tables="SELECT (SELECT count(*) FROM mailbeacon.events), (SELECT count(*) FROM mailbeacon.alerts),
               (SELECT count(*) FROM mailbeacon.webhook_deliveries), (SELECT count(*) FROM mailbeacon.recipients),
               (SELECT count(*) FROM mailbeacon.consent), (SELECT count(*) FROM mailbeacon.consent_history),
               (SELECT count(*) FROM mailbeacon.rejected),
               (SELECT count(*) FROM mailbeacon.alerts WHERE recipient LIKE '%(erased)%'),
               (SELECT count(*) FROM mailbeacon.webhook_deliveries WHERE body LIKE '%(erased)%')"
tables_before=$(sql "$tables")
set +e
"$server" forget "$b" > /dev/null 2> "$MB_RUN/err"; rc=$?
set -e
[ $rc = 64 ] && grep -q "forget needs --reason" "$MB_RUN/err" || fail "forget without a reason: $rc $(cat "$MB_RUN/err")"
SUDO_USER=dpo "$server" forget "Buyer@Empresa.com.br" --reason "GDPR art. 17 request 42 of Buyer@Empresa.com.br" \
  > "$MB_RUN/out" || fail "forget: $(cat "$MB_RUN/out")"
grep -q '"events": 3' "$MB_RUN/out" && grep -q '"recipients": 2' "$MB_RUN/out" && grep -q '"rejected": 2' "$MB_RUN/out" ||
  fail "forget said: $(cat "$MB_RUN/out")"
tables_after=$(sql "$tables")
expect "SELECT string_agg(stream_id, ',' ORDER BY stream_id) FROM mailbeacon.rejected WHERE stream_id LIKE '1-%'" "1-3,1-4"
# the export held exactly what went or changed, table by table: what forget counted, and what the
# tables lost (or, for the alerts of copies to several and their webhook bodies, how many say "(erased)")
python3 - "$MB_RUN/export.json" "$MB_RUN/out" "$tables_before" "$tables_after" <<'PY' || fail "export and forget differ"
import json, sys
d = json.load(open(sys.argv[1]))
gone = json.loads(open(sys.argv[2]).read().split(": ", 1)[1])
names = ["events", "alerts", "webhook_deliveries", "recipients", "consent", "consent_history", "rejected",
         "shared_alerts_scrubbed", "webhook_bodies_scrubbed"]
before, after = ([int(x) for x in a.split()] for a in sys.argv[3:5])
delta = {n: abs(b - a) for n, b, a in zip(names, before, after)}
mine = [al for m in d["messages"] for al in m["alerts"]]
exported = {
    "events": sum(len(m["events"]) for m in d["messages"]),
    "alerts": len(mine),
    "webhook_deliveries": sum(len(al["webhook_deliveries"]) for al in mine),
    "recipients": len(d["messages"]),
    "consent": 1 if d["consent"] else 0,
    "consent_history": len(d["consent_history"]),
    "rejected": len(d["rejected"]),
    "shared_alerts_scrubbed": len(d["shared_alerts"]),
    "webhook_bodies_scrubbed": sum(len(al["webhook_deliveries"]) for al in d["shared_alerts"]),
}
for n in names:
    assert exported[n] == gone[n] == delta[n], (n, exported[n], gone[n], delta[n])
assert exported["webhook_deliveries"] > 0 and exported["webhook_bodies_scrubbed"] == 2, exported
PY
# none left in any partition that held some
for p in $parts; do expect "SELECT count(*) FROM $p WHERE message = '$mb' AND recipient_idx = 1" 0; done
# nowhere in the database, in any table or partition, but as a keyed hash
pg_dump "$(mb_pg_conninfo)" --data-only > "$MB_RUN/dump.sql"
whole="(?<![[:alnum:]._%+-])${b//./\\.}(?![[:alnum:]_-]|\\.[[:alnum:]])" # the address, not xbuyer@... nor ....br.example
! grep -qiP "$whole" "$MB_RUN/dump.sql" || fail "the address is still in: $(grep -iP "$whole" "$MB_RUN/dump.sql" | head -3)"
grep -q "naming x$b" "$MB_RUN/dump.sql" || fail "the dump has no rejected entry of x$b: the grep above proves nothing"
expect "SELECT by_whom, reason, counts->>'events' FROM mailbeacon.forget_audit" \
  "dpo (command line) GDPR art. 17 request 42 of (erased) 3"
expect "SELECT count(*) FROM mailbeacon.suppressed WHERE hash = mailbeacon.address_hash('$b')" 1
# tombstones: its index in each message, and index 0 of the copy to several
expect "SELECT string_agg(idx::text, ',' ORDER BY idx) FROM mailbeacon.forgotten WHERE message = '$ms'" "0,1"
expect "SELECT count(*) FROM mailbeacon.forgotten" 3
# in the alert of the copy to several and in its webhook bodies, the address is "(erased)"
expect "SELECT recipient FROM mailbeacon.alerts WHERE message = '$ms' AND recipient_idx = 0" "(erased), x3@empresa.com.br"
expect "SELECT count(*) FROM mailbeacon.webhook_deliveries d JOIN mailbeacon.alerts a ON a.id = d.alert_id
         WHERE a.message = '$ms' AND d.body LIKE '%someone of (erased), x3@empresa.com.br%'" 2
# a hit of the forgotten recipient still on its way is dropped when loaded, and so is one on the copy
# to several (it withdrew before it was forgotten: its consent row, which silenced that copy, went with
# the forget); new mail is not tracked
silenced=$(metric mailbeacon_batcher_events_silenced_total)
curl -s -o /dev/null -A "$chrome" "${bpixel/https:\/\/t.mailbeacon.test/$edge}"
curl -s -o /dev/null -A "$chrome" "${spixel/https:\/\/t.mailbeacon.test/$edge}"
for _ in $(seq 1 300); do [ "$(metric mailbeacon_batcher_events_silenced_total)" = $((silenced + 2)) ] && break; sleep 0.05; done
[ "$(metric mailbeacon_batcher_events_silenced_total)" = $((silenced + 2)) ] ||
  fail "a hit after the forget was stored: $(metric mailbeacon_batcher_events_silenced_total) silenced, want $((silenced + 2))"
expect "SELECT count(*) FROM mailbeacon.events WHERE message = '$ms' AND recipient_idx = 0" 1
expect "SELECT count(*) FROM mailbeacon.events WHERE (message, recipient_idx) IN (SELECT message, idx FROM mailbeacon.forgotten WHERE idx > 0)" 0
"$server" consent copy "$MB_RUN/consent.cdb" > /dev/null
pipe "$b" "$MB_RUN/out.eml"
cmp -s "$msg" "$MB_RUN/out.eml" || fail "forgotten: a new message still tracked"
"$server" export "$b" > "$MB_RUN/export2.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["suppressed"] and not d["messages"] and d["consent"] is None, d' \
  "$MB_RUN/export2.json" || fail "export after forget: $(cat "$MB_RUN/export2.json")"
# a sent record that waited in a rewriter's spool, loaded after the forget: its recipient is dropped
# again, with the tombstones of its index and of index 0 (a copy sent to several)
late=$(uuid 77)
xadd type sent v 1 message "$late" message_id late@ourco.example rep sam@ourco.example \
  recipients '[{"i":1,"addr":"Buyer@Empresa.com.br","track":"opens,clicks","basis":"default_other"},
               {"i":2,"addr":"y@empresa.com.br","track":"opens,clicks","basis":"default_other"}]' token_recipient 0 \
  subject late sent_at "$(date +%s%6N)" links '[]' client_ip '' policy p1-000000000000
wait_rows "SELECT count(*) FROM mailbeacon.messages WHERE message = '$late'" 1
expect "SELECT string_agg(address, ',') FROM mailbeacon.recipients WHERE message = '$late'" y@empresa.com.br
expect "SELECT string_agg(idx::text, ',' ORDER BY idx) FROM mailbeacon.forgotten WHERE message = '$late'" "0,1"
# consent given before the forget does not lift the suppression: a CRM sync carrying the original
# consent (2020), nor a record without a time; consent given after the forget does
printf 'address,state,source,time\n%s,granted,crm,2020-03-12T10:00:00Z\n' "$b" > "$MB_RUN/b2.csv"
"$server" consent import "$MB_RUN/b2.csv" > /dev/null
expect "SELECT count(*) FROM mailbeacon.suppressed" 1
printf 'address,state,source\n%s,granted,crm\n' "$b" > "$MB_RUN/b2.csv"
"$server" consent import "$MB_RUN/b2.csv" > /dev/null
expect "SELECT count(*) FROM mailbeacon.suppressed" 1
expect "SELECT state, time_given FROM mailbeacon.consent WHERE address = '$b'" "granted f"
"$server" consent copy "$MB_RUN/consent.cdb" > /dev/null
pipe "$b" "$MB_RUN/out.eml"
cmp -s "$msg" "$MB_RUN/out.eml" || fail "forgotten, then an old consent imported again: tracked"
sleep 1.1 # a time to the second, later than the forget and the import before
printf 'address,state,time\n%s,granted,%s\n' "$b" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$MB_RUN/b2.csv"
"$server" consent import "$MB_RUN/b2.csv" > /dev/null
expect "SELECT count(*) FROM mailbeacon.suppressed" 0
"$server" consent copy "$MB_RUN/consent.cdb" > /dev/null
pipe "$b" "$MB_RUN/out.eml"
tracked "$MB_RUN/out.eml" || fail "consent after the forget: not tracked"

# ---- the same for a CRM: the admin listener's privacy endpoints, with an admin token only
atok=$("$server" admin-token dpo@ourco.example 2>/dev/null) rtok=$("$server" rep-token sam@ourco.example 2>/dev/null)
admin=http://127.0.0.1:$aport/privacy
code() { curl -s -o "$MB_RUN/resp" -w '%{http_code}' "$@"; }
[ "$(code "$admin/export?address=later@client.com")" = 401 ] || fail "export without a token: not 401"
[ "$(code -H "Authorization: Bearer $rtok" "$admin/export?address=later@client.com")" = 403 ] ||
  fail "export with a rep token: not 403"
[ "$(code -H "Authorization: Bearer mba1.forged" "$admin/export?address=later@client.com")" = 401 ] ||
  fail "export with a forged token: not 401"
[ "$(code -H "Authorization: Bearer $atok" "$admin/export?address=later@client.com")" = 200 ] ||
  fail "export: $(cat "$MB_RUN/resp")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["consent"]["state"] == "withdrawn", d' \
  "$MB_RUN/resp" || fail "export said: $(cat "$MB_RUN/resp")"
[ "$(code -X POST -H "Authorization: Bearer $rtok" --data '{"address":"later@client.com","reason":"x"}' \
  "$admin/forget")" = 403 ] || fail "forget with a rep token: not 403"
[ "$(code -X POST -H "Authorization: Bearer $atok" --data '{"address":"later@client.com"}' "$admin/forget")" = 400 ] ||
  fail "forget without a reason: not 400"
[ "$(code -X POST -H "Authorization: Bearer $atok" --data '{"address":"later@client.com","reason":"CRM request 7"}' \
  "$admin/forget")" = 200 ] || fail "forget: $(cat "$MB_RUN/resp")"
grep -q '"forgotten"' "$MB_RUN/resp" || fail "forget said: $(cat "$MB_RUN/resp")"
expect "SELECT by_whom, reason FROM mailbeacon.forget_audit ORDER BY id DESC LIMIT 1" \
  "dpo@ourco.example (admin token) CRM request 7"
expect "SELECT count(*) FROM mailbeacon.consent WHERE address = 'later@client.com'" 0

# ---- nothing about a recipient outlives its message: its alerts and tombstones go with it (sql/019)
om=$(sql "SELECT message FROM mailbeacon.recipients WHERE address = 'buyer@client.com'")
sql "INSERT INTO mailbeacon.alerts (rep, kind, message, recipient_idx, recipient, subject, occurred_at, event_id, class,
                                    opens, clicks)
     VALUES ('sam@ourco.example', 'open', '$om', 1, 'buyer@client.com', 's', now(), gen_random_uuid(), 'human', 1, 0)" >/dev/null
sql "INSERT INTO mailbeacon.forgotten VALUES ('$om', 9)" > /dev/null
sql "DELETE FROM mailbeacon.messages WHERE message = '$om'" > /dev/null
expect "SELECT count(*) FROM mailbeacon.alerts WHERE message = '$om'" 0
expect "SELECT count(*) FROM mailbeacon.forgotten WHERE message = '$om'" 0
expect "SELECT count(*) FROM mailbeacon.recipients WHERE message = '$om'" 0

# ---- a consent copy that cannot be read: nothing tracked, and said why
MAILBEACON_CONSENT_COPY=$MB_RUN/missing.cdb MAILBEACON_LOG_FILE=stderr pipe granted@kunde.de "$MB_RUN/out.eml"
cmp -s "$msg" "$MB_RUN/out.eml" || fail "an unreadable copy: the message changed"
grep -q "warning: not rewritten: the consent copy cannot be read: .*missing.cdb: No such file" "$MB_RUN/rewrite.log" ||
  fail "an unreadable copy: not said"
echo "consent: all checks passed"
