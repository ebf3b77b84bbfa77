#!/usr/bin/env bash
# Coverage-guided fuzzing of one xdptcp-fuzz target with AFL++ (cargo-afl,
# fuzz/afl), for SECONDS; prints the coverage it reached (edges found of
# all instrumented edges, the bitmap's coverage) and whether it crashed.
# Not part of CI (it needs cargo-afl's instrumented build); CI runs the
# seeded havoc mutator (tools/fuzz.sh).
#   tools/afl.sh [TARGET: wire|iface|live|percore (live)] [SECONDS (120)]
set -euo pipefail
cd "$(dirname "$0")/../fuzz/afl"
target="${1:-live}"
seconds="${2:-120}"
command -v cargo-afl >/dev/null || {
    echo "afl.sh: cargo-afl is not installed: cargo install cargo-afl" >&2
    exit 2
}
cargo afl build --release -q
work=$(mktemp -d /tmp/xdptcp-afl.XXXXXX)
mkdir -p "$work/in"
./target/release/xdptcp-afl --write-seeds "$target" "$work/in"
echo "AFL++ on the $target target for ${seconds} s (output in $work)"
if ! AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    XDPTCP_TARGET="$target" cargo afl fuzz -V "$seconds" -i "$work/in" -o "$work/out" \
    ./target/release/xdptcp-afl >"$work/log" 2>&1; then
    tail -20 "$work/log" >&2
    exit 1
fi
stats="$work/out/default/fuzzer_stats"
grep -E "^(execs_done|corpus_count|edges_found|total_edges|bitmap_cvg|saved_crashes) " "$stats"
crashes=$(grep -E "^saved_crashes " "$stats" | awk '{print $3}')
if [ "$crashes" != "0" ]; then
    echo "afl.sh: crashes in $work/out/default/crashes (replay: cargo run --release -p xdptcp-fuzz -- --target $target --replay FILE)" >&2
    exit 1
fi
