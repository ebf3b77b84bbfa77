//! The file_transfer program as a user runs it: exit codes, the JSON
//! summary line, and byte-exact files.

use sha2::{Digest, Sha256};
use std::process::{Command, Output};
use xdptcp::simulation::DataSource;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_file_transfer"))
        .args(args)
        .output()
        .expect("file_transfer runs")
}

fn last_line(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines().last().unwrap_or_default().to_string()
}

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn impaired_transfer_succeeds_and_reports_json() {
    let o = run(&[
        "sim",
        "--size",
        "4M",
        "--loss",
        "0.05",
        "--reorder",
        "0.05",
        "--dup",
        "0.02",
        "--corrupt",
        "0.001",
        "--seed",
        "3",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let j = last_line(&o);
    assert_eq!(field(&j, "ok"), "true");
    assert_eq!(field(&j, "sha256_match"), "true");
    assert_eq!(field(&j, "bytes"), "4194304");
    assert!(
        field(&j, "retransmits").parse::<u64>().unwrap() > 0,
        "5% loss needs retransmits"
    );
    assert!(field(&j, "sim_seconds").parse::<f64>().unwrap() > 0.0);
    assert!(field(&j, "wall_seconds").parse::<f64>().is_ok());
    // The digest printed is that of the data the program generates.
    let mut data = vec![0u8; 4 << 20];
    assert_eq!(DataSource::new(3, 4 << 20).fill(&mut data), 4 << 20);
    assert_eq!(field(&j, "sha256"), hex(&Sha256::digest(&data)));
    let text = String::from_utf8_lossy(&o.stdout);
    for part in [
        "goodput",
        "retransmits",
        "final cwnd",
        "srtt",
        "result     OK",
    ] {
        assert!(text.contains(part), "summary shows {part}: {text}");
    }
}

#[test]
fn a_file_arrives_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("xdptcp-ft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, dst) = (dir.join("in.bin"), dir.join("out.bin"));
    let mut content = vec![0u8; 3 * 1000 * 1000 + 17];
    DataSource::new(99, content.len() as u64).fill(&mut content);
    std::fs::write(&src, &content).unwrap();
    let o = run(&[
        "sim",
        "--file",
        src.to_str().unwrap(),
        "--out",
        dst.to_str().unwrap(),
        "--loss",
        "0.02",
        "--json",
        "--quiet",
    ]);
    let got = std::fs::read(&dst);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(got.unwrap() == content, "output file differs from input");
}

#[test]
fn a_dead_link_fails_with_a_clear_error_and_exit_code() {
    let o = run(&["sim", "--size", "64K", "--loss", "1", "--json", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let j = last_line(&o);
    assert_eq!(field(&j, "ok"), "false");
    assert_eq!(field(&j, "sha256_match"), "false");
    // Nothing answers ARP, so the connect fails as on Linux: EHOSTUNREACH.
    assert!(field(&j, "error").contains("no route to host"), "{j}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAILED"));
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let o = run(&["sim", "--loss", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("probability"));
    let o = run(&["sim", "--size", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a size"));
    let o = run(&["sim", "--file", "/nonexistent/xdptcp-test-file"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot open"));
    let o = run(&["sim", "--cc", "vegas"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown congestion control") && err.contains("bbr"),
        "{err}"
    );
}

#[test]
fn path_and_stack_options_are_applied() {
    let o = run(&[
        "sim",
        "--size",
        "1M",
        "--rtt",
        "40ms",
        "--bandwidth",
        "100mbit",
        "--cc",
        "newreno",
        "--no-sack",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let j = last_line(&o);
    assert_eq!(field(&j, "cc"), "newreno");
    assert_eq!(field(&j, "sack_recoveries"), "0");
    // A 40 ms RTT shows in the measured smoothed RTT.
    let srtt: f64 = field(&j, "srtt_ms").parse().unwrap();
    assert!((40.0..60.0).contains(&srtt), "srtt {srtt} ms");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("options: window scale"), "{text}");
    assert!(!text.contains("SACK\n"), "SACK is off");
    let o = run(&["sim", "--rtt", "soon"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Needs root (namespaces, AF_XDP); CI runs as root.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn demo_moves_verified_data_both_ways_against_the_kernel() {
    require_root();
    let o = run(&["demo", "--size", "16M", "--json"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let j = last_line(&o);
    for leg in ["xdptcp_to_kernel", "kernel_to_xdptcp", "kernel_to_kernel"] {
        assert_eq!(field(&j, &format!("{leg}_sha256_match")), "true", "{j}");
        let mbit: f64 = field(&j, &format!("{leg}_mbit_s")).parse().unwrap();
        assert!(mbit > 1.0, "{leg}: {mbit} Mbit/s");
    }
}

/// Runs python3 in the peer's namespace: connects to our `port` as `c`
/// (retrying while our receiver starts), then runs `body`.
fn kernel_client(t: &xdptcp_tools::topology::Topology, port: u16, body: &str) -> Output {
    let program = format!(
        "import socket,struct,time,hashlib\n\
         for _ in range(100):\n  try:\n    c=socket.create_connection(('{}',{port}),timeout=2);break\n  except OSError: time.sleep(0.1)\n{body}",
        t.our_ip()
    );
    let o = t.peer_cmd(&["python3", "-c", &program]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A kernel client that sends `mib` MiB of the byte pattern `byte` (a
/// python expression in `i`), waits for our side to close, and returns the
/// SHA-256 of what it sent.
fn kernel_sends(t: &xdptcp_tools::topology::Topology, port: u16, mib: u32, byte: &str) -> String {
    let o = kernel_client(
        t,
        port,
        &format!(
            "d=bytes(({byte})&255 for i in range(1<<20));h=hashlib.sha256()\n\
             for _ in range({mib}):\n  c.sendall(d);h.update(d)\n\
             c.shutdown(socket.SHUT_WR);c.recv(1);print(h.hexdigest())"
        ),
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A kernel server on `port` in the peer's namespace that prints the
/// SHA-256 of everything one client sends; returns once it listens.
fn kernel_sink(
    t: &xdptcp_tools::topology::Topology,
    port: u16,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::io::BufRead;
    let mut sink = t
        .peer_cmd(&[
            "python3",
            "-c",
            &format!(
                "import socket,hashlib\ns=socket.socket();s.bind(('0.0.0.0',{port}));s.listen();print('ready',flush=True)\n\
                 c,_=s.accept();h=hashlib.sha256()\nwhile True:\n  b=c.recv(1<<20)\n  if not b: break\n  h.update(b)\nprint(h.hexdigest(),flush=True)"
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(sink.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (sink, out)
}

/// The digest a `sha256 ...` line of our programs' output names.
fn digest_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .find_map(|l| l.strip_prefix("sha256 ").map(str::to_string))
        .unwrap_or_default()
}

/// Starts one of our programs in our namespace, output captured.
fn spawn_ours(t: &xdptcp_tools::topology::Topology, args: &[String]) -> std::process::Child {
    t.ours_cmd(&[env!("CARGO_BIN_EXE_file_transfer")])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

use xdptcp_tools::topology::require_root;

/// `send` over AF_XDP to a kernel python3 receiver, then `recv` from a
/// kernel python3 sender; both digests match the kernel's, and the received
/// file equals what was sent.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn send_and_recv_over_afxdp_against_the_kernel() {
    require_root();
    use std::io::BufRead;
    let t = xdptcp_tools::topology::Topology::create("c", 222, false).expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let net = |args: &mut Vec<String>| {
        args.extend(
            [
                "--dev",
                &format!("afxdp:{}", t.dev),
                "--ip",
                &format!("{}/24", t.our_ip()),
                "--timeout",
                "60s",
            ]
            .map(String::from),
        )
    };

    // Ours -> kernel.
    let (mut sink, mut sink_out) = kernel_sink(&t, 5010);
    let mut args: Vec<String> = [
        "send",
        "--raw",
        "--generate",
        "1G",
        "--json",
        "--unsent-limit",
        "64K",
        "--to",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("{}:5010", t.peer_ip()));
    net(&mut args);
    let o = t.ours_cmd(&[bin]).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    // The sender's latency summary, and with --json its histogram.
    let rtt = stdout
        .lines()
        .find(|l| l.starts_with("rtt p50"))
        .unwrap_or_else(|| panic!("no RTT summary: {stdout}"));
    assert!(rtt.contains("max") && !rtt.contains("(0 samples"), "{rtt}");
    let json = stdout.lines().last().unwrap();
    for key in [
        "\"seconds\":",
        "\"rtt\":{",
        "\"p99_us\":",
        "\"histogram\":[[",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    let ours = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .unwrap()
        .to_string();
    let mut theirs = String::new();
    sink_out.read_line(&mut theirs).unwrap();
    let _ = sink.wait();
    let mut want = Sha256::new();
    let mut src = DataSource::new(1, 1 << 30);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.fill(&mut buf);
        if n == 0 {
            break;
        }
        want.update(&buf[..n]);
    }
    let want = hex(&want.finalize());
    assert_eq!(ours, want, "send's digest");
    assert_eq!(theirs.trim(), want, "the kernel's digest");
    assert!(stdout.contains("sent 1.0 GiB"), "{stdout}");

    // Kernel -> ours.
    let dir = std::env::temp_dir().join(format!("xdptcp-recv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("got.bin");
    let mut args: Vec<String> = ["recv", "--raw", "--port", "7010", "--out"]
        .map(String::from)
        .to_vec();
    args.push(out.display().to_string());
    net(&mut args);
    let recv = spawn_ours(&t, &args);
    let kernel_sha = kernel_sends(&t, 7010, 1024, "i*7");
    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stdout.contains(&format!("sha256 {kernel_sha}")), "{stdout}");
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), 1 << 30);
    assert_eq!(hex(&Sha256::digest(&got)), kernel_sha, "the file on disk");
    drop(got);
    // Nothing but the output is left in the directory.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("got.bin")]);

    // A second run refuses to overwrite it.
    let o = t.ours_cmd(&[bin]).args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));

    // A sender that resets mid-transfer: a clear error, and no output file
    // (not even a partial one under another name).
    let broken = dir.join("broken.bin");
    let mut args: Vec<String> = ["recv", "--raw", "--port", "7011", "--out"]
        .map(String::from)
        .to_vec();
    args.push(broken.display().to_string());
    net(&mut args);
    let recv = spawn_ours(&t, &args);
    kernel_client(
        &t,
        7011,
        "c.sendall(bytes(8<<20));time.sleep(0.2)\n\
         c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));c.close()",
    );
    let o = recv.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("reset"), "{err}");
    assert!(!broken.exists());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("got.bin")],
        "a partial file was left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad network arguments are explained before anything is opened.
#[test]
fn send_explains_bad_network_arguments() {
    for (dev, ip, says) in [
        ("eth0", "10.0.0.1/24", "use afxdp:IFNAME"),
        ("afxdp:nosuch0", "10.0.0.1", "ADDR/PREFIX"),
        (
            "afxdp:nosuch0",
            "10.0.0.1/24",
            "no network interface 'nosuch0'",
        ),
    ] {
        let args = ["send", "--generate", "1M", "--to", "10.0.0.2:1"];
        let o = run(&[&args[..], &["--dev", dev, "--ip", ip]].concat());
        assert_eq!(o.status.code(), Some(2), "{dev} {ip}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{dev} {ip}: {err}");
    }
}

/// A receiver killed with SIGKILL leaves no XDP program on the interface
/// (the kernel drops it with the process's BPF link), and the next run on
/// the same interface works.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_crashed_run_leaves_no_xdp_program_behind() {
    require_root();
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let t = xdptcp_tools::topology::Topology::create("k", 223, false).expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let dev = format!("afxdp:{}", t.dev);
    let ip = format!("{}/24", t.our_ip());
    let out = std::env::temp_dir().join(format!("xdptcp-crash-{}", std::process::id()));
    let mut recv = t
        .ours_cmd(&[bin, "recv", "--port", "7020", "--out"])
        .arg(&out)
        .args(["--dev", &dev, "--ip", &ip])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(recv.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    // First what the AF_XDP sockets were granted, then listening.
    assert!(line.starts_with("xdptcp: AF_XDP on"), "{line}");
    line.clear();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    let xdp_attached = || {
        let o = t
            .ours_cmd(&["ip", "link", "show", "dev", &t.dev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("xdp")
    };
    assert!(
        xdp_attached(),
        "the running receiver has its XDP program attached"
    );
    recv.kill().unwrap();
    recv.wait().unwrap();
    let gone = std::time::Instant::now();
    while xdp_attached() {
        assert!(
            gone.elapsed().as_secs() < 5,
            "XDP program still attached after the crash"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!out.exists());
    // A new run on the same interface and queue.
    let mut sink = t
        .peer_cmd(&[
            "python3",
            "-c",
            "import socket\ns=socket.socket();s.bind(('0.0.0.0',5020));s.listen();print('ready',flush=True)\n\
             c,_=s.accept();n=0\nwhile True:\n  b=c.recv(1<<20)\n  if not b: break\n  n+=len(b)\nprint(n,flush=True)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sink_out = BufReader::new(sink.stdout.take().unwrap());
    line.clear();
    sink_out.read_line(&mut line).unwrap();
    let to = format!("{}:5020", t.peer_ip());
    let o = t
        .ours_cmd(&[
            bin,
            "send",
            "--raw",
            "--generate",
            "4M",
            "--to",
            &to,
            "--dev",
            &dev,
            "--ip",
            &ip,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    line.clear();
    sink_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), (4u64 << 20).to_string());
    let _ = sink.wait();
}

/// Both ends succeeded, printed the same `algorithm` digest, and the
/// output has `bytes`.
fn same_on_both_sides(
    what: &str,
    send: &Output,
    recv: std::process::Child,
    out: &std::path::Path,
    bytes: u64,
    algorithm: &str,
) {
    let recv = recv.wait_with_output().unwrap();
    assert!(
        send.status.success() && recv.status.success(),
        "{what}: send said: {}\nrecv said: {}",
        String::from_utf8_lossy(&send.stderr),
        String::from_utf8_lossy(&recv.stderr)
    );
    let sha = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{algorithm} ")).map(str::to_string))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no digest in {}",
                    String::from_utf8_lossy(&o.stdout)
                )
            })
    };
    assert_eq!(sha(send), sha(&recv), "{what}: digests");
    if std::fs::metadata(out).unwrap().is_file() {
        assert_eq!(
            std::fs::metadata(out).unwrap().len(),
            bytes,
            "{what}: size on disk"
        );
    }
}

/// Framed transfers between two of our stacks (the receiver on the peer's
/// veth end): 1 GiB from a file to a file and 4 GiB of generated data to
/// /dev/null, never held in memory; the receiver checks length and digest
/// and confirms. Then a sender that stops early: the receiver says so and
/// keeps no file. The files live in /dev/shm where there is one: the
/// machine's disk may not have 2 GiB free (a CI run once failed so).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn framed_transfers_between_our_stacks_and_a_cut_one() {
    require_root();
    use std::process::Stdio;
    let t = xdptcp_tools::topology::Topology::create("f", 231, false).expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
    .join(format!("xdptcp-framed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Gone even if the test fails (in /dev/shm it holds memory).
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(dir.clone());
    let ours = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--dev".into(),
            format!("afxdp:{}", t.dev),
            "--ip".into(),
            format!("{}/24", t.our_ip()),
        ]);
        v.extend(["--timeout".into(), "120s".into()]);
        v
    };
    let recv = |out: &std::path::Path, port: &str| {
        t.peer_cmd(&[bin, "recv", "--port", port, "--out", out.to_str().unwrap()])
            .args([
                "--dev",
                &format!("afxdp:{}", t.peer_dev),
                "--ip",
                &format!("{}/24", t.peer_ip()),
            ])
            .args(["--timeout", "120s", "--cpus", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // 1 GiB from a file on disk.
    let input = dir.join("input.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut src = DataSource::new(9, 1 << 30);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src.fill(&mut buf);
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut f, &buf[..n]).unwrap();
        }
    }
    for (what, source, bytes) in [
        (
            "1 GiB file",
            vec![input.to_str().unwrap().to_string()],
            1u64 << 30,
        ),
        (
            "4 GiB generated",
            vec!["--generate".to_string(), "4G".to_string()],
            4 << 30,
        ),
        (
            "64 MiB framed with SHA-256",
            ["--generate", "64M", "--digest", "sha256"]
                .map(String::from)
                .to_vec(),
            64 << 20,
        ),
    ] {
        // BLAKE3 is the framed default; the receiver follows the sender.
        let algorithm = if what.contains("SHA-256") {
            "sha256"
        } else {
            "blake3"
        };
        let out = match bytes > 1 << 30 {
            true => std::path::PathBuf::from("/dev/null"),
            false => dir.join("out.bin"),
        };
        let r = recv(&out, "7030");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut args = vec!["send".to_string()];
        args.extend(source);
        args.extend(["--to".into(), format!("{}:7030", t.peer_ip())]);
        let args = ours(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let start = std::time::Instant::now();
        let s = t.ours_cmd(&[bin]).args(&args).output().unwrap();
        same_on_both_sides(what, &s, r, &out, bytes, algorithm);
        eprintln!(
            "{what}: {:.1} s, {}",
            start.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&s.stdout)
                .lines()
                .next()
                .unwrap_or("")
        );
        if out.starts_with(&dir) {
            std::fs::remove_file(&out).unwrap();
        }
    }
    // The other way: the same file from the peer's end to ours.
    let out = dir.join("back.bin");
    let r = spawn_ours(
        &t,
        &ours(&["recv", "--port", "7032", "--out", out.to_str().unwrap()]),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s = t
        .peer_cmd(&[
            bin,
            "send",
            input.to_str().unwrap(),
            "--to",
            &format!("{}:7032", t.our_ip()),
        ])
        .args([
            "--dev",
            &format!("afxdp:{}", t.peer_dev),
            "--ip",
            &format!("{}/24", t.peer_ip()),
        ])
        .args(["--timeout", "120s", "--cpus", "1"])
        .output()
        .unwrap();
    same_on_both_sides("back", &s, r, &out, 1 << 30, "blake3");
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&input).unwrap();

    // A sender that announces 64 MiB, sends 8 MiB and is gone.
    let out = dir.join("cut.bin");
    let r = spawn_ours(
        &t,
        &ours(&["recv", "--port", "7031", "--out", out.to_str().unwrap()]),
    );
    kernel_client(
        &t,
        7031,
        "c.sendall(b'XDPT\\x01'+struct.pack('>Q',64<<20));c.sendall(bytes(8<<20));c.close()",
    );
    let r = r.wait_with_output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("stopped after 8388608 of 67108864 bytes"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without privileges, and to a host that does not answer ARP: errors that
/// say what happened and what to do.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn errors_say_what_to_do() {
    require_root();
    let t = xdptcp_tools::topology::Topology::create("h", 232, false).expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let dev = format!("afxdp:{}", t.dev);
    let ip = format!("{}/24", t.our_ip());
    // As an unprivileged user (nobody), inside our namespace.
    let o = t
        .ours_cmd(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin,
        ])
        .args([
            "send",
            "--raw",
            "--generate",
            "1M",
            "--to",
            "10.232.0.2:9",
            "--dev",
            &dev,
            "--ip",
            &ip,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("permission denied") && err.contains("run with sudo"),
        "{err}"
    );
    // Nobody at .77: three ARP requests, then a clear failure.
    let o = t
        .ours_cmd(&[
            bin,
            "send",
            "--raw",
            "--generate",
            "1M",
            "--to",
            "10.232.0.77:9",
            "--dev",
            &dev,
            "--ip",
            &ip,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no route to host (no ARP reply after 3 requests)"),
        "{err}"
    );
}

/// `recv --out` on something that is not a regular file writes into it in
/// place and never renames over it: a character device (made with mknod
/// in a temporary directory, never the real /dev/null) stays a device, a
/// FIFO's reader gets the bytes in order, and `-` sends them to stdout
/// with the report on stderr.
#[test]
#[ignore = "needs root (namespaces, AF_XDP, mknod): scripts/test.sh runs it"]
fn recv_writes_devices_fifos_and_stdout_in_place() {
    require_root();
    use std::os::unix::fs::FileTypeExt;
    let t = xdptcp_tools::topology::Topology::create("o", 235, false).expect("topology");
    let dir = std::env::temp_dir().join(format!("xdptcp-outkinds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recv_args = |port: u16, out: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["recv", "--raw", "--port", &port.to_string(), "--out", out]
            .map(String::from)
            .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend([
            "--dev".into(),
            format!("afxdp:{}", t.dev),
            "--ip".into(),
            format!("{}/24", t.our_ip()),
            "--timeout".into(),
            "60s".into(),
        ]);
        v
    };
    // 8 MiB from the kernel; prints the digest of what it sent.
    // 8 MiB from the kernel; `kernel_sends` returns the digest it sent.
    let pattern = "i*13+7";

    // A character device (the null device's numbers, in our directory).
    let dev = dir.join("null");
    let st = Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod");
    let recv = spawn_ours(
        &t,
        &recv_args(7030, dev.to_str().unwrap(), &["--force", "--no-digest"]),
    );
    kernel_sends(&t, 7030, 8, pattern);
    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kind = std::fs::symlink_metadata(&dev).unwrap().file_type();
    assert!(
        kind.is_char_device(),
        "--out DEV --force replaced the device"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("received 8.0 MiB"), "{stdout}");
    assert!(stdout.contains("not computed"), "--no-digest: {stdout}");

    // A FIFO: a reader on the other end checks the digest.
    let fifo = dir.join("pipe");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success(), "mkfifo");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || hex(&Sha256::digest(std::fs::read(fifo).unwrap())))
    };
    let recv = spawn_ours(&t, &recv_args(7031, fifo.to_str().unwrap(), &[]));
    let sent = kernel_sends(&t, 7031, 8, pattern);
    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(reader.join().unwrap(), sent, "what the FIFO's reader got");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("sha256 {sent}")));
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO is still a FIFO");

    // Standard output carries the data; the report goes to stderr.
    // The pipe must be read while the data flows: read it concurrently.
    let recv = spawn_ours(&t, &recv_args(7032, "-", &[]));
    let reading = std::thread::spawn(move || recv.wait_with_output().unwrap());
    let sent = kernel_sends(&t, 7032, 8, pattern);
    let o = reading.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len(), 8 << 20);
    assert_eq!(hex(&Sha256::digest(&o.stdout)), sent, "stdout's bytes");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("sha256 {sent}")));

    // Nothing else appeared in the directory (no temporary files).
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["null", "pipe"]);

    // A missing directory fails before anything is opened, naming it.
    let o = t
        .ours_cmd(&[env!("CARGO_BIN_EXE_file_transfer")])
        .args(recv_args(7033, "/nonexistent-xdptcp/dir/out.bin", &[]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent-xdptcp/dir"), "{err}");
    assert!(!err.contains("listening"), "failed before starting: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A veth pair left with its default offloads (transmit checksum offload
/// on, as after a plain `ip link add ... type veth`): the kernel peer's
/// segments arrive with unfinished checksums. By default (auto: trust
/// them on veth) transfers work both ways and stderr says what was seen
/// and how to change it; with `--rx-checksum verify` the connection fails
/// and the error names checksum offload and the command that fixes it.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn veth_with_default_offloads_works_or_names_the_fix() {
    require_root();
    use std::io::BufRead;
    use xdptcp_tools::topology::{Spec, Topology};
    let t = Topology::create_spec(
        "v",
        Spec {
            subnet: 238,
            offloads_off: false,
            ..Spec::default()
        },
    )
    .expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let net = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--dev".into(),
            format!("afxdp:{}", t.dev),
            "--ip".into(),
            format!("{}/24", t.our_ip()),
        ]);
        v
    };
    // We connect to the kernel.
    let (mut sink, mut sink_out) = kernel_sink(&t, 5040);
    let to = format!("{}:5040", t.peer_ip());
    let o = t
        .ours_cmd(&[bin])
        .args(net(&[
            "send",
            "--raw",
            "--generate",
            "16M",
            "--to",
            &to,
            "--timeout",
            "60s",
        ]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut theirs = String::new();
    sink_out.read_line(&mut theirs).unwrap();
    let _ = sink.wait();
    assert_eq!(
        digest_line(&o.stdout),
        theirs.trim(),
        "the kernel got it all"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unfinished checksums") && err.contains("ethtool -K"),
        "the user is told once: {err}"
    );

    // The kernel connects to us.
    let out = std::env::temp_dir().join(format!("xdptcp-offload-{}", std::process::id()));
    let mut args = net(&[
        "recv",
        "--raw",
        "--port",
        "7040",
        "--force",
        "--timeout",
        "60s",
    ]);
    args.extend(["--out".into(), out.display().to_string()]);
    let recv = spawn_ours(&t, &args);
    let sent = kernel_sends(&t, 7040, 16, "i*5");
    let o = recv.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(digest_line(&o.stdout), sent);

    // Refusing them: the connection cannot be made, and the error says why.
    let (mut sink, _) = kernel_sink(&t, 5041);
    let to = format!("{}:5041", t.peer_ip());
    let o = t
        .ours_cmd(&[bin])
        .args(net(&[
            "send",
            "--raw",
            "--generate",
            "1M",
            "--to",
            &to,
            "--rx-checksum",
            "verify",
            "--timeout",
            "4s",
        ]))
        .output()
        .unwrap();
    let _ = sink.kill();
    let _ = sink.wait();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("DROPPING") && err.contains("checksum offload") && err.contains("ethtool -K"),
        "{err}"
    );
}

/// A receiver that cannot write its output (`/dev/full`: no space left)
/// tells the sender why, and the sender stops soon with that reason rather
/// than "connection reset by peer" (or sending the rest for nothing).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_receiver_that_cannot_write_tells_the_sender_why() {
    require_root();
    let t = xdptcp_tools::topology::Topology::create("fu", 251, false).expect("topology");
    let bin = env!("CARGO_BIN_EXE_file_transfer");
    let r = t
        .peer_cmd(&[bin, "recv", "--port", "7040", "--out", "/dev/full"])
        .args([
            "--dev",
            &format!("afxdp:{}", t.peer_dev),
            "--ip",
            &format!("{}/24", t.peer_ip()),
        ])
        .args(["--timeout", "60s", "--cpus", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s = t
        .ours_cmd(&[bin, "send", "--generate", "1G"])
        .args(["--to", &format!("{}:7040", t.peer_ip())])
        .args([
            "--dev",
            &format!("afxdp:{}", t.dev),
            "--ip",
            &format!("{}/24", t.our_ip()),
        ])
        .args(["--timeout", "60s"])
        .output()
        .unwrap();
    let r = r.wait_with_output().unwrap();
    let (s_err, r_err) = (
        String::from_utf8_lossy(&s.stderr),
        String::from_utf8_lossy(&r.stderr),
    );
    eprintln!("send: {s_err}\nrecv: {r_err}");
    assert!(
        !r.status.success() && r_err.contains("No space left"),
        "{r_err}"
    );
    assert!(!s.status.success(), "{s_err}");
    assert!(
        s_err.contains("the receiver failed") && s_err.contains("No space left"),
        "the sender should say why: {s_err}"
    );
    // It stopped at the receiver's word, not after the whole gigabyte.
    let sent: u64 = s_err
        .split("failed after ")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {s_err}"));
    assert!(sent < 256 << 20, "sent {sent} bytes to a failed receiver");
}
