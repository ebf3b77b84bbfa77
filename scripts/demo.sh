#!/usr/bin/env bash
# The main job (README "Set-up", step 1): a verified 64 MiB file transfer
# between two xdptcp stacks, first over a clean simulated 1 Gbit/s link,
# then through loss, reordering, duplication and corruption.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p apps --bin file_transfer
ft=target/release/file_transfer
echo "== clean link"
$ft sim --size 64M --seed 7
echo
echo "== impaired link: 5% loss, 5% reordering, 2% duplication, 0.1% corruption"
$ft sim --size 64M --loss 0.05 --reorder 0.05 --dup 0.02 --corrupt 0.001 --seed 7 --json
