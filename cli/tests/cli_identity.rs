//! The node id and the data directory (issue 14, item 1), driving the real binary: an id
//! given by flag, environment or config file is bound to the data directory on first use
//! and is the node's from then on; another id is refused (exit 2, naming both) and leaves
//! the data as it was, unless `--change-node-id` asks for the change; commands that only
//! read never create a data directory, node id or WAL. And a new data directory is
//! private to its owner (item 7): the directory 0700, the node's files 0600.
//! Every node runs on 127.0.0.1 on a free port, every wait is bounded, every child reaped.

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cli_support::{Node, cli, command, json, stderr};

/// The names in `dir`, sorted; `None` when it does not exist.
fn listing(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

/// Every command that only reads.
const READS: &[&[&str]] = &[
    &["status"],
    &["node", "info"],
    &["store", "get", "app/name"],
    &["store", "list"],
    &["sync", "status"],
    &["peers"],
];

fn stored_id(data: &Path) -> String {
    std::fs::read_to_string(data.join("node-id"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn reads_where_there_is_no_node_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in READS {
        for extra in [&[][..], &["--node-id", "till-01"]] {
            let all: Vec<&str> = args.iter().chain(extra).copied().collect();
            let out = cli(&missing, &all);
            assert_eq!(out.status.code(), Some(1), "{all:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("no node in data directory")
                    && stderr(&out).contains("does not exist"),
                "{all:?}: {}",
                stderr(&out)
            );
            assert_eq!(listing(&missing), None, "{all:?} created the directory");
            let out = cli(&empty, &all);
            assert_eq!(out.status.code(), Some(1), "{all:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("it has no WAL"),
                "{all:?}: {}",
                stderr(&out)
            );
            assert_eq!(listing(&empty), Some(vec![]), "{all:?} wrote into it");
        }
    }
    // With --json, the error document says so too.
    let out = cli(&missing, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "not_found", "{doc}");
    assert_eq!(doc["error"]["exit"], 1, "{doc}");
}

#[test]
fn a_node_id_from_flag_environment_or_config_file_is_bound_to_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("softadastra.toml");
    std::fs::write(&config, "node_id = \"till-file\"\n").unwrap();
    for (source, id) in [
        ("flag", "till-flag"),
        ("environment", "till-env"),
        ("file", "till-file"),
    ] {
        let data = dir.path().join(source);
        let mut put = command();
        put.arg("--data-dir").arg(&data);
        match source {
            "flag" => put.args(["--node-id", id]),
            "environment" => put.env("SOFTADASTRA_NODE_ID", id),
            _ => put.arg("--config").arg(&config),
        };
        let out = put
            .args(["store", "put", "sale/1", "3 x coffee"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{source}: {}", stderr(&out));
        assert_eq!(stored_id(&data), id, "{source}");
        // Later commands without it: the same node, with its pending write in the outbox.
        let state = json(&data, &["sync", "status"]);
        assert_eq!(state["node_id"], id, "{source}: {state}");
        assert_eq!(state["outbox_size"], 1, "{source}: {state}");
        assert_eq!(json(&data, &["store", "get", "sale/1"])["origin"], id);
        assert_eq!(
            listing(&data)
                .unwrap()
                .iter()
                .filter(|n| n.starts_with("node-id"))
                .count(),
            1
        );
    }
}

#[test]
fn another_node_id_is_refused_with_exit_2_naming_both_and_the_data_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(
        &data,
        &["--node-id", "till-01", "store", "put", "app/name", "kept"],
    );
    let before = listing(&data).unwrap();
    let check_refused = |out: &std::process::Output, what: &str, origin: &str| {
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
        let e = stderr(out);
        for needle in ["till-01", "till-02", origin, "--change-node-id"] {
            assert!(e.contains(needle), "{what}: {needle} not named: {e}");
        }
    };
    for args in [
        &["store", "put", "app/name", "overwritten"][..],
        &["store", "get", "app/name"],
        &["sync", "status"],
        &["node", "init"],
    ] {
        let mut all = vec!["--node-id", "till-02"];
        all.extend_from_slice(args);
        check_refused(&cli(&data, &all), &format!("{args:?}"), "--node-id");
    }
    let out = command()
        .arg("--data-dir")
        .arg(&data)
        .env("SOFTADASTRA_NODE_ID", "till-02")
        .args(["store", "remove", "app/name"])
        .output()
        .unwrap();
    check_refused(&out, "environment", "SOFTADASTRA_NODE_ID");
    // node start on another node's data does not start.
    let mut node = Node::spawn(
        &data,
        cli_support::free_port(),
        &["--node-id", "till-02"],
        0,
    );
    assert_eq!(node.wait_exit(), Some(2), "{}{}", node.out(), node.log());
    let log = node.log();
    for needle in ["till-01", "till-02", "--change-node-id"] {
        assert!(
            log.contains(needle),
            "node start: {needle} not named: {log}"
        );
    }
    // Nothing changed: the same files, the same id, the same value.
    assert_eq!(listing(&data).unwrap(), before);
    assert_eq!(stored_id(&data), "till-01");
    let got = json(&data, &["store", "get", "app/name"]);
    assert_eq!(
        (got["value"].as_str(), got["origin"].as_str()),
        (Some("kept"), Some("till-01"))
    );
    // The bound id itself is accepted.
    json(&data, &["--node-id", "till-01", "status"]);
}

#[test]
fn change_node_id_binds_the_new_id_with_a_new_key_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = json(
        &data,
        &["--node-id", "till-01", "store", "put", "app/name", "kept"],
    );
    assert_eq!(old["status"], "created");
    let old_print = json(&data, &["node", "info"])["fingerprint"].clone();
    // Without the new id, or with a command that only reads: usage errors, nothing changed.
    let out = cli(&data, &["--change-node-id", "node", "init"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--node-id"), "{}", stderr(&out));
    let out = cli(
        &data,
        &["--node-id", "till-02", "--change-node-id", "status"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("only reads"), "{}", stderr(&out));
    assert_eq!(stored_id(&data), "till-01");
    // Not while a node runs on it.
    let node = Node::start(&data, &[]);
    let out = cli(
        &data,
        &["--node-id", "till-02", "--change-node-id", "node", "init"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a node is running"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored_id(&data), "till-01");
    drop(node);
    // The change.
    let out = cli(
        &data,
        &[
            "--node-id",
            "till-02",
            "--change-node-id",
            "node",
            "init",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["node_id"], "till-02");
    assert_ne!(info["fingerprint"], old_print, "a new key");
    assert!(
        stderr(&out).contains("node id changed from till-01 to till-02"),
        "{}",
        stderr(&out)
    );
    assert!(
        data.join("node.wal.key.till-01.retired").exists(),
        "{:?}",
        listing(&data)
    );
    assert_eq!(stored_id(&data), "till-02");
    // From now on the node is till-02, with its data.
    assert_eq!(json(&data, &["node", "info"])["node_id"], "till-02");
    assert_eq!(json(&data, &["store", "get", "app/name"])["value"], "kept");
    let out = cli(&data, &["--node-id", "till-01", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_node_made_before_the_id_was_stored_needs_its_id_once_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(
        &data,
        &["--node-id", "legacy-01", "store", "put", "app/name", "v"],
    );
    // As an earlier version left it: the WAL and the key, no node-id file.
    std::fs::remove_file(data.join("node-id")).unwrap();
    let out = cli(&data, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("node-id is missing") && stderr(&out).contains("node init"),
        "{}",
        stderr(&out)
    );
    // Reads with the id work and bind nothing.
    assert_eq!(
        json(&data, &["--node-id", "legacy-01", "status"])["node"]["id"],
        "legacy-01"
    );
    assert!(!data.join("node-id").exists());
    // Another id is refused by the key it is bound to, and binds nothing.
    let out = cli(
        &data,
        &["--node-id", "other-01", "store", "put", "app/name", "x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("legacy-01"), "{}", stderr(&out));
    assert!(!data.join("node-id").exists());
    // A command that writes with the right id binds it.
    json(&data, &["--node-id", "legacy-01", "node", "init"]);
    assert_eq!(stored_id(&data), "legacy-01");
    assert_eq!(json(&data, &["store", "get", "app/name"])["value"], "v");
}

#[test]
fn a_new_data_directory_is_private_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("parent").join("data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    json(&data, &["store", "put", "app/name", "v"]);
    json(&data, &["store", "compact"]);
    json(&data, &["store", "put", "app/name", "w"]);
    assert_eq!(mode(&data), 0o700, "the data directory");
    let files = listing(&data).unwrap();
    assert!(files.iter().any(|f| f.contains(".snap.")), "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("node.wal.0")),
        "{files:?}"
    );
    for f in &files {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    // An existing directory keeps its mode.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
    json(&shared, &["node", "init"]);
    assert_eq!(mode(&shared), 0o750);
}
