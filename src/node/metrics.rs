//! The node's metrics in the OpenMetrics text format that Prometheus scrapes
//! ([`Client::metrics_text`]), and the counters of local writes they need.
//!
//! Every scrape builds a fresh `prometheus_client` registry from the figures the node
//! keeps anyway (sync state, network and transport figures, peers, store and WAL sizes,
//! the WAL's fsync latencies) and encodes it: nothing is updated twice, and the figures
//! are those of the moment. Every family is always present (zero when it has nothing to
//! count), so that dashboards and alerts can rely on the names. docs/monitoring.md lists
//! them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::*;
use crate::wal::{SYNC_BUCKETS_US, SyncLatencySnapshot, WalError};

/// The prefix of every metric name.
const METRICS_PREFIX: &str = "softadastra";

/// Why a local write failed, as the metrics count it (`kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteError {
    /// The file system had no room (ENOSPC, EDQUOT, or EFBIG: a file size limit).
    NoSpace,
    /// Another failure of the file system.
    Io,
    /// Refused without trying: an earlier failure left the log refusing writes.
    Refused,
    /// An invalid key, a value or batch too large.
    Invalid,
    /// Anything else (numbers used up, ...).
    Other,
}

impl WriteError {
    const ALL: [WriteError; 5] = [
        WriteError::NoSpace,
        WriteError::Io,
        WriteError::Refused,
        WriteError::Invalid,
        WriteError::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            WriteError::NoSpace => "no_space",
            WriteError::Io => "io",
            WriteError::Refused => "refused",
            WriteError::Invalid => "invalid",
            WriteError::Other => "other",
        }
    }

    fn of(e: &StoreError) -> WriteError {
        match e {
            StoreError::Wal(WalError::Poisoned { .. }) => WriteError::Refused,
            StoreError::Wal(WalError::Io { source, .. }) => match source.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => WriteError::NoSpace,
                _ => WriteError::Io,
            },
            StoreError::InvalidKey { .. }
            | StoreError::ValueTooLarge { .. }
            | StoreError::Wal(WalError::RecordTooLarge { .. }) => WriteError::Invalid,
            _ => WriteError::Other,
        }
    }
}

/// Local writes (put, remove, batch) since the node was opened: lock-free counters.
#[derive(Debug, Default)]
pub(super) struct WriteCounters {
    writes: AtomicU64,
    operations: AtomicU64,
    bytes: AtomicU64,
    errors: [AtomicU64; WriteError::ALL.len()],
}

impl WriteCounters {
    /// A write of `changes` (key, value or `None` for a removal) was accepted.
    pub(super) fn accepted(&self, changes: &[(&str, Option<&[u8]>)]) {
        let bytes: usize = changes
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
            .sum();
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.operations
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A write failed with `e`.
    pub(super) fn failed(&self, e: &StoreError) {
        let kind = WriteError::of(e);
        let slot = WriteError::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.errors[slot].fetch_add(1, Ordering::Relaxed);
    }
}

/// The WAL's fsync latencies as a Prometheus histogram (seconds).
#[derive(Debug)]
struct FsyncHistogram(SyncLatencySnapshot);

impl EncodeMetric for FsyncHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let s = &self.0;
        // Per bucket; the encoder makes them cumulative. The count is their total, so that
        // the +Inf bucket and the count agree even when a sync landed between two reads.
        let mut buckets: Vec<(f64, u64)> = SYNC_BUCKETS_US
            .iter()
            .zip(&s.buckets)
            .map(|(&us, &n)| (us as f64 / 1e6, n))
            .collect();
        buckets.push((f64::INFINITY, s.buckets[SYNC_BUCKETS_US.len()]));
        let count = s.buckets.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(s.sum_ns as f64 / 1e9, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Labelled<M> = Family<[(&'static str, &'static str); 1], M>;

fn gauge(v: impl TryInto<i64>) -> ConstGauge {
    ConstGauge::new(v.try_into().unwrap_or(i64::MAX))
}

fn counter(v: impl TryInto<u64>) -> ConstCounter {
    ConstCounter::new(v.try_into().unwrap_or(u64::MAX))
}

/// A family of gauges, one per label value.
fn gauges<V: TryInto<i64>>(
    label: &'static str,
    values: impl IntoIterator<Item = (&'static str, V)>,
) -> Labelled<Gauge> {
    let family = Labelled::<Gauge>::default();
    for (name, v) in values {
        family
            .get_or_create(&[(label, name)])
            .set(v.try_into().unwrap_or(i64::MAX));
    }
    family
}

/// A family of counters, one per label value.
fn counters(
    label: &'static str,
    values: impl IntoIterator<Item = (&'static str, u64)>,
) -> Labelled<Counter> {
    let family = Labelled::<Counter>::default();
    for (name, v) in values {
        family.get_or_create(&[(label, name)]).inc_by(v);
    }
    family
}

/// How many known peers are in each state, as `Client::peers()` would list them, without
/// its side effect (it reads discovery's datagrams first).
fn peer_counts(n: &OpenNode) -> [usize; PeerState::ALL.len()] {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut counts = [0usize; PeerState::ALL.len()];
    let mut count = |id: &str, state: PeerState| {
        if seen.insert(id.to_string())
            && let Some(i) = PeerState::ALL.iter().position(|&s| s == state)
        {
            counts[i] += 1;
        }
    };
    if let Some(net) = n.net.lock().as_ref() {
        for p in net.peers() {
            count(&p.node_id, p.state);
        }
    }
    if let Some(d) = n.discovery.lock().as_ref() {
        for p in d.peers() {
            let state = match p.state {
                crate::discovery::PeerState::Available => PeerState::Available,
                crate::discovery::PeerState::Stale => PeerState::Stale,
                crate::discovery::PeerState::Connected => PeerState::Connected,
                crate::discovery::PeerState::Faulted => PeerState::Faulted,
                crate::discovery::PeerState::Unknown => PeerState::Unknown,
            };
            count(&p.node_id, state);
        }
    }
    for p in n.peer_book.lock().expired_peers(n.clock.mono_ms()) {
        count(&p.node_id, p.state);
    }
    counts
}

/// The metrics of an open node in the OpenMetrics text format. `poisoned`: why its client
/// refuses every call, if a call panicked.
pub(super) fn render(options: &ClientOptions, n: &OpenNode, poisoned: Option<&str>) -> String {
    let mut registry = Registry::with_prefix(METRICS_PREFIX);
    let r = &mut registry;

    // The node.
    r.register(
        "node",
        "The node: its id and the library's version",
        Info::new(vec![
            ("node_id", options.node_id.clone()),
            ("version", options.version.clone()),
        ]),
    );
    let uptime_ms = n.clock.mono_ms().saturating_sub(n.started_mono_ms);
    r.register_with_unit(
        "uptime",
        "Time since the node was opened",
        Unit::Seconds,
        ConstGauge::new(uptime_ms as f64 / 1000.0),
    );
    r.register_with_unit(
        "start_time",
        "When the node was opened, in seconds since the Unix epoch",
        Unit::Seconds,
        ConstGauge::new(n.started_at_ms as f64 / 1000.0),
    );
    let health = super::health::health_of(Some(n), poisoned);
    r.register(
        "writes_accepted",
        "1 while the node accepts writes, 0 once it refuses them until it is reopened \
         (a failed write or fsync of its log; the health endpoint says why)",
        gauge(i64::from(health.is_healthy())),
    );

    // Local writes.
    let w = &n.writes;
    r.register(
        "local_writes",
        "Local writes accepted (put, remove, batch)",
        counter(w.writes.load(Ordering::Relaxed)),
    );
    r.register(
        "local_operations",
        "Operations carried by the local writes accepted (a batch carries several)",
        counter(w.operations.load(Ordering::Relaxed)),
    );
    r.register_with_unit(
        "local_write",
        "Key and value bytes of the local writes accepted",
        Unit::Bytes,
        counter(w.bytes.load(Ordering::Relaxed)),
    );
    r.register(
        "write_errors",
        "Local writes that failed, by kind: no_space (the file system is full), io \
         (another I/O error), refused (an earlier failure left the log refusing writes), \
         invalid (a bad key or value), other",
        counters(
            "kind",
            WriteError::ALL
                .iter()
                .zip(&w.errors)
                .map(|(k, c)| (k.label(), c.load(Ordering::Relaxed))),
        ),
    );

    // The store and its log.
    let wal = n.store.wal_stats().unwrap_or_default();
    r.register(
        "wal_records_appended",
        "Records appended to the WAL (local writes, remote operations, sync marks)",
        counter(wal.records_appended),
    );
    r.register_with_unit(
        "wal_appended",
        "Bytes of the records appended to the WAL",
        Unit::Bytes,
        counter(wal.bytes_appended),
    );
    r.register_with_unit(
        "wal_fsync_duration",
        "How long the fsyncs of the WAL's files took",
        Unit::Seconds,
        FsyncHistogram(wal.syncs),
    );
    r.register_with_unit(
        "wal_size",
        "Bytes the WAL's segment files take on disk, preallocation included",
        Unit::Bytes,
        gauge(n.store.log_disk_bytes()),
    );
    r.register(
        "wal_segments",
        "Files of the WAL",
        gauge(n.store.log_segments().len()),
    );
    r.register_with_unit(
        "snapshot_size",
        "Bytes of the newest snapshot (0: none)",
        Unit::Bytes,
        gauge(
            n.last_snapshot_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    );
    r.register("store_keys", "Keys with a value", gauge(n.store.len()));
    let space = match n.store.wal_path() {
        Some(path) => super::health::fs_space(&super::health::wal_dir(path)).unwrap_or_default(),
        None => super::health::Space::default(),
    };
    r.register_with_unit(
        "data_dir_free",
        "Bytes the node may still write in the file system of its WAL (0 for a \
         memory-only node)",
        Unit::Bytes,
        gauge(space.available),
    );
    r.register_with_unit(
        "data_dir_capacity",
        "Size of the file system of the WAL (0 for a memory-only node)",
        Unit::Bytes,
        gauge(space.total),
    );

    // The network side: transport, catch-ups, refused remote operations, peers.
    let (transport, traffic, catch_ups) = match n.net.lock().as_ref() {
        Some(net) => (
            net.transport.stats(),
            net.transport.traffic(),
            net.catch_up_stats(),
        ),
        None => Default::default(),
    };
    let announcements = n
        .discovery
        .lock()
        .as_ref()
        .map(|d| d.stats())
        .unwrap_or_default();
    let peers = peer_counts(n);
    r.register(
        "peers",
        "Known peers by state (as softadastra peers lists them)",
        gauges(
            "state",
            PeerState::ALL.iter().zip(peers).map(|(s, c)| (s.as_str(), c)),
        ),
    );
    r.register(
        "transport_connections",
        "Open peer connections, handshaking ones included",
        gauge(transport.connections),
    );
    r.register(
        "transport_connection_limit",
        "The connection limit in force",
        gauge(transport.connection_limit),
    );
    r.register_with_unit(
        "transport_received",
        "Bytes read from peer connections (TLS included)",
        Unit::Bytes,
        counter(traffic.bytes_received),
    );
    r.register_with_unit(
        "transport_sent",
        "Bytes written to peer connections (TLS included)",
        Unit::Bytes,
        counter(traffic.bytes_sent),
    );
    r.register(
        "transport_frames_received",
        "Frames received from peers",
        counter(traffic.frames_received),
    );
    r.register(
        "transport_frames_sent",
        "Frames queued for peers",
        counter(traffic.frames_sent),
    );
    r.register_with_unit(
        "transport_send_buffered",
        "Bytes waiting to be written to peers",
        Unit::Bytes,
        gauge(transport.send_buffered),
    );
    r.register_with_unit(
        "transport_receive_buffered",
        "Bytes of incomplete frames buffered",
        Unit::Bytes,
        gauge(transport.receive_buffered),
    );
    r.register(
        "transport_errors",
        "Peer connections refused or closed, by kind: refused_connection (connection \
         limits), untrusted_peer, tls_failure, garbage_frame",
        counters(
            "kind",
            [
                ("refused_connection", transport.refused_connections),
                ("untrusted_peer", transport.untrusted_peers),
                ("tls_failure", transport.tls_failures),
                ("garbage_frame", transport.garbage_frames),
            ],
        ),
    );
    r.register(
        "discovery_announcements_ignored",
        "Discovery datagrams ignored, by reason: forged (bad signature, or a node id \
         announced with another key), replayed",
        counters(
            "reason",
            [
                (
                    "forged",
                    announcements
                        .bad_signatures
                        .saturating_add(announcements.impersonations),
                ),
                (
                    "replayed",
                    announcements
                        .replayed
                        .saturating_add(announcements.out_of_window),
                ),
            ],
        ),
    );
    r.register(
        "catch_ups_serving",
        "Catch-ups being served to peers now",
        gauge(catch_ups.serving),
    );
    r.register(
        "catch_ups_started",
        "Catch-ups begun for peers",
        counter(catch_ups.started),
    );
    r.register(
        "catch_ups_busy",
        "Catch-up requests answered busy (every serving slot taken)",
        counter(catch_ups.busy),
    );
    r.register(
        "catch_up_protocol_errors",
        "Connections closed for breaking the catch-up conversation",
        counter(catch_ups.protocol_errors),
    );
    let refused = n.store.refused_counts();
    r.register(
        "remote_operations_refused",
        "Remote operations refused, by reason (docs/sync.md)",
        counters(
            "reason",
            [
                ("own_origin", refused.own_origin),
                ("clock_ahead", refused.clock_ahead),
                ("too_many_origins", refused.too_many_origins),
                ("too_many_ranges", refused.too_many_ranges),
                ("second_hand", refused.second_hand),
            ],
        ),
    );

    // Sync: the outbox and what moved.
    let (state, sync) = {
        let sync = n.sync();
        (sync.state(&n.store), sync.counters())
    };
    r.register(
        "outbox_operations",
        "Local operations in the outbox, by state (failed: every attempt timed out; \
         they still reach peers by catch-up)",
        gauges(
            "state",
            [
                ("pending", state.pending_count),
                ("queued", state.queued_count),
                ("in_flight", state.in_flight_count),
                ("acknowledged", state.acknowledged_count),
                ("failed", state.failed_count),
            ],
        ),
    );
    r.register(
        "sync_retries",
        "Operations sent again after their ACK timed out",
        counter(state.total_retries),
    );
    r.register(
        "sync_acks_sent",
        "ACKs sent for peers' batches",
        counter(sync.acks_sent),
    );
    r.register(
        "sync_acks_received",
        "ACKs received for this node's operations",
        counter(sync.acks_received),
    );
    r.register(
        "sync_operations_acknowledged",
        "This node's operations acknowledged by peers",
        counter(sync.operations_acknowledged),
    );
    r.register(
        "sync_conflicts",
        "Conflicts between concurrent writes, decided by last-writer-wins",
        counter(state.conflict_count),
    );

    let mut text = String::new();
    // Writing to a String does not fail; every metric here encodes.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        log::error!("node {}: metrics encoding failed: {e}", options.node_id);
    }
    text
}

impl Client {
    /// The node's metrics in the OpenMetrics text format (what `/metrics` serves, see
    /// [`Client::start_metrics_server`]): writes and bytes, write errors by kind, the WAL's
    /// fsync latencies, WAL and snapshot sizes, the outbox by state, retries, ACKs,
    /// conflicts, peers by state, bytes and frames in and out, catch-ups, refused remote
    /// operations, health and uptime. Names and meanings: docs/monitoring.md. A client
    /// whose call panicked still renders them (showing that it refuses writes).
    pub fn metrics_text(&self) -> Result<String> {
        let node = self.node.read().clone().ok_or(Error::NotOpen)?;
        let poisoned = self.poisoned();
        Ok(render(&self.options, &node, poisoned.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_put_moves_the_write_counters_and_a_bad_key_counts_as_invalid() {
        let client = Client::new(ClientOptions::memory_only("metrics-node"));
        client.open().unwrap();
        let before = client.metrics_text().unwrap();
        assert_eq!(value(&before, "softadastra_local_writes_total"), Some(0.0));
        client.put("k", b"value").unwrap();
        assert!(client.put("", b"x").is_err());
        let after = client.metrics_text().unwrap();
        assert_eq!(value(&after, "softadastra_local_writes_total"), Some(1.0));
        assert_eq!(value(&after, "softadastra_local_write_bytes_total"), Some(6.0));
        assert_eq!(
            value(&after, "softadastra_write_errors_total{kind=\"invalid\"}"),
            Some(1.0)
        );
        assert_eq!(value(&after, "softadastra_writes_accepted"), Some(1.0));
        assert_eq!(
            value(&after, "softadastra_outbox_operations{state=\"queued\"}"),
            Some(1.0)
        );
        assert!(after.ends_with("# EOF\n"), "{after}");
    }

    #[test]
    fn the_fsync_histogram_is_cumulative_and_ends_at_its_count() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("n.wal");
        let client = Client::new(ClientOptions::persistent(
            "fsync-node",
            wal.to_str().unwrap(),
        ));
        client.open().unwrap();
        client.put("a", b"1").unwrap();
        client.put("b", b"2").unwrap();
        let text = client.metrics_text().unwrap();
        let count = value(&text, "softadastra_wal_fsync_duration_seconds_count").unwrap();
        assert!(count >= 2.0, "a durable put syncs: {count}");
        let inf = value(
            &text,
            "softadastra_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}",
        );
        assert_eq!(inf, Some(count));
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("softadastra_wal_fsync_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), SYNC_BUCKETS_US.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert!(value(&text, "softadastra_wal_size_bytes").unwrap() > 0.0);
        assert!(value(&text, "softadastra_data_dir_capacity_bytes").unwrap() > 0.0);
    }
}
