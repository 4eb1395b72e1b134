#!/usr/bin/env bash
# Checks the C sources are formatted (.clang-format), builds mailbeacon and
# runs every test: plain, then under AddressSanitizer
# and UndefinedBehaviorSanitizer, then each libFuzzer target for a bounded
# time (FUZZ_SECONDS each, default 30), then the compose stack under Podman
# (MB_SKIP_CONTAINERS=1 skips that). Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-30}

echo "== format (.clang-format)"
bash scripts/format.sh --check

echo "== build and test (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== build and test under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMB_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# the load tests (label load) and the browser test (label browser: Chromium renders the rewriter's
# output) ran above; under the sanitizers they would only take longer
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$jobs" -LE 'load|browser')

echo "== fuzz (${fuzz_seconds}s per target)"
CC=clang cmake -S . -B build-fuzz -DMB_FUZZ=ON -DMB_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_token fuzz_html fuzz_message fuzz_config fuzz_hit fuzz_events fuzz_iplist fuzz_rules fuzz_hookfile fuzz_consent
work=$(mktemp -d /tmp/mb-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
seeds_html=$work/seeds-html
mkdir -p "$seeds_html"
cp tests/html5/corpus/*.html "$seeds_html"/ 2>/dev/null || true
for f in tests/data/expected/*.out; do cp "$f" "$seeds_html/$(basename "$f").html"; done
fuzz() { # fuzz TARGET SEED_DIR [options]
  local t=$1 seeds=$2; shift 2
  mkdir -p "$work/$t"
  "build-fuzz/fuzz/$t" -max_total_time="$fuzz_seconds" -print_final_stats=0 "$@" "$work/$t" "$seeds" \
    > "$work/$t.log" 2>&1 || { tail -50 "$work/$t.log"; echo "fuzz $t: FAILED"; return 1; }
  echo "fuzz $t: $(grep -o 'Done [0-9]* runs' "$work/$t.log" | tail -1), no crash"
}
fuzz fuzz_token tests/fuzz/corpus
fuzz fuzz_config tests/fuzz/corpus
fuzz fuzz_hit tests/fuzz/corpus -max_len=20000
fuzz fuzz_events tests/fuzz/corpus -max_len=20000
fuzz fuzz_iplist tests/fuzz/corpus -max_len=20000
fuzz fuzz_rules tests/fuzz/corpus -max_len=20000
fuzz fuzz_hookfile tests/fuzz/corpus -max_len=20000
fuzz fuzz_consent tests/fuzz/corpus -max_len=20000
fuzz fuzz_html "$seeds_html" -max_len=65536
fuzz fuzz_message tests/data -max_len=200000 -rss_limit_mb=4096

# the Debian package installed into a clean Debian 12 container (docs/install.md), and the compose
# stack (docker/) under rootful Podman, once each (docs/containers.md); CI runs them,
# MB_SKIP_CONTAINERS=1 leaves them out of a local run
if [ "${MB_SKIP_CONTAINERS:-}" = 1 ]; then
  echo "== Debian package and containers (Podman): skipped (MB_SKIP_CONTAINERS=1)"
else
  echo "== Debian package (built, installed into a clean Debian 12 container)"
  bash tests/package/deb.sh
  echo "== containers (Podman)"
  bash tests/containers/compose.sh
fi
echo "all tests passed"
