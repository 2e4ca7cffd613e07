//! Memory (issue 16), in one run, each measurement in a child process of its own so that
//! one cannot reuse what another freed:
//! 1. resident bytes per key beyond the key and value bytes, for 1,000,000 keys (16-byte
//!    keys, 100-byte values) in a memory-only client, beside a plain
//!    `BTreeMap<String, Vec<u8>>` of the same data (target: at most 64 bytes);
//! 2. the same with a persistent client (a WAL, no fsync per write);
//! 3. the idle resident size of an open node with an empty store, its transport and
//!    discovery started on loopback (target: at most 8 MB);
//! 4. an offline outbox: 1,000 keys overwritten 1,000 times with no peer, the growth in
//!    resident bytes and the operations the outbox holds.
//!
//! Prints a table; asserts nothing. `cargo bench --bench memory`;
//! `SOFTADASTRA_BENCH_SCALE=10` divides the key count by 10.

use std::process::Command;

use softadastra::{Client, ClientOptions};

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

fn scale() -> usize {
    std::env::var("SOFTADASTRA_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1)
}

/// This process's resident set, in bytes (VmRSS of /proc/self/status).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn key(i: usize) -> String {
    // 16 bytes: "key/" and 12 digits.
    format!("key/{i:012}")
}

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![b'v'; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v
}

/// Runs in the child: the measurement `what`, printing the bytes it measured.
fn child(what: &str, keys: usize) {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let wal = dir.path().join("m.wal");
    let before = rss();
    match what {
        "plain" => {
            let mut map = std::collections::BTreeMap::new();
            for i in 0..keys {
                map.insert(key(i), value(i));
            }
            println!("{}", rss() - before);
            std::hint::black_box(&map);
        }
        "memory-only" | "persistent" => {
            let options = if what == "persistent" {
                ClientOptions::fast("m", wal.to_str().unwrap())
            } else {
                ClientOptions::memory_only("m")
            };
            let client = Client::new(options);
            client.open().unwrap();
            let opened = rss();
            for i in 0..keys {
                client.put(&key(i), &value(i)).unwrap();
            }
            println!("{}", rss() - opened);
            client.close().unwrap();
        }
        "idle" => {
            let mut options = ClientOptions::persistent("idle", wal.to_str().unwrap());
            options.enable_transport = true;
            options.transport_host = "127.0.0.1".into();
            options.ephemeral_transport_port = true;
            options.enable_discovery = true;
            options.discovery_host = "127.0.0.1".into();
            options.ephemeral_discovery_port = true;
            let client = Client::new(options);
            client.open().unwrap();
            client.start_transport().unwrap();
            client.start_discovery().unwrap();
            client.start_background().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
            println!("{}", rss());
            client.close().unwrap();
        }
        "offline" => {
            let client = Client::new(ClientOptions::fast("m", wal.to_str().unwrap()));
            client.open().unwrap();
            let opened = rss();
            for round in 0..1_000 {
                for k in 0..1_000 {
                    client.put(&key(k), &value(round)).unwrap();
                }
            }
            let state = client.sync_state().unwrap();
            println!("{} {}", rss() - opened, state.outbox_size);
            client.close().unwrap();
        }
        other => panic!("unknown measurement {other}"),
    }
}

fn measure(what: &str, keys: usize) -> Vec<u64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", what, &keys.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1], args[at + 2].parse().unwrap());
        return;
    }
    let keys = 1_000_000 / scale();
    let data = (KEY_BYTES + VALUE_BYTES) as f64;
    let per_key = |bytes: u64| bytes as f64 / keys as f64 - data;
    let plain = per_key(measure("plain", keys)[0]);
    let memory_only = per_key(measure("memory-only", keys)[0]);
    let persistent = per_key(measure("persistent", keys)[0]);
    let idle = measure("idle", 0)[0] as f64 / 1e6;
    let offline = measure("offline", 0);

    println!();
    println!("| measurement | result | reference | target |");
    println!("|---|---|---|---|");
    println!(
        "| overhead per key, {keys} keys (16-byte keys, 100-byte values), memory-only client | {memory_only:.0} B | plain BTreeMap<String, Vec<u8>>: {plain:.0} B | <= 64 B |"
    );
    println!(
        "| overhead per key, {keys} keys, persistent client (fast) | {persistent:.0} B | plain BTreeMap: {plain:.0} B | <= 64 B |"
    );
    println!(
        "| idle RSS, open node, empty store, transport and discovery on | {idle:.1} MB | | <= 8 MB |"
    );
    println!(
        "| offline outbox: 1,000 keys x 1,000 overwrites, no peer | +{:.1} MB RSS, outbox_size {} | | small multiple of 1,000 entries |",
        offline[0] as f64 / 1e6,
        offline[1]
    );
}
