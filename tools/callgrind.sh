#!/usr/bin/env bash
# Instructions per segment through the sans-IO TCP path, counted by
# valgrind's callgrind: stable on a noisy machine, unlike timings. Runs
# the `segment_path` example twice (N and 2N segments) and divides the
# difference, so the handshake and set-up cancel out. Its last lines count
# the same through two whole interfaces over the simulated link
# (`frame_path`: frames, checksums, lookups, timers, polls, and the
# simulated link's own work), and what a poll with nothing to do costs.
# Usage: tools/callgrind.sh [N]   (default 20000; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -q -p xdptcp --example segment_path --example frame_path
bin=${CARGO_TARGET_DIR:-target}/release/examples/segment_path
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "${2:-1}" ${3:-} >/dev/null 2>&1
    # The summary line: "summary: <instructions>"
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
    rm -f "$out"
}
a=$(count "$n")
b=$(count $((2 * n)))
per=$(( (b - a) / n ))
echo "instructions per MSS segment (build, parse, deliver, read, ACK both ways): $per"
echo "  ($n segments: $a; $((2 * n)): $b)"
# Bulk as the stack runs it: the receiver acknowledges once per received
# batch (16 segments here), so the ACK's cost is shared.
a=$(count "$n" 16)
b=$(count $((2 * n)) 16)
echo "  in batches of 16 segments with one ACK each: $(( (b - a) / n )) per segment"
# The same, with the sender's bytes handed over as chunks (send_owned):
# one copy on transmit, into the frame, instead of two.
a=$(count "$n" 16 owned)
b=$(count $((2 * n)) 16 owned)
echo "  the same, the sender's chunks handed over whole (send_owned): $(( (b - a) / n )) per segment"
# Two whole stacks, bulk at 4 Gbit/s over the simulated link: each poll's
# fixed work (timers, the connection table) is in it, as on the real path.
bin=${CARGO_TARGET_DIR:-target}/release/examples/frame_path
a=$(count "$n")
b=$(count $((2 * n)))
echo "through two whole interfaces over the simulated link (frame_path): $(( (b - a) / n )) per segment"
# The loop's fixed cost: both interfaces polled with nothing to do, each
# holding one established connection (a spinning core pays this between
# any two frames).
a=$(count "$n" idle)
b=$(count $((2 * n)) idle)
echo "an idle poll of one interface (frame_path idle): $(( (b - a) / n / 2 )) instructions"
