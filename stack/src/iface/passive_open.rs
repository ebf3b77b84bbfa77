//! Passive opens: SYN cookies when a listener's backlog is full of
//! half-open connections (`syn_cookie.rs` makes and checks them), and the
//! backlog where `accept` finds the connections a listener spawned.

use super::*;

impl Interface {
    pub(super) fn cookie_ends(tuple: &Tuple) -> syn_cookie::Ends {
        (
            (tuple.local_ip, tuple.local_port),
            (tuple.remote_ip, tuple.remote_port),
        )
    }

    /// Answers a SYN with a SYN cookie (`syn_cookie.rs`).
    pub(super) fn send_cookie(
        &mut self,
        mac: MacAddr,
        tuple: Tuple,
        seg: &TcpSegment<'_>,
        now: Instant,
    ) {
        let Some(l) = self.tcp.listeners.get_mut(&seg.dst_port) else {
            return;
        };
        l.cookie_sent_at = Some(now);
        let cfg = &l.cfg;
        let window = cfg.recv_buffer.min(65_535) as u16;
        let mut options = crate::wire::tcp::TcpOptions {
            mss: Some(cfg.mss),
            ..Default::default()
        };
        // Window scaling and SACK only where the timestamp can carry them.
        if let (true, Some((tsval, _))) = (cfg.timestamps, seg.options.timestamps) {
            let ws = seg.options.window_scale.filter(|_| cfg.window_scaling);
            let sack = cfg.sack && seg.options.sack_permitted;
            let offset = self.isn.ts_offset(tuple.local_ip, tuple.remote_ip);
            let ts_now = (now.as_millis() as u32).wrapping_add(offset);
            options.timestamps = Some((syn_cookie::options_tsval(ts_now, ws, sack), tsval));
            options.window_scale = ws.map(|_| cfg.our_window_shift());
            options.sack_permitted = sack;
        }
        let peer_mss = seg.options.mss.unwrap_or(536);
        let ends = Self::cookie_ends(&tuple);
        let cookie = syn_cookie::make(&self.isn, ends, seg.seq, peer_mss, now);
        self.stats.tcp_syn_cookies_sent += 1;
        let mut t = Transmit::bare(
            SeqNum(cookie),
            SeqNum(seg.seq.wrapping_add(1)),
            Flags::SYN | Flags::ACK,
        );
        t.window = window;
        t.options = options;
        self.push_control(Control::Tcp { mac, tuple, t });
    }

    /// An ACK to a listener with no connection behind it: if it returns a
    /// valid cookie, the connection is made now, by replaying the SYN the
    /// cookie stands for (with the MSS it kept) and the SYN-ACK already
    /// sent, then this ACK. Returns true if it was taken.
    pub(super) fn accept_cookie(
        &mut self,
        tuple: Tuple,
        seg: &TcpSegment<'_>,
        now: Instant,
    ) -> bool {
        let Some(l) = self.tcp.listeners.get(&seg.dst_port) else {
            return false;
        };
        let recent = l
            .cookie_sent_at
            .is_some_and(|t| now.saturating_since(t) <= std::time::Duration::from_secs(3 * 64));
        if !recent {
            return false;
        }
        let (peer_isn, iss) = (seg.seq.wrapping_sub(1), seg.ack.wrapping_sub(1));
        let ends = Self::cookie_ends(&tuple);
        let Some(mss) = syn_cookie::check(&self.isn, ends, peer_isn, iss, now) else {
            self.stats.tcp_syn_cookies_rejected += 1;
            return false;
        };
        if l.backlog.len() >= 2 * l.max_backlog {
            self.stats.tcp_syn_dropped_backlog_full += 1;
            return true;
        }
        // A cookie made a connection no cheaper than a queued SYN: it
        // counts against the limits the same way (dropped when over).
        let cfg = l.cfg.clone();
        if !self.admits(&cfg) {
            return true;
        }
        // The SYN's other options, from the timestamp our SYN-ACK carried
        // (echoed in this ACK's TSecr); its TSval stands in for the SYN's.
        let (window_scale, sack_permitted, timestamps) = match seg.options.timestamps {
            Some((tsval, tsecr)) if cfg.timestamps => {
                let (ws, sack) = syn_cookie::options_from_tsecr(tsecr);
                (ws, sack, Some((tsval, 0)))
            }
            _ => (None, false, None),
        };
        let mut conn = self.passive_conn(cfg, SeqNum(iss), &tuple);
        let syn = TcpSegment {
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: peer_isn,
            ack: 0,
            flags: Flags::SYN,
            window: seg.window,
            urgent: 0,
            options: crate::wire::tcp::TcpOptions {
                mss: Some(mss),
                window_scale,
                sack_permitted,
                timestamps,
                ..Default::default()
            },
            payload: &[],
            lent: None,
        };
        conn.on_segment(&syn, now);
        // The SYN-ACK this stands for went out already, as the cookie.
        let _ = conn.poll_transmit(now);
        conn.on_segment(seg, now);
        if !conn.state().is_synchronized() {
            self.stats.tcp_syn_cookies_rejected += 1;
            return false;
        }
        self.stats.tcp_syn_cookies_accepted += 1;
        self.file_in_backlog(tuple, conn);
        true
    }

    /// A connection for a listener, from a SYN on `tuple` (or the cookie
    /// that stands for one).
    pub(super) fn passive_conn(&self, cfg: Config, iss: SeqNum, tuple: &Tuple) -> Connection {
        let mut conn = Connection::listen(cfg, iss);
        self.fit_to_tuple(&mut conn, tuple);
        conn
    }

    /// Files a connection a listener spawned in the table and in that
    /// listener's backlog, where `accept` finds it once established.
    pub(super) fn file_in_backlog(&mut self, tuple: Tuple, conn: Connection) {
        let h = self.insert_conn(tuple, conn, true);
        if let Some(l) = self.tcp.listeners.get_mut(&tuple.local_port) {
            l.backlog.push_back(h);
        }
    }
}
