//! echo_server and echo_client over AF_XDP, against each other and against
//! Linux peers (socat's echo, a python3 client), message sizes 1 B to 1 MiB.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use xdptcp_tools::topology::{require_root, Topology};

fn client(t: &Topology, to: &str, size: &str, count: &str, conns: &str) -> std::process::Output {
    t.ours_cmd(&[env!("CARGO_BIN_EXE_echo_client")])
        .args([
            "--to", to, "--size", size, "--count", count, "--conns", conns,
        ])
        .args([
            "--dev",
            &format!("afxdp:{}", t.dev),
            "--ip",
            &format!("{}/24", t.our_ip()),
        ])
        .args(["--timeout", "60s"])
        .output()
        .unwrap()
}

fn assert_ok(o: &std::process::Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success() && out.contains("result OK"),
        "{what}: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{what}:\n{out}");
    out
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn echo_works_against_linux_and_against_ourselves() {
    require_root();
    let t = Topology::create("e", 227, false).expect("topology");
    let peer = format!("{}:7", t.peer_ip());

    // Our client against socat's echo in the kernel's namespace.
    let mut socat = t
        .peer_cmd(&["socat", "TCP-LISTEN:7,fork,reuseaddr", "EXEC:cat"])
        .spawn()
        .expect("socat (installed by scripts/deps.sh)");
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (size, count, conns) in [("1", "500", "1"), ("64K", "20", "4"), ("1M", "5", "2")] {
        let o = client(&t, &peer, size, count, conns);
        let out = assert_ok(
            &o,
            &format!("xdptcp client -> socat, {size} x {count} x {conns}"),
        );
        let rounds: u64 = count.parse::<u64>().unwrap() * conns.parse::<u64>().unwrap();
        assert!(out.starts_with(&format!("{rounds} messages")), "{out}");
        assert!(out.contains("round trip (us): p50"), "{out}");
    }
    let _ = socat.kill();
    let _ = socat.wait();

    // A python3 client in the kernel against our server. It reads while it
    // writes (a thread sends): a client that writes a whole 1 MiB message
    // before reading depends on both ends' buffers holding it, and once
    // stalled here for its 20 s timeout.
    let server = |max: &str, ns_dev: (&str, &str, String)| {
        let (ns, dev, ip) = ns_dev;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_echo_server")])
            .args([
                "--port",
                "7",
                "--max-conns",
                max,
                "--timeout",
                "60s",
                "--cpus",
                "1",
            ])
            .args(["--dev", &format!("afxdp:{dev}"), "--ip", &ip])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        // First what the AF_XDP sockets were granted, then listening.
        assert!(line.starts_with("xdptcp: AF_XDP on"), "{line}");
        line.clear();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "{line}");
        child
    };
    let srv = server("3", (&t.ours, &t.dev, format!("{}/24", t.our_ip())));
    let py = t
        .peer_cmd(&[
            "python3",
            "-c",
            &format!(
                "import socket,os,threading\n\
                 for size in (1, 65536, 1<<20):\n  c=socket.create_connection(('{}',7),timeout=20);d=os.urandom(size)\n  for _ in range(5):\n    w=threading.Thread(target=c.sendall,args=(d,));w.start();r=b''\n    while len(r)<size: r+=c.recv(1<<20)\n    w.join();assert r==d, size\n  c.shutdown(socket.SHUT_WR);assert c.recv(10)==b'';c.close()\n\
                 print('python ok')",
                t.our_ip()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&py.stdout).contains("python ok"),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let o = srv.wait_with_output().unwrap();
    assert!(o.status.success());
    let expected = 5 * (1 + 65536 + (1 << 20));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("served 3 connection(s), echoed {expected} bytes")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Ourselves on both ends: our server takes the peer's veth end.
    let srv = server("3", (&t.peer, &t.peer_dev, format!("{}/24", t.peer_ip())));
    let o = client(&t, &peer, "100K", "50", "3");
    assert_ok(&o, "xdptcp client -> xdptcp server, 100K x 50 x 3");
    assert!(srv.wait_with_output().unwrap().status.success());
}

/// An IPv6 address given with a second --ip: the kernel peer's ping -6
/// reaches our stack (Neighbor Discovery and echo), and the one echo
/// server serves TCP over both families at once.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_dual_stack_echo_server_answers_ping6_and_tcp_of_both_families() {
    require_root();
    let t = Topology::create("e6", 221, false).expect("topology");
    let n = t.subnet;
    let (ours, peer) = (format!("fd00:{n}::10"), format!("fd00:{n}::2"));
    t.add_kernel_address(true, &format!("{peer}/64")).unwrap();
    let mut srv = t
        .ours_cmd(&[env!("CARGO_BIN_EXE_echo_server")])
        .args([
            "--port",
            "7",
            "--max-conns",
            "2",
            "--timeout",
            "60s",
            "--cpus",
            "1",
        ])
        .args(["--dev", &format!("afxdp:{}", t.dev)])
        .args([
            "--ip",
            &format!("{}/24", t.our_ip()),
            "--ip",
            &format!("{ours}/64"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(srv.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    // First what the AF_XDP sockets were granted, then listening.
    assert!(line.starts_with("xdptcp: AF_XDP on"), "{line}");
    line.clear();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    let ping = t
        .peer_cmd(&["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &ours])
        .output()
        .unwrap();
    // A TCP echo over each family, open at once; the two end the server
    // (--max-conns 2).
    let py = t
        .peer_cmd(&[
            "python3",
            "-c",
            &format!(
                "import socket\n\
                 a=socket.create_connection(('{}',7),timeout=20)\n\
                 b=socket.create_connection(('{ours}',7),timeout=20)\n\
                 assert b.family==socket.AF_INET6\n\
                 for c,m in ((a,b'four'),(b,b'six')):\n  c.sendall(m);assert c.recv(10)==m\n\
                 a.close();b.close();print('ok')",
                t.our_ip()
            ),
        ])
        .output()
        .unwrap();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        ping.status.success(),
        "ping -6: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert!(
        String::from_utf8_lossy(&py.stdout).contains("ok"),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
}

/// What each program got from the kernel comes first on its stderr: our
/// server asks for driver mode (zero-copy where the driver has it: veth
/// has not, so it says so and falls back to copy mode) and preferred busy
/// polling; the client takes the defaults. The echo works either way.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn each_program_reports_the_mode_it_got_and_busy_polling_serves() {
    require_root();
    let t = Topology::create("em", 205, false).expect("topology");
    let mut srv = t
        .peer_cmd(&[env!("CARGO_BIN_EXE_echo_server")])
        .args(["--port", "7", "--max-conns", "1", "--timeout", "60s"])
        .args(["--cpus", "1", "--xdp-mode", "driver", "--busy-poll", "50"])
        .args(["--dev", &format!("afxdp:{}", t.peer_dev)])
        .args(["--ip", &format!("{}/24", t.peer_ip())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(srv.stderr.take().unwrap());
    let mut first = Vec::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "{first:?}");
        if line.contains("listening") {
            break;
        }
        first.push(line);
    }
    let first = first.concat();
    assert!(
        first.contains("offers no zero-copy AF_XDP here; running in copy mode"),
        "{first}"
    );
    assert!(
        first.contains(&format!(
            "xdptcp: AF_XDP on {} (1 queue(s)): copy mode, driver XDP, busy poll 50 us (budget 64)",
            t.peer_dev
        )),
        "{first}"
    );
    let o = client(&t, &format!("{}:7", t.peer_ip()), "64K", "50", "1");
    assert_ok(
        &o,
        "xdptcp client -> xdptcp server in driver mode with busy polling",
    );
    let client_err = String::from_utf8_lossy(&o.stderr);
    assert!(
        client_err
            .lines()
            .next()
            .is_some_and(|l| l.contains("): copy mode, generic XDP, busy poll off")),
        "{client_err}"
    );
    assert!(srv.wait().unwrap().success());
}
