//! Bad input and faults through the public `Client`: each gives an explicit error naming the
//! path or key and the cause, nothing is created somewhere unexpected, and stored data stays
//! readable. Tests run as root, so "unwritable" uses /sys (EACCES even for root) rather
//! than chmod, and "disk full" uses RLIMIT_FSIZE in a child process.

mod common;

use std::path::Path;

use softadastra::{Client, ClientOptions, Error, ErrorCode, WriteBatch};

fn persistent(path: &Path) -> Client {
    Client::new(ClientOptions::persistent("node-a", path.to_str().unwrap()))
}

fn open_error(path: &Path) -> Error {
    persistent(path).open().expect_err("open must fail")
}

#[test]
fn wal_in_a_missing_directory_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("node.wal");
    let err = open_error(&path);
    assert_eq!(err.code(), ErrorCode::IoError);
    assert_eq!(err.context(), path.display().to_string());
    let msg = err.to_string();
    assert!(
        msg.contains("missing") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(
        !dir.path().join("missing").exists(),
        "the directory must not be created"
    );
}

#[test]
fn wal_under_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"user data").unwrap();
    let err = open_error(&file.join("node.wal"));
    assert_eq!(err.code(), ErrorCode::IoError);
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"user data");
}

#[test]
fn wal_path_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_error(dir.path());
    assert_eq!(err.code(), ErrorCode::IoError);
    assert!(err.to_string().contains("it is a directory"), "{err}");
}

#[test]
fn unwritable_location_is_refused_with_the_os_reason() {
    let path = Path::new("/sys/softadastra-client-faults.wal");
    let err = open_error(path);
    assert_eq!(err.code(), ErrorCode::IoError);
    assert_eq!(
        err.to_string(),
        format!("cannot open WAL {}: permission denied", path.display())
    );
    assert!(!path.exists());
}

#[test]
fn invalid_options_are_refused_naming_the_field() {
    let client = Client::new(ClientOptions::persistent("bad id!", "x.wal"));
    let err = client.open().unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(err.context(), "node_id");
    assert!(!client.is_open());
    assert!(!Path::new("x.wal").exists());
}

#[test]
fn invalid_keys_and_values_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = persistent(&dir.path().join("n.wal"));
    client.open().unwrap();
    client.put("good", b"1").unwrap();
    let err = client.put("", b"x").unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().contains("must not be empty")),
        (ErrorCode::InvalidArgument, true)
    );
    let long = "k".repeat(2000);
    let err = client.put(&long, b"x").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(
        err.context().starts_with("kkkk") && err.to_string().contains("2000 bytes"),
        "{err}"
    );
    let err = client
        .put("huge", &vec![0u8; 16 * 1024 * 1024 + 1])
        .unwrap_err();
    assert_eq!(
        (err.code(), err.context()),
        (ErrorCode::InvalidArgument, "huge".to_string())
    );
    let err = client.get("").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = client.remove("").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let mut batch = WriteBatch::new();
    batch.put("batched", b"1".to_vec()).remove("");
    assert_eq!(
        client.write_batch(&batch).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(client.size().unwrap(), 1);
    assert_eq!(client.get("good").unwrap(), b"1");
}

#[test]
fn missing_key_is_not_found_with_the_key_as_context() {
    let client = Client::new(ClientOptions::memory_only("node-a"));
    client.open().unwrap();
    let err = client.get("no/such/key").unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(err.context(), "no/such/key");
}

#[test]
fn closed_client_refuses_every_call_with_invalid_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.wal");
    let client = persistent(&path);
    assert_eq!(
        client.put("k", b"v").unwrap_err().code(),
        ErrorCode::InvalidState
    );
    client.open().unwrap();
    client.put("k", b"v").unwrap();
    client.close().unwrap();
    client.close().unwrap();
    for err in [
        client.put("k", b"v").unwrap_err(),
        client.get("k").unwrap_err(),
        client.remove("k").unwrap_err(),
        client.contains("k").unwrap_err(),
        client.size().unwrap_err(),
        client.node_info().unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::InvalidState);
        assert_eq!(err.to_string(), "client is not open");
    }
    client.open().unwrap();
    assert_eq!(client.get("k").unwrap(), b"v");
}

#[test]
fn second_client_on_the_same_wal_is_refused_while_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.wal");
    let first = persistent(&path);
    first.open().unwrap();
    first.put("k", b"v").unwrap();
    let err = open_error(&path);
    assert_eq!(
        err.to_string(),
        format!("WAL {} is in use by another process", path.display())
    );
    first.put("k2", b"v2").unwrap();
    assert_eq!(first.get("k").unwrap(), b"v");
}

#[test]
fn corrupt_wal_fails_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.wal");
    let client = persistent(&path);
    client.open().unwrap();
    for i in 0..3 {
        client.put(&format!("k{i}"), b"value").unwrap();
    }
    client.close().unwrap();
    let segment = softadastra::wal::segment_path(&path, 1);
    let mut image = std::fs::read(&segment).unwrap();
    image[32 + 25] ^= 1; // inside the first record's payload
    std::fs::write(&segment, &image).unwrap();
    let err = client.open().unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreError);
    let msg = err.to_string();
    assert!(
        msg.contains(&segment.display().to_string()) && msg.contains("byte offset 32"),
        "{msg}"
    );
    assert!(!client.is_open());
}

const CHILD_ENV: &str = "SOFTADASTRA_TEST_DISK_FULL_DIR";
const FILE_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// Runs in the child: writes 100 KiB values until the file size limit stops a put, then
/// records how many puts were acknowledged and checks the WAL stays poisoned.
fn disk_full_child(dir: &Path) {
    let client = persistent(&dir.join("full.wal"));
    client.open().unwrap();
    let value = vec![0x5au8; 100 * 1024];
    let mut acknowledged = 0usize;
    let err = loop {
        assert!(acknowledged < 1000, "the size limit never stopped a put");
        match client.put(&format!("k{acknowledged}"), &value) {
            Ok(_) => acknowledged += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), ErrorCode::IoError, "{err}");
    // The file that could not grow: the log's segment.
    let segment = softadastra::wal::segment_path(&dir.join("full.wal"), 1);
    assert_eq!(err.context(), segment.display().to_string());
    assert!(err.to_string().contains("file too large"), "{err}");
    assert!(
        !client.contains(&format!("k{acknowledged}")).unwrap(),
        "a failed put changes nothing"
    );
    let later = client.put("small", b"1").unwrap_err();
    assert!(later.to_string().contains("refuses writes"), "{later}");
    assert_eq!(client.get("k0").unwrap(), value, "reads keep working");
    std::fs::write(dir.join("acknowledged"), acknowledged.to_string()).unwrap();
}

#[test]
fn disk_full_fails_the_put_and_keeps_every_acknowledged_write() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        disk_full_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::run_with_file_size_limit(
        "disk_full_fails_the_put_and_keeps_every_acknowledged_write",
        CHILD_ENV,
        dir.path(),
        FILE_SIZE_LIMIT,
    );
    let acknowledged: usize = std::fs::read_to_string(dir.path().join("acknowledged"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(acknowledged > 10, "only {acknowledged} puts fit");
    let client = persistent(&dir.path().join("full.wal"));
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), acknowledged);
    for i in 0..acknowledged {
        assert_eq!(client.get(&format!("k{i}")).unwrap().len(), 100 * 1024);
    }
    client.put("after-reopen", b"ok").unwrap();
}

#[test]
fn fast_mode_writes_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fast.wal");
    let client = Client::new(ClientOptions::fast("node-a", path.to_str().unwrap()));
    client.open().unwrap();
    for i in 0..5000 {
        client.put(&format!("k{i:05}"), b"v").unwrap();
    }
    client.close().unwrap();
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 5000);
}

#[test]
fn node_info_describes_the_node() {
    let mut options = ClientOptions::memory_only("edge-01");
    options.display_name = "Edge 01".into();
    let client = Client::new(options);
    client.open().unwrap();
    let info = client.refresh_node_info().unwrap();
    assert_eq!(
        (info.node_id.as_str(), info.display_name.as_str()),
        ("edge-01", "Edge 01")
    );
    assert_eq!(info.os_name, std::env::consts::OS);
    assert_eq!(info.version, "0.1.0");
    assert!(info.started_at_ms > 1_600_000_000_000 && info.uptime_ms >= 0);
    assert!(
        !info.capabilities.contains(&"wal".to_string()),
        "memory only has no WAL"
    );
    assert!(info.capabilities.contains(&"store".to_string()));
}
