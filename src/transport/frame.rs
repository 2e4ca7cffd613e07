//! Frames on a TCP stream: a length, a type and a CRC32, then the payload. Pure logic.
//!
//! ```text
//! 0  4  payload length n (u32 LE)
//! 4  1  message type
//! 5  4  CRC32 of the type byte followed by the payload
//! 9  n  payload
//! ```

/// Bytes before the payload.
pub const HEADER_LEN: usize = 9;

/// Why a stream can no longer be read. Each one closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame checksum mismatch (type {kind}, {len} bytes)")]
    BadChecksum { kind: u8, len: usize },
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(kind);
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reassembles frames from the bytes of a stream, whatever the read boundaries.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    max_payload: usize,
}

impl FrameDecoder {
    pub fn new(max_payload: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_payload,
        }
    }

    /// Changes the largest payload accepted from now on (a connection accepts larger frames
    /// once its handshake is done).
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        let rest = &self.buf[self.start..];
        if rest.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len > self.max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_payload,
            });
        }
        if rest.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let kind = rest[4];
        let crc = u32::from_le_bytes(rest[5..9].try_into().expect("4 bytes"));
        let payload = &rest[HEADER_LEN..HEADER_LEN + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        if h.finalize() != crc {
            return Err(FrameError::BadChecksum { kind, len });
        }
        let payload = payload.to_vec();
        self.start += HEADER_LEN + len;
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        let mut stream = Vec::new();
        encode(&mut stream, 3, b"hello");
        encode(&mut stream, 4, b"");
        encode(&mut stream, 5, &[7u8; 300]);
        for chunk in [1, 2, 7, 9, 64, 1000] {
            let mut d = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                d.feed(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 3, "chunk {chunk}");
            assert_eq!(frames[0], (3, b"hello".to_vec()));
            assert_eq!(frames[2].1.len(), 300);
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut d = FrameDecoder::new(100);
        d.feed(&1000u32.to_le_bytes());
        d.feed(&[1, 0, 0, 0, 0]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: 1000,
                max: 100
            })
        );
    }

    #[test]
    fn a_corrupted_frame_is_refused() {
        let mut stream = Vec::new();
        encode(&mut stream, 3, b"hello");
        stream[10] ^= 1;
        let mut d = FrameDecoder::new(100);
        d.feed(&stream);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::BadChecksum { kind: 3, .. })
        ));
    }
}
