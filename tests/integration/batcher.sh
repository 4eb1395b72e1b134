#!/usr/bin/env bash
# The batcher with a private Redis and PostgreSQL, end to end:
#   - `migrate` applies the schema once; a second run does nothing;
#   - a rewritten message to two recipients, its pixel and links hit (and a
#     forged hit): the rows and every view show exactly that;
#   - a redelivered entry loads nothing twice (the staging path), an entry
#     half old and half new loads only the new half;
#   - malformed lines, an unknown entry type and a bad sent record end up in
#     mailbeacon.rejected while the good lines of the same batch load;
#   - events on both sides of a month boundary land in their own partitions,
#     created on demand;
#   - `maintain` with retention drops only partitions wholly past it and
#     truncates only old IPs.
# usage: batcher.sh MAILBEACON_SERVER MAILBEACON_REWRITE DATA_DIR
set -euo pipefail
server=$1 rewrite=$2 data=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/services.sh"
MB_RUN=$(mktemp -d /tmp/mb-batcher.XXXXXX)
spid= port= aport=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; mb_redis_stop; mb_pg_stop; rm -rf "$MB_RUN"' EXIT
fail() { echo "FAIL: $*" >&2; tail -30 "$MB_RUN/server.log" >&2 || true; exit 1; }
sql() { mb_psql -tA -F ' ' -c "$1"; }
expect() { # expect SQL VALUE: the query's output must be VALUE
  local got
  got=$(sql "$1")
  [ "$got" = "$2" ] || fail "$1
  expected: $2
  got:      $got"
}
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
wait_rows() { # wait_rows SQL VALUE: until the query gives VALUE (10 s)
  for _ in $(seq 1 200); do [ "$(sql "$1")" = "$2" ] && return 0; sleep 0.05; done
  expect "$1" "$2"
}

mb_redis_start
mb_pg_start
"$rewrite" --keygen "$MB_RUN/keys" >/dev/null
# the listeners on any free port (port 0): the start line says which; base_url follows
export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) \
  MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
  MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_EDGE_ID=edge-t \
  MAILBEACON_BATCH_WAIT_MS=20 MAILBEACON_PER_RECIPIENT=no

# --- migrations
# (a batcher started before migrate waits for the schema: tests/integration/roles.sh)
"$server" migrate > "$MB_RUN/m1" || fail "migrate: $(cat "$MB_RUN/m1")"
grep -q "applied sql/001_schema.sql" "$MB_RUN/m1" || fail "first migrate: $(cat "$MB_RUN/m1")"
"$server" migrate > "$MB_RUN/m2" || fail "second migrate"
grep -q "^applied sql" "$MB_RUN/m2" && fail "second migrate applied something: $(cat "$MB_RUN/m2")"
grep -q "0 migrations applied now" "$MB_RUN/m2" || fail "second migrate: $(cat "$MB_RUN/m2")"
nmig=$(ls "$here/../../sql"/*.sql | wc -l)
expect "SELECT count(*) FROM mailbeacon.schema_migrations" "$nmig"
# a changed migration is refused
sql "UPDATE mailbeacon.schema_migrations SET sha256 = 'x' WHERE version = 1" >/dev/null
"$server" migrate > "$MB_RUN/m3" 2>&1 && fail "migrate accepted a changed migration"
grep -q "001_schema.sql was changed" "$MB_RUN/m3" || fail "changed migration: $(cat "$MB_RUN/m3")"
sql "DELETE FROM mailbeacon.schema_migrations WHERE version = 1" >/dev/null
mb_psql -q -c "INSERT INTO mailbeacon.schema_migrations SELECT 1, '001_schema.sql', '$(sha256sum "$here/../../sql/001_schema.sql" | cut -c1-64)'" ||
  fail "restoring the record"
"$server" migrate > "$MB_RUN/m4" || fail "migrate after restoring: $(cat "$MB_RUN/m4")"
# a database that is not UTF-8 would refuse some events' text: refused up front
sql "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
MAILBEACON_POSTGRES="$(mb_pg_conninfo | sed 's/dbname=mailbeacon/dbname=latin/')" "$server" migrate \
  > "$MB_RUN/m5" 2>&1 && fail "migrate accepted a LATIN1 database"
grep -q "encoding is LATIN1, not UTF8" "$MB_RUN/m5" || fail "LATIN1 database: $(cat "$MB_RUN/m5")"
echo "ok migrations: applied once, idempotent, changed text refused, non-UTF-8 database refused"

# --- end to end
"$server" >> "$MB_RUN/server.log" 2>&1 &
spid=$!
port=$(mb_wait_port $spid "$MB_RUN/server.log" listen) && aport=$(mb_wait_port $spid "$MB_RUN/server.log" admin) ||
  fail "server did not start"
export MAILBEACON_BASE_URL=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"postgres":"up"' && break; sleep 0.05; done
curl -s "http://127.0.0.1:$aport/healthz" | grep -q '"postgres":"up"' || fail "batcher not up: $(curl -s "http://127.0.0.1:$aport/healthz")"

"$rewrite" --sender sam.ortega@ourco.example --recipient dana@acme.example --recipient Lee@Acme.example \
  < "$data/01-single-html-7bit.eml" > "$MB_RUN/out.eml" 2> "$MB_RUN/rewrite.log" || fail "rewrite: $(cat "$MB_RUN/rewrite.log")"
grep -o "http://127.0.0.1:$port/o/[A-Za-z0-9_-]*\.gif" "$MB_RUN/out.eml" | head -1 > "$MB_RUN/pixel"
grep -o "http://127.0.0.1:$port/c/[^\"]*" "$MB_RUN/out.eml" | sed 's/&amp;/\&/g' > "$MB_RUN/links"
[ -s "$MB_RUN/pixel" ] && [ "$(wc -l < "$MB_RUN/links")" -ge 2 ] || fail "no tracking URLs in the rewritten message"
pixel=$(cat "$MB_RUN/pixel") link1=$(sed -n 1p "$MB_RUN/links") link2=$(sed -n 2p "$MB_RUN/links")
for u in "$pixel" "$pixel" "$pixel" "$link1" "$link1" "$link2"; do
  curl -s -o /dev/null -A "Mozilla/5.0 (test)" "$u"
done
curl -s -o /dev/null "${pixel%.gif}x.gif"   # forged: answered, not recorded
wait_rows "SELECT count(*) FROM mailbeacon.events" 6
msg=$(sql "SELECT message FROM mailbeacon.messages")
[ -n "$msg" ] || fail "no message row"
expect "SELECT rep, subject, recipient_count FROM mailbeacon.messages" "sam.ortega@ourco.example Proposal Q3 2"
expect "SELECT string_agg(idx || '=' || address, ',' ORDER BY idx) FROM mailbeacon.recipients" \
  "1=dana@acme.example,2=Lee@Acme.example"
nlinks=$(grep -c . "$MB_RUN/links")
expect "SELECT count(*) FROM mailbeacon.links WHERE message = '$msg'" "$nlinks"
expect "SELECT url FROM mailbeacon.links WHERE idx = 1" "https://example.com/pricing"
# one copy to two recipients: its tokens carry recipient 0 ("someone")
expect "SELECT kind, recipient_idx, link_idx, count(*), min(ip::text), min(method), min(edge), min(user_agent)
          FROM mailbeacon.events GROUP BY 1, 2, 3 ORDER BY 1, 3" \
  "open 0 0 3 127.0.0.1/32 GET edge-t Mozilla/5.0 (test)
click 0 1 2 127.0.0.1/32 GET edge-t Mozilla/5.0 (test)
click 0 2 1 127.0.0.1/32 GET edge-t Mozilla/5.0 (test)"
expect "SELECT count(*) FROM mailbeacon.events WHERE kind = 'click' AND url IS NULL OR kind = 'open' AND url IS NOT NULL" 0
expect "SELECT count(*) FROM mailbeacon.events WHERE occurred_at > loaded_at OR loaded_at > now()" 0
expect "SELECT recipients, opens, unique_opens, clicks, unique_clicks, first_open < last_open, unclassified, human_opens
          FROM mailbeacon.message_engagement" "2 3 1 3 1 t 0 3"
expect "SELECT link_idx, clicks, unique_clicks FROM mailbeacon.link_clicks WHERE link_idx <= 3 ORDER BY link_idx" \
  "1 2 1
2 1 1
3 0 0"
expect "SELECT sent, recipients, opened, opened_pct, clicked_pct FROM mailbeacon.rep_daily" "1 2 1 100.0 100.0"
# index 0 cannot be put on one address: each recipient's timeline holds the send only
expect "SELECT address, kind FROM mailbeacon.recipient_timeline ORDER BY address, occurred_at" \
  "dana@acme.example sent
lee@acme.example sent"
# the classes split the counts (every hit came from one browser: all human, all final once the
# look-ahead window closed); opens a machine made, and the one a person's click implies
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE class = 'human' AND reason = 'no_machine_signal'
             AND occurred_at < mailbeacon.final_before()" 6
sql "UPDATE mailbeacon.events SET class = CASE WHEN kind = 'open' THEN 'prefetch' ELSE 'human' END" >/dev/null
expect "SELECT human_opens, machine_opens, human_clicks, human_unique_clicks, unclassified, implied_opens, prefetch_opens
          FROM mailbeacon.message_engagement" "1 3 3 1 0 1 3"
echo "ok end to end: message, recipients, links, 6 events (forged hit not recorded), every view"

# --- a single-recipient message: its hits are on the recipient's timeline
"$rewrite" --sender sam.ortega@ourco.example --recipient kim@beta.example < "$data/01-single-html-7bit.eml" \
  > "$MB_RUN/out2.eml" 2>> "$MB_RUN/rewrite.log"
pixel2=$(grep -o "http://127.0.0.1:$port/o/[A-Za-z0-9_-]*\.gif" "$MB_RUN/out2.eml" | head -1)
curl -s -o /dev/null "$pixel2"
wait_rows "SELECT count(*) FROM mailbeacon.events" 7
expect "SELECT string_agg(kind, ',' ORDER BY occurred_at) FROM mailbeacon.recipient_timeline WHERE address = 'kim@beta.example'" \
  "sent,open"
echo "ok recipient timeline"

# --- redelivery and duplicates
line() { # line ID TIME_US: a valid open event line
  printf '%s\to\t%s\t1\t0\t%s\t198.51.100.7\tGET\tedge-x\tua\t' "$1" "$msg" "$2"
}
now_us=$(($(date +%s) * 1000000))
a=$(line 0000000000000000000000000000000a $now_us) b=$(line 0000000000000000000000000000000b $now_us)
c=$(line 0000000000000000000000000000000c $now_us)
xadd() { mb_redis_cli XADD mailbeacon:events '*' "$@" >/dev/null; }
xadd type hits v 1 n 2 d "$a
$b
"
wait_rows "SELECT count(*) FROM mailbeacon.events" 9
xadd type hits v 1 n 2 d "$a
$b
"
xadd type hits v 1 n 2 d "$b
$c
"
wait_rows "SELECT count(*) FROM mailbeacon.events" 10
for _ in $(seq 1 100); do [ "$(metric 'mailbeacon_batcher_rows_total{result="duplicate"}')" = 3 ] && break; sleep 0.05; done
[ "$(metric 'mailbeacon_batcher_rows_total{result="duplicate"}')" = 3 ] || fail "duplicates counted: $(metric 'mailbeacon_batcher_rows_total{result="duplicate"}')"
expect "SELECT count(*) - count(DISTINCT event_id) FROM mailbeacon.events" 0
echo "ok redelivered entries: 3 duplicates skipped, nothing twice"

# --- what cannot be loaded is kept, the rest of the batch loads
d=$(line 0000000000000000000000000000000d $now_us)
xadd type hits v 1 n 3 d "$d
not an event
$(line 0000000000000000000000000000000e 17)
"
xadd type clicks v 9 x 1
xadd type sent v 1 message "$msg" message_id x rep r subject s sent_at 1 recipients 'not json' links '[]'
wait_rows "SELECT count(*) FROM mailbeacon.rejected" 4
expect "SELECT count(*) FROM mailbeacon.events WHERE event_id = '0000000000000000000000000000000d'" 1
expect "SELECT part, reason FROM mailbeacon.rejected ORDER BY stream_id, part" \
  "2 fewer than 11 fields
3 bad time
0 not a type=hits v=1|2 or type=sent v=1 entry
0 invalid input syntax for type json"
expect "SELECT entry FROM mailbeacon.rejected WHERE part = 2" "not an event"
for _ in $(seq 1 100); do [ "$(mb_redis_cli XLEN mailbeacon:events)" = 0 ] && break; sleep 0.05; done
[ "$(mb_redis_cli XLEN mailbeacon:events)" = 0 ] || fail "entries left in the stream"
echo "ok rejected lines and entries kept in mailbeacon.rejected, the stream emptied"

# --- the stream and its group lost (a Redis without persistence restarted): the batcher makes
# the group again, from the start of the stream, and loads what comes
mb_redis_cli DEL mailbeacon:events >/dev/null
sleep 0.3
xadd type hits v 1 n 1 d "$(line 000000000000000000000000000000f0 "$now_us")
"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id = '000000000000000000000000000000f0'" 1
echo "ok stream and group lost: made again, loading goes on"

# --- partitions on both sides of a month boundary (far ahead: created on demand).
#     The years are counted from now (y is five years ahead, z the year after),
#     so that they stay ahead of the partitions made for now whenever this runs.
y=$(($(date -u +%Y) + 5))
z=$((y + 1))
t1=$(date -u -d "$y-12-31 23:59:59" +%s)999999 t2=$(date -u -d "$z-01-01 00:00:00" +%s)000000
xadd type hits v 1 n 2 d "$(line 000000000000000000000000000000f1 "$t1")
$(line 000000000000000000000000000000f2 "$t2")
"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE occurred_at >= '$y-12-01 00:00+00'" 2
expect "SET timezone = 'UTC'; SELECT tableoid::regclass, occurred_at FROM mailbeacon.events WHERE occurred_at >= '$y-12-01 00:00+00' ORDER BY 2" \
  "mailbeacon.events_${y}_12 $y-12-31 23:59:59.999999+00
mailbeacon.events_${z}_01 $z-01-01 00:00:00+00"
# (now + 3 months in UTC, as partitions are: not in the session's time zone)
expect "SELECT count(*) FROM pg_tables WHERE schemaname = 'mailbeacon' AND tablename = to_char(now() AT TIME ZONE 'UTC' + interval '3 months', '\"events_\"YYYY_MM')" 1
# months are UTC whatever the session's time zone (Los Angeles: still November at 03:00 UTC on 1 December)
expect "SET timezone = 'America/Los_Angeles'; SELECT string_agg(p, ',') FROM mailbeacon.ensure_partitions('2027-12-01 03:00+00', 3) AS p" \
  "events_2027_12,events_2028_01,events_2028_02,events_2028_03"
echo "ok partitions: month boundary, created on demand and ahead"

kill -TERM $spid
wait $spid || fail "server exit status $?"
spid=

# --- retention
sql "SELECT mailbeacon.ensure_partition('2020-01-15')" >/dev/null
# the partitions first: three days ago is last month in the first days of a month
sql "SELECT mailbeacon.ensure_partition(now() - interval '3 days')" >/dev/null
mb_psql -q -c "INSERT INTO mailbeacon.events (event_id, kind, message, recipient_idx, link_idx, occurred_at, ip, method, edge, user_agent)
  VALUES ('00000000000000000000000000000101', 'open', '$msg', 1, 0, '2020-01-20', '203.0.113.9', 'GET', 'e', ''),
         ('00000000000000000000000000000102', 'open', '$msg', 1, 0, now() - interval '3 days', '203.0.113.9', 'GET', 'e', ''),
         ('00000000000000000000000000000103', 'open', '$msg', 1, 0, now() - interval '3 days', '2001:db8:1:2::9', 'GET', 'e', '')" ||
  fail "inserting old events"
MAILBEACON_RETENTION_DAYS=400 MAILBEACON_IP_RETENTION_DAYS=2 "$server" maintain > "$MB_RUN/maint" || fail "maintain"
grep -q "dropped partition events_2020_01" "$MB_RUN/maint" || fail "maintain: $(cat "$MB_RUN/maint")"
grep -q "truncated the IPs of 2 events" "$MB_RUN/maint" || fail "maintain: $(cat "$MB_RUN/maint")"
expect "SELECT count(*) FROM pg_tables WHERE tablename = 'events_2020_01'" 0
expect "SELECT host(ip) FROM mailbeacon.events WHERE event_id IN ('00000000-0000-0000-0000-000000000102', '00000000-0000-0000-0000-000000000103') ORDER BY event_id" \
  "203.0.113.0
2001:db8:1::"
expect "SELECT count(*) FROM mailbeacon.events WHERE ip = '127.0.0.1'" 7   # recent IPs untouched
expect "SELECT count(*) FROM mailbeacon.messages" 2
# a second run has nothing to do
MAILBEACON_RETENTION_DAYS=400 MAILBEACON_IP_RETENTION_DAYS=2 "$server" maintain > "$MB_RUN/maint2" || fail "maintain 2"
[ ! -s "$MB_RUN/maint2" ] || fail "second maintain did something: $(cat "$MB_RUN/maint2")"
# as of a later day (in year z, after everything made so far), the partitions of months wholly
# past it go, newer ones stay
sql "SELECT mailbeacon.ensure_partition('$z-02-10 00:00+00')" >/dev/null
sql "SELECT mailbeacon.apply_retention(30, 0, '$z-03-05 00:00+00')" > "$MB_RUN/ret"
grep -q "dropped partition events_${z}_01" "$MB_RUN/ret" || fail "retention at $z-03-05: $(cat "$MB_RUN/ret")"
grep -q "deleted 4 rejected entries" "$MB_RUN/ret" || fail "rejected entries kept: $(cat "$MB_RUN/ret")"
expect "SELECT count(*) FROM pg_tables WHERE schemaname = 'mailbeacon' AND tablename = 'events_${z}_02'" 1
expect "SELECT count(*) FROM pg_tables WHERE schemaname = 'mailbeacon' AND tablename ~ '^events_' AND tablename < 'events_${z}_02'" 0
expect "SELECT count(*) FROM mailbeacon.messages" 0
echo "ok retention: old partitions dropped, old IPs truncated, a second run does nothing"

# --- IP retention reads only the days since its last run; the batcher
#     truncates events that arrive already past it
expect "SELECT ip_truncated_before BETWEEN now() - interval '2 days 1 hour' AND now() - interval '2 days'
          FROM mailbeacon.retention_state" t
sql "SELECT mailbeacon.ensure_partitions(now() - interval '10 days', 1)" >/dev/null
mb_psql -q -c "INSERT INTO mailbeacon.events (event_id, kind, message, recipient_idx, link_idx, occurred_at, ip, method, edge, user_agent)
  VALUES ('00000000000000000000000000000201', 'open', '$msg', 1, 0, now() - interval '10 days', '203.0.113.9', 'GET', 'e', '')" ||
  fail "inserting an old event"
MAILBEACON_IP_RETENTION_DAYS=2 "$server" maintain > "$MB_RUN/maint3" || fail "maintain 3"
[ ! -s "$MB_RUN/maint3" ] || fail "maintain read behind its window: $(cat "$MB_RUN/maint3")"
expect "SELECT host(ip) FROM mailbeacon.events WHERE event_id = '00000000-0000-0000-0000-000000000201'" 203.0.113.9
sql "UPDATE mailbeacon.retention_state SET ip_truncated_before = '-infinity'" >/dev/null # read everything once
MAILBEACON_IP_RETENTION_DAYS=2 "$server" maintain > "$MB_RUN/maint4" || fail "maintain 4"
grep -q "truncated the IPs of 1 events" "$MB_RUN/maint4" || fail "maintain after reset: $(cat "$MB_RUN/maint4")"
expect "SELECT host(ip) FROM mailbeacon.events WHERE event_id = '00000000-0000-0000-0000-000000000201'" 203.0.113.0
# a batcher with ip_retention_days: an event 10 days old loads truncated, one from now as it came
MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_IP_RETENTION_DAYS=2 "$server" --role batcher >> "$MB_RUN/server.log" 2>&1 &
spid=$!
old_us=$(( ($(date +%s) - 10 * 86400) * 1000000 ))
xadd type hits v 1 n 2 d "$(printf '00000000000000000000000000000202\to\t%s\t1\t0\t%s\t2001:db8:1:2::9\tGET\te\tua\t' "$msg" "$old_us")
$(line 00000000000000000000000000000203 $(($(date +%s) * 1000000)))
"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id::text LIKE '00000000-0000-0000-0000-00000000020_' AND event_id::text > '00000000-0000-0000-0000-000000000201'" 2
expect "SELECT host(ip) FROM mailbeacon.events WHERE event_id IN ('00000000-0000-0000-0000-000000000202', '00000000-0000-0000-0000-000000000203') ORDER BY event_id" \
  "2001:db8:1::
198.51.100.7"
kill -TERM $spid
wait $spid || fail "batcher exit status $?"
spid=
echo "ok IP retention window: behind it untouched until reset; late events truncated as they load"

# --- ip_truncate: the stream carries the whole address, the batcher stores /24 and /48
MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_IP_TRUNCATE=yes "$server" --role batcher >> "$MB_RUN/server.log" 2>&1 &
spid=$!
now_us=$(($(date +%s) * 1000000))
xadd type hits v 1 n 2 d "$(printf '00000000000000000000000000000301\to\t%s\t1\t0\t%s\t2001:db8:1:2:3::5\tGET\te\tua\t' "$msg" "$now_us")
$(line 00000000000000000000000000000302 "$now_us")
"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id::text LIKE '00000000-0000-0000-0000-00000000030_'" 2
expect "SELECT host(ip) FROM mailbeacon.events WHERE event_id::text LIKE '00000000-0000-0000-0000-00000000030_' ORDER BY event_id" \
  "2001:db8:1::
198.51.100.0"
kill -TERM $spid
wait $spid || fail "batcher exit status $?"
spid=
echo "ok ip_truncate: whole in the stream, /24 and /48 once loaded"

# --- what used to stop the batcher for ever (issue 11, item 5)
MAILBEACON_BATCHER_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_BATCH_MAX_ATTEMPTS=2 "$server" --role batcher >> "$MB_RUN/b5.log" 2>&1 &
spid=$!
bport=$(mb_wait_port $spid "$MB_RUN/b5.log" admin) || fail "batcher did not start: $(tail -5 "$MB_RUN/b5.log")"
health() { curl -s "http://127.0.0.1:$bport/healthz"; }
wait_health() { # wait_health PATTERN: until /healthz matches (15 s)
  for _ in $(seq 1 300); do health | grep -q "$1" && return 0; sleep 0.05; done
  fail "/healthz never matched $1: $(health)"
}
wait_health '"status":"ok"'
# an entry whose lines fall in 70 months (the batcher knew 64 and retried it for ever)
lines=
for i in $(seq 0 69); do
  t=$(date -u -d "$(( $(date -u +%Y) + 10 ))-01-15 +$i months" +%s)000000
  lines="$lines$(line "$(printf '%032x' $((0x500 + i)))" "$t")
"
done
xadd type hits v 1 n 70 d "$lines"
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id::text LIKE '00000000-0000-0000-0000-0000000005__'" 70
# an entry PostgreSQL keeps refusing (here a trigger): after batch_max_attempts the batch is loaded
# entry by entry, that entry is kept whole in mailbeacon.rejected with the reason, the rest loads
sql "CREATE FUNCTION mailbeacon.t_poison() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
       IF NEW.user_agent = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END \$\$" >/dev/null
sql "CREATE TRIGGER poison BEFORE INSERT ON mailbeacon.events FOR EACH ROW EXECUTE FUNCTION mailbeacon.t_poison()" >/dev/null
now_us=$(($(date +%s) * 1000000))
xadd type hits v 1 n 1 d "$(line 00000000000000000000000000000601 "$now_us")
"
xadd type hits v 1 n 1 d "$(printf '00000000000000000000000000000602\to\t%s\t1\t0\t%s\t198.51.100.7\tGET\te\tpoison\t' "$msg" "$now_us")
"
xadd type hits v 1 n 1 d "$(line 00000000000000000000000000000603 "$now_us")
"
wait_rows "SELECT count(*) FROM mailbeacon.rejected WHERE reason LIKE 'refused by PostgreSQL 2 times: %poisoned row%'" 1
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id::text LIKE '00000000-0000-0000-0000-00000000060_'" 2
expect "SELECT entry::json->>'d' LIKE '%poison%' FROM mailbeacon.rejected WHERE reason LIKE 'refused by PostgreSQL%'" t
sql "DROP TRIGGER poison ON mailbeacon.events" >/dev/null
wait_health '"status":"ok"'
# PostgreSQL down: the lag grows while entries wait, /healthz says why, /readyz answers 503; then back
mb_pg_stop
xadd type hits v 1 n 1 d "$(line 00000000000000000000000000000701 "$(($(date +%s) * 1000000))")
"
wait_health '"status":"degraded","problems":\["postgres_down"\]'
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bport/readyz")" = 503 ] || fail "/readyz while PostgreSQL is down"
for _ in $(seq 1 100); do
  lag=$(health | python3 -c 'import json,sys; print(json.load(sys.stdin)["batcher"]["lag_seconds"])')
  python3 -c "import sys; sys.exit(0 if $lag >= 1.5 else 1)" && break
  sleep 0.1
done
python3 -c "import sys; sys.exit(0 if $lag >= 1.5 else 1)" || fail "the lag did not grow while PostgreSQL was down: $lag"
mb_pg_start
wait_rows "SELECT count(*) FROM mailbeacon.events WHERE event_id = '00000000000000000000000000000701'" 1
wait_health '"status":"ok"'
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bport/readyz")" = 200 ] || fail "/readyz after PostgreSQL came back"
kill -TERM $spid
wait $spid || fail "batcher exit status $?"
spid=
echo "ok no entry stops the batcher: 70 months, an entry PostgreSQL refuses, PostgreSQL down (lag, health, readiness)"
echo "batcher: all passed"
