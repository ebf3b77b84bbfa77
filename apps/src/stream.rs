//! `file_transfer send` / `recv` over the per-core runtime: a byte stream,
//! no header (so any TCP peer, `socat` or python included, is the other
//! end), with the SHA-256 of what went through printed on both sides.
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

pub struct SendApp {
    to: SocketAddrV4,
    source: Option<Box<dyn Read + Send>>,
    closed: bool,
    conn: Option<Handle>,
    buf: Vec<u8>,
    /// Bytes read from the source and not yet taken by the connection.
    pending: std::ops::Range<usize>,
    hash: Sha256,
    /// What the receiver sent back (the first 4 KiB), if anything.
    pub reply: Vec<u8>,
    pub progress: Arc<Progress>,
    pub outcome: Option<Outcome>,
}

impl SendApp {
    /// The instance for core 0 carries the source; the others idle.
    pub fn new(
        to: SocketAddrV4,
        source: Option<Box<dyn Read + Send>>,
        progress: Arc<Progress>,
    ) -> Self {
        SendApp {
            to,
            source,
            closed: false,
            conn: None,
            buf: vec![0; CHUNK],
            pending: 0..0,
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
                match src.read(&mut self.buf) {
                    Ok(0) => {
                        c.close();
                        self.closed = true;
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
                    self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
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
            self.finish(None);
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
    pub progress: Arc<Progress>,
    pub outcome: Option<Outcome>,
}

pub type SinkFactory = Arc<dyn Fn() -> std::io::Result<Box<dyn Write + Send>> + Send + Sync>;

impl RecvApp {
    pub fn new(
        port: u16,
        claimed: Arc<AtomicBool>,
        make_sink: SinkFactory,
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
            progress,
            outcome: None,
        }
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
        loop {
            match c.recv(&mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.hash.update(&self.buf[..n]);
                    if let Err(e) = self.sink.as_mut().expect("open").write_all(&self.buf[..n]) {
                        c.abort();
                        self.finish(Some(format!("writing the output: {e}")));
                        return true;
                    }
                    self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    busy = true;
                }
            }
        }
        if let Some(e) = c.error() {
            let msg = format!(
                "the sender's connection failed: {}",
                xdptcp::tcp::TcpError::Failed(e)
            );
            self.finish(Some(msg));
            return true;
        }
        if c.at_eof() {
            c.close();
            self.finish(None);
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
