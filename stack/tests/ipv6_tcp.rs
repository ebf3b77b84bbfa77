//! TCP over IPv6 through the interface: a peer on the link (its frames
//! built by etherparse, the oracle, which also checks ours) opens a
//! connection to one of our IPv6 addresses; we resolve it by Neighbor
//! Discovery, answer, carry data both ways, reset strays and follow a
//! packet-too-big. Then the simulator's impaired transfer over IPv6.

mod common;

use common::frames::*;
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement, TransportHeader};
use sha2::{Digest, Sha256};
use std::net::Ipv6Addr;
use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::{Handle, Interface};
use xdptcp::simulation::{run_transfer, TransferSpec};
use xdptcp::time::Instant;
use xdptcp::wire::checksum;
use xdptcp::wire::ethernet::{self, MacAddr};
use xdptcp::wire::icmpv6::{self, Icmpv6};
use xdptcp::wire::ipv6::{Ipv6Header, Ipv6Packet, NEXT_ICMPV6};

const OURS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER_ISN: u32 = 1000;

/// A TCP segment from THEIRS:40000 to OURS:`port`, built by etherparse.
fn segment(port: u16, seq: u32, ack: Option<u32>, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER_MAC.0, US_MAC.0)
        .ipv6(THEIRS.octets(), OURS.octets(), 64)
        .tcp(40000, port, seq, 65535);
    let b = if syn {
        b.syn()
            .options(&[TcpOptionElement::MaximumSegmentSize(1440)])
            .unwrap()
    } else {
        b
    };
    let b = match ack {
        Some(a) => b.ack(a),
        None => b,
    };
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

/// An ICMPv6 message from THEIRS to us, `body` writing it (checksum
/// included) after the headers.
fn icmp_from_peer(dst: Ipv6Addr, body: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 1500];
    let dst_mac = if dst.is_multicast() {
        icmpv6::multicast_mac(dst)
    } else {
        US_MAC
    };
    ethernet::emit(&mut f, dst_mac, PEER_MAC, ethernet::ETHERTYPE_IPV6).unwrap();
    let n = body(&mut f[54..]);
    Ipv6Header {
        src: THEIRS,
        dst,
        next_header: NEXT_ICMPV6,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
        payload_len: n as u16,
    }
    .emit(&mut f[14..])
    .unwrap();
    f.truncate(54 + n);
    f
}

/// What one of our TCP frames says, after etherparse found its IPv6 and
/// TCP headers sound and its checksum right.
struct Out {
    dst_mac: MacAddr,
    hop_limit: u8,
    flow_label: u32,
    tcp: etherparse::TcpHeader,
    payload: Vec<u8>,
}

fn tcp_out(f: &[u8]) -> Out {
    let p = PacketHeaders::from_ethernet_slice(f).expect("etherparse reads it");
    let Some(NetHeaders::Ipv6(ip, _)) = &p.net else {
        panic!("not IPv6: {:?}", p.net)
    };
    let Some(TransportHeader::Tcp(tcp)) = &p.transport else {
        panic!("not TCP: {:?}", p.transport)
    };
    let payload = p.payload.slice().to_vec();
    assert_eq!(
        tcp.checksum,
        tcp.calc_checksum_ipv6(ip, &payload).unwrap(),
        "TCP checksum over the IPv6 pseudo-header"
    );
    assert_eq!(
        (ip.source, ip.destination),
        (OURS.octets(), THEIRS.octets())
    );
    Out {
        dst_mac: MacAddr(f[0..6].try_into().unwrap()),
        hop_limit: ip.hop_limit,
        flow_label: ip.flow_label.value(),
        tcp: tcp.clone(),
        payload,
    }
}

fn poll(i: &mut Interface, dev: &mut Inject, frames: Vec<Vec<u8>>, ms: u64) -> Vec<Vec<u8>> {
    dev.rx = frames;
    i.poll(Instant::from_millis(ms), dev);
    std::mem::take(&mut dev.tx)
}

/// An interface serving OURS (its announcement sent), listening on 80.
fn listening() -> (Interface, Inject) {
    let mut i = iface();
    let mut dev = Inject::default();
    i.add_ipv6(OURS, 64).unwrap();
    assert_eq!(poll(&mut i, &mut dev, Vec::new(), 0).len(), 1);
    i.listen(80, None, 8).unwrap();
    (i, dev)
}

/// The handshake from a SYN to the accepted connection; returns it, our
/// ISS and the flow label of our SYN-ACK. Checks each of our frames on
/// the way.
fn handshake(i: &mut Interface, dev: &mut Inject) -> (Handle, u32, u32) {
    let out = poll(i, dev, vec![segment(80, PEER_ISN, None, true, &[])], 1);
    // We do not know THEIRS' MAC yet: a solicitation goes to its
    // solicited-node group first, with our MAC in it.
    assert_eq!(out.len(), 1, "one neighbour solicitation");
    let eth = ethernet::EthernetFrame::parse(&out[0]).unwrap();
    let ip = Ipv6Packet::parse(eth.payload).unwrap();
    let group = icmpv6::solicited_node(THEIRS);
    assert_eq!(
        (eth.dst, ip.src, ip.dst),
        (icmpv6::multicast_mac(group), OURS, group)
    );
    assert_eq!(
        Icmpv6::parse(ip.payload, ip.src, ip.dst),
        Ok(Icmpv6::NeighborSolicit {
            target: THEIRS,
            source_lladdr: Some(US_MAC),
        })
    );
    assert_eq!(i.stats().nd_solicitations_sent, 1);
    let advert = icmp_from_peer(OURS, |b| {
        let flags = icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE;
        icmpv6::emit_neighbor_advert(b, THEIRS, OURS, THEIRS, flags, PEER_MAC).unwrap()
    });
    let out = poll(i, dev, vec![advert], 2);
    assert_eq!(out.len(), 1, "the SYN-ACK, once THEIRS' MAC is known");
    let synack = tcp_out(&out[0]);
    assert_eq!(synack.dst_mac, PEER_MAC);
    assert!(synack.tcp.syn && synack.tcp.ack);
    assert_eq!(synack.tcp.acknowledgment_number, PEER_ISN + 1);
    assert_eq!(synack.hop_limit, 64);
    assert_ne!(synack.flow_label, 0, "a flow label (RFC 6437)");
    let mss = synack.tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    assert_eq!(mss, Some(1440), "MTU 1500 less 40 bytes of IPv6, 20 of TCP");
    let iss = synack.tcp.sequence_number;
    let ack = segment(80, PEER_ISN + 1, Some(iss + 1), false, &[]);
    assert!(poll(i, dev, vec![ack], 3).is_empty());
    let h = i.accept(80).unwrap().expect("established");
    let t = i.tuple(h).unwrap();
    assert_eq!(t.local(), (OURS, 80).into());
    assert_eq!(t.remote(), (THEIRS, 40000).into());
    (h, iss, synack.flow_label)
}

#[test]
fn a_connection_over_ipv6_resolves_its_peer_and_carries_data_both_ways() {
    let (mut i, mut dev) = listening();
    let (h, iss, label) = handshake(&mut i, &mut dev);
    let hello = segment(80, PEER_ISN + 1, Some(iss + 1), false, b"hello over v6");
    let out = poll(&mut i, &mut dev, vec![hello], 4);
    let mut got = [0u8; 64];
    let n = i.tcp(h).unwrap().recv(&mut got).unwrap();
    assert_eq!(&got[..n], b"hello over v6");
    i.tcp(h).unwrap().send(b"and back").unwrap();
    let out: Vec<Out> = out
        .iter()
        .chain(&poll(&mut i, &mut dev, Vec::new(), 5))
        .map(|f| tcp_out(f))
        .collect();
    let data = out
        .iter()
        .find(|o| !o.payload.is_empty())
        .expect("our data");
    assert_eq!(data.payload, b"and back");
    assert_eq!(data.tcp.acknowledgment_number, PEER_ISN + 1 + 13);
    // Every packet of the connection carries the SYN-ACK's label.
    assert!(out.iter().all(|o| o.flow_label == label));
}

#[test]
fn a_segment_for_no_connection_is_reset_over_ipv6() {
    let (mut i, mut dev) = listening();
    let stray = segment(81, 5000, Some(777), false, b"x");
    let out = poll(&mut i, &mut dev, vec![stray], 1);
    assert_eq!(out.len(), 1);
    // A stateless reply goes back to the frame's sender, no resolution.
    let rst = tcp_out(&out[0]);
    assert_eq!(rst.dst_mac, PEER_MAC);
    assert!(rst.tcp.rst);
    assert_eq!(rst.tcp.sequence_number, 777);
    assert_eq!(i.stats().tcp_resets_sent, 1);
}

/// An ICMPv6 error of `kind` and `code` from a router (here THEIRS)
/// quoting `quoted`, one of our frames, as far as 1280 bytes allow (RFC
/// 4443 2.4); `word` is its second 32-bit word (the MTU of a
/// packet-too-big).
fn icmp_error(kind: u8, code: u8, word: u32, quoted: &[u8]) -> Vec<u8> {
    let quoted = &quoted[14..quoted.len().min(14 + 1232)];
    icmp_from_peer(OURS, |b| {
        b[0] = kind;
        b[1] = code;
        b[2..4].fill(0);
        b[4..8].copy_from_slice(&word.to_be_bytes());
        b[8..8 + quoted.len()].copy_from_slice(quoted);
        let n = 8 + quoted.len();
        let sum = checksum::pseudo_header_v6(THEIRS, OURS, NEXT_ICMPV6, n as u32);
        let c = checksum::finish(checksum::accumulate(sum, &b[..n]));
        b[2..4].copy_from_slice(&c.to_be_bytes());
        n
    })
}

fn packet_too_big(mtu: u32, quoted: &[u8]) -> Vec<u8> {
    icmp_error(icmpv6::PACKET_TOO_BIG, 0, mtu, quoted)
}

#[test]
fn packet_too_big_cuts_an_ipv6_connections_segments_to_the_path() {
    let (mut i, mut dev) = listening();
    let (h, _, _) = handshake(&mut i, &mut dev);
    i.tcp(h).unwrap().send(&[7u8; 4000]).unwrap();
    let sent = poll(&mut i, &mut dev, Vec::new(), 10);
    let first = sent.first().expect("data out");
    // Full-sized: 1440 bytes of payload, a 1500-byte IPv6 packet.
    assert_eq!((tcp_out(first).payload.len(), first.len()), (1440, 1514));
    let out = poll(&mut i, &mut dev, vec![packet_too_big(1280, first)], 11);
    assert_eq!(i.stats().icmp_frag_needed, 1);
    assert_eq!(i.stats().icmp_frag_needed_ignored, 0);
    assert!(
        !out.is_empty(),
        "what was in flight goes again, cut to size"
    );
    for f in &out {
        assert!(
            f.len() - 14 <= 1280,
            "a {}-byte packet past the path",
            f.len() - 14
        );
    }
    assert_eq!(tcp_out(&out[0]).payload.len(), 1280 - 60);
    // A report below IPv6's minimum MTU cannot cut further (RFC 8200 5).
    let again = poll(&mut i, &mut dev, vec![packet_too_big(600, &out[0])], 12);
    assert_eq!(i.stats().icmp_frag_needed_ignored, 1);
    assert!(again.is_empty());
}

#[test]
fn an_impaired_transfer_over_ipv6_is_byte_exact() {
    const BYTES: u64 = 64 << 20;
    let link = LinkConfig {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.02,
        corrupt: 0.001,
        jitter: Duration::from_micros(200),
        ..Default::default()
    };
    let run = |ipv6| {
        let spec = TransferSpec {
            bytes: BYTES,
            link: link.clone(),
            seed: 3,
            ipv6,
            ..Default::default()
        };
        let (mut sent, mut got) = (Sha256::new(), Sha256::new());
        let r = run_transfer(
            &spec,
            &mut |b| sent.update(b),
            &mut |b| got.update(b),
            &mut |_, _| {},
        );
        assert!(r.completed, "ipv6 {ipv6}: {:?}", r.error);
        assert_eq!(r.bytes_received, BYTES);
        assert_eq!(sent.finalize(), got.finalize(), "ipv6 {ipv6}: data differs");
        assert!(r.link_a_to_b.frames_lost > 0 && r.sender.counters.retransmits > 0);
        r
    };
    let v6 = run(true);
    let v4 = run(false);
    // The segments carried IPv6's 20 extra header bytes: the MSS (less
    // 12 bytes of timestamps) is 20 smaller than over IPv4.
    assert_eq!((v4.sender.mss, v6.sender.mss), (1448, 1428));
}

#[test]
fn an_ipv6_destination_off_our_prefix_goes_through_the_gateway_or_has_no_route() {
    let (mut i, mut dev) = listening();
    let far: Ipv6Addr = "2001:db8:9::5".parse().unwrap();
    let e = i.connect((far, 443), None, Instant::ZERO).err();
    assert_eq!(e, Some(xdptcp::iface::IfaceError::NoRoute(far.into())));
    i.set_ipv6_gateway(Some(THEIRS));
    let h = i.connect((far, 443), None, Instant::ZERO).unwrap();
    assert_eq!(i.tuple(h).unwrap().local_ip, OURS);
    // The SYN waits for the gateway's MAC, not the destination's.
    let out = poll(&mut i, &mut dev, Vec::new(), 1);
    let eth = ethernet::EthernetFrame::parse(&out[0]).unwrap();
    let ip = Ipv6Packet::parse(eth.payload).unwrap();
    assert!(matches!(
        Icmpv6::parse(ip.payload, ip.src, ip.dst),
        Ok(Icmpv6::NeighborSolicit { target: THEIRS, .. })
    ));
}

/// A connection still opening gives up on a "destination unreachable"
/// that quotes its SYN (connect fails, as on Linux); one for a segment
/// that is not in flight changes nothing.
#[test]
fn destination_unreachable_ends_an_opening_ipv6_connection() {
    use xdptcp::tcp::{ConnError, State};
    let (mut i, mut dev) = listening();
    let h = i.connect((THEIRS, 443), None, Instant::ZERO).unwrap();
    let out = poll(&mut i, &mut dev, Vec::new(), 1);
    assert_eq!(out.len(), 1, "a solicitation for THEIRS");
    let advert = icmp_from_peer(OURS, |b| {
        let flags = icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE;
        icmpv6::emit_neighbor_advert(b, THEIRS, OURS, THEIRS, flags, PEER_MAC).unwrap()
    });
    let syn = poll(&mut i, &mut dev, vec![advert], 2)
        .pop()
        .expect("our SYN");
    assert!(tcp_out(&syn).tcp.syn);
    // Quoting another sequence number: not our SYN, ignored.
    let mut stale = syn.clone();
    stale[54 + 4] ^= 0x80;
    poll(&mut i, &mut dev, vec![icmp_error(1, 3, 0, &stale)], 3);
    assert_eq!(i.tcp(h).unwrap().state(), State::SynSent);
    // Address unreachable (type 1, code 3), quoting the SYN.
    poll(&mut i, &mut dev, vec![icmp_error(1, 3, 0, &syn)], 4);
    assert_eq!(i.stats().icmp_unreachable, 2);
    let c = i.tcp(h).unwrap();
    assert_eq!(
        (c.state(), c.error()),
        (State::Closed, Some(ConnError::Unreachable))
    );
}
