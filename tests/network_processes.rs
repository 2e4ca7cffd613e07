//! Nodes as separate processes on loopback: the test binary re-runs itself in "node mode"
//! (a real client with its transport, driven by its own loop), so that peers can converge
//! across processes and one can be killed with SIGKILL in the middle of a sync. Every wait
//! is bounded; children stop when the test creates their stop file, or after 60 s.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, Peer, PeerState};

const NODE_MODE: &str = "SOFTADASTRA_TEST_NODE";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn options(dir: &Path, id: &str, port: u16) -> ClientOptions {
    let wal = dir.join(format!("{id}.wal"));
    let mut o = ClientOptions::persistent(id, wal.to_str().unwrap());
    o.enable_transport = true;
    o.transport_host = "127.0.0.1".into();
    o.transport_port = port;
    o.ack_timeout_ms = 500;
    o.retry_interval_ms = 100;
    o
}

/// Node mode: runs a node until its stop file exists, writing a status file with its size.
fn node_main(dir: &Path) {
    let id = std::env::var("NODE_ID").unwrap();
    let port: u16 = std::env::var("NODE_PORT").unwrap().parse().unwrap();
    let writes: usize = std::env::var("NODE_WRITES").unwrap().parse().unwrap();
    let client = Client::new(options(dir, &id, port));
    client.open().unwrap();
    client.start_transport().unwrap();
    for peer in std::env::var("NODE_PEERS")
        .unwrap()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (peer_id, peer_port) = peer.split_once('@').unwrap();
        client
            .connect(&Peer::local(peer_id, peer_port.parse().unwrap()))
            .unwrap();
    }
    for i in 0..writes {
        client
            .put(&format!("{id}/{i:05}"), b"written in a child process")
            .unwrap();
    }
    let stop = dir.join(format!("{id}.stop"));
    let status = dir.join(format!("{id}.size"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.exists() && Instant::now() < deadline {
        client
            .process_transport_events_wait(256, Duration::from_millis(5))
            .unwrap();
        let state = client.sync_state().unwrap();
        let line = format!("{} {}", client.size().unwrap(), state.acknowledged_count);
        std::fs::write(&status, line).unwrap();
    }
    client.close().unwrap();
}

/// A child node process, killed (and reaped) if the test ends without stopping it.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(test: &str, dir: &Path, id: &str, port: u16, writes: usize, peers: &str) -> NodeProcess {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(NODE_MODE, dir)
        .env("NODE_ID", id)
        .env("NODE_PORT", port.to_string())
        .env("NODE_WRITES", writes.to_string())
        .env("NODE_PEERS", peers)
        .spawn()
        .unwrap();
    NodeProcess(child)
}

/// (size, acknowledged) that the child node last reported.
fn status(dir: &Path, id: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(dir.join(format!("{id}.size"))).unwrap_or_default();
    let mut parts = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn stop(dir: &Path, id: &str, mut node: NodeProcess) {
    let child = &mut node.0;
    std::fs::write(dir.join(format!("{id}.stop")), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{id} exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            panic!("{id} did not stop"); // the guard kills it
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn stored(dir: &Path, id: &str) -> Vec<(String, Vec<u8>)> {
    let client = Client::new(ClientOptions::persistent(
        id,
        dir.join(format!("{id}.wal")).to_str().unwrap(),
    ));
    client.open().unwrap();
    client.list("").unwrap()
}

fn node_dir() -> Option<PathBuf> {
    std::env::var_os(NODE_MODE).map(PathBuf::from)
}

#[test]
fn three_node_processes_converge() {
    if let Some(dir) = node_dir() {
        return node_main(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let test = "three_node_processes_converge";
    common::enroll(&[
        options(d, "node-a", pa),
        options(d, "node-b", pb),
        options(d, "node-c", pc),
    ]);
    let a = spawn(test, d, "node-a", pa, 300, "");
    let b = spawn(test, d, "node-b", pb, 300, &format!("node-a@{pa}"));
    let c = spawn(test, d, "node-c", pc, 300, &format!("node-b@{pb}"));
    let ok = wait_for(Duration::from_secs(40), || {
        ["node-a", "node-b", "node-c"]
            .iter()
            .all(|id| status(d, id) == (900, 300))
    });
    stop(d, "node-a", a);
    stop(d, "node-b", b);
    stop(d, "node-c", c);
    assert!(
        ok,
        "a {:?} b {:?} c {:?}",
        status(d, "node-a"),
        status(d, "node-b"),
        status(d, "node-c")
    );
    let a_data = stored(d, "node-a");
    assert_eq!(a_data.len(), 900);
    assert_eq!(a_data, stored(d, "node-b"));
    assert_eq!(a_data, stored(d, "node-c"));
}

#[test]
fn a_peer_killed_mid_batch_gets_everything_after_its_restart() {
    if let Some(dir) = node_dir() {
        return node_main(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let test = "a_peer_killed_mid_batch_gets_everything_after_its_restart";
    let b_port = free_port();
    let a_port = free_port();
    common::enroll(&[options(d, "node-a", a_port), options(d, "node-b", b_port)]);
    let a = Client::new(options(d, "node-a", a_port));
    a.open().unwrap();
    a.start_transport().unwrap();
    a.connect(&Peer::local("node-b", b_port)).unwrap();
    const N: usize = 20_000;
    let pump_until = |limit: Duration, done: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + limit;
        for _ in 0..1_000_000 {
            a.process_transport_events_wait(256, Duration::from_millis(2))
                .unwrap();
            if done() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
        }
        false
    };
    let mut b = spawn(test, d, "node-b", b_port, 0, "");
    assert!(pump_until(Duration::from_secs(30), &mut || {
        a.peers()
            .unwrap()
            .iter()
            .any(|p| p.state == PeerState::Connected)
    }));
    // A stream of writes flows to b; b is killed while it runs, after part went through.
    let mut killed_at = None;
    for i in 0..N {
        a.put(&format!("k{i:06}"), &[3u8; 256]).unwrap();
        if i % 100 == 0 {
            a.process_transport_events(256).unwrap();
        }
        if killed_at.is_none() && a.sync_state().unwrap().acknowledged_count > 0 {
            b.0.kill().unwrap();
            b.0.wait().unwrap();
            killed_at = Some(i);
        }
    }
    let killed_at = killed_at.expect("b acknowledged something before the end");
    assert!(
        killed_at < N - 1,
        "b was killed while writes were still flowing"
    );
    assert!(pump_until(Duration::from_secs(10), &mut || a
        .peers()
        .unwrap()
        .iter()
        .any(|p| p.state == PeerState::Faulted)));
    a.put("written/while-b-was-down", b"yes").unwrap();
    // b restarts on the same WAL and port; a redials and delivery resumes.
    let b = spawn(test, d, "node-b", b_port, 0, "");
    let ok = pump_until(Duration::from_secs(40), &mut || {
        a.sync_state().unwrap().acknowledged_count == N + 1
    });
    stop(d, "node-b", b);
    assert!(ok, "a: {:?}", a.sync_state().unwrap());
    let b_data = stored(d, "node-b");
    assert_eq!(b_data.len(), N + 1, "every acknowledged write is on b");
    assert_eq!(b_data, a.list("").unwrap());
}
