//! The trust checks of a secure transport, the Hello exchange and the messages the
//! transport answers itself (Reject, Ping, Pong); everything else goes to the owner as an
//! event.

use super::*;

impl Transport {
    pub(super) fn hello(&self) -> Message {
        Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.config.node_id.clone(),
            display_name: self.config.display_name.clone(),
            capabilities: self.config.capabilities.clone(),
            auth_scheme: 0,
            auth_data: Vec::new(),
            instance_id: self.config.instance_id,
        })
    }

    pub(super) fn send_hello(&mut self, id: ConnId) {
        let hello = self.hello();
        self.send(id, &hello);
    }

    /// The TLS handshake of `id` completed: the peer holds the key of the fingerprint its
    /// certificate names. An untrusted key is refused (told why, counted); a trusted one
    /// gets this node's Hello. Returns false when the connection closes.
    pub(super) fn on_secured(&mut self, id: ConnId, out: &mut Vec<TransportEvent>) -> bool {
        let (Some(security), Some(c)) = (&self.config.security, self.conns.get_mut(&id)) else {
            return false;
        };
        let Some(fingerprint) = c.tls.as_ref().and_then(tls::peer_fingerprint) else {
            self.tls_failures += 1;
            self.close(id, "the peer presented no usable certificate".into(), out);
            return false;
        };
        let verdict = security.trusted.read().check_key(&fingerprint);
        c.fingerprint = Some(fingerprint);
        if let Err(distrust) = verdict {
            self.refuse_untrusted(id, distrust, out);
            return false;
        }
        self.send_hello(id);
        true
    }

    /// Refuses a peer for its key: counted, logged (rate-limited) and told why.
    fn refuse_untrusted(
        &mut self,
        id: ConnId,
        distrust: trust::Distrust,
        out: &mut Vec<TransportEvent>,
    ) {
        self.untrusted_peers += 1;
        let addr = self.conns.get(&id).map(|c| c.addr);
        let reason = distrust.to_string();
        if let Some(addr) = addr {
            self.security_log(self.now_ms, &format!("peer at {addr} refused: {reason}"));
        }
        self.reject_quietly(id, reason, out);
    }

    /// Handles the handshake and keepalive here; hands everything else to the owner.
    pub(super) fn dispatch(
        &mut self,
        id: ConnId,
        message: Message,
        out: &mut Vec<TransportEvent>,
    ) -> bool {
        let c = self.conns.get_mut(&id).expect("connection exists");
        match (c.state, message) {
            (ConnState::Handshaking, Message::Hello(hello)) => self.on_hello(id, hello, out),
            (_, Message::Reject(reason)) => {
                let reason = crate::logsafe::shown(&reason);
                self.close(id, format!("rejected by the peer: {reason}"), out);
                false
            }
            (ConnState::Ready, Message::Ping(n)) => {
                self.send(id, &Message::Pong(n));
                true
            }
            (ConnState::Ready, Message::Pong(_)) => true,
            (ConnState::Ready, Message::Hello(_)) => {
                self.reject(id, "a second Hello on one connection".into(), out);
                false
            }
            (ConnState::Ready, message) => {
                let node_id = c
                    .peer
                    .as_ref()
                    .map(|h| h.node_id.clone())
                    .unwrap_or_default();
                out.push(TransportEvent::Message {
                    conn: id,
                    node_id,
                    message,
                });
                true
            }
            (_, other) => {
                self.reject(
                    id,
                    format!("message type {} before the handshake", other.kind()),
                    out,
                );
                false
            }
        }
    }

    pub(super) fn on_hello(
        &mut self,
        id: ConnId,
        hello: Hello,
        out: &mut Vec<TransportEvent>,
    ) -> bool {
        if hello.protocol_version != PROTOCOL_VERSION {
            let reason = format!(
                "incompatible protocol version {} (this node speaks version {PROTOCOL_VERSION})",
                hello.protocol_version
            );
            self.reject(id, reason, out);
            return false;
        }
        if let Err(e) = crate::id::validate_node_id(&hello.node_id) {
            self.reject(id, e.to_string(), out);
            return false;
        }
        if hello.node_id == self.config.node_id {
            self.reject(
                id,
                format!("node id {} is this node's own id", hello.node_id),
                out,
            );
            return false;
        }
        if let Some(security) = &self.config.security {
            let fingerprint = self.conns[&id].fingerprint.clone().unwrap_or_default();
            let verdict = security.trusted.read().check(&fingerprint, &hello.node_id);
            if let Err(distrust) = verdict {
                self.refuse_untrusted(id, distrust, out);
                return false;
            }
        }
        if hello.auth_scheme != 0 {
            self.reject(
                id,
                format!(
                    "authentication scheme {} is not supported",
                    hello.auth_scheme
                ),
                out,
            );
            return false;
        }
        // The node at a dialled address: its address is not redialled while that node is
        // connected through another connection (see `Transport::covered`).
        if let Some(addr) = self.conns[&id].dialled
            && let Some(d) = self.dials.get_mut(&addr)
        {
            d.node_id = Some(hello.node_id.clone());
        }
        // One connection per node. When both nodes dial each other at once, both keep the
        // connection dialled by the node with the smaller id.
        let existing = self
            .conns
            .iter()
            .find(|&(&other, c)| {
                other != id
                    && c.state == ConnState::Ready
                    && c.peer.as_ref().is_some_and(|h| h.node_id == hello.node_id)
            })
            .map(|(&other, c)| {
                let instance = c.peer.as_ref().map_or(0, |h| h.instance_id);
                (other, c.dialled.is_some(), instance, c.last_recv_ms)
            });
        if let Some((other, _, other_instance, last_recv_ms)) = existing
            && other_instance != hello.instance_id
        {
            // Another instance claims the id. A live connection (it answers keepalives)
            // means two running nodes share one id: their writes would be acknowledged and
            // silently dropped as duplicates, so the newcomer is refused, loudly. A silent
            // one is the previous run of a restarted peer: replaced.
            let alive = self.now_ms.saturating_sub(last_recv_ms) <= 2 * self.config.keepalive_ms
                && self.still_open(other);
            if alive {
                let reason = format!(
                    "node id {} is already used by another running node (instance {:016x}, \
                     this one is {:016x}): every node needs its own id",
                    hello.node_id, other_instance, hello.instance_id
                );
                log::error!(
                    "node {}: two live nodes claim node id {} (from {} and {}): refusing the \
                     second; give one of them a new node id (a copied data directory?)",
                    self.config.node_id,
                    hello.node_id,
                    self.conns[&other].addr,
                    self.conns[&id].addr
                );
                self.reject(id, reason, out);
                return false;
            }
            self.close(other, "replaced by a new instance of the peer".into(), out);
        } else if let Some((other, other_outgoing, _, _)) = existing {
            let this_outgoing = self.conns[&id].dialled.is_some();
            let we_dial_first = self.config.node_id < hello.node_id;
            let keep_this = this_outgoing != other_outgoing && this_outgoing == we_dial_first;
            // Expected whenever two nodes dial each other (configured peers, or discovery on
            // both sides): not a warning. The address of the connection closed here is not
            // redialled while the node stays connected.
            let reason = format!("node {} is already connected", hello.node_id);
            let closed = if keep_this { other } else { id };
            log::info!(
                "node {}: closing a duplicate connection: {reason}",
                self.config.node_id
            );
            self.reject_quietly(closed, reason, out);
            if !keep_this {
                return false;
            }
        }
        let c = self.conns.get_mut(&id).expect("connection exists");
        c.state = ConnState::Ready;
        c.decoder.set_max_payload(self.config.max_frame);
        let node_id = hello.node_id.clone();
        log::info!(
            "node {}: connected to {} ({}) at {}",
            self.config.node_id,
            node_id,
            crate::logsafe::shown(&hello.display_name),
            c.addr
        );
        c.peer = Some(hello);
        if let Some(d) = c.dialled.and_then(|addr| self.dials.get_mut(&addr)) {
            d.attempts = 0;
            d.conn = Some(id);
        }
        out.push(TransportEvent::Ready { conn: id, node_id });
        true
    }

    /// Whether connection `id`'s socket is still open: a process that exited had its
    /// connections closed by the kernel, even if this node has not read the end yet.
    pub(super) fn still_open(&self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(&id) else {
            return false;
        };
        let mut byte = [0u8; 1];
        match c.stream.peek(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }

    /// Sends a Reject with the reason, then closes once it is written.
    pub(super) fn reject(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        log::warn!("node {}: closing connection: {reason}", self.config.node_id);
        self.reject_quietly(id, reason, out);
    }

    /// [`Transport::reject`] without the log line (the caller logs, rate-limited).
    fn reject_quietly(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        self.send(id, &Message::Reject(reason.clone()));
        if let Some(c) = self.conns.get_mut(&id) {
            c.closing = Some(reason);
        }
        self.flush(id, out, 0);
    }
}
