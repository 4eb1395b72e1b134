#!/usr/bin/env bash
# HTML rewriting throughput: mailbeacon vs Cloudflare lol-html (npm html-rewriter-wasm), the HTML
# step and the whole message; and mailbeacon-rewrite's peak memory per message size.
#
# usage: bench/run-html.sh [BINARY]     (default BINARY: <repo>/build/bench/mb-bench-rewrite)
# env:   REPS=3           repetitions of every measurement (medians are reported)
#        BENCH_SECONDS=2  target length of one timed run; iterations are calibrated to it
#        KEEP=1           keep the temp dir with inputs and raw results
#        REWRITE_BIN=...  the pipe filter measured for memory (default: BINARY's ../mailbeacon-rewrite)
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

# Throughput: the (impl, mode) cases per input, interleaved within each repetition. The whole
# message (MIME parse, decoding, rewrite, encoding, the message written out) against lol-html on
# the same document's HTML, at about 30 KB, 180 KB, 1 MB and 4 MB.
cases=()
for base in links800 newsletter; do
    cases+=("mailbeacon html $base.html" "lol-html html $base.html" "mailbeacon message $base.eml")
done
for base in mem-1m mem-4m; do
    cases+=("lol-html html $base.html" "mailbeacon message $base.eml")
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

# Peak RSS of the pipe filter (mailbeacon-rewrite, as an MTA runs it) per message size, and of the
# same program on a message of one line (what the process and its libraries take: the baseline).
mem=$tmp/mem.jsonl
rewrite=${REWRITE_BIN:-$(dirname "$(dirname "$bin")")/mailbeacon-rewrite}
if [[ -x /usr/bin/time && -x $rewrite ]]; then
    "$rewrite" --keygen "$tmp/keys" >/dev/null
    printf 'From: a@b.example\r\nTo: c@d.example\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n' >"$tmp/tiny.eml"
    for ((r = 1; r <= reps; r++)); do
        for m in tiny mem-30k mem-100k mem-1m mem-10m; do
            MAILBEACON_KEY_FILE=$tmp/keys MAILBEACON_BASE_URL=https://t.mailbeacon.test \
                /usr/bin/time -f %M -o "$tmp/rss" "$rewrite" <"$tmp/$m.eml" >"$tmp/out" ||
                { echo "run-html.sh: mailbeacon-rewrite < $m.eml failed" >&2; exit 1; }
            printf '{"file":"%s.eml","rss_kib":%s,"out_bytes":%s}\n' \
                "$m" "$(tail -n 1 "$tmp/rss")" "$(stat -c %s "$tmp/out")" >>"$mem"
        done
    done
else
    echo "run-html.sh: /usr/bin/time or $rewrite missing; skipping memory" >&2
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

n = len(rows) // len({(r["run"]["impl"], r["mode"], r["file"]) for r in rows})
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
      f"{os.popen('node --version').read().strip()}.")

print(f"\n### Whole message vs lol-html on its HTML (median of {n})\n")
print("| message | bytes | links | mailbeacon, whole message MB/s | lol-html, the HTML MB/s | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for base in ("newsletter", "links800", "mem-1m", "mem-4m"):
    h, e = base + ".html", base + ".eml"
    ours, lol = mbps("mailbeacon", "message", e), mbps("lol-html", "html", h)
    ratio = f"{ours / lol:.1f}×" if ours and lol else "—"
    print(f"| {e} | {manifest[e]['bytes']:,} | {manifest[e]['links']:,} | {fmt(ours)} | {fmt(lol)} | {ratio} |")
print("\nmailbeacon: MIME parse, transfer decoding, rewrite, encoding, the message written out into "
      "a buffer kept from message to message (as the milter does); lol-html: the HTML document "
      "alone. MB/s of each one's own input.")

if mem:
    base = median([m["rss_kib"] for m in mem if m["file"] == "tiny.eml"])
    print(f"\n### Peak memory, mailbeacon-rewrite (pipe mode), one message (median of {len(mem) // 5})\n")
    print(f"Baseline: {base / 1024:,.1f} MiB, the same program on a message of one line (the process "
          "and its libraries). Its own: peak RSS less the baseline.\n")
    print("| message | bytes | links | peak RSS | RSS / size | its own | its own / size |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for f in ("mem-30k.eml", "mem-100k.eml", "mem-1m.eml", "mem-10m.eml"):
        runs = [m for m in mem if m["file"] == f]
        size = manifest[f]["bytes"]
        for m in runs:  # rewritten: every link longer
            if m["out_bytes"] <= size:
                bad.append(f"mailbeacon-rewrite {f}: {m['out_bytes']} bytes out, not rewritten")
        kib = median([m["rss_kib"] for m in runs])
        print(f"| {f} | {size:,} | {manifest[f]['links']:,} | {kib / 1024:,.1f} MiB | "
              f"{kib * 1024 / size:.1f}× | {(kib - base) / 1024:,.1f} MiB | {(kib - base) * 1024 / size:.1f}× |")

if bad:
    print("\nLINK COUNT MISMATCH:\n" + "\n".join("- " + b for b in sorted(set(bad))))
    sys.exit(1)
EOF
