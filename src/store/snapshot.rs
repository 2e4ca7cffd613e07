//! The snapshot file: the whole live state needed to restart, so that the log before it can
//! be deleted (issue 13). This file is the format and its I/O only; what goes in the
//! blocks is the business of the layers that write them (the store its entries, clock and
//! version vector; the sync engine its outbox). Layout (all integers little-endian; also in
//! docs/snapshot-format.md):
//!
//! ```text
//! header, 48 bytes:
//!   0  8  magic "SOFTASNP"
//!   8  4  format version (1)
//!  12  4  reserved, zero
//!  16  8  covers_through: the log sequence number through which the snapshot holds every
//!         record; records after it are replayed on top
//!  24  8  written at, milliseconds since the Unix epoch
//!  32 12  reserved, zero
//!  44  4  CRC32 of bytes 0..44
//! blocks, back to back:
//!   0  4  payload length n (at most MAX_BLOCK_LEN)
//!   4  1  block type
//!   5  3  reserved, zero
//!   8  n  payload
//! 8+n  4  CRC32 of bytes 0..8+n of the block
//! footer, 32 bytes:
//!   0  8  magic "SNAPDONE"
//!   8  8  block count
//!  16  8  bytes before the footer (header and blocks)
//!  24  4  CRC32 of every byte before the footer
//!  28  4  CRC32 of footer bytes 0..28
//! ```
//!
//! A snapshot is written to `<name>.tmp`, synced, renamed into place and its directory
//! synced: a crash leaves either no snapshot of that name or a complete one. On reading,
//! everything is checked (lengths against the file, every checksum, the footer's counts);
//! any damage is an error naming the file and the offset, and nothing it read is to be
//! used. Nothing read from the file sizes an allocation beyond [`MAX_BLOCK_LEN`].
//!
//! Files are reached through the storage seam ([`SnapshotDir`]): real files, or the
//! simulated disk of the power-cut tests.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io_error::describe_io;
use crate::wal::{FileSnapshotDir, SnapshotDir, WalStorage};

/// First eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"SOFTASNP";
/// First eight bytes of the footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"SNAPDONE";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 48;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 32;
/// Bytes around a block's payload: its header and its checksum.
const BLOCK_OVERHEAD: usize = 12;
/// Largest block payload: one value at its limit with room to spare. Writers cut their
/// data into blocks far smaller than this (about 1 MiB).
pub const MAX_BLOCK_LEN: usize = crate::store::MAX_VALUE_LEN + 1024 * 1024;

/// Block types. The store's own are below 16; the layers above use 16 and up.
pub mod block {
    /// Entries, as a store operations payload (`store::op`): key, value or tombstone,
    /// version, origin, origin sequence number, base.
    pub const ENTRIES: u8 = 1;
    /// The hybrid clock and the next own sequence number.
    pub const CLOCK: u8 = 2;
    /// The version vector: what has been seen of every origin.
    pub const VECTOR: u8 = 3;
    /// The removals collected (or learned collected by a peer): the frontier and the
    /// watermarks. A snapshot without it has collected nothing.
    pub const COLLECTED: u8 = 4;
    /// The sync engine's outbox and progress.
    pub const SYNC: u8 = 16;
}

/// Why a snapshot cannot be read or written. Names the file and, for damage, the offset.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be created, written, synced, renamed or read.
    #[error("snapshot {path}: cannot {op}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The snapshot file.
        path: PathBuf,
        /// The operating system's reason.
        cause: String,
    },
    /// The file is not a complete, intact snapshot.
    #[error("snapshot {path} is damaged at offset {offset}: {reason}")]
    Damaged {
        /// The snapshot file.
        path: PathBuf,
        /// Where the damage was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A block's content was refused by the layer that reads it.
    #[error("snapshot {path}: block at offset {offset}: {reason}")]
    BadBlock {
        /// The snapshot file.
        path: PathBuf,
        /// The block's offset.
        offset: u64,
        /// What the layer found wrong.
        reason: String,
    },
}

impl SnapshotError {
    /// The snapshot file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SnapshotError::Io { path, .. }
            | SnapshotError::Damaged { path, .. }
            | SnapshotError::BadBlock { path, .. } => path,
        }
    }
}

/// What a snapshot's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The log sequence number through which the snapshot holds every record.
    pub covers_through: u64,
    /// When it was written (milliseconds since the Unix epoch).
    pub written_at_ms: u64,
    /// Blocks in it.
    pub blocks: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

fn header(covers_through: u64, written_at_ms: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&covers_through.to_le_bytes());
    h[24..32].copy_from_slice(&written_at_ms.to_le_bytes());
    let crc = crc32fast::hash(&h[0..44]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The name of the temporary file snapshot `name` is written to.
pub fn tmp_name(name: &str) -> String {
    format!("{name}.tmp")
}

/// A file of the seam written from start to end, as [`Write`] (behind a buffer).
struct SeqWriter {
    file: Box<dyn WalStorage>,
    at: u64,
}

impl Write for SeqWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_at(self.at, buf)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file of the seam read from start to end, as [`Read`] (behind a buffer).
struct SeqReader {
    file: Box<dyn WalStorage>,
    at: u64,
    len: u64,
}

impl Read for SeqReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.at).min(buf.len() as u64) as usize;
        self.file.read_at(self.at, &mut buf[..n])?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Writes a snapshot block by block to `<name>.tmp` in a [`SnapshotDir`];
/// [`SnapshotWriter::finish`] makes it durable and puts it in place under `name`. Dropped
/// unfinished, it removes the temporary file.
pub struct SnapshotWriter {
    dir: Arc<dyn SnapshotDir>,
    name: String,
    tmp: String,
    /// `None` only while dropped.
    out: Option<BufWriter<SeqWriter>>,
    /// Set once the temporary file was renamed into place: it is gone.
    placed: bool,
    crc: crc32fast::Hasher,
    written: u64,
    blocks: u64,
    covers_through: u64,
    written_at_ms: u64,
}

impl SnapshotWriter {
    /// Starts the snapshot that will be file `name` of `dir`, holding every record through
    /// `covers_through`.
    pub fn create(
        dir: Arc<dyn SnapshotDir>,
        name: &str,
        covers_through: u64,
        written_at_ms: u64,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let tmp = tmp_name(name);
        let file = dir
            .create(&tmp)
            .map_err(|e| io_error("create", &dir.path(&tmp), &e))?;
        let mut w = SnapshotWriter {
            dir,
            name: name.to_string(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, SeqWriter { file, at: 0 })),
            placed: false,
            crc: crc32fast::Hasher::new(),
            written: 0,
            blocks: 0,
            covers_through,
            written_at_ms,
        };
        w.write(&header(covers_through, written_at_ms))?;
        Ok(w)
    }

    /// [`SnapshotWriter::create`] for the real file `path`.
    pub fn create_file(
        path: &Path,
        covers_through: u64,
        written_at_ms: u64,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let (dir, name) = FileSnapshotDir::of_file(path);
        Self::create(Arc::new(dir), &name, covers_through, written_at_ms)
    }

    /// The path of the temporary file, for messages.
    fn tmp_path(&self) -> PathBuf {
        self.dir.path(&self.tmp)
    }

    fn out(&mut self) -> &mut BufWriter<SeqWriter> {
        self.out.as_mut().expect("taken only by drop")
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.out()
            .write_all(bytes)
            .map_err(|e| io_error("write", &self.tmp_path(), &e))?;
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends one block. A payload over [`MAX_BLOCK_LEN`] is a bug of the caller (it cuts
    /// its data into small blocks) and is refused.
    pub fn block(&mut self, block_type: u8, payload: &[u8]) -> Result<(), SnapshotError> {
        if payload.len() > MAX_BLOCK_LEN {
            return Err(SnapshotError::BadBlock {
                path: self.tmp_path(),
                offset: self.written,
                reason: format!(
                    "a block of {} bytes exceeds the limit of {MAX_BLOCK_LEN}",
                    payload.len()
                ),
            });
        }
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[4] = block_type;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(payload);
        let crc = crc.finalize().to_le_bytes();
        self.write(&head)?;
        self.write(payload)?;
        self.write(&crc)?;
        self.blocks += 1;
        Ok(())
    }

    /// Writes the footer, syncs the file, renames it into place and syncs the directory.
    /// Only then is the snapshot there, complete.
    pub fn finish(mut self) -> Result<SnapshotInfo, SnapshotError> {
        let mut footer = [0u8; FOOTER_LEN];
        footer[0..8].copy_from_slice(&FOOTER_MAGIC);
        footer[8..16].copy_from_slice(&self.blocks.to_le_bytes());
        footer[16..24].copy_from_slice(&self.written.to_le_bytes());
        footer[24..28].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        let crc = crc32fast::hash(&footer[0..28]);
        footer[28..32].copy_from_slice(&crc.to_le_bytes());
        // A failure before the rename leaves the temporary file to `drop`, which removes it.
        let out = self.out();
        out.write_all(&footer)
            .and_then(|()| out.flush())
            .map_err(|e| io_error("write", &self.tmp_path(), &e))?;
        self.out()
            .get_mut()
            .file
            .sync_all()
            .map_err(|e| io_error("sync", &self.tmp_path(), &e))?;
        self.dir
            .rename(&self.tmp, &self.name)
            .map_err(|e| io_error("rename", &self.tmp_path(), &e))?;
        self.placed = true;
        self.dir
            .sync()
            .map_err(|e| io_error("sync the directory of", &self.dir.path(&self.name), &e))?;
        Ok(SnapshotInfo {
            covers_through: self.covers_through,
            written_at_ms: self.written_at_ms,
            blocks: self.blocks,
            bytes: self.written + FOOTER_LEN as u64,
        })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // What is still buffered is dropped, not written (a BufWriter would write it).
        if let Some(out) = self.out.take() {
            let _ = out.into_parts();
        }
        if !self.placed {
            // Unfinished: what was written is no snapshot.
            let _ = self.dir.remove(&self.tmp);
        }
    }
}

fn io_error(op: &'static str, path: &Path, e: &std::io::Error) -> SnapshotError {
    SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        cause: describe_io(e),
    }
}

/// Reads the snapshot at the real file `path`: [`read`].
pub fn read_file(
    path: &Path,
    on_block: impl FnMut(u8, &[u8]) -> Result<(), String>,
) -> Result<SnapshotInfo, SnapshotError> {
    let (dir, name) = FileSnapshotDir::of_file(path);
    read(&dir, &name, on_block)
}

/// Reads snapshot `name` of `dir`, checking everything, and hands each block to
/// `on_block` (type, payload) in order. An error from `on_block` is reported as a bad
/// block. When this returns an error, what `on_block` received must be discarded: the
/// snapshot is not complete or not intact.
pub fn read(
    dir: &dyn SnapshotDir,
    name: &str,
    mut on_block: impl FnMut(u8, &[u8]) -> Result<(), String>,
) -> Result<SnapshotInfo, SnapshotError> {
    let path_buf = dir.path(name);
    let path = path_buf.as_path();
    let mut file = dir.open(name).map_err(|e| io_error("open", path, &e))?;
    let len = file
        .file_len()
        .map_err(|e| io_error("read the size of", path, &e))?;
    let damaged = |offset: u64, reason: String| SnapshotError::Damaged {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(damaged(
            0,
            format!("{len} bytes is shorter than a header and a footer"),
        ));
    }
    let body_end = len - FOOTER_LEN as u64;
    let mut input = BufReader::with_capacity(1 << 20, SeqReader { file, at: 0, len });
    let mut whole = crc32fast::Hasher::new();
    let read_exact = |input: &mut BufReader<SeqReader>, buf: &mut [u8], offset: u64| {
        input
            .read_exact(buf)
            .map_err(|e| damaged(offset, format!("cannot read: {}", describe_io(&e))))
    };

    let mut h = [0u8; HEADER_LEN];
    read_exact(&mut input, &mut h, 0)?;
    if h[0..8] != MAGIC {
        return Err(damaged(0, "not a Softadastra snapshot (bad magic)".into()));
    }
    if u32::from_le_bytes(h[44..48].try_into().expect("4 bytes")) != crc32fast::hash(&h[0..44])
    {
        return Err(damaged(0, "the header's checksum does not match".into()));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(damaged(
            8,
            format!("format version {version} (this build reads version {FORMAT_VERSION})"),
        ));
    }
    whole.update(&h);
    let covers_through = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let written_at_ms = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));

    let mut offset = HEADER_LEN as u64;
    let mut blocks = 0u64;
    let mut payload = Vec::new();
    while offset < body_end {
        let mut head = [0u8; 8];
        if body_end - offset < (BLOCK_OVERHEAD as u64) {
            return Err(damaged(offset, "a block header runs into the footer".into()));
        }
        read_exact(&mut input, &mut head, offset)?;
        let n = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
        if n > MAX_BLOCK_LEN {
            return Err(damaged(
                offset,
                format!("a block of {n} bytes exceeds the limit of {MAX_BLOCK_LEN}"),
            ));
        }
        let end = offset
            .checked_add((n + BLOCK_OVERHEAD) as u64)
            .filter(|&end| end <= body_end)
            .ok_or_else(|| damaged(offset, format!("a block of {n} bytes runs past the end")))?;
        payload.resize(n, 0);
        read_exact(&mut input, &mut payload, offset + 8)?;
        let mut crc = [0u8; 4];
        read_exact(&mut input, &mut crc, offset + 8 + n as u64)?;
        let mut check = crc32fast::Hasher::new();
        check.update(&head);
        check.update(&payload);
        if u32::from_le_bytes(crc) != check.finalize() {
            return Err(damaged(offset, "the block's checksum does not match".into()));
        }
        whole.update(&head);
        whole.update(&payload);
        whole.update(&crc);
        on_block(head[4], &payload).map_err(|reason| SnapshotError::BadBlock {
            path: path.to_path_buf(),
            offset,
            reason,
        })?;
        blocks += 1;
        offset = end;
    }

    let mut footer = [0u8; FOOTER_LEN];
    read_exact(&mut input, &mut footer, body_end)?;
    let field = |range: std::ops::Range<usize>| {
        u64::from_le_bytes(footer[range].try_into().expect("8 bytes"))
    };
    if footer[0..8] != FOOTER_MAGIC {
        return Err(damaged(body_end, "no footer: the snapshot is incomplete".into()));
    }
    if u32::from_le_bytes(footer[28..32].try_into().expect("4 bytes"))
        != crc32fast::hash(&footer[0..28])
    {
        return Err(damaged(body_end, "the footer's checksum does not match".into()));
    }
    if field(8..16) != blocks || field(16..24) != body_end {
        return Err(damaged(
            body_end,
            format!(
                "the footer counts {} blocks in {} bytes; the file has {blocks} in {body_end}",
                field(8..16),
                field(16..24)
            ),
        ));
    }
    if u32::from_le_bytes(footer[24..28].try_into().expect("4 bytes")) != whole.finalize() {
        return Err(damaged(
            body_end,
            "the whole-file checksum does not match".into(),
        ));
    }
    Ok(SnapshotInfo {
        covers_through,
        written_at_ms,
        blocks,
        bytes: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_sample(path: &Path) -> SnapshotInfo {
        let mut w = SnapshotWriter::create_file(path, 42, 1_700_000_000_000).unwrap();
        w.block(block::ENTRIES, b"first block").unwrap();
        w.block(block::CLOCK, &[]).unwrap();
        w.block(block::SYNC, &vec![7u8; 100_000]).unwrap();
        w.finish().unwrap()
    }

    /// Blocks as read: (type, payload).
    type Blocks = Vec<(u8, Vec<u8>)>;

    fn read_all(path: &Path) -> Result<(SnapshotInfo, Blocks), SnapshotError> {
        let mut blocks = Vec::new();
        let info = read_file(path, |t, p| {
            blocks.push((t, p.to_vec()));
            Ok(())
        })?;
        Ok((info, blocks))
    }

    #[test]
    fn a_snapshot_reads_back_block_by_block_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let written = write_sample(&path);
        let (info, blocks) = read_all(&path).unwrap();
        assert_eq!(info, written);
        assert_eq!((info.covers_through, info.blocks), (42, 3));
        assert_eq!(info.bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(blocks[0], (block::ENTRIES, b"first block".to_vec()));
        assert_eq!(blocks[1], (block::CLOCK, vec![]));
        assert_eq!(blocks[2].1.len(), 100_000);
        assert!(!dir.path().join("s.snap.tmp").exists());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let mut w = SnapshotWriter::create_file(&path, 9, 1).unwrap();
        w.block(block::ENTRIES, b"abc").unwrap();
        w.block(block::VECTOR, b"defgh").unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.snap");
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x20;
            std::fs::write(&bad, &bytes).unwrap();
            let e = read_all(&bad).unwrap_err();
            assert!(
                matches!(e, SnapshotError::Damaged { .. }),
                "byte {i}: {e}"
            );
            assert!(e.to_string().contains("bad.snap"), "{e}");
        }
        for cut in 0..good.len() {
            std::fs::write(&bad, &good[..cut]).unwrap();
            assert!(read_all(&bad).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_block_length_beyond_the_file_is_refused_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write_sample(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        // The first block claims 4 GiB - 1.
        bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = read_all(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!("offset {HEADER_LEN}")) && e.contains("exceeds the limit"),
            "{e}"
        );
    }

    #[test]
    fn an_unfinished_snapshot_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let mut w = SnapshotWriter::create_file(&path, 1, 1).unwrap();
        w.block(block::ENTRIES, b"x").unwrap();
        drop(w);
        assert!(!path.exists());
        assert!(!dir.path().join("s.snap.tmp").exists());
    }

    #[test]
    fn a_layer_refusing_its_block_is_a_bad_block_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write_sample(&path);
        let e = read_file(&path, |t, _| {
            if t == block::CLOCK {
                Err("clock block truncated".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        let offset = (HEADER_LEN + BLOCK_OVERHEAD + b"first block".len()) as u64;
        assert!(
            matches!(&e, SnapshotError::BadBlock { offset: o, .. } if *o == offset),
            "{e}"
        );
    }
}
