//! Little-endian decoding shared by the WAL payloads and the wire messages: a cursor over
//! bytes whose every read checks the length first, so malformed input is an error naming
//! the field, never a panic.

/// A cursor over bytes being decoded.
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// What is being read, for errors: "store payload", "message", ...
    subject: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], subject: &'static str) -> Self {
        Reader { bytes, subject }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("{} truncated in {what}", self.subject));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// `n` bytes of UTF-8.
    pub fn str(&mut self, n: usize, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n, what)?).map_err(|_| format!("{what} is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_names_the_truncated_field() {
        let mut r = Reader::new(&[1, 2, 0, 3, 0, 0, 0, b'h', b'i'], "thing");
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u16("b"), Ok(2));
        assert_eq!(r.u32("c"), Ok(3));
        assert_eq!(r.str(2, "d"), Ok("hi"));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.u64("e"), Err("thing truncated in e".to_string()));
    }
}
