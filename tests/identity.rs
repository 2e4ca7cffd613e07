//! The node's identity (issue 12, item 1): a key pair made on the first open, kept next to
//! the WAL (or at `identity_path`) readable by its owner only, and the fingerprint in the
//! node info, the same across restarts and different for every node.

use std::os::unix::fs::PermissionsExt;

use softadastra::{Client, ClientOptions, ErrorCode};

fn fingerprint(client: &Client) -> String {
    client.node_info().unwrap().fingerprint
}

#[test]
fn the_fingerprint_is_made_once_kept_private_and_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("a.wal");
    let options = ClientOptions::persistent("node-a", wal.to_str().unwrap());
    let client = Client::new(options.clone());
    client.open().unwrap();
    let first = fingerprint(&client);
    assert_eq!(first.len(), 64);
    let key = dir.path().join("a.wal.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    client.close().unwrap();
    client.open().unwrap();
    assert_eq!(fingerprint(&client), first, "same key after a restart");
    drop(client);

    // Another node, another key.
    let other = Client::new(ClientOptions::persistent(
        "node-b",
        dir.path().join("b.wal").to_str().unwrap(),
    ));
    other.open().unwrap();
    assert_ne!(fingerprint(&other), first);

    // A memory-only node has a key too (a new one each open).
    let memory = Client::new(ClientOptions::memory_only("node-m"));
    memory.open().unwrap();
    assert_eq!(fingerprint(&memory).len(), 64);
}

#[test]
fn identity_path_chooses_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ClientOptions::memory_only("node-k");
    options.identity_path = dir.path().join("keys/node.key").to_string_lossy().into();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let client = Client::new(options);
    client.open().unwrap();
    let first = fingerprint(&client);
    client.close().unwrap();
    client.open().unwrap();
    assert_eq!(
        fingerprint(&client),
        first,
        "a memory-only node keeps a configured key"
    );
    assert!(dir.path().join("keys/node.key").exists());
}

#[test]
fn a_key_file_others_can_read_stops_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("a.wal");
    let client = Client::new(ClientOptions::persistent("node-a", wal.to_str().unwrap()));
    client.open().unwrap();
    client.close().unwrap();
    let key = dir.path().join("a.wal.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = client.open().unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError);
    assert_eq!(e.context(), key.display().to_string());
    assert!(e.to_string().contains("chmod 600"), "{e}");
    assert!(!client.is_open());
}

#[test]
fn a_data_directory_opened_with_another_node_id_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("till.wal");
    let till = Client::new(ClientOptions::persistent("till-1", wal.to_str().unwrap()));
    till.open().unwrap();
    till.put("sale/1", b"10").unwrap();
    let first = fingerprint(&till);
    till.close().unwrap();

    let renamed = Client::new(ClientOptions::persistent("till-2", wal.to_str().unwrap()));
    let e = renamed.open().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let message = e.to_string();
    assert!(
        message.contains("belongs to node id till-1, not till-2"),
        "{message}"
    );
    assert!(!renamed.is_open());

    till.open().unwrap();
    assert_eq!(till.get("sale/1").unwrap(), b"10");
    assert_eq!(fingerprint(&till), first);
}
