//! Our stack against the Linux kernel over AF_XDP, with a kernel-to-kernel
//! transfer on an identical veth pair as the reference. The kernel's side
//! is always the same python3 socket program, so the only difference
//! between runs is whose TCP/IP stack sits at our end.

use crate::digest::Algorithm;
use crate::stream::{Progress, RecvApp, SendApp, SinkFactory};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use xdptcp::api::config::{StackConfig, TcpConfig, XdpMode};
use xdptcp::api::percore::Dispatch;
use xdptcp::api::{CoreApp, Runtime};
use xdptcp::simulation::DataSource;
use xdptcp_tools::topology::Topology;

const PORT: u16 = 5001;
const LIMIT: Duration = Duration::from_secs(120);

/// One direction's result.
pub struct Leg {
    pub name: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    pub sha_match: bool,
}

impl Leg {
    pub fn mbit_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.seconds / 1e6
    }
}

/// Receives, counts and hashes; prints "ready", then "<bytes> <sha256>".
const PY_SINK: &str = "import socket,hashlib\n\
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind(('0.0.0.0',PORT));s.listen();print('ready',flush=True)\n\
c,_=s.accept();h=hashlib.sha256();n=0\n\
while True:\n  b=c.recv(1<<20)\n  if not b: break\n  h.update(b);n+=len(b)\n\
c.sendall(h.hexdigest().encode());c.close();print(n,h.hexdigest(),flush=True)";

/// Sends the file FILE to HOST, prints "<seconds> <sha256>" timed from
/// connect to the receiver's close.
const PY_SOURCE: &str = "import socket,hashlib,time\n\
f=open('FILE','rb');h=hashlib.sha256()\n\
t=time.monotonic();s=socket.create_connection(('HOST',PORT))\n\
while True:\n  d=f.read(1<<20)\n  if not d: break\n  s.sendall(d);h.update(d)\n\
s.shutdown(socket.SHUT_WR)\n\
while s.recv(65536): pass\n\
print(time.monotonic()-t,h.hexdigest(),flush=True)";

fn py(src: &str, host: &str, file: &Path) -> String {
    src.replace("PORT", &PORT.to_string())
        .replace("HOST", host)
        .replace("FILE", &file.display().to_string())
}

/// The file every leg moves: `bytes` of generated data in a temporary
/// file, removed when this is dropped.
pub struct DemoFile(pub PathBuf);

impl DemoFile {
    pub fn create(bytes: u64) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("xdptcp-demo-{}.bin", std::process::id()));
        xdptcp_tools::shutdown::remove_on_signal(&path);
        let f = DemoFile(path);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&f.0).map_err(|e| format!("{}: {e}", f.0.display()))?,
        );
        std::io::copy(&mut DataSource::new(7, bytes), &mut out)
            .and_then(|_| out.flush())
            .map_err(|e| format!("writing {}: {e}", f.0.display()))?;
        Ok(f)
    }
}

impl Drop for DemoFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        xdptcp_tools::shutdown::keep_on_signal(&self.0);
    }
}

fn spawn_sink(
    cmd: &mut std::process::Command,
) -> Result<(Child, BufReader<std::process::ChildStdout>), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting python3: {e}"))?;
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        return Err("the python3 receiver did not start".into());
    }
    Ok((child, out))
}

/// Our stack's runtime on `queues` queues of our end of `t`, with 4 MiB
/// socket buffers. The calling thread must be in our namespace.
fn runtime<A: CoreApp>(
    t: &Topology,
    queues: u32,
    make_app: impl FnMut(usize) -> A,
) -> Result<Runtime<A>, String> {
    let mut cfg = StackConfig::new(&t.dev, t.our_ip(), 24)
        .map_err(|e| e.to_string())?
        .queues(queues)
        .tcp(TcpConfig {
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            ..TcpConfig::default()
        });
    // veth spreads frames over its queues only in driver mode.
    if queues > 1 {
        cfg = cfg.xdp_mode(XdpMode::Driver);
    }
    Runtime::start(cfg, make_app).map_err(|e| e.to_string())
}

/// Our stack sends `bytes` to a kernel receiver. Call from a thread in our
/// namespace of `t`.
pub fn ours_to_kernel(t: &Topology, queues: u32, file: &Path) -> Result<Leg, String> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let (mut child, mut out) =
        spawn_sink(&mut t.peer_cmd(&["python3", "-c", &py(PY_SINK, "", file)]))?;
    let progress = Arc::new(Progress::default());
    let to = SocketAddrV4::new(t.peer_ip(), PORT);
    let start = StdInstant::now();
    let rt = runtime(t, queues, |core| {
        let src = (core == 0)
            .then(|| std::fs::File::open(file).ok())
            .flatten()
            .map(|f| {
                Box::new(std::io::BufReader::with_capacity(1 << 20, f)) as Box<dyn Read + Send>
            });
        Dispatch::new(SendApp::new(
            to.into(),
            src,
            None,
            Algorithm::Sha256,
            progress.clone(),
        ))
    })?;
    let finished = rt.wait_done(LIMIT, LIMIT, |_| {});
    let seconds = start.elapsed().as_secs_f64();
    let app = rt
        .stop()
        .into_iter()
        .map(|d| d.handler)
        .find(|a| a.outcome.is_some());
    let _ = child.kill();
    let (app, outcome) = match app {
        Some(mut a) if finished => {
            let o = a.outcome.take().expect("found above");
            (a, o)
        }
        _ => return Err("xdptcp -> kernel: no progress for two minutes".into()),
    };
    if let Some(e) = outcome.error {
        return Err(format!("xdptcp -> kernel: {e}"));
    }
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    let theirs = rest.split_whitespace().nth(1).unwrap_or_default();
    Ok(Leg {
        name: "xdptcp -> kernel",
        bytes: outcome.bytes,
        seconds,
        sha_match: outcome.bytes == bytes
            && String::from_utf8_lossy(&app.reply) == outcome.digest
            && theirs == outcome.digest,
    })
}

/// A kernel sender sends `file` to our stack. Call from a thread in our
/// namespace of `t`.
pub fn kernel_to_ours(t: &Topology, queues: u32, file: &Path) -> Result<Leg, String> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let progress = Arc::new(Progress::default());
    let claimed = Arc::new(AtomicBool::new(false));
    let discard: SinkFactory = Arc::new(|| Ok(Box::new(std::io::sink()) as Box<dyn Write + Send>));
    let rt = runtime(t, queues, |_| {
        Dispatch::new(RecvApp::new(
            PORT,
            claimed.clone(),
            discard.clone(),
            false,
            Some(Algorithm::Sha256),
            progress.clone(),
        ))
    })?;
    // The listeners exist once every core has looped once.
    while rt.counters().iter().any(|c| c.loops == 0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let src = py(PY_SOURCE, &t.our_ip().to_string(), file);
    let child = t
        .peer_cmd(&["python3", "-c", &src])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting python3: {e}"))?;
    let finished = rt.wait_done(LIMIT, LIMIT, |_| {});
    let outcome = rt
        .stop()
        .into_iter()
        .find_map(|mut d| d.handler.outcome.take());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let outcome = match outcome {
        Some(o) if finished => o,
        _ => return Err("kernel -> xdptcp: no progress for two minutes".into()),
    };
    if let Some(e) = outcome.error {
        return Err(format!("kernel -> xdptcp: {e}"));
    }
    let (seconds, sent_digest) = source_report(&out.stdout)?;
    Ok(Leg {
        name: "kernel -> xdptcp",
        bytes: outcome.bytes,
        seconds,
        sha_match: outcome.bytes == bytes && sent_digest == outcome.digest,
    })
}

/// What `PY_SOURCE` prints: "<seconds> <sha256>".
fn source_report(stdout: &[u8]) -> Result<(f64, String), String> {
    let text = String::from_utf8_lossy(stdout);
    let mut f = text.split_whitespace();
    let seconds = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the python3 sender failed")?;
    Ok((seconds, f.next().unwrap_or_default().to_string()))
}

/// The reference: kernel to kernel over a veth pair set up the same way,
/// with the same python3 programs at both ends.
pub fn kernel_to_kernel(t: &Topology, file: &Path) -> Result<Leg, String> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let (mut sink, mut sink_out) =
        spawn_sink(&mut t.peer_cmd(&["python3", "-c", &py(PY_SINK, "", file)]))?;
    let src = py(PY_SOURCE, &t.peer_ip().to_string(), file);
    let out = t
        .ours_cmd(&["python3", "-c", &src])
        .output()
        .map_err(|e| format!("starting python3: {e}"))?;
    let mut rest = String::new();
    let _ = sink_out.read_to_string(&mut rest);
    let _ = sink.wait();
    let (seconds, sent_digest) = source_report(&out.stdout)?;
    let mut r = rest.split_whitespace();
    let got: u64 = r.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Leg {
        name: "kernel -> kernel",
        bytes: got,
        seconds,
        sha_match: got == bytes && r.next() == Some(sent_digest.as_str()),
    })
}
