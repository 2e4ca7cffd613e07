//! The connections' I/O: accepting (within the connection limits), reading within the
//! receive budget, reassembling frames, writing, closing.

use super::*;

impl Transport {
    /// Bytes of incomplete frames buffered over all connections.
    pub(super) fn receive_buffered(&self) -> usize {
        self.conns.values().map(|c| c.decoder.buffered()).sum()
    }

    /// Whether `id` may read more now: the receive budget has room, or `id` holds the most
    /// buffered bytes (it finishes its frame first and frees the most).
    pub(super) fn may_read(&self, id: ConnId) -> bool {
        if self.receive_buffered() < self.config.max_receive_buffered {
            return true;
        }
        let mine = self.conns.get(&id).map_or(0, |c| c.decoder.buffered());
        self.conns.iter().all(|(&other, c)| {
            other == id
                || c.decoder.buffered() < mine
                || (c.decoder.buffered() == mine && other > id)
        })
    }

    /// Reads connections paused by the receive budget, as far as it now allows.
    pub(super) fn resume_paused(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        if self.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut self.paused);
        for id in paused {
            self.on_readable(id, out, now_ms);
        }
    }

    pub(super) fn accept(&mut self, now_ms: u64) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if let Some(why) = self.incoming_refusal(addr.ip()) {
                        // Dropping the stream closes it: the descriptor is free at once.
                        self.refused_connections += 1;
                        if log_due(&mut self.last_refusal_log_ms, now_ms) {
                            log::warn!(
                                "node {}: incoming connection from {addr} closed: {why} \
                                 ({} refused so far)",
                                self.config.node_id,
                                self.refused_connections
                            );
                        }
                        continue;
                    }
                    let id = self.add_conn(stream, addr, None, ConnState::Handshaking, now_ms);
                    if let Some(id) = id
                        && self.start_tls(id, false, &mut Vec::new())
                        && self.config.security.is_none()
                    {
                        // Plaintext: the Hello goes at once; over TLS, once it is secured.
                        self.send_hello(id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("node {}: accept failed: {e}", self.config.node_id);
                    break;
                }
            }
        }
    }

    /// Why an incoming connection from `ip` cannot be taken now, if it cannot.
    pub(super) fn incoming_refusal(&self, ip: std::net::IpAddr) -> Option<String> {
        let incoming = self.conns.values().filter(|c| c.dialled.is_none());
        let (total, from_ip) = incoming.fold((0, 0), |(t, f), c| {
            (t + 1, f + usize::from(c.addr.ip() == ip))
        });
        // Dialled addresses keep their places, connected or not.
        let room = self.connection_limit.saturating_sub(self.dials.len());
        if total >= room {
            return Some(format!(
                "the node holds its limit of {} connections",
                self.connection_limit
            ));
        }
        if from_ip >= self.config.max_connections_per_ip {
            return Some(format!(
                "{ip} holds its limit of {} connections",
                self.config.max_connections_per_ip
            ));
        }
        None
    }

    pub(super) fn add_conn(
        &mut self,
        mut stream: TcpStream,
        addr: SocketAddr,
        dialled: Option<SocketAddr>,
        state: ConnState,
        now_ms: u64,
    ) -> Option<ConnId> {
        let id = self.next_conn;
        self.next_conn += 1;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!(
                "node {}: cannot register connection {addr}: {e}",
                self.config.node_id
            );
            return None;
        }
        let _ = stream.set_nodelay(true);
        self.conns.insert(
            id,
            Conn {
                stream,
                addr,
                dialled,
                state,
                decoder: FrameDecoder::new(self.config.max_handshake_frame),
                out: Vec::new(),
                out_pos: 0,
                peer: None,
                opened_ms: now_ms,
                last_recv_ms: now_ms,
                last_send_ms: now_ms,
                frame_started_ms: None,
                last_write_progress_ms: now_ms,
                closing: None,
                tls: None,
                fingerprint: None,
            },
        );
        Some(id)
    }

    /// Gives connection `id` its TLS session when the transport is secure (the client
    /// side when this node dialled). Returns false when that failed (the connection is
    /// closed).
    pub(super) fn start_tls(
        &mut self,
        id: ConnId,
        dialled: bool,
        out: &mut Vec<TransportEvent>,
    ) -> bool {
        let Some(security) = &self.config.security else {
            return true;
        };
        let session = if dialled {
            security.tls.dial()
        } else {
            security.tls.accept()
        };
        match session {
            Ok(session) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.tls = Some(session);
                }
                true
            }
            Err(e) => {
                self.tls_failures += 1;
                self.close(id, format!("cannot start TLS: {e}"), out);
                false
            }
        }
    }

    pub(super) fn on_writable(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state == ConnState::Connecting {
            // Writable after a non-blocking connect: it either succeeded or failed.
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    let reason = crate::io_error::describe_io(&e);
                    self.connect_failed(id, reason, out);
                    return;
                }
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.state = ConnState::Handshaking;
                    c.opened_ms = now_ms;
                    // Over TLS the ClientHello waiting in the session goes first (below);
                    // the Hello follows once the session is secured.
                    if c.tls.is_none() {
                        self.send_hello(id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let reason = crate::io_error::describe_io(&e);
                    self.connect_failed(id, reason, out);
                    return;
                }
            }
        }
        self.flush(id, out, now_ms);
    }

    pub(super) fn connect_failed(
        &mut self,
        id: ConnId,
        reason: String,
        out: &mut Vec<TransportEvent>,
    ) {
        if let Some(mut c) = self.conns.remove(&id) {
            self.send_buffered = self.send_buffered.saturating_sub(c.pending_out());
            let _ = self.poll.registry().deregister(&mut c.stream);
            let addr = c.dialled.unwrap_or(c.addr);
            self.schedule_redial(addr, None);
            log::warn!(
                "node {}: peer connection to {addr} failed: {reason}",
                self.config.node_id
            );
            out.push(TransportEvent::ConnectFailed { addr, reason });
        }
    }

    pub(super) fn flush_all(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.has_output() && c.state != ConnState::Connecting)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.flush(id, out, now_ms);
        }
    }

    /// Writes what the connection's buffer holds until the socket would block; over TLS,
    /// through the session, one chunk at a time so that the session never holds more than
    /// one chunk of records beyond `out` (the send budgets count `out`).
    pub(super) fn flush(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        /// Plaintext handed to TLS at once.
        const TLS_CHUNK: usize = 64 * 1024;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state == ConnState::Connecting {
            return;
        }
        let written = loop {
            let secured = c.secured();
            let step = match &mut c.tls {
                None if c.out_pos < c.out.len() => c.stream.write(&c.out[c.out_pos..]),
                None => break Ok(()),
                Some(tls) => {
                    if !tls.wants_write() && secured && c.out_pos < c.out.len() {
                        let end = c.out.len().min(c.out_pos + TLS_CHUNK);
                        // The session takes all of it once the handshake is done.
                        let taken = tls.writer().write(&c.out[c.out_pos..end]).unwrap_or(0);
                        c.out_pos += taken;
                        self.send_buffered = self.send_buffered.saturating_sub(taken);
                    }
                    if !tls.wants_write() {
                        break Ok(());
                    }
                    tls.write_tls(&mut tls::NoSigpipe(&mut c.stream))
                }
            };
            match step {
                Ok(0) => break Err("the peer stopped reading".to_string()),
                Ok(n) => {
                    self.traffic.bytes_sent = self.traffic.bytes_sent.saturating_add(n as u64);
                    if c.tls.is_none() {
                        c.out_pos += n;
                        self.send_buffered = self.send_buffered.saturating_sub(n);
                    }
                    c.last_send_ms = now_ms;
                    c.last_write_progress_ms = now_ms;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("write failed: {}", crate::io_error::describe_io(&e))),
            }
        };
        if let Err(reason) = written {
            self.close(id, reason, out);
            return;
        }
        if !c.has_output() {
            c.out.clear();
            c.out_pos = 0;
            if let Some(reason) = c.closing.take() {
                self.close(id, reason, out);
            }
        } else if c.out_pos > 1024 * 1024 {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
    }

    pub(super) fn on_readable(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if !self.conns.contains_key(&id) {
                return;
            }
            if !self.may_read(id) {
                if !self.paused.contains(&id) {
                    self.paused.push(id);
                }
                return;
            }
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.state == ConnState::Connecting {
                return;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    let reason = if c.decoder.buffered() > 0 {
                        "the peer closed the connection in the middle of a frame"
                    } else {
                        "the peer closed the connection"
                    };
                    self.close(id, reason.into(), out);
                    return;
                }
                Ok(n) => {
                    c.last_recv_ms = now_ms;
                    self.traffic.bytes_received =
                        self.traffic.bytes_received.saturating_add(n as u64);
                    if c.tls.is_some() {
                        if !self.tls_received(id, &buf[..n], out, now_ms) {
                            return;
                        }
                    } else {
                        c.decoder.feed(&buf[..n]);
                        if !self.drain_frames(id, out, now_ms) {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let mut reason = format!("read failed: {}", crate::io_error::describe_io(&e));
                    if c.decoder.buffered() > 0 {
                        reason.push_str(" in the middle of a frame");
                    }
                    self.close(id, reason, out);
                    return;
                }
            }
        }
    }

    /// Hands bytes read from the socket to the TLS session, then what it decrypted to the
    /// frame decoder; when the handshake has just completed, judges the peer's key.
    /// Returns false when the connection was closed.
    fn tls_received(
        &mut self,
        id: ConnId,
        mut data: &[u8],
        out: &mut Vec<TransportEvent>,
        now_ms: u64,
    ) -> bool {
        let mut plain = [0u8; 16 * 1024];
        while !data.is_empty() {
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            let Some(tls) = c.tls.as_mut() else {
                return false;
            };
            let handshaking = tls.is_handshaking();
            let processed = match tls.read_tls(&mut data) {
                // The session holds records it has not processed: a bug, not the peer's.
                Ok(0) => Err("the TLS session took no input".to_string()),
                Ok(_) => tls.process_new_packets().map_err(|e| e.to_string()),
                Err(e) => Err(crate::io_error::describe_io(&e)),
            };
            let state = match processed {
                Ok(state) => state,
                Err(e) => {
                    // The alert rustls queued tells the peer why; best effort.
                    let _ = tls.write_tls(&mut tls::NoSigpipe(&mut c.stream));
                    self.tls_failures += 1;
                    let what = if handshaking {
                        "TLS handshake failed"
                    } else {
                        "TLS failed"
                    };
                    let line = format!("{what} with {}: {e}", c.addr);
                    self.security_log(now_ms, &line);
                    self.close(id, format!("{what}: {e}"), out);
                    return false;
                }
            };
            let peer_closed = state.peer_has_closed();
            // Everything decrypted goes to the decoder, which the receive budget bounds
            // (at most one socket read's worth arrives per call).
            loop {
                match tls.reader().read(&mut plain) {
                    Ok(0) => break,
                    Ok(n) => c.decoder.feed(&plain[..n]),
                    Err(_) => break,
                }
            }
            if c.fingerprint.is_none() && !tls.is_handshaking() && !self.on_secured(id, out) {
                return false;
            }
            if !self.drain_frames(id, out, now_ms) {
                return false;
            }
            if peer_closed {
                self.close(id, "the peer closed the connection".into(), out);
                return false;
            }
        }
        true
    }

    /// Logs a refused or failed peer, at most once per 10 s (a flood of them must not
    /// flood the log); the counters keep the totals.
    pub(super) fn security_log(&mut self, now_ms: u64, what: &str) {
        if log_due(&mut self.last_security_log_ms, now_ms) {
            log::warn!(
                "node {}: {what} ({} untrusted peers and {} failed TLS sessions so far)",
                self.config.node_id,
                self.untrusted_peers,
                self.tls_failures
            );
        }
    }

    /// Decodes and dispatches every complete frame. Returns false when the connection was
    /// closed.
    pub(super) fn drain_frames(
        &mut self,
        id: ConnId,
        out: &mut Vec<TransportEvent>,
        now_ms: u64,
    ) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            if c.closing.is_some() {
                return true;
            }
            let (kind, payload) = match c.decoder.next_frame() {
                Ok(Some(f)) => {
                    // A frame completed; what is left (if anything) is a new one.
                    c.frame_started_ms = None;
                    self.traffic.frames_received = self.traffic.frames_received.saturating_add(1);
                    f
                }
                Ok(None) => {
                    if c.decoder.buffered() == 0 {
                        c.frame_started_ms = None;
                    } else if c.frame_started_ms.is_none() {
                        c.frame_started_ms = Some(now_ms);
                    }
                    return true;
                }
                Err(e) => {
                    self.garbage_frames += 1;
                    self.close(id, format!("protocol error: {e}"), out);
                    return false;
                }
            };
            let message = match Message::decode(kind, &payload) {
                Ok(m) => m,
                Err(e) => {
                    self.garbage_frames += 1;
                    self.close(id, format!("protocol error: {e}"), out);
                    return false;
                }
            };
            if !self.dispatch(id, message, out) {
                return false;
            }
        }
    }

    pub(super) fn close(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        self.send_buffered = self.send_buffered.saturating_sub(c.pending_out());
        self.paused.retain(|&p| p != id);
        let _ = self.poll.registry().deregister(&mut c.stream);
        if let Some(tls) = c.tls.as_mut()
            && !tls.is_handshaking()
        {
            // Tells the peer the end is deliberate (best effort: the socket may be full).
            tls.send_close_notify();
            let _ = tls.write_tls(&mut tls::NoSigpipe(&mut c.stream));
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let node_id = c.peer.map(|h| h.node_id);
        if let Some(addr) = c.dialled {
            self.schedule_redial(addr, Some(id));
        }
        log::info!(
            "node {}: connection to {} closed: {reason}",
            self.config.node_id,
            node_id.as_deref().unwrap_or(&c.addr.to_string())
        );
        out.push(TransportEvent::Closed {
            conn: id,
            node_id,
            addr: c.dialled.unwrap_or(c.addr),
            reason,
        });
    }
}

/// Whether a throttled warning may be logged now (at most one per 10 s per kind, so that a
/// flood of refusals cannot flood the log; the counters keep the totals), and if so,
/// records that it was.
fn log_due(last_ms: &mut Option<u64>, now_ms: u64) -> bool {
    let due = last_ms.is_none_or(|at| now_ms.saturating_sub(at) >= 10_000);
    if due {
        *last_ms = Some(now_ms);
    }
    due
}
