#!/bin/bash
# The mailbeacon image's entrypoint (/usr/local/bin/mailbeacon-docker). Nothing in a compose
# stack waits for anything else (podman-compose ignores depends_on's conditions), so:
#   mailbeacon-docker keys      makes the key ring (key_file) when it is missing, and only then
#   mailbeacon-docker migrate   runs `mailbeacon-server migrate`, again while PostgreSQL does not
#                               answer (exit 69), for MB_WAIT_SECONDS (300) at most
#   mailbeacon-docker PROGRAM ARGS...
#                               waits (MB_WAIT_SECONDS) for the key ring when PROGRAM needs one
#                               (the rewriter, the server's edge, api and all roles), then
#                               becomes PROGRAM
# The configuration is MB_CONFIG (/etc/mailbeacon/mailbeacon.conf) and MAILBEACON_* variables.
set -euo pipefail
conf=${MB_CONFIG:-/etc/mailbeacon/mailbeacon.conf}
wait_max=${MB_WAIT_SECONDS:-300}
say() { echo "mailbeacon-docker: $*" >&2; }
key_file() {
  mailbeacon-rewrite --config "$conf" --print-config | sed -n 's/^key_file = //p'
}

case ${1:-} in
  keys)
    k=$(key_file)
    if [ -e "$k" ]; then
      say "key ring $k is there"
    else
      mailbeacon-rewrite --keygen "$k"
    fi
    exit 0
    ;;
  migrate)
    deadline=$((SECONDS + wait_max))
    tries=0
    while :; do
      rc=0
      out=$(mailbeacon-server --config "$conf" migrate 2>&1) || rc=$?
      [ "$rc" = 0 ] && break
      if [ "$rc" != 69 ] || ((SECONDS >= deadline)); then
        printf '%s\n' "$out" >&2
        say "migrate failed (exit $rc)"
        exit "$rc"
      fi
      # one line per 10 tries: PostgreSQL may take a while on its first start
      (((tries++) % 10 == 0)) && say "waiting for PostgreSQL: ${out##*: }"
      sleep 1
    done
    printf '%s\n' "$out"
    exit 0
    ;;
  "")
    say "usage: mailbeacon-docker keys | migrate | PROGRAM [ARGS...]"
    exit 64
    ;;
esac

needs_keys=0
case ${1##*/} in
  mailbeacon-rewrite)
    case " $* " in *" --keygen "* | *" --print-config "* | *" --version "*) ;; *) needs_keys=1 ;; esac
    ;;
  mailbeacon-server)
    role=all
    args=("$@")
    for ((i = 1; i < ${#args[@]}; i++)); do
      case ${args[i]} in
        --role) role=${args[i + 1]:-} ;;
        --role=*) role=${args[i]#--role=} ;;
        migrate | maintain | reclassify | check | consent | forget | export | rep-token | admin-token) role="command" ;;
      esac
    done
    case $role in all | edge | api) needs_keys=1 ;; esac
    ;;
esac
if [ "$needs_keys" = 1 ]; then
  k=$(key_file)
  deadline=$((SECONDS + wait_max))
  if [ ! -e "$k" ]; then
    say "waiting for the key ring $k (made by: mailbeacon-docker keys)"
    while [ ! -e "$k" ]; do
      if ((SECONDS >= deadline)); then
        say "no key ring $k after ${wait_max}s"
        exit 78
      fi
      sleep 0.5
    done
  fi
fi
exec "$@"
