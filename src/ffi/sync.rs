//! The sync engine through the C ABI: `sa_client_tick`, `sa_client_sync_state`, the outbox
//! maintenance calls and `sa_client_sync_status`, with their plain value types
//! `sa_tick_result_t`, `sa_sync_state_t` and `sa_key_status_t`.
//!
//! `sa_tick_result_t` and `sa_sync_state_t` are returned like all data: allocated by the
//! library, freed by `sa_tick_result_free` and `sa_sync_state_free` (so they can grow).
//!
//! Thread safety: every function here may be called from several threads at once on the
//! same client, like the other `sa_client_*` functions.

use std::ffi::{CString, c_char};

use crate::node::Client;
use crate::store::Conflict;
use crate::sync::{KeyStatus, SyncState, TickResult};

use super::SaStatus;
use super::boundary::{self, PointerArray, Returned};
use super::client::{self, SaClient};

/// What one sync tick did (returned by `sa_client_tick`; free with
/// `sa_tick_result_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaTickResult {
    /// In-flight operations whose ACK timed out and that were queued again.
    pub retried_count: usize,
    /// Acknowledged operations removed from the outbox (only when pruning was asked).
    pub pruned_count: usize,
    /// Operations in the batch handed to the transport; 0 when no peer is connected.
    pub batch_size: usize,
}

impl From<TickResult> for SaTickResult {
    fn from(t: TickResult) -> Self {
        // Exhaustive: a new field of TickResult does not compile until it is carried.
        let TickResult {
            retried_count,
            pruned_count,
            batch_size,
        } = t;
        SaTickResult {
            retried_count,
            pruned_count,
            batch_size,
        }
    }
}

/// The counters of the sync engine (returned by `sa_client_sync_state`; free with
/// `sa_sync_state_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaSyncState {
    /// Every operation in the outbox: pending, queued, in flight, acknowledged (until
    /// pruned) and failed.
    pub outbox_size: usize,
    /// Operations kept local until `sa_client_queue_pending` (with `auto_queue` off).
    pub pending_count: usize,
    /// Operations waiting to be sent.
    pub queued_count: usize,
    /// Operations sent and waiting for a peer's ACK.
    pub in_flight_count: usize,
    /// Operations a peer acknowledged, until `sa_client_prune_completed` removes them.
    pub acknowledged_count: usize,
    /// Operations whose every attempt timed out, until `sa_client_prune_failed`.
    pub failed_count: usize,
    /// Version of the newest local operation (0 when there is none).
    pub last_submitted_version: u64,
    /// Version of the newest operation applied from another node (0 when none).
    pub last_applied_remote_version: u64,
    /// Retries since the client was opened.
    pub total_retries: u64,
    /// Conflicts detected since the client was opened.
    pub conflict_count: u64,
}

impl From<SyncState> for SaSyncState {
    fn from(s: SyncState) -> Self {
        // Exhaustive: a new field of SyncState does not compile until it is carried.
        let SyncState {
            outbox_size,
            pending_count,
            queued_count,
            in_flight_count,
            acknowledged_count,
            failed_count,
            last_submitted_version,
            last_applied_remote_version,
            total_retries,
            conflict_count,
        } = s;
        SaSyncState {
            outbox_size,
            pending_count,
            queued_count,
            in_flight_count,
            acknowledged_count,
            failed_count,
            last_submitted_version,
            last_applied_remote_version,
            total_retries,
            conflict_count,
        }
    }
}

/// Where a key's latest change is on its way to peers (written by
/// `sa_client_sync_status`). The values are never renumbered; they equal those of
/// `softadastra::sdk::SyncStatus` in the C++ SDK.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaKeyStatus {
    /// Written and durable locally; not queued for sync (`auto_queue` off).
    SaKeyStatusSavedLocally = 0,
    /// Queued, not sent yet.
    SaKeyStatusWaitingToSync = 1,
    /// Sent, waiting for a peer's ACK.
    SaKeyStatusSyncing = 2,
    /// A peer has it (or it came from a peer).
    SaKeyStatusSynced = 3,
    /// A send timed out; it will be sent again.
    SaKeyStatusRetrying = 4,
    /// Every attempt timed out; the catch-up with the next peer still delivers it.
    SaKeyStatusSyncFailed = 5,
    /// The key's value was decided by last-writer-wins between concurrent writes.
    SaKeyStatusConflictDetected = 6,
}

impl From<KeyStatus> for SaKeyStatus {
    fn from(s: KeyStatus) -> Self {
        match s {
            KeyStatus::SavedLocally => SaKeyStatus::SaKeyStatusSavedLocally,
            KeyStatus::WaitingToSync => SaKeyStatus::SaKeyStatusWaitingToSync,
            KeyStatus::Syncing => SaKeyStatus::SaKeyStatusSyncing,
            KeyStatus::Synced => SaKeyStatus::SaKeyStatusSynced,
            KeyStatus::Retrying => SaKeyStatus::SaKeyStatusRetrying,
            KeyStatus::SyncFailed => SaKeyStatus::SaKeyStatusSyncFailed,
            KeyStatus::ConflictDetected => SaKeyStatus::SaKeyStatusConflictDetected,
        }
    }
}

/// A static C string for each key status, in numeric order.
const KEY_STATUS_NAMES: [&std::ffi::CStr; 7] = [
    c"saved_locally",
    c"waiting_to_sync",
    c"syncing",
    c"synced",
    c"retrying",
    c"sync_failed",
    c"conflict_detected",
];

/// Words for a person, in numeric order.
const KEY_STATUS_LABELS: [&std::ffi::CStr; 7] = [
    c"saved locally",
    c"waiting to sync",
    c"syncing",
    c"synced",
    c"retrying",
    c"sync failed",
    c"conflict detected",
];

/// The snake_case name of a key status ("saved_locally", "waiting_to_sync", "syncing",
/// "synced", "retrying", "sync_failed", "conflict_detected"), or "unknown" for a number
/// that is no `sa_key_status_t`.
///
/// Ownership: the returned string is static; never free it.
/// Thread safety: may be called from any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_key_status_string(status: u32) -> *const c_char {
    KEY_STATUS_NAMES
        .get(status as usize)
        .map_or(c"unknown".as_ptr(), |s| s.as_ptr())
}

/// Words for a person for a key status ("saved locally", "waiting to sync", "syncing",
/// "synced", "retrying", "sync failed", "conflict detected"), or "unknown" for a number
/// that is no `sa_key_status_t`.
///
/// Ownership: the returned string is static; never free it.
/// Thread safety: may be called from any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_key_status_label(status: u32) -> *const c_char {
    KEY_STATUS_LABELS
        .get(status as usize)
        .map_or(c"unknown".as_ptr(), |s| s.as_ptr())
}

/// Runs one sync cycle and writes what it did to `*out_result`: operations whose ACK
/// timed out are queued again (after their backoff), the next batch is handed to the
/// transport when a peer is connected, and with `prune_completed` true acknowledged
/// operations are removed from the outbox. With no connected peer nothing is sent
/// (`batch_size` 0) and queued work keeps waiting without spending retries.
///
/// Ownership: the caller frees `*out_result` with `sa_tick_result_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_result`). `*out_result` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_tick(
    client: *mut SaClient,
    prune_completed: bool,
    out_result: *mut *mut SaTickResult,
) -> SaStatus {
    const F: &str = "sa_client_tick";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_result, F, "out_result") }?;
        out.write(Returned::into_raw(c.tick(prune_completed)?.into(), ()));
        Ok(())
    })
}

/// Writes the counters of the sync engine to `*out_state`. Reading them changes nothing.
///
/// Ownership: the caller frees `*out_state` with `sa_sync_state_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_state`). `*out_state` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client. The
/// counters are read together (one consistent snapshot).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_sync_state(
    client: *const SaClient,
    out_state: *mut *mut SaSyncState,
) -> SaStatus {
    const F: &str = "sa_client_sync_state";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_state, F, "out_state") }?;
        out.write(Returned::into_raw(c.sync_state()?.into(), ()));
        Ok(())
    })
}

/// Frees a tick result from `sa_client_tick`. NULL is a no-op.
/// Ownership: `result` must not be used afterwards. Thread safety: any thread, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_tick_result_free(result: *mut SaTickResult) {
    let _ = boundary::catch("sa_tick_result_free", || {
        // SAFETY: the caller passes NULL or a result from sa_client_tick, used no more.
        unsafe { Returned::<SaTickResult, ()>::free(result) };
        Ok(())
    });
}

/// Frees counters from `sa_client_sync_state`. NULL is a no-op.
/// Ownership: `state` must not be used afterwards. Thread safety: any thread, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_sync_state_free(state: *mut SaSyncState) {
    let _ = boundary::catch("sa_sync_state_free", || {
        // SAFETY: the caller passes NULL or counters from sa_client_sync_state.
        unsafe { Returned::<SaSyncState, ()>::free(state) };
        Ok(())
    });
}

/// A conflict: two writes to one key made without knowledge of each other, decided by
/// last-writer-wins (an element of `sa_conflicts_t`). Its strings belong to the list.
#[repr(C)]
#[derive(Debug)]
pub struct SaConflict {
    /// The key (UTF-8; a zero byte in it is shown as `\0`).
    pub key: *const c_char,
    /// The entry this node held when the other write arrived: its origin node, that
    /// node's number for it, and its version.
    pub local_origin: *const c_char,
    pub local_seq: u64,
    pub local_version: u64,
    /// The write that arrived from a peer.
    pub remote_origin: *const c_char,
    pub remote_seq: u64,
    pub remote_version: u64,
    /// Whether the arriving write won (and replaced the local entry).
    pub remote_won: bool,
}

/// The most recent conflicts, oldest first (returned by `sa_client_recent_conflicts`):
/// `items[i]` points to conflict i, for i below `len`. Free with `sa_conflicts_free`.
#[repr(C)]
#[derive(Debug)]
pub struct SaConflicts {
    pub items: *const *const SaConflict,
    pub len: usize,
}

/// The storage behind a [`SaConflicts`]: the strings, and the conflicts pointing into them.
type ConflictsKeep = (Vec<CString>, PointerArray<SaConflict>);

impl SaConflicts {
    pub(crate) fn into_raw(conflicts: &[Conflict]) -> *mut SaConflicts {
        let mut strings = Vec::with_capacity(conflicts.len() * 3);
        let mut items = Vec::with_capacity(conflicts.len());
        for conflict in conflicts {
            let Conflict {
                key,
                local,
                remote,
                remote_won,
            } = conflict;
            let key = boundary::to_c_string(key);
            let local_origin = boundary::to_c_string(&local.origin);
            let remote_origin = boundary::to_c_string(&remote.origin);
            items.push(SaConflict {
                key: key.as_ptr(),
                local_origin: local_origin.as_ptr(),
                local_seq: local.seq,
                local_version: local.version.0,
                remote_origin: remote_origin.as_ptr(),
                remote_seq: remote.seq,
                remote_version: remote.version.0,
                remote_won: *remote_won,
            });
            strings.extend([key, local_origin, remote_origin]);
        }
        let items = PointerArray::new(items);
        let (pointers, len) = items.raw();
        Returned::into_raw(
            SaConflicts {
                items: pointers,
                len,
            },
            (strings, items),
        )
    }
}

/// Writes the most recent conflicts (up to 64, oldest first) to `*out_conflicts`.
/// `sa_sync_state_t.conflict_count` counts every conflict since the client was opened.
///
/// Ownership: the caller frees `*out_conflicts` with `sa_conflicts_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL argument).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_recent_conflicts(
    client: *const SaClient,
    out_conflicts: *mut *mut SaConflicts,
) -> SaStatus {
    const F: &str = "sa_client_recent_conflicts";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_conflicts, F, "out_conflicts") }?;
        out.write(SaConflicts::into_raw(&c.recent_conflicts()?));
        Ok(())
    })
}

/// Frees a list from `sa_client_recent_conflicts`. NULL is a no-op.
/// Ownership: `conflicts` must not be used afterwards. Thread safety: any thread, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_conflicts_free(conflicts: *mut SaConflicts) {
    let _ = boundary::catch("sa_conflicts_free", || {
        // SAFETY: the caller passes NULL or a list from SaConflicts::into_raw.
        unsafe { Returned::<SaConflicts, ConflictsKeep>::free(conflicts) };
        Ok(())
    });
}

/// Runs `call` on the client and writes the count it returns to `*out_count`.
///
/// # Safety
/// As the public functions that call it: `client` is NULL or live, `out_count` is NULL or
/// valid for writing.
unsafe fn count_call(
    function: &'static str,
    client: *const SaClient,
    out_count: *mut usize,
    call: impl FnOnce(&Client) -> crate::Result<usize>,
) -> SaStatus {
    boundary::status(function, || {
        // SAFETY: forwarded from this function's contract.
        let c = unsafe { client::client(client, function) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { boundary::out_arg(out_count, function, "out_count") }?;
        out.write(call(c)?);
        Ok(())
    })
}

/// Queues again the in-flight operations whose ACK timed out (after their backoff) and
/// writes how many to `*out_count`. An operation out of retries becomes failed instead.
///
/// Ownership: `*out_count` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_count`). `*out_count` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_retry_expired(
    client: *mut SaClient,
    out_count: *mut usize,
) -> SaStatus {
    // SAFETY: the caller's contract is count_call's.
    unsafe {
        count_call(
            "sa_client_retry_expired",
            client,
            out_count,
            Client::retry_expired,
        )
    }
}

/// Removes acknowledged operations from the outbox and writes how many to `*out_count`.
/// Pending, queued, in-flight and failed operations are never removed.
///
/// Ownership: `*out_count` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_count`). `*out_count` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_prune_completed(
    client: *mut SaClient,
    out_count: *mut usize,
) -> SaStatus {
    // SAFETY: the caller's contract is count_call's.
    unsafe {
        count_call(
            "sa_client_prune_completed",
            client,
            out_count,
            Client::prune_completed,
        )
    }
}

/// Removes failed operations from the outbox and writes how many to `*out_count`. They
/// are logged as given up, so a restart does not queue them again; their data stays in
/// the store and reaches peers by catch-up. Other operations are never removed.
///
/// Ownership: `*out_count` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_count`), `SA_IO_ERROR` (logging the removal failed; the context is the WAL path).
/// `*out_count` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_prune_failed(
    client: *mut SaClient,
    out_count: *mut usize,
) -> SaStatus {
    // SAFETY: the caller's contract is count_call's.
    unsafe {
        count_call(
            "sa_client_prune_failed",
            client,
            out_count,
            Client::prune_failed,
        )
    }
}

/// Queues every pending operation (kept local with `auto_queue` off) and writes how many
/// to `*out_count`; 0 when nothing was pending.
///
/// Ownership: `*out_count` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_count`). `*out_count` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_queue_pending(
    client: *mut SaClient,
    out_count: *mut usize,
) -> SaStatus {
    // SAFETY: the caller's contract is count_call's.
    unsafe {
        count_call(
            "sa_client_queue_pending",
            client,
            out_count,
            Client::queue_pending,
        )
    }
}

/// Queues every failed operation (every attempt timed out) again, its attempts reset, and
/// writes how many to `*out_count`; 0 when none had failed. Operations removed by
/// `sa_client_prune_failed` are not queued again (they reach peers by catch-up).
///
/// Ownership: `*out_count` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client` or
/// `out_count`). `*out_count` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_retry_failed(
    client: *mut SaClient,
    out_count: *mut usize,
) -> SaStatus {
    // SAFETY: the caller's contract is count_call's.
    unsafe {
        count_call(
            "sa_client_retry_failed",
            client,
            out_count,
            Client::retry_failed,
        )
    }
}

/// Writes where the latest change of `key` (a put or a removal) is on its way to peers to
/// `*out_status`; `sa_key_status_string` and `sa_key_status_label` name it.
///
/// Ownership: `key` is only read during the call; `*out_status` is caller-owned.
/// Errors: `SA_NOT_FOUND` when the key was never written (the context is the key),
/// `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (empty key, key over 1024 bytes or
/// not UTF-8, NULL pointer with a non-zero length, NULL `client` or `out_status`).
/// `*out_status` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_sync_status(
    client: *const SaClient,
    key: *const u8,
    key_len: usize,
    out_status: *mut SaKeyStatus,
) -> SaStatus {
    const F: &str = "sa_client_sync_status";
    boundary::status(F, || {
        // SAFETY: the caller passes a live handle and a key valid for key_len bytes.
        let (c, key) = unsafe {
            (
                client::client(client, F)?,
                boundary::key_arg(key, key_len, F)?,
            )
        };
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_status, F, "out_status") }?;
        out.write(c.sync_status(key)?.into());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every key status, in numeric order (index = value).
    use crate::surface::ALL_KEY_STATUSES;

    #[test]
    fn key_status_values_names_and_labels_follow_the_core() {
        for (n, status) in ALL_KEY_STATUSES.iter().enumerate() {
            assert_eq!(SaKeyStatus::from(*status) as usize, n);
            // SAFETY: both functions return static C strings.
            let (name, label) = unsafe {
                (
                    CStr::from_ptr(sa_key_status_string(n as u32)),
                    CStr::from_ptr(sa_key_status_label(n as u32)),
                )
            };
            assert_eq!(name.to_str().unwrap(), status.as_str());
            assert_eq!(label.to_str().unwrap(), status.label());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(sa_key_status_string(7)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }

    #[test]
    fn sync_calls_on_a_null_client_name_the_parameter() {
        let mut count = 99usize;
        // SAFETY: NULL handles are rejected before any use.
        let s = unsafe { sa_client_queue_pending(std::ptr::null_mut(), &mut count) };
        assert_eq!(s, SaStatus::SaInvalidArgument);
        assert_eq!(count, 99);
        assert_eq!(
            boundary::last_error_code(),
            crate::error::ErrorCode::InvalidArgument
        );
    }
}
