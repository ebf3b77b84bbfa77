//! `--so_flags`: the stack's settings for one script, so its expectations
//! can be matched to RFC defaults rather than to one operating system.
//!
//! A list of `key=value` separated by commas or spaces, for example
//! `initial_rto_ms=1000,min_rto_ms=1000,cc=newreno,sack=0,ts=0`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::Config;

/// Every key `parse` knows, with what it sets (for the error message and
/// the README).
pub const KEYS: &[(&str, &str)] = &[
    (
        "local_ip",
        "our address (packetdrill's default 192.168.0.1)",
    ),
    (
        "gateway_ip",
        "the next hop to the remote (default 192.168.0.2)",
    ),
    ("prefix_len", "our subnet's prefix length (default 16)"),
    ("mtu", "largest IP packet (default 1500)"),
    ("mss", "MSS we offer (default 1460)"),
    (
        "initial_rto_ms",
        "RTO before the first RTT sample (default 1000)",
    ),
    ("min_rto_ms", "lower bound of the RTO (default 200)"),
    (
        "cc",
        "congestion control: newreno, cubic or bbr (default cubic)",
    ),
    ("iw", "initial window in segments (default 10)"),
    ("sack", "offer and use SACK: 0 or 1 (default 1)"),
    ("ts", "offer and use timestamps: 0 or 1 (default 1)"),
    ("ws", "offer and use window scaling: 0 or 1 (default 1)"),
    ("delack_ms", "delayed ACK timeout (default 40)"),
    ("nagle", "Nagle's algorithm: 0 or 1 (default 1)"),
    (
        "rcvbuf",
        "receive buffer in bytes (default 262144, growing to 15 MiB; set, it stays)",
    ),
    (
        "sndbuf",
        "send buffer in bytes (default 262144, growing; set, it stays)",
    ),
    (
        "fastopen_key",
        "Fast Open server key as Linux's sysctl writes it, or off (default \
         a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4, the corpus's)",
    ),
    (
        "sysctls",
        "1: follow the network namespace's tcp_timestamps, tcp_sack, \
         tcp_window_scaling, tcp_fastopen and its key (default 0)",
    ),
    (
        "tick_us",
        "virtual time each gettimeofday call advances (default 1)",
    ),
];

#[derive(Debug, Clone)]
pub struct Flags {
    pub local_ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// IPv6 beside (`--ip_version=ipv6` scripts): our address, its
    /// prefix, the gateway, as packetdrill's run_all.py gives them.
    pub local_ip6: Ipv6Addr,
    pub prefix_len6: u8,
    pub gateway6: Ipv6Addr,
    pub mtu: usize,
    pub tcp: Config,
    pub tick: Duration,
    /// Follow the network namespace's TCP sysctls (`sysctls.rs`).
    pub sysctls: bool,
}

impl Default for Flags {
    fn default() -> Self {
        let tcp = Config {
            // What packetdrill's corpus sets up (its common/defaults.sh):
            // CUBIC, and buffers that grow up to 15 MiB (tcp_rmem's
            // maximum there), which also makes the window scale 8.
            congestion: Algorithm::Cubic,
            autotune: true,
            max_buffer: 15 << 20,
            buffer_budget: None,
            // Linux's TCP_NOTSENT_LOWAT is off unless set.
            unsent_limit: xdptcp::tcp::unsent::UnsentLimit::Off,
            // Fast Open on every listener, as tcp_fastopen=0x70403 there.
            fast_open_key: Some(CORPUS_FAST_OPEN_KEY),
            ..Config::default()
        };
        Flags {
            local_ip: Ipv4Addr::new(192, 168, 0, 1),
            gateway: Ipv4Addr::new(192, 168, 0, 2),
            prefix_len: 16,
            local_ip6: Ipv6Addr::new(0xfd3d, 0x0a0b, 0x17d6, 0, 0, 0, 0, 1),
            prefix_len6: 48,
            gateway6: Ipv6Addr::new(0xfd3d, 0x0a0b, 0x17d6, 0x8888, 0, 0, 0, 1),
            mtu: 1500,
            tcp,
            tick: Duration::from_micros(1),
            sysctls: false,
        }
    }
}

/// defaults.sh's `tcp_fastopen_key=a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4`.
const CORPUS_FAST_OPEN_KEY: [u8; 16] = [
    0xa1, 0xa1, 0xa1, 0xa1, 0xb2, 0xb2, 0xb2, 0xb2, 0xc3, 0xc3, 0xc3, 0xc3, 0xd4, 0xd4, 0xd4, 0xd4,
];

/// A Fast Open key as Linux's `tcp_fastopen_key` sysctl takes it: four
/// 32-bit hex words joined by dashes, each stored little-endian.
pub fn parse_fast_open_key(text: &str) -> Option<[u8; 16]> {
    let words: Vec<u32> = text
        .split('-')
        .map(|w| u32::from_str_radix(w, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.try_into().ok()
}

pub fn parse(text: &str) -> Result<Flags, String> {
    let mut f = Flags::default();
    for item in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("so_flags: '{item}' is not key=value"))?;
        let bad = || format!("so_flags: bad value '{value}' for {key}");
        let num = || value.parse::<u64>().map_err(|_| bad());
        let on = || match value {
            "1" | "on" | "true" => Ok(true),
            "0" | "off" | "false" => Ok(false),
            _ => Err(bad()),
        };
        let ms = || num().map(Duration::from_millis);
        match key {
            "local_ip" => match value.parse().map_err(|_| bad())? {
                std::net::IpAddr::V4(a) => f.local_ip = a,
                std::net::IpAddr::V6(a) => f.local_ip6 = a,
            },
            "gateway_ip" => match value.parse().map_err(|_| bad())? {
                std::net::IpAddr::V4(a) => f.gateway = a,
                std::net::IpAddr::V6(a) => f.gateway6 = a,
            },
            "prefix_len" => {
                f.prefix_len = value.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?
            }
            "mtu" => {
                f.mtu = num()
                    .ok()
                    .filter(|m| (576..=9000).contains(m))
                    .ok_or_else(bad)? as usize
            }
            "mss" => f.tcp.mss = value.parse().ok().filter(|m| *m >= 64).ok_or_else(bad)?,
            "initial_rto_ms" => f.tcp.initial_rto = ms()?,
            "min_rto_ms" => f.tcp.min_rto = ms()?,
            "cc" => f.tcp.congestion = value.parse().map_err(|_| bad())?,
            "iw" => {
                f.tcp.initial_window_segments =
                    num().ok().filter(|n| *n >= 1).ok_or_else(bad)? as u32
            }
            "sack" => f.tcp.sack = on()?,
            "ts" => f.tcp.timestamps = on()?,
            "ws" => f.tcp.window_scaling = on()?,
            "delack_ms" => f.tcp.delayed_ack = ms()?,
            "nagle" => f.tcp.nagle = on()?,
            "rcvbuf" => (f.tcp.recv_buffer, f.tcp.autotune) = (num()? as usize, false),
            "sndbuf" => (f.tcp.send_buffer, f.tcp.autotune) = (num()? as usize, false),
            "tick_us" => f.tick = Duration::from_micros(num()?),
            "sysctls" => f.sysctls = on()?,
            "fastopen_key" => {
                f.tcp.fast_open_key = match value {
                    "off" | "0" => None,
                    k => Some(parse_fast_open_key(k).ok_or_else(bad)?),
                }
            }
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(format!(
                    "so_flags: unknown key '{key}'; known: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_the_rfc_defaults_a_script_asks_for() {
        let f =
            parse("initial_rto_ms=3000, min_rto_ms=1000,cc=newreno sack=0,ts=0,ws=0,iw=4").unwrap();
        assert_eq!(f.tcp.initial_rto, Duration::from_secs(3));
        assert_eq!(f.tcp.min_rto, Duration::from_secs(1));
        assert_eq!(f.tcp.congestion, Algorithm::NewReno);
        assert!(!f.tcp.sack && !f.tcp.timestamps && !f.tcp.window_scaling);
        assert_eq!(f.tcp.initial_window_segments, 4);
        assert_eq!(parse("").unwrap().local_ip, Ipv4Addr::new(192, 168, 0, 1));
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(parse("sack=maybe").unwrap_err().contains("sack"));
        assert!(parse("colour=blue")
            .unwrap_err()
            .contains("unknown key 'colour'"));
        assert!(parse("mtu").unwrap_err().contains("key=value"));
    }
}
