//! TCP header and options (RFC 9293 section 3.1, RFC 7323, RFC 2018).

use super::{be16, be32, checksum, HostAddr, WireError};
use crate::device::RxFrame;

pub const MIN_HEADER_LEN: usize = 20;
/// A header with the most options the data offset can say (15 words).
pub const MAX_HEADER_LEN: usize = 60;
pub const MAX_OPTIONS_LEN: usize = 40;
/// At most four SACK blocks fit in 40 option bytes (three with timestamps).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The six classic control bits plus ECE/CWR, kept as the raw byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    pub fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    pub fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    pub fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    pub fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
    pub fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn ece(self) -> bool {
        self.0 & 0x40 != 0
    }
    pub fn cwr(self) -> bool {
        self.0 & 0x80 != 0
    }
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

/// The options this stack understands. Unknown options are skipped on parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks as (left edge, right edge), first `sack_count` valid.
    pub sack_blocks: [(u32, u32); MAX_SACK_BLOCKS],
    pub sack_count: u8,
    /// TCP Fast Open (RFC 7413): a cookie, or a request for one.
    pub fast_open: Option<FastOpen>,
}

/// The Fast Open option: kind 34, or the experimental kind 254 with the
/// magic 0xF989 that Linux still understands and answers in kind.
/// Cookies are kept up to 8 bytes, the size we (and Linux) make: a longer
/// one is recorded by its length only, and so never matches ours. (Every
/// segment's options are copied several times on the way: 8 bytes more
/// here cost 6 % of the instructions per segment.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastOpen {
    /// The cookie's bytes, when `len` (4 to 16; 0 asks for a cookie) is
    /// at most 8.
    cookie: [u8; 8],
    len: u8,
    pub experimental: bool,
}

/// The experimental Fast Open option's magic number (RFC 6994).
const FAST_OPEN_MAGIC: [u8; 2] = [0xf9, 0x89];

impl FastOpen {
    pub fn request(experimental: bool) -> Self {
        FastOpen {
            experimental,
            ..FastOpen::default()
        }
    }

    /// A cookie of up to 16 bytes (the bytes of one longer than 8 are
    /// not kept).
    pub fn with_cookie(cookie: &[u8], experimental: bool) -> Self {
        let mut f = FastOpen::request(experimental);
        f.len = cookie.len().min(16) as u8;
        if cookie.len() <= 8 {
            f.cookie[..cookie.len()].copy_from_slice(cookie);
        }
        f
    }

    /// The option's body (after kind and length). A cookie is 4 to 16
    /// bytes, even (RFC 7413 4.1.1); none asks for one; anything else is
    /// ignored, not fatal. Out of line: only SYNs carry it, and the
    /// per-segment parse stays as small as it was.
    #[cold]
    #[inline(never)]
    fn parse(kind: u8, body: &[u8]) -> Option<FastOpen> {
        let (cookie, experimental) = match kind {
            34 => (body, false),
            _ => (body.strip_prefix(&FAST_OPEN_MAGIC)?, true),
        };
        let n = cookie.len();
        (n == 0 || (4..=16).contains(&n) && n % 2 == 0)
            .then(|| FastOpen::with_cookie(cookie, experimental))
    }

    /// The cookie, if it is at most 8 bytes (None for a longer one).
    pub fn cookie(&self) -> Option<&[u8]> {
        (self.len <= 8).then(|| &self.cookie[..usize::from(self.len)])
    }

    /// Option bytes, without padding (a cookie longer than 8 bytes is
    /// sent as its first 8: we never make or echo one).
    fn option_len(&self) -> usize {
        2 + if self.experimental { 2 } else { 0 } + usize::from(self.len.min(8))
    }
}

impl TcpOptions {
    pub fn sacks(&self) -> &[(u32, u32)] {
        &self.sack_blocks[..usize::from(self.sack_count)]
    }

    /// Parses the options area; any overrun or bad length is an error.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut o = TcpOptions::default();
        o.parse_into(b)?;
        Ok(o)
    }

    /// As `parse`, into options that are all unset: a segment's parse
    /// fills its own field in place, with no copy of the options.
    #[inline]
    fn parse_into(&mut self, b: &[u8]) -> Result<(), WireError> {
        // Nearly every segment of a connection with timestamps carries
        // exactly NOP NOP TS, as both we and Linux lay it out.
        if b.len() == 12 && b[..4] == [1, 1, 8, 10] {
            self.timestamps = Some((be32(b, 4), be32(b, 8)));
            return Ok(());
        }
        self.parse_any(b)
    }

    /// `parse_into` for any options: out of line, so that the common case
    /// above inlines into the segment's parse.
    fn parse_any(&mut self, mut b: &[u8]) -> Result<(), WireError> {
        let o = self;
        while let Some(&kind) = b.first() {
            match kind {
                0 => break, // End of option list.
                1 => {
                    b = &b[1..];
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*b.get(1).ok_or(WireError::BadOption)?);
            if len < 2 || len > b.len() {
                return Err(WireError::BadOption);
            }
            let body = &b[2..len];
            match (kind, body.len()) {
                (2, 2) => o.mss = Some(be16(body, 0)),
                (3, 1) => o.window_scale = Some(body[0]),
                (4, 0) => o.sack_permitted = true,
                (5, n) if n > 0 && n % 8 == 0 && n / 8 <= MAX_SACK_BLOCKS => {
                    for (i, blk) in body.chunks_exact(8).enumerate() {
                        o.sack_blocks[i] = (be32(blk, 0), be32(blk, 4));
                    }
                    o.sack_count = (body.len() / 8) as u8;
                }
                (8, 8) => o.timestamps = Some((be32(body, 0), be32(body, 4))),
                // A known kind with the wrong length is malformed.
                (2..=5 | 8, _) => return Err(WireError::BadOption),
                (34 | 254, _) => o.fast_open = FastOpen::parse(kind, body).or(o.fast_open),
                // Unknown kinds are skipped by their length (RFC 9293 3.1).
                _ => {}
            }
            b = &b[len..];
        }
        Ok(())
    }

    /// Nothing but (perhaps) timestamps.
    fn only_timestamps(&self) -> bool {
        self.mss.is_none()
            && self.window_scale.is_none()
            && !self.sack_permitted
            && self.sack_count == 0
            && self.fast_open.is_none()
    }

    /// The encoded length, padded to a multiple of four.
    pub fn encoded_len(&self) -> usize {
        if self.only_timestamps() {
            return if self.timestamps.is_some() { 12 } else { 0 };
        }
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4; // NOP + 3 bytes
        }
        if self.timestamps.is_some() {
            n += if self.sack_permitted { 10 } else { 12 }; // SACK-permitted shares the pad
        }
        if self.sack_permitted {
            n += if self.timestamps.is_some() { 2 } else { 4 };
        }
        if self.sack_count > 0 {
            n += 4 + 8 * usize::from(self.sack_count); // NOP NOP + blocks
        }
        if let Some(f) = &self.fast_open {
            n += f.option_len().next_multiple_of(4); // NOPs after it
        }
        n
    }

    /// Writes the options in the layout Linux uses; returns the padded length.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        if self.only_timestamps() {
            // The common case, written at once: NOP NOP TS (or nothing).
            let Some((val, ecr)) = self.timestamps else {
                return Ok(0);
            };
            let b = b.get_mut(..12).ok_or(WireError::BufferTooSmall)?;
            b[..4].copy_from_slice(&[1, 1, 8, 10]);
            b[4..8].copy_from_slice(&val.to_be_bytes());
            b[8..12].copy_from_slice(&ecr.to_be_bytes());
            return Ok(12);
        }
        let len = self.encoded_len();
        if len > MAX_OPTIONS_LEN {
            return Err(WireError::BadOption);
        }
        if b.len() < len {
            return Err(WireError::BufferTooSmall);
        }
        let mut i = 0;
        let mut put = |bytes: &[u8]| {
            b[i..i + bytes.len()].copy_from_slice(bytes);
            i += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[2, 4, m[0], m[1]]);
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some((val, ecr))) => {
                put(&[4, 2, 8, 10]);
                put(&val.to_be_bytes());
                put(&ecr.to_be_bytes());
            }
            (false, Some((val, ecr))) => {
                put(&[1, 1, 8, 10]);
                put(&val.to_be_bytes());
                put(&ecr.to_be_bytes());
            }
            (true, None) => put(&[1, 1, 4, 2]),
            (false, None) => {}
        }
        if let Some(ws) = self.window_scale {
            put(&[1, 3, 3, ws]);
        }
        if self.sack_count > 0 {
            put(&[1, 1, 5, 2 + 8 * self.sack_count]);
            for &(l, r) in self.sacks() {
                put(&l.to_be_bytes());
                put(&r.to_be_bytes());
            }
        }
        if let Some(f) = &self.fast_open {
            let n = f.option_len();
            if f.experimental {
                put(&[254, n as u8]);
                put(&FAST_OPEN_MAGIC);
            } else {
                put(&[34, n as u8]);
            }
            put(f.cookie().unwrap_or(&f.cookie));
            for _ in n..n.next_multiple_of(4) {
                put(&[1]);
            }
        }
        Ok(len)
    }
}

/// A parsed TCP segment: header fields, options and the payload in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
    /// The received frame the segment lies in, when the device lets the
    /// connection keep it instead of copying the payload (set by the
    /// interface; `None` from `parse`).
    pub lent: Option<&'a RxFrame<'a>>,
}

impl<'a> TcpSegment<'a> {
    /// Parses a segment and verifies its checksum against the
    /// pseudo-header of `src` and `dst` (either family).
    pub fn parse<A: HostAddr>(b: &'a [u8], src: A, dst: A) -> Result<Self, WireError> {
        let seg = Self::parse_unchecked(b)?;
        let len = u16::try_from(b.len()).map_err(|_| WireError::BadLength)?;
        let sum = A::tcp_pseudo_header(src, dst, len).ok_or(WireError::Unsupported)?;
        if checksum::finish(checksum::accumulate(sum, b)) != 0 {
            return Err(WireError::BadChecksum);
        }
        Ok(seg)
    }

    /// Parses a segment without looking at its checksum: only where the
    /// device has verified it, or the bytes are our own.
    pub fn parse_unchecked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let off = usize::from(b[12] >> 4) * 4;
        if off < MIN_HEADER_LEN || off > b.len() {
            return Err(WireError::BadDataOffset);
        }
        let mut seg = TcpSegment {
            src_port: be16(b, 0),
            dst_port: be16(b, 2),
            seq: be32(b, 4),
            ack: be32(b, 8),
            flags: Flags(b[13]),
            window: be16(b, 14),
            urgent: be16(b, 18),
            options: TcpOptions::default(),
            payload: &b[off..],
            lent: None,
        };
        seg.options.parse_into(&b[MIN_HEADER_LEN..off])?;
        Ok(seg)
    }
}

/// The header fields of a segment to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub options: TcpOptions,
}

impl TcpHeader {
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.encoded_len()
    }

    /// Writes header and options into `b`, leaving the checksum zero.
    /// The payload must already sit (or be written next) at `b[header_len..]`;
    /// call [`fill_checksum`] once it is there.
    #[inline]
    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        if let (true, Some((val, ecr))) = (self.options.only_timestamps(), self.options.timestamps)
        {
            // Every segment of an established connection: the header and
            // its one option written at fixed places, without a length to
            // work out or check piece by piece.
            let b: &mut [u8; 32] = b
                .get_mut(..32)
                .and_then(|b| b.try_into().ok())
                .ok_or(WireError::BufferTooSmall)?;
            b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
            b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
            b[4..8].copy_from_slice(&self.seq.to_be_bytes());
            b[8..12].copy_from_slice(&self.ack.to_be_bytes());
            b[12] = 8 << 4;
            b[13] = self.flags.0;
            b[14..16].copy_from_slice(&self.window.to_be_bytes());
            b[16..20].fill(0); // checksum, urgent pointer
            b[20..24].copy_from_slice(&[1, 1, 8, 10]);
            b[24..28].copy_from_slice(&val.to_be_bytes());
            b[28..32].copy_from_slice(&ecr.to_be_bytes());
            return Ok(32);
        }
        self.emit_any(b)
    }

    /// `emit` for any options (handshakes, SACK blocks): out of line, so
    /// that the common case above inlines where segments are built.
    fn emit_any(&self, b: &mut [u8]) -> Result<usize, WireError> {
        let hl = self.header_len();
        if b.len() < hl {
            return Err(WireError::BufferTooSmall);
        }
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..12].copy_from_slice(&self.ack.to_be_bytes());
        b[12] = ((hl / 4) as u8) << 4;
        b[13] = self.flags.0;
        b[14..16].copy_from_slice(&self.window.to_be_bytes());
        b[16..20].fill(0); // checksum, urgent pointer
        self.options.emit(&mut b[MIN_HEADER_LEN..hl])?;
        Ok(hl)
    }
}

/// True when the checksum field of `segment` holds just the folded
/// pseudo-header sum: the mark of a sender that left the checksum to its
/// device (transmit checksum offload, CHECKSUM_PARTIAL in Linux) and a
/// virtual device (veth) that passed the frame on unfinished.
pub fn is_partial_checksum<A: HostAddr>(segment: &[u8], src: A, dst: A) -> bool {
    let Ok(len) = u16::try_from(segment.len()) else {
        return false;
    };
    if segment.len() < MIN_HEADER_LEN {
        return false;
    }
    let Some(sum) = A::tcp_pseudo_header(src, dst, len) else {
        return false;
    };
    be16(segment, 16) == !checksum::finish(sum)
}

/// Writes a whole segment into `b`: `header`, then the payload of
/// `payload_len` bytes from its parts, each copied and summed for the
/// checksum in one pass. Returns the segment's length.
pub fn emit_segment<'p, A: HostAddr>(
    b: &mut [u8],
    header: &TcpHeader,
    payload: impl IntoIterator<Item = &'p [u8]>,
    payload_len: usize,
    src: A,
    dst: A,
) -> Result<usize, WireError> {
    let hl = header.emit(b)?;
    let total = hl + payload_len;
    if total > b.len() {
        return Err(WireError::BufferTooSmall);
    }
    let len = u16::try_from(total).map_err(|_| WireError::BadLength)?;
    let mut sum = A::tcp_pseudo_header(src, dst, len).ok_or(WireError::Unsupported)?;
    // The header is a multiple of four bytes: the payload starts even.
    sum = checksum::accumulate(sum, &b[..hl]);
    let mut at = hl;
    for part in payload {
        let dst = b
            .get_mut(at..at + part.len())
            .filter(|_| at + part.len() <= total)
            .ok_or(WireError::BadLength)?;
        if at == hl {
            sum = checksum::copy_and_accumulate(sum, dst, part);
        } else {
            let s = checksum::copy_and_accumulate(0, dst, part);
            sum = checksum::add_at(sum, s, at - hl);
        }
        at += part.len();
    }
    if at != total {
        return Err(WireError::BadLength);
    }
    b[16..18].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    Ok(total)
}

/// Computes and stores the TCP checksum of `segment` (header plus payload).
pub fn fill_checksum<A: HostAddr>(segment: &mut [u8], src: A, dst: A) -> Result<(), WireError> {
    if segment.len() < MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let len = u16::try_from(segment.len()).map_err(|_| WireError::BadLength)?;
    segment[16..18].fill(0);
    let sum = A::tcp_pseudo_header(src, dst, len).ok_or(WireError::Unsupported)?;
    let c = checksum::finish(checksum::accumulate(sum, segment));
    segment[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A SYN as Linux hands it to a veth with transmit checksum offload:
    /// the field holds the folded pseudo-header sum, not the checksum.
    #[test]
    fn an_unfinished_checksum_is_told_apart_from_corruption() {
        let (src, dst) = (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 1));
        let h = TcpHeader {
            src_port: 40000,
            dst_port: 80,
            seq: 7,
            flags: Flags::SYN,
            window: 64240,
            ..TcpHeader::default()
        };
        let mut seg = vec![0u8; h.header_len()];
        h.emit(&mut seg).unwrap();
        let sum = checksum::pseudo_header(src, dst, super::super::ipv4::PROTO_TCP, 20);
        let partial = !checksum::finish(sum);
        seg[16..18].copy_from_slice(&partial.to_be_bytes());
        assert_eq!(
            TcpSegment::parse(&seg, src, dst).err(),
            Some(WireError::BadChecksum)
        );
        assert!(is_partial_checksum(&seg, src, dst));
        // Finished, it verifies and is not "partial".
        fill_checksum(&mut seg, src, dst).unwrap();
        assert!(TcpSegment::parse(&seg, src, dst).is_ok());
        assert!(!is_partial_checksum(&seg, src, dst));
        // Any other wrong value is plain corruption.
        seg[16] ^= 0x40;
        assert!(!is_partial_checksum(&seg, src, dst));
    }

    /// A payload in many parts, some of odd length (an owned chunk after
    /// copied bytes in the send buffer), is the same segment as in one.
    #[test]
    fn a_payload_in_parts_of_any_length_sums_as_one() {
        let (src, dst) = (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 1));
        let h = TcpHeader {
            src_port: 40000,
            dst_port: 80,
            seq: 7,
            flags: Flags::ACK,
            window: 1000,
            ..TcpHeader::default()
        };
        let data: Vec<u8> = (0..1449u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut whole = vec![0u8; 2000];
        let n = emit_segment(&mut whole, &h, [&data[..]], data.len(), src, dst).unwrap();
        assert!(TcpSegment::parse(&whole[..n], src, dst).is_ok());
        for cuts in [&[3usize, 4, 1001, 1002][..], &[1, 2, 3, 700], &[1448]] {
            let mut parts = Vec::new();
            let mut from = 0;
            for &c in cuts.iter().chain([&data.len()]) {
                parts.push(&data[from..c]);
                from = c;
            }
            let mut b = vec![0u8; 2000];
            let m = emit_segment(&mut b, &h, parts, data.len(), src, dst).unwrap();
            assert_eq!(b[..m], whole[..n], "cut at {cuts:?}");
        }
        // Parts that do not add up to the length are refused.
        let mut b = vec![0u8; 2000];
        let short = emit_segment(&mut b, &h, [&data[..10]], data.len(), src, dst);
        assert_eq!(short.err(), Some(WireError::BadLength));
    }
}

#[cfg(test)]
mod fast_open_tests {
    use super::*;

    #[test]
    fn fast_open_options_round_trip_in_both_kinds_and_a_request() {
        let cookie = [0x30, 0x21, 0xb9, 0xd8, 0x89, 0x01, 0x7e, 0xeb];
        for (f, bytes) in [
            // Kind 34, 8-byte cookie: 10 bytes, two NOPs after.
            (
                FastOpen::with_cookie(&cookie, false),
                [&[34u8, 10][..], &cookie, &[1, 1]].concat(),
            ),
            // Kind 254 with the magic: 12 bytes.
            (
                FastOpen::with_cookie(&cookie, true),
                [&[254u8, 12, 0xf9, 0x89][..], &cookie].concat(),
            ),
            // A request: kind 34, length 2, padded.
            (FastOpen::request(false), vec![34, 2, 1, 1]),
        ] {
            let o = TcpOptions {
                fast_open: Some(f),
                ..TcpOptions::default()
            };
            let mut b = [0u8; 40];
            let n = o.emit(&mut b).unwrap();
            assert_eq!(&b[..n], &bytes[..]);
            assert_eq!(TcpOptions::parse(&b[..n]).unwrap().fast_open, Some(f));
        }
        // An odd-length cookie is ignored (not a malformed segment).
        let odd = [34u8, 7, 1, 2, 3, 4, 5];
        assert_eq!(TcpOptions::parse(&odd).unwrap().fast_open, None);
    }
}
