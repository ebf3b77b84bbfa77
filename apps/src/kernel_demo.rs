//! Our stack against the Linux kernel over AF_XDP, with a kernel-to-kernel
//! transfer on an identical veth pair as the reference. The kernel's side
//! is always the same python3 socket program, so the only difference
//! between runs is whose TCP/IP stack sits at our end.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddrV4;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant as StdInstant};
use xdptcp::device::afxdp::{AfXdp, AfXdpConfig};
use xdptcp::iface::{IfaceConfig, Interface};
use xdptcp::simulation::DataSource;
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::MacAddr;
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

/// Sends MIB mebibytes of a fixed pattern to HOST, prints
/// "<seconds> <sha256>" timed from connect to the receiver's close.
const PY_SOURCE: &str = "import socket,hashlib,time\n\
d=bytes((i*13+i//977)%256 for i in range(1<<20));h=hashlib.sha256()\n\
t=time.monotonic();s=socket.create_connection(('HOST',PORT))\n\
for _ in range(MIB):\n  s.sendall(d);h.update(d)\n\
s.shutdown(socket.SHUT_WR)\n\
while s.recv(65536): pass\n\
print(time.monotonic()-t,h.hexdigest(),flush=True)";

fn py(src: &str, host: &str, mib: u64) -> String {
    src.replace("PORT", &PORT.to_string())
        .replace("HOST", host)
        .replace("MIB", &mib.to_string())
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

/// Our stack on an AF_XDP socket in our namespace of `t`. Enters that
/// namespace on the calling thread. Open it once per run: the kernel
/// releases a queue's AF_XDP binding asynchronously, so closing and
/// reopening at once can find the queue still busy.
pub fn open_stack(t: &Topology) -> Result<(Interface, AfXdp), String> {
    t.enter_ours()
        .map_err(|e| format!("entering namespace: {e}"))?;
    let dev = AfXdp::open(AfXdpConfig::new(&t.dev)).map_err(|e| e.to_string())?;
    let iface = Interface::new(IfaceConfig {
        mac: MacAddr([0x02, 0, 0, 0, 0x10, t.subnet]),
        ip: t.our_ip(),
        prefix_len: 24,
        gateway: None,
        isn_secret: std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8)),
        tcp: Config {
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            ..Config::default()
        },
    });
    Ok((iface, dev))
}

fn now(start: StdInstant) -> Instant {
    Instant::from_nanos(start.elapsed().as_nanos() as u64)
}

/// Our stack sends `bytes` to a kernel receiver.
pub fn ours_to_kernel(
    t: &Topology,
    iface: &mut Interface,
    dev: &mut AfXdp,
    bytes: u64,
) -> Result<Leg, String> {
    let (mut child, mut out) =
        spawn_sink(&mut t.peer_cmd(&["python3", "-c", &py(PY_SINK, "", 0)]))?;
    let start = StdInstant::now();
    let h = iface
        .connect(SocketAddrV4::new(t.peer_ip(), PORT), None, now(start))
        .map_err(|e| e.to_string())?;
    let mut source = DataSource::new(7, bytes);
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; 1 << 16];
    let (mut pending, mut sent_all, mut reply) = (0usize, false, Vec::new());
    loop {
        iface.poll(now(start), dev);
        let c = iface.tcp(h).ok_or("connection vanished")?;
        if let Some(e) = c.error() {
            return Err(format!("xdptcp -> kernel: {}", TcpError::Failed(e)));
        }
        if c.state() != State::SynSent {
            while !sent_all {
                if pending == 0 {
                    pending = source.fill(&mut chunk);
                    hash.update(&chunk[..pending]);
                    if pending == 0 {
                        sent_all = true;
                        c.close();
                        break;
                    }
                }
                // `chunk[..pending]` is what is left of the last fill.
                match c.send(&chunk[..pending]) {
                    Ok(n) if n > 0 => {
                        chunk.copy_within(n..pending, 0);
                        pending -= n;
                    }
                    _ => break,
                }
            }
        }
        let mut buf = [0u8; 128];
        match c.recv(&mut buf) {
            Ok(0) if c.at_eof() => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => {}
            Err(e) => return Err(format!("xdptcp -> kernel: {e}")),
        }
        if start.elapsed() > LIMIT {
            return Err("xdptcp -> kernel: no progress for two minutes".into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    iface.release(h);
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    let digest = format!("{:x}", hash.finalize());
    let theirs = rest
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(Leg {
        name: "xdptcp -> kernel",
        bytes,
        seconds,
        sha_match: String::from_utf8_lossy(&reply) == digest && theirs == digest,
    })
}

/// A kernel sender sends `mib` MiB to our stack.
pub fn kernel_to_ours(
    t: &Topology,
    iface: &mut Interface,
    dev: &mut AfXdp,
    mib: u64,
) -> Result<Leg, String> {
    iface.listen(PORT, None, 4).map_err(|e| e.to_string())?;
    let src = py(PY_SOURCE, &t.our_ip().to_string(), mib);
    let mut child = t
        .peer_cmd(&["python3", "-c", &src])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting python3: {e}"))?;
    let start = StdInstant::now();
    let (mut conn, mut got, mut hash) = (None, 0u64, Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        iface.poll(now(start), dev);
        if conn.is_none() {
            conn = iface.accept(PORT).map_err(|e| e.to_string())?;
        }
        if let Some(c) = conn.and_then(|h| iface.tcp(h)) {
            match c.recv(&mut buf) {
                Ok(0) => {
                    c.close();
                    if c.state() == State::Closed {
                        iface.unlisten(PORT);
                        break;
                    }
                }
                Ok(n) => {
                    hash.update(&buf[..n]);
                    got += n as u64;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => return Err(format!("kernel -> xdptcp: {e}")),
            }
        }
        if start.elapsed() > LIMIT {
            return Err(format!("kernel -> xdptcp: stuck at {got} bytes"));
        }
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    let _ = child.wait();
    let mut f = out.split_whitespace();
    let seconds: f64 = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the python3 sender failed")?;
    let theirs = f.next().unwrap_or_default();
    Ok(Leg {
        name: "kernel -> xdptcp",
        bytes: got,
        seconds,
        sha_match: got == mib << 20 && format!("{:x}", hash.finalize()) == theirs,
    })
}

/// The reference: kernel to kernel over a veth pair set up the same way,
/// with the same python3 programs at both ends.
pub fn kernel_to_kernel(t: &Topology, mib: u64) -> Result<Leg, String> {
    let (mut sink, mut sink_out) =
        spawn_sink(&mut t.peer_cmd(&["python3", "-c", &py(PY_SINK, "", 0)]))?;
    let src = py(PY_SOURCE, &t.peer_ip().to_string(), mib);
    let out = t
        .ours_cmd(&["python3", "-c", &src])
        .output()
        .map_err(|e| format!("starting python3: {e}"))?;
    let mut rest = String::new();
    let _ = sink_out.read_to_string(&mut rest);
    let _ = sink.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    let seconds: f64 = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the python3 sender failed")?;
    let sent_digest = f.next().unwrap_or_default();
    let mut r = rest.split_whitespace();
    let got: u64 = r.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Leg {
        name: "kernel -> kernel",
        bytes: got,
        seconds,
        sha_match: got == mib << 20 && r.next() == Some(sent_digest),
    })
}
