#!/usr/bin/env bash
# The main job (README "Set-up", step 1): our stack against the Linux
# kernel over AF_XDP, both directions, next to kernel-to-kernel, and the
# benchmark harness's quick run; then
# verified transfers between two xdptcp stacks over the simulated link: a
# clean 1 Gbit/s link, a 100 ms long fat pipe, then loss, reordering,
# duplication and corruption.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -q -p apps --bin file_transfer
ft=target/release/file_transfer
echo "== xdptcp over AF_XDP against the Linux kernel (veth between two namespaces)"
if [ "$(id -u)" = 0 ]; then
    $ft demo --size 256M
    echo
    echo "== round-trip latency, kernel client vs xdptcp client, same kernel echo server"
    cargo build --release -q -p bench --bin rtt
    target/release/rtt --size 64 --count 20000 --out target/bench
    echo
    echo "== bulk through a router dropping packets at random: xdptcp vs the kernel (CUBIC and BBR each)"
    cargo build --release -q -p bench --bin lossy
    target/release/lossy --loss 0.01,0.05 --size 16777216
    echo
    echo "== xdptcp-bench --quick: line rate, bulk, latency during bulk, rr, crr, file_transfer (see docs/BENCHMARKS.md)"
    cargo build --release -q -p bench --bin xdptcp-bench
    target/release/xdptcp-bench --quick --json target/bench/quick.json --out target/bench
else
    echo "*** SKIPPED: the AF_XDP comparison needs root (namespaces, XDP): run 'sudo bash scripts/demo.sh' ***"
fi
echo
echo "== clean link"
$ft sim --size 64M --seed 7
echo
echo "== long fat pipe: 100 ms RTT at 1 Gbit/s, one-BDP queue (window scaling, autotuned buffers, HyStart++)"
$ft sim --size 512M --rtt 100ms --bandwidth 1gbit --queue 12M --seed 7
echo
echo "== impaired link: 5% loss, 5% reordering, 2% duplication, 0.1% corruption"
$ft sim --size 64M --loss 0.05 --reorder 0.05 --dup 0.02 --corrupt 0.001 --seed 7 --json
