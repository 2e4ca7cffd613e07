//! Sync engine throughput: local submit, batch, remote apply and ACK through two engines in
//! memory (memory-only stores, no network), in one run. Prints a table; asserts nothing
//! about time. Run with `cargo bench --bench sync`.

use std::time::Instant;

use softadastra::store::{Store, StoreOptions};
use softadastra::sync::{SyncConfig, SyncEngine};

const OPS: u64 = 500_000;

fn node(id: &str, config: &SyncConfig) -> (Store, SyncEngine) {
    let store = Store::open(&StoreOptions::new(id, None, false)).unwrap();
    (store, SyncEngine::new(id, config.clone()))
}

/// Returns ops/s for `OPS` operations with the given batch size.
fn run(batch_size: usize) -> f64 {
    let config = SyncConfig {
        batch_size,
        ..SyncConfig::default()
    };
    let (a_store, mut a) = node("node-a", &config);
    let (b_store, mut b) = node("node-b", &config);
    let value = [0x61u8; 100];
    let keys: Vec<String> = (0..OPS).map(|i| format!("key-{i:012}")).collect();
    let start = Instant::now();
    let mut now = 0;
    for (i, key) in keys.iter().enumerate() {
        let stamp = a_store.put(key, &value).unwrap();
        a.record_local(&a_store, stamp, [key.as_str()]);
        if (i + 1) % batch_size == 0 || i + 1 == keys.len() {
            now += 1;
            while let Some(batch) = a.next_batch(&a_store, now) {
                let ack = b.receive_batch(&b_store, &batch).unwrap();
                a.receive_ack(&a_store, &ack).unwrap();
            }
            a.prune_completed();
        }
    }
    let rate = OPS as f64 / start.elapsed().as_secs_f64();
    assert_eq!(b_store.len() as u64, OPS);
    assert_eq!(a.state(&a_store).outbox_size, 0);
    rate
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let default = run(64);
    let large = run(512);
    println!();
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    println!(
        "| submit + batch + remote apply + ACK, 2 engines in memory, batch 64 | {default:.0} ops/s | >= 500,000 ops/s |"
    );
    println!("| same, batch 512 | {large:.0} ops/s | |");
}
