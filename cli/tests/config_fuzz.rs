//! The config file parser, fuzzed in CI through the binary (the parser lives in the CLI):
//! random bytes and generated TOML files, mutated, are given to `softadastra --config
//! <file> version`, which loads the configuration (file, then environment, then flags) and
//! prints the version, touching nothing else. A panic exits 101; the parser must answer 0
//! (valid) or 2 (invalid configuration, named). Deterministic: see tests/proptest_support.

mod cli_support;
#[path = "../../tests/proptest_support/mod.rs"]
mod proptest_support;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest_support::{edits, mutate, random_bytes, run};

/// Cases: the binary runs once per case.
const CONFIG_CASES: u32 = 300;

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        "[A-Za-z0-9._-]{0,12}",
        "[a-z0-9-]{1,8}@[a-z0-9.:\\[\\]]{0,12}:[0-9-]{0,6}",
        "(off|error|warn|info|debug|trace|loud|INFO| on |yes)",
        ".{0,12}",
    ];
    prop_oneof![
        3 => text.clone().prop_map(|s| toml_string(&s)),
        3 => prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            -2..70_000i64,
            any::<i64>()
        ]
        .prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1.5".to_string()),
        2 => vec(text, 0..3).prop_map(|v| format!(
            "[{}]",
            v.iter().map(|s| toml_string(s)).collect::<Vec<_>>().join(", ")
        )),
        1 => Just("{ enabled = true }".to_string()),
    ]
}

const TOP_KEYS: &[&str] = &[
    "node_id",
    "display_name",
    "data_dir",
    "wal",
    "auto_flush",
    "peers",
    "tick_interval_ms",
    "log_level",
    "colour",
];
const TABLES: &[(&str, &[&str])] = &[
    ("transport", &["enabled", "host", "port", "prot"]),
    (
        "discovery",
        &[
            "enabled",
            "host",
            "port",
            "broadcast_host",
            "broadcast_port",
        ],
    ),
    (
        "sync",
        &[
            "batch_size",
            "max_retries",
            "ack_timeout_ms",
            "retry_interval_ms",
            "max_clock_drift_ms",
        ],
    ),
    ("metrics", &["addr"]),
    ("health", &["exit_after_ms"]),
    ("extra", &["x"]),
];

/// A config file: top-level keys, then tables, from the known keys (and a few unknown ones)
/// with values of every type.
fn config_text() -> impl Strategy<Value = String> {
    let top = vec((0..TOP_KEYS.len(), toml_value()), 0..5);
    let tables = vec(
        (0..TABLES.len(), vec((0..5usize, toml_value()), 0..4)),
        0..3,
    );
    (top, tables).prop_map(|(top, tables)| {
        let mut text = String::new();
        for (k, v) in top {
            text.push_str(&format!("{} = {v}\n", TOP_KEYS[k]));
        }
        for (t, entries) in tables {
            let (name, keys) = TABLES[t];
            text.push_str(&format!("[{name}]\n"));
            for (k, v) in entries {
                text.push_str(&format!("{} = {v}\n", keys[k % keys.len()]));
            }
        }
        text
    })
}

#[test]
fn config_parser_random_and_mutated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("softadastra.toml");
    let input = prop_oneof![
        1 => random_bytes(200),
        3 => config_text().prop_map(String::into_bytes),
        2 => (config_text(), edits()).prop_map(|(t, e)| mutate(t.into_bytes(), &e)),
    ];
    run("config_parser", CONFIG_CASES, input, |text| {
        std::fs::write(&path, &text).unwrap();
        let out = cli_support::command()
            .arg("--config")
            .arg(&path)
            .arg("version")
            .output()
            .expect("the binary runs");
        let stderr = cli_support::stderr(&out);
        assert!(!stderr.contains("panicked"), "{stderr}");
        match out.status.code() {
            Some(0) => {}
            Some(2) => assert!(
                stderr.starts_with("error: invalid configuration"),
                "{stderr}"
            ),
            other => panic!("exit {other:?}: {stderr}"),
        }
    });
}
