//! Durability promise 4 for backups: `softadastra backup` and `softadastra restore` killed
//! with SIGKILL at random moments. The restore writes the node's files (a marker, the log,
//! the key, the snapshot) with plain files, not through the storage seam the power-cut
//! tests use, so it is tested here, on the real binary and real files.
//!
//! - A backup killed at any moment is never taken for a complete one: `backup verify`
//!   fails on it, or it passes and the backup restores every key of the node. The node
//!   backed up keeps all its data.
//! - A restore killed at any moment, into a new data directory or over a restored node,
//!   and then again over what that left, leaves a new data directory empty (killed before
//!   it wrote anything), or a data directory that refuses to open saying to run the
//!   restore again, or one that opens with exactly the backup's data: never a partial
//!   node, nor a new empty one made under another id where the restore began (which would
//!   make the restore refuse to finish). Either way `restore --force` then finishes it,
//!   and the node holds the backup's data.
//!
//! The kill delays are spread over the duration of an uninterrupted run, measured first,
//! so that they land in every phase (start-up, the snapshot, the log, the key, the
//! manifest or the marker). Bounded in CI; a long run is
//! `SOFTADASTRA_BACKUP_KILL_ROUNDS=500 cargo test --release -p softadastra-cli --test
//! backup_kill_cli -- --nocapture`.

mod cli_support;

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{Rng, env_u64, kill_seed};

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cli_support::{cli, command, json, stderr, stdout, wait_for};

/// The node's data as `store list` shows it: (key, value) in key order.
fn entries(data: &Path) -> Result<Vec<(String, String)>, String> {
    let out = cli(data, &["store", "list", "--json"]);
    if out.status.code() != Some(0) {
        return Err(format!("{}: {}", out.status, stderr(&out).trim()));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", stdout(&out)))?;
    Ok(doc["entries"]
        .as_array()
        .ok_or(format!("no entries: {doc}"))?
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap_or_default().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Whether the data directory `data` is missing or empty.
fn is_empty(data: &Path) -> bool {
    std::fs::read_dir(data).map_or(true, |mut files| files.next().is_none())
}

/// A node with data worth a few megabytes of snapshot, written through the command.
fn source_node(data: &Path) -> Vec<(String, String)> {
    for i in 0..48 {
        let value = format!("{i}-").repeat(20_000);
        let out = cli(data, &["store", "put", &format!("k{i:02}"), &value]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = cli(data, &["store", "remove", "k07"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = entries(data).unwrap();
    assert_eq!(all.len(), 47);
    all
}

/// Starts `softadastra --data-dir <data> <args>`.
fn spawn(data: &Path, args: &[&str]) -> Child {
    command()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs")
}

/// Kills `child` with SIGKILL after `delay` unless it exited before; whether it ran to
/// its end (exit code 0) before the kill.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    std::thread::sleep(delay);
    let finished = matches!(child.try_wait(), Ok(Some(status)) if status.success());
    let _ = child.kill();
    let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
    assert!(status.is_some(), "the killed command did not exit");
    finished
}

/// How long `args` takes, run to its end on `data` (the kill delays are spread over it).
fn duration_of(data: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = command()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    started.elapsed()
}

#[test]
fn a_backup_killed_at_any_moment_never_verifies_unless_it_restores_whole() {
    let test = "a_backup_killed_at_any_moment_never_verifies_unless_it_restores_whole";
    let seed = kill_seed(test);
    let rounds = env_u64("SOFTADASTRA_BACKUP_KILL_ROUNDS").unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let expected = source_node(&source);
    let full = duration_of(
        &source,
        &["backup", dir.path().join("timed").to_str().unwrap()],
    );
    let mut rng = Rng(seed);
    let (mut refused, mut whole, mut finished) = (0, 0, 0);
    for round in 0..rounds {
        let fail = |e: String| -> ! {
            panic!(
                "seed {seed}, round {round}: {e}\nreplay: SOFTADASTRA_KILL_SEED={seed} \
                 SOFTADASTRA_BACKUP_KILL_ROUNDS={rounds} cargo test -p softadastra-cli --test \
                 backup_kill_cli -- --nocapture {test}"
            )
        };
        let backup = dir.path().join(format!("backup-{round}"));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 5 / 4 + 1));
        let ended = kill_after(spawn(&source, &["backup", backup.to_str().unwrap()]), delay);
        finished += u64::from(ended);
        let verify = cli(&source, &["backup", "verify", backup.to_str().unwrap()]);
        match verify.status.code() {
            Some(0) => {
                // Complete: it must restore every key.
                let target = dir.path().join(format!("restored-{round}"));
                let out = cli(&target, &["restore", backup.to_str().unwrap()]);
                if out.status.code() != Some(0) {
                    fail(format!(
                        "a backup that verifies does not restore: {}",
                        stderr(&out)
                    ));
                }
                match entries(&target) {
                    Ok(found) if found == expected => whole += 1,
                    Ok(found) => fail(format!(
                        "a backup that verifies restores {} keys of {}",
                        found.len(),
                        expected.len()
                    )),
                    Err(e) => fail(format!("the restored node does not open: {e}")),
                }
            }
            _ if ended => fail(format!(
                "a backup that ran to its end does not verify: {}",
                stderr(&verify)
            )),
            Some(1) => refused += 1,
            other => fail(format!(
                "backup verify exited with {other:?}: {}",
                stderr(&verify)
            )),
        }
        match entries(&source) {
            Ok(found) if found == expected => {}
            Ok(found) => fail(format!(
                "the node backed up holds {} keys of {}",
                found.len(),
                expected.len()
            )),
            Err(e) => fail(format!("the node backed up does not open: {e}")),
        }
    }
    println!(
        "backup: seed {seed}, {rounds} kills over {full:?}: {refused} refused by verify, \
         {whole} verified and restored whole ({finished} of them had finished)"
    );
}

#[test]
fn a_restore_killed_at_any_moment_never_leaves_a_partial_node() {
    let test = "a_restore_killed_at_any_moment_never_leaves_a_partial_node";
    let seed = kill_seed(test);
    let rounds = env_u64("SOFTADASTRA_BACKUP_KILL_ROUNDS").unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let expected = source_node(&source);
    let backup = dir.path().join("backup");
    json(&source, &["backup", backup.to_str().unwrap()]);
    let bk = backup.to_str().unwrap();
    let full = duration_of(&dir.path().join("timed"), &["restore", bk]);
    let mut rng = Rng(seed);
    let (mut untouched, mut refused, mut whole) = (0, 0, 0);
    let mut target = dir.path().join("target-0");
    for round in 0..rounds {
        let fail = |e: String| -> ! {
            panic!(
                "seed {seed}, round {round}: {e}\nreplay: SOFTADASTRA_KILL_SEED={seed} \
                 SOFTADASTRA_BACKUP_KILL_ROUNDS={rounds} cargo test -p softadastra-cli --test \
                 backup_kill_cli -- --nocapture {test}"
            )
        };
        // Even rounds restore into a new data directory, odd ones over the node the round
        // before restored; each kills two restores in a row, the second over what the
        // first left.
        if round % 2 == 0 {
            target = dir.path().join(format!("target-{round}"));
        }
        for _ in 0..2 {
            let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 5 / 4 + 1));
            kill_after(spawn(&target, &["restore", bk, "--force"]), delay);
            if is_empty(&target) {
                // Killed before it wrote anything into a new data directory: it is as it
                // was, and opening it would make a new node there (as in any empty one).
                untouched += 1;
                continue;
            }
            match entries(&target) {
                Ok(found) if found == expected => whole += 1,
                Ok(found) => fail(format!(
                    "the node opened after a killed restore with {} keys of {}",
                    found.len(),
                    expected.len()
                )),
                Err(e) if e.contains("run the restore again (with --force)") => refused += 1,
                Err(e) => fail(format!(
                    "after a killed restore the node neither opens whole nor says to run \
                     the restore again: {e}"
                )),
            }
        }
        let out = cli(&target, &["restore", bk, "--force"]);
        if out.status.code() != Some(0) {
            fail(format!(
                "restore --force does not finish the killed restore: {}",
                stderr(&out)
            ));
        }
        match entries(&target) {
            Ok(found) if found == expected => {}
            other => fail(format!("after restore --force: {other:?}")),
        }
    }
    println!(
        "restore: seed {seed}, {} kills over {full:?}: {untouched} before it wrote anything \
         (new directory still empty), {refused} refused to open, {whole} opened whole",
        rounds * 2
    );
}
