//! The socket side of discovery: receiving and answering datagrams (answers rate-limited),
//! sending announcements and probes, and warning once per address.

use super::*;

impl Discovery {
    pub(super) fn receive(&mut self, now_ms: u64, events: &mut Vec<DiscoveryEvent>) {
        let mut buf = std::mem::take(&mut self.buf);
        self.backlog = true;
        for _ in 0..MAX_DATAGRAMS_PER_CALL {
            match self.socket.recv_from(&mut buf) {
                Ok((len, source)) => self.handle(&buf[..len], source, now_ms, events),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.backlog = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // For example a pending ICMP error. Reading again at the next tick.
                    self.stats.receive_errors += 1;
                    log::debug!("discovery {}: receive failed: {e}", self.node_id);
                    break;
                }
            }
        }
        self.buf = buf;
    }

    pub(super) fn handle(
        &mut self,
        bytes: &[u8],
        source: SocketAddr,
        now_ms: u64,
        events: &mut Vec<DiscoveryEvent>,
    ) {
        let packet = match Packet::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                self.stats.invalid_packets += 1;
                if matches!(e, PacketError::UnsupportedVersion { .. })
                    && self.warn_once(source.ip(), "version")
                {
                    log::warn!(
                        "discovery {}: ignoring {source}: {e} (logged once per address)",
                        self.node_id
                    );
                } else {
                    log::debug!(
                        "discovery {}: dropped datagram from {source}: {e}",
                        self.node_id
                    );
                }
                return;
            }
        };
        if packet.node_id == self.node_id {
            if packet.instance_id == self.instance_id {
                self.stats.own_packets_ignored += 1;
            } else {
                self.stats.duplicate_node_id += 1;
                if self.warn_once(source.ip(), "duplicate") {
                    log::warn!(
                        "discovery {}: {source} announces this node's id from another \
                         instance: two nodes share the node id; it is ignored",
                        self.node_id
                    );
                }
            }
            return;
        }
        self.stats.packets_received += 1;
        if packet.kind == PacketKind::Probe {
            // Without a transport there is nothing to tell a prober: it could not connect.
            if self.announcing() && self.answer(PacketKind::Reply, source, now_ms) {
                self.stats.replies_sent += 1;
            }
            return;
        }
        match self.registry.observe(&packet, source, now_ms) {
            Ok(Some(event)) => {
                if matches!(
                    event,
                    DiscoveryEvent::Discovered(_) | DiscoveryEvent::Restarted(_)
                ) && self.announcing()
                    && self.answer(PacketKind::Announce, source, now_ms)
                {
                    self.stats.announcements_sent += 1;
                }
                log_event(&self.node_id, &event);
                events.push(event);
            }
            Ok(None) => {}
            Err(Ignored::TableFull) => {
                self.stats.peers_refused += 1;
                if self.warn_once(source.ip(), "table full") {
                    log::warn!(
                        "discovery {}: ignoring {} from {source}: the peer table holds \
                         {MAX_PEERS} peers",
                        self.node_id,
                        packet.node_id
                    );
                }
            }
            Err(Ignored::OwnNode | Ignored::NotAnAnnouncement) => {}
        }
    }

    /// True the first time for this (address, topic), while the memory lasts.
    pub(super) fn warn_once(&mut self, ip: IpAddr, topic: &'static str) -> bool {
        if self.warned.len() >= MAX_WARNED {
            return false;
        }
        self.warned.insert((ip, topic))
    }

    /// Sends one unicast datagram to `dest`, unless `dest` was answered moments ago.
    pub(super) fn answer(&mut self, kind: PacketKind, dest: SocketAddr, now_ms: u64) -> bool {
        if let Some(&at) = self.answered.get(&dest)
            && at <= now_ms
            && now_ms - at < ANSWER_MIN_INTERVAL_MS
        {
            self.stats.answers_suppressed += 1;
            return false;
        }
        if self.answered.len() >= MAX_ANSWERED {
            self.answered
                .retain(|_, at| now_ms.saturating_sub(*at) < ANSWER_MIN_INTERVAL_MS);
            if self.answered.len() >= MAX_ANSWERED {
                self.stats.answers_suppressed += 1;
                return false;
            }
        }
        self.answered.insert(dest, now_ms);
        match self.send(kind, dest) {
            Ok(()) => true,
            Err(e) => {
                self.stats.send_errors += 1;
                log::debug!(
                    "discovery {}: cannot send {kind} to {dest}: {e}",
                    self.node_id
                );
                false
            }
        }
    }

    /// Sends to a configured target; failures are logged once per target and error.
    pub(super) fn send_to_target(&mut self, kind: PacketKind, target: SocketAddr) -> bool {
        match self.send(kind, target) {
            Ok(()) => {
                if self.failing_targets.remove(&target).is_some() {
                    log::info!(
                        "discovery {}: sending to {target} works again",
                        self.node_id
                    );
                }
                true
            }
            Err(e) => {
                self.stats.send_errors += 1;
                let code = e.raw_os_error();
                if self.failing_targets.insert(target, code) != Some(code) {
                    log::warn!(
                        "discovery {}: cannot send {kind} to {target}: {}; discovery goes on \
                         (further failures like this are not logged)",
                        self.node_id,
                        describe_io(&e)
                    );
                } else {
                    log::debug!(
                        "discovery {}: cannot send {kind} to {target}: {e}",
                        self.node_id
                    );
                }
                false
            }
        }
    }

    pub(super) fn send(&mut self, kind: PacketKind, dest: SocketAddr) -> io::Result<()> {
        let bytes = match kind {
            PacketKind::Announce => &self.announce_bytes,
            PacketKind::Reply => &self.reply_bytes,
            PacketKind::Probe => &self.probe_bytes,
        };
        let dest = match (self.local_addr, dest.ip()) {
            // A dual-stack IPv6 socket reaches IPv4 peers through mapped addresses.
            (SocketAddr::V6(_), IpAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), dest.port())
            }
            (SocketAddr::V4(_), ip @ IpAddr::V6(_)) => {
                SocketAddr::new(ip.to_canonical(), dest.port())
            }
            _ => dest,
        };
        let mut interrupted = 0;
        loop {
            match self.socket.send_to(bytes, dest) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 3 => {
                    interrupted += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
