//! IPv6 on the interface: Neighbor Discovery for our addresses and echo,
//! with frames a peer on the link would send (built with our writers and
//! checked with etherparse as the oracle).

mod common;

use common::frames::*;
use std::net::Ipv6Addr;
use xdptcp::iface::Interface;
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::{self, MacAddr};
use xdptcp::wire::icmpv6::{self, Icmpv6};
use xdptcp::wire::ipv6::{Ipv6Header, Ipv6Packet, NEXT_ICMPV6};

const OURS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// An Ethernet frame from the peer: IPv6 from `src` to `dst` with hop
/// limit `hops`, carrying the ICMPv6 message `body` writes.
fn from_peer(
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hops: u8,
    body: impl FnOnce(&mut [u8]) -> usize,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 200];
    ethernet::emit(&mut f, dst_mac, PEER_MAC, ethernet::ETHERTYPE_IPV6).unwrap();
    let n = body(&mut f[54..]);
    let h = Ipv6Header {
        src,
        dst,
        next_header: NEXT_ICMPV6,
        hop_limit: hops,
        traffic_class: 0,
        flow_label: 0,
        payload_len: n as u16,
    };
    h.emit(&mut f[14..]).unwrap();
    f.truncate(54 + n);
    f
}

fn solicitation(src: Ipv6Addr, target: Ipv6Addr, hops: u8) -> Vec<u8> {
    let group = icmpv6::solicited_node(target);
    from_peer(icmpv6::multicast_mac(group), src, group, hops, |b| {
        icmpv6::emit_neighbor_solicit(b, src, group, target, PEER_MAC).unwrap()
    })
}

/// What the interface sends for `frames`: (Ethernet destination, IPv6
/// packet fields, the ICMPv6 message), each checked by etherparse too.
fn exchange(
    i: &mut Interface,
    frames: Vec<Vec<u8>>,
) -> Vec<(MacAddr, Ipv6Addr, Ipv6Addr, u8, Vec<u8>)> {
    let mut dev = Inject {
        rx: frames,
        tx: Vec::new(),
    };
    i.poll(Instant::from_millis(5), &mut dev);
    dev.tx
        .iter()
        .map(|f| {
            let sliced = etherparse::SlicedPacket::from_ethernet(f).expect("etherparse reads it");
            assert!(matches!(sliced.net, Some(etherparse::NetSlice::Ipv6(_))));
            let eth = ethernet::EthernetFrame::parse(f).unwrap();
            let ip = Ipv6Packet::parse(eth.payload).unwrap();
            assert_eq!(ip.next_header, NEXT_ICMPV6);
            (eth.dst, ip.src, ip.dst, ip.hop_limit, ip.payload.to_vec())
        })
        .collect()
}

/// An interface serving `OURS`, its announcement sent.
fn iface6() -> Interface {
    let mut i = iface();
    i.add_ipv6(OURS, 64).unwrap();
    assert_eq!(exchange(&mut i, Vec::new()).len(), 1, "the announcement");
    i
}

#[test]
fn an_address_taken_is_announced_to_all_nodes() {
    let mut i = iface();
    i.add_ipv6(OURS, 64).unwrap();
    let out = exchange(&mut i, Vec::new());
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    assert_eq!(out.len(), 1);
    let (mac, src, dst, hops, msg) = &out[0];
    assert_eq!(
        (*mac, *src, *dst, *hops),
        (icmpv6::multicast_mac(all_nodes), OURS, all_nodes, 255)
    );
    assert_eq!(
        Icmpv6::parse(msg, OURS, all_nodes),
        Ok(Icmpv6::NeighborAdvert {
            target: OURS,
            flags: icmpv6::NA_OVERRIDE,
            target_lladdr: Some(US_MAC),
        })
    );
    // Taken again: nothing new to say.
    i.add_ipv6(OURS, 64).unwrap();
    assert!(exchange(&mut i, Vec::new()).is_empty());
}

#[test]
fn a_solicitation_for_our_address_is_answered_with_our_mac() {
    let mut i = iface6();
    let out = exchange(&mut i, vec![solicitation(THEIRS, OURS, 255)]);
    assert_eq!(out.len(), 1, "one advertisement");
    let (mac, src, dst, hops, msg) = &out[0];
    assert_eq!((*mac, *src, *dst, *hops), (PEER_MAC, OURS, THEIRS, 255));
    assert_eq!(
        Icmpv6::parse(msg, OURS, THEIRS),
        Ok(Icmpv6::NeighborAdvert {
            target: OURS,
            flags: icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE,
            target_lladdr: Some(US_MAC),
        })
    );
    assert_eq!(i.stats().nd_solicitations_answered, 1);
}

#[test]
fn solicitations_we_must_not_answer_are_dropped() {
    let mut i = iface6();
    let other = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11);
    // Forwarded (hop limit below 255), or for an address not ours (whose
    // solicited-node group differs, so it is not for us at all).
    let out = exchange(
        &mut i,
        vec![
            solicitation(THEIRS, OURS, 64),
            solicitation(THEIRS, other, 255),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(i.stats().nd_dropped, 1);
    assert_eq!(i.stats().nd_solicitations_answered, 0);
    // An interface without IPv6 addresses takes no IPv6 at all.
    let mut v4_only = iface();
    let out = exchange(&mut v4_only, vec![solicitation(THEIRS, OURS, 255)]);
    assert!(out.is_empty());
    assert_eq!(v4_only.stats().rx_not_for_us, 1);
}

#[test]
fn duplicate_address_detection_is_answered_to_all_nodes() {
    let mut i = iface6();
    let out = exchange(&mut i, vec![solicitation(Ipv6Addr::UNSPECIFIED, OURS, 255)]);
    assert_eq!(out.len(), 1);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let (mac, src, dst, _, msg) = &out[0];
    assert_eq!(
        (*mac, *src, *dst),
        (icmpv6::multicast_mac(all_nodes), OURS, all_nodes)
    );
    let m = Icmpv6::parse(msg, OURS, all_nodes).unwrap();
    assert!(
        matches!(
            m,
            Icmpv6::NeighborAdvert {
                flags: icmpv6::NA_OVERRIDE,
                ..
            }
        ),
        "unsolicited: {m:?}"
    );
}

#[test]
fn echo_requests_to_our_address_are_answered() {
    let mut i = iface6();
    let ping = from_peer(US_MAC, THEIRS, OURS, 64, |b| {
        icmpv6::emit_echo(b, THEIRS, OURS, true, 0x77, 3, b"hello six").unwrap()
    });
    let out = exchange(&mut i, vec![ping]);
    assert_eq!(out.len(), 1);
    let (mac, src, dst, _, msg) = &out[0];
    assert_eq!((*mac, *src, *dst), (PEER_MAC, OURS, THEIRS));
    assert_eq!(
        Icmpv6::parse(msg, OURS, THEIRS),
        Ok(Icmpv6::Echo {
            request: false,
            ident: 0x77,
            seq: 3,
            data: &b"hello six"[..],
        })
    );
    assert_eq!(i.stats().icmpv6_echo_answered, 1);
}

#[test]
fn only_unicast_addresses_are_taken() {
    let mut i = iface();
    assert!(i.add_ipv6("ff02::1".parse().unwrap(), 64).is_err());
    assert!(i.add_ipv6(Ipv6Addr::UNSPECIFIED, 64).is_err());
    assert!(i.add_ipv6(OURS, 64).is_ok());
    assert!(i.add_ipv6(OURS, 64).is_ok(), "again: no change");
    for k in 1..16 {
        i.add_ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, k), 64)
            .unwrap();
    }
    let err = i
        .add_ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 2, 0), 64)
        .unwrap_err();
    assert!(err.to_string().contains("more than 16"), "{err}");
    assert_eq!(i.ipv6_addresses().count(), 16);
    assert_eq!(i.ipv6_addresses().next().unwrap(), OURS);
}

/// A flood of echo requests gets at most `MAX_REPLIES_PER_SEC` answers a
/// second; the rest are counted, not answered.
#[test]
fn echo_replies_are_rate_limited() {
    let mut i = iface6();
    let cap = xdptcp::iface::MAX_REPLIES_PER_SEC as usize;
    let mut answered = 0;
    for _ in 0..(cap + 100) / 50 {
        let pings = (0..50)
            .map(|k| {
                from_peer(US_MAC, THEIRS, OURS, 64, |b| {
                    icmpv6::emit_echo(b, THEIRS, OURS, true, 7, k, b"ping").unwrap()
                })
            })
            .collect();
        answered += exchange(&mut i, pings).len();
    }
    assert_eq!(answered, cap);
    assert_eq!(i.stats().icmpv6_echo_answered, cap as u64);
    assert_eq!(i.stats().replies_rate_limited, 100);
}
