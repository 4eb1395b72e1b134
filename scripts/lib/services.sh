# Private, throw-away service instances on loopback for tests and the demo.
# Source this file; every function keeps its state under $MB_RUN (a temp dir).
# Nothing here touches a system-wide service.

# Prints a TCP port that is free on 127.0.0.1 now.
mb_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# mb_redis_start PORT [no]: starts redis-server in $MB_RUN/redis, with its
# append-only file fsynced on every write; "no" runs it without persistence
# (benchmarks, where the stream is not what is measured).
mb_redis_start() {
  local port=$1 aof=(--appendonly yes --appendfsync always)
  [ "${2:-}" = no ] && aof=(--appendonly no)
  mkdir -p "$MB_RUN/redis"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$MB_RUN/redis" --save '' \
    "${aof[@]}" --daemonize no \
    --logfile "$MB_RUN/redis/redis.log" --pidfile "$MB_RUN/redis/redis.pid" &
  echo $! > "$MB_RUN/redis/pid"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis did not start; log:" >&2
  cat "$MB_RUN/redis/redis.log" >&2
  return 1
}

# mb_redis_stop PORT: stops it and waits until the port no longer answers.
mb_redis_stop() {
  local port=$1 pid
  pid=$(cat "$MB_RUN/redis/pid" 2>/dev/null) || return 0
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$MB_RUN/redis/pid"
}

# PostgreSQL 15 from Debian: the server binaries are not on PATH.
MB_PG_BIN=${MB_PG_BIN:-/usr/lib/postgresql/15/bin}

# Runs a command as the user PostgreSQL runs as: postgres refuses root.
mb_pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# mb_pg_start PORT: starts a private PostgreSQL in $MB_RUN/pg (created with
# initdb on first use, trust auth on loopback only, socket in $MB_RUN/pg),
# database "mailbeacon". Prints nothing; the conninfo is from mb_pg_conninfo.
mb_pg_start() {
  local port=$1 d=$MB_RUN/pg
  if [ ! -s "$d/data/PG_VERSION" ]; then
    mkdir -p "$d"
    chmod 711 "$MB_RUN"
    [ "$(id -u)" = 0 ] && chown postgres "$d"
    mb_pg_as "$MB_PG_BIN/initdb" -D "$d/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1 ||
      { cat "$d/initdb.log" >&2; return 1; }
  fi
  mb_pg_as "$MB_PG_BIN/pg_ctl" -D "$d/data" -l "$d/pg.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$d -c max_connections=50" \
    start >/dev/null || { echo "postgres did not start; log:" >&2; cat "$d/pg.log" >&2; return 1; }
  echo "$port" > "$d/port"
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mailbeacon'" | grep -q 1 ||
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE mailbeacon" >/dev/null
}

# mb_pg_conninfo PORT: the libpq connection string of the private instance.
mb_pg_conninfo() { echo "host=127.0.0.1 port=$1 user=postgres dbname=mailbeacon"; }

# mb_psql PORT ARGS...: psql on the private database, unaligned, no psqlrc.
mb_psql() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d mailbeacon "$@"; }

# mb_pg_stop [MODE]: stops it (fast by default; "immediate" is a crash).
mb_pg_stop() {
  local d=$MB_RUN/pg
  [ -s "$d/data/postmaster.pid" ] || return 0
  mb_pg_as "$MB_PG_BIN/pg_ctl" -D "$d/data" -m "${1:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}
