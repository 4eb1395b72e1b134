# A private Postfix for tests and benchmarks, with no TCP port at all: its own
# main.cf, master.cf, queue and log under $MB_PF (a temp dir); mail comes in
# on smtpd listeners that are Unix sockets in the queue's public/ directory
# (swaks --socket, smtp-source unix:PATH) and is delivered over LMTP to an
# smtp-sink on the Unix socket $MB_PF/sink.sock, which dumps each message to
# $MB_PF/sink. Source this file (after services.sh); run as root. Nothing here
# touches a system Postfix.
#
#   mb_postfix_init                       write the configuration, with the smtpd listener "mbsmtp"
#   mb_postfix_smtpd NAME ['-o k=v'...]   add another smtpd listener (a Unix socket)
#   mb_postfix_socket [NAME]              print a listener's socket path (default mbsmtp)
#   mb_postfix_main  'line'...            add main.cf lines
#   mb_postfix_master 'line'...           add master.cf lines
#   mb_postfix_start / mb_postfix_stop    start and stop Postfix and the sink
#   mb_postfix_reload                     postfix reload
#   mb_postfix_wait_sent N [SECONDS]      wait until N deliveries to the sink are logged
#   mb_postfix_log                        print the mail log (on failure)
#
# smtpd takes a client on a Unix socket for localhost (127.0.0.1): mynetworks
# lets it relay.

mb_postfix_init() {
  mkdir -p "$MB_PF"/{etc,queue,data,sink}
  chmod 755 "$MB_PF"
  chmod o+x "$(dirname "$MB_PF")" # Postfix's users must reach it (mktemp makes 0700)
  chown postfix "$MB_PF/data" "$MB_PF/sink"
  cat > "$MB_PF/etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $MB_PF/etc
queue_directory = $MB_PF/queue
data_directory = $MB_PF/data
maillog_file = $MB_PF/maillog
maillog_file_prefixes = $MB_PF
myhostname = mta.mailbeacon.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_transport = lmtp:unix:$MB_PF/sink.sock
relay_transport = lmtp:unix:$MB_PF/sink.sock
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
biff = no
message_size_limit = 52428800
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
lmtp_connection_cache_on_demand = yes
CF
  cat > "$MB_PF/etc/master.cf" <<CF
mbsmtp    unix  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
}

mb_postfix_main() { local l; for l in "$@"; do echo "$l" >> "$MB_PF/etc/main.cf"; done; }
mb_postfix_master() { local l; for l in "$@"; do echo "$l" >> "$MB_PF/etc/master.cf"; done; }
mb_postfix_smtpd() { local name=$1; shift; mb_postfix_master "$name unix n - n - - smtpd $*"; }
mb_postfix_socket() { echo "$MB_PF/queue/public/${1:-mbsmtp}"; }

mb_postfix_start() {
  # the sink speaks LMTP on a Unix socket; Postfix's lmtp client (user postfix) must be able to connect
  rm -f "$MB_PF/sink.sock"
  smtp-sink -L -u postfix -d "$MB_PF/sink/%Y%m%d%H%M%S." "unix:$MB_PF/sink.sock" 100 \
    > "$MB_PF/sink.log" 2>&1 &
  echo $! > "$MB_PF/sink.pid"
  for _ in $(seq 1 100); do [ -S "$MB_PF/sink.sock" ] && break; sleep 0.05; done
  [ -S "$MB_PF/sink.sock" ] || { echo "smtp-sink did not start:" >&2; cat "$MB_PF/sink.log" >&2; return 1; }
  chmod 666 "$MB_PF/sink.sock"
  # a main.cf younger than ~2 s makes Postfix wait for it to settle
  touch -d '1 minute ago' "$MB_PF/etc/main.cf" "$MB_PF/etc/master.cf"
  postfix -c "$MB_PF/etc" check >> "$MB_PF/start.log" 2>&1 || true
  postfix -c "$MB_PF/etc" start >> "$MB_PF/start.log" 2>&1 || { cat "$MB_PF/start.log" >&2; return 1; }
  # every smtpd listener's socket, once the master made it
  local names name ok
  names=$(awk '$2 == "unix" && $8 == "smtpd" {print $1}' "$MB_PF/etc/master.cf")
  for _ in $(seq 1 100); do
    ok=1
    for name in $names; do [ -S "$(mb_postfix_socket "$name")" ] || ok=; done
    [ -n "$ok" ] && return 0
    sleep 0.05
  done
  echo "postfix did not make its smtpd sockets ($names)" >&2
  mb_postfix_log >&2
  return 1
}

mb_postfix_reload() {
  touch -d '1 minute ago' "$MB_PF/etc/main.cf" "$MB_PF/etc/master.cf"
  postfix -c "$MB_PF/etc" reload >> "$MB_PF/start.log" 2>&1
}

mb_postfix_stop() {
  postfix -c "$MB_PF/etc" stop >/dev/null 2>&1 || true
  kill "$(cat "$MB_PF/sink.pid" 2>/dev/null)" 2>/dev/null || true
  # wait for every process of this instance to go; they are found by their
  # environment (MAIL_CONFIG), as a stopped master's children may linger
  local left
  for _ in $(seq 1 100); do
    left=$(mb_postfix_pids)
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  kill -9 $left 2>/dev/null || true
}

mb_postfix_pids() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "MAIL_CONFIG=$MB_PF/etc"; then echo "${p#/proc/}"; fi
  done
  return 0
}

# Number of deliveries to the sink logged so far (the lmtp client's lines;
# the content filter's pipe deliveries are not counted).
mb_postfix_sent_count() {
  grep -c "postfix/lmtp\[[0-9]*\]: .* relay=[^ ]*\[$MB_PF/sink.sock\], .*status=sent" \
    "$MB_PF/maillog" 2>/dev/null || true
}

mb_postfix_wait_sent() {
  local want=$1 secs=${2:-30}
  for _ in $(seq 1 $((secs * 20))); do
    [ "$(mb_postfix_sent_count)" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $want deliveries (have $(mb_postfix_sent_count))" >&2
  return 1
}

mb_postfix_log() { cat "$MB_PF/maillog" 2>/dev/null; cat "$MB_PF/start.log" 2>/dev/null; }
