//! `sa_options_t`: client options as a plain C struct, its presets and validation.
//!
//! The struct borrows its strings; the library copies them when a client is created, so
//! they only need to live during the call that reads the struct.

use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Mutex, OnceLock};

use crate::node::ClientOptions;
use crate::node::options::DEFAULT_WAL_PATH;

use super::SaStatus;
use super::boundary::{self, FfiError};

/// Client options. Fill one with `sa_options_default` or a preset, then change fields.
/// The field meanings and defaults are those of the C++ `ClientOptions`.
///
/// String fields are borrowed, NUL-terminated UTF-8; NULL reads as "". They must stay valid
/// while a function reads the struct (`sa_client_new`, `sa_options_validate`); the client
/// keeps its own copy. Strings the library puts in the struct (defaults) are static.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SaOptions {
    /// Node id: 1 to 128 characters of [A-Za-z0-9._-]. Default "node-1".
    pub node_id: *const c_char,
    /// WAL file. Its directory must exist; the file is created if missing.
    /// Default "data/sdk-store.wal" (relative to the working directory).
    pub wal_path: *const c_char,
    /// Keep a WAL (true) or memory only (false). Default true.
    pub enable_wal: bool,
    /// Sync every write to disk before it returns. Default true. When false, writes
    /// since the last flush or close can be lost in a crash.
    pub auto_flush: bool,
    /// Operations per sync batch, at least 1. Default 64.
    pub sync_batch_size: usize,
    /// Default 5.
    pub max_sync_retries: u32,
    /// Default 10000.
    pub ack_timeout_ms: u32,
    /// Default 5000.
    pub retry_interval_ms: u32,
    /// Default true.
    pub require_ack: bool,
    /// Default true.
    pub auto_queue: bool,
    /// Default false. When true, transport_host must be non-empty and transport_port not 0.
    pub enable_transport: bool,
    /// Default "0.0.0.0".
    pub transport_host: *const c_char,
    /// Default 0.
    pub transport_port: u16,
    /// Default false. When true, discovery_host must be non-empty and discovery_port not 0.
    pub enable_discovery: bool,
    /// Default "0.0.0.0".
    pub discovery_host: *const c_char,
    /// Default 0.
    pub discovery_port: u16,
    /// Default "255.255.255.255".
    pub discovery_broadcast_host: *const c_char,
    /// Default 0.
    pub discovery_broadcast_port: u16,
    /// Default "" (the node id is shown).
    pub display_name: *const c_char,
    /// Application version, non-empty. Default the library version.
    pub version: *const c_char,
    // The fields below were added after the ones above, which keep their places.
    /// Time between discovery announcements, in milliseconds. Default 3000.
    pub discovery_interval_ms: u32,
    /// A peer not heard from for half of this is stale, for all of it expired; at least
    /// twice `discovery_interval_ms` (checked by `sa_client_start_discovery`). Default 15000.
    pub discovery_ttl_ms: u32,
    /// Connect to peers found by discovery (when the transport runs). Default true.
    pub auto_connect_discovered: bool,
}

/// A static C string with the content `s`. Only called with the strings of the option
/// presets (a handful of constants), so the set stays small.
fn interned(s: &str) -> *const c_char {
    static STRINGS: OnceLock<Mutex<HashMap<String, &'static std::ffi::CStr>>> = OnceLock::new();
    let mut strings = STRINGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    strings
        .entry(s.to_string())
        .or_insert_with(|| Box::leak(boundary::to_c_string(s).into_boxed_c_str()))
        .as_ptr()
}

/// The C struct for `o`. `node_id` and `wal_path` are given (the caller's pointers);
/// every other string comes from `o` as a static string.
fn to_c(o: &ClientOptions, node_id: *const c_char, wal_path: *const c_char) -> SaOptions {
    SaOptions {
        node_id,
        wal_path,
        enable_wal: o.enable_wal,
        auto_flush: o.auto_flush,
        sync_batch_size: o.sync_batch_size,
        max_sync_retries: o.max_sync_retries,
        ack_timeout_ms: o.ack_timeout_ms,
        retry_interval_ms: o.retry_interval_ms,
        require_ack: o.require_ack,
        auto_queue: o.auto_queue,
        enable_transport: o.enable_transport,
        transport_host: interned(&o.transport_host),
        transport_port: o.transport_port,
        enable_discovery: o.enable_discovery,
        discovery_host: interned(&o.discovery_host),
        discovery_port: o.discovery_port,
        discovery_broadcast_host: interned(&o.discovery_broadcast_host),
        discovery_broadcast_port: o.discovery_broadcast_port,
        display_name: interned(&o.display_name),
        version: interned(&o.version),
        discovery_interval_ms: o.discovery_interval_ms,
        discovery_ttl_ms: o.discovery_ttl_ms,
        auto_connect_discovered: o.auto_connect_discovered,
    }
}

/// Copies a C struct into Rust options.
///
/// # Safety
/// Every non-NULL string field is a valid NUL-terminated string for the call.
pub(crate) unsafe fn from_c(c: &SaOptions, function: &str) -> Result<ClientOptions, FfiError> {
    // SAFETY (each call below): forwarded from the caller's contract on the fields.
    let s = |ptr: *const c_char, field: &str| unsafe {
        boundary::c_str_arg(ptr, function, &format!("options.{field}")).map(str::to_string)
    };
    Ok(ClientOptions {
        // Not on the C and C++ option structs yet (they cannot grow without breaking
        // the ABI until the options handle of issue 10): the default.
        max_clock_drift_ms: crate::store::DEFAULT_MAX_CLOCK_DRIFT_MS,
        node_id: s(c.node_id, "node_id")?,
        wal_path: s(c.wal_path, "wal_path")?,
        enable_wal: c.enable_wal,
        auto_flush: c.auto_flush,
        sync_batch_size: c.sync_batch_size,
        max_sync_retries: c.max_sync_retries,
        ack_timeout_ms: c.ack_timeout_ms,
        retry_interval_ms: c.retry_interval_ms,
        require_ack: c.require_ack,
        auto_queue: c.auto_queue,
        enable_transport: c.enable_transport,
        transport_host: s(c.transport_host, "transport_host")?,
        transport_port: c.transport_port,
        enable_discovery: c.enable_discovery,
        discovery_host: s(c.discovery_host, "discovery_host")?,
        discovery_port: c.discovery_port,
        discovery_broadcast_host: s(c.discovery_broadcast_host, "discovery_broadcast_host")?,
        discovery_broadcast_port: c.discovery_broadcast_port,
        discovery_interval_ms: c.discovery_interval_ms,
        discovery_ttl_ms: c.discovery_ttl_ms,
        auto_connect_discovered: c.auto_connect_discovered,
        display_name: s(c.display_name, "display_name")?,
        version: s(c.version, "version")?,
    })
}

/// Fills `*out_options` with the defaults (node "node-1", WAL "data/sdk-store.wal",
/// auto_flush on, ...). Every string in it is static.
///
/// Returns `SA_INVALID_ARGUMENT` when `out_options` is NULL.
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_default(out_options: *mut SaOptions) -> SaStatus {
    const F: &str = "sa_options_default";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_options, F, "out_options") }?;
        let o = ClientOptions::default();
        out.write(to_c(&o, interned(&o.node_id), interned(&o.wal_path)));
        Ok(())
    })
}

/// Fills `*out_options` with the persistent preset: WAL at `wal_path`, every write synced
/// to disk before it returns. `wal_path` NULL means "data/sdk-store.wal".
///
/// Ownership: `node_id` and `wal_path` are stored in `*out_options` as they are (borrowed,
/// not copied): keep them alive while you use the struct.
/// Returns `SA_INVALID_ARGUMENT` when `node_id` or `out_options` is NULL (the node id
/// itself is checked when the client opens, or by `sa_options_validate`).
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_persistent(
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut SaOptions,
) -> SaStatus {
    // SAFETY: out_options is NULL or writable, per this function's contract.
    unsafe {
        preset(
            "sa_options_persistent",
            node_id,
            wal_path,
            out_options,
            ClientOptions::persistent,
        )
    }
}

/// Fills `*out_options` with the fast preset: WAL at `wal_path` but writes not synced
/// before they return (call `sa_client_flush`), batch 128, 2 retries, no ACK required.
/// `wal_path` NULL means "data/sdk-store.wal".
///
/// Ownership, NULL handling and thread safety: as `sa_options_persistent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_fast(
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut SaOptions,
) -> SaStatus {
    // SAFETY: out_options is NULL or writable, per this function's contract.
    unsafe {
        preset(
            "sa_options_fast",
            node_id,
            wal_path,
            out_options,
            ClientOptions::fast,
        )
    }
}

/// Fills `*out_options` with the memory-only preset: no WAL, nothing survives the process.
///
/// Ownership, NULL handling and thread safety: as `sa_options_persistent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_memory_only(
    node_id: *const c_char,
    out_options: *mut SaOptions,
) -> SaStatus {
    // SAFETY: out_options is NULL or writable, per this function's contract.
    unsafe {
        preset(
            "sa_options_memory_only",
            node_id,
            std::ptr::null(),
            out_options,
            |n, _| ClientOptions::memory_only(n),
        )
    }
}

/// # Safety
/// `out_options` is NULL or valid for writing a `SaOptions`.
unsafe fn preset(
    function: &'static str,
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut SaOptions,
    make: impl FnOnce(&str, &str) -> ClientOptions,
) -> SaStatus {
    boundary::status(function, || {
        if node_id.is_null() {
            return Err(FfiError::null(function, "node_id"));
        }
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { boundary::out_arg(out_options, function, "out_options") }?;
        let wal = if wal_path.is_null() {
            interned(DEFAULT_WAL_PATH)
        } else {
            wal_path
        };
        // The preset's numbers and flags do not depend on the strings; the strings are
        // stored as the caller's pointers.
        let o = make("node", DEFAULT_WAL_PATH);
        out.write(to_c(&o, node_id, wal));
        Ok(())
    })
}

/// Checks the options as `sa_client_open` would: `SA_OK`, or `SA_INVALID_ARGUMENT` with a
/// last error naming the first offending field (context = the field name, e.g. "wal_path").
///
/// Ownership: only reads `*options` during the call.
/// Returns `SA_INVALID_ARGUMENT` when `options` is NULL. Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_validate(options: *const SaOptions) -> SaStatus {
    const F: &str = "sa_options_validate";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a valid struct.
        let c = unsafe { options.as_ref() }.ok_or_else(|| FfiError::null(F, "options"))?;
        // SAFETY: the struct's strings are valid during the call per the contract.
        let o = unsafe { from_c(c, F) }?;
        Ok(o.validate()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_struct_round_trips_to_the_rust_defaults() {
        let mut c = std::mem::MaybeUninit::<SaOptions>::uninit();
        // SAFETY: a valid out pointer.
        assert_eq!(
            unsafe { sa_options_default(c.as_mut_ptr()) },
            SaStatus::SaOk
        );
        // SAFETY: written on success.
        let c = unsafe { c.assume_init() };
        // SAFETY: all strings are static.
        let o = unsafe { from_c(&c, "test") }.unwrap();
        assert_eq!(o, ClientOptions::default());
    }

    #[test]
    fn presets_keep_the_callers_strings_and_the_rust_flags() {
        let mut c = std::mem::MaybeUninit::<SaOptions>::uninit();
        // SAFETY: valid C strings and out pointer.
        let s = unsafe { sa_options_fast(c"n1".as_ptr(), c"/tmp/x.wal".as_ptr(), c.as_mut_ptr()) };
        assert_eq!(s, SaStatus::SaOk);
        // SAFETY: written on success; strings are static.
        let o = unsafe { from_c(&c.assume_init(), "test") }.unwrap();
        assert_eq!(o, ClientOptions::fast("n1", "/tmp/x.wal"));
    }

    #[test]
    fn discovery_settings_cross_in_both_directions() {
        let o = ClientOptions {
            discovery_interval_ms: 250,
            discovery_ttl_ms: 1000,
            auto_connect_discovered: false,
            ..ClientOptions::persistent("n1", "x.wal")
        };
        let c = to_c(&o, interned(&o.node_id), interned(&o.wal_path));
        assert_eq!(
            (
                c.discovery_interval_ms,
                c.discovery_ttl_ms,
                c.auto_connect_discovered
            ),
            (250, 1000, false)
        );
        // SAFETY: all strings are static.
        assert_eq!(unsafe { from_c(&c, "test") }.unwrap(), o);
    }
}
