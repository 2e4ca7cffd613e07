//! Configuration and usage of the real binary: a TOML file, SOFTADASTRA_* variables and
//! flags with precedence flag > environment > file > default; bad configuration exits 2
//! naming the key; `--help` works on every command; exit codes 0/1/2; colour only on a
//! terminal and never with `--no-color` or `NO_COLOR`.

mod cli_support;

use std::path::Path;

use cli_support::{cli, command, json, stderr, stdout};

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("softadastra.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_config_file_sets_the_data_dir_and_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = write_config(
        dir.path(),
        &format!(
            "node_id = \"till-07\"\ndata_dir = \"{}\"\n[sync]\nbatch_size = 8\n",
            data.display()
        ),
    );
    let out = command()
        .arg("--config")
        .arg(&config)
        .args(["node", "init", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["node_id"], "till-07");
    assert!(data.join("node.wal").exists());
    // SOFTADASTRA_CONFIG names the file too.
    let out = command()
        .env("SOFTADASTRA_CONFIG", &config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["node"]["id"], "till-07");
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "node_id = \"from-file\"\n");
    // Each case on a data directory of its own: a node id is bound to its data (its key)
    // once used.
    let node_id = |env: Option<&str>, flag: Option<&str>| {
        let data = dir.path().join(format!("data-{env:?}-{flag:?}"));
        let mut c = command();
        c.arg("--data-dir").arg(&data).arg("--config").arg(&config);
        if let Some(e) = env {
            c.env("SOFTADASTRA_NODE_ID", e);
        }
        if let Some(f) = flag {
            c.args(["--node-id", f]);
        }
        let out = c.args(["node", "init", "--json"]).output().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["node_id"].as_str().unwrap().to_string()
    };
    assert_eq!(node_id(None, None), "from-file");
    assert_eq!(node_id(Some("from-env"), None), "from-env");
    assert_eq!(node_id(Some("from-env"), Some("from-flag")), "from-flag");
    // Default: generated once in the data directory, never "node-1".
    let data = dir.path().join("data");
    let generated = json(&data, &["node", "init"])["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(generated.starts_with("node-") && generated != "node-1");
    assert_eq!(
        json(&data, &["node", "info"])["node_id"],
        generated.as_str()
    );
    // The data directory: flag over environment.
    let env_dir = dir.path().join("env-dir");
    let out = command()
        .env("SOFTADASTRA_DATA_DIR", &env_dir)
        .args(["node", "init", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(env_dir.join("node-id").exists());
}

fn usage_error(out: &std::process::Output, names: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    for n in names {
        assert!(stderr(out).contains(n), "{n} not named: {}", stderr(out));
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run_with = |text: &str| {
        let config = write_config(dir.path(), text);
        cli(&data, &["--config", config.to_str().unwrap(), "status"])
    };
    usage_error(&run_with("colour = \"always\"\n"), &["colour"]);
    usage_error(&run_with("[transport]\nprot = 1\n"), &["transport.prot"]);
    usage_error(
        &run_with("[transport]\nport = 70000\n"),
        &["transport.port"],
    );
    usage_error(&run_with("[discovery]\nport = -1\n"), &["discovery.port"]);
    usage_error(&run_with("node_id = \"has space\"\n"), &["node_id"]);
    usage_error(&run_with("peers = [\"nobody\"]\n"), &["peers"]);
    usage_error(&run_with("tick_interval_ms = 0\n"), &["tick_interval_ms"]);
    usage_error(&run_with("node_id = \n"), &["softadastra.toml"]);
    let env = |k: &str, v: &str| {
        command()
            .arg("--data-dir")
            .arg(&data)
            .env(k, v)
            .arg("status")
            .output()
            .unwrap()
    };
    usage_error(
        &env("SOFTADASTRA_TRANSPORT_PORT", "http"),
        &["transport.port", "SOFTADASTRA_TRANSPORT_PORT"],
    );
    usage_error(&env("SOFTADASTRA_NODE_ID", "bad id"), &["node_id"]);
    usage_error(&env("SOFTADASTRA_AUTO_FLUSH", "maybe"), &["auto_flush"]);
    usage_error(
        &cli(&data, &["--node-id", "bad/id", "status"]),
        &["node_id", "--node-id"],
    );
    usage_error(
        &cli(&data, &["node", "start", "--transport-port", "99999"]),
        &["transport.port"],
    );
    usage_error(
        &cli(
            &data,
            &["--config", "/nonexistent/softadastra.toml", "status"],
        ),
        &["/nonexistent/softadastra.toml"],
    );
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        &["--help"][..],
        &["help"],
        &["help", "store"],
        &["version", "--help"],
        &["status", "--help"],
        &["node", "--help"],
        &["node", "info", "--help"],
        &["node", "start", "--help"],
        &["store", "--help"],
        &["store", "put", "--help"],
        &["store", "get", "--help"],
        &["store", "remove", "--help"],
        &["store", "list", "--help"],
        &["sync", "--help"],
        &["sync", "status", "--help"],
        &["sync", "tick", "--help"],
        &["peers", "--help"],
    ] {
        let out = cli(&data, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}: {}", stdout(&out));
    }
    assert!(stdout(&cli(&data, &["sync", "tick", "--help"])).contains("--prune"));
}

#[test]
fn exit_codes_are_0_success_1_failure_2_invalid_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Reading where there is no node yet: a failure.
    assert_eq!(cli(&data, &["status"]).status.code(), Some(1));
    assert_eq!(cli(&data, &["node", "init"]).status.code(), Some(0));
    assert_eq!(cli(&data, &["status"]).status.code(), Some(0));
    assert_eq!(cli(&data, &["version"]).status.code(), Some(0));
    assert_eq!(
        cli(&data, &["sync", "tick", "--prune"]).status.code(),
        Some(0)
    );
    assert_eq!(cli(&data, &["store", "get", "none"]).status.code(), Some(1));
    // A WAL that cannot be opened (its path is a directory): failure.
    let out = command()
        .arg("--data-dir")
        .arg(&data)
        .env("SOFTADASTRA_WAL", dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for args in [
        &["bogus"][..],
        &["store"],
        &["store", "put", "k"],
        &["store", "put", "", "v"],
        &["sync", "tick", "--force"],
        &["node", "start", "--json"],
    ] {
        assert_eq!(cli(&data, args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn values_that_look_like_options_are_stored_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(
        cli(&data, &["store", "put", "temp", "-5"]).status.code(),
        Some(0)
    );
    assert_eq!(json(&data, &["store", "get", "temp"])["value"], "-5");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(cli(&data, &["node", "init"]).status.code(), Some(0));
    // Not a terminal: plain.
    let plain = cli(&data, &["status"]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert!(!stdout(&plain).contains('\x1b'));
    // On a terminal (through script(1), when installed): coloured unless disabled.
    let on_tty = |extra: &str, env: Option<&str>| -> Option<String> {
        let line = format!(
            "{} --data-dir {} status {extra}",
            cli_support::BIN,
            data.display()
        );
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
        if let Some(v) = env {
            c.env("NO_COLOR", v);
        }
        let out = c.output().ok()?;
        out.status.success().then(|| stdout(&out))
    };
    let Some(coloured) = on_tty("", None) else {
        eprintln!("script(1) not available: terminal colour not checked");
        return;
    };
    assert!(coloured.contains("\x1b["), "{coloured:?}");
    assert!(!on_tty("--no-color", None).unwrap().contains('\x1b'));
    assert!(!on_tty("", Some("1")).unwrap().contains('\x1b'));
}
