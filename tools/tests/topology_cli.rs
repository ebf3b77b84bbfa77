//! `xdptcp-topology` as a user runs it: up twice (the second replaces the
//! first, as after a crash), a routed topology that passes traffic, down
//! twice (the second finds nothing and still succeeds).

use std::process::Command;

fn topo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xdptcp-topology"))
        .args(args)
        .output()
        .expect("xdptcp-topology runs")
}

fn namespaces() -> String {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
#[ignore = "needs root (namespaces): scripts/test.sh runs it as root"]
fn up_is_idempotent_routes_through_the_middle_and_down_cleans_up() {
    xdptcp_tools::topology::require_root();
    let name = format!("tt{}", std::process::id() % 100_000);
    for _ in 0..2 {
        let o = topo(&[
            "up",
            &name,
            "--subnet",
            "226",
            "--middle",
            "--kernel-both",
            "--mtu",
            "1400",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("via router"));
    }
    let ns = namespaces();
    for suffix in ["a", "b", "m"] {
        assert!(ns.contains(&format!("{name}{suffix}")), "{ns}");
    }
    // The kernel on our side reaches the peer through the router, at the MTU asked for.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{name}a"),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1372",
            "10.226.1.2",
        ])
        .output()
        .unwrap();
    let down = topo(&["down", &name]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert!(down.status.success());
    assert!(String::from_utf8_lossy(&down.stdout).contains("removed"));
    assert!(!namespaces().contains(&name));
    let again = topo(&["down", &name]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("was not there"));
    let bad = topo(&["up", "no-dashes-allowed"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `--loss` puts a random-drop rule on the router (both ways with
/// `--loss-both-ways`), `--far-mtu` narrows the router's side towards the
/// peer, and a loss without a router is refused with a message.
#[test]
#[ignore = "needs root (namespaces, iptables): scripts/test.sh runs it as root"]
fn loss_and_far_mtu_shape_the_router() {
    xdptcp_tools::topology::require_root();
    let name = format!("tl{}", std::process::id() % 100_000);
    let o = topo(&[
        "up",
        &name,
        "--subnet",
        "244",
        "--middle",
        "--loss",
        "0.25",
        "--loss-both-ways",
        "--far-mtu",
        "1280",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("drops 25% of packets both ways"));
    let router = format!("{name}m");
    let rules = Command::new("ip")
        .args(["netns", "exec", &router, "iptables", "-S", "FORWARD"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).to_string();
    let link = Command::new("ip")
        .args(["-n", &router, "link", "show", &format!("{name}m1")])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout).to_string();
    let down = topo(&["down", &name]);
    assert!(down.status.success());
    assert!(
        rules.contains("statistic") && rules.contains("0.25") && rules.contains("DROP"),
        "{rules}"
    );
    assert!(
        !rules.contains("-i "),
        "both ways: no input interface in {rules}"
    );
    assert!(link.contains("mtu 1280"), "{link}");
    let bad = topo(&["up", &name, "--loss", "0.1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("middle"));
    let _ = topo(&["down", &name]);
}
