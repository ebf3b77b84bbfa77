//! The XDP program that sends the frames our stack serves to our AF_XDP
//! socket for the queue they arrived on, and passes everything else to
//! the kernel: IPv4 frames addressed to one of our addresses and ARP
//! frames whose target is one of them (requests for us, replies to us).
//! The host keeps its other addresses, IPv6 (neighbour discovery) and
//! whatever else arrives on the interface. It is loaded and attached with
//! the bpf(2) syscall directly: twenty instructions do not justify a BPF
//! toolchain.
//!
//! It is attached through a BPF link, which the kernel detaches when the
//! last file descriptor to it closes: when we exit or crash, the interface
//! is left clean.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// XDP_FLAGS_SKB_MODE: generic XDP, which every driver (veth included) has.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// XDP_FLAGS_DRV_MODE: the driver's own XDP hook (veth has one).
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;
/// The program copes with multi-buffer frames (kernel 5.18+).
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// `union bpf_attr`, as a zeroed block large enough for every command used.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn put_u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn put_u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<i32> {
    // SAFETY: `attr` is a valid, writable bpf_attr-sized block for the
    // duration of the call, and its size is passed along.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The XSKMAP (queue index -> socket), the program, and the link that
/// keeps it attached.
pub struct XdpRedirect {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl XdpRedirect {
    /// Loads the program for `addrs` (none: every frame is redirected, for
    /// raw device benchmarks) and attaches it to `ifindex`.
    ///
    /// With `frags` the program declares that it handles multi-buffer
    /// frames (it reads only the first 42 bytes, which are always in the
    /// first buffer), so the kernel hands it frames larger than a page,
    /// such as the 64 KB TSO/GSO segments a local veth peer sends, instead
    /// of dropping them.
    pub fn attach(
        ifindex: u32,
        queues: u32,
        flags: u32,
        addrs: &[Ipv4Addr],
        frags: bool,
    ) -> io::Result<Self> {
        let mut a = Attr::new();
        a.put_u32(0, BPF_MAP_TYPE_XSKMAP)
            .put_u32(4, 4)
            .put_u32(8, 4)
            .put_u32(12, queues.max(1));
        let map = owned(bpf(BPF_MAP_CREATE, &mut a)?);

        let insns = program(map.as_raw_fd(), addrs);
        let license = b"Dual MIT/GPL\0";
        let mut log = vec![0u8; 4096];
        let mut a = Attr::new();
        a.put_u32(0, BPF_PROG_TYPE_XDP)
            .put_u32(4, insns.len() as u32)
            .put_u64(8, insns.as_ptr() as u64)
            .put_u64(16, license.as_ptr() as u64)
            .put_u32(24, 1)
            .put_u32(28, log.len() as u32)
            .put_u64(32, log.as_mut_ptr() as u64)
            .put_u32(44, if frags { BPF_F_XDP_HAS_FRAGS } else { 0 })
            .put_u32(68, BPF_XDP); // expected_attach_type
        let prog = match bpf(BPF_PROG_LOAD, &mut a) {
            Ok(fd) => owned(fd),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let msg = String::from_utf8_lossy(&log[..end]);
                return Err(io::Error::new(
                    e.kind(),
                    format!("loading the XDP program: {e}; verifier: {msg}"),
                ));
            }
        };
        let mut a = Attr::new();
        a.put_u32(0, prog.as_raw_fd() as u32)
            .put_u32(4, ifindex)
            .put_u32(8, BPF_XDP)
            .put_u32(12, flags);
        let link = owned(bpf(BPF_LINK_CREATE, &mut a)?);
        Ok(XdpRedirect {
            map,
            _prog: prog,
            _link: link,
        })
    }

    /// Steers frames of `queue` to the socket `fd`.
    pub fn register(&self, queue: u32, fd: i32) -> io::Result<()> {
        let (key, value) = (queue, fd as u32);
        let mut a = Attr::new();
        a.put_u32(0, self.map.as_raw_fd() as u32)
            .put_u64(8, &key as *const u32 as u64)
            .put_u64(16, &value as *const u32 as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
    }
}

/// Where a jump goes, resolved when the program is assembled.
#[derive(Clone, Copy, PartialEq)]
enum Label {
    Pass,
    Arp,
    Check,
    Redirect,
}

/// The program, as instructions. Packet bytes are read as little-endian
/// words, so the constants below are network-order values byte-swapped:
/// EtherType 0x0800 reads as 0x0008, 0x0806 as 0x0608, and an address
/// a.b.c.d as the u32 with bytes [a, b, c, d].
///
/// ```text
///       r6 = ctx; r2 = data; r3 = data_end
///       if data + 34 > data_end goto pass
///       r5 = ethertype
///       if r5 != IPv4 goto arp
///       r5 = IPv4 destination (bytes 30..34); goto check
/// arp:  if r5 != ARP goto pass
///       if data + 42 > data_end goto pass
///       r5 = ARP target protocol address (bytes 38..42)
/// check: if (u32)r5 == addr goto redirect   (one per address)
/// pass: return XDP_PASS
/// redirect: return bpf_redirect_map(xskmap, ctx->rx_queue_index, XDP_PASS)
/// ```
fn program(map_fd: i32, addrs: &[Ipv4Addr]) -> Vec<u64> {
    // (instruction, jump target to patch into its offset)
    let mut code: Vec<(u64, Option<Label>)> = Vec::new();
    let mut labels: Vec<(Label, usize)> = Vec::new();
    let op = |code: &mut Vec<(u64, Option<Label>)>, i: u64| code.push((i, None));
    let jump = |code: &mut Vec<(u64, Option<Label>)>, i: u64, to: Label| code.push((i, Some(to)));
    if !addrs.is_empty() {
        op(&mut code, insn(0xbf, 6, 1, 0, 0)); // r6 = r1
        op(&mut code, insn(0x61, 2, 1, 0, 0)); // r2 = ctx->data
        op(&mut code, insn(0x61, 3, 1, 4, 0)); // r3 = ctx->data_end
        op(&mut code, insn(0xbf, 4, 2, 0, 0)); // r4 = r2
        op(&mut code, insn(0x07, 4, 0, 0, 34)); // r4 += 34
        jump(&mut code, insn(0x2d, 4, 3, 0, 0), Label::Pass); // if r4 > r3
        op(&mut code, insn(0x69, 5, 2, 12, 0)); // r5 = ethertype
        jump(&mut code, insn(0x55, 5, 0, 0, 0x0008), Label::Arp); // != IPv4
        op(&mut code, insn(0x61, 5, 2, 30, 0)); // r5 = IPv4 destination
        jump(&mut code, insn(0x05, 0, 0, 0, 0), Label::Check);
        labels.push((Label::Arp, code.len()));
        jump(&mut code, insn(0x55, 5, 0, 0, 0x0608), Label::Pass); // != ARP
        op(&mut code, insn(0xbf, 4, 2, 0, 0)); // r4 = r2
        op(&mut code, insn(0x07, 4, 0, 0, 42)); // r4 += 42
        jump(&mut code, insn(0x2d, 4, 3, 0, 0), Label::Pass); // if r4 > r3
        op(&mut code, insn(0x61, 5, 2, 38, 0)); // r5 = ARP target address
        labels.push((Label::Check, code.len()));
        for a in addrs {
            let want = u32::from_le_bytes(a.octets()) as i32;
            // jmp32: compares the low 32 bits, so no sign extension of imm.
            jump(&mut code, insn(0x16, 5, 0, 0, want), Label::Redirect);
        }
        labels.push((Label::Pass, code.len()));
        op(&mut code, insn(0xb7, 0, 0, 0, XDP_PASS)); // r0 = XDP_PASS
        op(&mut code, insn(0x95, 0, 0, 0, 0)); // exit
        labels.push((Label::Redirect, code.len()));
        op(&mut code, insn(0x61, 2, 6, 16, 0)); // r2 = ctx->rx_queue_index
    } else {
        op(&mut code, insn(0x61, 2, 1, 16, 0)); // r2 = ctx->rx_queue_index
    }
    op(&mut code, insn(0x18, 1, 1, 0, map_fd)); // ld_imm64 r1 = map (src 1: fd)
    op(&mut code, insn(0, 0, 0, 0, 0));
    op(&mut code, insn(0xb7, 3, 0, 0, XDP_PASS)); // r3 = XDP_PASS if no socket
    op(&mut code, insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP));
    op(&mut code, insn(0x95, 0, 0, 0, 0)); // exit
    code.iter()
        .enumerate()
        .map(|(at, &(i, to))| match to {
            None => i,
            Some(to) => {
                let target = labels.iter().find(|l| l.0 == to).expect("label placed").1;
                let off = (target as i64 - at as i64 - 1) as i16;
                (i & !(0xffff << 16)) | u64::from(off as u16) << 16
            }
        })
        .collect()
}

/// One `struct bpf_insn` as its 8 bytes (little-endian host assumed, as
/// on x86_64 and aarch64).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from((src << 4) | (dst & 0xf)) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

#[cfg(test)]
mod tests {
    use super::{insn, program};
    use std::net::Ipv4Addr;

    /// Decodes (code, dst, src, off, imm) back out of an instruction.
    fn parts(i: u64) -> (u8, u8, u8, i16, i32) {
        let b = i.to_le_bytes();
        (
            b[0],
            b[1] & 0xf,
            b[1] >> 4,
            i16::from_le_bytes([b[2], b[3]]),
            i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        )
    }

    #[test]
    fn the_filter_jumps_land_where_they_should() {
        let addrs = [Ipv4Addr::new(10, 1, 2, 200), Ipv4Addr::new(192, 0, 2, 9)];
        let p = program(7, &addrs);
        let at = |k: usize| parts(p[k]);
        // Every jump lands inside the program, forward.
        for (k, &i) in p.iter().enumerate() {
            let (code, _, _, off, _) = parts(i);
            if matches!(code, 0x05 | 0x2d | 0x55 | 0x16) {
                assert!(off >= 0 && k + 1 + (off as usize) < p.len(), "jump at {k}");
            }
        }
        // The address compares are jmp32 with the address bytes as read
        // little-endian from the packet (no sign extension trouble for
        // .200), and they jump to the redirect tail.
        let cmp: Vec<usize> = (0..p.len()).filter(|&k| at(k).0 == 0x16).collect();
        assert_eq!(cmp.len(), 2);
        assert_eq!(at(cmp[0]).4 as u32, u32::from_le_bytes([10, 1, 2, 200]));
        assert_eq!(at(cmp[1]).4 as u32, u32::from_le_bytes([192, 0, 2, 9]));
        let redirect = cmp[0] + 1 + at(cmp[0]).3 as usize;
        assert_eq!(
            at(redirect),
            (0x61, 2, 6, 16, 0),
            "rx_queue_index from saved ctx"
        );
        assert_eq!(at(redirect + 1).0, 0x18);
        assert_eq!(at(redirect + 1).4, 7, "map fd");
        // Right after the compares: return XDP_PASS.
        assert_eq!(at(cmp[1] + 1), (0xb7, 0, 0, 0, 2));
        assert_eq!(at(cmp[1] + 2).0, 0x95);
        // The bounds checks and the first one's target (pass).
        assert_eq!(at(5).0, 0x2d);
        assert_eq!(5 + 1 + at(5).3 as usize, cmp[1] + 1);
        // Without addresses: the old redirect-everything program.
        assert_eq!(program(7, &[]).len(), 6);
    }

    #[test]
    fn instruction_encoding() {
        // ldxw r2, [r1+16]: 61 12 10 00 00 00 00 00
        assert_eq!(
            insn(0x61, 2, 1, 16, 0).to_le_bytes(),
            [0x61, 0x12, 0x10, 0, 0, 0, 0, 0]
        );
        // call 51: 85 00 00 00 33 00 00 00
        assert_eq!(
            insn(0x85, 0, 0, 0, 51).to_le_bytes(),
            [0x85, 0, 0, 0, 0x33, 0, 0, 0]
        );
        assert_eq!(insn(0xb7, 3, 0, 0, -1).to_le_bytes()[4..], [0xff; 4]);
    }
}
