//! xdptcp behind packetdrill's shared-object interface.
//!
//! `packetdrill --so_filename=libxdptcp_packetdrill.so --so_flags=FLAGS
//! script.pkt` loads this library and calls `packetdrill_interface_init`,
//! which fills packetdrill's table of callbacks: the socket calls a script
//! makes, two for the wire (`netdev_send` hands the stack a raw IPv4
//! packet, `netdev_receive` returns the next one it sent) and two for the
//! clock (`usleep`, `gettimeofday`). The clock is virtual: it moves only
//! when packetdrill reads it or sleeps, or when it waits for a packet the
//! stack will send on a timer, so scripts with timeouts run at once and
//! the same way every time.
//!
//! - `flags.rs`: `--so_flags`, the stack's settings for a script.
//! - `wire.rs`: raw IPv4 in and out of the stack's Ethernet device.
//! - `host.rs`: the interface, the clock and the socket calls;
//!   `epoll.rs` and `zerocopy.rs`: epoll items, MSG_ZEROCOPY completions.
//! - `ffi.rs`: the C table and its callbacks; `variadic.c`: fcntl, ioctl.

pub mod epoll;
pub mod ffi;
pub mod flags;
pub mod host;
pub mod linux_info;
pub mod sysctls;
pub mod wire;
pub mod write_queue;
pub mod zerocopy;

use std::ffi::{c_char, CStr};

/// The seed of the stack's keyed hashes (ISNs, ports): fixed, so that a
/// script's run is the same every time.
const SEED: [u8; 16] = *b"xdptcp-pktdrill!";

/// packetdrill's entry point: fills `ifc` for a stack set up by `flags`.
///
/// # Safety
/// `flags` is null or a NUL-terminated string; `ifc` points to a
/// `struct packetdrill_interface` packetdrill owns.
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut ffi::PacketdrillInterface,
) {
    if ifc.is_null() {
        return;
    }
    let text = if flags.is_null() {
        String::new()
    } else {
        // SAFETY: the caller passes a C string (packetdrill's so_flags).
        unsafe { CStr::from_ptr(flags) }
            .to_string_lossy()
            .into_owned()
    };
    let (parsed, error) = match flags::parse(&text) {
        Ok(f) => (f, None),
        Err(e) => {
            eprintln!("xdptcp packetdrill adapter: {e}");
            (flags::Flags::default(), Some(e))
        }
    };
    let shared = Box::new(ffi::Shared::new(host::Host::new(parsed, SEED), error));
    // SAFETY: `ifc` is non-null and packetdrill's to fill.
    ffi::fill(unsafe { &mut *ifc }, shared);
}
