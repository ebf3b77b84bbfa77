#!/usr/bin/env bash
# System packages the project uses: iproute2 (namespaces, veth), ethtool
# (offloads off), python3 and socat (kernel-side peers), ping, iptables
# (random loss on a router namespace: no netem here), fonts-dejavu-core (text
# in the benchmark's PNG plots), hping3 (the SYN flood of bench's synflood). Installed
# only as root on apt systems; elsewhere it says what is missing.
set -euo pipefail
need="iproute2 python3 ethtool iputils-ping socat iptables fonts-dejavu-core hping3"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $need >/dev/null
else
    for c in ip python3 ethtool ping socat iptables hping3; do
        command -v $c >/dev/null || echo "note: '$c' not found (packages: $need)"
    done
fi
