//! SIGINT and SIGTERM stop our programs cleanly: the XDP program and the
//! queue are released (a restart binds the same queue at once), the
//! namespaces a program made are removed, and it says so; a second
//! signal stops it at once. Needs root (namespaces, AF_XDP).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xdptcp_tools::topology::{require_root, Topology};

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

/// Waits at most `limit` for `child` to exit; its exit code and stderr.
fn wait(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// echo_server on our end of `t`, once it says it listens.
fn echo_server(t: &Topology) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &t.ours, env!("CARGO_BIN_EXE_echo_server")])
        .args(["--port", "7", "--timeout", "60s", "--cpus", "1"])
        .args(["--dev", &format!("afxdp:{}", t.dev)])
        .args(["--ip", &format!("{}/24", t.our_ip())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    // First what the AF_XDP sockets were granted, then listening.
    assert!(line.starts_with("xdptcp: AF_XDP on"), "{line}");
    line.clear();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    child.stderr = Some(err.into_inner());
    child
}

fn xdp_attached(t: &Topology) -> bool {
    let o = Command::new("ip")
        .args(["-n", &t.ours, "link", "show", "dev", &t.dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).contains("xdp")
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_signal_releases_the_queue_and_a_second_one_stops_at_once() {
    require_root();
    let t = Topology::create("g", 238, false).expect("topology");
    for sig in ["INT", "TERM"] {
        let server = echo_server(&t);
        assert!(xdp_attached(&t), "the server attached its XDP program");
        signal(&server, sig);
        let (code, err) = wait(server, Duration::from_secs(10));
        assert_eq!(code, Some(130), "SIG{sig}: {err}");
        assert!(
            err.contains("interrupted") && err.contains("stopped by a signal"),
            "{err}"
        );
        assert!(
            !xdp_attached(&t),
            "SIG{sig}: the XDP program was left attached"
        );
    }
    // The queue is free at once: a restart binds it, and two signals in a
    // row stop it without waiting for anything.
    let server = echo_server(&t);
    signal(&server, "INT");
    signal(&server, "INT");
    let (code, _) = wait(server, Duration::from_secs(10));
    assert_eq!(code, Some(130));
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_signal_during_the_demo_removes_the_namespaces_it_made() {
    require_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_file_transfer"))
        .args(["demo", "--size", "4096M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let demo_file = std::env::temp_dir().join(format!("xdptcp-demo-{}.bin", child.id()));
    let pid = child.id() % 100_000;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("namespaces") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
    }
    let made = |prefix: &str| -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ours = format!("xd{pid}n");
    let reference = format!("xk{pid}n");
    assert!(
        !made(&ours).is_empty() && !made(&reference).is_empty(),
        "{line}"
    );
    signal(&child, "INT");
    let (code, err) = wait(child, Duration::from_secs(20));
    let left: Vec<String> = [made(&ours), made(&reference)].concat();
    for ns in &left {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    let file_left = demo_file.exists();
    let _ = std::fs::remove_file(&demo_file);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("removing the namespaces"), "{err}");
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    // Its 4 GiB file too (each interrupted run left one behind before).
    assert!(!file_left, "{} left behind", demo_file.display());
}
