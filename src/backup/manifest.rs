//! A backup's manifest: a small text file, one "key value" per line, written last, so
//! that a directory with a manifest holds a finished backup. Its last line carries the
//! CRC32 of every byte before it. docs/backup.md describes it:
//!
//! ```text
//! softadastra-backup 1
//! node_id node-a
//! fingerprint <64 hex digits: the SHA-256 of the node's public key>
//! library_version 0.1.0
//! created_at_ms 1767225600000
//! snapshot_cut 5000
//! covers_through 5011
//! next_own_seq 1234
//! file snapshot snapshot <bytes> <crc32, 8 hex digits>
//! file log log.00000000000000005001 <bytes> <crc32>
//! file key identity.key <bytes> <crc32>
//! file trust trust <bytes> <crc32>
//! end <crc32 of every byte before this line>
//! ```
//!
//! Everything read is checked: the first line, every key once, numbers, the node id, the
//! fingerprint, each file's name (fixed names only: a manifest cannot point outside its
//! directory), the trailer. Unknown keys are refused (a newer format changes the version).

use std::path::Path;

use super::BackupError;

/// The manifest's file name in a backup directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// The snapshot's file name in a backup directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// The identity key's file name in a backup directory.
pub const KEY_FILE: &str = "identity.key";
/// The trusted peers' file name in a backup directory.
pub const TRUST_FILE: &str = "trust";
/// The first line: the format and its version.
const FORMAT_LINE: &str = "softadastra-backup 1";
/// The largest manifest read: a backup of a thousand log segments needs 100 KiB.
pub(super) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// The name of a log segment's copy: "log." and its first record's number in 20 digits,
/// so that names sort in log order.
pub(crate) fn log_file_name(first: u64) -> String {
    format!("log.{first:020}")
}

/// What a file of a backup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupFileKind {
    /// The snapshot at the backup's first cut.
    Snapshot,
    /// A log segment after that cut, from the record numbered `first` on.
    Log {
        /// Its first record's number.
        first: u64,
    },
    /// The node's identity key (as private as the key itself).
    Key,
    /// The node's trusted peers.
    Trust,
}

impl BackupFileKind {
    /// The kind's word in the manifest: "snapshot", "log", "key" or "trust".
    pub fn as_str(self) -> &'static str {
        match self {
            BackupFileKind::Snapshot => "snapshot",
            BackupFileKind::Log { .. } => "log",
            BackupFileKind::Key => "key",
            BackupFileKind::Trust => "trust",
        }
    }

    /// The file's name in the backup directory.
    pub fn file_name(self) -> String {
        match self {
            BackupFileKind::Snapshot => SNAPSHOT_FILE.to_string(),
            BackupFileKind::Log { first } => log_file_name(first),
            BackupFileKind::Key => KEY_FILE.to_string(),
            BackupFileKind::Trust => TRUST_FILE.to_string(),
        }
    }
}

/// One file of a backup, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// What it is (its name follows).
    pub kind: BackupFileKind,
    /// Its size in bytes.
    pub bytes: u64,
    /// The CRC32 of its bytes.
    pub crc32: u32,
}

/// What a backup's manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupManifest {
    /// The node backed up.
    pub node_id: String,
    /// The fingerprint of its key (the key itself is in the `key` file, when listed).
    pub fingerprint: String,
    /// The version of the library that wrote the backup.
    pub library_version: String,
    /// When the backup was made, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The log record through which the snapshot holds everything.
    pub snapshot_cut: u64,
    /// The log record through which the backup holds everything (the snapshot plus the
    /// log files after it).
    pub covers_through: u64,
    /// The number the node was to give its next own operation when the backup was made.
    pub next_own_seq: u64,
    /// The files, the snapshot first, then the log files in order, then the key and the
    /// trusted peers.
    pub files: Vec<BackupFile>,
}

impl BackupManifest {
    /// The manifest as written, trailer included.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!(
            "{FORMAT_LINE}\nnode_id {}\nfingerprint {}\nlibrary_version {}\n\
             created_at_ms {}\nsnapshot_cut {}\ncovers_through {}\nnext_own_seq {}\n",
            self.node_id,
            self.fingerprint,
            self.library_version,
            self.created_at_ms,
            self.snapshot_cut,
            self.covers_through,
            self.next_own_seq
        );
        for f in &self.files {
            text.push_str(&format!(
                "file {} {} {} {:08x}\n",
                f.kind.as_str(),
                f.kind.file_name(),
                f.bytes,
                f.crc32
            ));
        }
        let crc = crc32fast::hash(text.as_bytes());
        text.push_str(&format!("end {crc:08x}\n"));
        text
    }

    /// Reads a manifest's text; `path` names it in errors.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<BackupManifest, BackupError> {
        let damaged = |reason: String| BackupError::Damaged {
            path: path.to_path_buf(),
            reason,
        };
        let body_end = text
            .strip_suffix('\n')
            .and_then(|t| t.rfind('\n'))
            .map(|i| i + 1)
            .ok_or_else(|| damaged("no end line: the manifest is cut short".into()))?;
        let (body, trailer) = text.split_at(body_end);
        let stated = trailer
            .strip_prefix("end ")
            .and_then(|t| t.strip_suffix('\n'))
            .and_then(parse_crc)
            .ok_or_else(|| damaged("no end line: the manifest is cut short".into()))?;
        if stated != crc32fast::hash(body.as_bytes()) {
            return Err(damaged("its checksum does not match its text".into()));
        }
        let mut lines = body.lines().enumerate();
        match lines.next() {
            Some((_, FORMAT_LINE)) => {}
            Some((_, line)) if line.starts_with("softadastra-backup ") => {
                return Err(damaged(format!(
                    "format {line:?} (this build reads \"{FORMAT_LINE}\")"
                )));
            }
            _ => return Err(damaged("not a Softadastra backup manifest".into())),
        }
        let mut fields: [Option<&str>; 7] = [None; 7];
        const KEYS: [&str; 7] = [
            "node_id",
            "fingerprint",
            "library_version",
            "created_at_ms",
            "snapshot_cut",
            "covers_through",
            "next_own_seq",
        ];
        let mut files = Vec::new();
        for (i, line) in lines {
            let at = |reason: String| damaged(format!("line {}: {reason}", i + 1));
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| at(format!("{line:?} is not \"key value\"")))?;
            if key == "file" {
                files.push(parse_file(value).map_err(at)?);
                continue;
            }
            let slot = KEYS
                .iter()
                .position(|k| *k == key)
                .ok_or_else(|| at(format!("unknown key {key:?}")))?;
            if fields[slot].replace(value).is_some() {
                return Err(at(format!("{key} appears twice")));
            }
        }
        let field = |slot: usize| {
            fields[slot].ok_or_else(|| damaged(format!("no {} line", KEYS[slot])))
        };
        let number = |slot: usize| -> Result<u64, BackupError> {
            let v = field(slot)?;
            parse_u64(v).ok_or_else(|| damaged(format!("{}: {v:?} is not a number", KEYS[slot])))
        };
        let node_id = field(0)?.to_string();
        crate::id::validate_node_id(&node_id).map_err(|e| damaged(format!("node_id: {e}")))?;
        let fingerprint = field(1)?.to_string();
        if fingerprint.len() != 64
            || !fingerprint
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(damaged(
                "fingerprint: not 64 lowercase hex digits".to_string(),
            ));
        }
        let library_version = field(2)?.to_string();
        if library_version.len() > 64 || library_version.chars().any(char::is_control) {
            return Err(damaged("library_version: not a version".to_string()));
        }
        let manifest = BackupManifest {
            node_id,
            fingerprint,
            library_version,
            created_at_ms: number(3)?,
            snapshot_cut: number(4)?,
            covers_through: number(5)?,
            next_own_seq: number(6)?,
            files,
        };
        manifest.check_files().map_err(damaged)?;
        Ok(manifest)
    }

    /// The list of files makes a backup: one snapshot, first; log files in order, each
    /// named for its first record; at most one key and one trust file; no name twice.
    fn check_files(&self) -> Result<(), String> {
        if self.covers_through < self.snapshot_cut {
            return Err(format!(
                "covers_through {} is before snapshot_cut {}",
                self.covers_through, self.snapshot_cut
            ));
        }
        let count = |kind: fn(&BackupFileKind) -> bool| {
            self.files.iter().filter(|f| kind(&f.kind)).count()
        };
        if count(|k| *k == BackupFileKind::Snapshot) != 1
            || self.files.first().map(|f| f.kind) != Some(BackupFileKind::Snapshot)
        {
            return Err("the first file listed must be the one snapshot".into());
        }
        if count(|k| *k == BackupFileKind::Key) > 1 || count(|k| *k == BackupFileKind::Trust) > 1
        {
            return Err("a key or trust file is listed twice".into());
        }
        let mut previous = None;
        for f in &self.files {
            if let BackupFileKind::Log { first } = f.kind {
                if previous.is_some_and(|p| first <= p) {
                    return Err(format!("log file {} is out of order", log_file_name(first)));
                }
                previous = Some(first);
            }
        }
        Ok(())
    }

    /// The log files, in order.
    pub(crate) fn logs(&self) -> impl Iterator<Item = (u64, &BackupFile)> {
        self.files.iter().filter_map(|f| match f.kind {
            BackupFileKind::Log { first } => Some((first, f)),
            _ => None,
        })
    }

    /// The file of `kind`, if listed.
    pub(crate) fn file(&self, kind: BackupFileKind) -> Option<&BackupFile> {
        self.files.iter().find(|f| f.kind == kind)
    }
}

/// "<kind> <name> <bytes> <crc32>": the name must be the kind's own.
fn parse_file(value: &str) -> Result<BackupFile, String> {
    let parts: Vec<&str> = value.split(' ').collect();
    let &[kind, name, bytes, crc] = parts.as_slice() else {
        return Err(format!("file {value:?} is not \"kind name bytes crc32\""));
    };
    let kind = match kind {
        "snapshot" => BackupFileKind::Snapshot,
        "key" => BackupFileKind::Key,
        "trust" => BackupFileKind::Trust,
        "log" => {
            let first = name
                .strip_prefix("log.")
                .filter(|d| d.len() == 20)
                .and_then(parse_u64)
                .filter(|&f| f > 0)
                .ok_or_else(|| format!("log file name {name:?} is not log.<20 digits>"))?;
            BackupFileKind::Log { first }
        }
        other => return Err(format!("unknown file kind {other:?}")),
    };
    if kind.file_name() != name {
        return Err(format!(
            "a {} file must be named {:?}, not {name:?}",
            kind.as_str(),
            kind.file_name()
        ));
    }
    Ok(BackupFile {
        kind,
        bytes: parse_u64(bytes).ok_or_else(|| format!("size {bytes:?} is not a number"))?,
        crc32: parse_crc(crc).ok_or_else(|| format!("crc32 {crc:?} is not 8 hex digits"))?,
    })
}

/// Decimal digits only (no sign, no spaces), within u64.
fn parse_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Exactly 8 lowercase hex digits.
fn parse_crc(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupManifest {
        BackupManifest {
            node_id: "node-a".into(),
            fingerprint: "ab".repeat(32),
            library_version: "0.1.0".into(),
            created_at_ms: 1_767_225_600_000,
            snapshot_cut: 5000,
            covers_through: 5011,
            next_own_seq: 1234,
            files: vec![
                BackupFile {
                    kind: BackupFileKind::Snapshot,
                    bytes: 100,
                    crc32: 0xdead_beef,
                },
                BackupFile {
                    kind: BackupFileKind::Log { first: 5001 },
                    bytes: 200,
                    crc32: 1,
                },
                BackupFile {
                    kind: BackupFileKind::Key,
                    bytes: 300,
                    crc32: 2,
                },
            ],
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let m = sample();
        let text = m.to_text();
        assert!(text.contains("file log log.00000000000000005001 200 00000001\n"), "{text}");
        assert_eq!(BackupManifest::parse(Path::new("M"), &text).unwrap(), m);
    }

    #[test]
    fn every_changed_byte_and_every_truncation_is_refused_naming_the_file() {
        let text = sample().to_text();
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] ^= 0x01;
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            let e = BackupManifest::parse(Path::new("dir/MANIFEST"), &changed).unwrap_err();
            assert!(e.to_string().contains("dir/MANIFEST"), "byte {i}: {e}");
        }
        for cut in 0..text.len() {
            assert!(BackupManifest::parse(Path::new("M"), &text[..cut]).is_err());
        }
    }

    #[test]
    fn a_name_outside_the_fixed_ones_is_refused_even_with_a_good_checksum() {
        let mut body = sample().to_text();
        body.truncate(body.rfind("end ").unwrap());
        body = body.replace("identity.key", "../../etc/passwd");
        let crc = crc32fast::hash(body.as_bytes());
        body.push_str(&format!("end {crc:08x}\n"));
        let e = BackupManifest::parse(Path::new("M"), &body).unwrap_err();
        assert!(e.to_string().contains("must be named"), "{e}");
    }
}
