//! SYN cookies (RFC 4987 3.6): when a listener's queue is full, a SYN is
//! answered without keeping any state. Our SYN-ACK's sequence number (the
//! cookie) encodes what the connection needs later, keyed so that only we
//! can make one: a coarse clock (64-second ticks), the peer's MSS (one of
//! eight sizes) and a keyed hash of both ends, the peer's ISN, the clock
//! and the MSS index. The ACK that completes the handshake brings the
//! cookie back (as ACK - 1): if it checks out and is at most two ticks
//! old, the connection is made then, as if its SYN had been queued,
//! within the interface's limits like any other.
//!
//! A spoofed SYN flood therefore costs nothing but the SYN-ACKs, and a
//! real client still gets through. The sequence number has no room for
//! the other options, so, as Linux does, they ride in the low six bits of
//! our SYN-ACK's timestamp when the SYN had one: the peer echoes it in
//! every ACK, the handshake's included. Without timestamps a cookie
//! connection goes without window scaling and SACK.
//!
//! Layout, high bit first: tick (5 bits) | MSS index (3) | hash (24).
//! Timestamp: our clock with bits 0-3 the peer's window scale (15: none)
//! and bit 4 SACK permitted.

use crate::tcp::isn::IsnGenerator;
use crate::time::Instant;
use std::net::IpAddr;

/// The MSS values a cookie can name: the largest not above the peer's is
/// used (the common Ethernet, VPN and jumbo sizes).
const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1400, 1440, 1460, 4312, 8960];
const TICK_SECS: u64 = 64;
/// A cookie older than this many ticks is refused (two minutes or so).
const MAX_AGE_TICKS: u64 = 2;

fn tick(now: Instant) -> u64 {
    now.as_millis() / 1000 / TICK_SECS
}

/// The two ends of a connection, as (address, port).
pub type Ends = ((IpAddr, u16), (IpAddr, u16));

/// The cookie to use as our ISS for a SYN from `ends.1` with sequence
/// number `peer_isn` and MSS option `peer_mss` (536 without one).
pub fn make(key: &IsnGenerator, ends: Ends, peer_isn: u32, peer_mss: u16, now: Instant) -> u32 {
    let t = tick(now);
    let idx = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
    ((t as u32 & 0x1f) << 27) | (idx << 24) | keyed(key, ends, peer_isn, t, idx)
}

/// The cookie's 24 hashed bits: over the ends, the peer's ISN, the tick
/// and the MSS index, so that none of them can be changed unseen (a
/// forged index would give a connection a larger MSS than its peer's).
fn keyed(key: &IsnGenerator, ends: Ends, peer_isn: u32, tick: u64, idx: u32) -> u32 {
    key.cookie_hash(ends, peer_isn, (tick << 3) | u64::from(idx)) & 0x00ff_ffff
}

/// Checks the cookie `iss` (the ACK's number less one) for a handshake
/// whose peer ISN was `peer_isn`; returns the MSS it encodes.
pub fn check(key: &IsnGenerator, ends: Ends, peer_isn: u32, iss: u32, now: Instant) -> Option<u16> {
    let now_tick = tick(now);
    let t_low = u64::from(iss >> 27);
    // The tick it was made in: the latest one with these low bits.
    let age = (now_tick.wrapping_sub(t_low)) & 0x1f;
    if age > MAX_AGE_TICKS || age > now_tick {
        return None;
    }
    let t = now_tick - age;
    let idx = (iss >> 24) & 7;
    let want = keyed(key, ends, peer_isn, t, idx);
    (iss & 0x00ff_ffff == want).then(|| MSS_TABLE[idx as usize])
}

const TS_BITS: u32 = 0x3f;
const NO_WSCALE: u32 = 0xf;
const SACK_BIT: u32 = 0x10;

/// Our SYN-ACK's TSval for a cookie: the clock `ts_now` with the options
/// in its low bits, never later than `ts_now` (the peer's RTT sample from
/// it can only come out long, by at most 63 ms).
pub fn options_tsval(ts_now: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let opts = wscale.map_or(NO_WSCALE, |w| u32::from(w.min(14))) | if sack { SACK_BIT } else { 0 };
    let base = if ts_now & TS_BITS >= opts {
        ts_now
    } else {
        ts_now.wrapping_sub(TS_BITS + 1)
    };
    (base & !TS_BITS) | opts
}

/// The options `options_tsval` kept, from the TSecr the peer echoed.
pub fn options_from_tsecr(tsecr: u32) -> (Option<u8>, bool) {
    let w = tsecr & NO_WSCALE;
    ((w != NO_WSCALE).then_some(w as u8), tsecr & SACK_BIT != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_mss_index_is_covered_by_the_hash() {
        let key = IsnGenerator::new([3; 16]);
        let ends = (
            (Ipv4Addr::new(10, 0, 0, 1).into(), 80),
            (Ipv4Addr::new(10, 0, 0, 2).into(), 4000),
        );
        let now = Instant::from_millis(1_000_000);
        let c = make(&key, ends, 77, 536, now);
        assert_eq!(check(&key, ends, 77, c, now), Some(536));
        // The same cookie claiming a jumbo MSS is refused.
        for idx in 1..8u32 {
            let forged = (c & !(7 << 24)) | (idx << 24);
            assert_eq!(check(&key, ends, 77, forged, now), None, "index {idx}");
        }
    }
    #[test]
    fn options_survive_the_timestamp_and_it_never_runs_ahead() {
        for now in [0u32, 5, 63, 64, 1000, u32::MAX] {
            for (ws, sack) in [
                (None, false),
                (Some(7), true),
                (Some(0), false),
                (Some(14), true),
            ] {
                let ts = options_tsval(now, ws, sack);
                assert_eq!(options_from_tsecr(ts), (ws, sack));
                assert!(now.wrapping_sub(ts) < 64, "{ts} vs {now}");
            }
        }
    }

    fn ends() -> Ends {
        (
            (Ipv4Addr::new(10, 0, 0, 1).into(), 80),
            (Ipv4Addr::new(192, 0, 2, 9).into(), 40000),
        )
    }

    #[test]
    fn a_cookie_checks_out_for_two_ticks_and_carries_the_mss() {
        let k = IsnGenerator::new([3; 16]);
        let t0 = Instant::from_millis(1_000_000);
        let c = make(&k, ends(), 77, 1460, t0);
        assert_eq!(check(&k, ends(), 77, c, t0), Some(1460));
        let later = t0 + std::time::Duration::from_secs(2 * TICK_SECS);
        assert_eq!(check(&k, ends(), 77, c, later), Some(1460));
        let too_late = t0 + std::time::Duration::from_secs(4 * TICK_SECS);
        assert_eq!(check(&k, ends(), 77, c, too_late), None, "expired");
        // The MSS rounds down to the table.
        assert_eq!(
            check(&k, ends(), 77, make(&k, ends(), 77, 1500, t0), t0),
            Some(1460)
        );
        assert_eq!(
            check(&k, ends(), 77, make(&k, ends(), 77, 100, t0), t0),
            Some(536)
        );
    }

    #[test]
    fn a_cookie_is_bound_to_its_ends_isn_and_key() {
        let k = IsnGenerator::new([3; 16]);
        let t0 = Instant::from_millis(1_000_000);
        let c = make(&k, ends(), 77, 1460, t0);
        assert_eq!(check(&k, ends(), 78, c, t0), None, "another peer ISN");
        let mut other = ends();
        other.1 .1 = 40001;
        assert_eq!(check(&k, other, 77, c, t0), None, "another port");
        assert_eq!(check(&IsnGenerator::new([4; 16]), ends(), 77, c, t0), None);
        assert_eq!(check(&k, ends(), 77, c ^ 1, t0), None, "a guessed cookie");
    }
}
