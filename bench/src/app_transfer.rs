//! The file-transfer application itself, file to file, between two of
//! our stacks: `file_transfer recv` in the peer namespace and
//! `file_transfer send` in ours, each on its own veth end over AF_XDP,
//! with the framed protocol (length and SHA-256 checked by the receiver).
//! Files live in /dev/shm, so the disk is not what is measured.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp_tools::topology::{Spec, Topology};

#[derive(Debug, Clone, Copy)]
pub struct AppTransfer {
    pub mbit: f64,
    pub bytes: u64,
    pub secs: f64,
    /// The sender's RTT samples: p50 and p99, microseconds.
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
}

/// The number after `"key":` in a JSON line (the sender's `--json`).
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// The `file_transfer` binary beside this one (same target directory).
fn binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.with_file_name("file_transfer");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p apps`",
            p.display()
        ))
    }
}

/// A `size`-byte file through the application; `subnet` for its
/// topology; with `ipv6` both ends have only IPv6 addresses.
pub fn run(
    size: u64,
    subnet: u8,
    port: u16,
    cc: Algorithm,
    mtu: u32,
    ipv6: bool,
) -> Result<AppTransfer, String> {
    let bin = binary()?;
    let t = Topology::create_spec(
        "bf",
        Spec {
            subnet,
            mtu,
            ..Spec::default()
        },
    )
    .map_err(|e| format!("topology: {e}"))?;
    let dir = std::env::temp_dir().join(format!("xdptcp-bench-{}", std::process::id()));
    let shm = PathBuf::from("/dev/shm").join(format!("xdptcp-bench-{}", std::process::id()));
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        shm
    } else {
        dir
    };
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    // In /dev/shm its files hold memory: gone on Ctrl-C too.
    xdptcp_tools::shutdown::remove_on_signal(&base);
    let frame = if mtu + 14 > 2048 { "4096" } else { "2048" };
    let result = transfer(&t, &bin, &base, size, (port, ipv6), cc, frame);
    let _ = std::fs::remove_dir_all(&base);
    xdptcp_tools::shutdown::keep_on_signal(&base);
    result
}

fn transfer(
    t: &Topology,
    bin: &std::path::Path,
    dir: &std::path::Path,
    size: u64,
    (port, ipv6): (u16, bool),
    cc: Algorithm,
    frame: &str,
) -> Result<AppTransfer, String> {
    let cc = format!("{cc:?}").to_lowercase();
    let src = dir.join("source");
    let dst = dir.join("received");
    write_source(&src, size)?;
    let o = t.peer_ip().octets();
    let n = t.subnet;
    // Each end's --ip, and where the sender connects.
    let (server_ip, client_ip, to) = if ipv6 {
        let server = format!("fd00:{n}::3");
        let to = format!("[{server}]:{port}");
        (format!("{server}/64"), format!("fd00:{n}::1/64"), to)
    } else {
        let server = format!("{}.{}.{}.3", o[0], o[1], o[2]);
        let to = format!("{server}:{port}");
        (format!("{server}/24"), format!("{}/24", t.our_ip()), to)
    };
    let bin = bin.to_str().ok_or("binary path is not UTF-8")?;
    let mut recv = t
        .peer_cmd(&[
            bin,
            "recv",
            "--dev",
            &format!("afxdp:{}", t.peer_dev),
            "--ip",
            &server_ip,
            "--port",
            &port.to_string(),
            "--out",
            dst.to_str().ok_or("path")?,
            "--force",
            "--cpus",
            "1",
            "--frame-size",
            frame,
            "--timeout",
            "120s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting file_transfer recv: {e}"))?;
    // Wait for "listening".
    let mut err = BufReader::new(recv.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            let _ = recv.wait();
            return Err("file_transfer recv ended before listening".into());
        }
        if line.contains("listening") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let send = t
        .ours_cmd(&[
            bin,
            "send",
            "--dev",
            &format!("afxdp:{}", t.dev),
            "--ip",
            &client_ip,
            "--to",
            &to,
            "--cpus",
            "0",
            "--frame-size",
            frame,
            "--cc",
            &cc,
            "--timeout",
            "120s",
            "--json",
            src.to_str().ok_or("path")?,
        ])
        .output()
        .map_err(|e| format!("starting file_transfer send: {e}"))?;
    let recv_out = recv.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&send.stdout);
    if !send.status.success() || !recv_out.status.success() {
        return Err(format!(
            "file_transfer failed: send: {} {}; recv: {}",
            stdout.trim(),
            String::from_utf8_lossy(&send.stderr).trim(),
            String::from_utf8_lossy(&recv_out.stdout).trim()
        ));
    }
    let got = std::fs::metadata(&dst).map_err(|e| e.to_string())?.len();
    if got != size {
        return Err(format!("{got} of {size} bytes arrived"));
    }
    // The sender's JSON line: the time from its connection's establishment
    // to the receiver's confirmation, at full precision.
    let json = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no JSON in the sender's report: {stdout}"))?;
    let secs = json_number(json, "seconds")
        .filter(|s| *s > 0.0)
        .ok_or_else(|| format!("no time in the sender's report: {json}"))?;
    Ok(AppTransfer {
        mbit: size as f64 * 8.0 / secs / 1e6,
        bytes: size,
        secs,
        rtt_p50_us: json_number(json, "p50_us").unwrap_or(f64::NAN),
        rtt_p99_us: json_number(json, "p99_us").unwrap_or(f64::NAN),
    })
}

fn write_source(path: &std::path::Path, size: u64) -> Result<(), String> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut src = xdptcp::simulation::DataSource::new(7, size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.fill(&mut buf);
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}
