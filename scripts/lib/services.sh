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

# mb_redis_start PORT: starts redis-server (append-only file on) in $MB_RUN/redis.
mb_redis_start() {
  local port=$1
  mkdir -p "$MB_RUN/redis"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$MB_RUN/redis" --save '' \
    --appendonly yes --appendfsync always --daemonize no \
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
