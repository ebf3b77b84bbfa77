//! The stack's `Info` in the byte layout of Linux's `struct tcp_info`
//! (include/uapi/linux/tcp.h, 280 bytes with the AccECN counters of
//! Linux 6.18, all zero here: no ECN), which is what packetdrill reads for
//! a script's `%{ assert tcpi_... }%` lines.

use xdptcp::tcp::info::{CaState, Info};
use xdptcp::tcp::State;

pub const TCP_INFO_LEN: usize = 280;

/// Linux's `TCP_ESTABLISHED` ... `TCP_CLOSING` numbering.
fn linux_state(s: State) -> u8 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

pub fn tcp_info(i: &Info) -> [u8; TCP_INFO_LEN] {
    let mut b = [0u8; TCP_INFO_LEN];
    let us = |d: std::time::Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
    let ms = |d: std::time::Duration| d.as_millis().min(u128::from(u32::MAX)) as u32;
    let sat = |v: u64| v.min(u64::from(u32::MAX)) as u32;
    b[0] = linux_state(i.state);
    b[1] = match i.ca_state {
        CaState::Open => 0,
        CaState::Disorder => 1,
        CaState::Cwr => 2,
        CaState::Recovery => 3,
        CaState::Loss => 4,
    };
    b[2] = i.retransmits.min(255) as u8;
    b[3] = i.probes.min(255) as u8;
    b[4] = i.backoff.min(255) as u8;
    b[5] = u8::from(i.timestamps)
        | u8::from(i.sack) << 1
        | u8::from(i.wscale.is_some()) << 2
        | u8::from(i.syn_data) << 5;
    if let Some((snd, rcv)) = i.wscale {
        b[6] = (snd & 0xf) | (rcv & 0xf) << 4;
    }
    let u32s = [
        us(i.rto),
        us(i.ato),
        i.snd_mss,
        i.rcv_mss,
        i.unacked,
        i.sacked,
        i.lost,
        i.retrans,
        0, // fackets: gone from Linux
        i.last_data_sent.map_or(0, ms),
        0, // last_ack_sent: "not remembered" in Linux either
        i.last_data_recv.map_or(0, ms),
        i.last_ack_recv.map_or(0, ms),
        i.pmtu,
        i.rcv_space, // rcv_ssthresh
        us(i.rtt),
        us(i.rttvar),
        i.snd_ssthresh.unwrap_or(0x7fff_ffff),
        i.snd_cwnd,
        i.advmss,
        i.reordering,
        i.rcv_rtt.map_or(0, us),
        i.rcv_space,
        sat(i.total_retrans),
    ];
    let mut at = 8;
    let mut put = |bytes: &[u8], at: &mut usize| {
        b[*at..*at + bytes.len()].copy_from_slice(bytes);
        *at += bytes.len();
    };
    for v in u32s {
        put(&v.to_ne_bytes(), &mut at);
    }
    debug_assert_eq!(at, 104);
    let rate = i.pacing_rate.unwrap_or(u64::MAX);
    for v in [rate, u64::MAX, i.bytes_acked, i.bytes_received] {
        put(&v.to_ne_bytes(), &mut at);
    }
    for v in [
        sat(i.segs_out),
        sat(i.segs_in),
        i.notsent_bytes,
        u32::MAX, // min_rtt: not kept apart from the RTT estimate
        0,        // data_segs_in
        0,        // data_segs_out
    ] {
        put(&v.to_ne_bytes(), &mut at);
    }
    // delivery_rate (not kept), busy_time, rwnd_limited, sndbuf_limited
    let micros = |d: std::time::Duration| d.as_micros() as u64;
    for v in [
        0,
        micros(i.busy_time),
        micros(i.rwnd_limited),
        micros(i.sndbuf_limited),
    ] {
        put(&v.to_ne_bytes(), &mut at);
    }
    for v in [sat(i.delivered), 0] {
        put(&v.to_ne_bytes(), &mut at);
    }
    for v in [i.bytes_sent, i.bytes_retrans] {
        put(&v.to_ne_bytes(), &mut at);
    }
    for v in [
        sat(i.dsack_dups),
        0, // reord_seen
        sat(i.rcv_ooopack),
        i.snd_wnd,
        i.rcv_wnd,
        0, // rehash
    ] {
        put(&v.to_ne_bytes(), &mut at);
    }
    put(&(i.total_rto.min(0xffff) as u16).to_ne_bytes(), &mut at);
    put(&[0, 0, 0, 0, 0, 0], &mut at);
    debug_assert_eq!(at, 248);
    // received_ce, the six AccECN byte counters, ecn_mode and friends.
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_where_linux_puts_them() {
        let cfg = xdptcp::tcp::Config::default();
        let c = xdptcp::tcp::Connection::new(cfg, xdptcp::tcp::SeqNum(1));
        let mut i = c.info(xdptcp::time::Instant::from_millis(0));
        i.state = State::Established;
        i.snd_cwnd = 10;
        i.snd_mss = 1460;
        i.wscale = Some((7, 8));
        i.timestamps = true;
        i.snd_wnd = 32_896;
        i.bytes_acked = 5;
        let b = tcp_info(&i);
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(b[0], 1, "TCP_ESTABLISHED");
        assert_eq!(b[5], 1 | 4, "TCPI_OPT_TIMESTAMPS | TCPI_OPT_WSCALE");
        assert_eq!(b[6], 7 | 8 << 4, "snd_wscale in the low nibble");
        assert_eq!(u32_at(16), 1460, "tcpi_snd_mss");
        assert_eq!(u32_at(80), 10, "tcpi_snd_cwnd");
        assert_eq!(u32_at(76), 0x7fff_ffff, "tcpi_snd_ssthresh before any loss");
        assert_eq!(u64::from_ne_bytes(b[120..128].try_into().unwrap()), 5);
        assert_eq!(u32_at(228), 32_896, "tcpi_snd_wnd");
    }
}
