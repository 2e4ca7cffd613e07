//! Listing keys by prefix: `sa_client_list` writes a `sa_entries_t`, freed by
//! `sa_entries_free` (the ownership pattern of `sa_peers_t`).

use super::SaStatus;
use super::boundary;
use super::client::{self, SaClient};

/// A key and its value, an element of `sa_entries_t`. The bytes belong to the list and stay
/// valid until `sa_entries_free`; do not modify or free them. Neither is NUL-terminated.
#[repr(C)]
#[derive(Debug)]
pub struct SaEntry {
    /// The key: UTF-8, `key_len` bytes.
    pub key: *const u8,
    pub key_len: usize,
    /// The value: any bytes (zeros included), `value_len` bytes; NULL when `value_len` is 0.
    pub value: *const u8,
    pub value_len: usize,
}

impl SaEntry {
    fn from_rust(key: &str, value: &[u8]) -> SaEntry {
        let (key, key_len) = boundary::array_into_raw(Box::<[u8]>::from(key.as_bytes()));
        let (value, value_len) = boundary::array_into_raw(Box::<[u8]>::from(value));
        SaEntry {
            key: key.cast_const(),
            key_len,
            value: value.cast_const(),
            value_len,
        }
    }
}

impl Drop for SaEntry {
    fn drop(&mut self) {
        // SAFETY: both byte strings were made by array_into_raw in from_rust and are freed
        // only here.
        unsafe {
            boundary::free_array(&mut self.key.cast_mut(), &mut self.key_len);
            boundary::free_array(&mut self.value.cast_mut(), &mut self.value_len);
        }
    }
}

/// Entries of a client (written by `sa_client_list`): `len` elements at `items`, in key
/// order. The caller owns the struct (usually on its stack); the library owns the array
/// and its bytes until `sa_entries_free`. `items` is NULL when `len` is 0. Do not change
/// `items` or `len`.
#[repr(C)]
#[derive(Debug)]
pub struct SaEntries {
    pub items: *mut SaEntry,
    pub len: usize,
}

impl SaEntries {
    fn from_rust(entries: &[(String, Vec<u8>)]) -> SaEntries {
        let (items, len) = boundary::array_into_raw(
            entries
                .iter()
                .map(|(k, v)| SaEntry::from_rust(k, v))
                .collect(),
        );
        SaEntries { items, len }
    }
}

/// Frees the array of `*entries` and every key and value in it, and resets `*entries` to
/// `{NULL, 0}`, so a second call is a no-op. NULL `entries`, or one whose `items` is NULL,
/// is a no-op.
///
/// Ownership: `entries->items` must come from `sa_client_list` and must not be used
/// afterwards. Thread safety: do not free the same list from two threads.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_entries_free(entries: *mut SaEntries) {
    let _ = boundary::catch("sa_entries_free", || {
        // SAFETY: the caller passes NULL or a valid struct it owns.
        let Some(e) = (unsafe { entries.as_mut() }) else {
            return Ok(());
        };
        // SAFETY: items/len came from SaEntries::from_rust, per this function's contract.
        unsafe { boundary::free_array(&mut e.items, &mut e.len) };
        Ok(())
    });
}

/// Writes the keys that start with `prefix` (`prefix_len` bytes of UTF-8; length 0 for
/// every key), in key order, with their values, to `*out_entries`. Removed keys are not
/// listed.
///
/// Ownership: `prefix` is only read during the call. The caller owns the struct
/// `*out_entries` and frees what it holds with `sa_entries_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_entries`, `prefix` NULL with a non-zero length or not UTF-8).
/// `*out_entries` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_list(
    client: *const SaClient,
    prefix: *const u8,
    prefix_len: usize,
    out_entries: *mut SaEntries,
) -> SaStatus {
    const F: &str = "sa_client_list";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle, and a prefix valid for its length.
        let (c, prefix) = unsafe {
            (
                client::client(client, F)?,
                boundary::bytes_arg(prefix, prefix_len, F, "prefix")?,
            )
        };
        let prefix = std::str::from_utf8(prefix).map_err(|_| {
            boundary::FfiError::new(
                crate::error::ErrorCode::InvalidArgument,
                format!("{F}: prefix is not UTF-8"),
                "prefix",
            )
        })?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_entries, F, "out_entries") }?;
        let entries = c.list(prefix)?;
        out.write(SaEntries::from_rust(&entries));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use crate::ffi::boundary::BoxHandle;

    #[test]
    fn listing_by_prefix_hands_out_owned_bytes_and_frees_them_once() {
        let handle = SaClient {
            client: crate::Client::new(ClientOptions::memory_only("c-list")),
        }
        .into_raw();
        // SAFETY: a live handle; buffers valid for their lengths; the list is freed twice
        // to check the second call is a no-op.
        unsafe {
            assert_eq!(client::sa_client_open(handle), SaStatus::SaOk);
            for (k, v) in [("a/1", &b"x\0y"[..]), ("a/2", b""), ("b/1", b"z")] {
                let s = client::sa_client_put(handle, k.as_ptr(), k.len(), v.as_ptr(), v.len());
                assert_eq!(s, SaStatus::SaOk);
            }
            let mut list = SaEntries {
                items: std::ptr::null_mut(),
                len: 99,
            };
            assert_eq!(
                sa_client_list(handle, b"a/".as_ptr(), 2, &mut list),
                SaStatus::SaOk
            );
            assert_eq!(list.len, 2);
            let items = std::slice::from_raw_parts(list.items, list.len);
            let bytes = |p: *const u8, n: usize| std::slice::from_raw_parts(p, n).to_vec();
            assert_eq!(bytes(items[0].key, items[0].key_len), b"a/1");
            assert_eq!(bytes(items[0].value, items[0].value_len), b"x\0y");
            assert_eq!(items[1].value_len, 0);
            sa_entries_free(&mut list);
            assert!(list.items.is_null() && list.len == 0);
            sa_entries_free(&mut list);
            let mut all = SaEntries {
                items: std::ptr::null_mut(),
                len: 0,
            };
            assert_eq!(
                sa_client_list(handle, std::ptr::null(), 0, &mut all),
                SaStatus::SaOk
            );
            assert_eq!(all.len, 3);
            sa_entries_free(&mut all);
            let bad = [0xffu8];
            let s = sa_client_list(handle, bad.as_ptr(), 1, &mut all);
            assert_eq!(s, SaStatus::SaInvalidArgument);
            client::sa_client_free(handle);
        }
    }
}
