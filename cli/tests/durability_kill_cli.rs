//! Promise 1 for the command: `softadastra node start` runs on a temporary data directory;
//! a thread writes with `store put` / `store remove` (through the node's control socket) and
//! counts a write acknowledged when the command exits 0. The node is killed with SIGKILL at
//! a random moment; then, with no node running, `store get` (which opens the data directory
//! itself) must show every acknowledged write, and the next start must succeed. (The library's half of the promise is
//! tests/durability_kill.rs.) Bounded in CI; a long run is
//! `SOFTADASTRA_KILL_CLI_ROUNDS=1000 cargo test --release -p softadastra-cli --test
//! durability_kill_cli -- --nocapture`.

mod cli_support;

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{Rng, env_u64, kill_seed};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cli_support::{Node, cli, stderr};

const CLI_KEYS: u64 = 8;

/// One write of the CLI writer: `Some(value)` a put, `None` a remove.
type CliWrite = (String, Option<String>);

/// The CLI writer: sequential `store put` / `store remove` until `stop`, a failure, 300
/// writes or 15 s. Returns the acknowledged writes in order and the failed one, if any.
fn cli_writer(
    data: &Path,
    round: u64,
    mut rng: Rng,
    stop: &AtomicBool,
) -> (Vec<CliWrite>, Option<(CliWrite, String)>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut acknowledged = Vec::new();
    for i in 0..300 {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let key = format!("cli/k{}", rng.below(CLI_KEYS));
        let write = if rng.below(100) < 20 {
            (key, None)
        } else {
            let pad = "x".repeat(rng.below(300) as usize);
            (key, Some(format!("r{round}.w{i}.{pad}")))
        };
        let out = match &write.1 {
            Some(v) => cli(data, &["store", "put", &write.0, v]),
            None => cli(data, &["store", "remove", &write.0]),
        };
        if out.status.code() == Some(0) {
            acknowledged.push(write);
        } else {
            let why = format!("{}: {}", out.status, stderr(&out).trim())
                .replace(&data.display().to_string(), "<data>");
            return (acknowledged, Some((write, why)));
        }
    }
    (acknowledged, None)
}

type CliState = BTreeMap<String, String>;

fn apply_cli(state: &mut CliState, (key, value): &CliWrite) {
    match value {
        Some(v) => state.insert(key.clone(), v.clone()),
        None => state.remove(key),
    };
}

/// The store as `store get` sees it with no node running; every get must succeed or say
/// the key is not found.
fn cli_observe(data: &Path) -> Result<CliState, String> {
    let mut state = CliState::new();
    for k in 0..CLI_KEYS {
        let key = format!("cli/k{k}");
        let out = cli(data, &["store", "get", &key, "--json"]);
        match out.status.code() {
            Some(0) => {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| format!("store get {key}: {e}"))?;
                let value = v["value"].as_str().ok_or(format!("store get {key}: {v}"))?;
                state.insert(key, value.to_string());
            }
            Some(1) if stderr(&out).contains("key not found") => {}
            _ => {
                return Err(format!(
                    "store get {key} after the kill failed: {}: {}",
                    out.status,
                    stderr(&out)
                ));
            }
        }
    }
    Ok(state)
}

#[test]
fn cli_node_killed_at_random_moments_loses_no_acknowledged_write() {
    let test = "cli_node_killed_at_random_moments_loses_no_acknowledged_write";
    let seed = kill_seed(test);
    let rounds = env_u64("SOFTADASTRA_KILL_CLI_ROUNDS").unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = Rng(seed);
    let mut model = CliState::new();
    let (mut acknowledged, mut failed_kept, mut failed_absent) = (0, 0, 0);
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    let limit = Duration::from_secs(60 + rounds * 5);
    for round in 0..rounds {
        let fail = |e: String| -> ! {
            panic!(
                "seed {seed}, round {round}: {e}\nreplay: SOFTADASTRA_KILL_SEED={seed} \
                 SOFTADASTRA_KILL_CLI_ROUNDS={rounds} cargo test --release -p softadastra-cli \
                 --test durability_kill_cli -- --nocapture {test}"
            )
        };
        let delay = Duration::from_millis(rng.between(5, 300));
        let writer_rng = Rng(rng.next());
        // Starting the node replays the WAL the previous kill left: it must succeed.
        let mut node = Node::start(&data, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (data, stop) = (data.clone(), stop.clone());
            std::thread::spawn(move || cli_writer(&data, round, writer_rng, &stop))
        };
        std::thread::sleep(delay);
        let exit = node.stop_with(libc::SIGKILL);
        stop.store(true, Ordering::SeqCst);
        let (acked, failed) = writer.join().unwrap();
        if exit.is_some() {
            fail(format!(
                "the node exited by itself ({exit:?}) before the kill\n{}",
                node.log()
            ));
        }
        let mut without = model.clone();
        for w in &acked {
            apply_cli(&mut without, w);
        }
        let mut with = without.clone();
        if let Some((w, _)) = &failed {
            apply_cli(&mut with, w);
        }
        let seen = cli_observe(&data).unwrap_or_else(|e| fail(e));
        if seen == with && with != without {
            failed_kept += 1;
        } else if seen == without && with != without {
            failed_absent += 1;
        } else if seen != without {
            fail(format!(
                "{} acknowledged writes, failed {failed:?}\n  expected {without:?}\n  \
                 found {seen:?}\n{}",
                acked.len(),
                node.log()
            ));
        }
        acknowledged += acked.len();
        if let Some((_, why)) = &failed {
            *failures.entry(why.clone()).or_default() += 1;
        }
        model = seen;
        if (round + 1) % 100 == 0 {
            println!(
                "round {}: {acknowledged} acknowledged, failed write found {failed_kept} / \
                 absent {failed_absent}",
                round + 1
            );
        }
        assert!(
            started.elapsed() < limit,
            "over {limit:?} after {round} rounds"
        );
    }
    println!(
        "cli: seed {seed}: {rounds} rounds in {:.1} s, {acknowledged} acknowledged writes all \
         found, the write that failed at the kill found {failed_kept} times and absent \
         {failed_absent} times; failures at the kill: {failures:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds < 4 || acknowledged > 0,
        "no write was ever acknowledged: the kills came too early"
    );
}
