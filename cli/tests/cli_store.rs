//! The `softadastra` binary's store commands across separate invocations: what one command
//! writes the next one reads, quoting is kept, and exit codes say what happened
//! (0 success, 1 failure, 2 invalid usage).

use std::process::{Command, Output};

fn cli(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softadastra"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("SOFTADASTRA_NODE_ID")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn values_written_by_one_command_are_read_by_the_next_with_quoting_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let put = cli(
        &data,
        &["store", "put", "app/name", "Soft adastra  two spaces"],
    );
    assert_eq!(
        put.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = cli(&data, &["store", "get", "app/name"]);
    assert_eq!(get.status.code(), Some(0));
    assert!(
        stdout(&get).contains("Soft adastra  two spaces"),
        "{}",
        stdout(&get)
    );
    let list = cli(&data, &["store", "list", "app/"]);
    assert!(stdout(&list).contains("app/name"));
    assert_eq!(
        cli(&data, &["store", "remove", "app/name"]).status.code(),
        Some(0)
    );
    assert_eq!(
        cli(&data, &["store", "get", "app/name"]).status.code(),
        Some(1)
    );
}

#[test]
fn node_id_is_generated_once_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = stdout(&cli(&data, &["node", "init"]));
    let second = stdout(&cli(&data, &["node", "info"]));
    let id = |s: &str| {
        s.lines()
            .find(|l| l.trim_start().starts_with("node_id"))
            .map(str::to_string)
    };
    assert!(id(&first).unwrap().contains("node-"), "{first}");
    assert_eq!(id(&first), id(&second));
    assert!(!first.contains("node-1 "), "no shared default id");
}

#[test]
fn exit_codes_separate_failure_from_invalid_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(cli(&data, &["node", "init"]).status.code(), Some(0));
    let missing = cli(&data, &["store", "get", "nothing-here"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("key not found: nothing-here"));
    assert_eq!(
        cli(&data, &["store", "put", "", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        cli(&data, &["store", "put", "only-key"]).status.code(),
        Some(2)
    );
    assert_eq!(cli(&data, &["no-such-command"]).status.code(), Some(2));
}

#[test]
fn a_data_dir_that_is_a_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let out = cli(&file, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn store_compact_snapshots_the_data_and_later_commands_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..20 {
        let put = cli(&data, &["store", "put", "sale/total", &i.to_string()]);
        assert_eq!(put.status.code(), Some(0));
    }
    let compact = cli(&data, &["store", "compact", "--json"]);
    assert_eq!(compact.status.code(), Some(0), "{}", stdout(&compact));
    let doc: serde_json::Value = serde_json::from_slice(&compact.stdout).unwrap();
    assert_eq!(doc["command"], "store compact");
    assert!(doc["covers_through"].as_u64().unwrap() >= 20, "{doc}");
    assert!(doc["segments_removed"].as_u64().unwrap() >= 1, "{doc}");
    let snapshots = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".snap."))
        .count();
    assert_eq!(snapshots, 1);
    let get = cli(&data, &["store", "get", "sale/total"]);
    assert_eq!(get.status.code(), Some(0));
    assert!(stdout(&get).contains("19"), "{}", stdout(&get));
}
