//! The file-transfer application itself, file to file, between two of
//! our stacks: `file_transfer recv` at the server end (a job, `job.rs`)
//! and `file_transfer send` at the client end, each over AF_XDP, with the
//! framed protocol (length and SHA-256 checked by the receiver). Files
//! live in /dev/shm, so the disk is not what is measured.

use crate::bed::{Bed, End};
use crate::job::{Job, Outcome, Serving};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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

/// A scratch directory for this process's files, in /dev/shm where
/// there is one (so the disk is not what is measured), removed on Ctrl-C
/// too; `done` with it removes it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch, String> {
        let name = format!("xdptcp-bench-{what}-{}", std::process::id());
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm.join(name)
        } else {
            std::env::temp_dir().join(name)
        };
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        // In /dev/shm its files hold memory: gone on Ctrl-C too.
        xdptcp_tools::shutdown::remove_on_signal(&base);
        Ok(Scratch(base))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        xdptcp_tools::shutdown::keep_on_signal(&self.0);
    }
}

/// `bin args` at `end`: inside its namespace, if it has one.
fn command(end: &End, bin: &str, args: &[&str]) -> Command {
    match &end.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]).args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    }
}

/// `--ip` for our stack at `end`.
fn ip_arg(end: &End) -> String {
    match end.ours6 {
        Some((a, p)) => format!("{a}/{p}"),
        None => format!("{}/{}", end.ours.0, end.ours.1),
    }
}

/// A `size`-byte file through the application, between our stacks on
/// the bed's two ends (a bed of ours at both ends).
pub fn run(bed: &Bed, size: u64, port: u16) -> Result<AppTransfer, String> {
    let bin = binary()?;
    let bin = bin.to_str().ok_or("binary path is not UTF-8")?;
    let dir = Scratch::new("send")?;
    let src = dir.0.join("source");
    write_source(&src, size)?;
    let c = &bed.client;
    let cc = format!("{:?}", bed.settings.cc).to_lowercase();
    let to = SocketAddr::new(bed.server.ours_addr(), port).to_string();
    let (send, _) = bed.with_server(Job::FileRecv { port, size }, |_| {
        command(
            c,
            bin,
            &[
                "send",
                "--dev",
                &format!("afxdp:{}", c.dev),
                "--ip",
                &ip_arg(c),
                "--to",
                &to,
                "--cpus",
                &c.cpu.to_string(),
                "--frame-size",
                &bed.settings.frame_size().to_string(),
                "--cc",
                &cc,
                "--timeout",
                "120s",
                "--json",
                src.to_str().ok_or("path")?,
            ],
        )
        .output()
        .map_err(|e| format!("starting file_transfer send: {e}"))
    })?;
    let stdout = String::from_utf8_lossy(&send.stdout);
    if !send.status.success() {
        return Err(format!(
            "file_transfer send failed: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&send.stderr).trim(),
        ));
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

/// The server half: `file_transfer recv` into a scratch file (which
/// checks length and SHA-256), ready once it listens; the file must have
/// all `size` bytes.
pub fn recv(s: &Serving<'_>, port: u16, size: u64) -> Result<Outcome, String> {
    let bin = binary()?;
    let bin = bin.to_str().ok_or("binary path is not UTF-8")?;
    let dir = Scratch::new("recv")?;
    let dst = dir.0.join("received");
    let e = s.end;
    let mut recv = command(
        e,
        bin,
        &[
            "recv",
            "--dev",
            &format!("afxdp:{}", e.dev),
            "--ip",
            &ip_arg(e),
            "--port",
            &port.to_string(),
            "--out",
            dst.to_str().ok_or("path")?,
            "--force",
            "--cpus",
            &e.cpu.to_string(),
            "--frame-size",
            &s.settings.frame_size().to_string(),
            "--timeout",
            "120s",
        ],
    )
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
    s.ready();
    let errors = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        rest
    });
    let out = recv.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = errors.join().unwrap_or_default();
    if !out.status.success() {
        return Err(format!(
            "file_transfer recv failed: {} {}",
            String::from_utf8_lossy(&out.stdout).trim(),
            stderr.trim()
        ));
    }
    let got = std::fs::metadata(&dst).map_err(|e| e.to_string())?.len();
    if got != size {
        return Err(format!("{got} of {size} bytes arrived"));
    }
    Ok(Outcome {
        bytes: got,
        ..Outcome::default()
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
