#!/usr/bin/env bash
# mailbeacon-server against the classic pixel server (nginx empty_gif with a
# buffered access_log), side by side in one run on this machine: wrk with
# bench/rotate.lua (every request a different valid open token, TOKENS of
# them), same wrk settings for both (-t1 -c64 and -t2 -c256), DURATION
# seconds a run, REPS interleaved repetitions. Prints req/s and p99 latency,
# the ratios mailbeacon/nginx, and checks after every mailbeacon run that the
# Redis stream holds exactly the events of the hits the server answered (sum
# of n over the run's type=hits entries == the server's
# mailbeacon_events_total{to="redis"} increase == wrk's completed requests;
# requests wrk sent but had no answer to when it stopped are reported apart).
# A third column, the floor, is libmicrohttpd started as the server starts it
# and answering the same persistent pixel, doing nothing else
# (build/bench/mb-bench-mhd-floor): how far any libmicrohttpd edge can go here.
# A fourth, the recording floor ("recfloor"), is the same program with
# --record: it also makes a line per request of the stream's shape and about
# the server's length (116 bytes for these requests, as the server's; see
# bench/mb-bench-mhd-floor.c) and stores the lines in the same Redis, over TCP,
# in a stream of its own (mailbeacon:floor-events) as the server's writer
# does (entries of up to 256 lines, pipelined, the same 2 ms pause), with no
# token check, queue library, spool or metrics: how far a plain libmicrohttpd
# edge that records the same bytes into the same persisting Redis goes on
# these cores (a recorder, not a proven lower bound: a better one may exist). After every recfloor run its stream is checked as the
# server's (sum of n over its entries == wrk's completed requests, or up to
# the requests sent), once it holds at least the completed requests and
# stops growing (the floor has no metrics to say it is drained). Before each
# mailbeacon or recfloor run both streams are deleted, so either kind of
# run starts with Redis holding no events and holds only its own (nothing
# is trimmed during a run, for neither). Columns: req/s of each, mb/nginx,
# p99s, floor/nginx, mb/floor, recfloor/floor (what recording costs such an
# edge), mb/recfloor (the server against that recorder: what its own work
# costs beyond recording) and the recording floor's p99 against nginx's; the
# checks' table gives each recording run's bytes per event in its stream
# (the d fields' bytes over the events): the recording floor's must be the
# server's within a byte (unless RECFLOOR_LINE_BYTES is set), or the run fails.
# usage: bash bench/run-server.sh [build/mailbeacon-server [build/mailbeacon-rewrite [build/bench/mb-bench-mhd-floor]]]   (as root)
# env: REPS (3) DURATION (10) TOKENS (1000) NGINX_WORKERS (auto) MAILBEACON_HTTP_THREADS (0 = cores)
#      REDIS_PERSIST (everysec: append-only file fsynced once a second, as deployed; no: none)
#      RECFLOOR_LINE_BYTES: the recording floor's lines cut or padded to this many bytes (--line-bytes; unset: as made)
#      KEEP=1 keeps the temp dir (logs, tokens, raw results)
#      PERF=1 (PERF_T, PERF_C, PERF_LINES): a profile of the whole machine during one mailbeacon run instead
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-build/mailbeacon-server}
rewrite=${2:-build/mailbeacon-rewrite}
floor=${3:-build/bench/mb-bench-mhd-floor}
reps=${REPS:-3} duration=${DURATION:-10} ntok=${TOKENS:-1000}
workers=${NGINX_WORKERS:-auto} threads=${MAILBEACON_HTTP_THREADS:-0}
stream=mailbeacon:events fstream=mailbeacon:floor-events
for b in "$server" "$rewrite" "$floor"; do
  [ -x "$b" ] || { echo "no $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }

# show CMD...: prints the exact command; run CMD...: prints it, then runs it
# (background processes are started without run, so that $! is their own pid)
show() { printf '+' >&2; printf ' %q' "$@" >&2; printf '\n' >&2; }
run() { show "$@"; "$@"; }

missing=
command -v nginx >/dev/null || missing="$missing nginx"
command -v wrk >/dev/null || missing="$missing wrk"
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v curl >/dev/null || missing="$missing curl"
if [ -n "$missing" ]; then
  run apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq $missing >/dev/null
fi
export PATH=$PATH:/usr/sbin

. scripts/lib/services.sh
MB_RUN=$(mktemp -d /tmp/mb-bench-server.XXXXXX)
spid='' npid='' fpid='' rpid='' redis=''
cleanup() {
  set +e
  if [ -n "$spid" ]; then
    kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    st=$?; [ "$st" = 0 ] || echo "mailbeacon-server exited $st on SIGTERM; log: $MB_RUN/server.log" >&2
  fi
  if [ -n "$fpid" ]; then kill -TERM "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null; fi
  if [ -n "$rpid" ]; then # it stores what it holds, then says how many lines went to Redis
    kill -TERM "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
    st=$?; [ "$st" = 0 ] || { echo "the recording floor exited $st on SIGTERM:" >&2; tail -3 "$MB_RUN/recfloor.log" >&2; }
  fi
  if [ -n "$npid" ]; then
    kill -QUIT "$npid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$npid" 2>/dev/null || break; sleep 0.05; done
    kill -TERM "$npid" 2>/dev/null
    wait "$npid" 2>/dev/null
  fi
  [ -n "$redis" ] && mb_redis_stop
  if [ -n "${KEEP:-}" ]; then echo "kept $MB_RUN" >&2; else rm -rf "$MB_RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis, persisting as REDIS_PERSIST says, on TCP as well (scripts/lib/services.sh): the server reaches it over TCP
redis=1
persist=${REDIS_PERSIST:-everysec}
case $persist in no|everysec) ;; *) echo "REDIS_PERSIST: no or everysec" >&2; exit 2 ;; esac
run mb_redis_start "$persist" tcp

# keys and TOKENS valid open tokens (signed by the test suite's independent implementation)
run "$rewrite" --keygen "$MB_RUN/keys" >/dev/null
echo "+ python3 (tests/integration/server_check.py token()) $MB_RUN/keys $ntok > $MB_RUN/tokens" >&2
python3 - "$MB_RUN/keys" "$ntok" > "$MB_RUN/tokens" <<'PY'
import runpy, sys
keyfile, n = sys.argv[1], int(sys.argv[2])
sys.argv = ["server_check.py", "-"]  # the module dispatches on argv[1] when loaded
token = runpy.run_path("tests/integration/server_check.py")["token"]
for i in range(n):  # n/10 messages with 10 recipients each
    print(token(keyfile, "o", "%032x" % (0x6d620000 << 96 | i // 10), i % 10, 0))
PY

# mailbeacon-server, its listeners on any free port (port 0): its start line says which
export MAILBEACON_KEY_FILE=$MB_RUN/keys MAILBEACON_REDIS=$(mb_redis_addr tcp) MAILBEACON_REDIS_STREAM=$stream \
  MAILBEACON_SPOOL_DIR=$MB_RUN/spool MAILBEACON_LISTEN=127.0.0.1:0 MAILBEACON_ADMIN_LISTEN=127.0.0.1:0 \
  MAILBEACON_HTTP_THREADS=$threads MAILBEACON_EDGE_ID=bench
mkdir -p "$MB_RUN/spool"
env | grep '^MAILBEACON_' | sed 's/^/+ export /' >&2
show "$server"
"$server" 2> "$MB_RUN/server.log" &
spid=$!
sport=$(mb_wait_port "$spid" "$MB_RUN/server.log" listen) && aport=$(mb_wait_port "$spid" "$MB_RUN/server.log" admin) ||
  exit 1
curl -fs "http://127.0.0.1:$aport/healthz" >/dev/null || { cat "$MB_RUN/server.log" >&2; exit 1; }

# nginx, which cannot bind port 0: on a random port, another one when that is taken
mkdir -p "$MB_RUN/nginx"
for try in 1 2 3 4 5 6 7 8 9 10; do
  nport=$(mb_random_port)
  sed -e "s|@PREFIX@|$MB_RUN/nginx|g" -e "s|@PORT@|$nport|g" -e "s|@WORKERS@|$workers|g" \
    bench/nginx-pixel.conf.in > "$MB_RUN/nginx/nginx.conf"
  show nginx -p "$MB_RUN/nginx" -c "$MB_RUN/nginx/nginx.conf"
  nginx -p "$MB_RUN/nginx" -c "$MB_RUN/nginx/nginx.conf" 2> "$MB_RUN/nginx/stderr" &
  npid=$!
  # listening when the kernel says nginx has the port (not whoever else might answer there)
  [ "$(mb_listen_port "$npid" 2>/dev/null)" = "$nport" ] && break
  kill "$npid" 2>/dev/null
  wait "$npid" 2>/dev/null || true
  npid=''
  grep -q "in use" "$MB_RUN/nginx/stderr" "$MB_RUN/nginx/error.log" 2>/dev/null || break
done
[ -n "$npid" ] || { echo "nginx did not start" >&2; cat "$MB_RUN/nginx/stderr" "$MB_RUN/nginx/error.log" >&2; exit 1; }
sleep 0.3
nworkers=$(pgrep -P "$npid" | wc -l)
[ "$nworkers" -gt 0 ] || { echo "nginx has no worker process" >&2; cat "$MB_RUN/nginx/stderr" "$MB_RUN/nginx/error.log" >&2; exit 1; }

# the floor: libmicrohttpd as the server runs it, answering the pixel, nothing else;
# on any free port (port 0), which the kernel tells (ss)
show "$floor" "127.0.0.1:0" "$threads"
"$floor" "127.0.0.1:0" "$threads" 2> "$MB_RUN/floor.log" &
fpid=$!
fport=$(mb_listen_port "$fpid") || { cat "$MB_RUN/floor.log" >&2; exit 1; }

# the recording floor: the same, and a line per request into its own stream of the same Redis,
# over TCP as the server; edge id $MAILBEACON_EDGE_ID, as the server's
recopts=(--record "$(mb_redis_addr tcp)" "$fstream")
[ -z "${RECFLOOR_LINE_BYTES:-}" ] || recopts+=(--line-bytes "$RECFLOOR_LINE_BYTES")
show "$floor" "127.0.0.1:0" "$threads" "${recopts[@]}"
"$floor" "127.0.0.1:0" "$threads" "${recopts[@]}" 2> "$MB_RUN/recfloor.log" &
rpid=$!
rport=$(mb_listen_port "$rpid") || { cat "$MB_RUN/recfloor.log" >&2; exit 1; }

# all four answer a token with the 43-byte GIF
tok=$(head -1 "$MB_RUN/tokens")
for port in "$sport" "$nport" "$fport" "$rport"; do
  got=$(curl -s -o "$MB_RUN/gif" -w '%{http_code} %{content_type} %{size_download}' "http://127.0.0.1:$port/o/$tok.gif")
  [ "$got" = "200 image/gif 43" ] || { echo "port $port answered '$got' to a valid open token" >&2; exit 1; }
done

healthz() { curl -fs "http://127.0.0.1:$aport/healthz"; }
metric() { # metric NAME_WITH_LABELS: prints its value
  curl -fs "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'
}
drained() { # waits until the server's queue and spool are empty (at most 120 s)
  local h
  for _ in $(seq 1 1200); do
    h=$(healthz) || h=
    if [[ $h == *'"queue_events":0,'* && $h == *'"spool_bytes":0,'* ]]; then return 0; fi
    sleep 0.1
  done
  echo "the server did not drain in 120 s: $h" >&2
  return 1
}
# stream_count KEY: sum of n over the stream's type=hits entries, read in chunks inside Redis; prints
# "events entries others bytes" (bytes: of their d fields, the event lines)
stream_count() {
  mb_redis_cli --raw EVAL "
    local total, entries, others, bytes, start = 0, 0, 0, 0, '-'
    while true do
      local r = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 5000)
      for _, e in ipairs(r) do
        local f, typ, n, d = e[2], nil, 0, 0
        for j = 1, #f, 2 do
          if f[j] == 'type' then typ = f[j + 1] elseif f[j] == 'n' then n = tonumber(f[j + 1])
          elseif f[j] == 'd' then d = #f[j + 1] end
        end
        if typ == 'hits' then total, entries, bytes = total + n, entries + 1, bytes + d else others = others + 1 end
      end
      if #r < 5000 then break end
      start = '(' .. r[#r][1]
    end
    return {total, entries, others, bytes}" 1 "$1" | paste -sd' '
}
# recorded WANT: waits until the recording floor has stopped writing (its stream's length, in
# entries, the same 0.2 s apart) and its stream holds at least WANT events (counted only then),
# at most 120 s; prints stream_count's line, or fails saying why
recorded() {
  local want=$1 cnt state prev=
  for _ in $(seq 1 600); do
    state=$(mb_redis_cli XLEN "$fstream") || { echo "Redis did not answer about $fstream" >&2; return 1; }
    if [ "$state" = "$prev" ]; then
      cnt=$(stream_count "$fstream") || { echo "cannot count $fstream" >&2; return 1; }
      [[ ${cnt%% *} =~ ^[0-9]+$ ]] || { echo "cannot count $fstream: '$cnt'" >&2; return 1; }
      if [ "${cnt%% *}" -ge "$want" ]; then echo "$cnt"; return 0; fi
    fi
    prev=$state
    sleep 0.2
  done
  echo "the recording floor's stream did not reach $want events in 120 s: ${cnt:-$state}" >&2
  return 1
}

# one_run NAME PORT THREADS CONNS REP: one wrk run; appends a line to $MB_RUN/results
one_run() {
  local name=$1 port=$2 t=$3 c=$4 rep=$5 out m0 m1 lost0 lost1 cnt ev en ot by
  out=$MB_RUN/wrk.$name.t$t.c$c.$rep
  rm -f "$out.res"
  if [ "$name" = mailbeacon ] || [ "$name" = recfloor ]; then
    mb_redis_cli DEL "$stream" "$fstream" >/dev/null # each recording run starts with no events in Redis
  fi
  if [ "$name" = mailbeacon ]; then
    m0=$(metric 'mailbeacon_events_total{to="redis"}') lost0=$(metric 'mailbeacon_events_total{to="lost"}')
  fi
  local cmd=(timeout $((duration + 30)) wrk -t"$t" -c"$c" -d"${duration}s" --latency
    -s bench/rotate.lua "http://127.0.0.1:$port" -- "$MB_RUN/tokens")
  { printf '+ ROTATE_RESULT=%q' "$out.res"; printf ' %q' "${cmd[@]}"; printf '\n'; } >&2
  ROTATE_RESULT=$out.res "${cmd[@]}" > "$out" 2>&1 ||
    { echo "wrk failed:" >&2; cat "$out" >&2; exit 1; }
  # requests= sent= p99_us= rps= errors= non2xx= timeouts=
  local res
  res=$(cat "$out.res")
  local line="$name t$t c$c rep$rep $res"
  if [ "$name" = mailbeacon ]; then
    drained
    m1=$(metric 'mailbeacon_events_total{to="redis"}') lost1=$(metric 'mailbeacon_events_total{to="lost"}')
    cnt=$(stream_count "$stream") || { echo "cannot count $stream" >&2; exit 1; }
    [[ ${cnt%% *} =~ ^[0-9]+$ ]] || { echo "cannot count $stream: '$cnt'" >&2; exit 1; }
    read -r ev en ot by <<< "$cnt"
    line="$line metric=$((m1 - m0)) stream=$ev entries=$en others=$ot bytes=$by lost=$((lost1 - lost0))"
  elif [ "$name" = recfloor ]; then
    cnt=$(recorded "$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<< "$res")") || exit 1
    read -r ev en ot by <<< "$cnt"
    line="$line stream=$ev entries=$en others=$ot bytes=$by"
  fi
  echo "$line" | tee -a "$MB_RUN/results" >&2
}

cores=$(nproc)
echo "machine: $cores cores; nginx $(nginx -v 2>&1 | sed 's/.*\///') with $nworkers worker(s) (worker_processes $workers);" \
  "mailbeacon-server MAILBEACON_HTTP_THREADS=$threads; wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'); redis $(redis-server --version | awk '{print $3}') appendonly=$persist" >&2
echo "warm-up (2 s each, not counted)" >&2
for p in "$nport" "$sport" "$fport" "$rport"; do
  show timeout 30 wrk -t2 -c256 -d2s -s bench/rotate.lua "http://127.0.0.1:$p" -- "$MB_RUN/tokens"
  timeout 30 wrk -t2 -c256 -d2s -s bench/rotate.lua "http://127.0.0.1:$p" -- "$MB_RUN/tokens" > /dev/null 2>&1
done
drained

# PERF=1: instead of the comparison, where the time goes on the whole machine during one
# mailbeacon run (wrk -t$PERF_T -c$PERF_C): CPU by command and thread, then the server's symbols
if [ -n "${PERF:-}" ]; then
  perf record -a -g -F 2000 -o "$MB_RUN/perf.data" -- sleep "$duration" >/dev/null 2>&1 &
  ppid=$!
  timeout $((duration + 30)) wrk -t"${PERF_T:-1}" -c"${PERF_C:-64}" -d"${duration}s" --latency -s bench/rotate.lua \
    "http://127.0.0.1:$sport" -- "$MB_RUN/tokens" | grep -E 'Requests/sec|99%|50%' || true
  wait "$ppid" || true
  perf report -i "$MB_RUN/perf.data" --no-children -g none --sort comm,pid --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -15
  perf report -i "$MB_RUN/perf.data" --no-children -g none --comm "$(basename "$server" | cut -c1-15)" --sort dso,sym --stdio \
    2>/dev/null | grep -E '^ +[0-9]' | head -"${PERF_LINES:-30}"
  exit 0
fi

for rep in $(seq 1 "$reps"); do
  for tc in "1 64" "2 256"; do
    # shellcheck disable=SC2086
    set -- $tc
    if [ $((rep % 2)) = 1 ]; then order="nginx mailbeacon floor recfloor"; else order="recfloor floor mailbeacon nginx"; fi
    for name in $order; do
      case $name in
        nginx) one_run nginx "$nport" "$1" "$2" "$rep" ;;
        floor) one_run floor "$fport" "$1" "$2" "$rep" ;;
        recfloor) one_run recfloor "$rport" "$1" "$2" "$rep" ;;
        *) one_run mailbeacon "$sport" "$1" "$2" "$rep" ;;
      esac
    done
  done
done

python3 - "$MB_RUN/results" "$duration" "$reps" "$nworkers" "$cores" "${RECFLOOR_LINE_BYTES:-}" <<'PY'
import statistics, sys
path, duration, reps, nworkers, cores, line_bytes = sys.argv[1:]
rows = []
for line in open(path):
    f = line.split()
    d = {"name": f[0], "conf": f[1] + " " + f[2], "rep": f[3]}
    for kv in f[4:]:
        k, v = kv.split("=")
        d[k] = float(v)
    rows.append(d)
med = statistics.median
print(f"\n## mailbeacon-server vs nginx empty_gif ({cores} cores, wrk on the same box, "
      f"medians of {reps} interleaved {duration} s runs)\n")
print("| wrk | nginx req/s | mailbeacon req/s | req/s ratio (mb/nginx) | nginx p99 | mailbeacon p99 | p99 ratio (mb/nginx) "
      "| floor req/s | floor/nginx | mb/floor | recfloor req/s | recfloor/floor | mb/recfloor | recfloor p99 "
      "| p99 ratio (recfloor/nginx) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
ok = True
for conf in ("t1 c64", "t2 c256"):
    n = {r["rep"]: r for r in rows if r["conf"] == conf and r["name"] == "nginx"}
    m = {r["rep"]: r for r in rows if r["conf"] == conf and r["name"] == "mailbeacon"}
    fl = {r["rep"]: r for r in rows if r["conf"] == conf and r["name"] == "floor"}
    rf = {r["rep"]: r for r in rows if r["conf"] == conf and r["name"] == "recfloor"}
    reps_ = sorted(set(n) & set(m) & set(fl) & set(rf))
    rr = med([m[k]["rps"] / n[k]["rps"] for k in reps_])
    pr = med([m[k]["p99_us"] / max(n[k]["p99_us"], 1) for k in reps_])
    label = "-" + conf.replace(" ", " -")
    print(f"| {label} | {med([n[k]['rps'] for k in reps_]):,.0f} | {med([m[k]['rps'] for k in reps_]):,.0f} | "
          f"{rr:.2f} | {med([n[k]['p99_us'] for k in reps_]) / 1000:.2f} ms | "
          f"{med([m[k]['p99_us'] for k in reps_]) / 1000:.2f} ms | {pr:.2f} | "
          f"{med([fl[k]['rps'] for k in reps_]):,.0f} | {med([fl[k]['rps'] / n[k]['rps'] for k in reps_]):.2f} | "
          f"{med([m[k]['rps'] / fl[k]['rps'] for k in reps_]):.2f} | {med([rf[k]['rps'] for k in reps_]):,.0f} | "
          f"{med([rf[k]['rps'] / fl[k]['rps'] for k in reps_]):.2f} | {med([m[k]['rps'] / rf[k]['rps'] for k in reps_]):.2f} | "
          f"{med([rf[k]['p99_us'] for k in reps_]) / 1000:.2f} ms | "
          f"{med([rf[k]['p99_us'] / max(n[k]['p99_us'], 1) for k in reps_]):.2f} |")
print(f"\nnginx: {int(nworkers)} worker process(es), access_log buffer=64k flush=1s; floor: libmicrohttpd as the "
      "server runs it answering the same pixel with nothing else (bench/mb-bench-mhd-floor.c); recfloor: the same, "
      "and a line per request of the server's shape and length stored in the same Redis as the server's writer "
      "stores its events (mb-bench-mhd-floor --record); ratios are medians of the per-repetition ratios.\n")
print("| run | wrk completed | wrk sent | errors (non-2xx, timeouts) | metric to=redis | stream events (entries) "
      "| bytes/event | lost | check |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
per = lambda r: f"{r['bytes'] / r['stream']:.1f}" if r["stream"] else "-"
for r in rows:
    if r["name"] == "recfloor":  # as mailbeacon's, without the metric: the floor has none
        if r["stream"] == r["requests"] and not r["errors"] and not r["non2xx"]:
            check = "exact: stream = wrk completed"
        elif r["requests"] <= r["stream"] == r["sent"] and not r["non2xx"]:
            check = f"exact: stream = wrk sent = completed + {r['stream'] - r['requests']:.0f} in flight when wrk stopped"
        elif r["requests"] <= r["stream"] <= r["sent"] and not r["non2xx"]:
            check = (f"stream = completed + {r['stream'] - r['requests']:.0f}, "
                     f"{r['sent'] - r['stream']:.0f} sent requests not recorded (in flight at stop)")
        else:
            check = "MISMATCH"
            ok = False
        if r["others"]:
            check += f"; {r['others']:.0f} non-hits entries"
            ok = False
        # as many bytes an event as the server's lines in the same configuration and repetition
        mb = [m for m in rows if m["name"] == "mailbeacon" and m["conf"] == r["conf"] and m["rep"] == r["rep"]]
        if not line_bytes and mb and mb[0]["stream"] and r["stream"] and \
                abs(mb[0]["bytes"] / mb[0]["stream"] - r["bytes"] / r["stream"]) > 1:
            check += "; bytes/event differ from mailbeacon's"
            ok = False
        print(f"| recfloor {r['conf']} {r['rep']} | {r['requests']:.0f} | {r['sent']:.0f} | "
              f"{r['errors']:.0f} ({r['non2xx']:.0f}, {r['timeouts']:.0f}) | | "
              f"{r['stream']:.0f} ({r['entries']:.0f}) | {per(r)} | | {check} |")
        continue
    if r["name"] != "mailbeacon":
        if r["errors"] or r["non2xx"]:
            print(f"| {r['name']} {r['conf']} {r['rep']} | {r['requests']:.0f} | {r['sent']:.0f} | {r['errors']:.0f} ({r['non2xx']:.0f}, {r['timeouts']:.0f}) | | | | | errors |")
            ok = False
        continue
    exact = r["stream"] == r["metric"] == r["requests"]
    if exact and not r["errors"] and not r["non2xx"]:
        check = "exact: stream = metric = wrk completed"
    elif r["requests"] <= r["stream"] == r["metric"] == r["sent"] and not r["non2xx"]:
        check = (f"exact: stream = metric = wrk sent = completed + {r['stream'] - r['requests']:.0f} "
                 "in flight when wrk stopped")
    elif r["requests"] <= r["stream"] == r["metric"] <= r["sent"] and not r["non2xx"]:
        check = (f"stream = metric = completed + {r['stream'] - r['requests']:.0f}, "
                 f"{r['sent'] - r['stream']:.0f} sent requests not recorded (in flight at stop)")
    else:
        check = "MISMATCH"
        ok = False
    if r["others"] or r["lost"]:
        check += f"; {r['others']:.0f} non-hits entries, {r['lost']:.0f} lost"
        ok = False
    print(f"| mailbeacon {r['conf']} {r['rep']} | {r['requests']:.0f} | {r['sent']:.0f} | "
          f"{r['errors']:.0f} ({r['non2xx']:.0f}, {r['timeouts']:.0f}) | {r['metric']:.0f} | "
          f"{r['stream']:.0f} ({r['entries']:.0f}) | {per(r)} | {r['lost']:.0f} | {check} |")
sys.exit(0 if ok else 1)
PY
