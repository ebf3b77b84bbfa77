//! `xdptcp-bench --quick` end to end: every scenario ran under every
//! pairing it is meant for, every figure is present and sane (finite,
//! above zero, percentiles in order), the ratios are there, and the report
//! and plots were written. Never a speed threshold: figures are checked
//! for being measured, not for being fast.

use serde_json::Value;

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn quick_bench_reports_every_figure() {
    reports_every_figure(false);
}

/// The same with every connection over IPv6.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn quick_bench_over_ipv6_reports_every_figure() {
    reports_every_figure(true);
}

/// One bench at a time: both build the same namespaces and pin the
/// same CPUs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn reports_every_figure(ipv6: bool) {
    xdptcp_tools::topology::require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir =
        std::env::temp_dir().join(format!("xdptcp-quick-bench-{}-{ipv6}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdptcp-bench"))
        .args(ipv6.then_some("--ipv6"))
        .args(["--quick", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("run xdptcp-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "xdptcp-bench failed:\n{stdout}\n{stderr}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        v["failures"].as_array().unwrap().len(),
        0,
        "{}",
        v["failures"]
    );
    for key in [
        "kernel",
        "cpu",
        "cores",
        "mtu",
        "offloads",
        "xdp_mode",
        "spin_jitter",
        "ip",
    ] {
        assert!(
            v["machine"][key].as_str().is_some_and(|s| !s.is_empty()),
            "machine.{key}"
        );
    }
    assert_eq!(v["machine"]["ip"], if ipv6 { "IPv6" } else { "IPv4" });
    let figures = v["figures"].as_array().unwrap();
    let get = |scenario: &str, pairing: &str, metric: &str| -> f64 {
        let f = figures
            .iter()
            .find(|f| f["scenario"] == scenario && f["pairing"] == pairing && f["metric"] == metric)
            .unwrap_or_else(|| panic!("no figure {scenario} / {pairing} / {metric}"));
        let m = f["median"].as_f64().unwrap_or(f64::NAN);
        assert!(
            m.is_finite() && m > 0.0,
            "{scenario} / {pairing} / {metric} = {m}"
        );
        m
    };
    for dir in ["->", "<-"] {
        let s = format!("line rate {dir}");
        assert!(get(&s, "device", "received") <= get(&s, "device", "sent") * 1.01);
        get(&s, "device", "tcp-equivalent");
    }
    let tcp = ["kernel-kernel", "xdptcp-kernel", "xdptcp-xdptcp"];
    for p in tcp {
        for s in ["bulk 1 flow up", "bulk 1 flow down"] {
            get(s, p, "goodput");
            get(s, p, "cpu");
        }
        get("latency during bulk", p, "goodput");
        assert!(get("latency during bulk", p, "p50") <= get("latency during bulk", p, "p99"));
        get("rr 64 B", p, "transactions");
        get("crr", p, "connections");
        assert!(get("crr", p, "p50") <= get("crr", p, "p99"));
    }
    for p in tcp.iter().copied().chain(["kernel-kernel-spin"]) {
        let q: Vec<f64> = ["p50", "p90", "p99", "p99.9"]
            .iter()
            .map(|m| get("rr 64 B", p, m))
            .collect();
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "rr 64 B {p}: {q:?}");
    }
    // The kernel with the same bound on unsent bytes as ours.
    assert!(
        get("latency during bulk", "kernel-kernel-lowat", "p50")
            <= get("latency during bulk", "kernel-kernel-lowat", "p99")
    );
    get("bulk 1 flow up", "kernel-kernel-offload", "goodput");
    get("file_transfer", "xdptcp-xdptcp", "goodput");
    assert!(
        get("file_transfer", "xdptcp-xdptcp", "rtt p50")
            <= get("file_transfer", "xdptcp-xdptcp", "rtt p99")
    );
    for r in [
        "file_transfer_vs_line_rate",
        "bulk_vs_kernel_no_offload",
        "bulk_vs_kernel",
        "rr64_p50_vs_kernel",
        "rr64_p99_vs_kernel",
        "rr64_p999_vs_kernel",
        "bulk_vs_line_rate",
        "bulk_latency_p50_vs_kernel",
        "bulk_latency_p99_vs_kernel",
        "crr_vs_kernel",
    ] {
        let x = v["ratios"][r].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "ratio {r} = {x}");
    }
    for l in v["latency"].as_array().unwrap() {
        let q: Vec<f64> = ["p50_us", "p90_us", "p99_us", "p99.9_us", "max_us"]
            .iter()
            .map(|k| l[*k].as_f64().unwrap())
            .collect();
        assert!(q[0] > 0.0 && q.windows(2).all(|w| w[0] <= w[1]), "{l}");
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("| rr 64 B | p50 (us) |"), "{report}");
    // A percentile plot per scenario.
    for plot in [
        "goodput",
        "latency-64k-chunk-in-bulk",
        "latency-rr-64-b",
        "bulk-trace",
    ] {
        let png = std::fs::read(dir.join(format!("{plot}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 1000,
            "{plot}.png"
        );
        let svg = std::fs::read_to_string(dir.join(format!("{plot}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{plot}.svg");
    }
    assert!(stdout.contains("ratios"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
