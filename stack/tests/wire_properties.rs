//! Property tests for the wire formats: what we build parses back to what
//! we built, arbitrary bytes never make any parser (or the whole interface)
//! panic, and valid-looking segments with every flag combination are
//! handled without corrupting an open connection.

mod common;

use common::frames::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use xdptcp::iface::{IfaceError, Interface, Limits};
use xdptcp::tcp::{Config, State};
use xdptcp::time::Instant;
use xdptcp::wire::arp::{ArpOp, ArpPacket};
use xdptcp::wire::ethernet::{self, EthernetFrame, MacAddr};
use xdptcp::wire::icmp::IcmpEcho;
use xdptcp::wire::ipv4::{Ipv4Header, Ipv4Packet, PROTO_TCP};
use xdptcp::wire::tcp::{fill_checksum, Flags, TcpHeader, TcpOptions, TcpSegment, MAX_SACK_BLOCKS};

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..=14),
        any::<bool>(),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::collection::vec(any::<(u32, u32)>(), 0..=MAX_SACK_BLOCKS),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamps, sacks)| {
            let mut o = TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                timestamps,
                ..TcpOptions::default()
            };
            for (i, b) in sacks.iter().enumerate() {
                o.sack_blocks[i] = *b;
            }
            o.sack_count = sacks.len() as u8;
            o
        })
}

fn header() -> impl Strategy<Value = TcpHeader> {
    (
        any::<(u16, u16, u32, u32)>(),
        any::<u8>(),
        any::<u16>(),
        options(),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack), flags, window, options)| TcpHeader {
                src_port,
                dst_port,
                seq,
                ack,
                flags: Flags(flags),
                window,
                options,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tcp_segment_roundtrips(h in header(), payload in proptest::collection::vec(any::<u8>(), 0..200), src in ip(), dst in ip()) {
        let mut b = vec![0u8; 80 + payload.len()];
        // Options that do not fit in 40 bytes are refused, never truncated.
        let Ok(hl) = h.emit(&mut b) else {
            prop_assert!(h.options.encoded_len() > 40);
            return Ok(());
        };
        prop_assert_eq!(hl % 4, 0);
        b.truncate(hl);
        b.extend_from_slice(&payload);
        fill_checksum(&mut b, src, dst).unwrap();
        let s = TcpSegment::parse(&b, src, dst).expect("our own segment parses");
        prop_assert_eq!(
            (s.src_port, s.dst_port, s.seq, s.ack, s.flags, s.window, s.urgent),
            (h.src_port, h.dst_port, h.seq, h.ack, h.flags, h.window, 0)
        );
        prop_assert_eq!(s.options, h.options);
        prop_assert_eq!(s.payload, &payload[..]);
        // The pseudo-header is covered: another source address fails.
        let other = Ipv4Addr::from(u32::from(src) ^ 1);
        prop_assert!(TcpSegment::parse(&b, other, dst).is_err());
    }

    #[test]
    fn ipv4_roundtrips(src in ip(), dst in ip(), protocol: u8, ttl: u8, ident: u16, df: bool, payload in proptest::collection::vec(any::<u8>(), 0..100)) {
        let h = Ipv4Header { src, dst, protocol, ttl, ident, dont_fragment: df, payload_len: payload.len() as u16, tos: 0 };
        let mut b = vec![0u8; 20];
        prop_assert_eq!(h.emit(&mut b).unwrap(), 20);
        b.extend_from_slice(&payload);
        let p = Ipv4Packet::parse(&b).unwrap();
        prop_assert_eq!((p.src, p.dst, p.protocol, p.ttl, p.ident, p.dont_fragment, p.is_fragment), (src, dst, protocol, ttl, ident, df, false));
        prop_assert_eq!(p.payload, &payload[..]);
    }

    #[test]
    fn ethernet_arp_icmp_roundtrip(d: [u8; 6], s: [u8; 6], req: bool, sip in ip(), tip in ip(), ident: u16, seq: u16, data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut f = vec![0u8; 14 + 28];
        ethernet::emit(&mut f, MacAddr(d), MacAddr(s), ethernet::ETHERTYPE_ARP).unwrap();
        let arp = ArpPacket { op: if req { ArpOp::Request } else { ArpOp::Reply }, sender_mac: MacAddr(s), sender_ip: sip, target_mac: MacAddr(d), target_ip: tip };
        arp.emit(&mut f[14..]).unwrap();
        let e = EthernetFrame::parse(&f).unwrap();
        prop_assert_eq!((e.dst, e.src, e.ethertype), (MacAddr(d), MacAddr(s), ethernet::ETHERTYPE_ARP));
        prop_assert_eq!(ArpPacket::parse(e.payload).unwrap(), arp);

        let echo = IcmpEcho { kind: if req { 8 } else { 0 }, ident, seq, data: &data };
        let mut b = vec![0u8; 8 + data.len()];
        echo.emit(&mut b).unwrap();
        prop_assert_eq!(IcmpEcho::parse(&b).unwrap(), echo);
    }

    /// No parser panics on arbitrary bytes, with or without checksums.
    #[test]
    fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1600), a in ip(), c in ip()) {
        let _ = EthernetFrame::parse(&b);
        let _ = ArpPacket::parse(&b);
        let _ = IcmpEcho::parse(&b);
        let _ = Ipv4Packet::parse(&b);
        let _ = TcpSegment::parse_unchecked(&b);
        let _ = TcpSegment::parse(&b, a, c);
        let _ = TcpOptions::parse(&b[..b.len().min(40)]);
    }

    /// Whatever options area a segment carries, parsing it either fails with
    /// a typed error or yields options that re-encode without panicking.
    #[test]
    fn arbitrary_option_bytes(b in proptest::collection::vec(any::<u8>(), 0..=40)) {
        if let Ok(o) = TcpOptions::parse(&b) {
            let mut out = [0u8; 64];
            let _ = o.emit(&mut out);
        }
    }
}

// ---- the whole interface under hostile input ------------------------------

/// Opens a connection to the peer's `port`; returns our SYN's bytes.
fn syn_to(i: &mut Interface, dev: &mut Inject, port: u16, now: Instant) -> Vec<u8> {
    i.connect(SocketAddrV4::new(PEER, port), None, now).unwrap();
    i.poll(now, dev);
    dev.tx
        .iter()
        .rev()
        .find(|f| f.len() > 34 && f[23] == PROTO_TCP)
        .expect("our SYN")
        .clone()
}

/// A peer must learn neither our clock from our timestamps (RFC 7323
/// 7.1) nor the ports we use towards others (RFC 6056): a SYN's TSval is
/// not the clock plus a function of its ISS (which the peer sees), it
/// changes with the stack's secret, and successive connections do not
/// take successive ports.
#[test]
fn timestamps_and_ports_reveal_neither_the_clock_nor_a_sequence() {
    // Within the ARP entry's life (taught at time zero).
    let now = Instant::from_millis(45_678);
    let mut tsvals = Vec::new();
    for secret in [[7u8; 16], [8u8; 16]] {
        let (mut i, mut dev) = (iface_with_secret(secret), Inject::default());
        teach_peer(&mut i, &mut dev);
        let mut ports = Vec::new();
        for peer_port in [80u16, 81, 82, 83] {
            let syn = syn_to(&mut i, &mut dev, peer_port, now);
            let s = TcpSegment::parse_unchecked(&syn[34..]).unwrap();
            let (tsval, _) = s.options.timestamps.expect("SYN offers timestamps");
            let from_iss =
                (now.as_millis() as u32).wrapping_add(s.seq.rotate_left(13) ^ 0x5bd1_e995);
            assert_ne!(tsval, from_iss, "TSval computable from the ISS");
            assert_ne!(tsval, now.as_millis() as u32, "TSval is the raw clock");
            tsvals.push(tsval);
            ports.push(s.src_port);
        }
        assert!(
            ports.windows(2).all(|w| w[1] != w[0].wrapping_add(1)),
            "successive ports: {ports:?}"
        );
    }
    // One offset per host pair, and another with another secret.
    assert!(tsvals[..4].iter().all(|&t| t == tsvals[0]));
    assert_ne!(tsvals[0], tsvals[4], "the offset is keyed");
}

/// A SYN flood from spoofed sources fills a listener's queue of half-open
/// connections (8 here); every SYN after that is answered with a SYN
/// cookie and no state, so the table stops growing, and a real client,
/// whose SYN also gets a cookie, completes its handshake with the ACK
/// that returns it, and its first data arrives. A forged ACK with a
/// wrong cookie makes nothing.
#[test]
fn a_syn_flood_gets_cookies_and_a_real_client_still_connects() {
    let (mut i, mut dev) = routed_iface([7; 16]);
    i.listen(80, None, 8).unwrap();
    let syn = |src_port: u16, seq: u32| TcpHeader {
        src_port,
        dst_port: 80,
        seq,
        ack: 0,
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions {
            mss: Some(1460),
            ..Default::default()
        },
    };
    let now = Instant::from_millis(10);
    for k in 0..200u32 {
        let spoofed = Ipv4Addr::from(0xc633_6400 + (k * 7919) % 65_000); // 198.51.x.x
        dev.rx
            .push(frame_from(spoofed, &syn(1024 + k as u16, k * 1000), &[]));
        i.poll(now, &mut dev);
    }
    assert_eq!(i.handles().len(), 8, "the queue's 8 half-open, no more");
    assert_eq!(i.stats().tcp_syn_cookies_sent, 192);
    // A real client.
    let client = Ipv4Addr::new(203, 0, 113, 7);
    dev.tx.clear();
    dev.rx.push(frame_from(client, &syn(5555, 42), &[]));
    i.poll(now, &mut dev);
    let synack = dev
        .tx
        .iter()
        .find(|f| f.len() > 34 && f[23] == PROTO_TCP && f[30..34] == client.octets())
        .expect("a SYN-ACK to the client")
        .clone();
    let s = TcpSegment::parse_unchecked(&synack[34..]).unwrap();
    assert_eq!(s.flags, Flags::SYN | Flags::ACK);
    assert_eq!((s.ack, s.options.mss), (43, Some(1460)));
    let ack = |ack: u32| TcpHeader {
        src_port: 5555,
        dst_port: 80,
        seq: 43,
        ack,
        flags: Flags::ACK | Flags::PSH,
        window: 65535,
        options: TcpOptions::default(),
    };
    // A forged ACK first: a wrong cookie.
    dev.rx
        .push(frame_from(client, &ack(s.seq.wrapping_add(2)), b"hello"));
    i.poll(now, &mut dev);
    assert_eq!(i.stats().tcp_syn_cookies_rejected, 1);
    assert_eq!(i.handles().len(), 8);
    // Then the real one, with data.
    dev.rx
        .push(frame_from(client, &ack(s.seq.wrapping_add(1)), b"hello"));
    i.poll(now + std::time::Duration::from_millis(1), &mut dev);
    assert_eq!(i.stats().tcp_syn_cookies_accepted, 1);
    let h = i
        .accept(80)
        .unwrap()
        .expect("the client's connection is accepted");
    let c = i.tcp(h).unwrap();
    assert_eq!(c.state(), State::Established);
    let mut buf = [0u8; 16];
    assert_eq!(c.recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    // A cookie two ticks past its time is refused.
    let late = now + std::time::Duration::from_secs(300);
    dev.rx.push(frame_from(
        Ipv4Addr::new(203, 0, 113, 8),
        &syn(6000, 9),
        &[],
    ));
    i.poll(now, &mut dev);
    let c2 = dev
        .tx
        .iter()
        .rev()
        .find(|f| f.len() > 34 && f[30..34] == [203, 0, 113, 8])
        .unwrap();
    let cookie = TcpSegment::parse_unchecked(&c2[34..]).unwrap().seq;
    let stale = TcpHeader {
        src_port: 6000,
        seq: 10,
        ..ack(cookie.wrapping_add(1))
    };
    dev.rx
        .push(frame_from(Ipv4Addr::new(203, 0, 113, 8), &stale, &[]));
    i.poll(late, &mut dev);
    assert_eq!(
        i.stats().tcp_syn_cookies_accepted,
        1,
        "a stale cookie makes nothing"
    );
}

fn established(i: &mut Interface, dev: &mut Inject) -> (u32, u32) {
    // Teach the interface the peer's MAC, then open a connection to it.
    teach_peer(i, dev);
    let h = i
        .connect(SocketAddrV4::new(PEER, 80), None, Instant::ZERO)
        .unwrap();
    i.poll(Instant::ZERO, dev);
    let syn = dev
        .tx
        .iter()
        .rev()
        .find(|f| f.len() > 34 && f[23] == PROTO_TCP)
        .expect("our SYN")
        .clone();
    let s = TcpSegment::parse_unchecked(&syn[34..]).unwrap();
    assert_eq!(s.flags, Flags::SYN);
    let peer_iss = 1_000_000u32;
    let reply = TcpHeader {
        src_port: 80,
        dst_port: s.src_port,
        seq: peer_iss,
        ack: s.seq.wrapping_add(1),
        flags: Flags::SYN | Flags::ACK,
        window: 65535,
        options: TcpOptions {
            mss: Some(1460),
            ..Default::default()
        },
    };
    dev.rx.push(frame_to_us(&reply, &[]));
    i.poll(Instant::from_millis(1), dev);
    assert_eq!(i.tcp(h).unwrap().state(), State::Established);
    (s.src_port as u32, peer_iss.wrapping_add(1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary frames, including arbitrary bytes behind valid Ethernet
    /// and IPv4 headers, never panic the interface; each is counted.
    #[test]
    fn interface_survives_arbitrary_frames(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..40), to_us: bool) {
        let mut i = iface();
        let mut dev = Inject::default();
        for mut f in frames.clone() {
            if to_us && f.len() >= 34 {
                // Address it to us so it gets past the Ethernet layer.
                f[..6].copy_from_slice(&US_MAC.0);
                f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
            }
            dev.rx.push(f);
        }
        i.poll(Instant::ZERO, &mut dev);
        prop_assert_eq!(i.stats().rx_frames, frames.len() as u64);
    }

    /// Segments with any flags (SYN+FIN, RST+SYN, nothing at all...), any
    /// sequence numbers near or far from the window and any options, all
    /// with valid checksums, aimed at an established connection and a
    /// listener. Nothing panics, and afterwards the interface still serves.
    #[test]
    fn tcp_survives_hostile_segments(segs in proptest::collection::vec((any::<u8>(), -3000i64..3000, any::<u32>(), any::<bool>(), options(), proptest::collection::vec(any::<u8>(), 0..100), any::<bool>()), 1..30)) {
        let mut i = iface();
        let mut dev = Inject::default();
        i.listen(7, None, 8).unwrap();
        let (port, peer_next) = established(&mut i, &mut dev);
        for (flags, seq_off, ack, near_ack, options, payload, to_listener) in segs {
            let h = TcpHeader {
                src_port: 80,
                dst_port: if to_listener { 7 } else { port as u16 },
                seq: (peer_next as i64 + seq_off) as u32,
                ack: if near_ack { ack % 4 } else { ack },
                flags: Flags(flags),
                window: 1000,
                options,
            };
            if h.header_len() > 60 {
                continue;
            }
            dev.rx.push(frame_to_us(&h, &payload));
            i.poll(Instant::from_millis(2), &mut dev);
        }
        prop_assert!(i.stats().tcp_segments_in > 0);
        // Ordinary service goes on: the interface still answers a ping.
        let before = i.stats().icmp_echo_answered;
        let mut f = vec![0u8; 42];
        ethernet::emit(&mut f, US_MAC, PEER_MAC, ethernet::ETHERTYPE_IPV4).unwrap();
        Ipv4Header { src: PEER, dst: US, protocol: 1, ttl: 64, ident: 9, dont_fragment: false, payload_len: 8, tos: 0 }.emit(&mut f[14..]).unwrap();
        IcmpEcho { kind: 8, ident: 1, seq: 1, data: &[] }.emit(&mut f[34..]).unwrap();
        dev.rx.push(f);
        i.poll(Instant::from_millis(3), &mut dev);
        prop_assert_eq!(i.stats().icmp_echo_answered, before + 1);
    }
}

#[test]
fn connection_and_memory_limits_refuse_new_connections_and_say_so() {
    let (mut i, mut dev) = routed_iface([7; 16]);
    let per_conn = Config::default().send_buffer + Config::default().recv_buffer;
    i.set_limits(Limits {
        max_connections: 3,
        max_buffer_bytes: 1 << 40,
        ..Limits::default()
    });
    i.listen(80, None, 64).unwrap();
    let syn = |src_port: u16| TcpHeader {
        src_port,
        dst_port: 80,
        seq: 7,
        ack: 0,
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions::default(),
    };
    let now = Instant::from_millis(10);
    for port in 1000..1005u16 {
        dev.rx.push(frame_to_us(&syn(port), &[]));
        i.poll(now, &mut dev);
    }
    assert_eq!(i.handles().len(), 3, "three connections, no more");
    assert_eq!(i.stats().tcp_refused_limits, 2);
    assert_eq!(i.usage(), (3 * per_conn, 3));
    let err = i
        .connect(SocketAddrV4::new(PEER, 9), None, now)
        .unwrap_err();
    assert_eq!(err, IfaceError::Limit(3, 3 * per_conn));
    assert!(err
        .to_string()
        .contains("connection limit reached: 3 open connections"));

    // Bytes, not count: room for two connections' buffers and no third.
    let mut j = Interface::new(iface_config([7; 16]));
    let mut dev = Inject::default();
    teach_peer(&mut j, &mut dev);
    j.set_limits(Limits {
        max_connections: 1000,
        max_buffer_bytes: 2 * per_conn + per_conn / 2,
        ..Limits::default()
    });
    j.listen(80, None, 64).unwrap();
    for port in 2000..2004u16 {
        dev.rx.push(frame_to_us(&syn(port), &[]));
        j.poll(now, &mut dev);
    }
    assert_eq!((j.handles().len(), j.stats().tcp_refused_limits), (2, 2));
    // Closing one makes room again.
    let h = j.handles()[0];
    j.tcp(h).unwrap().abort();
    j.release(h);
    j.poll(now, &mut dev);
    dev.rx.push(frame_to_us(&syn(3000), &[]));
    j.poll(now, &mut dev);
    assert_eq!(j.usage().1, 2, "a new connection took the freed room");
    assert_eq!(j.stats().tcp_refused_limits, 2);
}

#[test]
fn a_cookie_connection_keeps_window_scaling_sack_and_timestamps() {
    let (mut i, mut dev) = routed_iface([7; 16]);
    i.listen(80, None, 2).unwrap();
    let now = Instant::from_millis(100_000);
    let syn = |src_port: u16, ts: bool| TcpHeader {
        src_port,
        dst_port: 80,
        seq: 500,
        ack: 0,
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: ts.then_some((4242, 0)),
            ..Default::default()
        },
    };
    // Two half-open fill the queue; the next SYNs get cookies.
    for port in [1, 2] {
        dev.rx.push(frame_to_us(&syn(port, true), &[]));
        i.poll(now, &mut dev);
    }
    let cookie_synack = |dev: &mut Inject, i: &mut Interface, port: u16, ts: bool| {
        dev.tx.clear();
        dev.rx.push(frame_to_us(&syn(port, ts), &[]));
        i.poll(now, dev);
        let f = dev.tx.last().expect("a SYN-ACK").clone();
        let s = TcpSegment::parse_unchecked(&f[34..]).unwrap();
        (s.seq, s.options)
    };
    let before = i.stats().tcp_syn_cookies_sent;
    let (cookie, o) = cookie_synack(&mut dev, &mut i, 3, true);
    assert_eq!(i.stats().tcp_syn_cookies_sent, before + 1);
    assert!(o.sack_permitted && o.window_scale.is_some(), "{o:?}");
    let (tsval, tsecr) = o.timestamps.expect("a timestamp carries the options");
    assert_eq!(tsecr, 4242);
    // Without timestamps in the SYN there is nowhere to keep them.
    let (_, bare) = cookie_synack(&mut dev, &mut i, 4, false);
    assert_eq!(
        (bare.sack_permitted, bare.window_scale, bare.timestamps),
        (false, None, None)
    );

    let ack = TcpHeader {
        src_port: 3,
        dst_port: 80,
        seq: 501,
        ack: cookie.wrapping_add(1),
        flags: Flags::ACK,
        window: 1000,
        options: TcpOptions {
            timestamps: Some((4243, tsval)),
            ..Default::default()
        },
    };
    dev.rx.push(frame_to_us(&ack, &[]));
    i.poll(now + std::time::Duration::from_millis(1), &mut dev);
    assert_eq!(i.stats().tcp_syn_cookies_accepted, 1);
    let h = i.accept(80).unwrap().expect("the cookie connection");
    let snap = i.tcp(h).unwrap().snapshot();
    assert_eq!(snap.state, State::Established);
    assert!(snap.sack && snap.timestamps, "{snap:?}");
    assert_eq!(
        snap.window_scale.map(|w| w.1),
        Some(7),
        "the peer's shift came back from the TSecr"
    );
    // Its window is read with the peer's scale: 1000 << 7.
    assert_eq!(snap.snd_wnd, 1000 << 7);
}

#[test]
fn out_of_order_data_is_pruned_under_memory_pressure_and_nothing_is_lost() {
    let mut i = iface();
    let mut dev = Inject::default();
    let (port, peer_next) = established(&mut i, &mut dev);
    let h = i.handles()[0];
    let our_next = i.tcp_ref(h).unwrap().seq_space().snd_nxt.0;
    let base = i.usage().0;
    i.set_limits(Limits {
        max_buffer_bytes: base + 16 * 1024,
        ..Limits::default()
    });
    let byte = |k: u32| (k % 251) as u8;
    let seg = |off: u32, len: u32| {
        let h = TcpHeader {
            src_port: 80,
            dst_port: port as u16,
            seq: peer_next.wrapping_add(off),
            ack: our_next,
            flags: Flags::ACK,
            window: 65535,
            options: TcpOptions::default(),
        };
        let payload: Vec<u8> = (off..off + len).map(byte).collect();
        frame_to_us(&h, &payload)
    };
    // 5,000 one-byte segments with a gap before each: 5,000 ranges to
    // track, 40 KiB of range list, past the limit.
    let now = Instant::from_millis(5);
    for k in 1..=5_000u32 {
        dev.rx.push(seg(2 * k, 1));
        i.poll(now, &mut dev);
    }
    assert!(i.stats().tcp_ooo_pruned > 0, "pruned under pressure");
    assert!(i.tcp_ref(h).unwrap().counters().ooo_pruned > 0);
    assert!(
        i.usage().0 <= base + 16 * 1024,
        "back under the limit: {}",
        i.usage().0
    );
    // The sender has everything and sends it again in order: all arrives.
    for off in (0..10_001u32).step_by(1000) {
        dev.rx.push(seg(off, 1000.min(10_001 - off)));
        i.poll(now, &mut dev);
    }
    let mut got = vec![0u8; 20_000];
    let n = i.tcp(h).unwrap().recv(&mut got).unwrap();
    assert_eq!(n, 10_001);
    assert!(
        got[..n]
            .iter()
            .enumerate()
            .all(|(k, b)| *b == byte(k as u32)),
        "bytes intact"
    );
}

#[test]
fn a_cookie_connection_counts_against_the_limits() {
    let (mut i, mut dev) = routed_iface([7; 16]);
    i.listen(80, None, 1).unwrap();
    let now = Instant::from_millis(100_000);
    let syn = |src_port: u16| TcpHeader {
        src_port,
        dst_port: 80,
        seq: 500,
        ack: 0,
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions::default(),
    };
    // One half-open connection fills the queue; the next SYN gets a cookie.
    dev.rx.push(frame_to_us(&syn(1), &[]));
    i.poll(now, &mut dev);
    dev.tx.clear();
    dev.rx.push(frame_to_us(&syn(2), &[]));
    i.poll(now, &mut dev);
    assert_eq!(i.stats().tcp_syn_cookies_sent, 1);
    let f = dev.tx.last().expect("the cookie SYN-ACK").clone();
    let cookie = TcpSegment::parse_unchecked(&f[34..]).unwrap().seq;
    // Then the interface is at its limit when the cookie comes back.
    i.set_limits(Limits {
        max_connections: 1,
        max_buffer_bytes: 1 << 40,
        ..Limits::default()
    });
    let ack = TcpHeader {
        src_port: 2,
        dst_port: 80,
        seq: 501,
        ack: cookie.wrapping_add(1),
        flags: Flags::ACK,
        window: 1000,
        options: TcpOptions::default(),
    };
    dev.rx.push(frame_to_us(&ack, &[]));
    i.poll(now, &mut dev);
    assert_eq!(i.stats().tcp_syn_cookies_accepted, 0, "{:?}", i.stats());
    assert_eq!(i.usage().1, 1, "no second connection");
    assert_eq!(i.stats().tcp_refused_limits, 1);
}

/// A peer that offers jumbo segments to a listener configured for them,
/// on a device whose MTU is 1500: the segments our MSS allows cannot be
/// built. None is lost unseen: the oversize is counted, what was in flight
/// is re-cut to what the device carries, and every byte goes out.
#[test]
fn a_segment_larger_than_the_device_carries_is_never_lost_silently() {
    let mut i = Interface::new(iface_config([7; 16]));
    let mut dev = Inject::default();
    teach_peer(&mut i, &mut dev);
    let jumbo = Config {
        mss: 8960,
        ..Config::default()
    };
    i.listen(80, Some(jumbo), 8).unwrap();
    let syn = TcpHeader {
        src_port: 4000,
        dst_port: 80,
        seq: 100,
        ack: 0,
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions {
            mss: Some(8960),
            ..Default::default()
        },
    };
    let now = Instant::from_millis(1);
    dev.rx.push(frame_to_us(&syn, &[]));
    i.poll(now, &mut dev);
    let synack = TcpSegment::parse_unchecked(&dev.tx.last().unwrap()[34..])
        .unwrap()
        .seq;
    let ack = |ack: u32| TcpHeader {
        src_port: 4000,
        dst_port: 80,
        seq: 101,
        ack,
        flags: Flags::ACK,
        window: 65535,
        options: TcpOptions::default(),
    };
    dev.rx.push(frame_to_us(&ack(synack.wrapping_add(1)), &[]));
    i.poll(now, &mut dev);
    let h = i.accept(80).unwrap().expect("established");
    let data: Vec<u8> = (0..30_000u32).map(|k| k as u8).collect();
    assert_eq!(i.tcp(h).unwrap().send(&data).unwrap(), data.len());
    // The peer acknowledges whatever arrives; collect it in order.
    let mut got = Vec::new();
    for _ in 0..50 {
        dev.tx.clear();
        i.poll(now, &mut dev);
        for f in &dev.tx {
            assert!(f.len() <= 1514, "a frame of {} bytes", f.len());
            let s = TcpSegment::parse_unchecked(&f[34..]).unwrap();
            let off = s.seq.wrapping_sub(synack.wrapping_add(1)) as usize;
            if off == got.len() {
                got.extend_from_slice(s.payload);
            }
        }
        let next = synack.wrapping_add(1).wrapping_add(got.len() as u32);
        dev.rx.push(frame_to_us(&ack(next), &[]));
        if got.len() == data.len() {
            break;
        }
    }
    assert!(
        got == data,
        "{} of {} bytes went out",
        got.len(),
        data.len()
    );
    assert!(i.stats().tx_oversize >= 1, "{:?}", i.stats());
    assert!(i.tcp(h).unwrap().snapshot().mss <= 1460);
}
