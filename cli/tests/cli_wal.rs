//! `softadastra wal inspect` and `softadastra wal salvage` through the real binary (issue 14,
//! item 8): the snapshots and log segments with their records; damage named by file, byte
//! offset and what; the good part copied into a new data directory while the source stays
//! byte for byte as it was. Logs are made small (4 KiB segments) so that a few writes span
//! several segments; every child is reaped.

mod cli_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cli_support::{Node, cli, json, stderr, stdout};
use serde_json::Value;

/// A config file with 4 KiB log segments.
fn small_segments(dir: &Path) -> String {
    let path = dir.join("small.toml");
    std::fs::write(&path, "[storage]\nsegment_size = 4096\n").unwrap();
    path.to_str().unwrap().to_string()
}

/// A node `till-w` in `data` whose key k<n> was written by log record n: records 1 to 30
/// in a snapshot, 31 to 150 in several segments after it.
fn make_node(data: &Path, config: &str) {
    let c = ["--config", config];
    json(
        data,
        &[&c[..], &["--node-id", "till-w", "node", "init"]].concat(),
    );
    for i in 1..=150 {
        let key = format!("k{i}");
        let value = format!("value number {i} of the salvage test");
        json(data, &[&c[..], &["store", "put", &key, &value]].concat());
        if i == 30 {
            let compacted = json(data, &[&c[..], &["store", "compact"]].concat());
            assert_eq!(compacted["covers_through"], 30, "{compacted}");
        }
    }
}

/// Every file of a directory, with its bytes.
fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn inspect(data: &Path, extra: &[&str]) -> Value {
    json(data, &[&["wal", "inspect"], extra].concat())
}

/// Flips a byte in the payload of the record numbered `seq`; returns its file and offset.
fn damage_record(data: &Path, seq: u64) -> (String, u64) {
    let listed = inspect(data, &["--records"]);
    for f in listed["files"].as_array().unwrap() {
        for r in f["record_list"].as_array().unwrap() {
            if r["sequence"] == seq {
                let path = f["path"].as_str().unwrap().to_string();
                let offset = r["offset"].as_u64().unwrap();
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[offset as usize + 25] ^= 0x40;
                std::fs::write(&path, bytes).unwrap();
                return (path, offset);
            }
        }
    }
    panic!("no record {seq}: {listed}");
}

#[test]
fn wal_inspect_lists_the_snapshots_segments_and_records_of_a_healthy_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_node(&data, &small_segments(dir.path()));
    let before = files_of(&data);
    let r = inspect(&data, &[]);
    assert_eq!(r["command"], "wal inspect");
    assert_eq!(r["healthy"], true, "{r}");
    assert_eq!(r["damage"], serde_json::json!([]));
    let snapshots = r["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "{r}");
    assert_eq!(snapshots[0]["intact"], true);
    assert_eq!(snapshots[0]["covers_through"], 30);
    assert_eq!(r["snapshot_cut"], 30);
    assert_eq!(
        (r["good_through"].as_u64(), r["last_sequence"].as_u64()),
        (Some(150), Some(150))
    );
    let files = r["files"].as_array().unwrap();
    assert!(files.len() >= 3, "several segments: {r}");
    let counted: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(r["records"].as_u64(), Some(counted));
    assert_eq!(counted, 120, "records 31 to 150 after the snapshot");
    // With --records, every record in order, numbered one after the other.
    let listed = inspect(&data, &["--records"]);
    let numbers: Vec<u64> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["record_list"].as_array().unwrap().clone())
        .map(|r| {
            assert_eq!(r["type"], "store_ops");
            r["sequence"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(numbers, (31..=150).collect::<Vec<_>>());
    let table = stdout(&cli(&data, &["wal", "inspect"]));
    assert!(
        table.contains("No damage found") && table.contains("intact"),
        "{table}"
    );
    assert_eq!(files_of(&data), before, "inspect changes nothing");
}

#[test]
fn wal_inspect_names_the_damaged_file_and_offset_and_salvage_keeps_the_good_part() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_node(&data, &small_segments(dir.path()));
    let fingerprint = json(&data, &["node", "info"])["fingerprint"].clone();
    let (path, offset) = damage_record(&data, 90);
    let source = files_of(&data);

    let r = inspect(&data, &[]);
    assert_eq!(r["healthy"], false, "{r}");
    let damage = r["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1, "{r}");
    assert_eq!(damage[0]["path"], path.as_str());
    assert_eq!(damage[0]["offset"], offset);
    assert!(!damage[0]["what"].as_str().unwrap().is_empty());
    assert_eq!(r["good_through"], 89, "{r}");
    let table = stdout(&cli(&data, &["wal", "inspect"]));
    assert!(
        table.contains(&path) && table.contains(&offset.to_string()),
        "{table}"
    );
    assert!(table.contains("wal salvage"), "{table}");
    // The node itself refuses such a log.
    assert_eq!(cli(&data, &["store", "get", "k1"]).status.code(), Some(1));

    // Salvage: the snapshot and records 31 to 89 into a new data directory.
    let saved = dir.path().join("saved");
    let s = json(&data, &["wal", "salvage", saved.to_str().unwrap()]);
    assert_eq!(s["command"], "wal salvage");
    assert_eq!(s["snapshot_cut"], 30, "{s}");
    assert_eq!(s["records"], 59, "{s}");
    assert_eq!(s["good_through"], 89, "{s}");
    assert_eq!(s["source_last_sequence"], 150, "{s}");
    assert_eq!(s["node_id"], "till-w");
    assert_eq!(s["key_copied"], true);
    assert!(
        s["next_own_seq"].as_u64() > Some(1 << 31),
        "a new incarnation: {s}"
    );
    assert_eq!(s["damage"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(files_of(&data), source, "the source is never changed");

    let value = |key: &str| json(&saved, &["store", "get", key])["value"].clone();
    assert_eq!(value("k1"), "value number 1 of the salvage test");
    assert_eq!(value("k89"), "value number 89 of the salvage test");
    for lost in ["k90", "k150"] {
        let out = cli(&saved, &["store", "get", lost, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{lost}: {}", stdout(&out));
    }
    assert_eq!(
        json(&saved, &["node", "info"])["fingerprint"],
        fingerprint,
        "same key"
    );
    assert_eq!(inspect(&saved, &[])["healthy"], true);
    // A new incarnation: its next write is numbered past anything the source used.
    let put = json(&saved, &["store", "put", "after", "salvage"]);
    assert_eq!(put["status"], "created");

    // Not into a directory that holds anything, unless forced.
    let again = cli(
        &data,
        &["wal", "salvage", saved.to_str().unwrap(), "--json"],
    );
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    let error: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(error["error"]["code"], "already_exists", "{error}");
    let forced = json(
        &data,
        &["wal", "salvage", saved.to_str().unwrap(), "--force"],
    );
    assert!(
        !forced["removed"].as_array().unwrap().is_empty(),
        "{forced}"
    );
    assert_eq!(value("k89"), "value number 89 of the salvage test");
    assert_eq!(files_of(&data), source, "the source is never changed");
}

#[test]
fn wal_salvage_refuses_a_source_a_node_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _node = Node::start(&data, &["--node-id", "till-busy"]);
    json(&data, &["store", "put", "k", "v"]);
    let saved = dir.path().join("saved");
    let out = cli(&data, &["wal", "salvage", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("a node is running on it"),
        "{}",
        stderr(&out)
    );
    assert!(!saved.join("node.wal").exists());
    // Inspecting needs no stop.
    assert_eq!(inspect(&data, &[])["healthy"], true);
}

#[test]
fn wal_salvage_of_a_log_without_a_snapshot_keeps_the_records_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(&data, &["--node-id", "till-n", "node", "init"]);
    for i in 1..=20 {
        json(&data, &["store", "put", &format!("k{i}"), "v"]);
    }
    damage_record(&data, 12);
    let source = files_of(&data);
    let saved = dir.path().join("saved");
    let s = json(&data, &["wal", "salvage", saved.to_str().unwrap()]);
    assert_eq!(
        (s["snapshot_cut"].as_u64(), s["records"].as_u64()),
        (Some(0), Some(11)),
        "{s}"
    );
    assert_eq!(files_of(&data), source);
    assert_eq!(json(&saved, &["store", "get", "k11"])["value"], "v");
    assert_eq!(cli(&saved, &["store", "get", "k12"]).status.code(), Some(1));
    let r = inspect(&saved, &[]);
    assert_eq!(r["healthy"], true, "{r}");
    assert_eq!(r["good_through"], 11, "{r}");
    json(&saved, &["store", "put", "k21", "after"]);
    assert_eq!(json(&saved, &["store", "list"])["count"], 12);
}
