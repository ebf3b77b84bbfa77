//! A userspace impairment forwarder (this kernel has no netem): it bridges
//! Ethernet frames between two interfaces of a middle namespace, one
//! AF_PACKET socket on each, and on the way drops, duplicates, reorders,
//! corrupts, delays and rate-limits them, each direction with its own
//! seeded random sequence.
//!
//! Both ends sit on one subnet (`Spec::bridge`); ARP passes through like
//! any frame. Only IPv4 frames are impaired, so neighbours are always
//! found and what is tested is what TCP does about a bad path.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What happens to each IPv4 frame, independently in each direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairments {
    pub loss: f64,
    pub duplicate: f64,
    /// Held back and sent after the next frame (or after 2 ms).
    pub reorder: f64,
    /// One bit flipped somewhere after the Ethernet header.
    pub corrupt: f64,
    pub delay: Duration,
    /// Bits per second, both directions each; `None` is unlimited.
    pub rate: Option<u64>,
    pub seed: u64,
}

/// What the forwarder did, readable while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    pub corrupted: AtomicU64,
    /// Frames the outgoing interface would not take (counted, not retried).
    pub send_failed: AtomicU64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "forwarded {} dropped {} duplicated {} reordered {} corrupted {} send-failed {}",
            self.forwarded.load(Relaxed),
            self.dropped.load(Relaxed),
            self.duplicated.load(Relaxed),
            self.reordered.load(Relaxed),
            self.corrupted.load(Relaxed),
            self.send_failed.load(Relaxed)
        )
    }
}

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One direction's impairment state: what it decides is sent by `out`.
struct Direction {
    rng: Rng,
    held: Option<(Vec<u8>, Instant)>,
    queue: VecDeque<(Instant, Vec<u8>)>,
    link_free: Instant,
}

const REORDER_HOLD: Duration = Duration::from_millis(2);

impl Direction {
    fn new(seed: u64) -> Direction {
        Direction {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            held: None,
            queue: VecDeque::new(),
            link_free: Instant::now(),
        }
    }

    /// Decides the fate of one received frame; frames to send go to `queue`.
    fn take(&mut self, mut frame: Vec<u8>, imp: &Impairments, stats: &Stats, now: Instant) {
        let ipv4 = frame.len() > 14 && frame[12..14] == [0x08, 0x00];
        if !ipv4 {
            self.emit(frame, imp, now);
            return;
        }
        if self.rng.chance(imp.loss) {
            stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.rng.chance(imp.corrupt) {
            let at = 14 + (self.rng.next_u64() as usize) % (frame.len() - 14);
            frame[at] ^= 1 << (self.rng.next_u64() % 8);
            stats.corrupted.fetch_add(1, Relaxed);
        }
        let dup = self.rng.chance(imp.duplicate);
        if self.held.is_none() && self.rng.chance(imp.reorder) {
            self.held = Some((frame, now));
            stats.reordered.fetch_add(1, Relaxed);
            return;
        }
        if dup {
            stats.duplicated.fetch_add(1, Relaxed);
            self.emit(frame.clone(), imp, now);
        }
        self.emit(frame, imp, now);
        // A held frame goes out after the one that overtook it.
        if let Some((f, _)) = self.held.take() {
            self.emit(f, imp, now);
        }
    }

    fn emit(&mut self, frame: Vec<u8>, imp: &Impairments, now: Instant) {
        let mut at = now + imp.delay;
        if let Some(rate) = imp.rate {
            at = at.max(self.link_free);
            self.link_free =
                at + Duration::from_nanos(frame.len() as u64 * 8 * 1_000_000_000 / rate.max(1));
        }
        self.queue.push_back((at, frame));
    }

    /// Frames whose time has come; a held frame waits at most 2 ms.
    fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self
            .held
            .as_ref()
            .is_some_and(|(_, t)| now - *t >= REORDER_HOLD)
        {
            let (f, _) = self.held.take().expect("checked");
            self.queue.push_back((now, f));
        }
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(t, _)| *t <= now) {
            out.push(self.queue.pop_front().expect("checked").1);
        }
        out
    }
}

/// An AF_PACKET socket bound to one interface, promiscuous.
struct Port {
    fd: libc::c_int,
}

impl Port {
    fn open(ifname: &str) -> io::Result<Port> {
        let name =
            std::ffi::CString::new(ifname).map_err(|_| io::Error::other("bad interface name"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::other(format!(
                "no interface {ifname} in this namespace"
            )));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2); the descriptor is owned by Port.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let port = Port { fd };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: bind(2) with a sockaddr_ll of the size we pass.
        let r = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: packet_mreq is plain data.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = index as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        let big: libc::c_int = 8 << 20;
        // SAFETY: setsockopt(2) with pointers to values of the sizes passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            );
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&big as *const libc::c_int).cast(),
                4,
            );
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&big as *const libc::c_int).cast(),
                4,
            );
        }
        Ok(port)
    }

    /// The next frame that arrived on the interface (not one we sent).
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: as above.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: recvfrom(2) into a buffer of buf.len() bytes and an
            // address of `len` bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n <= 0 {
                return None;
            }
            if from.sll_pkttype != libc::PACKET_OUTGOING {
                return Some(n as usize);
            }
        }
    }

    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: send(2) from a buffer of frame.len() bytes.
        unsafe {
            libc::send(self.fd, frame.as_ptr().cast(), frame.len(), 0) == frame.len() as isize
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Bridges `a` and `b` (interfaces of the calling thread's namespace)
/// until `stop` is set, impairing as `imp` says.
pub fn forward(
    a: &str,
    b: &str,
    imp: Impairments,
    stop: &AtomicBool,
    stats: &Stats,
) -> io::Result<()> {
    let ports = [Port::open(a)?, Port::open(b)?];
    let mut dirs = [Direction::new(imp.seed), Direction::new(imp.seed ^ 0x5555)];
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Relaxed) {
        let mut fds = [
            libc::pollfd {
                fd: ports[0].fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: ports[1].fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let waiting = dirs.iter().any(|d| d.held.is_some() || !d.queue.is_empty());
        // SAFETY: poll(2) on two pollfds we own.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, if waiting { 0 } else { 10 }) };
        let now = Instant::now();
        for (i, dir) in dirs.iter_mut().enumerate() {
            // Frames arriving on port i leave by the other one.
            for _ in 0..256 {
                let Some(n) = ports[i].recv(&mut buf) else {
                    break;
                };
                dir.take(buf[..n].to_vec(), &imp, stats, now);
            }
            for f in dir.due(now) {
                if ports[1 - i].send(&f) {
                    stats.forwarded.fetch_add(1, Relaxed);
                } else {
                    stats.send_failed.fetch_add(1, Relaxed);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_frame(i: u8) -> Vec<u8> {
        sized(i, 60)
    }

    fn sized(i: u8, len: usize) -> Vec<u8> {
        let mut f = vec![i; len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    #[test]
    fn each_impairment_happens_at_about_its_rate_and_arp_passes_untouched() {
        let imp = Impairments {
            loss: 0.03,
            duplicate: 0.01,
            reorder: 0.03,
            corrupt: 0.001,
            seed: 9,
            ..Default::default()
        };
        let stats = Stats::default();
        let mut d = Direction::new(imp.seed);
        let now = Instant::now();
        let n = 100_000u32;
        for i in 0..n {
            d.take(ipv4_frame(i as u8), &imp, &stats, now);
        }
        let out = d.due(now + REORDER_HOLD);
        let pct = |c: &AtomicU64| c.load(Relaxed) as f64 / f64::from(n) * 100.0;
        assert!((2.5..3.5).contains(&pct(&stats.dropped)), "{stats}");
        assert!((2.5..3.5).contains(&pct(&stats.reordered)), "{stats}");
        assert!((0.7..1.3).contains(&pct(&stats.duplicated)), "{stats}");
        assert!((0.05..0.2).contains(&pct(&stats.corrupted)), "{stats}");
        let sent = n as u64 - stats.dropped.load(Relaxed) + stats.duplicated.load(Relaxed);
        assert_eq!(
            out.len() as u64,
            sent,
            "every frame not dropped leaves, duplicates twice"
        );
        // The same seed, the same decisions.
        let again = Stats::default();
        let mut d2 = Direction::new(imp.seed);
        for i in 0..1000u32 {
            d2.take(ipv4_frame(i as u8), &imp, &again, now);
        }
        let mut d3 = Direction::new(imp.seed);
        let third = Stats::default();
        for i in 0..1000u32 {
            d3.take(ipv4_frame(i as u8), &imp, &third, now);
        }
        assert_eq!(again.to_string(), third.to_string());
        // ARP is never impaired.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let all_loss = Impairments { loss: 1.0, ..imp };
        let mut d4 = Direction::new(1);
        d4.take(arp.clone(), &all_loss, &Stats::default(), now);
        assert_eq!(d4.due(now), vec![arp]);
    }

    #[test]
    fn a_rate_limit_spaces_frames_and_a_delay_holds_them() {
        let imp = Impairments {
            delay: Duration::from_millis(5),
            rate: Some(8_000_000), // 1 byte per microsecond
            ..Default::default()
        };
        let mut d = Direction::new(1);
        let now = Instant::now();
        d.link_free = now;
        for i in 0..3 {
            d.take(sized(i, 1000), &imp, &Stats::default(), now);
        }
        assert!(d.due(now + Duration::from_millis(4)).is_empty(), "delayed");
        assert_eq!(
            d.due(now + Duration::from_micros(6_500)).len(),
            2,
            "1 ms per 1000 bytes"
        );
        assert_eq!(d.due(now + Duration::from_millis(8)).len(), 1);
    }
}
