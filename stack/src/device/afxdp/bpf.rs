//! The XDP program that sends every frame arriving on a queue to our
//! AF_XDP socket for that queue, loaded and attached with the bpf(2)
//! syscall directly: five instructions do not justify a BPF toolchain.
//!
//! It is attached through a BPF link, which the kernel detaches when the
//! last file descriptor to it closes: when we exit or crash, the interface
//! is left clean.

use std::io;
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
    pub fn attach(ifindex: u32, queues: u32, flags: u32) -> io::Result<Self> {
        let mut a = Attr::new();
        a.put_u32(0, BPF_MAP_TYPE_XSKMAP)
            .put_u32(4, 4)
            .put_u32(8, 4)
            .put_u32(12, queues.max(1));
        let map = owned(bpf(BPF_MAP_CREATE, &mut a)?);

        // r2 = ctx->rx_queue_index; r1 = map; r3 = XDP_PASS (the action
        // when the queue has no socket); return bpf_redirect_map(r1, r2, r3)
        let insns: [u64; 6] = [
            insn(0x61, 2, 1, 16, 0),
            insn(0x18, 1, 1, 0, map.as_raw_fd()), // ld_imm64, src 1 = map fd
            insn(0, 0, 0, 0, 0),
            insn(0xb7, 3, 0, 0, XDP_PASS),
            insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
            insn(0x95, 0, 0, 0, 0),
        ];
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
    use super::insn;

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
