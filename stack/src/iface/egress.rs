//! The transmit half: control replies first, then each ready
//! connection's segments, built in place in the device's buffers once the
//! next hop's MAC address is known.

use super::*;

impl Interface {
    /// Where a frame to `dst` goes on the link: `dst` itself if on our
    /// link, else the gateway of its family; `None`: no route.
    pub(super) fn next_hop(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(d) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.cfg.prefix_len))
                    .unwrap_or(0);
                if u32::from(d) & mask == u32::from(self.cfg.ip) & mask {
                    Some(dst)
                } else {
                    self.cfg.gateway.map(IpAddr::V4)
                }
            }
            IpAddr::V6(d) if self.on_link_v6(d) => Some(dst),
            IpAddr::V6(_) => self.gateway6.map(IpAddr::V6),
        }
    }

    /// Our address of `dst`'s family to send to it from.
    pub(super) fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(_) => Some(IpAddr::V4(self.cfg.ip)),
            IpAddr::V6(d) => self.ipv6_source_for(d).map(IpAddr::V6),
        }
    }

    /// The next hop's MAC: ARP's answer for IPv4, Neighbor Discovery's
    /// for IPv6, with the same limits.
    fn resolve(&mut self, hop: IpAddr, now: Instant) -> Resolution {
        match hop {
            IpAddr::V4(h) => {
                let r = self.neighbors.resolve(h, now);
                self.stats.arp_limited = self.neighbors.limited;
                r
            }
            IpAddr::V6(h) => self.neighbors6.resolve(h, now),
        }
    }

    /// The request that asks for `hop`'s MAC: an ARP request, or a
    /// neighbour solicitation to its solicited-node group (RFC 4861 7.2.2).
    fn solicit(&mut self, hop: IpAddr) -> Option<Control> {
        match hop {
            IpAddr::V4(h) => {
                self.stats.arp_requests_sent += 1;
                Some(Control::ArpRequest(h))
            }
            IpAddr::V6(h) => {
                let src = self.ipv6_source_for(h)?;
                self.stats.nd_solicitations_sent += 1;
                let group = icmpv6::solicited_node(h);
                Some(Control::Icmpv6 {
                    mac: icmpv6::multicast_mac(group),
                    src,
                    dst: group,
                    msg: Icmpv6Out::NeighborSolicit { target: h },
                })
            }
        }
    }

    /// Fills `buf` with the next frame to send, if there is one.
    pub(super) fn egress_one(&mut self, buf: &mut [u8], mtu: usize, now: Instant) -> Option<usize> {
        if let Some(c) = self.control.pop_front() {
            return self.build_control(buf, c);
        }
        // Each ready connection at most once per call: those waiting for
        // their next hop's MAC stay queued and are skipped.
        for _ in 0..self.tcp.ready.len() {
            let Some(h) = self.tcp.ready.pop_front() else {
                break;
            };
            let Some(remote_ip) = self.tcp.get(h).map(|e| e.tuple.remote_ip) else {
                continue;
            };
            let Some(hop) = self.next_hop(remote_ip) else {
                self.stats.no_route += 1;
                self.tcp.get_mut(h).expect("present").queued = false;
                continue;
            };
            let mac = match self.resolve(hop, now) {
                Resolution::Known(mac) => mac,
                Resolution::Refresh(mac) => {
                    // Send as usual; the request follows in the next frame.
                    if let Some(c) = self.solicit(hop) {
                        self.push_control(c);
                    }
                    mac
                }
                Resolution::Ask => {
                    self.tcp.ready.push_back(h);
                    match self.solicit(hop) {
                        Some(c) => return self.build_control(buf, c),
                        None => continue,
                    }
                }
                // Leave the segments in the connection until the neighbour
                // answers.
                Resolution::Wait => {
                    self.tcp.ready.push_back(h);
                    continue;
                }
                Resolution::Failed => {
                    self.tcp.get_mut(h).expect("present").queued = false;
                    self.neighbor_failed(hop, now);
                    continue;
                }
            };
            let e = self.tcp.get_mut(h).expect("present");
            let Some(mut t) = e.conn.poll_transmit(now) else {
                e.queued = false;
                // Holding data back may have started a timer (a cork's).
                // A connection that sent in this poll is marked already:
                // its timers are filed after the transmit phase anyway.
                if !e.dirty {
                    let timer = e.conn.poll_timeout();
                    if timer.is_some_and(|t| e.timer.is_none_or(|old| t < old)) {
                        self.tcp.mark_dirty(h);
                    }
                }
                let e = self.tcp.get_mut(h).expect("present");
                // Sending made room for a writer that was turned away.
                if e.conn.take_writable_again() {
                    self.tcp.note_activity(h);
                }
                continue;
            };
            if t.payload_len == 0 && t.flags == Flags::ACK {
                self.stats.tcp_bare_acks_out += 1;
            }
            let tuple = e.tuple;
            if let Some(m) = &mut t.options.mss {
                // Offer no more than the device can receive.
                let most = match tuple.remote_ip {
                    IpAddr::V4(_) => mss_for_mtu(mtu),
                    IpAddr::V6(_) => mss_for_mtu_v6(mtu),
                };
                *m = (*m).min(most);
            }
            // Stay on a connection while it has data (still queued, so
            // `touch` only marks its timers for a resync).
            self.tcp.ready.push_front(h);
            self.tcp.touch(h);
            self.ip_ident = self.ip_ident.wrapping_add(1);
            let e = self.tcp.get(h).expect("present");
            let ip = IpFields {
                ident: self.ip_ident,
                flow_label: e.flow_label,
            };
            let built = build_tcp_frame(
                buf,
                mtu,
                (self.cfg.mac, mac),
                ip,
                &tuple,
                &t,
                (e.conn.payload(&t), t.payload_len),
            );
            if built.is_ok() {
                return built.ok();
            }
            // A segment the device cannot carry (an MSS configured past its
            // MTU, or a frame buffer smaller than the MTU) is not lost
            // unseen: it is counted, and the connection re-cuts what is in
            // flight to the size that fits, as for a path MTU.
            self.stats.tx_oversize += 1;
            let fits = (mtu + ethernet::HEADER_LEN).min(buf.len());
            let ip_room = (fits - ethernet::HEADER_LEN).min(usize::from(u16::MAX)) as u16;
            let e = self.tcp.get_mut(h).expect("present");
            e.conn.on_path_mtu(ip_room, t.seq, now);
        }
        None
    }

    /// ARP or Neighbor Discovery for `hop` went unanswered. Connections
    /// still opening fail with "host unreachable" (as connect(2) does on
    /// Linux); the others lose what they wanted to send, as on a dead
    /// wire, so that their own retransmission timers decide when to give
    /// up.
    pub(super) fn neighbor_failed(&mut self, hop: IpAddr, now: Instant) {
        for i in 0..self.tcp.slots.len() {
            let Some(remote) = self.tcp.slots[i].as_ref().map(|e| e.tuple.remote_ip) else {
                continue;
            };
            if self.next_hop(remote) != Some(hop) {
                continue;
            }
            let e = self.tcp.touch(Handle(i)).expect("present");
            let failed = e.conn.state() == crate::tcp::State::SynSent;
            if failed {
                e.conn.unreachable();
            }
            while e.conn.poll_transmit(now).is_some() {
                self.stats.tx_dropped_unresolved += 1;
            }
            if failed {
                self.tcp.note_activity(Handle(i));
            }
        }
    }

    pub(super) fn build_control(&mut self, buf: &mut [u8], c: Control) -> Option<usize> {
        let (me_mac, me_ip) = (self.cfg.mac, self.cfg.ip);
        let r = match c {
            Control::ArpRequest(ip) => build_arp(
                buf,
                me_mac,
                MacAddr::BROADCAST,
                ArpOp::Request,
                me_ip,
                MacAddr::ZERO,
                ip,
            ),
            Control::ArpReply { mac, ip } => {
                build_arp(buf, me_mac, mac, ArpOp::Reply, me_ip, mac, ip)
            }
            Control::EchoReply {
                mac,
                ip,
                ident,
                seq,
                data,
            } => {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                let echo = IcmpEcho {
                    kind: icmp::ECHO_REPLY,
                    ident,
                    seq,
                    data: &data,
                };
                build_icmp(buf, me_mac, mac, me_ip, ip, self.ip_ident, &echo)
            }
            Control::Icmpv6 { mac, src, dst, msg } => {
                build_icmpv6(buf, me_mac, mac, src, dst, |b| match &msg {
                    Icmpv6Out::NeighborSolicit { target } => {
                        icmpv6::emit_neighbor_solicit(b, src, dst, *target, me_mac)
                    }
                    Icmpv6Out::NeighborAdvert { target, flags } => {
                        icmpv6::emit_neighbor_advert(b, src, dst, *target, *flags, me_mac)
                    }
                    Icmpv6Out::EchoReply { ident, seq, data } => {
                        icmpv6::emit_echo(b, src, dst, false, *ident, *seq, data)
                    }
                })
            }
            Control::Tcp { mac, tuple, t } => self.stateless_tcp(buf, mac, &tuple, &t),
        };
        r.ok()
    }

    /// A TCP segment that belongs to no connection (a reset, a cookie's
    /// SYN-ACK), without payload.
    pub(super) fn stateless_tcp(
        &mut self,
        buf: &mut [u8],
        mac: MacAddr,
        tuple: &Tuple,
        t: &Transmit,
    ) -> Result<usize, WireError> {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let ip = IpFields {
            ident: self.ip_ident,
            flow_label: self.flow_label(tuple),
        };
        build_tcp_frame(
            buf,
            usize::MAX,
            (self.cfg.mac, mac),
            ip,
            tuple,
            t,
            (std::iter::empty(), 0),
        )
    }
}
