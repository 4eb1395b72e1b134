#!/usr/bin/env bash
# The compose stack (docker/compose.yaml) end to end under rootful Podman, as docker/README.md
# tells a user to run it: makes the base images (once per machine: scripts/container-base.sh),
# builds the four images, brings the stack up under a project name of its own, waits for every
# service, sends an HTML message with swaks to Postfix's published submission port, finds it
# rewritten in the sink (pixel, signed links: --explain says valid), fetches its pixel (200
# image/gif) and its link (302 to the original URL) on the edge's published port, finds the sent
# record, the open and the click in PostgreSQL, and prints the timings and the images' sizes.
# Whatever happens, it takes down what it made (containers, volumes, network, its images; the
# base images stay for the next run) and, on failure, shows the services' logs first.
# Needs root. Not a ctest test: scripts/test.sh runs it last (MB_SKIP_CONTAINERS=1 skips it).
# MB_KEEP_IMAGES=1 keeps the images it built (tagged with the run's name), for a rerun by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
say() { echo "compose.sh: $*"; }
fail() {
  echo "compose.sh: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (rootful Podman)"
command -v swaks > /dev/null || fail "swaks is missing (bash scripts/install-deps.sh installs it)"
command -v curl > /dev/null || fail "curl is missing (bash scripts/install-deps.sh installs it)"
ms() { date +%s%3N; }
secs() { # secs START_MS: seconds since then, one decimal
  local d=$(($(ms) - $1))
  printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}
t_all=$(ms)

# ---- the base images (cached per machine), Podman, containers.conf
t=$(ms)
bash scripts/container-base.sh
t_base=$(secs "$t")

# ---- names of this run: project, image tag, ports
run=mbtest$$x$(date +%s)
export MB_TAG=$run
# both host ports are left to Podman (127.0.0.1::8080, 127.0.0.1::587) and read back; the links
# carry the default MB_BASE_URL (http://127.0.0.1:8080), and the test follows them on the edge's
# real port (the token signs the target URL, not the tracking host)
export MB_EDGE_PORT= MB_SUBMISSION_PORT=
unset MB_BASE_URL
MB_PG_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export MB_PG_PASSWORD
compose=(podman-compose -p "$run" -f "$root/docker/compose.yaml")
images=(app redis postgres postfix)
work=$(mktemp -d /tmp/mb-compose.XXXXXX)
cname() { echo "${run}_$1_1"; }

cleanup() {
  local rc=$? s
  set +e
  if [ "$rc" != 0 ]; then
    echo "---- what the stack's containers said (last lines each)" >&2
    podman ps -a --filter "label=io.podman.compose.project=$run" --format '{{.Names}}  {{.Status}}' >&2
    for s in redis postgres keys migrate edge batcher milter postfix sink; do
      podman container exists "$(cname $s)" || continue
      echo "---- $s" >&2
      podman logs --tail 25 "$(cname $s)" 2>&1 | sed 's/^/   /' >&2
    done
    for f in "$work"/up.log "$work"/swaks.log; do
      [ -s "$f" ] && { echo "---- $(basename "$f") (last lines)" >&2; tail -25 "$f" | sed 's/^/   /' >&2; }
    done
  fi
  local t
  t=$(ms)
  "${compose[@]}" down -v > "$work/down.log" 2>&1
  # what podman-compose 1.0.3 leaves behind (its network), or all of it if down failed
  podman ps -aq --filter "label=io.podman.compose.project=$run" | xargs -r podman rm -f > /dev/null 2>&1
  podman volume ls -q --filter "label=io.podman.compose.project=$run" | xargs -r podman volume rm -f > /dev/null 2>&1
  podman network exists "${run}_default" && podman network rm -f "${run}_default" > /dev/null 2>&1
  if [ "${MB_KEEP_IMAGES:-}" != 1 ]; then
    for s in "${images[@]}"; do podman rmi -f "localhost/mailbeacon/$s:$run" > /dev/null 2>&1; done
  fi
  [ "$rc" = 0 ] && say "down and removed in $(secs "$t") s"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# ---- the images. One build each, --format docker so that the HEALTHCHECKs are kept,
# --layers=false as nothing is cached between runs (the images are removed at the end)
build() { # build NAME CONTEXT [podman build options]
  local name=$1 ctx=$2 t
  shift 2
  t=$(ms)
  podman build --format docker --layers=false --pull=never -t "localhost/mailbeacon/$name:$run" "$@" "$ctx" \
    > "$work/build-$name.log" 2>&1 || {
    tail -60 "$work/build-$name.log" >&2
    fail "podman build of $name (log above)"
  }
  build_times+=("$name $(secs "$t") s")
}
build_times=()
t=$(ms)
build app . -f docker/Dockerfile --ignorefile docker/Dockerfile.dockerignore
grep -q '100% tests passed' "$work/build-app.log" || fail "the app image's build stage ran no unit tests"
build redis docker/redis
build postgres docker/postgres
build postfix docker/postfix
t_build=$(secs "$t")
sizes=()
for s in "${images[@]}"; do
  sizes+=("$s $(podman image inspect -f '{{.Size}}' "localhost/mailbeacon/$s:$run" | numfmt --to=si --round=nearest)B")
done
hc=$(podman image inspect -f '{{json .Config.Healthcheck.Test}}' "localhost/mailbeacon/app:$run")
[ "$hc" = '["CMD","mailbeacon-healthcheck"]' ] || fail "the app image has no HEALTHCHECK ($hc)"

# ---- up: until every service is ready (no fixed sleep: each wait has a deadline)
t=$(ms)
"${compose[@]}" up -d > "$work/up.log" 2>&1 || fail "podman-compose up"
wait_for() { # wait_for SECONDS WHAT COMMAND...: runs COMMAND until it succeeds
  local deadline=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" > /dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within the deadline"
    sleep 0.5
  done
}
exited_ok() { # the one-shot service exited 0
  [ "$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(cname "$1")")" = "exited 0" ]
}
healthy() { podman healthcheck run "$(cname "$1")"; } # the image's HEALTHCHECK, run now
for s in keys migrate; do wait_for 180 "$s exits 0" exited_ok $s; done
for s in redis postgres edge batcher milter postfix sink; do wait_for 180 "$s healthy" healthy $s; done
t_up=$(secs "$t")
say "stack $run up in $t_up s: $(podman ps --filter "label=io.podman.compose.project=$run" -q | wc -l) containers running"

# ---- the checks
t=$(ms)
ex() { podman exec "$(cname "$1")" "${@:2}"; }
smtp_port=$(podman port "$(cname postfix)" 587/tcp | sed -n 's/^127\.0\.0\.1://p' | head -1)
[ -n "$smtp_port" ] || fail "no published submission port (podman port: $(podman port "$(cname postfix)"))"
edge_port=$(podman port "$(cname edge)" 8080/tcp | sed -n 's/^127\.0\.0\.1://p' | head -1)
[ -n "$edge_port" ] || fail "no published edge port (podman port: $(podman port "$(cname edge)"))"
say "published (both chosen by Podman): submission 127.0.0.1:$smtp_port, edge 127.0.0.1:$edge_port"
# the key ring: made once, 0600, the non-root user's
perm=$(ex milter stat -c '%a %U' /var/lib/mailbeacon/keys/keyring)
[ "$perm" = "600 mailbeacon" ] || fail "key ring: mode and owner '$perm', not '600 mailbeacon'"
[ "$(ex redis redis-cli config get appendonly | tail -1)" = yes ] || fail "Redis without appendonly"

# as docker/README.md does
swaks --server "127.0.0.1:$smtp_port" --from rep@ourco.example --to alice@customer.example \
  --header "Subject: Our prices" --add-header "MIME-Version: 1.0" \
  --add-header "Content-Type: text/html; charset=utf-8" \
  --body '<html><body><p>Hello Alice, here are <a href="https://example.org/pricing">our prices</a>.</p></body></html>' \
  > "$work/swaks.log" 2>&1 || fail "swaks could not submit (log: $(tail -3 "$work/swaks.log"))"
one_message() { [ "$(ex sink sh -c 'ls /var/mail/sink/new | wc -l')" = 1 ]; }
wait_for 60 "the message in the sink" one_message
ex sink sh -c 'cat /var/mail/sink/new/*' > "$work/delivered.eml"
base="http://127.0.0.1:8080"
pixel=$(grep -o "$base/o/[A-Za-z0-9_-]*\.gif" "$work/delivered.eml" | head -1)
link=$(grep -o "$base/c/[A-Za-z0-9_-]*?u=[^\"]*" "$work/delivered.eml" | head -1)
[ -n "$pixel" ] || fail "no pixel on $base in the delivered message: $(cat "$work/delivered.eml")"
[ -n "$link" ] || fail "no tracked link on $base in the delivered message: $(cat "$work/delivered.eml")"
grep -q 'href="https://example.org/pricing"' "$work/delivered.eml" && fail "the original link is still there"
explain() { ex milter mailbeacon-rewrite --config /etc/mailbeacon/mailbeacon.conf --explain "$1"; }
for u in "$pixel" "$link"; do
  explain "$u" | grep -q '"valid":true' || fail "$u does not verify: $(explain "$u")"
done
message=$(explain "$pixel" | sed -n 's/.*"message":"\([0-9a-f-]*\)".*/\1/p')
say "delivered to the sink, rewritten: message $message, pixel and link signed (--explain: valid)"

got=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "${pixel/$base/http://127.0.0.1:$edge_port}")
[ "$got" = "200 image/gif" ] || fail "pixel: '$got', not '200 image/gif'"
got=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${link/$base/http://127.0.0.1:$edge_port}")
[ "$got" = "302 https://example.org/pricing" ] || fail "link: '$got', not '302 https://example.org/pricing'"
say "pixel: 200 image/gif; link: 302 to https://example.org/pricing"

psql() { ex postgres psql -U mailbeacon -d mailbeacon -v ON_ERROR_STOP=1 "$@"; }
loaded() {
  [ "$(psql -tAc "select count(*) from mailbeacon.messages where message = '$message'")" = 1 ] &&
    [ "$(psql -tAc "select string_agg(kind::text, ',' order by kind::text) from mailbeacon.events
                    where message = '$message'")" = "click,open" ]
}
wait_for 60 "the sent record, the open and the click in PostgreSQL" loaded
psql -c "select e.kind, e.class, e.reason, e.ip, e.url, m.rep, m.subject
           from mailbeacon.events e join mailbeacon.messages m using (message)
          where message = '$message' order by e.occurred_at" | sed 's/^/   /'
psql -c "select message, rep, subject, opens, clicks, human_opens, human_clicks, sender_opens, sender_clicks
           from mailbeacon.message_engagement where message = '$message'" | sed 's/^/   /'
[ "$(psql -tAc "select opens || ' ' || clicks from mailbeacon.message_engagement where message = '$message'")" = "1 1" ] ||
  fail "message_engagement does not count one open and one click"
t_test=$(secs "$t")

say "images: ${sizes[*]}"
say "timings: base image ${t_base} s; image builds ${t_build} s (${build_times[*]}); compose up ${t_up} s; test ${t_test} s; whole $(secs "$t_all") s (before down)"
say "passed"
