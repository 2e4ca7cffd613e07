//! What must hold on every CPU the library ships for (docs/edge.md): run on the host by
//! `cargo test`, and cross built and run under qemu-user for aarch64 and 32-bit armv7 by
//! `scripts/test-cross.sh` (which `scripts/test-all.sh` runs for aarch64).
//!
//! - A data directory written on x86_64 (tests/fixtures/x86_64-data: a snapshot and the
//!   log after it) opens with every value, on any CPU: the formats depend on no word size
//!   nor byte order of the machine. `SOFTADASTRA_WRITE_FIXTURES=1 cargo test --test
//!   portability` rewrites it (on x86_64 only).
//! - A value of the 16 MiB limit goes through the log and a snapshot (the largest record
//!   and snapshot block there is), and one byte more is refused by name.
//! - A record length near 4 GiB read from disk is damage, not an overflow of a 32-bit
//!   `usize`.
//!
//! Offsets past 4 GiB in the WAL are tested through its storage seam, in the library's
//! unit tests (src/wal/offsets_past_4_gib.rs).

use std::path::{Path, PathBuf};

use softadastra::wal::format::{self, FILE_HEADER_LEN};
use softadastra::wal::{LogEnd, RecordType};
use softadastra::{Client, ClientOptions, MAX_VALUE_LEN, WriteBatch};

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/x86_64-data");
const NODE_ID: &str = "till-x86-64";
const WAL_NAME: &str = "node.wal";

fn options(dir: &Path) -> ClientOptions {
    let mut options = ClientOptions::persistent(NODE_ID, dir.join(WAL_NAME).to_str().unwrap());
    // The generator decides when the snapshot is taken.
    options.auto_compact = false;
    options
}

/// The value of key `item/NN` before the snapshot.
fn item(i: usize) -> Vec<u8> {
    format!("value {i} written on x86_64").into_bytes()
}

/// 4 KiB that are not all one byte, and every byte value.
fn large() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// What the fixture holds, written through the public API as an application on x86_64
/// would: writes and removes, a snapshot (compaction), then more writes in the log after
/// it. Returns the snapshot's cut.
fn write_fixture(dir: &Path) -> u64 {
    let client = Client::new(options(dir));
    client.open().unwrap();
    for i in 0..20 {
        client.put(&format!("item/{i:02}"), &item(i)).unwrap();
    }
    client
        .put("binary", &(0..=255u8).collect::<Vec<_>>())
        .unwrap();
    client.put("large", &large()).unwrap();
    client.remove("item/03").unwrap();
    let report = client.compact().unwrap();
    // After the snapshot: in the log only.
    client
        .put("item/00", b"changed after the snapshot")
        .unwrap();
    client.remove("item/04").unwrap();
    let mut batch = WriteBatch::new();
    batch.put("after/1", b"one".to_vec());
    batch.put("after/2", b"two".to_vec());
    client.write_batch(&batch).unwrap();
    client.close().unwrap();
    report.covers_through
}

/// The files of the fixture: the WAL's (its lock file, segments and snapshots), not the
/// node's key.
fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name == WAL_NAME
                || name.strip_prefix("node.wal.").is_some_and(|rest| {
                    let digits = rest.strip_prefix("snap.").unwrap_or(rest);
                    digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .collect();
    files.sort();
    files
}

/// A copy of the fixture's files in a fresh directory.
fn install(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in fixture_files(from) {
        std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    dir
}

/// Checks that `dir` holds exactly what [`write_fixture`] wrote: an intact snapshot and
/// intact records after it (inspected, as `softadastra wal inspect` does), and every value
/// and tombstone read back through the public API (the snapshot loaded, the log after it
/// replayed).
fn check_fixture(dir: &Path) {
    let inspection = softadastra::inspect_wal(&dir.join(WAL_NAME), false).unwrap();
    assert!(inspection.damage.is_empty(), "{:?}", inspection.damage);
    let [snapshot] = &inspection.snapshots[..] else {
        panic!("one snapshot: {:?}", inspection.snapshots);
    };
    assert!(snapshot.intact && snapshot.covers_through > 0);
    let after: u64 = inspection.files.iter().map(|f| f.records).sum();
    assert!(
        after > 0,
        "records after the snapshot: {:?}",
        inspection.files
    );
    assert!(inspection.good_through > snapshot.covers_through);

    let client = Client::new(options(dir));
    client.open().unwrap();
    assert_eq!(
        client.get("item/00").unwrap(),
        b"changed after the snapshot"
    );
    for i in [1, 2, 5, 10, 19] {
        assert_eq!(
            client.get(&format!("item/{i:02}")).unwrap(),
            item(i),
            "item/{i:02}"
        );
    }
    // Tombstones from both sides of the snapshot, with their own numbers.
    let removed_before = client
        .entry("item/03")
        .unwrap()
        .expect("item/03's tombstone");
    let removed_after = client
        .entry("item/04")
        .unwrap()
        .expect("item/04's tombstone");
    assert!(removed_before.value.is_none() && removed_after.value.is_none());
    assert!(removed_before.origin_seq < removed_after.origin_seq);
    assert_eq!(&*removed_after.origin, NODE_ID);
    assert_eq!(
        client.get("binary").unwrap(),
        (0..=255u8).collect::<Vec<_>>()
    );
    assert_eq!(client.get("large").unwrap(), large());
    assert_eq!(client.get("after/1").unwrap(), b"one");
    assert_eq!(client.get("after/2").unwrap(), b"two");
    // 20 items, less two removed, plus binary, large and after/1, after/2.
    assert_eq!(client.size().unwrap(), 22);
    client.close().unwrap();
}

#[test]
fn data_written_on_x86_64_opens_with_every_value() {
    let files = fixture_files(Path::new(FIXTURE_DIR));
    assert!(
        files.iter().any(|f| f.to_str().unwrap().contains(".snap.")),
        "the fixture has a snapshot: {files:?}"
    );
    let dir = install(Path::new(FIXTURE_DIR));
    check_fixture(dir.path());
}

/// The generator and the check agree (here, on this CPU). With SOFTADASTRA_WRITE_FIXTURES=1
/// on x86_64, what it wrote replaces tests/fixtures/x86_64-data, the log segments without
/// the zeros of their preallocation (a log may end where its file ends).
#[test]
fn the_fixture_generator_writes_data_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let cut = write_fixture(dir.path());
    assert!(cut > 0);
    check_fixture(install(dir.path()).path());

    if std::env::var_os("SOFTADASTRA_WRITE_FIXTURES").is_some() {
        assert_eq!(std::env::consts::ARCH, "x86_64", "the fixture is x86_64's");
        let fixture = Path::new(FIXTURE_DIR);
        if fixture.exists() {
            std::fs::remove_dir_all(fixture).unwrap();
        }
        std::fs::create_dir_all(fixture).unwrap();
        for file in fixture_files(dir.path()) {
            let mut bytes = std::fs::read(&file).unwrap();
            let name = file.file_name().unwrap().to_str().unwrap();
            if !name.contains(".snap.") {
                let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                bytes.truncate(used);
            }
            std::fs::write(fixture.join(name), bytes).unwrap();
        }
        check_fixture(install(fixture).path());
    }
}

#[test]
fn a_value_of_the_16_mib_limit_survives_the_log_and_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let value: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 253) as u8).collect();
    let client = Client::new(options(dir.path()));
    client.open().unwrap();
    client.put("big", &value).unwrap();
    let error = client
        .put("too-big", &vec![0; MAX_VALUE_LEN + 1])
        .unwrap_err();
    assert!(
        error.to_string().contains(&MAX_VALUE_LEN.to_string()),
        "the error gives the limit: {error}"
    );
    client.close().unwrap();

    // From the log, then from a snapshot.
    client.open().unwrap();
    assert!(
        client.get("big").unwrap() == value,
        "the value replayed from the log"
    );
    client.compact().unwrap();
    client.close().unwrap();
    client.open().unwrap();
    assert!(
        client.get("big").unwrap() == value,
        "the value loaded from the snapshot"
    );
    assert!(!client.contains("too-big").unwrap());
    client.close().unwrap();
}

#[test]
fn a_record_length_near_4_gib_is_damage_not_an_overflow() {
    let mut image = format::encode_segment_header(1).to_vec();
    format::encode_record(&mut image, RecordType::StoreOps, 1, b"first");
    let second = image.len();
    format::encode_record(&mut image, RecordType::StoreOps, 2, b"second");
    // The second record's length field says u32::MAX: the size of a 32-bit usize, which
    // the record's offset and header length would take past its largest value.
    image[second + 4..second + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut seen = Vec::new();
    let summary = format::scan_from(&image, Some(1), |r| {
        seen.push(r.sequence);
        Ok::<(), ()>(())
    })
    .expect("a damaged last record is a torn tail");
    assert_eq!(seen, vec![1]);
    assert!(matches!(summary.end, LogEnd::TornTail { end, .. } if end == second as u64));
    assert!(second > FILE_HEADER_LEN);
}
