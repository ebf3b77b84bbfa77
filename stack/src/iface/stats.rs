//! Interface counters: every frame that is dropped is counted under why.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub rx_malformed: u64,
    pub rx_bad_checksum: u64,
    pub rx_not_for_us: u64,
    pub rx_fragments_dropped: u64,
    pub rx_unsupported: u64,
    pub arp_requests_answered: u64,
    pub arp_requests_sent: u64,
    /// ARP requests held back by the per-second cap or a full table, and
    /// mappings not learned because every entry was in use.
    pub arp_limited: u64,
    pub icmp_echo_answered: u64,
    /// IPv6: echo requests answered, neighbour solicitations for our
    /// addresses answered, and Neighbor Discovery messages dropped for a
    /// hop limit below 255 (forwarded, so not from the link) or a target
    /// not ours.
    pub icmpv6_echo_answered: u64,
    pub nd_solicitations_answered: u64,
    pub nd_dropped: u64,
    /// Neighbour solicitations we sent, to resolve a next hop.
    pub nd_solicitations_sent: u64,
    /// Echo requests and neighbour solicitations left unanswered because
    /// `MAX_REPLIES_PER_SEC` were sent this second.
    pub replies_rate_limited: u64,
    /// ICMPv6 "destination unreachable" received (one that quotes the
    /// opening segment of one of our connections ends it).
    pub icmp_unreachable: u64,
    pub tcp_segments_in: u64,
    /// Segments in that carried data, and bare ACKs out (no data, no
    /// SYN, FIN or RST): a receiver in bulk sends one ACK per received
    /// batch at most, so their ratio shows how much the ACKs cost.
    pub tcp_data_segments_in: u64,
    pub tcp_bare_acks_out: u64,
    pub tcp_resets_sent: u64,
    /// Handshakes refused because a listener's queue was full even for
    /// connections made from SYN cookies.
    pub tcp_syn_dropped_backlog_full: u64,
    /// SYNs answered with a cookie because the listener's queue of
    /// half-open connections was full (a SYN flood, or a burst), cookies
    /// that came back valid and made a connection, and ACKs to a listener
    /// whose cookie did not check out.
    pub tcp_syn_cookies_sent: u64,
    pub tcp_syn_cookies_accepted: u64,
    pub tcp_syn_cookies_rejected: u64,
    /// Connections refused (SYNs dropped, connects failed) because the
    /// interface's `Limits` were reached.
    pub tcp_refused_limits: u64,
    /// Connections whose out-of-order data was dropped because the
    /// buffers over all connections passed `Limits::max_buffer_bytes`.
    pub tcp_ooo_pruned: u64,
    pub no_route: u64,
    /// Segments discarded because the next hop's MAC could not be resolved.
    pub tx_dropped_unresolved: u64,
    pub control_queue_full: u64,
    /// TCP segments whose checksum the sender left unfinished (transmit
    /// checksum offload on a local veth peer), accepted or dropped as
    /// [`RxChecksum`](super::RxChecksum) says, and the last sender of one.
    pub rx_partial_checksum: u64,
    /// ICMP "fragmentation needed" and ICMPv6 "packet too big" received,
    /// and those that named no segment in flight (or no smaller MTU) and
    /// were ignored.
    pub icmp_frag_needed: u64,
    pub icmp_frag_needed_ignored: u64,
    /// TIME-WAIT connections replaced by a new incarnation (RFC 6191).
    pub tcp_time_wait_reused: u64,
    /// TIME-WAIT records dropped before their time to stay within
    /// `Limits::max_time_wait` (oldest first).
    pub tcp_time_wait_recycled: u64,
    /// Segments larger than the device carries (never sent; the
    /// connection re-cut what it had in flight to fit).
    pub tx_oversize: u64,
    pub partial_checksum_from: Option<std::net::IpAddr>,
}
