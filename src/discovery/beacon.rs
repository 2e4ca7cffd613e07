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
        let datagram = match Packet::decode(bytes) {
            Ok(datagram) => datagram,
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
        let wall_ms = self.wall.wall_ms();
        let packet = &datagram.packet;
        if packet.node_id == self.node_id {
            if datagram.key == self.key && packet.instance_id == self.instance_id {
                // Our own broadcast looped back (or replayed to us: it changes nothing).
                self.stats.own_packets_ignored += 1;
                return;
            }
            // Believed only if genuine: a forged one must not raise the alarm.
            if self.authentic(&datagram, source, wall_ms) {
                self.stats.duplicate_node_id += 1;
                if self.warn_once(source.ip(), "duplicate") {
                    log::warn!(
                        "discovery {}: {source} announces this node's id from another \
                         instance or key: two nodes share the node id; it is ignored",
                        self.node_id
                    );
                }
            }
            return;
        }
        if packet.kind == PacketKind::Probe {
            // Without a transport there is nothing to tell a prober: it could not connect.
            // A probe that would go unanswered anyway is not worth a signature check.
            if !self.announcing() {
                return;
            }
            if self.answered_recently(source, now_ms) {
                self.stats.answers_suppressed += 1;
                return;
            }
            if self.authentic(&datagram, source, wall_ms) {
                self.stats.packets_received += 1;
                if self.answer(PacketKind::Reply, source, now_ms) {
                    self.stats.replies_sent += 1;
                }
            }
            return;
        }
        let observed = self.registry.observe(
            packet,
            &datagram.key,
            source,
            now_ms,
            wall_ms,
            || datagram.verify().is_ok(),
        );
        match observed {
            Ok(Observed { event, evicted }) => {
                self.stats.packets_received += 1;
                if let Some(node_id) = evicted {
                    self.stats.peers_evicted += 1;
                    log::debug!(
                        "discovery {}: peer {node_id} evicted for {}: the table is full",
                        self.node_id,
                        packet.node_id
                    );
                    events.push(DiscoveryEvent::Expired(node_id));
                }
                let Some(event) = event else { return };
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
            Err(ignored) => self.count_ignored(ignored, &packet.node_id, source),
        }
    }

    /// Whether a datagram not for the peer table (a probe, or one carrying this node's id)
    /// is recent and signed by the key it carries; counts it when it is not.
    fn authentic(&mut self, datagram: &Unverified<'_>, source: SocketAddr, wall_ms: u64) -> bool {
        let checked = registry::check_clock(
            datagram.packet.timestamp_ms,
            wall_ms,
            self.clock_window_ms,
        )
        .and_then(|()| datagram.verify().map_err(|_| Ignored::BadSignature));
        match checked {
            Ok(()) => true,
            Err(ignored) => {
                self.count_ignored(ignored, &datagram.packet.node_id, source);
                false
            }
        }
    }

    /// Counts (and, the first time for the address, logs) a packet the rules refused.
    fn count_ignored(&mut self, ignored: Ignored, node_id: &str, source: SocketAddr) {
        let me = &self.node_id;
        let warned = &mut self.warned;
        match ignored {
            Ignored::OutOfWindow { ahead, by_ms } => {
                self.stats.out_of_window += 1;
                if first_warning(warned, source.ip(), "clock") {
                    log::warn!(
                        "discovery {me}: ignoring {node_id} from {source}: its clock is \
                         {by_ms} ms {} this node's, more than the {} ms discovery accepts \
                         (a replay, or a clock set wrong; logged once per address)",
                        if ahead { "ahead of" } else { "behind" },
                        self.clock_window_ms
                    );
                }
            }
            Ignored::BadSignature => {
                self.stats.bad_signatures += 1;
                if first_warning(warned, source.ip(), "signature") {
                    log::warn!(
                        "discovery {me}: ignoring {node_id} from {source}: the signature \
                         does not verify (forged or corrupted; logged once per address)"
                    );
                }
            }
            Ignored::Replayed => {
                self.stats.replayed += 1;
                log::debug!("discovery {me}: ignoring a replayed {node_id} from {source}");
            }
            Ignored::Impersonation => {
                self.stats.impersonations += 1;
                if first_warning(warned, source.ip(), "impersonation") {
                    log::warn!(
                        "discovery {me}: ignoring {node_id} from {source}: it is signed by \
                         another key than the one this node id announced with (logged once \
                         per address)"
                    );
                }
            }
            Ignored::TableFull => {
                self.stats.peers_refused += 1;
                if first_warning(warned, source.ip(), "table full") {
                    log::warn!(
                        "discovery {me}: ignoring {node_id} from {source}: the peer table is \
                         full of trusted or connected peers"
                    );
                }
            }
            Ignored::OwnNode | Ignored::NotAnAnnouncement => {}
        }
    }

    /// True the first time for this (address, topic), while the memory lasts.
    pub(super) fn warn_once(&mut self, ip: IpAddr, topic: &'static str) -> bool {
        first_warning(&mut self.warned, ip, topic)
    }

    /// Whether `dest` was answered less than `ANSWER_MIN_INTERVAL_MS` ago.
    fn answered_recently(&self, dest: SocketAddr, now_ms: u64) -> bool {
        self.answered
            .get(&dest)
            .is_some_and(|&at| at <= now_ms && now_ms - at < ANSWER_MIN_INTERVAL_MS)
    }

    /// Sends one unicast datagram to `dest`, unless `dest` was answered moments ago.
    pub(super) fn answer(&mut self, kind: PacketKind, dest: SocketAddr, now_ms: u64) -> bool {
        if self.answered_recently(dest, now_ms) {
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

    /// A new datagram of `kind`, signed: the next counter, the wall clock now.
    fn datagram(&mut self, kind: PacketKind) -> Result<Vec<u8>, PacketError> {
        // Never wraps in practice (one per datagram); saturating, a stuck counter would
        // only make receivers refuse the datagrams as replays.
        self.template.counter = self.template.counter.saturating_add(1);
        self.template.timestamp_ms = self.wall.wall_ms();
        self.template.kind = kind;
        self.template.encode(&self.identity)
    }

    pub(super) fn send(&mut self, kind: PacketKind, dest: SocketAddr) -> io::Result<()> {
        // Fails for an announcement or reply without a transport port (never sent), or when
        // the system's random source fails the signature: reported as a send failure.
        let bytes = self.datagram(kind).map_err(io::Error::other)?;
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
            match self.socket.send_to(&bytes, dest) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 3 => {
                    interrupted += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// True the first time for this (address, topic), while the memory lasts (bounded, so that
/// a flood from many addresses cannot grow it).
fn first_warning(
    warned: &mut HashSet<(IpAddr, &'static str)>,
    ip: IpAddr,
    topic: &'static str,
) -> bool {
    if warned.len() >= MAX_WARNED {
        return false;
    }
    warned.insert((ip, topic))
}
