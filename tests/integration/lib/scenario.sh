# Helpers for scenario tests through the real path (classify.sh, alerts.sh):
# SQL checks against the private PostgreSQL, stream entries with chosen
# facts written straight to the private Redis, and the shipped rules file
# with its IP lists pointed at small files in the publishers' formats.
# Source after scripts/lib/services.sh, with MB_RUN set; the caller defines
# fail().

sql() { mb_psql -tA -F ' ' -c "$1"; }
expect() { # expect SQL VALUE
  local got
  got=$(sql "$1")
  [ "$got" = "$2" ] || fail "$1
  expected: $2
  got:      $got"
}
wait_rows() { # wait_rows SQL VALUE: until the query gives VALUE (15 s)
  for _ in $(seq 1 300); do [ "$(sql "$1")" = "$2" ] && return 0; sleep 0.05; done
  expect "$1" "$2"
}
xadd() { mb_redis_cli XADD mailbeacon:events '*' "$@" >/dev/null; }

S=1000000 M=$((60 * 1000000)) H=$((3600 * 1000000))
uuid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
ev() { # ev N KIND LINK TIME_US IP METHOD UA [PURPOSE]: one v2 event line of message N (recipient
  # ${R:-1}), its id made of the message, kind, link and time (no counter: the line is made in a
  # subshell)
  local url=
  [ "$2" = c ] && url="https://e.example/$3"
  printf '%04x%04x%02x%022x\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tedge-x\t%s\t%s\t%s' "$1" "$3" "'$2" "$4" "$2" "$(uuid "$1")" \
    "${R:-1}" "$3" "$4" "$5" "$6" "$7" "$url" "${8:-}"
}
hits() { # hits LINE...: one entry
  xadd type hits v 2 n $# d "$(printf '%s\n' "$@")
"
}
chrome='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
outlook='Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)'
gmail_proxy='Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'

# scenario_rules RULES_SRC: writes $MB_RUN/mailbeacon.rules, the shipped file
# with its lists in $MB_RUN/lists: the office 198.51.100.0/24; Apple
# 203.0.113.0/24 and 2001:db8:a::/48; Google 192.0.2.192/26 and
# 2001:db8:6::/48; Microsoft 365's Exchange 192.0.2.128/26 and
# 2001:db8:365::/48. Sets $version to the file's version.
scenario_rules() {
  local lists=$MB_RUN/lists
  mkdir -p "$lists"
  printf '# the office\n198.51.100.0/24\n' > "$lists/office.txt"
  printf '203.0.113.0/24,US,US-CA,Cupertino,\n2001:db8:a::/48,GB,GB-EN,London,\n' > "$lists/apple.csv"
  printf '{"syncToken":"1","prefixes":[{"ipv4Prefix":"192.0.2.192/26"},{"ipv6Prefix":"2001:db8:6::/48"}]}\n' \
    > "$lists/goog.json"
  printf '[{"id":1,"serviceArea":"Exchange","ips":["192.0.2.128/26","2001:db8:365::/48"]},
 {"id":2,"serviceArea":"SharePoint","ips":["192.0.2.0/26"]}]\n' > "$lists/m365.json"
  sed -e "s|^list office cidr .*|list office cidr $lists/office.txt|" \
    -e "s|^list apple_egress apple-csv .*|list apple_egress apple-csv $lists/apple.csv|" \
    -e "s|^list google google-json .*|list google google-json $lists/goog.json|" \
    -e "s|^list m365_exchange m365-json .*|list m365_exchange m365-json $lists/m365.json|" \
    "$1" > "$MB_RUN/mailbeacon.rules"
  version=$(awk '$1 == "version" {print $2}' "$MB_RUN/mailbeacon.rules")
}

# scenario_start SERVER REWRITE EDGE_ID: a private Redis and PostgreSQL, a key
# ring, the schema, and mailbeacon-server (--role all) with the rules of
# scenario_rules, batches of 20 ms, its listeners on port 0; what the caller
# exported before (MAILBEACON_*) is kept. Sets spid, port (public) and aport
# (admin); the caller's EXIT trap stops them.
scenario_start() {
  mb_redis_start
  mb_pg_start
  "$2" --keygen "$MB_RUN/keys" >/dev/null
  export MAILBEACON_POSTGRES="$(mb_pg_conninfo)" MAILBEACON_REDIS=$(mb_redis_addr) \
    MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_SPOOL_DIR=$MB_RUN/spool \
    MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 MAILBEACON_EDGE_ID=$3 \
    MAILBEACON_BATCH_WAIT_MS=20 MAILBEACON_RULES_FILE=$MB_RUN/mailbeacon.rules
  "$1" migrate > "$MB_RUN/migrate.log" || fail "migrate: $(cat "$MB_RUN/migrate.log")"
  "$1" >> "$MB_RUN/server.log" 2>&1 &
  spid=$!
  port=$(mb_wait_port $spid "$MB_RUN/server.log" listen) && aport=$(mb_wait_port $spid "$MB_RUN/server.log" admin) ||
    fail "server did not start"
}
