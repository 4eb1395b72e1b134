#!/bin/bash
# The mailbeacon image's HEALTHCHECK (/usr/local/bin/mailbeacon-healthcheck), for whichever
# program the container runs (its process 1), with no tool but bash and the programs:
#   mailbeacon-server [--role R]     GET /healthz on its own admin listener (admin_listen,
#                                    batcher_admin_listen or api_admin_listen, as the program
#                                    reads them: the file given with --config and MAILBEACON_*)
#                                    must answer 200;
#   mailbeacon-rewrite --milter S    its socket takes a connection (inet:PORT@HOST, or unix:PATH).
# Exit 0 healthy, 1 not.
set -euo pipefail
say() {
  echo "mailbeacon-healthcheck: $*"
  exit 1
}
argv=()
while IFS= read -r -d '' a; do argv+=("$a"); done < /proc/1/cmdline
conf='' role=all milter=''
for ((i = 1; i < ${#argv[@]}; i++)); do
  case ${argv[i]} in
    --config) conf=${argv[i + 1]:-} ;;
    --config=*) conf=${argv[i]#--config=} ;;
    --role) role=${argv[i + 1]:-} ;;
    --role=*) role=${argv[i]#--role=} ;;
    --milter) milter=${argv[i + 1]:-} ;;
    --milter=*) milter=${argv[i]#--milter=} ;;
  esac
done

tcp_open() { # tcp_open HOST PORT: fd 3 connected
  exec 3<> "/dev/tcp/$1/$2" || say "nothing listens on $1:$2"
}
local_host() { # where to reach a listener bound to $1 from inside the container
  case $1 in "" | 0.0.0.0 | "*") echo 127.0.0.1 ;; "[::]" | "::") echo ::1 ;; *) echo "${1#[}" | sed 's/]$//' ;; esac
}

case ${argv[0]##*/} in
  mailbeacon-rewrite)
    case $milter in
      inet:*)
        spec=${milter#inet:}
        port=${spec%%@*}
        host=127.0.0.1
        [[ $spec == *@* ]] && host=$(local_host "${spec#*@}")
        tcp_open "$host" "$port"
        exit 0
        ;;
      unix:* | local:*)
        [ -S "${milter#*:}" ] || say "no socket ${milter#*:}"
        exit 0
        ;;
      *) say "process 1 is mailbeacon-rewrite but no --milter: nothing to check" ;;
    esac
    ;;
  mailbeacon-server) ;;
  *) say "process 1 is ${argv[0]}, not a mailbeacon program" ;;
esac

case $role in
  all | edge) key=admin_listen ;;
  batcher) key=batcher_admin_listen ;;
  api) key=api_admin_listen ;;
  *) say "unknown role $role" ;;
esac
addr=$(mailbeacon-rewrite ${conf:+--config "$conf"} --print-config | sed -n "s/^$key = //p")
[ -n "$addr" ] || say "$key is not set"
port=${addr##*:}
[ "$port" != 0 ] || say "$key has port 0: cannot tell which port it took"
tcp_open "$(local_host "${addr%:*}")" "$port"
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 4 status <&3 || say "no answer from $addr"
rest=
IFS= read -r -d '' -t 4 rest <&3 || true
rest=${rest%$'\n'}
body=${rest##*$'\n'} # the JSON of /healthz
case $status in
  "HTTP/1."[01]" 200"*) echo "$body" ;;
  *) say "$addr: ${status%$'\r'}" ;;
esac
