//! Frames captured from the Linux kernel's own TCP (6.x, veth between two
//! namespaces, checksum offload off) with `tools/capture_kernel_frames.py`.
//! Each is parsed with our parsers (checksums verified), cross-checked
//! against `etherparse`, then rebuilt with our builders and compared byte
//! for byte, checksums included.

use std::net::Ipv4Addr;
use xdptcp::tcp::{Config, Connection, SeqNum, State};
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::{self, EthernetFrame};
use xdptcp::wire::ipv4::{Ipv4Header, Ipv4Packet, PROTO_TCP};
use xdptcp::wire::tcp::{fill_checksum, Flags, TcpHeader, TcpSegment};
use xdptcp::wire::WireError;

// 10.77.0.1:56854 -> 10.77.0.2:5001, then a connect to closed port 5002.
const SYN: &str = "763f357e5521eaa4e682165b08004500003c3fb040004006e66f0a4d00010a4d0002de161389218350be00000000a002faf00e800000020405b40402080a986c2da2000000000103030a";
const SYN_ACK: &str = "eaa4e682165b763f357e552108004500003c00004000400626200a4d00020a4d00011389de16ab5b8ade218350bfa012fe881ca60000020405b40402080a4ba26c54986c2da20103030a";
const DATA: &str = "763f357e5521eaa4e682165b0800450000503fb240004006e6590a4d00010a4d0002de161389218350bfab5b8adf8018003f474f00000101080a986c2da24ba26c5468656c6c6f2066726f6d20746865206c696e7578206b65726e656c0a";
const FIN: &str = "763f357e5521eaa4e682165b0800450000343fb340004006e6740a4d00010a4d0002de161389218350dbab5b8adf8011003f493d00000101080a986c2e074ba26c54";
const RST: &str = "eaa4e682165b763f357e552108004500002800004000400626340a4d00020a4d0001138a9d5200000000412ece7950140000daaf0000";

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Everything our parsers see in a frame.
struct Parsed<'a> {
    eth: EthernetFrame<'a>,
    ip: Ipv4Packet<'a>,
    tcp: TcpSegment<'a>,
}

fn parse(frame: &[u8]) -> Parsed<'_> {
    let eth = EthernetFrame::parse(frame).expect("ethernet");
    assert_eq!(eth.ethertype, ethernet::ETHERTYPE_IPV4);
    let ip = Ipv4Packet::parse(eth.payload).expect("ipv4, checksum verified");
    assert_eq!(ip.protocol, PROTO_TCP);
    let tcp = TcpSegment::parse(ip.payload, ip.src, ip.dst).expect("tcp, checksum verified");
    Parsed { eth, ip, tcp }
}

/// Rebuilds the frame from the parsed fields with our builders.
fn rebuild(p: &Parsed<'_>) -> Vec<u8> {
    let h = TcpHeader {
        src_port: p.tcp.src_port,
        dst_port: p.tcp.dst_port,
        seq: p.tcp.seq,
        ack: p.tcp.ack,
        flags: p.tcp.flags,
        window: p.tcp.window,
        options: p.tcp.options,
    };
    let tcp_len = h.header_len() + p.tcp.payload.len();
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    ethernet::emit(&mut f, p.eth.dst, p.eth.src, p.eth.ethertype).unwrap();
    Ipv4Header {
        src: p.ip.src,
        dst: p.ip.dst,
        protocol: p.ip.protocol,
        ttl: p.ip.ttl,
        ident: p.ip.ident,
        dont_fragment: p.ip.dont_fragment,
        payload_len: tcp_len as u16,
        tos: 0,
    }
    .emit(&mut f[14..])
    .unwrap();
    let hl = h.emit(&mut f[34..]).unwrap();
    f[34 + hl..].copy_from_slice(p.tcp.payload);
    fill_checksum(&mut f[34..], p.ip.src, p.ip.dst).unwrap();
    f
}

/// The same frame through etherparse: every field must agree with ours.
fn cross_check(frame: &[u8], p: &Parsed<'_>) {
    use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
    let s = SlicedPacket::from_ethernet(frame).expect("etherparse accepts it");
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not ipv4")
    };
    assert_eq!(ip.header().source_addr(), p.ip.src);
    assert_eq!(ip.header().destination_addr(), p.ip.dst);
    assert_eq!(ip.header().ttl(), p.ip.ttl);
    assert_eq!(ip.header().identification(), p.ip.ident);
    assert_eq!(ip.header().dont_fragment(), p.ip.dont_fragment);
    let Some(TransportSlice::Tcp(t)) = &s.transport else {
        panic!("not tcp")
    };
    assert_eq!(t.source_port(), p.tcp.src_port);
    assert_eq!(t.destination_port(), p.tcp.dst_port);
    assert_eq!(t.sequence_number(), p.tcp.seq);
    assert_eq!(t.acknowledgment_number(), p.tcp.ack);
    assert_eq!(t.window_size(), p.tcp.window);
    assert_eq!(t.syn(), p.tcp.flags.syn());
    assert_eq!(t.ack(), p.tcp.flags.ack());
    assert_eq!(t.fin(), p.tcp.flags.fin());
    assert_eq!(t.rst(), p.tcp.flags.rst());
    assert_eq!(t.psh(), p.tcp.flags.psh());
    assert_eq!(t.payload(), p.tcp.payload);
    let (mut mss, mut ws, mut sack_ok, mut ts) = (None, None, false, None);
    for o in t.options_iterator() {
        match o.expect("etherparse reads the options") {
            TcpOptionElement::MaximumSegmentSize(m) => mss = Some(m),
            TcpOptionElement::WindowScale(w) => ws = Some(w),
            TcpOptionElement::SelectiveAcknowledgementPermitted => sack_ok = true,
            TcpOptionElement::Timestamp(v, e) => ts = Some((v, e)),
            _ => {}
        }
    }
    assert_eq!(mss, p.tcp.options.mss);
    assert_eq!(ws, p.tcp.options.window_scale);
    assert_eq!(sack_ok, p.tcp.options.sack_permitted);
    assert_eq!(ts, p.tcp.options.timestamps);
}

fn check(name: &str, s: &str) -> Vec<u8> {
    let frame = hex(s);
    let p = parse(&frame);
    cross_check(&frame, &p);
    assert_eq!(rebuild(&p), frame, "{name}: rebuilt frame differs");
    frame
}

#[test]
fn kernel_syn_with_options() {
    let f = check("SYN", SYN);
    let p = parse(&f);
    assert_eq!(p.tcp.flags, Flags::SYN);
    assert_eq!((p.ip.src, p.ip.dst), (CLIENT, SERVER));
    let o = p.tcp.options;
    assert_eq!(o.mss, Some(1460));
    assert!(o.sack_permitted);
    assert_eq!(o.window_scale, Some(10));
    assert_eq!(o.timestamps.map(|t| t.1), Some(0), "TSecr is 0 in a SYN");
}

#[test]
fn kernel_syn_ack() {
    let f = check("SYN-ACK", SYN_ACK);
    let p = parse(&f);
    assert_eq!(p.tcp.flags, Flags::SYN | Flags::ACK);
    let syn = hex(SYN);
    assert_eq!(p.tcp.ack, parse(&syn).tcp.seq.wrapping_add(1));
}

#[test]
fn kernel_data_segment() {
    let f = check("DATA", DATA);
    let p = parse(&f);
    assert_eq!(p.tcp.payload, b"hello from the linux kernel\n");
    assert!(p.tcp.flags.psh() && p.tcp.flags.ack());
}

#[test]
fn kernel_fin() {
    let f = check("FIN", FIN);
    assert_eq!(parse(&f).tcp.flags, Flags::FIN | Flags::ACK);
}

#[test]
fn kernel_rst_for_closed_port() {
    let f = check("RST", RST);
    let p = parse(&f);
    assert_eq!(p.tcp.flags, Flags::RST | Flags::ACK);
    assert_eq!(p.tcp.dst_port, 0x9d52);
    assert!(p.tcp.options.mss.is_none() && p.tcp.payload.is_empty());
}

#[test]
fn any_single_bit_flip_in_a_kernel_frame_is_caught_by_a_checksum() {
    let frame = hex(DATA);
    for bit in (14 * 8)..frame.len() * 8 {
        let mut f = frame.clone();
        f[bit / 8] ^= 1 << (bit % 8);
        let eth = EthernetFrame::parse(&f).unwrap();
        let caught = match Ipv4Packet::parse(eth.payload) {
            Err(_) => true,
            // A flip in the addresses or length is caught by the TCP pseudo-header.
            Ok(ip) => TcpSegment::parse(ip.payload, ip.src, ip.dst).is_err(),
        };
        assert!(caught, "flip of bit {bit} went unnoticed");
    }
}

#[test]
fn corrupted_kernel_frames_report_typed_errors() {
    let frame = hex(SYN);
    let ip_at = 14;
    let tcp_at = 34;
    // Data offset below 5 words.
    let mut f = frame.clone();
    f[tcp_at + 12] = 0x40;
    let ip = Ipv4Packet::parse(&f[ip_at..]).unwrap();
    assert_eq!(
        TcpSegment::parse_unchecked(ip.payload),
        Err(WireError::BadDataOffset)
    );
    // Data offset past the end of the segment.
    f[tcp_at + 12] = 0xf0;
    let ip = Ipv4Packet::parse(&f[ip_at..]).unwrap();
    assert_eq!(
        TcpSegment::parse_unchecked(ip.payload),
        Err(WireError::BadDataOffset)
    );
    // An option length that runs past the options area (the MSS option
    // claims 40 bytes).
    let mut f = frame.clone();
    f[tcp_at + 21] = 40;
    let ip = Ipv4Packet::parse(&f[ip_at..]).unwrap();
    assert_eq!(
        TcpSegment::parse_unchecked(ip.payload),
        Err(WireError::BadOption)
    );
    // Option length 0 would loop forever in a naive parser.
    f[tcp_at + 21] = 0;
    let ip = Ipv4Packet::parse(&f[ip_at..]).unwrap();
    assert_eq!(
        TcpSegment::parse_unchecked(ip.payload),
        Err(WireError::BadOption)
    );
    // IPv4 total length shorter than the header, and longer than the frame.
    let mut f = frame.clone();
    f[ip_at + 2..ip_at + 4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(Ipv4Packet::parse(&f[ip_at..]), Err(WireError::BadLength));
    f[ip_at + 2..ip_at + 4].copy_from_slice(&1500u16.to_be_bytes());
    assert_eq!(Ipv4Packet::parse(&f[ip_at..]), Err(WireError::Truncated));
    // Not IPv4, IHL below 5, bad header checksum.
    let mut f = frame.clone();
    f[ip_at] = 0x65;
    assert_eq!(Ipv4Packet::parse(&f[ip_at..]), Err(WireError::BadVersion));
    f[ip_at] = 0x44;
    assert_eq!(Ipv4Packet::parse(&f[ip_at..]), Err(WireError::BadVersion));
    let mut f = frame.clone();
    f[ip_at + 8] = 1; // TTL changed, checksum not
    assert_eq!(Ipv4Packet::parse(&f[ip_at..]), Err(WireError::BadChecksum));
    // Truncated everywhere.
    for cut in 0..frame.len() {
        let f = &frame[..cut];
        let ok = EthernetFrame::parse(f)
            .and_then(|e| Ipv4Packet::parse(e.payload))
            .and_then(|ip| TcpSegment::parse(ip.payload, ip.src, ip.dst));
        assert!(ok.is_err(), "a frame cut to {cut} bytes parsed");
    }
}

#[test]
fn a_kernel_syn_opens_our_connection_with_its_options() {
    let f = hex(SYN);
    let p = parse(&f);
    let mut c = Connection::listen(Config::default(), SeqNum(12345));
    c.on_segment(&p.tcp, Instant::ZERO);
    assert_eq!(c.state(), State::SynReceived);
    let t = c.poll_transmit(Instant::ZERO).expect("SYN-ACK");
    assert_eq!(t.flags, Flags::SYN | Flags::ACK);
    assert_eq!(t.ack.0, p.tcp.seq.wrapping_add(1));
    assert_eq!(t.options.mss, Some(1460));
    assert!(
        t.options.window_scale.is_some(),
        "the kernel offered WS, so we answer it"
    );
    assert!(t.options.sack_permitted, "and SACK");
    let kernel_tsval = p.tcp.options.timestamps.unwrap().0;
    assert_eq!(
        t.options.timestamps.map(|ts| ts.1),
        Some(kernel_tsval),
        "TSecr echoes the kernel"
    );
    assert_eq!(
        c.snapshot().mss,
        1460 - 12,
        "timestamps take 12 bytes of every segment"
    );
}
