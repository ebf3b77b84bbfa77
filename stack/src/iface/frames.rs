//! Whole frames built in place: Ethernet, IPv4 and the ARP, ICMP or TCP
//! message, each written once into the device's buffer.

use super::*;

pub(super) fn build_arp(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    op: ArpOp,
    sip: Ipv4Addr,
    tmac: MacAddr,
    tip: Ipv4Addr,
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst, src, ethernet::ETHERTYPE_ARP)?;
    let arp = ArpPacket {
        op,
        sender_mac: src,
        sender_ip: sip,
        target_mac: tmac,
        target_ip: tip,
    };
    let n = arp.emit(&mut buf[ethernet::HEADER_LEN..])?;
    Ok(ethernet::HEADER_LEN + n)
}

pub(super) fn build_icmp(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    echo: &IcmpEcho<'_>,
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4)?;
    let ip_at = ethernet::HEADER_LEN;
    let body_at = ip_at + ipv4::MIN_HEADER_LEN;
    let n = echo.emit(buf.get_mut(body_at..).ok_or(WireError::BufferTooSmall)?)?;
    let hdr = Ipv4Header {
        src,
        dst,
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        ident,
        dont_fragment: false,
        payload_len: n as u16,
        tos: 0,
    };
    hdr.emit(&mut buf[ip_at..])?;
    Ok(body_at + n)
}

/// The ECN field's ECT(0) codepoint (RFC 3168 5), as Linux sends it.
pub(super) const ECT0: u8 = 0x02;
/// ... and CE, congestion experienced.
pub(super) const CE: u8 = 0x03;

/// Builds Ethernet + IPv4 + TCP + payload in place; the payload is copied
/// once, straight from the send buffer into the frame.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_tcp_frame(
    buf: &mut [u8],
    mtu: usize,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    ident: u16,
    tuple: &Tuple,
    t: &Transmit,
    payload: (&[u8], &[u8]),
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4)?;
    let ip_at = ethernet::HEADER_LEN;
    let tcp_at = ip_at + ipv4::MIN_HEADER_LEN;
    let hdr = TcpHeader {
        src_port: tuple.local_port,
        dst_port: tuple.remote_port,
        seq: t.seq.0,
        ack: if t.flags.ack() { t.ack.0 } else { 0 },
        flags: t.flags,
        window: t.window,
        options: t.options,
    };
    // Room for the segment within the MTU, checked before any copy.
    let fits = ip_at.saturating_add(mtu).min(buf.len());
    let segment = buf.get_mut(tcp_at..fits).ok_or(WireError::BufferTooSmall)?;
    let total = tcp_at + tcpwire::emit_segment(segment, &hdr, payload, src_ip, tuple.remote_ip)?;
    let ip = Ipv4Header {
        src: src_ip,
        dst: tuple.remote_ip,
        protocol: ipv4::PROTO_TCP,
        ttl: 64,
        ident,
        dont_fragment: true,
        payload_len: (total - tcp_at) as u16,
        tos: if t.ect { ECT0 } else { 0 },
    };
    ip.emit(&mut buf[ip_at..])?;
    Ok(total)
}

/// Builds Ethernet + IPv6 + an ICMPv6 message that `body` writes (with
/// its checksum) into the buffer after the headers. Hop limit 255, which
/// Neighbor Discovery requires and echo replies may use.
pub(super) fn build_icmpv6(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    body: impl FnOnce(&mut [u8]) -> Result<usize, WireError>,
) -> Result<usize, WireError> {
    use crate::wire::ipv6;
    ethernet::emit(buf, dst_mac, src_mac, ethernet::ETHERTYPE_IPV6)?;
    let ip_at = ethernet::HEADER_LEN;
    let body_at = ip_at + ipv6::HEADER_LEN;
    let n = body(buf.get_mut(body_at..).ok_or(WireError::BufferTooSmall)?)?;
    let hdr = ipv6::Ipv6Header {
        src,
        dst,
        next_header: ipv6::NEXT_ICMPV6,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
        payload_len: u16::try_from(n).map_err(|_| WireError::BadLength)?,
    };
    hdr.emit(&mut buf[ip_at..])?;
    Ok(body_at + n)
}
