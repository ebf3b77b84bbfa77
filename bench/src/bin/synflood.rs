//! A SYN flood against our echo server and against the kernel's, in one
//! run: `hping3 -S --flood --rand-source` from the peer namespace (spoofed
//! random sources) for `--seconds`, while a real client in the same
//! namespace connects every 50 ms, sends 5 bytes and reads them back
//! (1 s to do it). Prints how many of its attempts succeeded, their
//! latency, our stack's SYN-cookie counters and this process's resident
//! memory before and after.
//!
//! Usage (root; hping3 from scripts/deps.sh): synflood [--seconds 10]

use apps::echo::EchoServer;
use clap::Parser;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdptcp::api::config::StackConfig;
use xdptcp::api::percore::Dispatch;
use xdptcp::api::Runtime;
use xdptcp_tools::topology::{Spec, Topology};

const PORT: u16 = 7;

/// A SYN flood against our echo server and against the kernel's, in one
/// run (root; hping3).
#[derive(Parser)]
#[command(name = "synflood")]
struct Args {
    /// How long the flood lasts, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    xdptcp_tools::shutdown::on_signal_clean_up("synflood");
    if let Err(e) = run(args.seconds) {
        eprintln!("synflood: {e}");
        std::process::exit(2);
    }
}

fn run(secs: u64) -> Result<(), String> {
    if !xdptcp_tools::topology::is_root() {
        return Err("needs root (namespaces, AF_XDP, raw sockets): run with sudo".into());
    }
    if std::process::Command::new("hping3")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("hping3 is not installed (bash scripts/deps.sh installs it)".into());
    }
    let dur = Duration::from_secs(secs);
    println!("{secs} s of hping3 -S --flood --rand-source from the peer namespace; a real client connects every 50 ms");
    println!(
        "  {:<8} {:>10} {:>9} {:>9} {:>12} {:>14}",
        "server", "succeeded", "p50 ms", "max ms", "cookies", "RSS MiB"
    );
    // Our stack: the per-core echo server.
    let t = Topology::create_spec(
        "sf",
        Spec {
            subnet: 236,
            ..Spec::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let rt = std::thread::scope(|s| {
        s.spawn(|| -> Result<Runtime<Dispatch<EchoServer>>, String> {
            t.enter_ours().map_err(|e| e.to_string())?;
            let cfg = StackConfig::new(&t.dev, t.our_ip(), 24)
                .map_err(|e| e.to_string())?
                .pin(Some(vec![0]));
            Runtime::start(cfg, |_| {
                Dispatch::new(EchoServer {
                    port: PORT,
                    served: Arc::new(AtomicUsize::new(0)),
                    max_conns: 0,
                    errors: Vec::new(),
                    bytes: 0,
                })
            })
            .map_err(|e| e.to_string())
        })
        .join()
        .map_err(|_| "starting our stack panicked".to_string())?
    })?;
    let rss0 = rss_mib();
    let ours = flood(&t, SocketAddrV4::new(t.our_ip(), PORT), dur)?;
    let rss1 = rss_mib();
    let cookies = rt
        .snapshot(Duration::from_secs(1))
        .iter()
        .map(|c| {
            (
                c.iface.tcp_syn_cookies_sent,
                c.iface.tcp_syn_cookies_accepted,
            )
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    drop(rt.stop());
    report(
        "xdptcp",
        &ours,
        &format!("{}/{}", cookies.1, cookies.0),
        &format!("{rss0:.0} -> {rss1:.0}"),
    );
    drop(t);
    // The kernel, SYN cookies as configured (on by default).
    let k = Topology::create_spec(
        "sk",
        Spec {
            subnet: 237,
            kernel_both: true,
            ..Spec::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let addr = SocketAddrV4::new(k.our_ip(), PORT);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let kernel = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (k, stop) = (&k, &stop);
        s.spawn(move || -> std::io::Result<()> {
            k.enter_ours()?;
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            let _ = ready_tx.send(());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                c.set_nonblocking(false)?;
                std::thread::spawn(move || {
                    let mut b = [0u8; 64];
                    while let Ok(n) = c.read(&mut b) {
                        if n == 0 || c.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Ok(())
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the kernel server did not start".to_string())?;
        let r = flood(k, addr, dur);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    let syncookies =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syncookies").unwrap_or_default();
    report(
        "kernel",
        &kernel,
        &format!("sysctl {}", syncookies.trim()),
        "-",
    );
    Ok(())
}

struct Attempts {
    ok: usize,
    total: usize,
    latencies: Vec<Duration>,
}

fn report(who: &str, a: &Attempts, cookies: &str, rss: &str) {
    let mut l = a.latencies.clone();
    l.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "  {:<8} {:>10} {:>9.2} {:>9.2} {:>12} {:>14}",
        who,
        format!("{}/{}", a.ok, a.total),
        ms(l.get(l.len() / 2)),
        ms(l.last()),
        cookies,
        rss
    );
}

/// The flood and the real client, both from the peer namespace.
fn flood(t: &Topology, to: SocketAddrV4, dur: Duration) -> Result<Attempts, String> {
    let mut hping = t
        .peer_cmd(&[
            "timeout",
            &format!("{}", dur.as_secs() + 1),
            "hping3",
            "-S",
            "--flood",
            "--rand-source",
            "-p",
            &PORT.to_string(),
            &to.ip().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("hping3: {e}"))?;
    // Let the flood fill every queue first.
    std::thread::sleep(Duration::from_millis(500));
    let a = std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<Attempts> {
            t.enter_peer()?;
            let mut a = Attempts {
                ok: 0,
                total: 0,
                latencies: Vec::new(),
            };
            let end = Instant::now() + dur - Duration::from_millis(500);
            while Instant::now() < end {
                a.total += 1;
                let start = Instant::now();
                let attempt = || -> std::io::Result<()> {
                    let mut c = TcpStream::connect_timeout(&to.into(), Duration::from_secs(1))?;
                    c.set_read_timeout(Some(Duration::from_secs(1)))?;
                    c.write_all(b"hello")?;
                    let mut b = [0u8; 5];
                    c.read_exact(&mut b)?;
                    if &b != b"hello" {
                        return Err(std::io::Error::other("echo differs"));
                    }
                    Ok(())
                };
                if attempt().is_ok() {
                    a.ok += 1;
                    a.latencies.push(start.elapsed());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(a)
        })
        .join()
    });
    let a = a
        .map_err(|_| "the client panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = hping.wait();
    Ok(a)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
