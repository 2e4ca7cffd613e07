//! `sa_client_t`: a local-first node (the C face of [`crate::Client`]).
//!
//! Thread safety: one `sa_client_t` may be used from several threads at once by every
//! function here except `sa_client_free`, which must be the last call on it.

use std::ffi::c_char;
use std::mem::MaybeUninit;

use crate::node::Client;

use super::SaStatus;
use super::boundary::{self, BoxHandle, FfiError};
use super::bytes::SaBytes;
use super::node_info::SaNodeInfo;
use super::options::SaOptions;
use super::write_batch::SaBatch;

/// A client handle. Create with `sa_client_new`, free with `sa_client_free`.
pub struct SaClient {
    pub(crate) client: Client,
}

impl BoxHandle for SaClient {}

/// Borrows the client behind `client` for `function`.
///
/// # Safety
/// `client` is NULL or a live handle from `sa_client_new`.
pub(super) unsafe fn client<'a>(
    client: *const SaClient,
    function: &str,
) -> Result<&'a Client, FfiError> {
    // SAFETY: forwarded from the caller.
    unsafe { SaClient::borrow(client, function, "client") }.map(|c| &c.client)
}

/// Creates a closed client with a copy of the options and writes it to `*out_client`.
/// Nothing is checked or touched on disk until `sa_client_open`.
///
/// Ownership: `options` is only read during the call (free it when you like). The caller
/// owns the new client and must free it with `sa_client_free`.
/// Errors: `SA_INVALID_ARGUMENT` when `options` or `out_client` is NULL.
/// `*out_client` is written only on success.
/// Thread safety: any thread, while no thread changes `options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_new(
    options: *const SaOptions,
    out_client: *mut *mut SaClient,
) -> SaStatus {
    const F: &str = "sa_client_new";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live options handle.
        let options = unsafe { SaOptions::borrow(options, F, "options") }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_client, F, "out_client") }?;
        out.write(
            SaClient {
                client: Client::new(options.options.clone()),
            }
            .into_raw(),
        );
        Ok(())
    })
}

/// Frees a client, closing it first if it is open (which flushes the WAL). A close error
/// is logged and lost: call `sa_client_close` first to see it. NULL is a no-op.
///
/// Ownership: no other thread may use `client` during or after this call.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_free(client: *mut SaClient) {
    let _ = boundary::catch("sa_client_free", || {
        // SAFETY: the caller passes NULL or a live handle nobody uses any more.
        unsafe { SaClient::free(client) };
        Ok(())
    });
}

/// Opens the client: checks the options, opens the WAL (creating the file, never its
/// directory) and replays it. Opening an open client does nothing.
///
/// Errors: `SA_INVALID_ARGUMENT` (invalid options, the context names the field),
/// `SA_IO_ERROR` (missing directory, not a directory, permission denied, WAL locked by
/// another process; the context is the WAL path), `SA_STORE_ERROR` (corrupt WAL).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_open(client: *mut SaClient) -> SaStatus {
    const F: &str = "sa_client_open";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::status(F, || Ok(unsafe { self::client(client, F) }?.open()?))
}

/// Flushes and closes the client. Closing a closed client does nothing; it can be opened
/// again. Errors: `SA_IO_ERROR` when the final flush fails.
/// Thread safety: any thread; waits for writes in progress on other threads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_close(client: *mut SaClient) -> SaStatus {
    const F: &str = "sa_client_close";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::status(F, || Ok(unsafe { self::client(client, F) }?.close()?))
}

/// Whether the client is open. NULL gives false.
/// Thread safety: any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_is_open(client: *const SaClient) -> bool {
    const F: &str = "sa_client_is_open";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::catch(F, || Ok(unsafe { self::client(client, F) }?.is_open())).unwrap_or(false)
}

/// Stores `value` under `key`. With `auto_flush` on, returns once the write is on disk.
///
/// Ownership: `key` and `value` are only read during the call (the library copies them).
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (empty key, key over 1024
/// bytes or not UTF-8, value over 16 MiB, NULL pointer with a non-zero length),
/// `SA_IO_ERROR` (the write or sync failed, e.g. disk full; the context is the WAL path;
/// later writes fail until the client is reopened). Nothing is stored on error.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_put(
    client: *mut SaClient,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> SaStatus {
    const F: &str = "sa_client_put";
    boundary::status(F, || {
        // SAFETY: the caller passes a live handle and buffers valid for their lengths.
        let (c, key, value) = unsafe {
            (
                self::client(client, F)?,
                boundary::key_arg(key, key_len, F)?,
                boundary::bytes_arg(value, value_len, F, "value")?,
            )
        };
        c.put(key, value)?;
        Ok(())
    })
}

/// Writes the value of `key` to `*out_value`, new bytes the caller frees with
/// `sa_bytes_free`.
///
/// Errors: `SA_NOT_FOUND` when the key has no value (the context is the key),
/// `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (bad key, NULL `out_value`).
/// `*out_value` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_get(
    client: *const SaClient,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut SaBytes,
) -> SaStatus {
    const F: &str = "sa_client_get";
    boundary::status(F, || {
        // SAFETY: the caller passes a live handle and a key valid for key_len bytes.
        let (c, key) = unsafe {
            (
                self::client(client, F)?,
                boundary::key_arg(key, key_len, F)?,
            )
        };
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_value, F, "out_value") }?;
        let value = c.get(key)?;
        out.write(SaBytes::into_raw(value));
        Ok(())
    })
}

/// Removes `key`. Removing a missing key succeeds.
///
/// Errors: as `sa_client_put` (without the value checks).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_remove(
    client: *mut SaClient,
    key: *const u8,
    key_len: usize,
) -> SaStatus {
    const F: &str = "sa_client_remove";
    boundary::status(F, || {
        // SAFETY: the caller passes a live handle and a key valid for key_len bytes.
        let (c, key) = unsafe {
            (
                self::client(client, F)?,
                boundary::key_arg(key, key_len, F)?,
            )
        };
        c.remove(key)?;
        Ok(())
    })
}

/// Writes whether `key` has a value to `*out_contains`.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (bad key, NULL out-param).
/// `*out_contains` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_contains(
    client: *const SaClient,
    key: *const u8,
    key_len: usize,
    out_contains: *mut bool,
) -> SaStatus {
    const F: &str = "sa_client_contains";
    boundary::status(F, || {
        // SAFETY: the caller passes a live handle and a key valid for key_len bytes.
        let (c, key) = unsafe {
            (
                self::client(client, F)?,
                boundary::key_arg(key, key_len, F)?,
            )
        };
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_contains, F, "out_contains") }?;
        out.write(c.contains(key)?);
        Ok(())
    })
}

/// Writes the number of keys with a value to `*out_size`.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL out-param).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_size(client: *const SaClient, out_size: *mut usize) -> SaStatus {
    const F: &str = "sa_client_size";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { self::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_size, F, "out_size") }?;
        out.write(c.size()?);
        Ok(())
    })
}

/// Makes every buffered write durable (useful with `auto_flush` off).
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_IO_ERROR` (the sync failed).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_flush(client: *mut SaClient) -> SaStatus {
    const F: &str = "sa_client_flush";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::status(F, || Ok(unsafe { self::client(client, F) }?.flush()?))
}

/// Compacts the node's storage: writes a snapshot of its live state, then deletes the log
/// it covers and older snapshots (docs/wal-format.md). Writers on other threads keep going
/// meanwhile; one compaction runs at a time (a second call waits).
///
/// Errors: `SA_INVALID_STATE` (closed, or a memory-only node: nothing to compact),
/// `SA_IO_ERROR` (the snapshot cannot be written: the previous snapshot and the whole log
/// are kept, nothing is lost), `SA_STORE_ERROR` (the snapshot written did not read back
/// intact). Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_compact(client: *mut SaClient) -> SaStatus {
    const F: &str = "sa_client_compact";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::status(F, || {
        unsafe { self::client(client, F) }?.compact()?;
        Ok(())
    })
}

/// Writes a consistent backup of the node into the directory `dir` while it runs (other
/// threads keep writing): a snapshot, the log written meanwhile, the node's identity key
/// and trusted peers (files of mode 0600: the backup is as secret as the key), and a
/// manifest, written last (docs/backup.md). `dir` is created when missing (mode 0700),
/// else it must be empty. The backup holds every write acknowledged before the call.
/// Nothing of the node is changed. `softadastra backup verify DIR` checks a backup and
/// `softadastra restore DIR --data-dir D` puts it back.
///
/// Ownership: `dir` (a NUL-terminated UTF-8 path) is only read during the call.
/// Errors: `SA_INVALID_ARGUMENT` (NULL `client`, NULL or empty `dir`), `SA_INVALID_STATE`
/// (closed, or a memory-only node: nothing to back up), `SA_ALREADY_EXISTS` (`dir` is not
/// empty), `SA_IO_ERROR` (a file cannot be written: what was written is removed, no
/// manifest is left). Thread safety: any thread, concurrently with other calls on the same
/// client; one backup or compaction runs at a time (a second call waits).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_backup(client: *mut SaClient, dir: *const c_char) -> SaStatus {
    const F: &str = "sa_client_backup";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { self::client(client, F) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let dir = unsafe { boundary::c_str_arg(dir, F, "dir") }?;
        if dir.is_empty() {
            return Err(FfiError::new(
                crate::error::ErrorCode::InvalidArgument,
                format!("{F}: dir is NULL or empty"),
                "dir",
            ));
        }
        c.backup(std::path::Path::new(dir))?;
        Ok(())
    })
}

/// Applies every change of `batch` atomically: all or nothing, one WAL record, one sync.
/// The batch is left unchanged and can be reused or freed.
///
/// Errors: as `sa_client_put`; an invalid change (e.g. a value over 16 MiB) fails the
/// whole batch before anything is written. An empty batch succeeds.
/// Thread safety: any thread for the client; the batch must not be changed by another
/// thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_write_batch(
    client: *mut SaClient,
    batch: *const SaBatch,
) -> SaStatus {
    const F: &str = "sa_client_write_batch";
    boundary::status(F, || {
        // SAFETY: the caller passes live handles.
        let (c, b) = unsafe {
            (
                self::client(client, F)?,
                SaBatch::borrow(batch, F, "batch")?,
            )
        };
        c.write_batch(&b.batch)?;
        Ok(())
    })
}

/// # Safety
/// As the public functions that call it: `client` is NULL or live, `out_info` is NULL or
/// valid for writing.
unsafe fn node_info_call(
    function: &'static str,
    client: *const SaClient,
    out_info: *mut *mut SaNodeInfo,
    refresh: bool,
) -> SaStatus {
    boundary::status(function, || {
        // SAFETY: forwarded from this function's contract.
        let c = unsafe { self::client(client, function) }?;
        // SAFETY: forwarded from this function's contract.
        let out: &mut MaybeUninit<*mut SaNodeInfo> =
            unsafe { boundary::out_arg(out_info, function, "out_info") }?;
        let info = if refresh {
            c.refresh_node_info()?
        } else {
            c.node_info()?
        };
        out.write(SaNodeInfo::into_raw(&info));
        Ok(())
    })
}

/// Describes the node (id, display name, host, OS, version, start time, uptime,
/// capabilities) in a new `sa_node_info_t` written to `*out_info`.
///
/// Ownership: the caller frees `*out_info` with `sa_node_info_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL out-param).
/// `*out_info` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_node_info(
    client: *const SaClient,
    out_info: *mut *mut SaNodeInfo,
) -> SaStatus {
    // SAFETY: the caller's contract is node_info_call's.
    unsafe { node_info_call("sa_client_node_info", client, out_info, false) }
}

/// As `sa_client_node_info`, and logs that the node metadata was refreshed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_refresh_node_info(
    client: *mut SaClient,
    out_info: *mut *mut SaNodeInfo,
) -> SaStatus {
    // SAFETY: the caller's contract is node_info_call's.
    unsafe { node_info_call("sa_client_refresh_node_info", client, out_info, true) }
}

/// Writes a text description of the client to `*out_text`, for logs and bug reports:
/// `name=value` lines in sections `[options]` (every option), and, while the client is
/// open, `[node_info]`, `[sync_state]`, `[network_stats]` and one `[conflict]` per recent
/// conflict. The names are those of the C structs' fields. It is meant for people: the format may gain lines, so do not parse
/// it.
///
/// Ownership: the caller frees `*out_text` with `sa_bytes_free` (it is NUL-terminated).
/// Errors: `SA_INVALID_ARGUMENT` (NULL argument); a closed client is described too.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_describe(
    client: *const SaClient,
    out_text: *mut *mut SaBytes,
) -> SaStatus {
    const F: &str = "sa_client_describe";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { self::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_text, F, "out_text") }?;
        out.write(SaBytes::into_raw(
            crate::surface::describe_client(c)?.into_bytes(),
        ));
        Ok(())
    })
}

/// For tests only: moves the clock of a client made with `SA_OPTION_MANUAL_CLOCK` `ms`
/// milliseconds forward (both its wall and its monotonic clock), so that what falls due by
/// then (ACK timeouts, retries after their backoff, redials, keepalives, stale and expired
/// peers) happens on the next `sa_client_tick` or `sa_client_process_transport_events`;
/// a thread waiting in `sa_client_wait_transport_events` is woken. Open or closed.
///
/// Errors: `SA_INVALID_STATE` (the client has no manual clock), `SA_INVALID_ARGUMENT`
/// (NULL `client`).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_advance_clock(client: *const SaClient, ms: u64) -> SaStatus {
    const F: &str = "sa_client_advance_clock";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::status(F, || {
        Ok(unsafe { self::client(client, F) }?.advance_clock(ms)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use std::ffi::CStr;

    #[test]
    fn after_a_panic_every_c_call_fails_with_internal_error_until_close_and_open() {
        let handle = SaClient {
            client: Client::new(ClientOptions::memory_only("c-poisoned")),
        }
        .into_raw();
        let put = |key: &[u8]| {
            // SAFETY: a live handle and buffers valid for their lengths.
            unsafe { sa_client_put(handle, key.as_ptr(), key.len(), b"v".as_ptr(), 1) }
        };
        // SAFETY: `handle` is live until sa_client_free below.
        unsafe {
            assert_eq!(sa_client_open(handle), SaStatus::SaOk);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (*handle).client.call_that_panics().unwrap_err()
            }));
            assert!(caught.is_err());
            assert_eq!(put(b"k"), SaStatus::SaInternalError);
            let message = CStr::from_ptr(crate::ffi::sa_last_error_message());
            assert!(
                message.to_str().unwrap().contains("injected fault"),
                "{message:?}"
            );
            assert_eq!(sa_client_close(handle), SaStatus::SaOk);
            assert_eq!(sa_client_open(handle), SaStatus::SaOk);
            assert_eq!(put(b"k"), SaStatus::SaOk);
            sa_client_free(handle);
        }
    }
}
