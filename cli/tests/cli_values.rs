//! Large and binary values through the real binary (issue 14, item 4): `store put
//! --value-file PATH` ('-': standard input) and `store get --raw` carry any bytes up to the
//! store's 16 MiB limit, on the data directory and through a running node's control
//! socket; a larger value is refused naming the limit and stores nothing; `store get` and
//! `store list` print values over 65,535 bytes. Every node runs on 127.0.0.1 on a free
//! port, every wait is bounded, every child reaped.

mod cli_support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use cli_support::{Node, cli, command, json, stderr, stdout};

/// `len` bytes that are not UTF-8 text (every byte value occurs), from a fixed seed.
fn binary_value(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `store get --raw KEY`: its exit code and the bytes it printed.
fn get_raw(data: &Path, key: &str) -> (Option<i32>, Vec<u8>, String) {
    let out = cli(data, &["store", "get", "--raw", key]);
    (out.status.code(), out.stdout.clone(), stderr(&out))
}

/// `store put KEY --value-file -` with `value` on standard input.
fn put_stdin(data: &Path, key: &str, value: &[u8]) -> std::process::Output {
    let mut child = command()
        .arg("--data-dir")
        .arg(data)
        .args(["store", "put", key, "--value-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let value = value.to_vec();
    // Written from a thread: the command may answer (and exit) before it read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&value);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Puts the largest value by file and by standard input and reads both back raw.
fn round_trip_largest_values(dir: &Path, data: &Path) {
    let limit = softadastra::MAX_VALUE_LEN;
    let value = binary_value(limit);
    assert!(std::str::from_utf8(&value).is_err());
    let file = dir.join("value.bin");
    std::fs::write(&file, &value).unwrap();
    let out = cli(
        data,
        &[
            "store",
            "put",
            "blob/file",
            "--value-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, bytes, err) = get_raw(data, "blob/file");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        bytes == value,
        "--value-file: {} bytes back, not the same",
        bytes.len()
    );

    let reversed: Vec<u8> = value.iter().rev().copied().collect();
    let out = put_stdin(data, "blob/stdin", &reversed);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, bytes, err) = get_raw(data, "blob/stdin");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        bytes == reversed,
        "stdin: {} bytes back, not the same",
        bytes.len()
    );
}

#[test]
fn a_16_mib_value_round_trips_through_value_file_stdin_and_get_raw() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    round_trip_largest_values(dir.path(), &data);
    // A missing key prints nothing on standard output.
    let (code, bytes, err) = get_raw(&data, "blob/none");
    assert_eq!(code, Some(1), "{err}");
    assert!(bytes.is_empty() && err.contains("key not found"), "{err}");
}

#[test]
fn a_16_mib_value_round_trips_through_a_running_nodes_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data, &[]);
    round_trip_largest_values(dir.path(), &data);
    // The node ran every one of them (it holds the WAL: no command could open it).
    let log = node.log();
    assert_eq!(
        log.matches("control request: store put").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("control request: store get").count(),
        2,
        "{log}"
    );
    assert_eq!(json(&data, &["status"])["node"]["running"], true);
}

#[test]
fn a_value_over_the_limit_is_refused_naming_it_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(&data, &["store", "put", "blob/big", "before"]);
    let file = dir.path().join("too-big.bin");
    std::fs::write(&file, binary_value(softadastra::MAX_VALUE_LEN + 1)).unwrap();
    let out = cli(
        &data,
        &[
            "store",
            "put",
            "blob/big",
            "--value-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let limit = softadastra::MAX_VALUE_LEN.to_string();
    assert!(
        stderr(&out).contains(&limit) && stderr(&out).contains("too-big.bin"),
        "{}",
        stderr(&out)
    );
    let out = put_stdin(
        &data,
        "blob/big",
        &binary_value(softadastra::MAX_VALUE_LEN + 1),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&limit) && stderr(&out).contains("standard input"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        json(&data, &["store", "get", "blob/big"])["value"],
        "before"
    );
}

#[test]
fn bad_value_arguments_are_usage_errors_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(&data, &["store", "put", "k", "v"]);
    let missing = dir.path().join("no-such-file");
    let out = cli(
        &data,
        &[
            "store",
            "put",
            "k",
            "--value-file",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-file"), "{}", stderr(&out));
    let out = cli(&data, &["store", "put", "k", "v", "--value-file", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = cli(&data, &["store", "get", "k", "--raw", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--raw"), "{}", stderr(&out));
    assert_eq!(json(&data, &["store", "get", "k"])["value"], "v");
}

#[test]
fn get_and_list_print_values_longer_than_65535_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = "x".repeat(70_000);
    let file = dir.path().join("long.txt");
    std::fs::write(&file, &text).unwrap();
    let out = cli(
        &data,
        &[
            "store",
            "put",
            "long",
            "--value-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json(&data, &["store", "put", "short", "y"]);
    for args in [&["store", "get", "long"][..], &["store", "list"]] {
        let out = cli(&data, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains(&text), "{args:?}");
    }
    let list = stdout(&cli(&data, &["store", "list"]));
    assert!(
        list.lines().any(|l| l.trim() == "short  y"),
        "{}",
        &list[..200]
    );
    // Text values given by file read back the same, raw or as JSON.
    assert_eq!(get_raw(&data, "long").1, text.as_bytes());
    assert_eq!(
        json(&data, &["store", "get", "long"])["value"],
        text.as_str()
    );
}
