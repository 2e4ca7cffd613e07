//! Listing keys by prefix: `sa_client_list` returns a `sa_entries_t`, freed by
//! `sa_entries_free` (the library allocates, the caller frees, as for all returned data).

use super::SaStatus;
use super::boundary::{self, PointerArray, Returned};
use super::client::{self, SaClient};

/// A key and its value, an element of `sa_entries_t`. The bytes belong to the list and stay
/// valid until `sa_entries_free`; do not modify or free them. Neither is NUL-terminated.
#[repr(C)]
#[derive(Debug)]
pub struct SaEntry {
    /// The key: UTF-8, `key_len` bytes.
    pub key: *const u8,
    pub key_len: usize,
    /// The value: any bytes (zeros included), `value_len` bytes.
    pub value: *const u8,
    pub value_len: usize,
}

/// Entries of a client (returned by `sa_client_list`), in key order: `items[i]` points to
/// entry i, for i below `len`. Everything belongs to the list until `sa_entries_free`; do
/// not change it.
#[repr(C)]
#[derive(Debug)]
pub struct SaEntries {
    pub items: *const *const SaEntry,
    pub len: usize,
}

/// The storage behind a [`SaEntries`]: the keys and values, and the entries pointing into
/// them.
type Keep = (Vec<(String, Vec<u8>)>, PointerArray<SaEntry>);

impl SaEntries {
    fn into_raw(entries: Vec<(String, Vec<u8>)>) -> *mut SaEntries {
        let items = PointerArray::new(
            entries
                .iter()
                .map(|(key, value)| SaEntry {
                    key: key.as_ptr(),
                    key_len: key.len(),
                    value: value.as_ptr(),
                    value_len: value.len(),
                })
                .collect(),
        );
        let (pointers, len) = items.raw();
        Returned::into_raw(
            SaEntries {
                items: pointers,
                len,
            },
            (entries, items),
        )
    }
}

/// Frees a list from `sa_client_list`, with every key and value in it. NULL is a no-op.
///
/// Ownership: `entries` must not be used afterwards. Thread safety: any thread, once.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_entries_free(entries: *mut SaEntries) {
    let _ = boundary::catch("sa_entries_free", || {
        // SAFETY: the caller passes NULL or a list from SaEntries::into_raw, used no more.
        unsafe { Returned::<SaEntries, Keep>::free(entries) };
        Ok(())
    });
}

/// Writes the keys that start with `prefix` (`prefix_len` bytes of UTF-8; length 0 for
/// every key), in key order, with their values, to `*out_entries`. Removed keys are not
/// listed.
///
/// Ownership: `prefix` is only read during the call. The caller frees `*out_entries` with
/// `sa_entries_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_entries`, `prefix` NULL with a non-zero length or not UTF-8).
/// `*out_entries` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_list(
    client: *const SaClient,
    prefix: *const u8,
    prefix_len: usize,
    out_entries: *mut *mut SaEntries,
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
        out.write(SaEntries::into_raw(entries));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use crate::ffi::boundary::BoxHandle;

    #[test]
    fn listing_by_prefix_hands_out_the_bytes_until_the_list_is_freed() {
        let handle = SaClient {
            client: crate::Client::new(ClientOptions::memory_only("c-list")),
        }
        .into_raw();
        // SAFETY: a live handle; buffers valid for their lengths; each list is read before
        // it is freed.
        unsafe {
            assert_eq!(client::sa_client_open(handle), SaStatus::SaOk);
            for (k, v) in [("a/1", &b"x\0y"[..]), ("a/2", b""), ("b/1", b"z")] {
                let s = client::sa_client_put(handle, k.as_ptr(), k.len(), v.as_ptr(), v.len());
                assert_eq!(s, SaStatus::SaOk);
            }
            let mut list = std::ptr::null_mut();
            assert_eq!(
                sa_client_list(handle, b"a/".as_ptr(), 2, &mut list),
                SaStatus::SaOk
            );
            assert_eq!((*list).len, 2);
            let items = std::slice::from_raw_parts((*list).items, (*list).len);
            let bytes = |p: *const u8, n: usize| std::slice::from_raw_parts(p, n).to_vec();
            let first = &*items[0];
            assert_eq!(bytes(first.key, first.key_len), b"a/1");
            assert_eq!(bytes(first.value, first.value_len), b"x\0y");
            assert_eq!((*items[1]).value_len, 0);
            sa_entries_free(list);
            let mut all = std::ptr::null_mut();
            assert_eq!(
                sa_client_list(handle, std::ptr::null(), 0, &mut all),
                SaStatus::SaOk
            );
            assert_eq!((*all).len, 3);
            sa_entries_free(all);
            sa_entries_free(std::ptr::null_mut());
            let bad = [0xffu8];
            let s = sa_client_list(handle, bad.as_ptr(), 1, &mut all);
            assert_eq!(s, SaStatus::SaInvalidArgument);
            client::sa_client_free(handle);
        }
    }
}
