//! `sa_options_t`: client options as an opaque handle, read and written one option at a
//! time by its number (`sa_option_t`, from [`crate::surface::OptionId`]).
//!
//! The caller never sees the layout, so a release can add options without breaking a
//! program built against an older header: the program simply never sets them, and they
//! keep their defaults. Every option goes through [`crate::surface::set_option`] and
//! [`crate::surface::get_option`]; nothing here names a field.

use std::ffi::{CString, c_char};

use crate::error::ErrorCode;
use crate::node::ClientOptions;
use crate::node::options::DEFAULT_WAL_PATH;
use crate::surface::{self, OptionId, OptionKind, Value};

use super::SaStatus;
use super::boundary::{self, BoxHandle, FfiError};

/// Client options (an opaque handle). Create with `sa_options_new` or a preset, change
/// with `sa_options_set_*`, pass to `sa_client_new` (which copies them), free with
/// `sa_options_free`. A handle is not synchronised: use it from one thread at a time (it
/// may move between threads).
pub struct SaOptions {
    pub(crate) options: ClientOptions,
    /// The C strings handed out by `sa_options_get_text`, by option number: each stays
    /// valid until its option is set again or the handle is freed.
    texts: parking_lot::Mutex<Vec<Option<CString>>>,
}

impl BoxHandle for SaOptions {}

impl SaOptions {
    fn new(options: ClientOptions) -> SaOptions {
        SaOptions {
            options,
            texts: parking_lot::Mutex::new(vec![None; surface::OPTIONS.len()]),
        }
    }
}

/// The option numbered `option`, or `SA_INVALID_ARGUMENT` naming the number.
fn option_arg(function: &str, option: u32) -> Result<OptionId, FfiError> {
    OptionId::from_number(option).ok_or_else(|| {
        FfiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{function}: {option} is not an option number (this library knows 0 to {})",
                surface::OPTIONS.len() - 1
            ),
            "option",
        )
    })
}

/// Writes a new options handle holding `options` to `*out_options`.
///
/// # Safety
/// `out_options` is NULL or valid for writing a pointer.
unsafe fn hand_out(
    function: &str,
    options: ClientOptions,
    out_options: *mut *mut SaOptions,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from the caller.
    let out = unsafe { boundary::out_arg(out_options, function, "out_options") }?;
    out.write(SaOptions::new(options).into_raw());
    Ok(())
}

/// Writes a new options handle with the defaults (node "node-1", WAL
/// "data/sdk-store.wal", every write synced, transport and discovery off) to
/// `*out_options`.
///
/// Ownership: the caller owns the handle and frees it with `sa_options_free`.
/// Errors: `SA_INVALID_ARGUMENT` when `out_options` is NULL. Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_new(out_options: *mut *mut SaOptions) -> SaStatus {
    const F: &str = "sa_options_new";
    // SAFETY: the caller passes NULL or a pointer valid for writing the result.
    boundary::status(F, || unsafe {
        hand_out(F, ClientOptions::default(), out_options)
    })
}

/// Writes a new options handle with the persistent preset to `*out_options`: WAL at
/// `wal_path`, every write synced to disk before it returns. `wal_path` NULL means
/// "data/sdk-store.wal".
///
/// Ownership: `node_id` and `wal_path` are copied. The caller owns the handle and frees it
/// with `sa_options_free`.
/// Errors: `SA_INVALID_ARGUMENT` when `node_id` or `out_options` is NULL or a string is
/// not UTF-8 (the node id itself is checked by `sa_options_validate` and when the client
/// opens). Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_persistent(
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut *mut SaOptions,
) -> SaStatus {
    // SAFETY: forwarded from this function's contract.
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

/// Writes a new options handle with the fast preset to `*out_options`: WAL at `wal_path`
/// but writes not synced before they return (call `sa_client_flush`), batch 128, 2
/// retries, no ACK required. `wal_path` NULL means "data/sdk-store.wal".
///
/// Ownership, errors and thread safety: as `sa_options_persistent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_fast(
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut *mut SaOptions,
) -> SaStatus {
    // SAFETY: forwarded from this function's contract.
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

/// Writes a new options handle with the memory-only preset to `*out_options`: no WAL,
/// nothing survives the process.
///
/// Ownership, errors and thread safety: as `sa_options_persistent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_memory_only(
    node_id: *const c_char,
    out_options: *mut *mut SaOptions,
) -> SaStatus {
    // SAFETY: forwarded from this function's contract.
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
/// The strings are NULL or NUL-terminated for the call; `out_options` is NULL or valid
/// for writing a pointer.
unsafe fn preset(
    function: &'static str,
    node_id: *const c_char,
    wal_path: *const c_char,
    out_options: *mut *mut SaOptions,
    make: impl FnOnce(&str, &str) -> ClientOptions,
) -> SaStatus {
    boundary::status(function, || {
        if node_id.is_null() {
            return Err(FfiError::null(function, "node_id"));
        }
        // SAFETY: forwarded from this function's contract.
        let node_id = unsafe { boundary::c_str_arg(node_id, function, "node_id") }?;
        let wal_path = if wal_path.is_null() {
            DEFAULT_WAL_PATH
        } else {
            // SAFETY: as above.
            unsafe { boundary::c_str_arg(wal_path, function, "wal_path") }?
        };
        // SAFETY: as above.
        unsafe { hand_out(function, make(node_id, wal_path), out_options) }
    })
}

/// Frees an options handle. NULL is a no-op.
///
/// Ownership: `options` must not be used afterwards (clients made from it keep their own
/// copy). Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_free(options: *mut SaOptions) {
    let _ = boundary::catch("sa_options_free", || {
        // SAFETY: the caller passes NULL or a live handle nobody uses any more.
        unsafe { SaOptions::free(options) };
        Ok(())
    });
}

/// Sets `option` on the handle.
///
/// # Safety
/// `options` is NULL or a live handle not used by another thread during the call.
unsafe fn set(
    function: &'static str,
    options: *mut SaOptions,
    option: u32,
    value: impl FnOnce() -> Result<Value, FfiError>,
) -> SaStatus {
    boundary::status(function, || {
        // SAFETY: forwarded from the caller.
        let handle = unsafe { SaOptions::borrow_mut(options, function, "options") }?;
        let id = option_arg(function, option)?;
        surface::set_option(&mut handle.options, id, value()?)?;
        handle.texts.get_mut()[id as usize] = None;
        Ok(())
    })
}

/// Sets a text option (`SA_OPTION_NODE_ID`, `SA_OPTION_WAL_PATH`, the hosts,
/// `SA_OPTION_DISPLAY_NAME`, `SA_OPTION_VERSION`) to a copy of `value`.
///
/// Errors: `SA_INVALID_ARGUMENT` when `options` or `value` is NULL, `value` is not UTF-8,
/// `option` is not an option number or not a text option (the message names it); the
/// handle is then unchanged. Whether the options make sense together is checked by
/// `sa_options_validate` and when the client opens.
/// Thread safety: one thread at a time per handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_set_text(
    options: *mut SaOptions,
    option: u32,
    value: *const c_char,
) -> SaStatus {
    const F: &str = "sa_options_set_text";
    // SAFETY: forwarded from this function's contract.
    unsafe {
        set(F, options, option, || {
            if value.is_null() {
                return Err(FfiError::null(F, "value"));
            }
            // (Inside this function's unsafe block: value is a NUL-terminated string valid
            // during the call.)
            let text = boundary::c_str_arg(value, F, "value")?;
            Ok(Value::Text(text.to_string()))
        })
    }
}

/// Sets a boolean option (`SA_OPTION_ENABLE_WAL`, `SA_OPTION_AUTO_FLUSH`, ...).
///
/// Errors: `SA_INVALID_ARGUMENT` when `options` is NULL or `option` is not a boolean
/// option. Thread safety: one thread at a time per handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_set_bool(
    options: *mut SaOptions,
    option: u32,
    value: bool,
) -> SaStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        set("sa_options_set_bool", options, option, || {
            Ok(Value::Bool(value))
        })
    }
}

/// Sets a number option (`SA_OPTION_SYNC_BATCH_SIZE`, the ports, the timeouts, ...).
///
/// Errors: `SA_INVALID_ARGUMENT` when `options` is NULL, `option` is not a number option,
/// or `value` does not fit it (a port is at most 65535, a `*_MS` option other than
/// `SA_OPTION_MAX_CLOCK_DRIFT_MS` at most 4294967295). Thread safety: one thread at a
/// time per handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_set_uint(
    options: *mut SaOptions,
    option: u32,
    value: u64,
) -> SaStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        set("sa_options_set_uint", options, option, || {
            Ok(Value::Uint(value))
        })
    }
}

/// Reads `option` of the handle, which must be of `kind`.
///
/// # Safety
/// `options` is NULL or a live handle that no thread changes during the call.
unsafe fn get<T>(
    function: &'static str,
    options: *const SaOptions,
    option: u32,
    kind: OptionKind,
    read: impl FnOnce(&SaOptions, OptionId, Value) -> T,
) -> Result<T, FfiError> {
    // SAFETY: forwarded from the caller.
    let handle = unsafe { SaOptions::borrow(options, function, "options") }?;
    let id = option_arg(function, option)?;
    let spec = id.spec();
    if spec.kind != kind {
        return Err(FfiError::new(
            ErrorCode::InvalidArgument,
            format!("{function}: option {} is not of this kind", spec.name),
            spec.name,
        ));
    }
    let value = surface::get_option(&handle.options, id);
    Ok(read(handle, id, value))
}

/// Writes the value of a text option to `*out_value`.
///
/// Ownership: the string belongs to the handle; it stays valid until this option is set
/// again or the handle is freed. Do not free it.
/// Errors: `SA_INVALID_ARGUMENT` when a pointer is NULL or `option` is not a text option.
/// Thread safety: the `sa_options_get_*` functions may run on several threads at once,
/// while no thread changes the handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_get_text(
    options: *const SaOptions,
    option: u32,
    out_value: *mut *const c_char,
) -> SaStatus {
    const F: &str = "sa_options_get_text";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_value, F, "out_value") }?;
        // SAFETY: forwarded from this function's contract.
        let ptr = unsafe {
            get(
                F,
                options,
                option,
                OptionKind::SaOptionKindText,
                |handle, id, value| {
                    let mut texts = handle.texts.lock();
                    // The CString's buffer stays where it is while it sits in the slot.
                    texts[id as usize]
                        .get_or_insert_with(|| boundary::to_c_string(&value.to_string()))
                        .as_ptr()
                },
            )
        }?;
        out.write(ptr);
        Ok(())
    })
}

/// Writes the value of a boolean option to `*out_value`.
///
/// Errors: `SA_INVALID_ARGUMENT` when a pointer is NULL or `option` is not a boolean
/// option. Thread safety: as `sa_options_get_text`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_get_bool(
    options: *const SaOptions,
    option: u32,
    out_value: *mut bool,
) -> SaStatus {
    const F: &str = "sa_options_get_bool";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_value, F, "out_value") }?;
        // SAFETY: forwarded from this function's contract.
        let value = unsafe {
            get(
                F,
                options,
                option,
                OptionKind::SaOptionKindBool,
                |_, _, value| value == Value::Bool(true),
            )
        }?;
        out.write(value);
        Ok(())
    })
}

/// Writes the value of a number option to `*out_value`.
///
/// Errors: `SA_INVALID_ARGUMENT` when a pointer is NULL or `option` is not a number
/// option. Thread safety: as `sa_options_get_text`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_get_uint(
    options: *const SaOptions,
    option: u32,
    out_value: *mut u64,
) -> SaStatus {
    const F: &str = "sa_options_get_uint";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_value, F, "out_value") }?;
        // SAFETY: forwarded from this function's contract.
        let value = unsafe {
            get(
                F,
                options,
                option,
                OptionKind::SaOptionKindUint,
                |_, _, value| match value {
                    Value::Uint(n) => n,
                    _ => 0,
                },
            )
        }?;
        out.write(value);
        Ok(())
    })
}

/// Checks the options as `sa_client_open` would: `SA_OK`, or `SA_INVALID_ARGUMENT` with a
/// last error naming the first offending option (context = its name, e.g. "wal_path").
///
/// Errors: also `SA_INVALID_ARGUMENT` when `options` is NULL. Thread safety: any thread,
/// while no thread changes the handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_options_validate(options: *const SaOptions) -> SaStatus {
    const F: &str = "sa_options_validate";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let handle = unsafe { SaOptions::borrow(options, F, "options") }?;
        Ok(handle.options.validate()?)
    })
}

/// How many options this library has: every number below it is an option
/// (`sa_option_name` names it). Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sa_option_count() -> u32 {
    // The table is a few dozen entries long.
    u32::try_from(surface::OPTIONS.len()).unwrap_or(u32::MAX)
}

/// The name of option `option` ("node_id", "auto_flush", ...: the C++ `ClientOptions`
/// field names, also the configuration keys), or NULL when there is no such option.
///
/// Ownership: the string is static; never free it. Thread safety: any thread. Does not
/// touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_option_name(option: u32) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<CString>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        surface::OPTIONS
            .iter()
            .map(|s| boundary::to_c_string(s.name))
            .collect()
    });
    usize::try_from(option)
        .ok()
        .and_then(|n| names.get(n))
        .map_or(std::ptr::null(), |name| name.as_ptr())
}

/// Writes the kind of option `option` (`SA_OPTION_KIND_TEXT`, `_BOOL` or `_UINT`) to
/// `*out_kind`.
///
/// Errors: `SA_INVALID_ARGUMENT` when `out_kind` is NULL or there is no such option.
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_option_kind(option: u32, out_kind: *mut OptionKind) -> SaStatus {
    const F: &str = "sa_option_kind";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_kind, F, "out_kind") }?;
        out.write(option_arg(F, option)?.spec().kind);
        Ok(())
    })
}

/// Writes the number of the option named `name` (as `sa_option_name` spells it) to
/// `*out_option`: for applications that read option names from their own configuration.
///
/// Errors: `SA_INVALID_ARGUMENT` when a pointer is NULL, `name` is not UTF-8, or no option
/// has that name (the context is the name). Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_option_find(name: *const c_char, out_option: *mut u32) -> SaStatus {
    const F: &str = "sa_option_find";
    boundary::status(F, || {
        if name.is_null() {
            return Err(FfiError::null(F, "name"));
        }
        // SAFETY: the caller passes a NUL-terminated string valid during the call.
        let name = unsafe { boundary::c_str_arg(name, F, "name") }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_option, F, "out_option") }?;
        let id = OptionId::from_name(name).ok_or_else(|| {
            FfiError::new(
                ErrorCode::InvalidArgument,
                format!("{F}: no option is named \"{name}\""),
                name,
            )
        })?;
        out.write(id as u32);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_handle() -> *mut SaOptions {
        let mut h = std::ptr::null_mut();
        // SAFETY: a valid out pointer.
        assert_eq!(unsafe { sa_options_new(&mut h) }, SaStatus::SaOk);
        h
    }

    #[test]
    fn a_new_handle_holds_the_rust_defaults() {
        let h = new_handle();
        // SAFETY: h is live.
        unsafe {
            assert_eq!((*h).options, ClientOptions::default());
            sa_options_free(h);
        }
    }

    #[test]
    fn presets_copy_the_callers_strings_and_keep_the_rust_flags() {
        let mut h = std::ptr::null_mut();
        // SAFETY: valid C strings and out pointer.
        let s = unsafe { sa_options_fast(c"n1".as_ptr(), c"/tmp/x.wal".as_ptr(), &mut h) };
        assert_eq!(s, SaStatus::SaOk);
        // SAFETY: h is live.
        unsafe {
            assert_eq!((*h).options, ClientOptions::fast("n1", "/tmp/x.wal"));
            sa_options_free(h);
        }
    }

    #[test]
    fn every_option_is_reachable_by_number_and_name_through_c() {
        let h = new_handle();
        for spec in surface::OPTIONS {
            let n = spec.id as u32;
            // SAFETY: h is live; the name pointers are static C strings.
            unsafe {
                let name = std::ffi::CStr::from_ptr(sa_option_name(n));
                assert_eq!(name.to_str().unwrap(), spec.name);
                let mut found = u32::MAX;
                assert_eq!(sa_option_find(name.as_ptr(), &mut found), SaStatus::SaOk);
                assert_eq!(found, n);
                let status = match spec.kind {
                    OptionKind::SaOptionKindText => sa_options_set_text(h, n, c"changed".as_ptr()),
                    OptionKind::SaOptionKindBool => sa_options_set_bool(h, n, true),
                    OptionKind::SaOptionKindUint => sa_options_set_uint(h, n, 7),
                };
                assert_eq!(status, SaStatus::SaOk, "{}", spec.name);
            }
        }
        // SAFETY: h is live.
        unsafe {
            assert!(sa_option_name(sa_option_count()).is_null());
            let mut text = std::ptr::null();
            assert_eq!(sa_options_get_text(h, 0, &mut text), SaStatus::SaOk);
            assert_eq!(std::ffi::CStr::from_ptr(text).to_str().unwrap(), "changed");
            let mut n = 0;
            assert_eq!(
                sa_options_get_uint(h, OptionId::SaOptionTransportPort as u32, &mut n),
                SaStatus::SaOk
            );
            assert_eq!(n, 7);
            sa_options_free(h);
        }
    }

    #[test]
    fn wrong_kinds_unknown_numbers_and_values_too_wide_leave_the_handle_unchanged() {
        let h = new_handle();
        // SAFETY: h is live.
        unsafe {
            let port = OptionId::SaOptionTransportPort as u32;
            assert_eq!(
                sa_options_set_uint(h, port, 70_000),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(
                sa_options_set_bool(h, port, true),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(
                sa_options_set_bool(h, sa_option_count(), true),
                SaStatus::SaInvalidArgument
            );
            let message = std::ffi::CStr::from_ptr(boundary::last_error_message());
            assert!(message.to_str().unwrap().contains("not an option number"));
            assert_eq!((*h).options, ClientOptions::default());
            sa_options_free(h);
            sa_options_free(std::ptr::null_mut());
        }
    }
}
