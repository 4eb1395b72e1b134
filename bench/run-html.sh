#!/usr/bin/env bash
# HTML rewriting throughput: mailbeacon vs Cloudflare lol-html (npm html-rewriter-wasm), and
# mailbeacon's peak memory per message size.
#
# usage: bench/run-html.sh [BINARY]     (default BINARY: <repo>/build/bench/mb-bench-rewrite)
# env:   REPS=3           repetitions of every measurement (medians are reported)
#        BENCH_SECONDS=2  target length of one timed run; iterations are calibrated to it
#        KEEP=1           keep the temp dir with inputs and raw results
#
# BINARY interface: `BINARY --mode html|message FILE ITERATIONS` prints one JSON line
#   {"impl":"mailbeacon","file":..,"bytes":..,"iterations":..,"seconds":..,"mb_per_s":..,"links":..}
# (lolhtml-rewrite.mjs prints the same shape). MB = 10^6 bytes of input.
# Exit: 0 done, 1 a run failed or rewrote the wrong number of links, 2 BINARY missing.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
bin=${1:-$root/build/bench/mb-bench-rewrite}
reps=${REPS:-3}
target_s=${BENCH_SECONDS:-2}

if [[ ! -x $bin ]]; then
    echo "run-html.sh: benchmark binary '$bin' is missing or not executable;" \
         "build it first (it is built as build/bench/mb-bench-rewrite)" >&2
    exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
command -v node >/dev/null || { echo "run-html.sh: node is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run-html.sh: python3 is required" >&2; exit 1; }

# lol-html side: install the locked npm dependency once.
if [[ ! -d $here/node_modules/html-rewriter-wasm ]]; then
    echo "installing npm dependencies in $here ..." >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

# GNU time for peak RSS (Debian package `time`).
if [[ ! -x /usr/bin/time ]]; then
    echo "installing GNU time ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq time || { apt-get update -qq && apt-get install -y -qq time; }; } \
        >/dev/null 2>&1 || true
fi

tmp=$(mktemp -d)
if [[ ${KEEP:-0} == 1 ]]; then echo "inputs and raw results kept in $tmp" >&2
else trap 'rm -rf "$tmp"' EXIT; fi
python3 "$here/gen-inputs.py" "$tmp" --mem >/dev/null
results=$tmp/results.jsonl

# run IMPL MODE FILE ITERATIONS -> the implementation's JSON line on stdout
run() {
    local out
    case $1 in
        mailbeacon) out=$("$bin" --mode "$2" "$3" "$4") ;;
        lol-html)   out=$(node "$here/lolhtml-rewrite.mjs" "$3" "$4") ;;
    esac || { echo "run-html.sh: $1 --mode $2 $(basename "$3") failed" >&2; exit 1; }
    printf '%s\n' "$out" | tail -n 1
}

seconds_of() { sed -n 's/.*"seconds": *\([0-9.eE+-]*\).*/\1/p' <<<"$1"; }

# calibrate IMPL MODE FILE -> iterations for a run of about $target_s seconds
calibrate() {
    local n=2 line s
    while :; do
        line=$(run "$1" "$2" "$3" "$n")
        s=$(seconds_of "$line")
        [[ -n $s ]] || { echo "run-html.sh: no \"seconds\" in: $line" >&2; exit 1; }
        if python3 -c "import sys; sys.exit(0 if float('$s') >= 0.25 or $n >= 10**7 else 1)"; then
            python3 -c "import math; print(max(1, math.ceil($n * $target_s / max(float('$s'), 1e-6))))"
            return
        fi
        n=$(python3 -c "print(min($n * 8, 10**7))")
    done
}

# Throughput: the three (impl, mode) cases per input, interleaved within each repetition.
cases=()
for base in links800 newsletter; do
    cases+=("mailbeacon html $base.html" "lol-html html $base.html" "mailbeacon message $base.eml")
done
declare -A iters
for c in "${cases[@]}"; do
    read -r impl mode file <<<"$c"
    echo "calibrating $impl --mode $mode $file ..." >&2
    iters[$c]=$(calibrate "$impl" "$mode" "$tmp/$file")
done
for ((r = 1; r <= reps; r++)); do
    for c in "${cases[@]}"; do
        read -r impl mode file <<<"$c"
        echo "rep $r/$reps: $impl --mode $mode $file x${iters[$c]}" >&2
        line=$(run "$impl" "$mode" "$tmp/$file" "${iters[$c]}")
        printf '{"mode":"%s","file":"%s","run":%s}\n' "$mode" "$file" "$line" >>"$results"
    done
done

# Peak RSS of one message-mode run per message size.
mem=$tmp/mem.jsonl
if [[ -x /usr/bin/time ]]; then
    for ((r = 1; r <= reps; r++)); do
        for m in mem-30k mem-100k mem-1m mem-10m; do
            /usr/bin/time -f %M -o "$tmp/rss" "$bin" --mode message "$tmp/$m.eml" 1 >"$tmp/out" ||
                { echo "run-html.sh: mailbeacon --mode message $m.eml failed" >&2; exit 1; }
            line=$(tail -n 1 "$tmp/out"); [[ -n $line ]] || line='{}'
            printf '{"file":"%s.eml","rss_kib":%s,"run":%s}\n' \
                "$m" "$(tail -n 1 "$tmp/rss")" "$line" >>"$mem"
        done
    done
else
    echo "run-html.sh: /usr/bin/time missing and could not be installed; skipping memory" >&2
fi

# Report: medians as markdown tables; link counts checked against the generator's manifest.
python3 - "$tmp/manifest.json" "$results" "$mem" <<'EOF'
import json, os, statistics, sys
manifest = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
mem = [json.loads(l) for l in open(sys.argv[3])] if os.path.exists(sys.argv[3]) else []
bad = []

def check(file, impl, run):
    want, got = manifest[file]["links"], run.get("links")
    if got != want:
        bad.append(f"{impl} {file}: rewrote {got} links, expected {want}")

def median(vals):
    return statistics.median(vals) if vals else None

def mbps(impl, mode, file):
    runs = [r["run"] for r in rows if r["run"]["impl"] == impl and r["mode"] == mode
            and r["file"] == file]
    for run in runs:
        check(file, impl, run)
    return median([run["mb_per_s"] for run in runs])

def fmt(v):
    return "—" if v is None else f"{v:,.1f}"

n = len(rows) // 6
print(f"\n### HTML rewriting throughput (median of {n}, MB = 10^6 input bytes per second)\n")
print("| input | bytes | links | mailbeacon MB/s | lol-html MB/s | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for base in ("links800", "newsletter"):
    h, e = base + ".html", base + ".eml"
    ours, lol = mbps("mailbeacon", "html", h), mbps("lol-html", "html", h)
    ratio = f"{ours / lol:.1f}×" if ours and lol else "—"
    print(f"| {h} (html mode) | {manifest[h]['bytes']:,} | {manifest[h]['links']} | "
          f"{fmt(ours)} | {fmt(lol)} | {ratio} |")
    ours_msg = mbps("mailbeacon", "message", e)
    print(f"| {e} (message mode) | {manifest[e]['bytes']:,} | {manifest[e]['links']} | "
          f"{fmt(ours_msg)} | n/a | n/a |")
print("\nratio = mailbeacon / lol-html. lol-html is the wasm build under Node "
      f"{os.popen('node --version').read().strip()}; message mode (MIME parse, QP decode, "
      "rewrite, re-encode, splice) has no lol-html counterpart.")

if mem:
    print(f"\n### mailbeacon peak memory, message mode, one message (median of {len(mem) // 4})\n")
    print("| message | bytes | links | peak RSS | RSS / message size |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for f in ("mem-30k.eml", "mem-100k.eml", "mem-1m.eml", "mem-10m.eml"):
        runs = [m for m in mem if m["file"] == f]
        for m in runs:
            check(f, "mailbeacon", m["run"])
        kib = median([m["rss_kib"] for m in runs])
        size = manifest[f]["bytes"]
        print(f"| {f} | {size:,} | {manifest[f]['links']:,} | {kib / 1024:,.1f} MiB | "
              f"{kib * 1024 / size:.1f}× |")

if bad:
    print("\nLINK COUNT MISMATCH:\n" + "\n".join("- " + b for b in sorted(set(bad))))
    sys.exit(1)
EOF
