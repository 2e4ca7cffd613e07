//! The C ABI (`include/softadastra.h`, generated from this module by cbindgen).
//!
//! Every function is a thin shell: it checks its pointers, runs its body through
//! [`boundary::catch`] (no panic crosses into C), calls [`crate::Client`] and reports the
//! outcome as a [`SaStatus`] plus a thread-local last error. Each handle type lives in its
//! own file; they all use the one ownership kind declared in [`boundary::BoxHandle`]. The
//! sync functions and their plain value types (`sa_sync_state_t`, `sa_tick_result_t`,
//! `sa_key_status_t`) are in [`sync`]; the transport, discovery and the peer list
//! (`sa_peer_t`, `sa_peers_t`, `sa_peer_state_t`) are in [`network`].
//!
//! Conventions for C callers are written at the top of the generated header.

// The C ABI is unsafe by nature; each function documents its contract.
#![allow(clippy::missing_safety_doc)]

pub(crate) mod boundary;
pub mod bytes;
pub mod client;
pub mod entries;
pub mod network;
pub mod node_info;
pub mod options;
#[cfg(test)]
mod parity;
pub mod sync;
pub mod write_batch;

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use crate::error::ErrorCode;

/// The outcome of a call. The values are those of `softadastra::sdk::Error::Code` (C++)
/// and `softadastra::ErrorCode` (Rust); they are never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum SaStatus {
    /// Success.
    SaOk = 0,
    /// An error that fits no other code.
    SaUnknown = 1,
    /// A bad argument: NULL pointer, invalid key, value too large, invalid options.
    SaInvalidArgument = 2,
    /// The call does not fit the object's state, e.g. the client is closed.
    SaInvalidState = 3,
    /// The key has no value; the last error context is the key.
    SaNotFound = 4,
    /// The thing to create already exists.
    SaAlreadyExists = 5,
    /// The file system refused: missing directory, permission denied, disk full, WAL
    /// locked by another process. The last error context is the path.
    SaIoError = 6,
    /// Stored data is damaged, e.g. a corrupt WAL (the message names the byte offset).
    SaStoreError = 7,
    /// Synchronisation with peers failed.
    SaSyncError = 8,
    /// The network transport failed or is disabled.
    SaTransportError = 9,
    /// Peer discovery failed or is disabled.
    SaDiscoveryError = 10,
    /// Node metadata is invalid or unavailable.
    SaMetadataError = 11,
    /// A bug in the library, including a caught panic.
    SaInternalError = 12,
}

impl From<ErrorCode> for SaStatus {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::None => SaStatus::SaOk,
            ErrorCode::Unknown => SaStatus::SaUnknown,
            ErrorCode::InvalidArgument => SaStatus::SaInvalidArgument,
            ErrorCode::InvalidState => SaStatus::SaInvalidState,
            ErrorCode::NotFound => SaStatus::SaNotFound,
            ErrorCode::AlreadyExists => SaStatus::SaAlreadyExists,
            ErrorCode::IoError => SaStatus::SaIoError,
            ErrorCode::StoreError => SaStatus::SaStoreError,
            ErrorCode::SyncError => SaStatus::SaSyncError,
            ErrorCode::TransportError => SaStatus::SaTransportError,
            ErrorCode::DiscoveryError => SaStatus::SaDiscoveryError,
            ErrorCode::MetadataError => SaStatus::SaMetadataError,
            ErrorCode::InternalError => SaStatus::SaInternalError,
        }
    }
}

use crate::surface::ALL_ERROR_CODES as ALL_CODES;

/// The code with number `n`, if there is one.
pub(crate) fn code_from_u32(n: u32) -> Option<ErrorCode> {
    ALL_CODES.get(n as usize).copied()
}

/// The snake_case name of a status code ("ok" for `SA_OK`, then "not_found", "io_error",
/// ... as `Error::code_string()` in C++), or "unknown" for a number that is no code.
///
/// Ownership: the returned string is static; never free it.
/// Thread safety: may be called from any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_status_string(status: u32) -> *const c_char {
    match code_from_u32(status) {
        Some(ErrorCode::None) => c"ok".as_ptr(),
        Some(code) => static_c_str(code),
        None => c"unknown".as_ptr(),
    }
}

/// The C string of `code.as_str()`, built once.
fn static_c_str(code: ErrorCode) -> *const c_char {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ALL_CODES
            .iter()
            .map(|c| CString::new(c.as_str()).expect("code names have no zero byte"))
            .collect()
    });
    names[code as usize].as_ptr()
}

/// The code of the last failed call on this thread, or `SA_OK` when the last call that
/// returns a `sa_status_t` succeeded (or none was made yet).
///
/// Thread safety: reads this thread's state only. Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_last_error_code() -> SaStatus {
    SaStatus::from(boundary::last_error_code())
}

/// The message of the last failed call on this thread, naming the key, path or parameter
/// and the cause (e.g. "cannot open WAL /x/a.wal: directory /x does not exist"), or ""
/// when the last call succeeded. Never NULL.
///
/// Ownership: the string belongs to the library; do not free it. It stays valid until
/// the next `sa_` call on this thread (copy it to keep it).
/// Thread safety: every thread has its own last error. Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_last_error_message() -> *const c_char {
    boundary::last_error_message()
}

/// What the last failed call on this thread was about: the key, the WAL path, the option
/// or parameter name; "" when nothing applies or the last call succeeded. Never NULL.
///
/// Ownership and lifetime: as `sa_last_error_message`.
/// Thread safety: every thread has its own last error. Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_last_error_context() -> *const c_char {
    boundary::last_error_context()
}

/// The library version, e.g. "0.1.0"; equal to the `SOFTADASTRA_VERSION` macro of the
/// header it was built with.
///
/// Ownership: static; never free it. Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sa_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn status_values_equal_the_error_code_table() {
        for (n, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(*code as u32, n as u32);
            assert_eq!(SaStatus::from(*code) as u32, *code as u32);
            assert_eq!(code_from_u32(n as u32), Some(*code));
        }
        assert_eq!(code_from_u32(ALL_CODES.len() as u32), None);
    }

    #[test]
    fn status_strings_are_the_code_names() {
        for code in ALL_CODES.iter().skip(1) {
            // SAFETY: sa_status_string returns a static C string.
            let s = unsafe { CStr::from_ptr(sa_status_string(*code as u32)) };
            assert_eq!(s.to_str().unwrap(), code.as_str());
        }
        // SAFETY: as above.
        let ok = unsafe { CStr::from_ptr(sa_status_string(0)) };
        assert_eq!(ok.to_str().unwrap(), "ok");
    }

    #[test]
    fn version_is_the_package_version() {
        // SAFETY: sa_version returns a static C string.
        let v = unsafe { CStr::from_ptr(sa_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
