//! The connection table: connections in a slab addressed by handle, found
//! by 4-tuple; listeners by local port with their accept backlogs.

use crate::tcp::{Config, Connection, State};
use crate::time::Instant;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// A connection's address: both ends, of one family (an interface may
/// hold several addresses: one IPv4, any IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
}

/// One write of 36 bytes (IPv4 addresses as IPv4-mapped IPv6), where the
/// derived hash made eight of the map's keyed SipHash: every received
/// segment is looked up, and that was most of the lookup's cost. Equal
/// tuples give equal bytes; the families only share hashes, never
/// equality.
impl Hash for Tuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mapped = |ip: IpAddr| match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        let mut key = [0u8; 36];
        key[..16].copy_from_slice(&mapped(self.local_ip));
        key[16..32].copy_from_slice(&mapped(self.remote_ip));
        key[32..34].copy_from_slice(&self.local_port.to_ne_bytes());
        key[34..].copy_from_slice(&self.remote_port.to_ne_bytes());
        state.write(&key);
    }
}

impl Tuple {
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.local_ip, self.local_port)
    }
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.remote_ip, self.remote_port)
    }
    /// The tuple of a segment we sent from `src` to `dst` (as an ICMP
    /// error quotes it).
    pub fn of_sent(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> Self {
        Tuple {
            local_ip: src,
            local_port: src_port,
            remote_ip: dst,
            remote_port: dst_port,
        }
    }
    /// The tuple of a segment that arrived from `remote` to `local`.
    pub fn of_segment(local: IpAddr, remote: IpAddr, dst_port: u16, src_port: u16) -> Self {
        Tuple {
            local_ip: local,
            local_port: dst_port,
            remote_ip: remote,
            remote_port: src_port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub(crate) usize);

/// Slab slots kept however empty it gets.
const KEEP_SLOTS: usize = 1024;

pub(crate) struct Entry {
    pub tuple: Tuple,
    /// Boxed: a free slot then costs a pointer's worth, not a connection's.
    pub conn: Box<Connection>,
    /// The user let go of it: remove once CLOSED.
    pub released: bool,
    /// Spawned by a listener and not accepted yet.
    pub in_backlog: bool,
    /// The deadline this connection holds in the timer wheel, if any.
    pub timer: Option<Instant>,
    /// Touched since timers were last synced (queued in `TcpTable::dirty`).
    pub dirty: bool,
    /// Waiting in `TcpTable::ready` for the transmit phase.
    pub queued: bool,
    /// What this entry counts towards the table's totals (`account`).
    pub charge: usize,
    pub in_time_wait: bool,
    /// Waiting in `TcpTable::activity` for the application layer.
    pub active: bool,
    /// IPv6's flow label for the connection's packets (RFC 6437): set
    /// once by the interface, so every packet of it carries the same.
    pub flow_label: u32,
}

pub(crate) struct Listener {
    pub cfg: Config,
    /// Connections spawned by SYNs, half-open or established, until
    /// accepted: at most `max_backlog` half-open ones (beyond that SYNs
    /// get cookies) and as many again made from cookies.
    pub backlog: VecDeque<Handle>,
    pub max_backlog: usize,
    /// When the last SYN cookie went out: cookies are accepted only for a
    /// while after (a blind guess has nothing to aim at otherwise).
    pub cookie_sent_at: Option<Instant>,
}

/// Hashes a port (the listeners' key) with one multiplication, folded
/// so that both the low bits (where the map looks first) and the top
/// ones (the tag it compares) depend on every bit of the port.
#[derive(Default)]
pub(crate) struct PortHasher(u64);

impl Hasher for PortHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u16(u16::from(b));
        }
    }
    fn write_u16(&mut self, port: u16) {
        self.0 = (self.0 ^ u64::from(port)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

#[derive(Default)]
pub(crate) struct TcpTable {
    pub slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_tuple: HashMap<Tuple, Handle>,
    /// The tuple `find` answered last and its handle: in bulk nearly
    /// every segment is the same connection's, and a match here skips
    /// hashing. Forgotten whenever `by_tuple` changes.
    last_found: Cell<Option<(Tuple, Handle)>>,
    /// Keyed by port with a multiplicative hash, not SipHash: only the
    /// application adds listeners, so no peer can choose keys that
    /// collide, and `accept` looks up every listening port on every loop
    /// of a server.
    pub listeners: HashMap<u16, Listener, BuildHasherDefault<PortHasher>>,
    /// Touched since the last timer sync.
    pub dirty: Vec<Handle>,
    /// Touched since the last reap.
    pub reap_candidates: Vec<Handle>,
    /// Connections that may have something to send: only a touched
    /// connection can (input, a user call or a timer changed it), so the
    /// transmit phase visits these instead of every connection.
    pub ready: VecDeque<Handle>,
    /// Buffer bytes the connections hold, and how many are in TIME-WAIT
    /// (which hold none), kept current by `account`.
    pub buffer_bytes: usize,
    pub time_wait: usize,
    /// Connections that segments, timers or the network changed since the
    /// application layer last asked (`Interface::take_activity`): the
    /// only ones that can have new events for it.
    pub activity: Vec<Handle>,
    /// Set once an application layer asks for activity; until then none
    /// is recorded (the socket API polls its streams itself).
    pub tracking: bool,
    /// Connections done with but for TIME-WAIT, as compact records.
    pub time_waits: super::time_waits::TimeWaits,
}

impl TcpTable {
    pub fn insert(&mut self, tuple: Tuple, conn: Connection, in_backlog: bool) -> Handle {
        let entry = Entry {
            tuple,
            conn: Box::new(conn),
            released: false,
            in_backlog,
            timer: None,
            dirty: true,
            queued: true,
            charge: 0,
            in_time_wait: false,
            active: false,
            flow_label: 0,
        };
        // Free indices past a slab that shrank are gone; only once none is
        // left does the slab grow (so no stale index can name a new slot).
        let free = std::iter::from_fn(|| self.free.pop()).find(|&i| i < self.slots.len());
        let i = match free {
            Some(i) => {
                self.slots[i] = Some(entry);
                i
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.by_tuple.insert(tuple, Handle(i));
        self.last_found.set(None);
        self.account(Handle(i));
        self.dirty.push(Handle(i));
        self.ready.push_back(Handle(i));
        Handle(i)
    }

    /// The connection may have changed its timers: resync it after this poll.
    pub fn touch(&mut self, h: Handle) -> Option<&mut Entry> {
        let e = self.slots.get_mut(h.0).and_then(Option::as_mut)?;
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(h);
        }
        if !e.queued {
            e.queued = true;
            self.ready.push_back(h);
        }
        Some(e)
    }

    /// Something other than the application changed `h`.
    /// Marks `h`'s timers for a resync without queueing it to send.
    pub fn mark_dirty(&mut self, h: Handle) {
        if let Some(e) = self.slots.get_mut(h.0).and_then(Option::as_mut) {
            if !e.dirty {
                e.dirty = true;
                self.dirty.push(h);
            }
        }
    }

    pub fn note_activity(&mut self, h: Handle) {
        if !self.tracking {
            return;
        }
        if let Some(e) = self.slots.get_mut(h.0).and_then(Option::as_mut) {
            if !e.active {
                e.active = true;
                self.activity.push(h);
            }
        }
    }

    pub fn get(&self, h: Handle) -> Option<&Entry> {
        self.slots.get(h.0).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, h: Handle) -> Option<&mut Entry> {
        self.slots.get_mut(h.0).and_then(Option::as_mut)
    }

    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// The connection at `tuple`, if any.
    pub fn find(&self, tuple: &Tuple) -> Option<Handle> {
        if let Some((t, h)) = self.last_found.get() {
            if t == *tuple {
                return Some(h);
            }
        }
        let h = *self.by_tuple.get(tuple)?;
        self.last_found.set(Some((*tuple, h)));
        Some(h)
    }

    /// Removes connections (among those touched lately) that are finished:
    /// closed and released by the user, or spawned by a listener and closed
    /// before its handshake was done, or returned to LISTEN by a reset. Released
    /// ones in TIME-WAIT with nothing left to send become compact records
    /// (at most `max_time_wait`); returns how many older records that
    /// recycled.
    #[inline]
    pub fn reap(&mut self, max_time_wait: usize) -> u64 {
        // Most polls touched nothing: a check, not a call.
        if self.reap_candidates.is_empty() {
            return 0;
        }
        self.reap_touched(max_time_wait)
    }

    fn reap_touched(&mut self, max_time_wait: usize) -> u64 {
        let mut recycled = 0;
        // Emptied in place below, keeping its capacity.
        let mut candidates = std::mem::take(&mut self.reap_candidates);
        for h in candidates.drain(..) {
            let Some(e) = self.get(h) else { continue };
            let st = e.conn.state();
            // A reset connection still waiting for accept stays (accept
            // returns it closed, with its data), unless it never was
            // acceptable.
            let done = (st == State::Closed
                && (e.released || (e.in_backlog && !e.conn.is_acceptable())))
                || (st == State::Listen && e.in_backlog);
            let record = (e.released && !e.queued)
                .then(|| e.conn.time_wait_record())
                .flatten();
            if done {
                self.remove(h);
            } else if let Some(tw) = record {
                let tuple = e.tuple;
                self.remove(h);
                recycled += self.time_waits.insert(tuple, tw, max_time_wait);
            }
        }
        candidates.append(&mut self.reap_candidates);
        self.reap_candidates = candidates;
        recycled
    }

    /// After a spike, free slots at the slab's end are cut off (indices
    /// past the end left on the free list are skipped by `insert`), and
    /// once most of its room is unused, memory goes back: each time at
    /// least half of it, so the work stays in proportion.
    fn give_back_slots(&mut self) {
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        let len = self.slots.len();
        if self.slots.capacity() > 4 * len.max(KEEP_SLOTS) {
            self.free.retain(|&i| i < len);
            self.slots.shrink_to(2 * len.max(KEEP_SLOTS));
            self.free.shrink_to(2 * self.free.len().max(KEEP_SLOTS));
        }
        if self.by_tuple.capacity() > 4 * self.by_tuple.len().max(KEEP_SLOTS) {
            self.by_tuple
                .shrink_to(2 * self.by_tuple.len().max(KEEP_SLOTS));
        }
    }

    /// Frees the slot of `h` at once.
    /// Brings the totals up to date with one connection's buffers and
    /// state (called when it is inserted and after it was touched).
    pub fn account(&mut self, h: Handle) {
        let Some(e) = self.slots.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        let charge = e.conn.buffer_capacity();
        let tw = e.conn.state() == State::TimeWait;
        self.buffer_bytes = self.buffer_bytes - e.charge + charge;
        self.time_wait = self.time_wait + usize::from(tw) - usize::from(e.in_time_wait);
        e.charge = charge;
        e.in_time_wait = tw;
    }

    /// Heap bytes held: each connection (boxed, with its buffers and
    /// records), the slab, the maps, the TIME-WAIT records.
    pub fn memory(&self) -> usize {
        let per_conn = std::mem::size_of::<Connection>() + std::mem::size_of::<Entry>();
        self.slots.capacity() * std::mem::size_of::<Option<Entry>>()
            + self.free.capacity() * std::mem::size_of::<usize>()
            + self.by_tuple.capacity() * std::mem::size_of::<(Tuple, Handle, u64)>()
            + self.by_tuple.len() * per_conn
            + self.buffer_bytes
            + self.time_waits.memory()
    }

    /// Connections that are not in TIME-WAIT.
    pub fn active(&self) -> usize {
        self.by_tuple.len() - self.time_wait
    }

    pub fn remove(&mut self, h: Handle) {
        let Some(e) = self.slots.get_mut(h.0).and_then(Option::take) else {
            return;
        };
        self.buffer_bytes -= e.charge;
        self.time_wait -= usize::from(e.in_time_wait);
        if self.by_tuple.get(&e.tuple) == Some(&h) {
            self.by_tuple.remove(&e.tuple);
            self.last_found.set(None);
        }
        if let Some(l) = self.listeners.get_mut(&e.tuple.local_port) {
            l.backlog.retain(|b| *b != h);
        }
        self.free.push(h.0);
        self.give_back_slots();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::SeqNum;
    use std::net::Ipv4Addr;

    fn tuple(remote_port: u16) -> Tuple {
        let ip = |last| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        Tuple::of_segment(ip(1), ip(2), 80, remote_port)
    }

    fn conn() -> Connection {
        Connection::listen(Config::default(), SeqNum(1))
    }

    #[test]
    fn find_follows_every_change_of_the_map() {
        let mut t = TcpTable::default();
        let (a, b) = (tuple(1000), tuple(1001));
        let ha = t.insert(a, conn(), false);
        assert_eq!(t.find(&a), Some(ha));
        assert_eq!(t.find(&a), Some(ha), "asked again, from the last answer");
        // Removed, and its slot reused by another tuple: `a` is gone.
        t.remove(ha);
        let hb = t.insert(b, conn(), false);
        assert_eq!(hb, ha, "the slot is reused");
        assert_eq!(t.find(&a), None);
        assert_eq!(t.find(&b), Some(hb));
        // A new incarnation of `b` in another slot replaces the old one.
        let hb2 = t.insert(b, conn(), false);
        assert_ne!(hb2, hb);
        assert_eq!(t.find(&b), Some(hb2));
        t.remove(hb2);
        assert_eq!(t.find(&b), None);
    }

    /// The listeners' hasher: every port its own hash; neighbouring ports
    /// spread over the top bits the map compares as a tag (an identity
    /// hash leaves them all zero); ports that differ only in high bits
    /// spread over the low bits where the map looks first (a bare
    /// multiplication leaves those equal).
    #[test]
    fn ports_hash_apart_in_the_bits_the_map_probes() {
        use std::collections::HashSet;
        let hash = |p: u16| {
            let mut h = PortHasher::default();
            h.write_u16(p);
            h.finish()
        };
        let all: HashSet<u64> = (0..=u16::MAX).map(hash).collect();
        assert_eq!(all.len(), 1 << 16);
        let tags: HashSet<u64> = (1..=128).map(|p| hash(p) >> 57).collect();
        assert!(tags.len() >= 64, "{} tags for 128 ports", tags.len());
        let starts: HashSet<u64> = (1..64).map(|k| hash(k * 1024) & 63).collect();
        assert!(starts.len() >= 32, "{} places for 63 ports", starts.len());
    }

    #[test]
    fn tuples_differing_in_one_field_are_told_apart() {
        let mut t = TcpTable::default();
        let base = tuple(1000);
        let v6 = |last| IpAddr::V6(Ipv4Addr::new(192, 0, 2, last).to_ipv6_mapped());
        let others = [
            Tuple {
                local_port: 81,
                ..base
            },
            Tuple {
                remote_port: 1001,
                ..base
            },
            Tuple {
                local_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
                ..base
            },
            Tuple {
                remote_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
                ..base
            },
            // The same bytes as IPv6: equal hashes, not equal tuples.
            Tuple {
                local_ip: v6(1),
                remote_ip: v6(2),
                ..base
            },
        ];
        let h = t.insert(base, conn(), false);
        for o in &others {
            assert_eq!(t.find(o), None, "{o:?}");
        }
        let hs: Vec<Handle> = others.iter().map(|o| t.insert(*o, conn(), false)).collect();
        assert_eq!(t.find(&base), Some(h));
        for (o, h) in others.iter().zip(hs) {
            assert_eq!(t.find(o), Some(h), "{o:?}");
        }
    }
}
