# Private, throw-away service instances for tests, the demo and the benchmarks.
# Source this file; every function keeps its state under $MB_RUN (a temp dir).
# Nothing here touches a system-wide service.
#
# No port is ever picked free and bound later (another process can take it in
# between): our own servers bind port 0 and say in their log which port they
# got (mb_wait_port); Redis and PostgreSQL listen on Unix sockets in $MB_RUN.
# Only the benchmarks, whose clients need TCP, ask for a TCP port as well
# ("tcp"): a random one that the server binds itself, retried when it is taken.

# mb_log_size FILE: its size in bytes (0 when missing), to give mb_wait_port
# as FROM when a log is appended to across restarts.
mb_log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# mb_wait_port PID LOGFILE WHAT [SECONDS [FROM]]: waits until LOGFILE (from
# byte FROM on, default 0) has the line in which process PID says which port
# it bound, and prints that port. WHAT is
#   listen  mailbeacon-server's public listener: "listening on ADDR (port N)"
#   admin   mailbeacon-server's admin listener:  "admin on ADDR (port N)"
#           (the start line of --role all and edge; --role batcher's and api's)
#   api     mailbeacon-server's rep API:         "rep API on ADDR (port N)"
#   milter  mailbeacon-rewrite --milter inet:0@HOST: "milter listening on inet:N@HOST"
# Only "(port N)" after those words is read, not the line's prefix. Fails
# (status 1, the log's tail on stderr) when PID exits first or after SECONDS
# (default 15).
mb_wait_port() {
  local pid=$1 log=$2 what=$3 secs=${4:-15} from=${5:-0} re port dead= i
  case $what in
    listen) re='s/.*listening on [^(,]*(port \([0-9][0-9]*\)).*/\1/p' ;;
    admin) re='s/.*admin on [^(,]*(port \([0-9][0-9]*\)).*/\1/p' ;;
    api) re='s/.*rep API on [^(,]*(port \([0-9][0-9]*\)).*/\1/p' ;;
    milter) re='s/.*milter listening on inet6\{0,1\}:\([0-9][0-9]*\)@.*/\1/p' ;;
    *) echo "mb_wait_port: WHAT is listen, admin, api or milter, not '$what'" >&2; return 2 ;;
  esac
  for ((i = 0; i <= secs * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || dead=1
    port=$(tail -c +"$((from + 1))" "$log" 2>/dev/null | sed -n "$re" | head -1)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    [ -n "$dead" ] && break
    sleep 0.05
  done
  if [ -n "$dead" ]; then
    echo "mb_wait_port: process $pid exited before it logged its $what port; $log ends:" >&2
  else
    echo "mb_wait_port: no $what port logged by process $pid in $secs s; $log ends:" >&2
  fi
  tail -c +"$((from + 1))" "$log" 2>/dev/null | tail -20 >&2
  return 1
}

# mb_listen_port PID [SECONDS]: the TCP port a process (or a child of it)
# listens on, from the kernel (ss), for programs that bind port 0 but do not
# say which port they got (bench/mb-bench-mhd-floor), or to see that a server
# bound the port it was given (nginx in bench/run-server.sh). The first
# one when there are several.
mb_listen_port() {
  local pid=$1 secs=${2:-15} pids port i
  for ((i = 0; i <= secs * 20; i++)); do
    pids=$(echo "$pid" $(pgrep -P "$pid" 2>/dev/null) | tr ' ' '|')
    port=$(ss -ltnpH 2>/dev/null | grep -E "pid=($pids)," | awk '{n = split($4, a, ":"); print a[n]; exit}')
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "mb_listen_port: process $pid listens on no TCP port" >&2
  return 1
}

# mb_random_port: a random TCP port below Linux's ephemeral range (32768+),
# for servers that cannot bind port 0 and say which they got; the caller
# starts the server on it and tries another when it is taken.
mb_random_port() { echo $((20000 + RANDOM % 12000)); }

# mb_redis_start [no] [tcp]: starts redis-server in $MB_RUN/redis, listening
# on the Unix socket $MB_RUN/redis/redis.sock only, with its append-only file
# fsynced on every write; "everysec" fsyncs it once a second (as Redis is
# deployed: the benchmarks of the edge); "no" runs it without persistence
# (benchmarks where the stream is not what is measured); "tcp" listens on 127.0.0.1 as well,
# on a port of its own (mb_redis_addr tcp), for the benchmarks' clients that
# speak only TCP. Started again after a crash, it finds its append-only file.
mb_redis_start() {
  local aof=(--appendonly yes --appendfsync always) tcp= a d=$MB_RUN/redis port=0 try pid
  for a in "$@"; do
    case $a in
      no) aof=(--appendonly no) ;;
      everysec) aof=(--appendonly yes --appendfsync everysec) ;;
      tcp) tcp=1 ;;
      *) echo "mb_redis_start: unknown argument '$a'" >&2; return 2 ;;
    esac
  done
  mkdir -p "$d"
  for try in 1 2 3 4 5 6 7 8 9 10; do
    if [ -n "$tcp" ]; then port=$(cat "$d/tcp_port" 2>/dev/null || mb_random_port); fi
    : > "$d/redis.log"
    redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$d/redis.sock" --unixsocketperm 700 \
      --dir "$d" --save '' "${aof[@]}" --daemonize no \
      --logfile "$d/redis.log" --pidfile "$d/redis.pid" &
    pid=$!
    echo "$pid" > "$d/pid"
    for _ in $(seq 1 200); do
      if redis-cli -s "$d/redis.sock" ping >/dev/null 2>&1; then
        [ -n "$tcp" ] && echo "$port" > "$d/tcp_port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && break
    # the TCP port was taken: another one (a restart keeps its port, so a taken one fails)
    if [ -n "$tcp" ] && [ ! -s "$d/tcp_port" ] && grep -q "in use" "$d/redis.log"; then continue; fi
    break
  done
  echo "redis did not start; log:" >&2
  cat "$d/redis.log" >&2
  return 1
}

# mb_redis_sock: the path of its Unix socket.
mb_redis_sock() { echo "$MB_RUN/redis/redis.sock"; }

# mb_redis_addr [tcp]: its address as mailbeacon's `redis` key takes it
# (unix:PATH), or with "tcp" 127.0.0.1:PORT (when started with tcp).
mb_redis_addr() {
  if [ "${1:-}" = tcp ]; then echo "127.0.0.1:$(cat "$MB_RUN/redis/tcp_port")"; else echo "unix:$MB_RUN/redis/redis.sock"; fi
}

# mb_redis_cli ARGS...: redis-cli on it.
mb_redis_cli() { redis-cli -s "$MB_RUN/redis/redis.sock" "$@"; }

# mb_redis_stop: stops it and waits until it has exited.
mb_redis_stop() {
  local pid
  pid=$(cat "$MB_RUN/redis/pid" 2>/dev/null) || return 0
  mb_redis_cli shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$MB_RUN/redis/pid"
}

# PostgreSQL 15 from Debian: the server binaries are not on PATH.
MB_PG_BIN=${MB_PG_BIN:-/usr/lib/postgresql/15/bin}
# The port only names the socket file (.s.PGSQL.5432) in our own directory.
MB_PG_PORT=5432

# Runs a command as the user PostgreSQL runs as: postgres refuses root.
mb_pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# mb_pg_start [tcp]: starts a private PostgreSQL in $MB_RUN/pg (created with
# initdb on first use, trust auth), database "mailbeacon", listening on its
# Unix socket in $MB_RUN/pg only (no TCP: listen_addresses is empty); "tcp"
# listens on 127.0.0.1 as well, on a port of its own (mb_pg_conninfo tcp),
# for the benchmarks. Its sessions' time zone is UTC, whatever the machine's
# (initdb would take the machine's): a test's expected times and day
# arithmetic must not depend on where it runs. Prints nothing; the conninfo
# is from mb_pg_conninfo.
mb_pg_start() {
  local d=$MB_RUN/pg tcp= port=$MB_PG_PORT listen= try
  [ "${1:-}" = tcp ] && tcp=1
  if [ ! -s "$d/data/PG_VERSION" ]; then
    mkdir -p "$d"
    chmod 711 "$MB_RUN" # postgres must reach its directory and socket in it
    [ "$(id -u)" = 0 ] && chown postgres "$d"
    mb_pg_as "$MB_PG_BIN/initdb" -D "$d/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1 ||
      { cat "$d/initdb.log" >&2; return 1; }
  fi
  for try in 1 2 3 4 5 6 7 8 9 10; do
    if [ -n "$tcp" ]; then port=$(cat "$d/tcp_port" 2>/dev/null || mb_random_port) listen=127.0.0.1; fi
    : > "$d/pg.log"
    [ "$(id -u)" = 0 ] && chown postgres "$d/pg.log"
    if mb_pg_as "$MB_PG_BIN/pg_ctl" -D "$d/data" -l "$d/pg.log" -w -t 60 \
      -o "-p $port -c listen_addresses='$listen' -c unix_socket_directories='$d' -c max_connections=50 -c timezone=UTC -c log_timezone=UTC" \
      start >"$d/pg_ctl.out" 2>&1; then
      [ -n "$tcp" ] && echo "$port" > "$d/tcp_port"
      break
    fi
    # the TCP port was taken: another one (a restart keeps its port)
    if [ -n "$tcp" ] && [ ! -s "$d/tcp_port" ] && grep -q "already in use" "$d/pg.log"; then continue; fi
    echo "postgres did not start; log:" >&2
    cat "$d/pg_ctl.out" "$d/pg.log" >&2
    return 1
  done
  psql -X -q -h "$d" -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mailbeacon'" | grep -q 1 ||
    psql -X -q -h "$d" -p "$port" -U postgres -d postgres -c "CREATE DATABASE mailbeacon" >/dev/null
}

# mb_pg_port: the port of the running instance (it names the socket file).
mb_pg_port() { cat "$MB_RUN/pg/tcp_port" 2>/dev/null || echo "$MB_PG_PORT"; }

# mb_pg_conninfo [tcp]: the libpq connection string of the private instance:
# its Unix socket (host=DIR), or with "tcp" 127.0.0.1 and its TCP port.
mb_pg_conninfo() {
  if [ "${1:-}" = tcp ]; then
    echo "host=127.0.0.1 port=$(cat "$MB_RUN/pg/tcp_port") user=postgres dbname=mailbeacon"
  else
    echo "host=$MB_RUN/pg port=$(mb_pg_port) user=postgres dbname=mailbeacon"
  fi
}

# mb_psql ARGS...: psql on the private database (its Unix socket), stopping
# at the first error, no psqlrc.
mb_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$MB_RUN/pg" -p "$(mb_pg_port)" -U postgres -d mailbeacon "$@"; }

# mb_pg_stop [MODE]: stops it (fast by default; "immediate" is a crash).
mb_pg_stop() {
  local d=$MB_RUN/pg
  [ -s "$d/data/postmaster.pid" ] || return 0
  mb_pg_as "$MB_PG_BIN/pg_ctl" -D "$d/data" -m "${1:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}
