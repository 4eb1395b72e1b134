#!/usr/bin/env bash
# The tracking policy's cost at rewrite time (issue 14): a consent copy of
# RECORDS addresses (default 1,000,000), one recipient's decision (lookup in
# the copy and the policy), and mailbeacon_rewrite_message's throughput with
# the policy off (no consent_copy: everyone tracked, as before) and on (the
# copy, a recipient who consented), in interleaved rounds of one run, on the
# smallest real message of tests/data and the ~50 KB sales mail of
# bench/run-milter.sh (gen-mail50k.py). Prints the JSON lines of
# build/bench/mb-bench-consent.
# usage: bash bench/run-consent.sh [build/bench/mb-bench-consent]   env: RECORDS ROUNDS
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bench/mb-bench-consent}
[ -x "$bin" ] || { echo "no $bin: build first" >&2; exit 2; }
dir=$(mktemp -d /tmp/mb-bench-consent.XXXXXX)
trap 'rm -rf "$dir"' EXIT
python3 bench/gen-mail50k.py "$dir/mail50k.eml"
echo "machine: $(nproc) cores; commit $(git rev-parse --short HEAD)" >&2
for msg in tests/data/01-single-html-7bit.eml "$dir/mail50k.eml"; do
  "$bin" "$dir" "$msg" "${RECORDS:-1000000}" "${ROUNDS:-5}"
done
