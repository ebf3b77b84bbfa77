//! The facts a reader needs to judge the figures: kernel, CPU, cores,
//! MTU, offloads and XDP mode, and how often the machine itself stops a
//! spinning thread (the floor under every tail latency).

use std::time::{Duration, Instant};

/// What a bare spinning loop on one CPU saw: gaps (time between two
/// consecutive clock reads) over 20 us and over 50 us per second, and the
/// longest. Interrupts, the kernel's own work and, in a VM, the host take
/// these; no code in user space can have a tail shorter than they make.
#[derive(Debug, Clone, Copy)]
pub struct Jitter {
    pub over_20us_per_s: f64,
    pub over_50us_per_s: f64,
    pub max_us: f64,
}

/// Spins `dur` on each CPU at once (nothing else of ours running).
pub fn jitter(dur: Duration) -> Vec<Jitter> {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    std::thread::scope(|s| {
        let threads: Vec<_> = cpus
            .into_iter()
            .map(|id| {
                s.spawn(move || {
                    core_affinity::set_for_current(id);
                    let (mut n20, mut n50, mut max) = (0u64, 0u64, Duration::ZERO);
                    let start = Instant::now();
                    let mut last = start;
                    while last - start < dur {
                        let now = Instant::now();
                        let gap = now - last;
                        n20 += u64::from(gap > Duration::from_micros(20));
                        n50 += u64::from(gap > Duration::from_micros(50));
                        max = max.max(gap);
                        last = now;
                    }
                    let secs = dur.as_secs_f64();
                    Jitter {
                        over_20us_per_s: n20 as f64 / secs,
                        over_50us_per_s: n50 as f64 / secs,
                        max_us: max.as_secs_f64() * 1e6,
                    }
                })
            })
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).collect()
    })
}

/// The jitter as one line for the report.
pub fn jitter_line(j: &[Jitter]) -> String {
    let per: Vec<String> = j
        .iter()
        .enumerate()
        .map(|(i, j)| {
            format!(
                "cpu{i}: {:.0}/s over 20 us, {:.0}/s over 50 us, max {:.0} us",
                j.over_20us_per_s, j.over_50us_per_s, j.max_us
            )
        })
        .collect();
    format!("a bare spinning loop, 1 s per CPU: {}", per.join("; "))
}

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
