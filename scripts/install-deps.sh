#!/usr/bin/env bash
# Installs the Debian 12 packages mailbeacon builds, tests and runs with,
# when they are missing. Needs root (apt-get); does nothing when all are there.
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format  # compilers, libFuzzer, sanitizers, the format check
  libgmime-3.0-dev libsodium-dev uuid-dev libhiredis-dev zlib1g-dev libmilter-dev libmicrohttpd-dev libjansson-dev  # the libraries
  libcmocka-dev python3 python3-html5lib curl wrk iproute2      # tests (iproute2: ip for the roles test's network namespace, ss)
  redis-server redis-tools                                      # private Redis for tests and the demo
  postgresql-15 postgresql-client-15 libpq-dev                  # private PostgreSQL for the batcher
  postfix swaks                                                 # private Postfix for the MTA tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages and not root: run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Postfix as a package only: no system configuration, no system service.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
