//! Node A to node B over loopback TCP, in one run: throughput of 100,000 puts on A until all
//! are applied on B and acknowledged back to A, and with idle nodes the delay from a put on A
//! to the value being visible on B (p50/p99 over 1,000 puts). Each node runs its transport
//! loop on a thread of its own. Then the flood: node A's local durable put and get latency
//! (p50/p99/max over 2,000 calls) with idle nodes, and again while A's event loop takes in
//! a stream of remote writes from B (issue 11: local writes never wait for the network).
//! Connections are TLS 1.3 between trusted keys, as by default; the throughput and
//! latency are also measured in plaintext (the insecure test mode) in the same run, for
//! the ratio, and so is the time of a full handshake on loopback (issue 12).
//! Prints tables; asserts nothing about time.
//! Run with `cargo bench --bench network`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, Peer};

fn node(dir: &std::path::Path, id: &str, durable: bool) -> Arc<Client> {
    node_with(dir, id, durable, true)
}

/// Makes each client trust the others' keys.
fn trust_all(clients: &[&Arc<Client>]) {
    for a in clients {
        for b in clients {
            let info = b.node_info().unwrap();
            if a.options().node_id != info.node_id {
                a.trust_peer(&info.node_id, &info.fingerprint).unwrap();
            }
        }
    }
}

fn node_with(dir: &std::path::Path, id: &str, durable: bool, secure: bool) -> Arc<Client> {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let wal = dir.join(format!("{id}.wal"));
        let mut options = if durable {
            ClientOptions::persistent(id, wal.to_str().unwrap())
        } else {
            ClientOptions::fast(id, wal.to_str().unwrap())
        };
        options.require_ack = true;
        options.sync_batch_size = 256;
        options.enable_transport = true;
        options.transport_host = "127.0.0.1".into();
        options.transport_port = port;
        options.insecure_transport = !secure;
        let client = Client::new(options);
        client.open().unwrap();
        if client.start_transport().is_ok() {
            return Arc::new(client);
        }
    }
    panic!("no free port");
}

/// Runs a node's transport loop until `stop`.
fn drive(client: Arc<Client>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            client
                .process_transport_events_wait(1024, Duration::from_millis(5))
                .unwrap();
        }
    })
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct Figures {
    throughput: f64,
    p50_us: u128,
    p99_us: u128,
    max_us: u128,
}

fn run(durable: bool, secure: bool) -> Figures {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let a = node_with(dir.path(), "node-a", durable, secure);
    let b = node_with(dir.path(), "node-b", durable, secure);
    trust_all(&[&a, &b]);
    let stop = Arc::new(AtomicBool::new(false));
    let threads = [
        drive(a.clone(), stop.clone()),
        drive(b.clone(), stop.clone()),
    ];
    a.connect(&Peer::local(
        "node-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    wait("connection", Duration::from_secs(10), || {
        b.peers()
            .unwrap()
            .iter()
            .any(|p| p.state == softadastra::PeerState::Connected)
    });

    // Throughput: 100,000 puts, done when B holds them all and A has every ACK.
    const N: usize = 100_000;
    let value = [0x61u8; 100];
    let start = Instant::now();
    for i in 0..N {
        a.put(&format!("bulk/{i:08}"), &value).unwrap();
    }
    wait("delivery", Duration::from_secs(120), || {
        b.size().unwrap() >= N && a.sync_state().unwrap().acknowledged_count >= N
    });
    let throughput = N as f64 / start.elapsed().as_secs_f64();
    a.prune_completed().unwrap();

    // Latency with idle nodes: one put at a time, until it is visible on B.
    std::thread::sleep(Duration::from_millis(200));
    let mut delays = Vec::new();
    for i in 0..1_000 {
        let key = format!("latency/{i:05}");
        let t = Instant::now();
        a.put(&key, b"x").unwrap();
        wait("visibility", Duration::from_secs(5), || {
            b.contains(&key).unwrap()
        });
        delays.push(t.elapsed().as_micros());
        std::thread::sleep(Duration::from_millis(1));
    }
    delays.sort_unstable();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Figures {
        throughput,
        p50_us: delays[delays.len() / 2],
        p99_us: delays[delays.len() * 99 / 100],
        max_us: *delays.last().unwrap(),
    }
}

/// p50, p99 and max of `samples` (microseconds, fractional).
fn percentiles(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50), at(99), *samples.last().unwrap())
}

struct Latency {
    put: (f64, f64, f64),
    get: (f64, f64, f64),
    /// Remote operations A applied while the puts were measured.
    remote_applied: u64,
}

/// 2,000 durable puts and gets on A, one at a time, timed each.
fn measure(a: &Client, label: &str) -> Latency {
    let before = a.size().unwrap() as u64;
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for i in 0..2_000 {
        let key = format!("{label}/{i:05}");
        let t = Instant::now();
        a.put(&key, b"local").unwrap();
        puts.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        a.get(&key).unwrap();
        gets.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let after = a.size().unwrap() as u64;
    Latency {
        put: percentiles(puts),
        get: percentiles(gets),
        remote_applied: after - before - 2_000,
    }
}

/// Remote writes a second in the flood: 2,000 times the ten a second of a busy till.
const FLOOD_RATE: f64 = 20_000.0;

/// A durable; B fast and flooding A with batches of 64, at `rate` writes a second or
/// (None) as fast as B can.
fn flood(rate: Option<f64>) -> (Latency, Latency) {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let a = node(dir.path(), "node-a", true);
    let b = node(dir.path(), "node-b", false);
    trust_all(&[&a, &b]);
    let stop = Arc::new(AtomicBool::new(false));
    let loops = [
        drive(a.clone(), stop.clone()),
        drive(b.clone(), stop.clone()),
    ];
    b.connect(&Peer::local(
        "node-a",
        a.transport_address().unwrap().port(),
    ))
    .unwrap();
    wait("connection", Duration::from_secs(10), || {
        a.peers()
            .unwrap()
            .iter()
            .any(|p| p.state == softadastra::PeerState::Connected)
    });
    std::thread::sleep(Duration::from_millis(100));
    let idle = measure(&a, "idle");

    let flooding = Arc::new(AtomicBool::new(true));
    let writer = {
        let (b, flooding) = (b.clone(), flooding.clone());
        std::thread::spawn(move || {
            let value = [0x62u8; 100];
            let mut i = 0u64;
            let started = Instant::now();
            while flooding.load(Ordering::Relaxed) {
                // A steady stream at FLOOD_RATE, so that runs (and code versions) compare.
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(i as f64 / rate);
                    if let Some(ahead) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(ahead);
                    }
                }
                let mut batch = softadastra::WriteBatch::new();
                for _ in 0..64 {
                    batch.put(format!("remote/{i:010}"), value.to_vec());
                    i += 1;
                }
                b.write_batch(&batch).unwrap();
                b.prune_completed().unwrap();
                // Keep B's outbox from growing without bound: let A catch up a little.
                while b.sync_state().unwrap().queued_count > 50_000 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    // Wait until the stream reaches A, then measure while it flows.
    wait("the flood to reach A", Duration::from_secs(10), || {
        a.size().unwrap() > 4_000
    });
    let flooded = measure(&a, "flooded");
    flooding.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in loops {
        t.join().unwrap();
    }
    (idle, flooded)
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the valid buffer.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Three idle nodes (A connected to B and C) in background mode for 5 s: the share of one
/// core each uses, on average.
fn idle_cpu() -> f64 {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let nodes: Vec<_> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|id| node(dir.path(), id, true))
        .collect();
    trust_all(&nodes.iter().collect::<Vec<_>>());
    for n in &nodes {
        n.start_background().unwrap();
    }
    for peer in &nodes[1..] {
        nodes[0]
            .connect(&Peer::local(
                &peer.options().node_id,
                peer.transport_address().unwrap().port(),
            ))
            .unwrap();
    }
    wait("connections", Duration::from_secs(10), || {
        nodes[0]
            .peers()
            .unwrap()
            .iter()
            .filter(|p| p.state == softadastra::PeerState::Connected)
            .count()
            == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let used = (cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64();
    used / nodes.len() as f64
}

/// The time of one full connection set-up on loopback between two bare transports (TCP
/// connect, TLS handshake with both keys checked, Hello exchange), over `n` connections:
/// p50 and p99 in microseconds.
fn handshakes(secure: bool, n: usize) -> (f64, f64) {
    use softadastra::transport::{Security, Transport, TransportConfig, TransportEvent};
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let ids = [
        softadastra::identity::Identity::generate().unwrap(),
        softadastra::identity::Identity::generate().unwrap(),
    ];
    let trusted = Arc::new(parking_lot::RwLock::new(
        softadastra::transport::trust::TrustedPeers::new(),
    ));
    trusted.write().trust("hs-a", ids[0].fingerprint()).unwrap();
    trusted.write().trust("hs-b", ids[1].fingerprint()).unwrap();
    let start = |id: &str, identity: &softadastra::identity::Identity| {
        let mut config = TransportConfig::new(id, "127.0.0.1", 0);
        if secure {
            config.security = Some(Security {
                tls: Arc::new(softadastra::transport::tls::TlsContext::new(identity).unwrap()),
                trusted: trusted.clone(),
            });
        }
        Transport::start(config).unwrap()
    };
    let mut a = start("hs-a", &ids[0]);
    let mut b = start("hs-b", &ids[1]);
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        a.connect(b.local_addr(), now_ms());
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut a_ready, mut b_ready) = (false, false);
        while !(a_ready && b_ready) {
            assert!(Instant::now() < deadline, "handshake timed out");
            for e in a.poll(Some(Duration::from_millis(1)), 0, now_ms()) {
                a_ready |= matches!(e, TransportEvent::Ready { .. });
            }
            for e in b.poll(Some(Duration::from_millis(1)), 0, now_ms()) {
                b_ready |= matches!(e, TransportEvent::Ready { .. });
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
        let mut events = Vec::new();
        a.disconnect(b.local_addr(), &mut events);
        // Let b see the close before the next connection.
        for _ in 0..10 {
            b.poll(Some(Duration::from_millis(1)), 0, now_ms());
        }
    }
    let (p50, p99, _) = percentiles(times);
    (p50, p99)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let idle = idle_cpu();
    println!();
    println!("| idle node with two connected peers, background mode | target |");
    println!("|---|---|");
    println!("| {:.3} % of a core | < 1 % |", idle * 100.0);
    println!();
    println!(
        "| node A, local calls | idle, p50 / p99 / max | while A takes in B's flood, p50 / p99 / max | target |"
    );
    println!("|---|---|---|---|");
    for rate in [Some(FLOOD_RATE), None] {
        let (idle, flooded) = flood(rate);
        let flood = match rate {
            Some(r) => format!("{r:.0} writes/s"),
            None => "as fast as B writes".to_string(),
        };
        println!(
            "| durable put, flood {flood} | {:.0} / {:.0} / {:.0} us | {:.0} / {:.0} / {:.0} us ({} remote writes applied meanwhile) | p99 <= 3 x idle p99 + 1 ms = {:.0} us |",
            idle.put.0,
            idle.put.1,
            idle.put.2,
            flooded.put.0,
            flooded.put.1,
            flooded.put.2,
            flooded.remote_applied,
            3.0 * idle.put.1 + 1000.0
        );
        println!(
            "| get, flood {flood} | {:.1} / {:.1} / {:.0} us | {:.1} / {:.1} / {:.0} us | p99 < 100 us |",
            idle.get.0, idle.get.1, idle.get.2, flooded.get.0, flooded.get.1, flooded.get.2
        );
    }
    let durable = run(true, true);
    let fast = run(false, true);
    let plain = run(false, false);
    println!();
    println!(
        "| measurement | durable (auto_flush on), TLS | fast (auto_flush off), TLS | fast, plaintext (insecure) | TLS / plaintext | target |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| 100,000 puts on A applied on B and acknowledged | {:.0} ops/s | {:.0} ops/s | {:.0} ops/s | {:.2} | >= 200,000 ops/s; TLS >= 0.7 x plaintext |",
        durable.throughput,
        fast.throughput,
        plain.throughput,
        fast.throughput / plain.throughput
    );
    println!(
        "| put on A -> visible on B, idle nodes, p50 / p99 / max | {} / {} / {} us | {} / {} / {} us | {} / {} / {} us | | p99 < 5 ms |",
        durable.p50_us,
        durable.p99_us,
        durable.max_us,
        fast.p50_us,
        fast.p99_us,
        fast.max_us,
        plain.p50_us,
        plain.p99_us,
        plain.max_us
    );
    let (tls50, tls99) = handshakes(true, 200);
    let (plain50, plain99) = handshakes(false, 200);
    println!();
    println!("| connection set-up on loopback (200 connections) | p50 | p99 |");
    println!("|---|---|---|");
    println!("| TCP + TLS 1.3 (both keys checked) + Hello | {tls50:.0} us | {tls99:.0} us |");
    println!("| TCP + Hello (plaintext, insecure) | {plain50:.0} us | {plain99:.0} us |");
}
