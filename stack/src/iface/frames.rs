//! Whole frames built in place: Ethernet, IPv4 or IPv6 and the ARP,
//! ICMP, ICMPv6 or TCP message, each written once into the device's
//! buffer.

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

/// The IP header fields that vary per frame or per connection: IPv4's
/// identification, IPv6's flow label.
#[derive(Clone, Copy)]
pub(super) struct IpFields {
    pub ident: u16,
    pub flow_label: u32,
}

/// Builds Ethernet + IP (of the tuple's family) + TCP + payload in place;
/// the payload is copied once, straight from the send buffer into the
/// frame. `macs`: (ours, the next hop's).
pub(super) fn build_tcp_frame<'p>(
    buf: &mut [u8],
    mtu: usize,
    macs: (MacAddr, MacAddr),
    ip: IpFields,
    tuple: &Tuple,
    t: &Transmit,
    (payload, payload_len): (impl IntoIterator<Item = &'p [u8]>, usize),
) -> Result<usize, WireError> {
    let (src_mac, dst_mac) = macs;
    let (ethertype, ip_len) = match tuple.remote_ip {
        IpAddr::V4(_) => (ethernet::ETHERTYPE_IPV4, ipv4::MIN_HEADER_LEN),
        IpAddr::V6(_) => (ethernet::ETHERTYPE_IPV6, crate::wire::ipv6::HEADER_LEN),
    };
    ethernet::emit(buf, dst_mac, src_mac, ethertype)?;
    let ip_at = ethernet::HEADER_LEN;
    let tcp_at = ip_at + ip_len;
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
    let (src, dst) = (tuple.local_ip, tuple.remote_ip);
    let total = tcp_at + tcpwire::emit_segment(segment, &hdr, payload, payload_len, src, dst)?;
    let payload_len = (total - tcp_at) as u16;
    let ecn = if t.ect { ECT0 } else { 0 };
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Ipv4Header {
            src,
            dst,
            protocol: ipv4::PROTO_TCP,
            ttl: 64,
            ident: ip.ident,
            dont_fragment: true,
            payload_len,
            tos: ecn,
        }
        .emit(&mut buf[ip_at..])?,
        (IpAddr::V6(src), IpAddr::V6(dst)) => crate::wire::ipv6::Ipv6Header {
            src,
            dst,
            next_header: crate::wire::ipv6::NEXT_TCP,
            hop_limit: 64,
            traffic_class: ecn,
            flow_label: ip.flow_label,
            payload_len,
        }
        .emit(&mut buf[ip_at..])?,
        // emit_segment refused a mixed pair already.
        _ => return Err(WireError::Unsupported),
    };
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
