//! With `--so_flags=sysctls=1` (as `tools/packetdrill.sh` runs scripts,
//! each in a network namespace of its own), the stack follows the TCP
//! sysctls a script's init command set in its namespace, as Linux would:
//! timestamps, SACK, window scaling, ECN and Fast Open's server side and key.
//! Read when a socket listens or connects, after the init command ran.

use crate::flags::parse_fast_open_key;
use xdptcp::tcp::Config;

/// Linux's `tcp_fastopen` bits: the server side on, and on for every
/// listener without the TCP_FASTOPEN option.
const TFO_SERVER_ENABLE: u32 = 0x2;
const TFO_SERVER_WO_SOCKOPT: u32 = 0x400;
/// ... and SYN data taken without a cookie.
const TFO_SERVER_COOKIE_NOT_REQD: u32 = 0x200;

/// Linux's `tcp_fastopen` client bits: Fast Open on, and SYN data sent
/// without a cookie.
const TFO_CLIENT_ENABLE: u32 = 0x1;
const TFO_CLIENT_NO_COOKIE: u32 = 0x4;

/// The client side of Fast Open as the namespace's `tcp_fastopen` sets it
/// (Linux's default, 1, when the adapter does not follow sysctls).
pub struct FastOpenClient {
    pub enabled: bool,
    pub no_cookie: bool,
}

pub fn fast_open_client(follow_sysctls: bool) -> FastOpenClient {
    let bits = follow_sysctls
        .then(|| std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen").ok())
        .flatten()
        .and_then(|v| parse_u32(v.trim()))
        .unwrap_or(TFO_CLIENT_ENABLE);
    FastOpenClient {
        enabled: bits & TFO_CLIENT_ENABLE != 0,
        no_cookie: bits & TFO_CLIENT_NO_COOKIE != 0,
    }
}

/// The namespace's `tcp_notsent_lowat` (Linux's default: none, u32::MAX).
pub fn notsent_lowat() -> Option<u32> {
    let v = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_notsent_lowat").ok()?;
    parse_u32(v.trim())
}

/// A sysctl's number, decimal or 0x-prefixed hexadecimal.
fn parse_u32(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Applies the namespace's sysctls to `cfg`; `fast_open_asked`: the
/// socket set TCP_FASTOPEN (or a key).
pub fn apply(cfg: &mut Config, fast_open_asked: bool) {
    apply_from(cfg, fast_open_asked, |name| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok()
    })
}

fn apply_from(cfg: &mut Config, fast_open_asked: bool, read: impl Fn(&str) -> Option<String>) {
    let read = |name: &str| read(name).map(|s| s.trim().to_string());
    let read_u32 = |name: &str| parse_u32(&read(name)?);
    if let Some(v) = read_u32("tcp_timestamps") {
        cfg.timestamps = v != 0;
    }
    if let Some(v) = read_u32("tcp_sack") {
        cfg.sack = v != 0;
    }
    if let Some(v) = read_u32("tcp_window_scaling") {
        cfg.window_scaling = v != 0;
    }
    if let Some(v) = read_u32("tcp_min_tso_segs") {
        cfg.min_burst_segments = v.clamp(1, 64);
    }
    if let Some(v) = read_u32("tcp_ecn") {
        use xdptcp::tcp::ecn::Ecn;
        cfg.ecn = match v {
            0 => Ecn::Off,
            1 => Ecn::Request,
            _ => Ecn::Accept,
        };
    }
    if let Some(bits) = read_u32("tcp_fastopen") {
        let on =
            bits & TFO_SERVER_ENABLE != 0 && (bits & TFO_SERVER_WO_SOCKOPT != 0 || fast_open_asked);
        cfg.fast_open_without_cookie = bits & TFO_SERVER_COOKIE_NOT_REQD != 0;
        cfg.fast_open_client_without_cookie = bits & TFO_CLIENT_NO_COOKIE != 0;
        if !on {
            cfg.fast_open_key = None;
        } else if !fast_open_asked || cfg.fast_open_key.is_none() {
            // The namespace's key ("primary" or "primary,backup").
            let key = read("tcp_fastopen_key")
                .and_then(|k| parse_fast_open_key(k.split(',').next().unwrap_or("")));
            cfg.fast_open_key = key.or(cfg.fast_open_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[(&str, &str)], asked: bool) -> Config {
        let mut cfg = crate::flags::Flags::default().tcp;
        apply_from(&mut cfg, asked, |name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| format!("{v}\n"))
        });
        cfg
    }

    #[test]
    fn a_scripts_sysctls_shape_the_stack_as_they_would_linux() {
        let c = with(&[("tcp_timestamps", "0"), ("tcp_sack", "1")], false);
        assert!(!c.timestamps && c.sack);
        // Server Fast Open for every listener, with the namespace's key.
        let key = "a0bf63f7-ed803d81-cd641d30-cebc4a90";
        let c = with(
            &[("tcp_fastopen", "0x30403"), ("tcp_fastopen_key", key)],
            false,
        );
        assert_eq!(c.fast_open_key, parse_fast_open_key(key));
        // Without the "no sockopt" bit only a listener that asked has it.
        let c = with(&[("tcp_fastopen", "0x3")], false);
        assert_eq!(c.fast_open_key, None);
        let c = with(&[("tcp_fastopen", "0x3")], true);
        assert!(c.fast_open_key.is_some());
        assert!(!c.fast_open_without_cookie);
        assert!(with(&[("tcp_fastopen", "0x202")], true).fast_open_without_cookie);
        // Client-only: no server side at all.
        assert_eq!(with(&[("tcp_fastopen", "1")], true).fast_open_key, None);
    }
}
