//! Bounded storage (issue 13), in one run, ratios against references measured in the same
//! run:
//! 1. disk use after 10,000,000 overwrites spread over 100,000 keys (100-byte values),
//!    automatic compaction on, against the live bytes (target: at most 2x plus two
//!    segments);
//! 2. open time of a node holding 1,000,000 live keys each written 10 times (compacted),
//!    against the open time of a fresh log of 1,000,000 records (target: at most 1.5x);
//! 3. durable put p99 while compactions of that store run back to back (from the first
//!    one's start until two have run whole), against p99 with none (target: at most 2x);
//! 4. the snapshot write rate beside the disk's raw sequential write rate.
//!
//! Prints a table; asserts nothing about time. `cargo bench --bench storage`;
//! `SOFTADASTRA_BENCH_SCALE=10` divides every count by 10 for a quick run;
//! `SOFTADASTRA_BENCH_LOG=1` prints the library's log (compactions) and
//! `SOFTADASTRA_BENCH_LIST=1` the files left after the overwrites.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, WriteBatch};

/// Prints the library's log lines (info and up) to stderr, for looking into a run.
fn env_logger_like() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record<'_>) {
            eprintln!("{} {}", r.level(), r.args());
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

fn scale() -> u64 {
    std::env::var("SOFTADASTRA_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1)
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap()
}

fn fast(dir: &Path, id: &str) -> ClientOptions {
    let mut o = ClientOptions::persistent(id, dir.join(format!("{id}.wal")).to_str().unwrap());
    o.auto_flush = false;
    o
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Writes `rounds` values to each of `keys` keys (100 bytes each), in batches of 1,000.
fn overwrite(client: &Client, keys: u64, rounds: u64) {
    let value = [0x61u8; 100];
    let mut batch = WriteBatch::new();
    for _ in 0..rounds {
        for key in 0..keys {
            batch.put(format!("key/{key:08}"), value.to_vec());
            if batch.len() == 1_000 {
                client.write_batch(&batch).unwrap();
                batch = WriteBatch::new();
            }
        }
        // Ticks run automatic compaction, as a node's loop does.
        client.tick(true).unwrap();
    }
    if !batch.is_empty() {
        client.write_batch(&batch).unwrap();
    }
}

fn open_time(options: &ClientOptions) -> Duration {
    let client = Client::new(options.clone());
    let t = Instant::now();
    client.open().unwrap();
    let took = t.elapsed();
    client.close().unwrap();
    took
}

/// Latencies of durable puts, one after another, in microseconds: at least `at_least` of
/// them, and more until `enough` says so (at most 200,000).
fn put_latencies_us(
    client: &Client,
    label: &str,
    enough: impl Fn() -> bool,
    at_least: usize,
) -> Vec<f64> {
    let mut samples = Vec::new();
    while samples.len() < 200_000 && (samples.len() < at_least || !enough()) {
        let t = Instant::now();
        let key = format!("{label}/{:06}", samples.len());
        client.put(&key, b"durable").unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples
}

fn p99(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() * 99 / 100]
}

/// MB/s of a 256 MiB sequential write, synced, in 1 MiB writes.
fn raw_write_rate(dir: &Path) -> f64 {
    use std::io::Write;
    let path = dir.join("raw.bin");
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..256 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    let rate = 256.0 / t.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    rate
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let s = scale();
    if std::env::var_os("SOFTADASTRA_BENCH_LOG").is_some() {
        env_logger_like();
    }

    // 1. Disk use after many overwrites, automatic compaction on.
    let dir = bench_dir();
    let keys = 100_000 / s;
    let client = Client::new(fast(dir.path(), "overwrites"));
    client.open().unwrap();
    overwrite(&client, keys, 100);
    client.close().unwrap();
    let live = keys * (12 + 100);
    let disk = dir_bytes(dir.path());
    if std::env::var_os("SOFTADASTRA_BENCH_LIST").is_some() {
        for e in std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
        {
            println!(
                "{} {}",
                e.file_name().to_string_lossy(),
                e.metadata().unwrap().len()
            );
        }
    }
    let segment = ClientOptions::default().wal_segment_size;

    // 2. Open time: 1 M keys written 10 times and compacted, against a fresh log of 1 M.
    let dir2 = bench_dir();
    let million = 1_000_000 / s;
    let compacted = fast(dir2.path(), "compacted");
    let client = Client::new(compacted.clone());
    client.open().unwrap();
    overwrite(&client, million, 10);
    client.compact().unwrap();
    client.close().unwrap();
    let fresh = fast(dir2.path(), "fresh");
    let client = Client::new(fresh.clone());
    client.open().unwrap();
    overwrite(&client, million, 1);
    client.close().unwrap();
    let (t_compacted, t_fresh) = (open_time(&compacted), open_time(&fresh));

    // 3. Durable put p99 with and without a compaction running.
    let mut durable = compacted.clone();
    durable.auto_flush = true;
    durable.auto_compact = false;
    let client = Arc::new(Client::new(durable));
    client.open().unwrap();
    let idle_p99 = p99(put_latencies_us(&client, "idle", || false, 2_000));
    // Puts are measured from the first compaction's start until two have run whole, so
    // every step (the cut, the entries, the final sync, the read-back, the deletions) is
    // in the sample.
    let done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let snapshot_rate = {
        let (compacting, stop, count) = (client.clone(), done.clone(), completed.clone());
        let compactor = std::thread::spawn(move || {
            let mut rates = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let report = compacting.compact().unwrap();
                rates.push(report.snapshot_bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
                count.fetch_add(1, Ordering::Relaxed);
            }
            rates.iter().sum::<f64>() / rates.len().max(1) as f64
        });
        let two_whole = || completed.load(Ordering::Relaxed) >= 2;
        let busy = put_latencies_us(&client, "busy", two_whole, 2_000);
        done.store(true, Ordering::Relaxed);
        let rate = compactor.join().unwrap();
        (p99(busy), rate)
    };
    let (busy_p99, rate) = snapshot_rate;
    client.close().unwrap();
    let raw = raw_write_rate(dir2.path());

    println!();
    println!("| measurement | result | reference | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| disk after {} overwrites of {keys} keys (100-byte values), auto compaction | {:.1} MB | live {:.1} MB + 2 segments ({} MB) | {:.2} x live | <= 2 x live + 2 segments |",
        keys * 100,
        disk as f64 / 1e6,
        live as f64 / 1e6,
        2 * segment / 1_000_000,
        disk as f64 / live as f64
    );
    println!(
        "| open, {million} live keys written 10 times (compacted) | {:.0} ms | fresh log of {million} records: {:.0} ms | {:.2} | <= 1.5 |",
        t_compacted.as_secs_f64() * 1e3,
        t_fresh.as_secs_f64() * 1e3,
        t_compacted.as_secs_f64() / t_fresh.as_secs_f64()
    );
    println!(
        "| durable put p99 while compactions run (two whole, back to back) | {busy_p99:.0} us | no compaction: {idle_p99:.0} us | {:.2} | <= 2 |",
        busy_p99 / idle_p99
    );
    println!(
        "| snapshot write rate | {rate:.0} MB/s | raw sequential write, synced: {raw:.0} MB/s | {:.2} | |",
        rate / raw
    );
}
