//! IPv6 on the interface: our addresses, Neighbor Discovery (RFC 4861)
//! for them, echo and packet-too-big (RFC 4443), and TCP segments handed
//! to the same TCP ingress as IPv4's. A neighbour solicitation for one of
//! our addresses is answered with an advertisement carrying our MAC, and
//! teaches us the soliciting neighbour's; advertisements teach us the
//! target's. An address taken is announced once to all nodes (an
//! unsolicited advertisement, RFC 4861 7.2.6), so neighbours that cached
//! another MAC for it update at once.
//!
//! Routing: a destination inside the prefix of one of our addresses, or
//! link-local, is on the link and resolved by neighbour solicitation;
//! others go through the configured gateway (`set_ipv6_gateway`; no
//! router discovery), or have no route.
//!
//! No duplicate address detection (RFC 4862 5.4) before using an
//! address: the operator gives the stack addresses the host does not use
//! (as `ip addr add ... nodad`), the kernel keeps its own, and waiting a
//! second per address at start would delay every program. Another
//! node's detection probe for one of ours is answered, which makes that
//! node give the address up.

use super::*;
use crate::wire::icmpv6::{self, Icmpv6};
use crate::wire::ipv6::{self, Ipv6Packet};
use std::net::Ipv6Addr;

/// Addresses of one family an interface takes at most.
pub const MAX_IPV6_ADDRESSES: usize = 16;

/// The all-nodes group (RFC 4291 2.7.1), where an advertisement answering
/// a duplicate address detection probe goes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Interface {
    /// Serves `addr` too, with the on-link prefix `addr/prefix_len`
    /// (TCP, Neighbor Discovery and echo). Its frames reach the interface
    /// only if the device's filter lets them (AF_XDP:
    /// `AfXdpConfig::addresses`).
    pub fn add_ipv6(&mut self, addr: Ipv6Addr, prefix_len: u8) -> Result<(), IfaceError> {
        if addr.is_multicast() || addr.is_unspecified() {
            return Err(IfaceError::BadAddress(format!(
                "{addr} is not a unicast address"
            )));
        }
        if prefix_len > 128 {
            return Err(IfaceError::BadAddress(format!(
                "/{prefix_len}: an IPv6 prefix is at most 128 bits"
            )));
        }
        if !self.is_our_ipv6(addr) {
            if self.ipv6.len() >= MAX_IPV6_ADDRESSES {
                return Err(IfaceError::BadAddress(format!(
                    "more than {MAX_IPV6_ADDRESSES} IPv6 addresses"
                )));
            }
            self.ipv6.push((addr, prefix_len));
            self.push_control(Control::Icmpv6 {
                mac: icmpv6::multicast_mac(ALL_NODES),
                src: addr,
                dst: ALL_NODES,
                msg: Icmpv6Out::NeighborAdvert {
                    target: addr,
                    flags: icmpv6::NA_OVERRIDE,
                },
            });
        }
        Ok(())
    }

    /// The router for IPv6 destinations that are not on our link.
    pub fn set_ipv6_gateway(&mut self, gateway: Option<Ipv6Addr>) {
        self.gateway6 = gateway;
    }

    pub fn ipv6_addresses(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.ipv6.iter().map(|(a, _)| *a)
    }

    pub(super) fn is_our_ipv6(&self, a: Ipv6Addr) -> bool {
        self.ipv6.iter().any(|(ours, _)| *ours == a)
    }

    /// Whether `dst` is on our link: link-local, or inside the prefix of
    /// one of our addresses.
    pub(super) fn on_link_v6(&self, dst: Ipv6Addr) -> bool {
        let link_local = dst.segments()[0] & 0xffc0 == 0xfe80;
        link_local || self.ipv6.iter().any(|&(a, p)| same_prefix(a, dst, p))
    }

    /// Our address to reach `dst` from: one whose prefix holds it, else
    /// the first (RFC 6724's longest-match rule, short of its scopes).
    pub(super) fn ipv6_source_for(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let within = self.ipv6.iter().find(|&&(a, p)| same_prefix(a, dst, p));
        within.or(self.ipv6.first()).map(|(a, _)| *a)
    }

    /// The multicast groups we listen on once we have IPv6 addresses:
    /// all-nodes, and each address's solicited-node group.
    fn our_groups(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        let all = (!self.ipv6.is_empty()).then_some(ALL_NODES);
        all.into_iter()
            .chain(self.ipv6_addresses().map(icmpv6::solicited_node))
    }

    /// A frame to one of our groups' Ethernet addresses.
    pub(super) fn is_our_multicast_mac(&self, mac: MacAddr) -> bool {
        self.our_groups().any(|g| icmpv6::multicast_mac(g) == mac)
    }

    pub(super) fn ingress_ipv6(
        &mut self,
        src_mac: MacAddr,
        payload: &[u8],
        frame: &RxFrame<'_>,
        now: Instant,
    ) {
        let ip = match Ipv6Packet::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.count_error(e),
        };
        let unicast = self.is_our_ipv6(ip.dst);
        if !unicast && !self.our_groups().any(|g| g == ip.dst) {
            self.stats.rx_not_for_us += 1;
            return;
        }
        if ip.is_fragment {
            self.stats.rx_fragments_dropped += 1;
            return;
        }
        if ip.next_header == ipv6::NEXT_TCP && unicast {
            let ends = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
            let ce = ip.ecn() == CE;
            return self.ingress_tcp_bytes(src_mac, ends, ip.payload, ce, frame, now);
        }
        if ip.next_header != ipv6::NEXT_ICMPV6 {
            self.stats.rx_unsupported += 1;
            return;
        }
        let msg = match Icmpv6::parse(ip.payload, ip.src, ip.dst) {
            Ok(m) => m,
            Err(e) => return self.count_error(e),
        };
        match msg {
            Icmpv6::NeighborSolicit {
                target,
                source_lladdr,
            } => self.on_neighbor_solicit(&ip, target, source_lladdr, src_mac, now),
            Icmpv6::NeighborAdvert {
                target,
                target_lladdr,
                ..
            } => {
                // RFC 4861 7.1.2: hop limit 255.
                if ip.hop_limit != 255 {
                    self.stats.nd_dropped += 1;
                    return;
                }
                if let Some(mac) = target_lladdr {
                    self.neighbors6.learn(target, mac, now);
                }
            }
            Icmpv6::Echo {
                request: true,
                ident,
                seq,
                data,
            } if unicast => {
                if !self.may_reply(now) {
                    return;
                }
                self.stats.icmpv6_echo_answered += 1;
                self.push_control(Control::Icmpv6 {
                    mac: src_mac,
                    src: ip.dst,
                    dst: ip.src,
                    msg: Icmpv6Out::EchoReply {
                        ident,
                        seq,
                        data: data.to_vec(),
                    },
                });
            }
            Icmpv6::DestUnreachable { quoted, .. } if unicast => {
                self.stats.icmp_unreachable += 1;
                if let Some(tuple) = self.our_quoted(&quoted) {
                    self.on_unreachable(tuple, quoted.seq);
                }
            }
            Icmpv6::PacketTooBig { mtu, quoted } if unicast => {
                self.stats.icmp_frag_needed += 1;
                // An MTU past what the IP length field names cannot
                // shrink anything.
                let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
                if let Some(tuple) = self.our_quoted(&quoted) {
                    self.on_path_mtu(tuple, mtu, quoted.seq, now);
                }
            }
            _ => self.stats.rx_unsupported += 1,
        }
    }

    /// The connection an ICMPv6 error's quoted segment came from, if it
    /// was one of ours.
    fn our_quoted(&self, q: &icmpv6::Quoted) -> Option<Tuple> {
        let tuple = Tuple::of_sent(q.src.into(), q.dst.into(), q.src_port, q.dst_port);
        self.is_our_ipv6(q.src).then_some(tuple)
    }

    /// RFC 4861 7.1.1 and 7.2.3-7.2.4: from the link (hop limit 255), for
    /// one of our addresses; a solicitation from the unspecified address
    /// (another node's duplicate address detection) carries no link-layer
    /// address and is answered to all nodes, unsolicited.
    fn on_neighbor_solicit(
        &mut self,
        ip: &Ipv6Packet<'_>,
        target: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
        src_mac: MacAddr,
        now: Instant,
    ) {
        let from_dad = ip.src.is_unspecified();
        if ip.hop_limit != 255 || !self.is_our_ipv6(target) || (from_dad && source_lladdr.is_some())
        {
            self.stats.nd_dropped += 1;
            return;
        }
        if !self.may_reply(now) {
            return;
        }
        self.stats.nd_solicitations_answered += 1;
        let (dst, mac, flags) = if from_dad {
            (
                ALL_NODES,
                icmpv6::multicast_mac(ALL_NODES),
                icmpv6::NA_OVERRIDE,
            )
        } else {
            let mac = source_lladdr.unwrap_or(src_mac);
            self.neighbors6.learn(ip.src, mac, now);
            (ip.src, mac, icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE)
        };
        self.push_control(Control::Icmpv6 {
            mac,
            src: target,
            dst,
            msg: Icmpv6Out::NeighborAdvert { target, flags },
        });
    }
}

/// Whether `a` and `b` agree in their first `prefix_len` bits.
fn same_prefix(a: Ipv6Addr, b: Ipv6Addr, prefix_len: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0);
    (u128::from(a) ^ u128::from(b)) & mask == 0
}
