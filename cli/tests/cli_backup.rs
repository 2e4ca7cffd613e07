//! `softadastra backup DIR`, `backup verify DIR` and `restore DIR --data-dir D [--force]`:
//! a round trip through separate invocations, a backup made by the running node (through
//! its control socket, with a relative DIR), damage named by verify, and the refusals of
//! restore (a non-empty data directory without --force, a running node).

mod cli_support;

use cli_support::{Node, cli, command, json, stderr, stdout};

#[test]
fn a_backup_verifies_and_restores_into_a_new_data_directory_as_the_same_node() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for i in 0..5 {
        assert_eq!(
            cli(&a, &["store", "put", &format!("k{i}"), "v"])
                .status
                .code(),
            Some(0)
        );
    }
    let backup = dir.path().join("backup");
    let made = json(&a, &["backup", backup.to_str().unwrap()]);
    assert_eq!(made["command"], "backup");
    assert_eq!(made["node_running"], false);
    assert!(made["covers_through"].as_u64().unwrap() >= 5, "{made}");
    let verified = json(&a, &["backup", "verify", backup.to_str().unwrap()]);
    assert_eq!(verified["command"], "backup verify");
    assert_eq!(verified["verified"], true);
    let info_a = json(&a, &["node", "info"]);
    assert_eq!(verified["node_id"], info_a["node_id"]);
    assert_eq!(verified["fingerprint"], info_a["fingerprint"]);
    let kinds: Vec<&str> = verified["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"snapshot") && kinds.contains(&"key"),
        "{kinds:?}"
    );

    let restored = json(&b, &["restore", backup.to_str().unwrap()]);
    assert_eq!(restored["command"], "restore");
    assert_eq!(restored["node_id"], info_a["node_id"]);
    assert_eq!(restored["key_restored"], true);
    assert!(
        restored["next_own_seq"].as_u64().unwrap() > 1 << 31,
        "a new incarnation: {restored}"
    );
    // B is node A: same id (stored in B), same key, same data.
    let info_b = json(&b, &["node", "info"]);
    assert_eq!(info_b["node_id"], info_a["node_id"]);
    assert_eq!(info_b["fingerprint"], info_a["fingerprint"]);
    assert_eq!(json(&b, &["store", "list"])["count"], 5);
    assert!(stdout(&cli(&b, &["store", "get", "k3"])).contains('v'));
}

#[test]
fn restore_refuses_a_data_directory_that_is_not_empty_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    assert_eq!(
        cli(&a, &["store", "put", "kept", "1"]).status.code(),
        Some(0)
    );
    let backup = dir.path().join("backup");
    json(&a, &["backup", backup.to_str().unwrap()]);
    assert_eq!(
        cli(&a, &["store", "put", "later", "2"]).status.code(),
        Some(0)
    );
    std::fs::write(a.join("notes.txt"), b"not the node's").unwrap();

    let refused = cli(&a, &["restore", backup.to_str().unwrap(), "--json"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let doc: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "already_exists");
    assert!(stdout(&cli(&a, &["store", "get", "later"])).contains('2'));

    let forced = json(&a, &["restore", backup.to_str().unwrap(), "--force"]);
    assert!(
        !forced["removed"].as_array().unwrap().is_empty(),
        "{forced}"
    );
    assert_eq!(cli(&a, &["store", "get", "later"]).status.code(), Some(1));
    assert!(stdout(&cli(&a, &["store", "get", "kept"])).contains('1'));
    assert_eq!(
        std::fs::read(a.join("notes.txt")).unwrap(),
        b"not the node's",
        "only the node's files are replaced"
    );
}

#[test]
fn verify_names_the_damaged_or_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    assert_eq!(cli(&a, &["store", "put", "k", "v"]).status.code(), Some(0));
    let backup = dir.path().join("backup");
    json(&a, &["backup", backup.to_str().unwrap()]);
    let snapshot = backup.join("snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[60] ^= 0x10;
    std::fs::write(&snapshot, &bytes).unwrap();
    let damaged = cli(&a, &["backup", "verify", backup.to_str().unwrap()]);
    assert_eq!(damaged.status.code(), Some(1));
    assert!(
        stderr(&damaged).contains(&snapshot.display().to_string()),
        "{}",
        stderr(&damaged)
    );
    // A damaged backup is never restored.
    let b = dir.path().join("b");
    let refused = cli(&b, &["restore", backup.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(!b.join("node.wal").exists());
    std::fs::remove_file(backup.join("MANIFEST")).unwrap();
    let unfinished = cli(&a, &["backup", "verify", backup.to_str().unwrap()]);
    assert_eq!(unfinished.status.code(), Some(1));
    assert!(
        stderr(&unfinished).contains("MANIFEST is missing"),
        "{}",
        stderr(&unfinished)
    );
    let usage = cli(&a, &["backup"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

#[test]
fn the_running_node_makes_the_backup_and_restore_refuses_to_run_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &[]);
    assert_eq!(
        cli(&data, &["store", "put", "k", "v"]).status.code(),
        Some(0)
    );
    // A relative directory is the caller's, not the node's working directory's.
    let out = command()
        .current_dir(dir.path())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
            "backup",
            "rel",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["node_running"], true, "{made}");
    assert!(dir.path().join("rel").join("MANIFEST").exists());
    let refused = cli(
        &data,
        &[
            "restore",
            dir.path().join("rel").to_str().unwrap(),
            "--force",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("running"), "{}", stderr(&refused));
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    let verified = json(
        &data,
        &["backup", "verify", dir.path().join("rel").to_str().unwrap()],
    );
    assert_eq!(verified["verified"], true);
}
