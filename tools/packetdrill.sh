#!/usr/bin/env bash
# Plays packetdrill scripts against xdptcp through its packetdrill adapter
# (shared-object mode) and prints one line per script: PASS, FAIL or
# UNSUPPORTED with the first error line, then the totals.
#
#   tools/packetdrill.sh PACKETDRILL_BIN CORPUS_DIR [FILTER]
#
# PACKETDRILL_BIN: packetdrill built from github.com/google/packetdrill
# (see the README, "Testing the stack with packetdrill"). CORPUS_DIR: a
# directory of .pkt scripts, e.g. its gtests/net/tcp. FILTER: only scripts
# whose path contains it. KERNEL=1 plays them against the Linux kernel
# instead (no adapter), for the comparison. Each script runs in a network
# namespace of its own (unshare -n, with a dummy tun0 for the corpus's
# defaults.sh), so its sysctls never touch the host's; needs root.
# Per-script logs go to $OUT (default /tmp/xdptcp-packetdrill); PD_ARGS
# adds packetdrill options (PD_ARGS=-v logs every packet). IP_VERSION=ipv6
# (or ipv4-mapped-ipv6) plays them over that, as packetdrill's run_all.py.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
pd=$(realpath "$1")
corpus=$(realpath "$2")
filter=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/xdptcp-packetdrill}
timeout_s=${TIMEOUT:-120}
[[ -x $pd ]] || { echo "error: $pd is not an executable packetdrill" >&2; exit 2; }
[[ -d $corpus ]] || { echo "error: $corpus is not a directory" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "error: needs root (a network namespace per script)" >&2; exit 2; }

export KERNEL=${KERNEL:-0}
so_args=()
if [[ $KERNEL != 1 ]]; then
    (cd "$root" && cargo build --release -q -p xdptcp-packetdrill)
    so="$(cd "$root" && realpath -m "${CARGO_TARGET_DIR:-target}")/release/libxdptcp_packetdrill.so"
    so_args=(--so_filename="$so" --so_flags=sysctls=1)
    # Preloaded too: packetdrill reads TCP_INFO for a script's %{ }% lines
    # with the real getsockopt, which the adapter answers for its sockets.
    export LD_PRELOAD="$so"
fi
# The addresses and symbols packetdrill's own run_all.py gives each IP
# version (IP_VERSION=ipv4, the default, ipv6 or ipv4-mapped-ipv6).
case ${IP_VERSION:-ipv4} in
    ipv4|ipv4-mapped-ipv6)
        level=SOL_IP; recverr=IP_RECVERR
        [[ ${IP_VERSION:-ipv4} == ipv4 ]] || { level=SOL_IPV6; recverr=IPV6_RECVERR; }
        args=(--ip_version=${IP_VERSION:-ipv4} --local_ip=192.168.0.1 --gateway_ip=192.168.0.1
              --netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 --send_omit_free
              -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable
              -D CMSG_LEVEL_IP=$level -D CMSG_TYPE_RECVERR=$recverr) ;;
    ipv6)
        args=(--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1
              --gateway_ip=fd3d:0a0b:17d6:8888::1 --remote_ip=fd3d:fa7b:d17d::1
              --send_omit_free -D TFO_COOKIE=c1d1e9742a47a9bc
              -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
        [[ $KERNEL == 1 ]] || so_args=(--so_filename="$so" --so_flags=sysctls=1,mtu=1520) ;;
    *) echo "error: IP_VERSION=$IP_VERSION: use ipv4, ipv6 or ipv4-mapped-ipv6" >&2; exit 2 ;;
esac

rm -rf "$out"
mkdir -p "$out"
pass=0 fail=0 unsupported=0
while IFS= read -r script; do
    rel=${script#"$corpus"/}
    [[ -z $filter || $rel == *"$filter"* ]] || continue
    log="$out/${rel//\//_}.log"
    # A script that names its own addresses in its header (Fast Open
    # cookies hash them) gets them: packetdrill lets the command line win
    # over the header, so ours are left out and the adapter is told.
    script_args=("${args[@]}")
    script_so=("${so_args[@]}")
    local_ip=$(sed -n 's/^--local_ip=\([0-9.]*\).*/\1/p' "$script" | head -1)
    remote_ip=$(sed -n 's/^--remote_ip=\([0-9.]*\).*/\1/p' "$script" | head -1)
    if [[ ${IP_VERSION:-ipv4} != ipv6 && ( -n $local_ip || -n $remote_ip ) ]]; then
        script_args=()
        for a in "${args[@]}"; do
            [[ -n $local_ip && $a == --local_ip=* ]] && continue
            [[ -n $remote_ip && $a == --remote_ip=* ]] && continue
            script_args+=("$a")
        done
        if [[ -n $local_ip && $KERNEL != 1 ]]; then
            script_so=(--so_filename="$so" --so_flags=sysctls=1,local_ip=$local_ip)
        fi
    fi
    set +e
    # packetdrill makes tun0 itself against the kernel; for the adapter a
    # dummy one lets defaults.sh's `tc qdisc ... dev tun0` succeed.
    (cd "$(dirname "$script")" && timeout "$timeout_s" unshare -n bash -c '
        ip link set lo up
        if [[ $KERNEL != 1 ]]; then
            ip tuntap add dev tun0 mode tun 2>/dev/null && ip link set tun0 up
        fi
        exec "$@"' _ "$pd" "${script_so[@]}" "${script_args[@]}" ${PD_ARGS:-} "$(basename "$script")") >"$log" 2>&1
    rc=$?
    set -e
    first=$(grep -m1 -E 'error|Error|failed|expected|ENOSYS|not supported|unknown' "$log" || true)
    if [[ $rc == 0 ]]; then
        verdict=PASS; pass=$((pass + 1)); first=""
    elif [[ $rc == 124 ]]; then
        verdict=FAIL; fail=$((fail + 1)); first="timed out after ${timeout_s} s"
    elif grep -qE 'ENOSYS|EOPNOTSUPP|ENOPROTOOPT|Operation not supported|Function not implemented|Protocol not available|unsupported' "$log"; then
        verdict=UNSUPPORTED; unsupported=$((unsupported + 1))
    else
        verdict=FAIL; fail=$((fail + 1))
    fi
    printf '%-12s %s  %s\n' "$verdict" "$rel" "${first:0:160}"
done < <(find "$corpus" -name '*.pkt' | sort)
total=$((pass + fail + unsupported))
echo "total $total: $pass passed, $fail failed, $unsupported unsupported (logs in $out)"
