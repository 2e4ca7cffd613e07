//! Foundation benchmark: durable and fast puts, group commit, and replay, all in one run so
//! that the ratios hold on a noisy machine. Prints a table; asserts nothing about time.
//!
//! Run with `cargo bench --bench foundation`. Files go to `$SOFTADASTRA_BENCH_DIR` (default:
//! a temporary directory under `target/`), which should be on the disk you care about.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions};

const MEASURE: Duration = Duration::from_secs(3);
const VALUE: [u8; 100] = [0x61; 100];

fn key(i: u64) -> String {
    format!("key-{i:012}") // 16 bytes
}

/// 128-byte pwrite + fdatasync in a loop on a preallocated, zero-filled file: what the disk
/// allows a single synchronous writer.
fn raw_sync_loop(dir: &Path) -> f64 {
    let path = dir.join("raw.bin");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for i in 0..64u64 {
        file.write_all_at(&zeros, i << 20).unwrap();
    }
    file.sync_all().unwrap();
    let record = [0x5au8; 128];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MEASURE {
        file.write_all_at(&record, n * 128).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn open_client(options: ClientOptions) -> Client {
    let client = Client::new(options);
    client.open().unwrap();
    client
}

fn durable_puts(dir: &Path, threads: u64) -> f64 {
    let path = dir.join(format!("durable-{threads}.wal"));
    let client = open_client(ClientOptions::persistent("bench", path.to_str().unwrap()));
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let client = &client;
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < MEASURE {
                        client.put(&key(t << 40 | n), &VALUE).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn fast_puts(path: &Path, count: u64) -> f64 {
    let client = open_client(ClientOptions::fast("bench", path.to_str().unwrap()));
    let start = Instant::now();
    for i in 0..count {
        client.put(&key(i), &VALUE).unwrap();
    }
    client.flush().unwrap();
    let rate = count as f64 / start.elapsed().as_secs_f64();
    client.close().unwrap();
    rate
}

fn replay(path: &Path, count: u64) -> (f64, f64) {
    let client = Client::new(ClientOptions::persistent("bench", path.to_str().unwrap()));
    let start = Instant::now();
    client.open().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(client.size().unwrap() as u64, count);
    (elapsed, count as f64 / elapsed)
}

fn bench_dir() -> (tempfile::TempDir, PathBuf) {
    let base = std::env::var_os("SOFTADASTRA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to test here
    }
    let (_guard, dir) = bench_dir();
    println!("benchmark directory: {}", dir.display());
    let raw = raw_sync_loop(&dir);
    let single = durable_puts(&dir, 1);
    let eight = durable_puts(&dir, 8);
    let sixty_four = durable_puts(&dir, 64);
    let records = 1_000_000;
    let wal = dir.join("fast.wal");
    let fast = fast_puts(&wal, records);
    let (replay_s, replay_rate) = replay(&wal, records);

    println!();
    println!("| measurement | result | target | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| raw 128-byte pwrite+fdatasync loop, preallocated file | {raw:.0} /s | reference | |"
    );
    println!(
        "| durable put, 1 writer | {single:.0} /s | >= 0.8x raw | {:.2}x raw |",
        single / raw
    );
    println!(
        "| durable put, 8 writers (group commit) | {eight:.0} /s | >= 20x 1 writer | {:.1}x 1 writer |",
        eight / single
    );
    println!(
        "| durable put, 64 writers (group commit) | {sixty_four:.0} /s | >= 10x 1 writer | {:.1}x 1 writer |",
        sixty_four / single
    );
    println!(
        "| fast put (auto_flush off, 16 B keys, 100 B values) | {fast:.0} /s | >= 1,000,000 /s | |"
    );
    println!(
        "| open + replay of {records} records | {replay_s:.3} s = {replay_rate:.0} records/s | >= 1,000,000 /s | |"
    );
}
