//! `sa_bytes_t`: bytes the library returns (a value from `sa_client_get`, a description
//! from `sa_client_describe`), allocated by the library and freed by `sa_bytes_free`.

use super::boundary::{self, Returned};

/// Bytes owned by the library (returned by `sa_client_get` and `sa_client_describe`).
///
/// `data` points to `len` bytes followed by one extra zero byte that `len` does not count,
/// so a text without zero bytes can be read as a C string. `data` is never NULL (even when
/// `len` is 0). Free the struct with `sa_bytes_free`; do not change it.
#[repr(C)]
#[derive(Debug)]
pub struct SaBytes {
    pub data: *const u8,
    pub len: usize,
}

/// The storage behind a [`SaBytes`]: the bytes and their terminating zero.
type Keep = Box<[u8]>;

impl SaBytes {
    /// A returned buffer holding `bytes` (see [`Returned`]).
    pub(crate) fn into_raw(mut bytes: Vec<u8>) -> *mut SaBytes {
        let len = bytes.len();
        bytes.push(0);
        let keep: Keep = bytes.into_boxed_slice();
        Returned::into_raw(
            SaBytes {
                data: keep.as_ptr(),
                len,
            },
            keep,
        )
    }
}

/// Frees bytes returned by the library. NULL is a no-op.
///
/// Ownership: `bytes` must come from the library and must not be used afterwards.
/// Thread safety: any thread, once. Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_bytes_free(bytes: *mut SaBytes) {
    let _ = boundary::catch("sa_bytes_free", || {
        // SAFETY: the caller passes NULL or bytes from SaBytes::into_raw, used no more.
        unsafe { Returned::<SaBytes, Keep>::free(bytes) };
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zero_terminated_and_freed() {
        for value in [Vec::new(), b"a\0b".to_vec()] {
            let b = SaBytes::into_raw(value.clone());
            // SAFETY: b is live until freed; data holds len + 1 bytes.
            unsafe {
                assert!(!(*b).data.is_null());
                let all = std::slice::from_raw_parts((*b).data, (*b).len + 1);
                assert_eq!(&all[..(*b).len], value.as_slice());
                assert_eq!(all[(*b).len], 0);
                sa_bytes_free(b);
            }
        }
        // SAFETY: NULL is allowed.
        unsafe { sa_bytes_free(std::ptr::null_mut()) };
    }
}
