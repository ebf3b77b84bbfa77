#!/usr/bin/env bash
# Fuzzes every entry point that takes wire bytes (xdptcp-fuzz: wire
# parsers, the interface, a live connection in each TCP state) for a
# bounded time on stable Rust. Exits non-zero on a crash; the input is
# saved under fuzz/crashes/ with the command that replays it.
#
#   tools/fuzz.sh [SECONDS (default 60, shared by the targets)] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
seed="${2:-$(date +%s)}"
cargo build --release -q -p xdptcp-fuzz
echo "fuzzing for ${seconds} s, seed ${seed}"
exec ./target/release/xdptcp-fuzz --seconds "$seconds" --seed "$seed" --corpus fuzz/corpus --crashes fuzz/crashes
