//! `xdptcp-bench --quick` end to end: every scenario ran under every
//! pairing it is meant for, every figure is present and sane (finite,
//! above zero, percentiles in order), the ratios are there, and the report
//! and plots were written. Never a speed threshold: figures are checked
//! for being measured, not for being fast.

use serde_json::Value;
use xdptcp_tools::topology::{Spec, Topology};

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
    check_report(&dir, &json, &stdout, if ipv6 { "IPv6" } else { "IPv4" });
}

/// Two namespaces standing in for two hosts, each with the kernel's own
/// address on its veth end and our stack's beside it, and one
/// `xdptcp-bench` process in each: `serve` in one, `--peer` in the other.
/// Nothing shared but the link: the client's report must have every
/// figure and ratio the single-machine run has.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn two_processes_on_two_hosts_report_every_figure() {
    xdptcp_tools::topology::require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The veths keep their default offloads, as a NIC would: the bench
    // turns them off and back itself.
    let t = two_hosts("2h", 204, false);
    let offloads_before = offloads(&t);
    assert!(
        offloads_before.iter().any(|l| l.ends_with(": on")),
        "{offloads_before:?}"
    );
    let dir = std::env::temp_dir().join(format!("xdptcp-two-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let bin = env!("CARGO_BIN_EXE_xdptcp-bench");
    let mut serve = serve_once(&t, &["--ip", "10.204.0.3/24"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run xdptcp-bench serve");
    let server_err = serve.stderr.take().unwrap();
    let serve = Reap(serve);
    let (listening_tx, listening) = std::sync::mpsc::channel();
    let server_log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut log = String::new();
        for line in std::io::BufReader::new(server_err).lines() {
            let Ok(line) = line else { break };
            if line.contains("control on port") {
                let _ = listening_tx.send(());
            }
            log += &line;
            log.push('\n');
        }
        log
    });
    if listening
        .recv_timeout(std::time::Duration::from_secs(10))
        .is_err()
    {
        drop(serve);
        panic!("serve never listened: {}", server_log.join().unwrap());
    }
    let dev = format!("afxdp:{}", t.dev);
    let out = t
        .ours_cmd(&[
            bin,
            "--peer",
            "10.204.0.2",
            "--dev",
            &dev,
            "--ip",
            "10.204.0.4/24",
        ])
        .args(["--quick", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("run xdptcp-bench --peer");
    drop(serve);
    let server_log = server_log.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "xdptcp-bench --peer failed:\n{stdout}\n{stderr}\nserver:\n{server_log}"
    );
    // The server ran the jobs (and so its own stacks and sockets).
    assert!(server_log.contains("native_bulk"), "{server_log}");
    let v = check_report(&dir, &json, &stdout, "IPv4");
    let link = v["machine"]["link"].as_str().unwrap();
    assert!(link.starts_with("two hosts"), "{link}");
    assert!(
        v["machine"]["clocks"].as_str().is_some(),
        "{}",
        v["machine"]
    );
    // The offloads are back as they were.
    assert_eq!(offloads(&t), offloads_before);
}

/// Both veth ends' checksum and segmentation offloads, as ethtool shows
/// them.
fn offloads(t: &xdptcp_tools::topology::Topology) -> Vec<String> {
    let features = [
        "-checksumming:",
        "segmentation-offload:",
        "receive-offload:",
    ];
    [
        t.ours_cmd(&["ethtool", "-k", &t.dev]),
        t.peer_cmd(&["ethtool", "-k", &t.peer_dev]),
    ]
    .into_iter()
    .flat_map(|mut c| {
        let o = c.output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with(['\t', ' ']) && features.iter().any(|f| l.contains(f)))
            .map(String::from)
            .collect::<Vec<_>>()
    })
    .collect()
}

/// Checks a report: every figure measured and sane, every ratio, the
/// Markdown and the plots. Returns the JSON.
fn check_report(
    dir: &std::path::Path,
    json: &std::path::Path,
    stdout: &str,
    family: &str,
) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
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
    assert_eq!(v["machine"]["ip"], family);
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
        for name in ["line rate", "line rate tcp-shaped"] {
            let s = format!("{name} {dir}");
            assert!(get(&s, "device", "received") <= get(&s, "device", "sent") * 1.01);
            get(&s, "device", "tcp-equivalent");
        }
        // The TCP-shaped receiver answers every second frame.
        let answers = get(
            &format!("line rate tcp-shaped {dir}"),
            "device",
            "answers per frame",
        );
        assert!(
            (0.45..=0.5).contains(&answers),
            "answers per frame {answers}"
        );
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
        "line_rate_vs_kernel_no_offload",
        "bulk_vs_kernel",
        "rr64_p50_vs_kernel",
        "rr64_p99_vs_kernel",
        "rr64_p999_vs_kernel",
        "bulk_vs_line_rate",
        "tcp_shaped_vs_line_rate",
        "bulk_vs_tcp_shaped_line_rate",
        "bulk_latency_p50_vs_kernel",
        "bulk_latency_p99_vs_kernel",
        "crr_vs_kernel",
        "crr_fast_open_vs_kernel",
        "bulk_xdptcp_to_kernel_vs_kernel",
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
    let _ = std::fs::remove_dir_all(dir);
    v
}

/// A client that asks for a job and vanishes before connecting its data
/// connection must not leave `serve` waiting in accept: the job sees the
/// stop and ends, and `serve --once` exits cleanly and soon (a server
/// stuck in accept would be ended only by its 30 s watchdog, code 3).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it"]
fn serve_outlives_a_client_that_vanishes_mid_job() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::{Duration, Instant};
    xdptcp_tools::topology::require_root();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = two_hosts("vc", 201, true);
    let serve = serve_once(&t, &["--port", "5301", "--ip", "10.201.0.3/24"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run xdptcp-bench serve");
    let mut serve = Reap(serve);
    // The client's side of the control protocol, by hand, from our
    // namespace; it ends (and its connection closes) after "ready".
    let hello_and_job = || -> Result<(), String> {
        t.enter_ours().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            match std::net::TcpStream::connect("10.201.0.2:5301") {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => return Err(format!("connect: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let mut say_and_hear = |say: &str, want: &str| -> Result<(), String> {
            writeln!(w, "{say}").map_err(|e| e.to_string())?;
            line.clear();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.starts_with(want) {
                Ok(())
            } else {
                Err(format!("said {say:?}, heard {line:?}"))
            }
        };
        say_and_hear("hello cc=bbr unsent=auto mtu=1500 busy_poll=off", "hello")?;
        let job = bench::job::Job::KernelBulk {
            port: 5302,
            flows: 1,
            send_for: None,
        };
        say_and_hear(&format!("job {}", job.to_line()), "ready")
    };
    std::thread::scope(|s| s.spawn(hello_and_job).join().unwrap()).unwrap();
    let gone = Instant::now();
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break Some(st);
        }
        if gone.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = status.expect("serve --once still running 10 s after its client vanished");
    assert!(status.success(), "serve ended with {status}");
}

/// Two namespaces standing in for two hosts: the kernel has its own
/// address at both ends (the control connection uses it).
fn two_hosts(tag: &str, subnet: u8, offloads_off: bool) -> Topology {
    Topology::create_spec(
        tag,
        Spec {
            subnet,
            kernel_both: true,
            offloads_off,
            ..Spec::default()
        },
    )
    .unwrap()
}

/// `xdptcp-bench serve --once` on the peer's end, with `args` after.
fn serve_once(t: &Topology, args: &[&str]) -> std::process::Command {
    let dev = format!("afxdp:{}", t.peer_dev);
    let mut all = vec![
        env!("CARGO_BIN_EXE_xdptcp-bench"),
        "serve",
        "--once",
        "--dev",
        &dev,
    ];
    all.extend_from_slice(args);
    t.peer_cmd(&all)
}

/// A child process killed and reaped when dropped, even when a test
/// fails before it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
