//! Every parser over the same bytes, at every layer they could be found.

use xdptcp::wire::arp::ArpPacket;
use xdptcp::wire::ethernet::EthernetFrame;
use xdptcp::wire::icmp::{FragNeeded, IcmpEcho};
use xdptcp::wire::icmpv6::Icmpv6;
use xdptcp::wire::ipv4::Ipv4Packet;
use xdptcp::wire::ipv6::Ipv6Packet;
use xdptcp::wire::tcp::{TcpOptions, TcpSegment};
use xdptcp::wire::WireError;

pub fn run(data: &[u8]) {
    let payload = EthernetFrame::parse(data)
        .map(|e| e.payload)
        .unwrap_or(data);
    let _ = ArpPacket::parse(payload);
    let ip = Ipv4Packet::parse(payload);
    let inner = ip.as_ref().map(|p| p.payload).unwrap_or(payload);
    let addrs = ip.as_ref().ok().map(|p| (p.src, p.dst));
    let _ = IcmpEcho::parse(inner);
    let _ = FragNeeded::parse(inner);
    let checked = addrs.map(|(src, dst)| TcpSegment::parse(inner, src, dst));
    if let Ok(seg) = checked
        .unwrap_or(Err(WireError::Truncated))
        .or_else(|_| TcpSegment::parse_unchecked(inner))
    {
        // What the parser promises: the payload lies inside the input.
        assert!(seg.payload.len() <= inner.len());
        assert!(seg.options.sacks().len() <= 4);
    }
    let _ = TcpOptions::parse(inner.get(20..).unwrap_or(&[]));
    if let Ok(p) = Ipv6Packet::parse(payload) {
        // The upper layer lies inside the input, after the extensions.
        assert!(40 + p.extensions_len + p.payload.len() <= payload.len());
        let _ = TcpSegment::parse(p.payload, p.src, p.dst);
        let _ = Icmpv6::parse(p.payload, p.src, p.dst);
    }
}
