//! `file_transfer send` / `recv` over the per-core runtime.
//!
//! By default the stream is framed so that the receiver can tell a complete
//! transfer from a cut one: a 13-byte header (`XDPT`, a version byte that
//! names the digest, 1 for SHA-256 and 2 for BLAKE3, the length as a
//! big-endian u64), the bytes, then their digest (32 bytes). The receiver
//! answers `K` if length and digest match (`X` if not) and only then keeps
//! the file. A receiver that cannot go on (its output full, say) answers
//! `E`, its reason and a newline at once, and the sender stops with it. `--raw` sends the bytes alone, so that any TCP peer (`socat`,
//! `nc`, python) can be the other end; both sides print the digest (SHA-256
//! unless told otherwise) of what went through.
//!
//! Both are [`Handler`]s of the per-core API, run inside the cores' loops.
//! The sender opens its connection from core 0; the receiver listens on
//! every core and serves the first connection, on whichever core its flow
//! hashes to, writing received bytes from the connection's ring straight
//! to the output.

use crate::digest::{self, Algorithm, Hasher};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use xdptcp::api::config::StackConfig;
use xdptcp::api::percore::{Ctx, Handler, Stream};
use xdptcp::api::{ConnError, Handle, TcpError};

/// What one side of a transfer saw, shared with the main thread.
#[derive(Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub finished: AtomicBool,
}

pub struct Outcome {
    pub bytes: u64,
    /// The digest of what went through, in hex, and its algorithm (None
    /// when not computed).
    pub digest: String,
    pub algorithm: Option<Algorithm>,
    pub error: Option<String>,
    /// The sender's: seconds from the connection's establishment to the
    /// end (the receiver's confirmation included), and the connection's
    /// RTT samples in nanoseconds, the latest of each application turn.
    pub secs: Option<f64>,
    pub rtt: Option<Histogram<u64>>,
}

/// RTT samples as a connection takes them, read once per application
/// turn (a turn sees the latest; at bulk rates that is most of them).
pub struct RttLog {
    pub hist: Histogram<u64>,
    seen: u64,
}

impl Default for RttLog {
    fn default() -> Self {
        RttLog {
            hist: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds"),
            seen: 0,
        }
    }
}

impl RttLog {
    pub fn note(&mut self, s: &Stream<'_>) {
        if let Some((n, rtt)) = s.last_rtt_sample() {
            if n != self.seen {
                self.seen = n;
                let _ = self.hist.record((rtt.as_nanos() as u64).max(1_000));
            }
        }
    }
}

/// The file's bytes are read in chunks of this size, each handed to the
/// connection whole (small enough that a send buffer of the default size
/// takes a few at once).
const OWNED_CHUNK: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"XDPT";
const HEADER_LEN: usize = 13;
const DIGEST_LEN: usize = digest::LEN;
/// The receiver hashes in batches this large: BLAKE3 hashes many chunks
/// at once only when given many.
const HASH_BATCH: usize = 256 * 1024;
/// The receiver writes whole pages, so every write starts and ends on a
/// page boundary of the file: writes of odd sizes leave pages half
/// written, which the next write must complete, and cost far more (tmpfs
/// on this machine's kernel, `dd` of 256 KiB writes: 3.1 GB/s, of 262,294
/// bytes 338 MB/s); disks read back a block half written, too.
const WRITE_ALIGN: usize = 4096;

/// Where the sender is in a framed stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Data,
    Trailer,
    Sent,
}

pub struct SendApp {
    to: SocketAddr,
    source: Option<Box<dyn Read + Send>>,
    closed: bool,
    buf: Vec<u8>,
    /// Bytes read from the source and not yet taken by the connection
    /// (the header and the digest; the file's bytes go in `held`).
    pending: std::ops::Range<usize>,
    /// File bytes read into a chunk of their own, which the connection
    /// takes as it is (`send_owned`: no copy into its ring) once it has
    /// room.
    held: Option<Vec<u8>>,
    /// Chunks the connection gave back, to read into again.
    spare: Vec<Vec<u8>>,
    hash: Hasher,
    /// Framed: the length announced in the header.
    framed: Option<u64>,
    stage: Stage,
    /// What the receiver sent back (the first 4 KiB), if anything.
    pub reply: Vec<u8>,
    pub progress: Arc<Progress>,
    pub outcome: Option<Outcome>,
    rtt: RttLog,
    connected_at: Option<std::time::Instant>,
}

impl SendApp {
    /// The instance for core 0 carries the source; the others idle.
    /// `framed` is the source's length, for the framed protocol; `None`
    /// sends raw bytes.
    pub fn new(
        to: SocketAddr,
        source: Option<Box<dyn Read + Send>>,
        framed: Option<u64>,
        digest: Algorithm,
        progress: Arc<Progress>,
    ) -> Self {
        // Only the header and the digest are copied from here.
        let mut buf = vec![0; HEADER_LEN.max(DIGEST_LEN)];
        let (stage, pending) = match framed {
            Some(len) => {
                buf[..4].copy_from_slice(MAGIC);
                buf[4] = digest.version();
                buf[5..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                (Stage::Header, 0..HEADER_LEN)
            }
            None => (Stage::Data, 0..0),
        };
        SendApp {
            to,
            source,
            closed: false,
            buf,
            pending,
            held: None,
            spare: Vec::new(),
            framed,
            stage,
            hash: Hasher::new(digest),
            reply: Vec::new(),
            progress,
            outcome: None,
            rtt: RttLog::default(),
            connected_at: None,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        self.outcome = Some(Outcome {
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            digest: self.hash.hex(),
            algorithm: Some(self.hash.algorithm()),
            error,
            secs: self.connected_at.map(|t| t.elapsed().as_secs_f64()),
            rtt: Some(std::mem::take(&mut self.rtt).hist),
        });
        self.progress.finished.store(true, Ordering::Release);
    }
}

impl SendApp {
    /// The receiver's reason for stopping, if it sent one (framed only).
    fn receiver_failure(&self) -> Option<String> {
        let why = self
            .reply
            .strip_prefix(b"E")
            .filter(|_| self.framed.is_some())?;
        Some(format!(
            "the receiver failed after {} bytes were sent: {}",
            self.progress.bytes.load(Ordering::Relaxed),
            String::from_utf8_lossy(why).trim_end()
        ))
    }

    /// Gives the connection the source (the header, the file's bytes in
    /// chunks handed over whole, then the digest when framed) until it
    /// takes no more.
    fn push(&mut self, s: &mut Stream<'_>) {
        while let Some(chunk) = s.reclaim() {
            self.spare.push(chunk);
        }
        loop {
            if let Some(chunk) = self.held.take() {
                let n = chunk.len();
                match s.send_owned(chunk) {
                    Ok(()) => {
                        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        continue;
                    }
                    Err(chunk) => {
                        // `on_writable` follows once there is room.
                        self.held = Some(chunk);
                        return;
                    }
                }
            }
            if self.pending.is_empty() {
                let Some(src) = self.source.as_mut().filter(|_| !self.closed) else {
                    return;
                };
                if self.stage == Stage::Header {
                    self.stage = Stage::Data;
                }
                let mut chunk = self.spare.pop().unwrap_or_default();
                chunk.resize(OWNED_CHUNK, 0);
                let read = match self.stage {
                    Stage::Data => src.read(&mut chunk),
                    _ => Ok(0),
                };
                match read {
                    Ok(0) if self.stage == Stage::Data && self.framed.is_some() => {
                        let sent = self.progress.bytes.load(Ordering::Relaxed);
                        if Some(sent) != self.framed {
                            s.abort();
                            let msg = format!(
                                "the input ended after {sent} of {} bytes (did the file change?)",
                                self.framed.unwrap_or(0)
                            );
                            return self.finish(Some(msg));
                        }
                        let digest = self.hash.finalize();
                        self.buf[..DIGEST_LEN].copy_from_slice(&digest);
                        self.pending = 0..DIGEST_LEN;
                        self.stage = Stage::Trailer;
                    }
                    Ok(0) => {
                        s.close();
                        self.closed = true;
                        self.stage = Stage::Sent;
                        return;
                    }
                    Ok(n) => {
                        self.hash.update(&chunk[..n]);
                        chunk.truncate(n);
                        self.held = Some(chunk);
                        continue;
                    }
                    Err(e) => {
                        s.abort();
                        return self.finish(Some(format!("reading the input: {e}")));
                    }
                }
            }
            let n = s.send(&self.buf[self.pending.clone()]);
            if n == 0 {
                return;
            }
            self.pending.start += n;
            if self.stage == Stage::Data {
                self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Handler for SendApp {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        if self.source.is_some() {
            if let Err(e) = cx.connect(self.to) {
                self.finish(Some(e.to_string()));
            }
        }
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.connected_at = Some(std::time::Instant::now());
        self.push(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.rtt.note(s);
        self.push(s);
    }
    /// Whatever the receiver says (its verdict, when framed), in place.
    /// A receiver that fails says why (`E`, the reason, a newline): we
    /// stop there rather than send the rest for nothing.
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        self.rtt.note(s);
        let n = s.data_len();
        let room = 4096usize.saturating_sub(self.reply.len());
        self.reply.extend(s.data().flatten().take(room));
        s.consume(n);
        if let Some(why) = self
            .receiver_failure()
            .filter(|_| self.reply.ends_with(b"\n"))
        {
            s.abort();
            self.finish(Some(why));
        }
    }
    /// Done when TCP is: everything sent was acknowledged and the peer
    /// closed its side too.
    fn on_closed(&mut self, _: Handle, error: Option<ConnError>) {
        if self.outcome.is_some() {
            return;
        }
        if let Some(e) = error {
            let msg = format!("connection to {} failed: {}", self.to, TcpError::Failed(e));
            return self.finish(Some(msg));
        }
        if let Some(why) = self.receiver_failure() {
            return self.finish(Some(why));
        }
        let verdict = match (self.framed, self.reply.first()) {
            (None, _) | (Some(_), Some(b'K')) => None,
            (Some(_), Some(b'X')) => Some(format!(
                "the receiver found a different {}: the data was damaged",
                self.hash.algorithm().name()
            )),
            (Some(_), _) => Some(
                "the receiver closed without confirming (is it a raw peer? then use --raw)".into(),
            ),
        };
        self.finish(verdict);
    }
    fn done(&self) -> bool {
        self.source.is_none() || self.outcome.is_some()
    }
}

pub struct RecvApp {
    port: u16,
    /// Taken by the core that accepts the transfer.
    claimed: Arc<AtomicBool>,
    sink: Option<Box<dyn Write + Send>>,
    make_sink: Arc<dyn Fn() -> std::io::Result<Box<dyn Write + Send>> + Send + Sync>,
    conn: Option<Handle>,
    /// Our FIN was acknowledged too: the runtime may stop.
    closed: bool,
    /// None with --no-digest (raw only): nothing is computed. Framed, it
    /// is made when the header names the algorithm.
    hash: Option<Hasher>,
    /// Received bytes not hashed and written yet (see `HASH_BATCH`).
    staged: Vec<u8>,
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
        digest: Option<Algorithm>,
        progress: Arc<Progress>,
    ) -> Self {
        assert!(
            digest.is_some() || !framed,
            "the framed protocol checks the digest"
        );
        RecvApp {
            port,
            claimed,
            sink: None,
            make_sink,
            conn: None,
            closed: false,
            hash: digest.filter(|_| !framed).map(Hasher::new),
            staged: Vec::with_capacity(HASH_BATCH),
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
            let algorithm = Algorithm::from_version(self.header[4]);
            if &self.header[..4] != MAGIC || algorithm.is_none() {
                return Err(
                    "the sender does not speak the framed protocol (use --raw for plain TCP peers)"
                        .into(),
                );
            }
            self.hash = algorithm.map(Hasher::new);
            let len = u64::from_be_bytes(self.header[5..HEADER_LEN].try_into().expect("8 bytes"));
            self.expect = Some(len);
        }
        let got = self.progress.bytes.load(Ordering::Relaxed);
        let n = match self.expect {
            Some(len) => (len - got).min(data.len() as u64) as usize,
            None => data.len(),
        };
        if n > 0 {
            if self.staged.is_empty() && n >= HASH_BATCH / 4 {
                // Large enough to hash well as it is: no copy but of the
                // part past the last whole page.
                let pages = n / WRITE_ALIGN * WRITE_ALIGN;
                self.absorb(&data[..pages])?;
                self.staged.extend_from_slice(&data[pages..n]);
            } else {
                self.staged.extend_from_slice(&data[..n]);
                if self.staged.len() >= HASH_BATCH {
                    self.flush_staged_pages()?;
                }
            }
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

    /// Hashes and writes all that is staged (at the end).
    fn flush_staged(&mut self) -> Result<(), String> {
        self.flush_staged_up_to(self.staged.len())
    }

    /// Hashes and writes the whole pages staged; the rest stays.
    fn flush_staged_pages(&mut self) -> Result<(), String> {
        self.flush_staged_up_to(self.staged.len() / WRITE_ALIGN * WRITE_ALIGN)
    }

    fn flush_staged_up_to(&mut self, end: usize) -> Result<(), String> {
        let staged = std::mem::take(&mut self.staged);
        let r = self.absorb(&staged[..end]);
        self.staged = staged;
        self.staged.drain(..end);
        r
    }

    /// Hashes received bytes and writes them to the output.
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let Some(h) = &mut self.hash {
            h.update(bytes);
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.write_all(bytes)
                .map_err(|e| format!("writing the output: {e}"))?;
        }
        Ok(())
    }

    /// Framed: at the sender's FIN, is everything there and intact?
    fn verdict(&mut self) -> Result<(), String> {
        self.flush_staged()?;
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
        if let Some(h) = self
            .hash
            .as_ref()
            .filter(|h| self.trailer[..] != h.finalize()[..])
        {
            return Err(format!(
                "{} mismatch: the data arrived damaged",
                h.algorithm().name()
            ));
        }
        Ok(())
    }

    /// Stops the transfer for `why`. Our framed sender is told why (`E`,
    /// the reason, a newline, then our FIN) and stops at once; what it
    /// sent meanwhile is read and dropped, so the reason is not lost to
    /// a reset. A peer that does not speak the protocol is reset.
    fn refuse(&mut self, s: &mut Stream<'_>, why: String) {
        let ours = self.framed && (self.header.is_empty() || self.expect.is_some());
        if ours {
            let mut msg = format!("E{why}").into_bytes();
            msg.truncate(1024);
            msg.push(b'\n');
            s.send(&msg);
            s.close();
        } else {
            s.abort();
        }
        self.finish(Some(why));
    }

    fn finish(&mut self, error: Option<String>) {
        if error.is_none() {
            if let Err(e) = self.flush_staged() {
                return self.finish(Some(e));
            }
        }
        if let (None, Some(mut s)) = (&error, self.sink.take()) {
            if let Err(e) = s.flush() {
                return self.finish(Some(format!("writing the output: {e}")));
            }
        }
        self.outcome = Some(Outcome {
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            digest: self
                .hash
                .as_ref()
                .map_or("not computed (--no-digest)".into(), Hasher::hex),
            algorithm: self.hash.as_ref().map(Hasher::algorithm),
            error,
            secs: None,
            rtt: None,
        });
        self.progress.finished.store(true, Ordering::Release);
    }
}

impl Handler for RecvApp {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        if let Err(e) = cx.listen(self.port, 8) {
            self.finish(Some(e.to_string()));
        }
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        if self.conn.is_some() || self.claimed.swap(true, Ordering::AcqRel) {
            // One transfer per run: later connections are refused.
            return s.abort();
        }
        self.conn = Some(s.id());
        match (self.make_sink)() {
            Ok(sink) => self.sink = Some(sink),
            Err(e) => self.refuse(s, format!("creating the output: {e}")),
        }
    }
    /// Received bytes go from where they arrived (a kept frame or the
    /// connection's ring) straight to the output (after a failure, nowhere).
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        if self.outcome.is_some() {
            return s.consume(n);
        }
        let r = s.data().try_for_each(|part| self.take(part));
        s.consume(n);
        if let Err(e) = r {
            self.refuse(s, e);
        }
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let verdict = self.verdict();
        if self.framed {
            s.send(if verdict.is_ok() { b"K" } else { b"X" });
        }
        s.close();
        self.finish(verdict.err());
    }
    fn on_closed(&mut self, _: Handle, error: Option<ConnError>) {
        self.closed = true;
        if self.outcome.is_none() {
            let why = match error {
                Some(e) => format!("the sender's connection failed: {}", TcpError::Failed(e)),
                None => "the connection closed before the transfer ended".into(),
            };
            self.finish(Some(why));
        }
    }
    fn done(&self) -> bool {
        // The core with the transfer lingers until our FIN is acknowledged;
        // the others are done when it is.
        match self.conn {
            Some(_) => self.closed,
            None => self.outcome.is_some() || self.progress.finished.load(Ordering::Acquire),
        }
    }
}

/// The stack's place on the network, from the command line.
pub struct NetSetup {
    pub ifname: String,
    /// Our IPv4 address; 0.0.0.0/32 when given only IPv6 ones (nothing
    /// is then addressed to it, and no IPv4 destination has a route).
    pub ip: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<std::net::Ipv4Addr>,
    /// IPv6 addresses with their prefix lengths, and the IPv6 router.
    pub ipv6: Vec<(std::net::Ipv6Addr, u8)>,
    pub gateway6: Option<std::net::Ipv6Addr>,
}

impl NetSetup {
    /// `dev` is `afxdp:IFNAME`; each of `ips` is `ADDR/PREFIX`, at most
    /// one of them IPv4.
    pub fn parse<S: AsRef<str>>(
        dev: &str,
        ips: &[S],
        gateways: &[std::net::IpAddr],
    ) -> Result<Self, String> {
        let ifname = dev
            .strip_prefix("afxdp:")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("--dev '{dev}': use afxdp:IFNAME, for example afxdp:veth0"))?;
        let mut v4 = None;
        let mut ipv6 = Vec::new();
        for ip in ips {
            let ip = ip.as_ref();
            let (addr, prefix) = ip
                .split_once('/')
                .ok_or_else(|| format!("--ip '{ip}': use ADDR/PREFIX, for example 10.9.0.1/24"))?;
            let prefix = prefix.parse::<u8>().ok();
            match addr.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(a)) => {
                    let p = prefix
                        .filter(|p| (1..=32).contains(p))
                        .ok_or_else(|| format!("--ip '{ip}': an IPv4 prefix is 1..32"))?;
                    if v4.replace((a, p)).is_some() {
                        return Err(format!(
                            "--ip '{ip}': one IPv4 address only (repeat --ip for IPv6 ones)"
                        ));
                    }
                }
                Ok(std::net::IpAddr::V6(a)) => {
                    let p = prefix
                        .filter(|p| (1..=128).contains(p))
                        .ok_or_else(|| format!("--ip '{ip}': an IPv6 prefix is 1..128"))?;
                    if a.is_multicast() || a.is_unspecified() {
                        return Err(format!("--ip '{ip}': not a unicast address"));
                    }
                    ipv6.push((a, p));
                }
                Err(_) => return Err(format!("--ip '{addr}' is not an IP address")),
            }
        }
        if v4.is_none() && ipv6.is_empty() {
            return Err("--ip: give an address, e.g. --ip 10.9.0.1/24 or --ip fd00::1/64".into());
        }
        let (ip, prefix_len) = v4.unwrap_or((std::net::Ipv4Addr::UNSPECIFIED, 32));
        let (mut gateway, mut gateway6) = (None, None);
        for g in gateways {
            let taken = match g {
                std::net::IpAddr::V4(a) => gateway.replace(*a).is_some(),
                std::net::IpAddr::V6(a) => gateway6.replace(*a).is_some(),
            };
            if taken {
                return Err(format!("--gateway {g}: one gateway per family"));
            }
        }
        Ok(NetSetup {
            ifname: ifname.to_string(),
            ip,
            prefix_len,
            gateway,
            ipv6,
            gateway6,
        })
    }

    /// The stack's configuration for this place: the interface (its MAC,
    /// a random ISN key), our addresses and the gateways.
    pub fn stack_config(&self) -> Result<StackConfig, String> {
        let mut c = StackConfig::new(&self.ifname, self.ip, self.prefix_len)
            .map_err(|e| format!("{}: {e}", self.ifname))?;
        for &(a, p) in &self.ipv6 {
            c = c.ipv6(a, p);
        }
        let routers = self.gateway.map(IpAddr::V4).into_iter();
        for g in routers.chain(self.gateway6.map(IpAddr::V6)) {
            c = c.gateway(g);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps what it is given, write by write.
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ip_takes_at_most_one_ipv4_address_and_any_ipv6_ones() {
        let s = NetSetup::parse(
            "afxdp:v0",
            &["10.9.0.1/24", "fd00::1/64", "fd00::7/64"],
            &[],
        )
        .unwrap();
        assert_eq!((s.ip, s.prefix_len), ("10.9.0.1".parse().unwrap(), 24));
        let want: Vec<(std::net::Ipv6Addr, u8)> = vec![
            ("fd00::1".parse().unwrap(), 64),
            ("fd00::7".parse().unwrap(), 64),
        ];
        assert_eq!(s.ipv6, want);
        // IPv6 alone: no IPv4 address to serve.
        let gw: std::net::IpAddr = "fd00::fe".parse().unwrap();
        let only6 = NetSetup::parse("afxdp:v0", &["fd00::1/120"], &[gw]).unwrap();
        assert_eq!(
            (only6.gateway, only6.gateway6),
            (None, Some("fd00::fe".parse().unwrap()))
        );
        let two = NetSetup::parse("afxdp:v0", &["fd00::1/120"], &[gw, gw]);
        assert!(two.err().unwrap().contains("one gateway per family"));
        assert_eq!(
            (only6.ip, only6.prefix_len),
            ("0.0.0.0".parse().unwrap(), 32)
        );
        assert_eq!(only6.ipv6, vec![("fd00::1".parse().unwrap(), 120)]);
        let err = |ips: &[&str]| NetSetup::parse("afxdp:v0", ips, &[]).err().unwrap();
        assert!(err(&[]).contains("give an address"));
        assert!(err(&["10.9.0.1/24", "10.9.0.2/24"]).contains("one IPv4 address only"));
        assert!(err(&["10.9.0.1/33"]).contains("1..32"));
        assert!(err(&["10.9.0.1/24", "fd00::1/129"]).contains("1..128"));
        assert!(err(&["10.9.0.1/24", "ff02::1/64"]).contains("unicast"));
        assert!(err(&["nope/24"]).contains("not an IP address"));
        assert!(err(&["10.9.0.1"]).contains("ADDR/PREFIX"));
    }

    #[test]
    fn the_receiver_writes_whole_pages_until_the_end() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let mut app = RecvApp::new(
            9,
            Arc::default(),
            Arc::new(|| Ok(Box::new(std::io::sink()) as Box<dyn Write + Send>)),
            false,
            Some(Algorithm::Blake3),
            Arc::default(),
        );
        app.sink = Some(Box::new(Recorder(writes.clone())));
        // Segment-sized pieces, then one large piece, then a short tail.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut at = 0;
        for len in std::iter::repeat_n(1448, 1000).chain([1_500_000, 48_001]) {
            let end = (at + len).min(data.len());
            app.take(&data[at..end]).unwrap();
            at = end;
        }
        app.take(&data[at..]).unwrap();
        app.flush_staged().unwrap();
        let writes = writes.lock().unwrap();
        let (last, whole) = writes.split_last().unwrap();
        for w in whole {
            assert_eq!(w.len() % WRITE_ALIGN, 0, "a write of {} bytes", w.len());
        }
        assert!(!last.is_empty());
        assert_eq!(writes.concat(), data, "every byte, in order");
    }
}
