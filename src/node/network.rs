//! `Client`'s network side: starting and stopping the transport and discovery, the event
//! loop step (`process_transport_events`), connecting, the peer list, and the network's
//! figures.

use super::*;

/// The network's figures, for diagnostics: see [`Client::network_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// The transport's connections, limits and buffers.
    pub transport: crate::transport::TransportStats,
    /// The catch-ups this node serves to peers.
    pub catch_ups: CatchUpStats,
    /// Records of peers that are not connected (dialled, or seen recently).
    pub peer_records: usize,
    /// Addresses dialled because discovery found them.
    pub discovered_dials: usize,
    /// Remote operations refused since the client was opened, by reason.
    pub refused_operations: crate::store::RefusedCounts,
    /// Discovery datagrams ignored as forged since discovery started: a bad signature, or
    /// a node id announced with another key than the one it is known by.
    pub forged_announcements: u64,
    /// Discovery datagrams ignored as replayed: not newer than the last one of their
    /// node, or stamped outside the clock window.
    pub replayed_announcements: u64,
}

/// The token of the discovery socket on the transport's poll.
const DISCOVERY_TOKEN: mio::Token = mio::Token(2);
/// The tokens of discovery's own poll (used while no transport runs).
const OWN_DISCOVERY_TOKEN: mio::Token = mio::Token(0);
const OWN_WAKER_TOKEN: mio::Token = mio::Token(1);

/// Discovery as the node runs it: registered on the transport's poll while the transport
/// runs, otherwise on a poll of its own, so that a waiting event loop sleeps on the socket
/// instead of spinning over it.
pub(super) struct RunningDiscovery {
    discovery: crate::discovery::Discovery,
    own: Option<OwnPoll>,
}

struct OwnPoll {
    poll: mio::Poll,
    events: mio::Events,
    waker: Arc<mio::Waker>,
}

impl std::ops::Deref for RunningDiscovery {
    type Target = crate::discovery::Discovery;
    fn deref(&self) -> &Self::Target {
        &self.discovery
    }
}

impl std::ops::DerefMut for RunningDiscovery {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.discovery
    }
}

fn poll_error(op: &'static str, source: std::io::Error) -> Error {
    Error::Discovery(crate::discovery::DiscoveryError::Socket {
        op,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

impl RunningDiscovery {
    /// Registers `discovery` on the transport's poll, or on a new poll of its own.
    fn new(
        discovery: crate::discovery::Discovery,
        transport: Option<&mio::Registry>,
    ) -> Result<Self> {
        let mut running = RunningDiscovery {
            discovery,
            own: None,
        };
        match transport {
            Some(registry) => running.discovery.register(registry, DISCOVERY_TOKEN)?,
            None => running.move_to_own_poll()?,
        }
        Ok(running)
    }

    /// Moves the socket to a poll of its own (the transport stopped, or never ran).
    fn move_to_own_poll(&mut self) -> Result<()> {
        let poll = mio::Poll::new().map_err(|e| poll_error("create a poll for", e))?;
        let waker = mio::Waker::new(poll.registry(), OWN_WAKER_TOKEN)
            .map_err(|e| poll_error("create a waker for", e))?;
        self.discovery
            .register(poll.registry(), OWN_DISCOVERY_TOKEN)?;
        self.own = Some(OwnPoll {
            poll,
            events: mio::Events::with_capacity(16),
            waker: Arc::new(waker),
        });
        Ok(())
    }

    /// Moves the socket to the transport's poll (the transport started).
    fn move_to_transport(&mut self, registry: &mio::Registry) -> Result<()> {
        if let Some(own) = self.own.take() {
            self.discovery.deregister(own.poll.registry())?;
        }
        self.discovery.register(registry, DISCOVERY_TOKEN)?;
        Ok(())
    }

    /// The waker of the own poll, while discovery is on it.
    fn waker(&self) -> Option<Arc<mio::Waker>> {
        self.own.as_ref().map(|own| own.waker.clone())
    }

    /// Sleeps on the own poll until a datagram arrives, the waker is woken or `timeout`
    /// passes. Returns at once while discovery is on the transport's poll.
    fn wait(&mut self, timeout: Duration) {
        if let Some(own) = self.own.as_mut()
            && let Err(e) = own.poll.poll(&mut own.events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            log::warn!("discovery poll failed: {e}");
        }
    }
}

/// Transport and peers.
impl Client {
    pub(super) fn with_net<T>(
        &self,
        f: impl FnOnce(&OpenNode, &mut net::Net) -> Result<T>,
    ) -> Result<T> {
        self.with_node(|n| {
            if !self.options.enable_transport {
                return Err(Error::TransportUnavailable("transport is disabled".into()));
            }
            let mut guard = n.net.lock();
            let net = guard.as_mut().ok_or_else(|| {
                Error::TransportUnavailable(
                    "transport is not running; call start_transport() first".into(),
                )
            })?;
            f(n, net)
        })
    }

    /// Binds the transport on `transport_host:transport_port`. Starting a running
    /// transport does nothing.
    pub fn start_transport(&self) -> Result<()> {
        self.with_node(|n| {
            if !self.options.enable_transport {
                return Err(Error::TransportUnavailable("transport is disabled".into()));
            }
            let mut net = n.net.lock();
            if net.is_some() {
                return Ok(());
            }
            let mut config = crate::transport::TransportConfig::new(
                &self.options.node_id,
                &self.options.transport_host,
                self.options.transport_port,
            );
            config.display_name = self.options.effective_display_name().to_string();
            config.capabilities = self.capabilities().into_iter().map(String::from).collect();
            config.handshake_timeout_ms = u64::from(self.options.handshake_timeout_ms);
            if !self.options.insecure_transport {
                config.security = Some(crate::transport::Security {
                    tls: Arc::new(crate::transport::tls::TlsContext::new(&n.identity)?),
                    trusted: n.trust.peers.clone(),
                });
            }
            let transport = crate::transport::Transport::start(config).inspect_err(|e| {
                log::error!("node {}: transport start failed: {e}", self.options.node_id);
            })?;
            if let Some(d) = n.discovery.lock().as_mut() {
                d.move_to_transport(transport.registry())?;
                // From now on discovery announces where to connect.
                d.set_transport_port(transport.local_addr().port(), n.clock.mono_ms());
            }
            *n.waker.write() = Some(transport.waker());
            *net = Some(net::Net::new(transport));
            Ok(())
        })
    }

    /// Closes every connection and the listener. Stopping a stopped (or disabled)
    /// transport does nothing. Sync work stays tracked.
    pub fn stop_transport(&self) -> Result<()> {
        self.with_node(|n| {
            let mut net = n.net.lock();
            let Some(stopped) = net.take() else {
                return Ok(());
            };
            let mut discovery = n.discovery.lock();
            let mut waker = None;
            if let Some(d) = discovery.as_mut() {
                // Nothing listens any more: stop announcing, and wait on discovery's own
                // poll from now on.
                d.set_transport_port(0, n.clock.mono_ms());
                let _ = d.deregister(stopped.transport.registry());
                d.move_to_own_poll()?;
                waker = d.waker();
            }
            *n.waker.write() = waker;
            drop(stopped);
            log::info!("node {}: transport stopped", self.options.node_id);
            Ok(())
        })
    }

    /// What the network side holds and has refused: connections and buffers, catch-ups
    /// served, peer and dial records, and the remote operations refused. For operators and
    /// tests; every figure is bounded by a documented limit (docs/protocol.md).
    pub fn network_stats(&self) -> Result<NetworkStats> {
        self.with_node(|n| {
            let net = n.net.lock();
            let (transport, catch_ups, peer_records, discovered_dials) = match net.as_ref() {
                Some(net) => (
                    net.transport.stats(),
                    net.catch_up_stats(),
                    net.known.len(),
                    net.discovered.len(),
                ),
                None => Default::default(),
            };
            drop(net);
            let discovery = n
                .discovery
                .lock()
                .as_ref()
                .map(|d| d.stats())
                .unwrap_or_default();
            Ok(NetworkStats {
                transport,
                catch_ups,
                peer_records,
                discovered_dials,
                refused_operations: n.store.refused_counts(),
                forged_announcements: discovery
                    .bad_signatures
                    .saturating_add(discovery.impersonations),
                replayed_announcements: discovery
                    .replayed
                    .saturating_add(discovery.out_of_window),
            })
        })
    }

    /// Whether the transport is running (false on a closed client).
    pub fn transport_running(&self) -> bool {
        self.with_node(|n| Ok(n.net.lock().is_some()))
            .unwrap_or(false)
    }

    /// The address the transport listens on (useful with port 0 in tests and tools).
    pub fn transport_address(&self) -> Result<SocketAddr> {
        self.with_net(|_, net| Ok(net.transport.local_addr()))
    }

    /// The port the transport listens on: the one the system picked with
    /// `ephemeral_transport_port`. `TransportUnavailable` when the transport does not run,
    /// `NotOpen` when the client is closed.
    pub fn transport_port(&self) -> Result<u16> {
        Ok(self.transport_address()?.port())
    }

    /// Does pending network work without waiting: reads and answers messages, streams
    /// catch-ups and pushes the outbox. Returns how many transport events it handled.
    pub fn process_transport_events(&self, max_events: usize) -> Result<usize> {
        self.process_transport_events_wait(max_events, Duration::ZERO)
    }

    /// Like [`Client::process_transport_events`], waiting up to `timeout` for something
    /// to happen: a frame, a connection, a datagram, or a local write from another thread,
    /// which wakes it at once. For an event loop on a thread of the application's (or see
    /// [`Client::start_background`]). Other transport calls wait for it, so keep the
    /// timeout moderate (it also bounds how late timers such as ACK timeouts fire).
    pub fn process_transport_events_wait(
        &self,
        max_events: usize,
        timeout: Duration,
    ) -> Result<usize> {
        self.with_node(|n| event_loop_step(&self.options, n, max_events, timeout))
    }

    /// Starts UDP discovery on `discovery_host:discovery_port`, announcing this node's
    /// transport address to `discovery_broadcast_host:discovery_broadcast_port` (the
    /// discovery port when 0). Found peers are connected to when `auto_connect_discovered`
    /// is on and the transport runs. Starting it twice does nothing.
    pub fn start_discovery(&self) -> Result<()> {
        self.with_node(|n| {
            if !self.options.enable_discovery {
                return Err(Error::DiscoveryUnavailable("discovery is disabled".into()));
            }
            let net = n.net.lock();
            let mut discovery = n.discovery.lock();
            if discovery.is_some() {
                return Ok(());
            }
            let o = &self.options;
            // The port of the running transport; without one (0) discovery only listens
            // and probes until the transport starts: nobody is told to dial a port where
            // nothing listens.
            let transport_port = net
                .as_ref()
                .map_or(0, |net| net.transport.local_addr().port());
            let mut config =
                crate::discovery::DiscoveryConfig::new(o.node_id.clone(), transport_port);
            config.display_name = o.effective_display_name().to_string();
            config.bind_host = o.discovery_host.clone();
            config.bind_port = o.discovery_port;
            config.broadcast_host = o.discovery_broadcast_host.clone();
            config.broadcast_port = if o.discovery_broadcast_port == 0 {
                o.discovery_port
            } else {
                o.discovery_broadcast_port
            };
            // An ephemeral port is no port other nodes listen on: without a broadcast port
            // of its own, announcements go to the added targets only.
            config.broadcast = config.broadcast_port != 0;
            config.transport_host = o.transport_host.clone();
            config.announce_interval_ms = u64::from(o.discovery_interval_ms);
            config.ttl_ms = u64::from(o.discovery_ttl_ms);
            // Announce the protocol this node's transport speaks.
            config.transport_version = crate::transport::PROTOCOL_VERSION;
            // Datagrams are signed with the node's key and stamped with its wall clock.
            let mut d = crate::discovery::Discovery::start(config, n.identity.clone())
                .inspect_err(|e| {
                    log::error!("node {}: discovery start failed: {e}", o.node_id);
                })?;
            d.set_wall_clock(n.clock.clone());
            d.set_trusted(n.trust.fingerprints());
            let d = RunningDiscovery::new(d, net.as_ref().map(|net| net.transport.registry()))?;
            if net.is_none() {
                *n.waker.write() = d.waker();
            }
            log::info!(
                "node {}: discovery started on {}",
                o.node_id,
                d.local_addr()
            );
            *discovery = Some(d);
            Ok(())
        })
    }

    /// Stops discovery. Safe when it is disabled or not running.
    pub fn stop_discovery(&self) -> Result<()> {
        self.with_node(|n| {
            let net = n.net.lock();
            if let Some(mut d) = n.discovery.lock().take() {
                if let Some(net) = net.as_ref() {
                    let _ = d.deregister(net.transport.registry());
                } else {
                    *n.waker.write() = None;
                }
                log::info!("node {}: discovery stopped", self.options.node_id);
            }
            Ok(())
        })
    }

    /// Whether discovery is running (false on a closed client).
    pub fn discovery_running(&self) -> bool {
        self.with_node(|n| Ok(n.discovery.lock().is_some()))
            .unwrap_or(false)
    }

    /// The address discovery listens on.
    pub fn discovery_address(&self) -> Result<SocketAddr> {
        self.with_node(|n| {
            n.discovery
                .lock()
                .as_ref()
                .map(|d| d.local_addr())
                .ok_or_else(|| Error::DiscoveryUnavailable("discovery is not running".into()))
        })
    }

    /// The port discovery listens on: the one the system picked with
    /// `ephemeral_discovery_port`. `DiscoveryUnavailable` when discovery does not run,
    /// `NotOpen` when the client is closed.
    pub fn discovery_port(&self) -> Result<u16> {
        Ok(self.discovery_address()?.port())
    }

    /// Sends more destinations for discovery announcements (for networks without
    /// broadcast, or several nodes on one host).
    pub fn add_discovery_target(&self, target: SocketAddr) -> Result<()> {
        self.with_node(|n| {
            let mut d = n.discovery.lock();
            let d = d
                .as_mut()
                .ok_or_else(|| Error::DiscoveryUnavailable("discovery is not running".into()))?;
            d.add_target(target)?;
            Ok(())
        })
    }

    /// [`Client::add_discovery_target`] for a host (a name, resolved now, or an address)
    /// and a port: the form the C and C++ surfaces take. An empty host, port 0 or a host
    /// that does not resolve is `InvalidPeer` naming `host:port`.
    pub fn add_discovery_target_at(&self, host: &str, port: u16) -> Result<()> {
        let invalid = |reason: String| Error::InvalidPeer {
            peer: format!("{host}:{port}"),
            reason,
        };
        if host.is_empty() || port == 0 {
            return Err(invalid("a discovery target needs a host and a port".into()));
        }
        let target =
            crate::transport::resolve(host, port).map_err(|e| invalid(e.to_string()))?;
        self.add_discovery_target(target)
    }

    /// Connects to `peer` and keeps the connection: it is redialled with backoff whenever it
    /// drops. Returns once the connection attempt has started; the handshake completes
    /// during `process_transport_events`.
    pub fn connect(&self, peer: &Peer) -> Result<()> {
        // A closed client says so before the peer's host is resolved (outside any lock).
        if !self.is_open() {
            return Err(Error::NotOpen);
        }
        let addr = peer.address()?;
        self.with_net(|n, net| {
            net.expected.insert(addr, peer.node_id.clone());
            // Configured by the application: kept, whatever discovery says later.
            net.discovered.remove(&addr);
            net.transport.connect(addr, n.clock.mono_ms());
            Ok(())
        })
    }

    /// Closes the connection to `peer` and stops redialling it.
    pub fn disconnect(&self, peer: &Peer) -> Result<()> {
        if !self.is_open() {
            return Err(Error::NotOpen);
        }
        let addr = peer.address()?;
        self.with_net(|_, net| {
            let mut events = Vec::new();
            let by_addr = net.transport.disconnect(addr, &mut events);
            let by_id = net.transport.disconnect_node(&peer.node_id, &mut events);
            net.expected.remove(&addr);
            if by_addr || by_id {
                Ok(())
            } else {
                Err(Error::InvalidPeer {
                    peer: format!("{}@{addr}", peer.node_id),
                    reason: "not connected".into(),
                })
            }
        })
    }

    /// Known peers, one per node: connected ones, dialled ones (faulted when their last
    /// connection failed), ones found by discovery (available or stale), and ones that
    /// expired (listed with their last address until they announce again or are pruned,
    /// [`EXPIRED_PEER_RETENTION_MS`](crate::EXPIRED_PEER_RETENTION_MS) after they
    /// expired). A peer's port is the one it listens on: dialled, or announced by
    /// discovery; a peer that dialled this node and is not known otherwise shows port 0
    /// (unknown), never the source port of its connection. Reads pending discovery
    /// datagrams first, so the list is current even without a transport loop.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        self.with_node(|n| {
            if !self.options.enable_transport && !self.options.enable_discovery {
                return Err(Error::TransportUnavailable(
                    "transport and discovery are disabled".into(),
                ));
            }
            let now = n.clock.mono_ms();
            let mut net = n.net.lock();
            let mut discovery = n.discovery.lock();
            let mut peers = net.as_ref().map(|net| net.peers()).unwrap_or_default();
            if let Some(d) = discovery.as_mut() {
                drive_discovery(&self.options, n, net.as_mut(), d, now);
                let mut book = n.peer_book.lock();
                let trust = n.trust.peers.read();
                for p in d.peers() {
                    let trusted = self.options.insecure_transport
                        || trust.check(&p.fingerprint, &p.node_id).is_ok();
                    let at = (p.host.to_string(), p.port);
                    book.heard(&p.node_id, at, p.last_seen_ms, trusted);
                }
                drop(trust);
                // A peer that dialled us: the port discovery heard it announce.
                for known in peers.iter_mut().filter(|k| k.port == 0) {
                    if let Some((host, port)) = book.address_of(&known.node_id) {
                        known.host = host.to_string();
                        known.port = port;
                    }
                }
                drop(book);
                for p in d.peers() {
                    if peers.iter().any(|known| known.node_id == p.node_id) {
                        continue;
                    }
                    peers.push(Peer {
                        node_id: p.node_id.clone(),
                        host: p.host.to_string(),
                        port: p.port,
                        state: match p.state {
                            crate::discovery::PeerState::Available => PeerState::Available,
                            crate::discovery::PeerState::Stale => PeerState::Stale,
                            crate::discovery::PeerState::Connected => PeerState::Connected,
                            crate::discovery::PeerState::Faulted => PeerState::Faulted,
                            crate::discovery::PeerState::Unknown => PeerState::Unknown,
                        },
                        last_seen_ms: p.last_seen_ms,
                    });
                }
            }
            for p in n.peer_book.lock().expired_peers(now) {
                if !peers.iter().any(|known| known.node_id == p.node_id) {
                    peers.push(p);
                }
            }
            peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            // Last heard of on the monotonic clock; shown as wall-clock time.
            for p in &mut peers {
                p.last_seen_ms = crate::clock::mono_to_wall(n.clock.as_ref(), p.last_seen_ms);
            }
            Ok(peers)
        })
    }

    pub(super) fn capabilities(&self) -> Vec<&'static str> {
        let mut capabilities = vec!["core"];
        if self.options.enable_wal {
            capabilities.push("wal");
        }
        capabilities.extend(["store", "sync"]);
        if self.options.enable_transport {
            capabilities.push("transport");
        }
        if self.options.enable_discovery {
            capabilities.push("discovery");
        }
        capabilities.push("metadata");
        capabilities
    }
}

/// One turn of the event loop (see [`Client::process_transport_events_wait`]); also what
/// the background thread runs.
pub(super) fn event_loop_step(
    options: &ClientOptions,
    n: &OpenNode,
    max_events: usize,
    timeout: Duration,
) -> Result<usize> {
    let mut net = n.net.lock();
    let mut discovery = n.discovery.lock();
    if net.is_none() && discovery.is_none() {
        return Err(Error::TransportUnavailable(
            if options.enable_transport {
                "transport is not running; call start_transport() first".into()
            } else {
                "transport is disabled".into()
            },
        ));
    }
    // Sleep no longer than until the outbox's next ACK deadline or retry, or
    // discovery's next announcement or ageing, and not at all while datagrams wait
    // unread. (The transport caps the wait at its own timers.)
    let mut timeout = timeout;
    let sync_deadline = n.sync_deadline_ms.load(std::sync::atomic::Ordering::Relaxed);
    if sync_deadline != u64::MAX {
        let until = sync_deadline.saturating_sub(n.clock.mono_ms()).max(1);
        timeout = timeout.min(Duration::from_millis(until));
    }
    if let Some(d) = discovery.as_ref() {
        if d.has_backlog() {
            timeout = Duration::ZERO;
        } else if let Some(at) = d.next_deadline_ms() {
            let until = at.saturating_sub(n.clock.mono_ms()).max(1);
            timeout = timeout.min(Duration::from_millis(until));
        }
    }
    // Wait and do the I/O without the sync lock: local writes go on meanwhile.
    let events = match (net.as_mut(), discovery.as_mut()) {
        (Some(net), _) => net
            .transport
            .poll(Some(timeout), max_events, n.clock.mono_ms()),
        (None, Some(d)) => {
            d.wait(timeout);
            Vec::new()
        }
        (None, None) => Vec::new(),
    };
    let handled = events.len();
    let now = n.clock.mono_ms();
    if let Some(d) = discovery.as_mut() {
        drive_discovery(options, n, net.as_mut(), d, now);
    }
    let mut sync = n.sync();
    sync.retry_expired(now);
    if let Some(net) = net.as_mut() {
        net.process(&n.store, &mut sync, events, now);
        if let Some(d) = discovery.as_mut() {
            // Tell discovery which peers are connected or faulted, and which are
            // no longer connected (they age again from their last announcement).
            let peers = net.peers();
            let mut connected = Vec::with_capacity(peers.len());
            for p in &peers {
                match p.state {
                    PeerState::Connected => {
                        d.mark_connected(&p.node_id);
                        connected.push(p.node_id.as_str());
                    }
                    PeerState::Faulted => {
                        d.mark_faulted(&p.node_id);
                    }
                    _ => {}
                }
            }
            d.mark_disconnected_except(&connected);
        }
    }
    n.sync_deadline_ms.store(
        sync.next_deadline_ms().unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    super::collection::collect_if_due(options, n, net.as_ref(), &mut sync);
    Ok(handled)
}

/// Reads pending datagrams, announces when due, and acts on what discovery reports.
pub(super) fn drive_discovery(
    options: &ClientOptions,
    n: &OpenNode,
    mut net: Option<&mut net::Net>,
    discovery: &mut RunningDiscovery,
    now: u64,
) {
    use crate::discovery::DiscoveryEvent;
    let events: Vec<_> = discovery
        .on_readable(now)
        .into_iter()
        .chain(discovery.tick(now))
        .collect();
    for event in events {
        match event {
            DiscoveryEvent::Discovered(p) | DiscoveryEvent::Restarted(p) => {
                // Discovery finds, trust decides: only a key trusted as this node id is
                // dialled (the transport would refuse any other).
                let trusted = options.insecure_transport
                    || n.trust.peers.read().check(&p.fingerprint, &p.node_id).is_ok();
                n.peer_book.lock().heard(
                    &p.node_id,
                    (p.host.to_string(), p.port),
                    p.last_seen_ms,
                    trusted,
                );
                log::info!(
                    "node {}: discovered peer {} at {}",
                    options.node_id,
                    p.node_id,
                    p.transport_addr()
                );
                if !trusted {
                    log::info!(
                        "node {}: peer {} (key {}) is not trusted: not connecting to it",
                        options.node_id,
                        p.node_id,
                        p.fingerprint
                    );
                } else if let Some(net) = net
                    .as_mut()
                    .filter(|_| options.auto_connect_discovered)
                {
                    net.dial_discovered(&p.node_id, p.transport_addr(), now);
                }
            }
            DiscoveryEvent::Stale(id) => {
                log::info!("node {}: peer {id} is stale", options.node_id);
            }
            DiscoveryEvent::Expired(id) => {
                log::info!("node {}: peer {id} expired", options.node_id);
                if let Some(net) = net.as_mut() {
                    // A peer that only discovery knew of and that is gone: stop
                    // redialling it (forged announcements cannot keep dials for ever).
                    net.forget_discovered(&id);
                }
                // Listed as expired, with its last address, until pruned (bounded).
                n.peer_book
                    .lock()
                    .expired(&id, now, u64::from(options.discovery_ttl_ms));
            }
        }
    }
}

