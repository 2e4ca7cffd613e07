//! `--json` output against the schema in docs/cli-json.md: every document is one JSON
//! object on one line with `schema_version` 1 and `command`, and each command's fields have
//! the documented types. One test per command; errors are documents too.

mod cli_support;

use serde_json::Value;

use cli_support::{cli, json};

#[derive(Clone, Copy, Debug)]
enum T {
    Str,
    Uint,
    Bool,
    Arr,
    Obj,
}

fn check(doc: &Value, path: &str, t: T) {
    let mut v = doc;
    for part in path.split('.') {
        v = &v[part];
    }
    let ok = match t {
        T::Str => v.is_string(),
        T::Uint => v.is_u64(),
        T::Bool => v.is_boolean(),
        T::Arr => v.is_array(),
        T::Obj => v.is_object(),
    };
    assert!(ok, "{path} should be {t:?} in {doc}");
}

fn check_all(doc: &Value, command: &str, fields: &[(&str, T)]) {
    assert_eq!(doc["schema_version"], 1, "{doc}");
    assert_eq!(doc["command"], command, "{doc}");
    for (path, t) in fields {
        check(doc, path, *t);
    }
}

/// Runs with `--json`, checks it is exactly one line.
fn one_line(data: &std::path::Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(data, &all);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    json(data, args)
}

fn data_with_one_key() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let put = json(&data, &["store", "put", "app/name", "Soft \"adastra\""]);
    check_all(
        &put,
        "store put",
        &[("key", T::Str), ("version", T::Uint), ("status", T::Str)],
    );
    assert_eq!(put["status"], "created");
    (dir, data)
}

#[test]
fn status_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["status"]);
    check_all(
        &doc,
        "status",
        &[
            ("node.id", T::Str),
            ("node.running", T::Bool),
            ("node.fingerprint", T::Str),
            ("store.entries", T::Uint),
            ("store.wal", T::Str),
            ("sync.outbox", T::Uint),
            ("sync.pending", T::Uint),
            ("sync.queued", T::Uint),
            ("sync.in_flight", T::Uint),
            ("sync.acknowledged", T::Uint),
            ("sync.failed", T::Uint),
            ("transport.running", T::Bool),
            ("transport.peers", T::Uint),
            ("discovery.running", T::Bool),
            ("discovery.peers", T::Uint),
            ("metadata.running", T::Bool),
            ("metadata.hostname", T::Str),
            ("metadata.os", T::Str),
            ("metadata.version", T::Str),
            ("metadata.uptime_ms", T::Uint),
            ("control.refused_requests", T::Uint),
            ("health.status", T::Str),
            ("metrics", T::Obj),
        ],
    );
    assert_eq!(doc["store"]["entries"], 1);
    assert_eq!(doc["control"]["refused_requests"], 0, "no running node");
    assert_eq!(doc["health"]["status"], "healthy");
    assert!(doc["health"]["reason"].is_null(), "{doc}");
    assert!(doc["metrics"]["addr"].is_null(), "no running node: {doc}");
}

#[test]
fn node_info_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["node", "info"]);
    check_all(
        &doc,
        "node info",
        &[
            ("node_id", T::Str),
            ("display_name", T::Str),
            ("hostname", T::Str),
            ("os", T::Str),
            ("version", T::Str),
            ("started_at_ms", T::Uint),
            ("uptime_ms", T::Uint),
            ("capabilities", T::Arr),
            ("fingerprint", T::Str),
            ("node_running", T::Bool),
        ],
    );
    // The identity made on first use: 64 hex digits, the same on the next command.
    let fingerprint = doc["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fingerprint.len(), 64);
    let again = one_line(&data, &["node", "info"]);
    assert_eq!(again["fingerprint"], fingerprint.as_str());
    let status = one_line(&data, &["status"]);
    assert_eq!(status["node"]["fingerprint"], fingerprint.as_str());
}

#[test]
fn store_get_json_follows_the_schema_and_keeps_the_value() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["store", "get", "app/name"]);
    check_all(
        &doc,
        "store get",
        &[
            ("key", T::Str),
            ("value", T::Str),
            ("version", T::Uint),
            ("timestamp_ms", T::Uint),
            ("origin", T::Str),
        ],
    );
    assert_eq!(doc["value"], "Soft \"adastra\"");
}

#[test]
fn store_list_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["store", "list", "app/"]);
    check_all(
        &doc,
        "store list",
        &[("prefix", T::Str), ("count", T::Uint), ("entries", T::Arr)],
    );
    assert_eq!(doc["count"], 1);
    check(&doc["entries"][0], "key", T::Str);
    check(&doc["entries"][0], "value", T::Str);
    let removed = json(&data, &["store", "remove", "app/name"]);
    check_all(
        &removed,
        "store remove",
        &[("key", T::Str), ("version", T::Uint), ("removed", T::Bool)],
    );
}

#[test]
fn sync_status_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["sync", "status"]);
    let mut fields = vec![("node_id", T::Str)];
    for k in [
        "outbox_size",
        "pending_count",
        "queued_count",
        "in_flight_count",
        "acknowledged_count",
        "failed_count",
        "last_submitted_version",
        "last_applied_remote_version",
        "total_retries",
        "conflict_count",
        "refused_count",
    ] {
        fields.push((k, T::Uint));
    }
    check_all(&doc, "sync status", &fields);
    assert_eq!(doc["outbox_size"], 1);
    assert_eq!(doc["refused_count"], 0);
}

#[test]
fn sync_tick_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    for args in [&["sync", "tick"][..], &["sync", "tick", "--prune"][..]] {
        let doc = one_line(&data, args);
        check_all(
            &doc,
            "sync tick",
            &[
                ("retried_count", T::Uint),
                ("batch_size", T::Uint),
                ("connected_peers", T::Uint),
                ("sent_count", T::Uint),
                ("pruned_count", T::Uint),
                ("outcome", T::Str),
            ],
        );
        assert_eq!(doc["outcome"], "no_peers");
    }
}

#[test]
fn peers_json_follows_the_schema() {
    let (_d, data) = data_with_one_key();
    let doc = one_line(&data, &["peers"]);
    check_all(
        &doc,
        "peers",
        &[
            ("node_running", T::Bool),
            ("transport", T::Bool),
            ("discovery", T::Bool),
            ("peers", T::Arr),
        ],
    );
    // Peer entries are checked with a running node in cli_node.rs; here the shape only.
    assert_eq!(doc["peers"].as_array().unwrap().len(), 0);
}

#[test]
fn version_json_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json(dir.path(), &["version"]);
    check_all(&doc, "version", &[("version", T::Str)]);
}

#[test]
fn errors_are_json_documents_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = cli(&data, &["store", "get", "missing", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_all(&doc, "store get", &[("error", T::Obj)]);
    assert_eq!(doc["error"]["code"], "not_found");
    assert_eq!(doc["error"]["exit"], 1);
    check(&doc, "error.message", T::Str);
}

/// Runs with `--json` once (the command changes something), checks it is exactly one line
/// and exit 0.
fn once(data: &std::path::Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(data, &all);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn backup_verify_and_restore_documents() {
    let (dir, data) = data_with_one_key();
    let backup = dir.path().join("backup");
    let made = once(&data, &["backup", backup.to_str().unwrap()]);
    check_all(
        &made,
        "backup",
        &[
            ("node_running", T::Bool),
            ("dir", T::Str),
            ("node_id", T::Str),
            ("covers_through", T::Uint),
            ("files", T::Uint),
            ("bytes", T::Uint),
        ],
    );
    let verified = one_line(&data, &["backup", "verify", backup.to_str().unwrap()]);
    check_all(
        &verified,
        "backup verify",
        &[
            ("verified", T::Bool),
            ("dir", T::Str),
            ("node_id", T::Str),
            ("fingerprint", T::Str),
            ("library_version", T::Str),
            ("created_at_ms", T::Uint),
            ("snapshot_cut", T::Uint),
            ("covers_through", T::Uint),
            ("next_own_seq", T::Uint),
            ("files", T::Arr),
        ],
    );
    for f in verified["files"].as_array().unwrap() {
        for (field, t) in [
            ("kind", T::Str),
            ("name", T::Str),
            ("bytes", T::Uint),
            ("crc32", T::Str),
        ] {
            check(f, field, t);
        }
    }
    let restored = once(
        &dir.path().join("restored"),
        &["restore", backup.to_str().unwrap()],
    );
    check_all(
        &restored,
        "restore",
        &[
            ("dir", T::Str),
            ("data_dir", T::Str),
            ("node_id", T::Str),
            ("covers_through", T::Uint),
            ("next_own_seq", T::Uint),
            ("key_restored", T::Bool),
            ("removed", T::Arr),
            ("written", T::Arr),
        ],
    );
    let refused = cli(&data, &["backup", backup.to_str().unwrap(), "--json"]);
    let doc: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(doc["command"], "backup");
    assert_eq!(doc["error"]["code"], "already_exists");
}
