//! Network faults between three real node processes, each in its own network namespace
//! made by this test: no acknowledged write is lost and every node converges once the
//! network heals.
//!
//! Topology (namespaces `sdnf<pid><x>`, removed by a Drop guard even on panic; stale ones
//! of dead test processes are removed at start):
//!
//! ```text
//!   ns a: eth0 10.99.0.1 ─┐
//!   ns b: eth0 10.99.0.2 ─┼─ ns h: bridge br0 10.99.0.254 (veth ends va, vb, vc)
//!   ns c: eth0 10.99.0.3 ─┘        + the fault proxy 10.99.0.254:7001 -> 10.99.0.2:7000
//! ```
//!
//! Every node listens on 7000 in its namespace. a dials b and c directly; c dials b only
//! through the proxy (b dials nobody), so all b-c traffic crosses the proxy. Each node is
//! this test binary re-run in node mode (`ip netns exec`) with the library client and its
//! transport (`auto_flush` on); it writes every 20 ms (own keys, keys shared by all three,
//! and removals of shared keys) and appends every write whose `put`/`remove` returned Ok to
//! its `acked` file with the version it got.
//!
//! A round (round r; the faulty nodes rotate): writes on all three nodes while
//! 1. nftables drops 25% of the packets in and out of node r%3's eth0 (`numgen random`),
//!    for 4 s, and then on until step 3 ends;
//! 2. the proxy cuts its live connections (frames it still holds are lost, as with a
//!    reset) and replays each one's recorded c->b frames on a fresh connection to b (a
//!    whole old connection duplicated, TLS handshake included: b cannot complete it, the
//!    transcript differs); 2 s;
//! 3. node (r+1)%3's eth0 is set down, for 25 s in even rounds (past the transport's 20 s
//!    dead-connection limit: connections die and are dialled again) and 4 s in odd ones,
//!    then up; the loss rules are removed; 2 s more;
//!
//! and the proxy is in chaos mode all round long. Connections are TLS 1.3 between trusted
//! keys (the test enrols the three nodes before they start), so the proxy sees TLS records:
//! every record (5-byte header: type, version, u16 length; then the payload) is held for
//! 0-150 ms (in order within its direction), records due at the same time on different
//! connections and directions are forwarded in random order, and 1.5% of the application
//! data records are sent twice in a row (TLS detects the duplicate: both nodes drop the
//! connection and dial again). A destination that takes no record for 2 s, garbage, or an
//! end of either side closes both sides. Healing: no nft
//! table, all links up, the proxy passes frames through at once; the nodes stop writing and
//! the test waits (60 s at most) until all three report the same store, then (60 s at most)
//! until every peer is connected again. After the last round the nodes stop and the test
//! opens their WALs: identical stores, each acknowledged write present (or overwritten by
//! a newer version of the same key).
//!
//! CI runs one round (about 40 s). `SOFTADASTRA_NETFAULT_ROUNDS=N` runs N rounds. Needs
//! root, `ip` (iproute2) and `nft` (nftables, installed by scripts/install-deps.sh): the
//! test fails, never skips, when they are missing.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, Peer, PeerState};

const NODE_MODE: &str = "SOFTADASTRA_NETFAULT_NODE";
const TEST: &str = "three_namespaced_nodes_lose_no_acknowledged_write_under_network_faults";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const ADDRS: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
const HUB_ADDR: &str = "10.99.0.254";
const NODE_PORT: u16 = 7000;
const PROXY_PORT: u16 = 7001;
const PREFIX: &str = "sdnf";

// ---------------------------------------------------------------------------------------
// Commands and the namespaces.

/// The path of a system tool: on the PATH, or in /usr/sbin or /sbin (not on every PATH).
fn tool(name: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("{name} is missing: run scripts/install-deps.sh"))
}

/// Runs a command (`ip` and `nft` are looked up with [`tool`]); its stdout, or an error
/// naming the command with its stderr.
fn run(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let resolved: Vec<String> = args
        .iter()
        .map(|a| match *a {
            "ip" | "nft" => tool(a),
            other => other.to_string(),
        })
        .collect();
    let mut child = Command::new(&resolved[0])
        .args(&resolved[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{args:?}: {e} (is it installed? scripts/install-deps.sh)"))?;
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    let _ = writer.join();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn must(args: &[&str]) -> String {
    run(args, None).unwrap_or_else(|e| panic!("{e}"))
}

/// `ip` with space-separated arguments; panics with its stderr when it fails.
fn ip(args: &str) -> String {
    let mut all = vec!["ip"];
    all.extend(args.split_whitespace());
    must(&all)
}

/// The four namespaces of one test run; deleting them removes the veths and the bridge.
struct Network {
    hub: String,
    nodes: [String; 3],
}

impl Network {
    fn create() -> Network {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test makes network namespaces and needs root (CI runs as root)"
        );
        tool("nft");
        remove_stale_namespaces();
        let pid = std::process::id();
        let name = |x: &str| format!("{PREFIX}{pid}{x}");
        let net = Network {
            hub: name("h"),
            nodes: [name("a"), name("b"), name("c")],
        };
        // Every namespace is owned by the guard from the moment it exists.
        ip(&format!("netns add {}", net.hub));
        for ns in &net.nodes {
            ip(&format!("netns add {ns}"));
        }
        let hub = format!("-n {}", net.hub);
        ip(&format!("{hub} link add br0 type bridge"));
        ip(&format!("{hub} addr add {HUB_ADDR}/24 dev br0"));
        ip(&format!("{hub} link set br0 up"));
        ip(&format!("{hub} link set lo up"));
        for (i, ns) in net.nodes.iter().enumerate() {
            let end = ["va", "vb", "vc"][i];
            ip(&format!(
                "{hub} link add {end} type veth peer name eth0 netns {ns}"
            ));
            ip(&format!("{hub} link set {end} master br0"));
            ip(&format!("{hub} link set {end} up"));
            ip(&format!("-n {ns} addr add {}/24 dev eth0", ADDRS[i]));
            ip(&format!("-n {ns} link set eth0 up"));
            ip(&format!("-n {ns} link set lo up"));
        }
        net
    }

    /// nftables in node `i`'s namespace drops `percent`% of eth0's packets, both ways.
    fn add_loss(&self, i: usize, percent: u32) {
        let script = format!(
            "table inet sdfault {{\n\
             chain input {{ type filter hook input priority 0; policy accept;\n\
             iifname \"eth0\" numgen random mod 100 < {percent} counter drop; }}\n\
             chain output {{ type filter hook output priority 0; policy accept;\n\
             oifname \"eth0\" numgen random mod 100 < {percent} counter drop; }}\n}}\n"
        );
        run(
            &["ip", "netns", "exec", &self.nodes[i], "nft", "-f", "-"],
            Some(&script),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Removes the loss rules of node `i`; the number of packets they dropped.
    fn remove_loss(&self, i: usize) -> u64 {
        let ns = &self.nodes[i];
        let table = must(&[
            "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "sdfault",
        ]);
        must(&[
            "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "sdfault",
        ]);
        table
            .split("counter packets ")
            .skip(1)
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&format!("-n {} link set eth0 {state}", self.nodes[i]));
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            if let Err(e) = run(&["ip", "netns", "del", ns], None) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Namespaces left by a test process that was killed before its guard ran.
fn remove_stale_namespaces() {
    let list = ip("netns list");
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name], None);
        }
    }
}

/// Moves the calling thread (and the threads it spawns later) into namespace `ns`.
fn enter_namespace(ns: &str) {
    let file = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------------
// The fault proxy.

/// xorshift64*: enough randomness for delays and coin flips, no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The TLS record type of application data (and, in TLS 1.3, of the encrypted handshake).
const APPLICATION_DATA: u8 = 23;
/// A TLS record's header: type, version (2 bytes), length (2 bytes, big-endian).
const RECORD_HEADER: usize = 5;
/// The longest TLS 1.3 record payload (2^14 plus the AEAD's expansion).
const MAX_RECORD: usize = (1 << 14) + 256;

struct Frame {
    due: Instant,
    bytes: Vec<u8>,
}

/// One proxied connection: c's side (`down`) and b's side (`up`).
struct Conn {
    down: TcpStream,
    up: TcpStream,
    /// Frames waiting, per direction: [c->b, b->c].
    queues: [VecDeque<Frame>; 2],
    /// The c->b frames forwarded so far, for a replay.
    recorded: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct ProxyStats {
    connections: AtomicU64,
    frames: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    replays: AtomicU64,
    replayed_bytes: AtomicU64,
    /// Replays that b closed within the second (a replayed TLS session cannot finish its
    /// handshake: the transcript differs, so b's check of the client's Finished fails).
    replays_refused: AtomicU64,
}

struct ProxyState {
    conns: HashMap<u64, Conn>,
    next_id: u64,
    /// Order in which frames were queued (connection, direction), to count reorderings.
    arrivals: VecDeque<(u64, usize)>,
    /// The c->b bytes of the last connection that ended, for a replay when no connection
    /// is live at the cut (over TLS, a duplicated record ends connections often).
    last_recorded: Vec<u8>,
}

struct Proxy {
    chaos: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ProxyState>>,
    stats: Arc<ProxyStats>,
    replay_queue: Arc<Mutex<Vec<Vec<u8>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` inside namespace `ns` and forwards to `target`.
    fn start(ns: &str, listen: SocketAddr, target: SocketAddr) -> Proxy {
        let chaos = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(ProxyState {
            conns: HashMap::new(),
            next_id: 0,
            arrivals: VecDeque::new(),
            last_recorded: Vec::new(),
        }));
        let stats = Arc::new(ProxyStats::default());
        let replay_queue = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let (c, s, st, ss, rq) = (
            chaos.clone(),
            stop.clone(),
            state.clone(),
            stats.clone(),
            replay_queue.clone(),
        );
        let acceptor = std::thread::spawn(move || {
            enter_namespace(&ns);
            let listener = TcpListener::bind(listen).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            // Threads spawned from here live in the namespace too.
            let sched = {
                let (c, s, st, ss) = (c.clone(), s.clone(), st.clone(), ss.clone());
                std::thread::spawn(move || schedule(c, s, st, ss))
            };
            let mut readers = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let replays: Vec<Vec<u8>> = std::mem::take(&mut *rq.lock().unwrap());
                for data in replays {
                    ss.replays.fetch_add(1, Ordering::SeqCst);
                    ss.replayed_bytes
                        .fetch_add(data.len() as u64, Ordering::SeqCst);
                    let (s, ss) = (s.clone(), ss.clone());
                    readers.push(std::thread::spawn(move || replay(target, &data, &s, &ss)));
                }
                match listener.accept() {
                    Ok((down, _)) => {
                        let Ok(up) = TcpStream::connect_timeout(&target, Duration::from_secs(1))
                        else {
                            continue; // b unreachable: c sees its connection close
                        };
                        ss.connections.fetch_add(1, Ordering::SeqCst);
                        let id = {
                            let mut g = st.lock().unwrap();
                            g.next_id += 1;
                            let id = g.next_id;
                            g.conns.insert(
                                id,
                                Conn {
                                    down: down.try_clone().unwrap(),
                                    up: up.try_clone().unwrap(),
                                    queues: [VecDeque::new(), VecDeque::new()],
                                    recorded: Vec::new(),
                                    closed: false,
                                },
                            );
                            id
                        };
                        for (dir, from) in [(0, down), (1, up)] {
                            let (c, s, st, ss) = (c.clone(), s.clone(), st.clone(), ss.clone());
                            readers.push(std::thread::spawn(move || {
                                read_frames(id, dir, from, c, s, st, ss);
                            }));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                readers.retain(|h| !h.is_finished());
            }
            for h in readers {
                let _ = h.join();
            }
            let _ = sched.join();
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the proxy listens");
        Proxy {
            chaos,
            stop,
            state,
            stats,
            replay_queue,
            threads: vec![acceptor],
        }
    }

    fn set_chaos(&self, on: bool) {
        self.chaos.store(on, Ordering::SeqCst);
    }

    /// Closes every live connection (held frames are lost, as with a reset) and replays
    /// the c->b frames each one forwarded on a fresh connection to b.
    fn cut_and_replay(&self) {
        let mut g = self.state.lock().unwrap();
        let mut replays = Vec::new();
        for conn in g.conns.values_mut() {
            close(conn);
            if !conn.recorded.is_empty() {
                replays.push(std::mem::take(&mut conn.recorded));
            }
        }
        if replays.is_empty() && !g.last_recorded.is_empty() {
            replays.push(std::mem::take(&mut g.last_recorded));
        }
        self.replay_queue.lock().unwrap().extend(replays);
    }

    fn stats(&self) -> String {
        let s = &self.stats;
        format!(
            "{} connections, {} frames, {} duplicated, {} forwarded out of arrival order, {} \
             connections replayed ({} bytes, {} closed by b at once)",
            s.connections.load(Ordering::SeqCst),
            s.frames.load(Ordering::SeqCst),
            s.duplicated.load(Ordering::SeqCst),
            s.reordered.load(Ordering::SeqCst),
            s.replays.load(Ordering::SeqCst),
            s.replayed_bytes.load(Ordering::SeqCst),
            s.replays_refused.load(Ordering::SeqCst)
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut g) = self.state.lock() {
            for conn in g.conns.values_mut() {
                close(conn);
            }
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn close(conn: &mut Conn) {
    conn.closed = true;
    let _ = conn.down.shutdown(Shutdown::Both);
    let _ = conn.up.shutdown(Shutdown::Both);
    conn.queues = [VecDeque::new(), VecDeque::new()];
}

/// Cuts one direction's byte stream into frames and queues them (with a delay and maybe a
/// duplicate in chaos mode). Garbage or a closed socket closes the whole connection.
fn read_frames(
    id: u64,
    dir: usize,
    mut from: TcpStream,
    chaos: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ProxyState>>,
    stats: Arc<ProxyStats>,
) {
    let mut rng = Rng::seeded();
    rng.0 ^= id << 8 | dir as u64;
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut last_due = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if state
                    .lock()
                    .unwrap()
                    .conns
                    .get(&id)
                    .is_none_or(|c| c.closed)
                {
                    return;
                }
                continue;
            }
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut frames = Vec::new();
        loop {
            if buf.len() < RECORD_HEADER {
                break;
            }
            let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
            if len > MAX_RECORD {
                buf.clear();
                frames.clear();
                let mut g = state.lock().unwrap();
                if let Some(c) = g.conns.get_mut(&id) {
                    close(c);
                }
                return;
            }
            if buf.len() < RECORD_HEADER + len {
                break;
            }
            frames.push(buf.drain(..RECORD_HEADER + len).collect::<Vec<u8>>());
        }
        let mut g = state.lock().unwrap();
        let on = chaos.load(Ordering::SeqCst);
        let Some(conn) = g.conns.get_mut(&id) else {
            return;
        };
        if conn.closed {
            return;
        }
        let mut queued = 0;
        for frame in frames {
            let now = Instant::now();
            let due = if on {
                (now + Duration::from_millis(rng.below(150))).max(last_due)
            } else {
                now.max(last_due)
            };
            last_due = due;
            // A duplicated record breaks the TLS session (its sequence number does not
            // authenticate): the nodes must drop the connection and dial again. Rare
            // enough that connections also live through stretches of delay and reordering.
            let copies = if on && frame[0] == APPLICATION_DATA && rng.below(1000) < 15 {
                stats.duplicated.fetch_add(1, Ordering::SeqCst);
                2
            } else {
                1
            };
            for _ in 0..copies {
                conn.queues[dir].push_back(Frame {
                    due,
                    bytes: frame.clone(),
                });
                queued += 1;
            }
        }
        for _ in 0..queued {
            g.arrivals.push_back((id, dir));
        }
    }
    let mut g = state.lock().unwrap();
    if let Some(c) = g.conns.get_mut(&id) {
        close(c);
    }
}

/// Forwards due frames: in order within a direction, in random order across connections
/// and directions.
fn schedule(
    chaos: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ProxyState>>,
    stats: Arc<ProxyStats>,
) {
    let mut rng = Rng::seeded();
    while !stop.load(Ordering::SeqCst) {
        let mut sent_any = false;
        {
            let mut g = state.lock().unwrap();
            let now = Instant::now();
            let on = chaos.load(Ordering::SeqCst);
            let mut due: Vec<(u64, usize)> = g
                .conns
                .iter()
                .flat_map(|(id, c)| {
                    (0..2)
                        .filter(|&d| c.queues[d].front().is_some_and(|f| f.due <= now || !on))
                        .map(move |d| (*id, d))
                })
                .collect();
            due.sort_unstable();
            if !due.is_empty() {
                let pick = if on {
                    due[rng.below(due.len() as u64) as usize]
                } else {
                    // Passing through: the oldest arrival first.
                    g.arrivals
                        .iter()
                        .copied()
                        .find(|a| due.contains(a))
                        .unwrap_or(due[0])
                };
                if let Some(pos) = g.arrivals.iter().position(|a| *a == pick) {
                    if pos > 0 {
                        stats.reordered.fetch_add(1, Ordering::SeqCst);
                    }
                    g.arrivals.remove(pos);
                }
                let conn = g.conns.get_mut(&pick.0).unwrap();
                let frame = conn.queues[pick.1].pop_front().unwrap();
                let to = if pick.1 == 0 { &conn.up } else { &conn.down };
                let mut to = to;
                let _ = to.set_write_timeout(Some(Duration::from_secs(2)));
                if to.write_all(&frame.bytes).is_err() {
                    close(conn);
                } else {
                    stats.frames.fetch_add(1, Ordering::SeqCst);
                    if pick.1 == 0 && conn.recorded.len() < 8 << 20 {
                        conn.recorded.extend_from_slice(&frame.bytes);
                    }
                }
                sent_any = true;
            }
            // Forget closed connections with nothing left; their arrivals too.
            let closed: Vec<u64> = g
                .conns
                .iter()
                .filter(|(_, c)| c.closed)
                .map(|(id, _)| *id)
                .collect();
            for id in closed {
                if let Some(c) = g.conns.remove(&id)
                    && !c.recorded.is_empty()
                {
                    g.last_recorded = c.recorded;
                }
                g.arrivals.retain(|a| a.0 != id);
            }
        }
        if !sent_any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sends an old connection's c->b bytes to b on a new connection, reads (and discards)
/// what b answers for a second, then closes.
fn replay(target: SocketAddr, data: &[u8], stop: &AtomicBool, stats: &ProxyStats) {
    let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut reader = s.try_clone().unwrap();
    let writer_data = data.to_vec();
    let w = std::thread::spawn(move || {
        let _ = s.write_all(&writer_data);
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut sink = vec![0u8; 64 << 10];
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        match reader.read(&mut sink) {
            Ok(0) => {
                stats.replays_refused.fetch_add(1, Ordering::SeqCst);
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = reader.shutdown(Shutdown::Both);
    let _ = w.join();
}

// ---------------------------------------------------------------------------------------
// Node mode.

/// Runs a node until its stop file exists (10 minutes at most). Writes every 20 ms unless
/// its quiet file exists; records every acknowledged write; reports its state every 200 ms
/// in `<id>.status`: `size digest acked quiet connected`.
fn node_main(dir: &Path) {
    let id = std::env::var("NODE_ID").unwrap();
    let host = std::env::var("NODE_HOST").unwrap();
    let wal = dir.join(format!("{id}.wal"));
    let mut o = ClientOptions::persistent(&id, wal.to_str().unwrap());
    o.enable_transport = true;
    o.transport_host = host;
    o.transport_port = NODE_PORT;
    o.ack_timeout_ms = 500;
    o.retry_interval_ms = 100;
    let client = Client::new(o);
    client.open().unwrap();
    client.start_transport().unwrap();
    for peer in std::env::var("NODE_PEERS")
        .unwrap()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (peer_id, addr) = peer.split_once('@').unwrap();
        let (h, p) = addr.split_once(':').unwrap();
        client
            .connect(&Peer::new(peer_id, h, p.parse().unwrap()))
            .unwrap();
    }
    let stop = dir.join(format!("{id}.stop"));
    let quiet = dir.join("quiet");
    let status = dir.join(format!("{id}.status"));
    let mut acked = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{id}.acked")))
        .unwrap();
    let mut n: u64 = std::fs::read_to_string(dir.join(format!("{id}.acked")))
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut next_write, mut next_report) = (Instant::now(), Instant::now());
    while !stop.exists() && Instant::now() < deadline {
        let now = Instant::now();
        let is_quiet = quiet.exists();
        if !is_quiet && now >= next_write {
            next_write = now + Duration::from_millis(20);
            let (op, key, value) = if n % 16 == 15 {
                ("del", format!("shared/{}", n % 8), String::new())
            } else if n % 4 == 1 {
                ("put", format!("shared/{}", n % 8), format!("{id}:{n}"))
            } else {
                ("put", format!("{id}/{n:06}"), format!("{id}:{n}"))
            };
            let version = if op == "del" {
                client.remove(&key).unwrap()
            } else {
                client.put(&key, value.as_bytes()).unwrap()
            };
            // Acknowledged: durable on this node. One line, written whole.
            let line = format!("{op}\t{key}\t{value}\t{}\n", version.0);
            acked.write_all(line.as_bytes()).unwrap();
            n += 1;
        }
        client
            .process_transport_events_wait(256, Duration::from_millis(5))
            .unwrap();
        if now >= next_report {
            next_report = now + Duration::from_millis(200);
            client.tick(true).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            client.list("").unwrap().hash(&mut h);
            for k in 0..8 {
                let e = client.entry(&format!("shared/{k}")).unwrap();
                e.map(|e| (e.value, e.version.0)).hash(&mut h);
            }
            let connected = client
                .peers()
                .unwrap()
                .iter()
                .filter(|p| p.state == PeerState::Connected)
                .count();
            let line = format!(
                "{} {} {} {} {}",
                client.size().unwrap(),
                h.finish(),
                n,
                u8::from(is_quiet),
                connected
            );
            let tmp = dir.join(format!("{id}.status.tmp"));
            std::fs::write(&tmp, line).unwrap();
            std::fs::rename(&tmp, &status).unwrap();
        }
    }
    client.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// The test.

/// A node process, killed and reaped if the test ends without stopping it.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, ns: &str, i: usize, peers: &str) -> NodeProcess {
    let exe = std::env::current_exe().unwrap();
    let log = std::fs::File::create(dir.join(format!("{}.log", NODES[i]))).unwrap();
    let child = Command::new(tool("ip"))
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(NODE_MODE, dir)
        .env("NODE_ID", NODES[i])
        .env("NODE_HOST", ADDRS[i])
        .env("NODE_PEERS", peers)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("ip netns exec runs");
    NodeProcess(child)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    size: usize,
    digest: u64,
    acked: u64,
    quiet: bool,
    connected: usize,
}

fn status(dir: &Path, id: &str) -> Option<Status> {
    let text = std::fs::read_to_string(dir.join(format!("{id}.status"))).ok()?;
    let f: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    (f.len() == 5).then(|| Status {
        size: f[0] as usize,
        digest: f[1],
        acked: f[2],
        quiet: f[3] == 1,
        connected: f[4] as usize,
    })
}

fn all_status(dir: &Path) -> Vec<Option<Status>> {
    NODES.iter().map(|id| status(dir, id)).collect()
}

/// Sleeps `d`, failing at once if a node process died meanwhile.
fn sleep_watching(d: Duration, nodes: &mut [NodeProcess], dir: &Path) {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        check_alive(nodes, dir);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_alive(nodes: &mut [NodeProcess], dir: &Path) {
    for (i, n) in nodes.iter_mut().enumerate() {
        if let Ok(Some(code)) = n.0.try_wait() {
            let log =
                std::fs::read_to_string(dir.join(format!("{}.log", NODES[i]))).unwrap_or_default();
            panic!("{} exited early ({code}):\n{log}", NODES[i]);
        }
    }
}

/// Waits (bounded) until the three nodes report quiet, the same store and all peers up.
fn wait_converged(limit: Duration, nodes: &mut [NodeProcess], dir: &Path) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        check_alive(nodes, dir);
        let s = all_status(dir);
        if let [Some(a), Some(b), Some(c)] = &s[..] {
            let same = a.digest == b.digest && b.digest == c.digest && a.size == b.size;
            if a.quiet && b.quiet && c.quiet && same {
                return Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits (bounded) until every node reports both its peers connected.
fn wait_connected(limit: Duration, nodes: &mut [NodeProcess], dir: &Path) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        check_alive(nodes, dir);
        let s = all_status(dir);
        if s.iter()
            .all(|s| s.as_ref().is_some_and(|s| s.connected == 2))
        {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct Acked {
    op: String,
    key: String,
    value: String,
    version: u64,
}

fn acked_writes(dir: &Path, id: &str) -> Vec<Acked> {
    let text = std::fs::read_to_string(dir.join(format!("{id}.acked"))).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Acked {
                op: f[0].into(),
                key: f[1].into(),
                value: f[2].into(),
                version: f[3].parse().unwrap(),
            }
        })
        .collect()
}

fn stop(dir: &Path, i: usize, mut node: NodeProcess) {
    std::fs::write(dir.join(format!("{}.stop", NODES[i])), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            assert!(status.success(), "{} exited with {status}", NODES[i]);
            return;
        }
        assert!(Instant::now() < deadline, "{} did not stop", NODES[i]);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_namespaced_nodes_lose_no_acknowledged_write_under_network_faults() {
    if let Some(dir) = std::env::var_os(NODE_MODE) {
        return node_main(&PathBuf::from(dir));
    }
    let rounds: usize = std::env::var("SOFTADASTRA_NETFAULT_ROUNDS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().expect("SOFTADASTRA_NETFAULT_ROUNDS is a number"))
        .unwrap_or(1);
    let phase = Duration::from_secs(4);
    let test_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Dropped in reverse order: the nodes, then the proxy, then the namespaces.
    let net = Network::create();
    let proxy = Proxy::start(
        &net.hub,
        format!("{HUB_ADDR}:{PROXY_PORT}").parse().unwrap(),
        format!("{}:{NODE_PORT}", ADDRS[1]).parse().unwrap(),
    );
    common::enroll(
        &NODES
            .iter()
            .map(|id| {
                let wal = dir.join(format!("{id}.wal"));
                ClientOptions::persistent(id, wal.to_str().unwrap())
            })
            .collect::<Vec<_>>(),
    );
    let peer = |i: usize| format!("{}@{}:{NODE_PORT}", NODES[i], ADDRS[i]);
    let mut nodes = vec![
        spawn(dir, &net.nodes[0], 0, &format!("{},{}", peer(1), peer(2))),
        spawn(dir, &net.nodes[1], 1, ""),
        spawn(
            dir,
            &net.nodes[2],
            2,
            &format!("{}@{HUB_ADDR}:{PROXY_PORT}", NODES[1]),
        ),
    ];
    // Everyone connected (a-b, a-c, c-proxy-b) before the first fault.
    let connected = (0..200).any(|_| {
        sleep_watching(Duration::from_millis(100), &mut nodes, dir);
        let s = all_status(dir);
        s.iter().flatten().map(|s| s.connected).collect::<Vec<_>>() == [2, 2, 2]
    });
    assert!(
        connected,
        "nodes never all connected: {:?}",
        all_status(dir)
    );

    let mut report = Vec::new();
    for round in 0..rounds {
        let lossy = round % 3;
        let downed = (round + 1) % 3;
        let _ = std::fs::remove_file(dir.join("quiet"));
        proxy.set_chaos(true);
        net.add_loss(lossy, 25);
        sleep_watching(phase, &mut nodes, dir);
        let replays_before = proxy.stats.replays.load(Ordering::SeqCst);
        proxy.cut_and_replay();
        sleep_watching(phase / 2, &mut nodes, dir);
        let replayed = proxy.stats.replays.load(Ordering::SeqCst) - replays_before;
        // Even rounds (the CI round among them) keep the link down beyond the transport's
        // 20 s dead-connection limit, so that connections die and are dialled again.
        let down_for = if round % 2 == 0 {
            Duration::from_secs(25)
        } else {
            phase
        };
        net.set_link(downed, false);
        sleep_watching(down_for, &mut nodes, dir);
        let connected_while_down: Vec<usize> = all_status(dir)
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.connected))
            .collect();
        net.set_link(downed, true);
        let dropped = net.remove_loss(lossy);
        // The faults took effect: packets were dropped, and a link down for 25 s cut every
        // connection of its node.
        assert!(dropped > 0, "round {round}: the loss rules dropped nothing");
        if down_for > Duration::from_secs(20) {
            assert_eq!(
                connected_while_down[downed], 0,
                "round {round}: {} still had peers after 25 s without a link",
                NODES[downed]
            );
        }
        sleep_watching(phase / 2, &mut nodes, dir);
        // Healed: pass-through proxy, no rule, all links up. Writes stop.
        proxy.set_chaos(false);
        std::fs::write(dir.join("quiet"), b"").unwrap();
        let took = wait_converged(Duration::from_secs(60), &mut nodes, dir);
        let s = all_status(dir);
        assert!(
            took.is_some(),
            "round {round}: no convergence within 60 s: {s:?}\nproxy: {}",
            proxy.stats()
        );
        let line = format!(
            "round {round}: loss on {} ({dropped} packets dropped), {} link down {} s \
             (connected peers at its end {connected_while_down:?}), converged {:.1} s after \
             healing; size {}, acked {:?}",
            NODES[lossy],
            NODES[downed],
            down_for.as_secs(),
            took.unwrap().as_secs_f64(),
            s[0].as_ref().unwrap().size,
            s.iter().flatten().map(|s| s.acked).collect::<Vec<_>>()
        );
        // Every connection is back (c to b through the proxy too) before the next round.
        let reconnected = wait_connected(Duration::from_secs(60), &mut nodes, dir);
        assert!(
            reconnected.is_some(),
            "round {round}: nodes never all connected again: {:?}",
            all_status(dir)
        );
        let line = format!(
            "{line}, {replayed} connection(s) replayed; all connected again {:.1} s later",
            reconnected.unwrap().as_secs_f64()
        );
        eprintln!("{line}");
        report.push(line);
    }
    for (i, node) in nodes.into_iter().enumerate() {
        stop(dir, i, node);
    }
    eprintln!("proxy: {}", proxy.stats());
    let st = &proxy.stats;
    assert!(
        st.duplicated.load(Ordering::SeqCst) > 0
            && st.reordered.load(Ordering::SeqCst) > 0
            && st.replays.load(Ordering::SeqCst) > 0,
        "the proxy duplicated, reordered and replayed: {}",
        proxy.stats()
    );

    drop(proxy);
    drop(net);

    // The WALs: identical stores, every acknowledged write there or overwritten by newer.
    let open = |id: &str| {
        let c = Client::new(ClientOptions::persistent(
            id,
            dir.join(format!("{id}.wal")).to_str().unwrap(),
        ));
        c.open().unwrap();
        c
    };
    let clients: Vec<Client> = NODES.iter().map(|id| open(id)).collect();
    let lists: Vec<_> = clients.iter().map(|c| c.list("").unwrap()).collect();
    assert_eq!(lists[0], lists[1], "a and b differ");
    assert_eq!(lists[0], lists[2], "a and c differ");
    let store: BTreeMap<String, Vec<u8>> = lists[0].iter().cloned().collect();
    let mut total = 0;
    for id in NODES {
        for w in acked_writes(dir, id) {
            total += 1;
            let entries: Vec<_> = clients.iter().map(|c| c.entry(&w.key).unwrap()).collect();
            let e = entries[0]
                .clone()
                .unwrap_or_else(|| panic!("acknowledged {} {} of {id} is lost", w.op, w.key));
            for other in &entries[1..] {
                let o = other.as_ref().expect("entry on every node");
                assert_eq!((&o.value, o.version), (&e.value, e.version), "{}", w.key);
            }
            // Last-writer-wins orders by (version, origin): two nodes can write one key
            // with the same version, and the greater origin id then wins everywhere.
            let kept = (e.version.0, &*e.origin);
            let written = (w.version, id);
            if kept == written {
                let expected = (w.op == "put").then(|| w.value.as_bytes().to_vec());
                assert_eq!(e.value, expected, "{} of {id}", w.key);
            } else {
                assert!(
                    kept > written,
                    "acknowledged {} {} of {id} (version {}) replaced by an older write {:?}",
                    w.op,
                    w.key,
                    w.version,
                    kept
                );
            }
            if !w.key.starts_with("shared/") {
                assert_eq!(store.get(&w.key), Some(&w.value.as_bytes().to_vec()));
            }
        }
    }
    eprintln!(
        "{rounds} round(s) in {:.1} s: {total} acknowledged writes checked, {} keys on every \
         node",
        test_start.elapsed().as_secs_f64(),
        store.len()
    );
    assert!(total > 0);
}
