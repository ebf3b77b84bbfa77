//! The receive half: a frame from the device to whatever it concerns
//! (ARP, ICMP, a connection, a listener), updating state only; replies
//! that are not a connection's own go on the control queue for egress.

use super::*;

impl Interface {
    pub(super) fn ingress(&mut self, frame: &RxFrame<'_>, now: Instant) {
        self.stats.rx_frames += 1;
        let eth = match EthernetFrame::parse(frame.bytes()) {
            Ok(e) => e,
            Err(e) => return self.count_error(e),
        };
        if eth.dst != self.cfg.mac && !eth.dst.is_broadcast() && !self.is_our_multicast_mac(eth.dst)
        {
            self.stats.rx_not_for_us += 1;
            return;
        }
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => self.ingress_arp(eth.payload, now),
            ethernet::ETHERTYPE_IPV4 => self.ingress_ipv4(eth.src, eth.payload, frame, now),
            ethernet::ETHERTYPE_IPV6 => self.ingress_ipv6(eth.src, eth.payload, frame, now),
            _ => self.stats.rx_unsupported += 1,
        }
    }

    pub(super) fn count_error(&mut self, e: WireError) {
        match e {
            WireError::BadChecksum => self.stats.rx_bad_checksum += 1,
            WireError::Unsupported => self.stats.rx_unsupported += 1,
            _ => self.stats.rx_malformed += 1,
        }
    }

    /// Whether this second's budget of replies (echo, neighbour
    /// advertisements) has room for one more; counted when not.
    pub(super) fn may_reply(&mut self, now: Instant) -> bool {
        let ok = self.replies.take(now);
        self.stats.replies_rate_limited += u64::from(!ok);
        ok
    }

    pub(super) fn push_control(&mut self, c: Control) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.control_queue_full += 1;
            return;
        }
        self.control.push_back(c);
    }

    pub(super) fn ingress_arp(&mut self, payload: &[u8], now: Instant) {
        let arp = match ArpPacket::parse(payload) {
            Ok(a) => a,
            Err(e) => return self.count_error(e),
        };
        // (0.0.0.0: we have no IPv4 address, so no ARP is for us.)
        if arp.target_ip != self.cfg.ip || self.cfg.ip.is_unspecified() {
            self.stats.rx_not_for_us += 1;
            return;
        }
        // RFC 826: the sender's mapping is learned before the opcode is looked at.
        self.neighbors.learn(arp.sender_ip, arp.sender_mac, now);
        self.stats.arp_limited = self.neighbors.limited;
        if arp.op == ArpOp::Request {
            self.stats.arp_requests_answered += 1;
            self.push_control(Control::ArpReply {
                mac: arp.sender_mac,
                ip: arp.sender_ip,
            });
        }
    }

    pub(super) fn ingress_ipv4(
        &mut self,
        src_mac: MacAddr,
        payload: &[u8],
        frame: &RxFrame<'_>,
        now: Instant,
    ) {
        let ip = match Ipv4Packet::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.count_error(e),
        };
        if ip.dst != self.cfg.ip {
            self.stats.rx_not_for_us += 1;
            return;
        }
        if ip.is_fragment {
            self.stats.rx_fragments_dropped += 1;
            return;
        }
        match ip.protocol {
            ipv4::PROTO_ICMP if ip.payload.first() == Some(&icmp::DEST_UNREACHABLE) => {
                match icmp::FragNeeded::parse(ip.payload) {
                    Ok(f) => self.ingress_frag_needed(&f, now),
                    Err(e) => self.count_error(e),
                }
            }
            ipv4::PROTO_ICMP => match IcmpEcho::parse(ip.payload) {
                Ok(echo) if echo.kind == icmp::ECHO_REQUEST => {
                    if !self.may_reply(now) {
                        return;
                    }
                    self.stats.icmp_echo_answered += 1;
                    let data = echo.data.to_vec();
                    self.push_control(Control::EchoReply {
                        mac: src_mac,
                        ip: ip.src,
                        ident: echo.ident,
                        seq: echo.seq,
                        data,
                    });
                }
                Ok(_) => self.stats.rx_unsupported += 1,
                Err(e) => self.count_error(e),
            },
            ipv4::PROTO_TCP => {
                let ends = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
                self.ingress_tcp_bytes(src_mac, ends, ip.payload, ip.ecn == CE, frame, now)
            }
            _ => self.stats.rx_unsupported += 1,
        }
    }

    /// A TCP segment's bytes from `ends` (source, destination: one of
    /// ours) of either family: checksum verified (or, on a device that
    /// hands on unfinished ones, trusted as configured), then on to its
    /// connection.
    pub(super) fn ingress_tcp_bytes(
        &mut self,
        src_mac: MacAddr,
        ends: (IpAddr, IpAddr),
        bytes: &[u8],
        ce: bool,
        frame: &RxFrame<'_>,
        now: Instant,
    ) {
        let (src, dst) = ends;
        let parsed = match TcpSegment::parse(bytes, src, dst) {
            Err(WireError::BadChecksum) if tcpwire::is_partial_checksum(bytes, src, dst) => {
                self.stats.rx_partial_checksum += 1;
                self.stats.partial_checksum_from = Some(src);
                if self.cfg.rx_checksum != RxChecksum::TrustPartial {
                    return;
                }
                TcpSegment::parse_unchecked(bytes)
            }
            parsed => parsed,
        };
        match parsed {
            Ok(mut seg) => {
                seg.lent = Some(frame);
                self.ingress_tcp(src_mac, ends, &seg, ce, now)
            }
            Err(e) => self.count_error(e),
        }
    }

    /// Path MTU discovery (RFC 1191): a router on the way to a peer cannot
    /// forward our segments that large. The quoted segment names the
    /// connection, and its sequence number must be one in flight (RFC
    /// 5927), so a forged message cannot shrink a connection blindly.
    pub(super) fn ingress_frag_needed(&mut self, f: &icmp::FragNeeded, now: Instant) {
        self.stats.icmp_frag_needed += 1;
        if f.src != self.cfg.ip {
            return;
        }
        let tuple = Tuple::of_sent(f.src.into(), f.dst.into(), f.src_port, f.dst_port);
        self.on_path_mtu(tuple, f.mtu, f.seq, now);
    }

    /// A router's report (either family) that the path to `tuple`'s peer
    /// carries at most `mtu` bytes, quoting our segment at `seq`.
    pub(super) fn on_path_mtu(&mut self, tuple: Tuple, mtu: u16, seq: u32, now: Instant) {
        let Some(h) = self.tcp.find(&tuple) else {
            return;
        };
        if let Some(e) = self.tcp.touch(h) {
            if !e.conn.on_path_mtu(mtu, SeqNum(seq), now) {
                self.stats.icmp_frag_needed_ignored += 1;
            }
        }
    }

    /// A "destination unreachable" quoting our segment at `seq` on
    /// `tuple`: a connection still opening gives up (connect fails with
    /// "unreachable", as on Linux: RFC 5461 4.1 lets errors during the
    /// handshake be hard); an established one goes on, its own timers
    /// deciding (RFC 1122 4.2.3.9: soft errors).
    pub(super) fn on_unreachable(&mut self, tuple: Tuple, seq: u32) {
        let Some(h) = self.tcp.find(&tuple) else {
            return;
        };
        let opening = self.tcp.get(h).is_some_and(|e| {
            e.conn.state() == crate::tcp::State::SynSent && e.conn.seq_space().snd_una.0 == seq
        });
        if opening {
            self.tcp.touch(h).expect("present").conn.unreachable();
            self.tcp.note_activity(h);
        }
    }

    /// `ends`: the segment's source and destination addresses (ours);
    /// `ce`: the IP header said congestion experienced (ECN).
    pub(super) fn ingress_tcp(
        &mut self,
        src_mac: MacAddr,
        ends: (IpAddr, IpAddr),
        seg: &TcpSegment<'_>,
        ce: bool,
        now: Instant,
    ) {
        self.stats.tcp_segments_in += 1;
        self.stats.tcp_data_segments_in += u64::from(!seg.payload.is_empty());
        let (src, local) = ends;
        let tuple = Tuple::of_segment(local, src, seg.dst_port, seg.src_port);
        if let Some(h) = self.tcp.find(&tuple) {
            let reincarnation = self
                .tcp
                .get(h)
                .is_some_and(|e| e.released && e.conn.accepts_new_incarnation(seg));
            if reincarnation {
                // RFC 6191: a SYN that is clearly newer than anything of
                // the old connection opens a new one on the same 4-tuple
                // at once, instead of waiting out TIME-WAIT (a Linux
                // client would answer our ACK with RST and stall).
                self.stats.tcp_time_wait_reused += 1;
                self.tcp.remove(h);
            } else if let Some(e) = self.tcp.touch(h) {
                if ce {
                    e.conn.note_congestion_experienced();
                }
                e.conn.on_segment(seg, now);
                if seg.flags.syn() {
                    if let Some((cookie, mss)) = e.conn.take_fast_open_cookie() {
                        let asked = e.conn.fast_open_asked();
                        self.fast_open_cookies.learn(src, cookie, mss, asked);
                    }
                }
                self.tcp.note_activity(h);
                return;
            }
        }
        match self.tcp.time_waits.on_segment(tuple, seg, now) {
            None => {}
            Some(TimeWaitReply::Nothing) => return,
            Some(TimeWaitReply::Ack(t)) => {
                return self.push_control(Control::Tcp {
                    mac: src_mac,
                    tuple,
                    t,
                })
            }
            // As for a connection in TIME-WAIT above: the SYN goes on to
            // the listener.
            Some(TimeWaitReply::NewIncarnation) => self.stats.tcp_time_wait_reused += 1,
        }
        let is_syn = seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst();
        if let (true, Some(l)) = (is_syn, self.tcp.listeners.get(&seg.dst_port)) {
            let cfg = l.cfg.clone();
            if !self.admits(&cfg) {
                return;
            }
            let l = &self.tcp.listeners[&seg.dst_port];
            if l.backlog.len() >= l.max_backlog {
                // Full of half-open connections (a flood, most likely):
                // answer without keeping state.
                self.send_cookie(src_mac, tuple, seg, now);
                return;
            }
            let iss = self
                .isn
                .isn((local, tuple.local_port), (src, tuple.remote_port), now);
            let key = cfg.fast_open_key;
            let no_cookie = key.is_some() && cfg.fast_open_without_cookie;
            let mut conn = self.passive_conn(cfg, iss, &tuple);
            if no_cookie && !seg.payload.is_empty() {
                // No cookie needed: the data is taken, none is offered.
                conn.accept_fast_open();
            } else if let (Some(key), Some(asked)) = (key, seg.options.fast_open) {
                let valid = crate::tcp::fast_open::cookie(&key, src, local);
                if asked.cookie() == Some(&valid[..]) {
                    conn.accept_fast_open();
                } else {
                    // A request, or a stale or forged cookie: the data
                    // waits for the handshake; the client gets a cookie.
                    let reply = FastOpen::with_cookie(&valid, asked.experimental);
                    conn.offer_fast_open_cookie(reply);
                }
            }
            conn.on_segment(seg, now);
            self.file_in_backlog(tuple, conn);
            return;
        }
        let is_ack = seg.flags.ack() && !seg.flags.syn() && !seg.flags.rst();
        if is_ack
            && self.tcp.listeners.contains_key(&seg.dst_port)
            && self.accept_cookie(tuple, seg, now)
        {
            return;
        }
        if let Some((seq, ack, flags)) = reset::reply_to_unexpected(seg) {
            self.stats.tcp_resets_sent += 1;
            self.push_control(Control::Tcp {
                mac: src_mac,
                tuple,
                t: Transmit::bare(seq, ack, flags),
            });
        }
    }
}
