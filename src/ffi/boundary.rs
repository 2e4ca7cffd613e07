//! What every foreign entry point shares: the panic boundary, the error carried across it,
//! the thread-local last error, handle ownership, and reading (pointer, length) arguments.
//!
//! Every `extern "C"` function and every cxx bridge function runs its body through
//! [`catch`], the one place that calls `catch_unwind`. A panic becomes an
//! `InternalError` naming the function; it never unwinds into C or C++ (which would abort).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Error, ErrorCode};

use super::SaStatus;

/// An error on its way to a foreign caller: the stable code, a message naming the key, path
/// or parameter and the cause, and the context (the key, path or parameter alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FfiError {
    pub code: ErrorCode,
    pub message: String,
    pub context: String,
}

impl FfiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, context: impl Into<String>) -> Self {
        FfiError {
            code,
            message: message.into(),
            context: context.into(),
        }
    }

    /// A required pointer argument was NULL.
    pub fn null(function: &str, parameter: &str) -> Self {
        FfiError::new(
            ErrorCode::InvalidArgument,
            format!("{function}: {parameter} is NULL"),
            parameter,
        )
    }

    fn panic(function: &str, payload: &(dyn Any + Send)) -> Self {
        let what = crate::error::panic_text(payload);
        FfiError::new(
            ErrorCode::InternalError,
            format!("internal error: panic in {function}: {what}"),
            function,
        )
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError::new(e.code(), e.to_string(), e.context())
    }
}

impl From<crate::store::StoreError> for FfiError {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Store(e).into()
    }
}

/// Runs `body`, turning a panic into an `InternalError` that names `function`.
///
/// `AssertUnwindSafe` is sound here: after a caught panic the caller only sees an error, and
/// a client whose call panicked poisons itself (`Client::poisoned`): it refuses every later
/// call with `InternalError` until it is closed and opened again.
pub(crate) fn catch<T>(
    function: &'static str,
    body: impl FnOnce() -> Result<T, FfiError>,
) -> Result<T, FfiError> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let error = FfiError::panic(function, payload.as_ref());
            log::error!("{}", error.message);
            Err(error)
        }
    }
}

/// [`catch`] for the C functions that return a status: records the outcome as the
/// thread's last error and returns its code.
pub(crate) fn status(
    function: &'static str,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> SaStatus {
    let result = catch(function, body);
    let code = match &result {
        Ok(()) => ErrorCode::None,
        Err(e) => e.code,
    };
    set_last_error(result.err());
    SaStatus::from(code)
}

struct LastError {
    code: ErrorCode,
    message: CString,
    context: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        code: ErrorCode::None,
        message: CString::default(),
        context: CString::default(),
    });
}

/// Records `error` (or a cleared state for `None`) as this thread's last error.
pub(crate) fn set_last_error(error: Option<FfiError>) {
    let (code, message, context) = match error {
        Some(e) => (e.code, to_c_string(&e.message), to_c_string(&e.context)),
        None => (ErrorCode::None, CString::default(), CString::default()),
    };
    LAST_ERROR.with_borrow_mut(|last| {
        *last = LastError {
            code,
            message,
            context,
        }
    });
}

pub(crate) fn last_error_code() -> ErrorCode {
    LAST_ERROR.with_borrow(|last| last.code)
}

/// The message of this thread's last error. The pointer stays valid until the last error
/// is replaced, which only this thread can do.
pub(crate) fn last_error_message() -> *const c_char {
    LAST_ERROR.with_borrow(|last| last.message.as_ptr())
}

pub(crate) fn last_error_context() -> *const c_char {
    LAST_ERROR.with_borrow(|last| last.context.as_ptr())
}

/// A C string for `s`. Zero bytes (possible in keys) are shown as `\0`.
pub(crate) fn to_c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("zero bytes were replaced")
}

/// The ownership kind of a C handle: created by `Box::new`, handed out as a raw pointer,
/// freed exactly once by its `_free` function. Every handle type implements this trait and
/// no other kind is used.
pub(crate) trait BoxHandle: Sized {
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// Borrows the handle behind `ptr`, or an `InvalidArgument` naming `parameter`.
    ///
    /// # Safety
    /// `ptr` is NULL or was returned by [`BoxHandle::into_raw`] and not freed yet.
    unsafe fn borrow<'a>(
        ptr: *const Self,
        function: &str,
        parameter: &str,
    ) -> Result<&'a Self, FfiError> {
        // SAFETY: the caller guarantees ptr is NULL or a live handle.
        unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(function, parameter))
    }

    /// Mutably borrows the handle behind `ptr`, or an `InvalidArgument` naming `parameter`.
    ///
    /// # Safety
    /// `ptr` is NULL or a live handle that no other thread uses during the call.
    unsafe fn borrow_mut<'a>(
        ptr: *mut Self,
        function: &str,
        parameter: &str,
    ) -> Result<&'a mut Self, FfiError> {
        // SAFETY: the caller guarantees ptr is NULL or a live, unshared handle.
        unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::null(function, parameter))
    }

    /// Frees the handle; NULL is a no-op.
    ///
    /// # Safety
    /// `ptr` is NULL or a live handle that nobody uses any more.
    unsafe fn free(ptr: *mut Self) {
        if !ptr.is_null() {
            // SAFETY: the caller guarantees ptr came from into_raw and is not used again.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// Data the library returns: the `#[repr(C)]` struct `P` the caller reads, followed by the
/// storage `K` that `P`'s pointers point into (strings, arrays). Handed out as `*mut P`
/// (the address of the whole: `public` comes first), freed by the matching `sa_*_free`
/// through [`Returned::free`]. This is the one ownership rule for returned data: the
/// library allocates, the caller frees with `sa_T_free`, and since the caller never
/// allocates `P`, a later release may append fields to it.
///
/// `K` must keep its data on the heap (boxes, vectors, C strings), so that the pointers
/// in `P` stay valid when the pair is moved into its box.
#[repr(C)]
pub(crate) struct Returned<P, K> {
    public: P,
    keep: K,
}

impl<P, K> Returned<P, K> {
    /// Boxes `public` with the storage it points into and hands out the public part.
    pub fn into_raw(public: P, keep: K) -> *mut P {
        Box::into_raw(Box::new(Returned { public, keep })).cast::<P>()
    }

    /// Frees what [`Returned::into_raw`] made; NULL is a no-op.
    ///
    /// # Safety
    /// `ptr` is NULL or came from `Returned::<P, K>::into_raw` (the same `P` and `K`) and
    /// is not used again.
    pub unsafe fn free(ptr: *mut P) {
        if !ptr.is_null() {
            // SAFETY: per the caller, ptr is the first field of a boxed Returned<P, K>
            // (repr(C), so the addresses are equal).
            drop(unsafe { Box::from_raw(ptr.cast::<Returned<P, K>>()) });
        }
    }
}

/// A list handed to C as an array of pointers to its elements (so that elements can grow
/// like any returned struct). The pointer array points into `items`.
pub(crate) struct PointerArray<T> {
    _items: Box<[T]>,
    pointers: Box<[*const T]>,
}

impl<T> PointerArray<T> {
    pub fn new(items: Vec<T>) -> Self {
        let items = items.into_boxed_slice();
        let pointers = items.iter().map(|item| item as *const T).collect();
        PointerArray {
            _items: items,
            pointers,
        }
    }

    /// The array of pointers (never NULL, even when empty) and its length.
    pub fn raw(&self) -> (*const *const T, usize) {
        (self.pointers.as_ptr(), self.pointers.len())
    }
}

/// Reads a (pointer, length) byte argument. NULL is allowed only with length 0.
///
/// # Safety
/// When non-NULL, `ptr` is valid for reading `len` bytes for the lifetime `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    function: &str,
    parameter: &str,
) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::new(
            ErrorCode::InvalidArgument,
            format!("{function}: {parameter} is NULL but its length is {len}"),
            parameter,
        ));
    }
    // SAFETY: non-NULL and, per the caller, valid for len bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a key argument: bytes that must be UTF-8 and follow the key rules.
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn key_arg<'a>(
    ptr: *const u8,
    len: usize,
    function: &str,
) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { bytes_arg(ptr, len, function, "key") }?;
    Ok(crate::store::key_from_bytes(bytes)?)
}

/// Reads a NUL-terminated UTF-8 string; NULL reads as "".
///
/// # Safety
/// When non-NULL, `ptr` points to a NUL-terminated string valid for the lifetime `'a`.
pub(crate) unsafe fn c_str_arg<'a>(
    ptr: *const c_char,
    function: &str,
    parameter: &str,
) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Ok("");
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|e| {
        FfiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{function}: {parameter} is not valid UTF-8 (invalid byte at index {})",
                e.valid_up_to()
            ),
            parameter,
        )
    })
}

/// Borrows an out-parameter for writing, or fails with an `InvalidArgument` naming it when
/// it is NULL. Borrow every out-parameter before doing the work, so a NULL one fails before
/// anything changes, and write it only once the work succeeded.
///
/// # Safety
/// `ptr` is NULL or valid for writing a `T` (its current contents may be uninitialised).
pub(crate) unsafe fn out_arg<'a, T>(
    ptr: *mut T,
    function: &str,
    parameter: &str,
) -> Result<&'a mut std::mem::MaybeUninit<T>, FfiError> {
    // SAFETY: per the caller, non-NULL means valid for writing; MaybeUninit makes no claim
    // about the current contents.
    unsafe { ptr.cast::<std::mem::MaybeUninit<T>>().as_mut() }
        .ok_or_else(|| FfiError::null(function, parameter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_naming_the_function() {
        let result: Result<(), FfiError> = catch("sa_test", || panic!("boom"));
        let error = result.unwrap_err();
        assert_eq!(error.code, ErrorCode::InternalError);
        assert!(error.message.contains("sa_test") && error.message.contains("boom"));
    }

    #[test]
    fn status_records_and_clears_the_last_error() {
        let s = status("sa_test", || {
            Err(FfiError::new(
                ErrorCode::NotFound,
                "key not found: a\0b",
                "a\0b",
            ))
        });
        assert_eq!(s, SaStatus::SaNotFound);
        assert_eq!(last_error_code(), ErrorCode::NotFound);
        // SAFETY: the pointer is valid until the next status call on this thread.
        let message = unsafe { CStr::from_ptr(last_error_message()) };
        assert_eq!(message.to_str().unwrap(), "key not found: a\\0b");
        assert_eq!(status("sa_test", || Ok(())), SaStatus::SaOk);
        assert_eq!(last_error_code(), ErrorCode::None);
        // SAFETY: as above.
        assert!(unsafe { CStr::from_ptr(last_error_message()) }.is_empty());
    }

    #[test]
    fn null_with_a_length_is_rejected_and_names_the_parameter() {
        // SAFETY: NULL pointers are never dereferenced.
        let e = unsafe { bytes_arg(std::ptr::null(), 3, "sa_f", "value") }.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.context, "value");
        // SAFETY: as above.
        assert!(unsafe { bytes_arg(std::ptr::null(), 0, "sa_f", "value") }.is_ok());
    }
}
