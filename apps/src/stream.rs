//! `file_transfer send` / `recv` over the per-core runtime.
//!
//! By default the stream is framed so that the receiver can tell a complete
//! transfer from a cut one: a 13-byte header (`XDPT`, version 1, the length
//! as a big-endian u64), the bytes, then their SHA-256 (32 bytes). The
//! receiver answers `K` if length and digest match (`X` if not) and only
//! then keeps the file. `--raw` sends the bytes alone, so that any TCP peer
//! (`socat`, `nc`, python) can be the other end; both sides print the
//! SHA-256 of what went through.
//!
//! The apps run inside the cores' loops ([`CoreApp`]). The sender opens its
//! connection from core 0; the receiver listens on every core and serves
//! the first connection, on whichever core its flow hashes to.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use xdptcp::iface::Handle;
use xdptcp::runtime::{CoreApp, CoreContext};
use xdptcp::tcp::State;

/// What one side of a transfer saw, shared with the main thread.
#[derive(Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub finished: AtomicBool,
}

pub struct Outcome {
    pub bytes: u64,
    pub sha256: String,
    pub error: Option<String>,
}

const CHUNK: usize = 256 * 1024;
const MAGIC: &[u8; 4] = b"XDPT";
const HEADER_LEN: usize = 13;
const DIGEST_LEN: usize = 32;

/// Where the sender is in a framed stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Data,
    Trailer,
    Sent,
}

pub struct SendApp {
    to: SocketAddrV4,
    source: Option<Box<dyn Read + Send>>,
    closed: bool,
    conn: Option<Handle>,
    buf: Vec<u8>,
    /// Bytes read from the source and not yet taken by the connection.
    pending: std::ops::Range<usize>,
    hash: Sha256,
    /// Framed: the length announced in the header.
    framed: Option<u64>,
    stage: Stage,
    /// What the receiver sent back (the first 4 KiB), if anything.
    pub reply: Vec<u8>,
    pub progress: Arc<Progress>,
    pub outcome: Option<Outcome>,
}

impl SendApp {
    /// The instance for core 0 carries the source; the others idle.
    /// `framed` is the source's length, for the framed protocol; `None`
    /// sends raw bytes.
    pub fn new(
        to: SocketAddrV4,
        source: Option<Box<dyn Read + Send>>,
        framed: Option<u64>,
        progress: Arc<Progress>,
    ) -> Self {
        let mut buf = vec![0; CHUNK];
        let (stage, pending) = match framed {
            Some(len) => {
                buf[..4].copy_from_slice(MAGIC);
                buf[4] = 1;
                buf[5..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                (Stage::Header, 0..HEADER_LEN)
            }
            None => (Stage::Data, 0..0),
        };
        SendApp {
            to,
            source,
            closed: false,
            conn: None,
            buf,
            pending,
            framed,
            stage,
            hash: Sha256::new(),
            reply: Vec::new(),
            progress,
            outcome: None,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        self.outcome = Some(Outcome {
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            sha256: format!("{:x}", self.hash.clone().finalize()),
            error,
        });
        self.progress.finished.store(true, Ordering::Release);
    }
}

impl CoreApp for SendApp {
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool {
        if self.source.is_none() || self.outcome.is_some() {
            return false;
        }
        let h = match self.conn {
            Some(h) => h,
            None => match cx.iface.connect(self.to, None, cx.now) {
                Ok(h) => *self.conn.insert(h),
                Err(e) => {
                    self.finish(Some(e.to_string()));
                    return true;
                }
            },
        };
        let c = cx.iface.tcp(h).expect("held until the end");
        if let Some(e) = c.error() {
            let msg = format!(
                "connection to {} failed: {}",
                self.to,
                xdptcp::tcp::TcpError::Failed(e)
            );
            self.finish(Some(msg));
            return true;
        }
        if matches!(c.state(), State::SynSent | State::SynReceived) {
            return false;
        }
        let mut busy = false;
        loop {
            if self.pending.is_empty() {
                let Some(src) = self.source.as_mut().filter(|_| !self.closed) else {
                    break;
                };
                if self.stage == Stage::Header {
                    self.stage = Stage::Data;
                }
                let read = match self.stage {
                    Stage::Data => src.read(&mut self.buf),
                    _ => Ok(0),
                };
                match read {
                    Ok(0) if self.stage == Stage::Data && self.framed.is_some() => {
                        let sent = self.progress.bytes.load(Ordering::Relaxed);
                        if Some(sent) != self.framed {
                            c.abort();
                            let msg = format!(
                                "the input ended after {sent} of {} bytes (did the file change?)",
                                self.framed.unwrap_or(0)
                            );
                            self.finish(Some(msg));
                            return true;
                        }
                        let digest = self.hash.clone().finalize();
                        self.buf[..DIGEST_LEN].copy_from_slice(&digest);
                        self.pending = 0..DIGEST_LEN;
                        self.stage = Stage::Trailer;
                    }
                    Ok(0) => {
                        c.close();
                        self.closed = true;
                        self.stage = Stage::Sent;
                        break;
                    }
                    Ok(n) => {
                        self.hash.update(&self.buf[..n]);
                        self.pending = 0..n;
                    }
                    Err(e) => {
                        c.abort();
                        self.finish(Some(format!("reading the input: {e}")));
                        return true;
                    }
                }
            }
            match c.send(&self.buf[self.pending.clone()]) {
                Ok(n) if n > 0 => {
                    self.pending.start += n;
                    if self.stage == Stage::Data {
                        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    busy = true;
                }
                _ => break,
            }
        }
        // Read (and keep the start of) anything the receiver says.
        let mut scratch = [0u8; 512];
        while let Ok(n) = c.recv(&mut scratch) {
            if n == 0 {
                break;
            }
            let room = 4096usize.saturating_sub(self.reply.len());
            self.reply.extend_from_slice(&scratch[..n.min(room)]);
        }
        // Done when the peer has closed its side too (everything was acked).
        if c.at_eof() && matches!(c.state(), State::TimeWait | State::Closed) {
            let verdict = match (self.framed, self.reply.first()) {
                (None, _) | (Some(_), Some(b'K')) => None,
                (Some(_), Some(b'X')) => {
                    Some("the receiver found a different SHA-256: the data was damaged".into())
                }
                (Some(_), _) => Some(
                    "the receiver closed without confirming (is it a raw peer? then use --raw)"
                        .into(),
                ),
            };
            self.finish(verdict);
        }
        busy
    }

    fn done(&self) -> bool {
        self.source.is_none() || self.outcome.is_some()
    }
}

pub struct RecvApp {
    port: u16,
    listening: bool,
    /// Taken by the core that accepts the transfer.
    claimed: Arc<AtomicBool>,
    sink: Option<Box<dyn Write + Send>>,
    make_sink: Arc<dyn Fn() -> std::io::Result<Box<dyn Write + Send>> + Send + Sync>,
    conn: Option<Handle>,
    /// Our FIN was acknowledged too: the runtime may stop.
    closed: bool,
    buf: Vec<u8>,
    hash: Sha256,
    framed: bool,
    /// Framed: header and trailer bytes gathered so far, and the length.
    header: Vec<u8>,
    trailer: Vec<u8>,
    expect: Option<u64>,
    pub progress: Arc<Progress>,
    pub outcome: Option<Outcome>,
}

pub type SinkFactory = Arc<dyn Fn() -> std::io::Result<Box<dyn Write + Send>> + Send + Sync>;

impl RecvApp {
    pub fn new(
        port: u16,
        claimed: Arc<AtomicBool>,
        make_sink: SinkFactory,
        framed: bool,
        progress: Arc<Progress>,
    ) -> Self {
        RecvApp {
            port,
            listening: false,
            claimed,
            sink: None,
            make_sink,
            conn: None,
            closed: false,
            buf: vec![0; CHUNK],
            hash: Sha256::new(),
            framed,
            header: Vec::new(),
            trailer: Vec::new(),
            expect: None,
            progress,
            outcome: None,
        }
    }

    /// Takes received bytes: header, data (written and hashed), trailer.
    fn take(&mut self, mut data: &[u8]) -> Result<(), String> {
        if self.framed && self.expect.is_none() {
            let n = (HEADER_LEN - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() < HEADER_LEN {
                return Ok(());
            }
            if &self.header[..4] != MAGIC || self.header[4] != 1 {
                return Err(
                    "the sender does not speak the framed protocol (use --raw for plain TCP peers)"
                        .into(),
                );
            }
            let len = u64::from_be_bytes(self.header[5..HEADER_LEN].try_into().expect("8 bytes"));
            self.expect = Some(len);
        }
        let got = self.progress.bytes.load(Ordering::Relaxed);
        let n = match self.expect {
            Some(len) => (len - got).min(data.len() as u64) as usize,
            None => data.len(),
        };
        if n > 0 {
            self.hash.update(&data[..n]);
            self.sink
                .as_mut()
                .expect("open")
                .write_all(&data[..n])
                .map_err(|e| format!("writing the output: {e}"))?;
            self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        let rest = &data[n..];
        if !rest.is_empty() {
            if self.trailer.len() + rest.len() > DIGEST_LEN {
                return Err("the sender sent more than it announced".into());
            }
            self.trailer.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Framed: at the sender's FIN, is everything there and intact?
    fn verdict(&self) -> Result<(), String> {
        let Some(len) = self.expect.filter(|_| self.framed) else {
            return match self.framed {
                true => Err("the sender closed before its header".into()),
                false => Ok(()),
            };
        };
        let got = self.progress.bytes.load(Ordering::Relaxed);
        if got < len || self.trailer.len() < DIGEST_LEN {
            return Err(format!(
                "the sender stopped after {got} of {len} bytes: transfer incomplete"
            ));
        }
        if self.trailer[..] != self.hash.clone().finalize()[..] {
            return Err("SHA-256 mismatch: the data arrived damaged".into());
        }
        Ok(())
    }

    fn finish(&mut self, error: Option<String>) {
        if let (None, Some(mut s)) = (&error, self.sink.take()) {
            if let Err(e) = s.flush() {
                return self.finish(Some(format!("writing the output: {e}")));
            }
        }
        self.outcome = Some(Outcome {
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            sha256: format!("{:x}", self.hash.clone().finalize()),
            error,
        });
        self.progress.finished.store(true, Ordering::Release);
    }
}

impl CoreApp for RecvApp {
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool {
        if let (Some(out), Some(h)) = (&self.outcome, self.conn) {
            // Linger until the peer acknowledged our FIN.
            let st = cx.iface.tcp_ref(h).map(|c| c.state());
            self.closed = out.error.is_some() || matches!(st, None | Some(State::Closed));
            return false;
        }
        if self.outcome.is_some() {
            return false;
        }
        if !self.listening {
            if let Err(e) = cx.iface.listen(self.port, None, 8) {
                self.finish(Some(e.to_string()));
                return true;
            }
            self.listening = true;
        }
        if self.conn.is_none() {
            let Ok(Some(h)) = cx.iface.accept(self.port) else {
                return false;
            };
            if self.claimed.swap(true, Ordering::AcqRel) {
                // One transfer per run: later connections are refused.
                if let Some(c) = cx.iface.tcp(h) {
                    c.abort();
                }
                cx.iface.release(h);
                return true;
            }
            match (self.make_sink)() {
                Ok(s) => self.sink = Some(s),
                Err(e) => {
                    self.finish(Some(format!("creating the output: {e}")));
                    return true;
                }
            }
            self.conn = Some(h);
        }
        let h = self.conn.expect("set above");
        let c = cx.iface.tcp(h).expect("held until the end");
        let mut busy = false;
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            match c.recv(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Err(e) = self.take(&buf[..n]) {
                        c.abort();
                        self.finish(Some(e));
                        return true;
                    }
                    busy = true;
                }
            }
        }
        self.buf = buf;
        if let Some(e) = c.error() {
            let msg = format!(
                "the sender's connection failed: {}",
                xdptcp::tcp::TcpError::Failed(e)
            );
            self.finish(Some(msg));
            return true;
        }
        if c.at_eof() {
            let verdict = self.verdict();
            if self.framed {
                let _ = c.send(if verdict.is_ok() { b"K" } else { b"X" });
            }
            c.close();
            self.finish(verdict.err());
            busy = true;
        }
        busy
    }

    fn done(&self) -> bool {
        // Cores that did not get the transfer are done when it is.
        match self.conn {
            Some(_) => self.closed,
            None => self.outcome.is_some() || self.progress.finished.load(Ordering::Acquire),
        }
    }
}

/// The stack's place on the network, from the command line.
pub struct NetSetup {
    pub ifname: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<std::net::Ipv4Addr>,
}

impl NetSetup {
    /// `dev` is `afxdp:IFNAME`, `ip` is `ADDR/PREFIX`.
    pub fn parse(dev: &str, ip: &str, gateway: Option<std::net::Ipv4Addr>) -> Result<Self, String> {
        let ifname = dev
            .strip_prefix("afxdp:")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("--dev '{dev}': use afxdp:IFNAME, for example afxdp:veth0"))?;
        let (addr, prefix) = ip
            .split_once('/')
            .ok_or_else(|| format!("--ip '{ip}': use ADDR/PREFIX, for example 10.9.0.1/24"))?;
        let ip = addr
            .parse()
            .map_err(|_| format!("--ip '{addr}' is not an IPv4 address"))?;
        let prefix_len = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("--ip prefix '/{prefix}' must be 1..32"))?;
        Ok(NetSetup {
            ifname: ifname.to_string(),
            ip,
            prefix_len,
            gateway,
        })
    }

    /// The interface's MAC, a random ISN key, our address and gateway.
    pub fn iface_config(&self) -> Result<xdptcp::iface::IfaceConfig, String> {
        let base =
            xdptcp::runtime::RuntimeConfig::for_interface(&self.ifname, self.ip, self.prefix_len)
                .map_err(|e| e.to_string())?;
        Ok(xdptcp::iface::IfaceConfig {
            gateway: self.gateway,
            ..base.iface
        })
    }
}

/// A fresh RFC 6528 key for a real run.
pub fn isn_secret() -> Result<[u8; 16], String> {
    let mut k = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .map_err(|e| format!("reading /dev/urandom for the ISN key: {e}"))?;
    Ok(k)
}
