//! The facts a reader needs to judge the figures: kernel, CPU, cores,
//! MTU, offloads and XDP mode.

pub fn facts(mtu: u32, offloads_off: bool, our_cc: &str) -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let cc = read("/proc/sys/net/ipv4/tcp_congestion_control")
        .trim()
        .to_string();
    vec![
        ("kernel".into(), kernel),
        ("cpu".into(), cpu),
        ("cores".into(), cores.to_string()),
        ("mtu".into(), mtu.to_string()),
        (
            "offloads".into(),
            if offloads_off {
                "off (checksum, TSO, GSO, GRO on both veth ends)".into()
            } else {
                "veth defaults (TSO/GSO/GRO on)".into()
            },
        ),
        (
            "link".into(),
            "veth pair between two network namespaces".into(),
        ),
        (
            "xdp_mode".into(),
            "generic (copy mode: veth offers no zero-copy AF_XDP)".into(),
        ),
        ("kernel_congestion_control".into(), cc),
        ("xdptcp_congestion_control".into(), our_cc.into()),
        (
            "polling".into(),
            "xdptcp cores spin (busy polling); kernel sockets block unless marked spin".into(),
        ),
    ]
}
