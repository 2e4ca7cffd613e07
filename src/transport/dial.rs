//! Keeping dialled addresses connected, and the timers: redials with backoff, handshake
//! and frame time-outs, keepalive, dead and non-reading peers.

use super::*;

impl Transport {
    /// After a failed or lost connection to a dialled address: try again after a delay
    /// that doubles with each failure (`reconnect_base_ms` up to `reconnect_max_ms`).
    pub(super) fn schedule_redial(&mut self, addr: SocketAddr, conn: Option<ConnId>) {
        let (base, max, now) = (
            self.config.reconnect_base_ms,
            self.config.reconnect_max_ms,
            self.now_ms,
        );
        if let Some(d) = self
            .dials
            .get_mut(&addr)
            .filter(|d| conn.is_none() || d.conn == conn)
        {
            d.conn = None;
            d.attempts += 1;
            let delay = base
                .saturating_mul(1 << d.attempts.saturating_sub(1).min(16))
                .min(max);
            d.next_at_ms = now + delay;
        }
    }

    /// Whether the node last met at a dialled address is connected through another
    /// connection (one it dialled: the tie-break of docs/protocol.md kept it), so that
    /// the address waits instead of being redialled into a duplicate.
    fn covered(&self, d: &Dial) -> bool {
        d.node_id.as_ref().is_some_and(|id| {
            self.conns.iter().any(|(&cid, c)| {
                Some(cid) != d.conn
                    && c.state == ConnState::Ready
                    && c.peer.as_ref().is_some_and(|h| h.node_id == *id)
            })
        })
    }

    pub(super) fn timers(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        // Redials (not of an address whose node is connected already: once that
        // connection ends, the address is redialled when its backoff allows).
        let due: Vec<SocketAddr> = self
            .dials
            .iter()
            .filter(|(_, d)| d.conn.is_none() && d.next_at_ms <= now_ms && !self.covered(d))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in due {
            self.dial(addr, now_ms, out);
        }
        // Handshake timeouts, keepalive and dead peers.
        let mut to_close = Vec::new();
        let mut to_ping = Vec::new();
        for (&id, c) in &self.conns {
            match c.state {
                ConnState::Connecting | ConnState::Handshaking => {
                    if now_ms.saturating_sub(c.opened_ms) > self.config.handshake_timeout_ms {
                        to_close.push((id, "the handshake timed out".to_string()));
                    }
                }
                _ if c
                    .frame_started_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) > self.config.frame_timeout_ms) =>
                {
                    to_close.push((
                        id,
                        format!(
                            "a frame did not complete within {} ms ({} bytes received)",
                            self.config.frame_timeout_ms,
                            c.decoder.buffered()
                        ),
                    ));
                }
                ConnState::Ready
                    if c.has_output()
                        && now_ms.saturating_sub(c.last_write_progress_ms)
                            > self.config.peer_timeout_ms =>
                {
                    to_close.push((
                        id,
                        format!(
                            "the peer read nothing for {} ms ({} bytes wait for it)",
                            self.config.peer_timeout_ms,
                            c.pending_out()
                        ),
                    ));
                }
                ConnState::Ready => {
                    if now_ms.saturating_sub(c.last_recv_ms) > self.config.peer_timeout_ms {
                        to_close.push((
                            id,
                            format!("nothing received for {} ms", self.config.peer_timeout_ms),
                        ));
                    } else if now_ms.saturating_sub(c.last_send_ms) >= self.config.keepalive_ms {
                        to_ping.push(id);
                    }
                }
            }
        }
        for (id, reason) in to_close {
            self.close(id, reason, out);
        }
        for id in to_ping {
            self.ping_nonce += 1;
            let nonce = self.ping_nonce;
            if self.send(id, &Message::Ping(nonce))
                && let Some(c) = self.conns.get_mut(&id)
            {
                c.last_send_ms = now_ms;
            }
        }
    }

    /// When [`Transport::timers`] next has work: a redial, a handshake or frame time-out,
    /// a keepalive, a dead peer. `poll` sleeps no longer than this, so a waiting event loop
    /// keeps every timer on time.
    pub(super) fn next_deadline_ms(&self) -> Option<u64> {
        let c = &self.config;
        let redials = self
            .dials
            .values()
            .filter(|d| d.conn.is_none() && !self.covered(d))
            .map(|d| d.next_at_ms);
        let conns = self.conns.values().flat_map(|conn| {
            let mut due = Vec::with_capacity(3);
            match conn.state {
                ConnState::Connecting | ConnState::Handshaking => {
                    due.push(conn.opened_ms.saturating_add(c.handshake_timeout_ms + 1));
                }
                ConnState::Ready => {
                    due.push(conn.last_recv_ms.saturating_add(c.peer_timeout_ms + 1));
                    due.push(conn.last_send_ms.saturating_add(c.keepalive_ms));
                    if conn.has_output() {
                        due.push(
                            conn.last_write_progress_ms
                                .saturating_add(c.peer_timeout_ms + 1),
                        );
                    }
                }
            }
            if let Some(t) = conn.frame_started_ms {
                due.push(t.saturating_add(c.frame_timeout_ms + 1));
            }
            due
        });
        redials.chain(conns).min()
    }

    pub(super) fn dial(&mut self, addr: SocketAddr, now_ms: u64, out: &mut Vec<TransportEvent>) {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                let id = self.add_conn(stream, addr, Some(addr), ConnState::Connecting, now_ms);
                let id = id.and_then(|id| self.start_tls(id, true, out).then_some(id));
                if let Some(d) = self.dials.get_mut(&addr) {
                    d.conn = id;
                    if id.is_none() {
                        d.next_at_ms = now_ms + self.config.reconnect_max_ms;
                    }
                }
            }
            Err(e) => {
                let reason = crate::io_error::describe_io(&e);
                self.schedule_redial(addr, None);
                out.push(TransportEvent::ConnectFailed { addr, reason });
            }
        }
    }
}
