#!/usr/bin/env bash
# Installs the Debian 12 packages mailbeacon builds, tests and runs with,
# when they are missing, and the browser test's npm package (playwright-core,
# the version tests/browser/package-lock.json pins, into tests/browser/node_modules).
# Needs root (apt-get); installs Debian's npm when there is no npm; does nothing when all are there.
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format  # compilers, libFuzzer, sanitizers, the format check
  libgmime-3.0-dev libsodium-dev libssl-dev uuid-dev libhiredis-dev zlib1g-dev libcdb-dev libmilter-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libsystemd-dev  # the libraries
  libcmocka-dev python3 python3-html5lib curl wrk iproute2 openssl  # tests (iproute2: ip for the roles test's network namespace, ss; openssl: a certificate for the rep API's HTTPS)
  redis-server redis-tools                                      # private Redis for tests and the demo
  postgresql-15 postgresql-client-15 libpq-dev                  # private PostgreSQL for the batcher
  postfix swaks                                                 # private Postfix for the MTA tests
  debhelper                                                     # the Debian package (dpkg-buildpackage; debian/)
  chromium fonts-dejavu-core                                    # the browser test (tests/browser): Debian's Chromium, a font
)
# `install-deps.sh build`: only what building and the unit tests (ctest -L unit) need, as the
# image's build stage (docker/Dockerfile) installs it: the compilers, every -dev library above
# (cmocka and libpq's among them) and the redis-server unit_stream starts; not the fuzzing
# toolchain, PostgreSQL, Postfix, Chromium nor the npm package.
mode=${1:-all}
case $mode in
  all) ;;
  build)
    build=(build-essential cmake pkg-config redis-server)
    for p in "${packages[@]}"; do
      case $p in libclang-*) ;; lib*-dev) build+=("$p") ;; esac
    done
    packages=("${build[@]}")
    ;;
  *)
    echo "usage: $0 [build]" >&2
    exit 64
    ;;
esac
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
if [ "$mode" = build ]; then exit 0; fi
# playwright-core drives the system Chromium (/usr/bin/chromium): it downloads no browser of its own
browser=$(cd "$(dirname "$0")/../tests/browser" && pwd)
want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$browser/package.json")
have=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$browser/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  if ! command -v npm > /dev/null; then # Debian's npm brings its Node.js
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "installing playwright-core $want into $browser/node_modules"
  (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
