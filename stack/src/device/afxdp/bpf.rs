//! The XDP program that sends the frames our stack serves to our AF_XDP
//! socket for the queue they arrived on, and passes everything else to
//! the kernel: IPv4 frames addressed to one of our addresses and ARP
//! frames whose target is one of them (requests for us, replies to us);
//! IPv6 packets addressed to one of ours and neighbour solicitations whose
//! target is one of them (sent to a multicast group the host may share).
//! The host keeps its other addresses of both families and whatever else
//! arrives on the interface. It is loaded and attached with the bpf(2)
//! syscall directly: a few dozen instructions do not justify a BPF
//! toolchain.
//!
//! It is attached through a BPF link, which the kernel detaches when the
//! last file descriptor to it closes: when we exit or crash, the interface
//! is left clean.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// frames (it reads only the first 78 bytes, which are always in the
    /// first buffer), so the kernel hands it frames larger than a page,
    /// such as the 64 KB TSO/GSO segments a local veth peer sends, instead
    /// of dropping them.
    pub fn attach(
        ifindex: u32,
        queues: u32,
        flags: u32,
        addrs: &[IpAddr],
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
    V6,
    /// Past the compare of one IPv6 address (by its index; solicitation
    /// targets after the destinations).
    Next(usize),
    Redirect,
}

/// The program, as instructions. Packet bytes are read as little-endian
/// words, so the constants below are network-order values byte-swapped:
/// EtherType 0x0800 reads as 0x0008, 0x0806 as 0x0608, 0x86dd as 0xdd86,
/// and an address a.b.c.d as the u32 with bytes [a, b, c, d] (an IPv6
/// address as four such words).
///
/// ```text
///       r6 = ctx; r2 = data; r3 = data_end
///       if data + 34 > data_end goto pass
///       r5 = ethertype
///       if r5 == IPv6 goto v6                     (with IPv6 addresses)
///       if r5 != IPv4 goto arp
///       r5 = IPv4 destination (bytes 30..34); goto check
/// arp:  if r5 != ARP goto pass
///       if data + 42 > data_end goto pass
///       r5 = ARP target protocol address (bytes 38..42)
/// check: if (u32)r5 == addr goto redirect   (one per address)
///       goto pass
/// v6:   if data + 54 > data_end goto pass
///       destination (bytes 38..54) == addr: goto redirect (per address)
///       if data + 78 > data_end goto pass
///       if next header (byte 20) != ICMPv6 or type (byte 54) != NS goto pass
///       target (bytes 62..78) == addr: goto redirect (per address)
/// pass: return XDP_PASS
/// redirect: return bpf_redirect_map(xskmap, ctx->rx_queue_index, XDP_PASS)
/// ```
fn program(map_fd: i32, addrs: &[IpAddr]) -> Vec<u64> {
    let v4: Vec<Ipv4Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
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
        if !v6.is_empty() {
            jump(&mut code, insn(0x15, 5, 0, 0, 0xdd86), Label::V6); // == IPv6
        }
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
        for a in &v4 {
            let want = u32::from_le_bytes(a.octets()) as i32;
            // jmp32: compares the low 32 bits, so no sign extension of imm.
            jump(&mut code, insn(0x16, 5, 0, 0, want), Label::Redirect);
        }
        if !v6.is_empty() {
            jump(&mut code, insn(0x05, 0, 0, 0, 0), Label::Pass);
            labels.push((Label::V6, code.len()));
            let bound = |code: &mut Vec<(u64, Option<Label>)>, n: i32| {
                op(code, insn(0xbf, 4, 2, 0, 0)); // r4 = r2
                op(code, insn(0x07, 4, 0, 0, n)); // r4 += n
                jump(code, insn(0x2d, 4, 3, 0, 0), Label::Pass); // if r4 > r3
            };
            // One 128-bit compare: four words, the first three jumping
            // past on a difference, the last to redirect on equality.
            let mut compare = |code: &mut Vec<(u64, Option<Label>)>, at: i16, a: Ipv6Addr, k| {
                let o = a.octets();
                for w in 0..4 {
                    let want = u32::from_le_bytes(o[w * 4..w * 4 + 4].try_into().expect("4"));
                    op(code, insn(0x61, 5, 2, at + 4 * w as i16, 0)); // r5 = word
                    if w < 3 {
                        jump(code, insn(0x56, 5, 0, 0, want as i32), Label::Next(k));
                    // jne32
                    } else {
                        jump(code, insn(0x16, 5, 0, 0, want as i32), Label::Redirect);
                        // jeq32
                    }
                }
                labels.push((Label::Next(k), code.len()));
            };
            bound(&mut code, 54);
            for (k, a) in v6.iter().enumerate() {
                compare(&mut code, 38, *a, k); // destination
            }
            bound(&mut code, 78);
            op(&mut code, insn(0x71, 5, 2, 20, 0)); // r5 = next header (byte)
            jump(&mut code, insn(0x55, 5, 0, 0, 58), Label::Pass); // != ICMPv6
            op(&mut code, insn(0x71, 5, 2, 54, 0)); // r5 = ICMPv6 type
            jump(&mut code, insn(0x55, 5, 0, 0, 135), Label::Pass); // != NS
            for (k, a) in v6.iter().enumerate() {
                compare(&mut code, 62, *a, v6.len() + k); // solicitation target
            }
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
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
        let addrs: [IpAddr; 2] = [
            Ipv4Addr::new(10, 1, 2, 200).into(),
            Ipv4Addr::new(192, 0, 2, 9).into(),
        ];
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

    /// Runs the program's filter over `frame` as the kernel would, for the
    /// instructions it uses: Some(true) redirect, Some(false) pass, None
    /// when it reads past the bounds it checked (the verifier's concern).
    fn run(p: &[u64], frame: &[u8]) -> Option<bool> {
        let mut r = [0u64; 11];
        let mut checked = 0usize; // bytes proven present by a bounds check
        let mut pc = 0usize;
        const DATA: u64 = 1 << 32;
        loop {
            let (code, dst, src, off, imm) = parts(p[pc]);
            let (dst, src) = (dst as usize, src as usize);
            pc += 1;
            let jump = |c: bool, pc: &mut usize| {
                if c {
                    *pc = (*pc as i64 + i64::from(off)) as usize;
                }
            };
            match code {
                0xbf => r[dst] = r[src],
                0x07 => r[dst] = r[dst].wrapping_add(imm as u64),
                0xb7 => r[dst] = imm as u64,
                0x61 | 0x69 | 0x71 if r[src] == 0 => {
                    // ctx fields: data, data_end, rx_queue_index
                    r[dst] = match off {
                        0 => DATA,
                        4 => DATA + frame.len() as u64,
                        _ => 0,
                    };
                }
                0x61 | 0x69 | 0x71 => {
                    let at = (r[src] - DATA) as usize + off as usize;
                    let n = match code {
                        0x61 => 4,
                        0x69 => 2,
                        _ => 1,
                    };
                    if at + n > checked {
                        return None;
                    }
                    let mut b = [0u8; 8];
                    b[..n].copy_from_slice(&frame[at..at + n]);
                    r[dst] = u64::from_le_bytes(b);
                }
                0x2d => {
                    // if r[dst] > r[src]: the bound was not proven.
                    let past = r[dst] > r[src];
                    if !past {
                        checked = checked.max((r[dst] - DATA) as usize);
                    }
                    jump(past, &mut pc);
                }
                0x05 => jump(true, &mut pc),
                0x15 => jump(r[dst] == imm as u64, &mut pc),
                0x55 => jump(r[dst] != imm as u64, &mut pc),
                0x16 => jump(r[dst] as u32 == imm as u32, &mut pc),
                0x56 => jump(r[dst] as u32 != imm as u32, &mut pc),
                0x18 => return Some(true), // the redirect's map load
                0x95 => return Some(false),
                _ => panic!("instruction {code:#x} not modelled"),
            }
        }
    }

    /// An Ethernet frame with an IPv6 packet to `dst` carrying `next` and
    /// `payload`.
    fn v6_frame(dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        f[20] = next;
        f[21] = 255;
        f[22..38].copy_from_slice(&"fd00::99".parse::<Ipv6Addr>().unwrap().octets());
        f[38..54].copy_from_slice(&dst.octets());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ipv6_to_our_addresses_and_solicitations_for_them_are_redirected() {
        let ours: Ipv6Addr = "fd00:7::10".parse().unwrap();
        let other: Ipv6Addr = "fd00:7::1".parse().unwrap();
        let v4 = Ipv4Addr::new(10, 7, 0, 10);
        let p = program(
            3,
            &[
                v4.into(),
                ours.into(),
                "fd00:7::20".parse::<Ipv6Addr>().unwrap().into(),
            ],
        );
        let tcp = [0u8; 20];
        assert_eq!(run(&p, &v6_frame(ours, 6, &tcp)), Some(true), "TCP to us");
        assert_eq!(
            run(&p, &v6_frame(other, 6, &tcp)),
            Some(false),
            "the kernel's"
        );
        let mut near = ours.octets();
        near[15] ^= 1;
        assert_eq!(
            run(&p, &v6_frame(near.into(), 6, &tcp)),
            Some(false),
            "one bit off"
        );
        // A solicitation to the solicited-node group, for us or not.
        let group: Ipv6Addr = "ff02::1:ff00:10".parse().unwrap();
        let ns = |target: Ipv6Addr| {
            let mut m = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&target.octets());
            v6_frame(group, 58, &m)
        };
        assert_eq!(run(&p, &ns(ours)), Some(true), "a solicitation for us");
        assert_eq!(run(&p, &ns("fd00:7::20".parse().unwrap())), Some(true));
        assert_eq!(run(&p, &ns(other)), Some(false), "for the kernel's address");
        let mut na = ns(ours);
        na[54] = 136;
        assert_eq!(run(&p, &na), Some(false), "an advertisement to the group");
        // Short frames pass without reading past what was checked.
        assert_eq!(run(&p, &v6_frame(ours, 6, &[])[..50]), Some(false));
        assert_eq!(run(&p, &ns(ours)[..70]), Some(false));
        // IPv4 and ARP as before.
        let mut f4 = vec![0u8; 42];
        f4[12..14].copy_from_slice(&[0x08, 0x00]);
        f4[30..34].copy_from_slice(&v4.octets());
        assert_eq!(run(&p, &f4), Some(true));
        f4[33] ^= 1;
        assert_eq!(run(&p, &f4), Some(false));
        // Without IPv6 addresses, IPv6 all goes to the kernel.
        let p4 = program(3, &[v4.into()]);
        assert_eq!(run(&p4, &v6_frame(ours, 6, &tcp)), Some(false));
        assert_eq!(run(&p4, &ns(ours)), Some(false));
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
