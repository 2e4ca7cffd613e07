//! `sa_bytes_t`: a byte buffer allocated by the library and freed by `sa_bytes_free`.

/// Bytes owned by the library (a value returned by `sa_client_get`).
///
/// `data` points to `len` bytes followed by one extra zero byte that `len` does not count,
/// so a text value without zero bytes can be read as a C string. `data` is never NULL for
/// a buffer the library filled (even when `len` is 0). Free it with `sa_bytes_free`;
/// do not change `data` or `len`.
#[repr(C)]
#[derive(Debug)]
pub struct SaBytes {
    pub data: *mut u8,
    pub len: usize,
}

impl SaBytes {
    /// Hands `bytes` to C, appending the extra zero byte.
    pub(crate) fn from_vec(mut bytes: Vec<u8>) -> SaBytes {
        let len = bytes.len();
        bytes.push(0);
        let data = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
        SaBytes { data, len }
    }
}

/// Frees the buffer of `*bytes` and resets it to `{NULL, 0}`, so a second call is a
/// no-op. NULL `bytes`, or a `bytes` whose `data` is NULL, is a no-op.
///
/// Ownership: `bytes->data` must come from the library (e.g. `sa_client_get`) and must
/// not be used afterwards. Thread safety: do not free the same buffer from two threads.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_bytes_free(bytes: *mut SaBytes) {
    // SAFETY: the caller passes NULL or a valid struct it owns.
    let Some(b) = (unsafe { bytes.as_mut() }) else {
        return;
    };
    if b.data.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(b.data, b.len + 1);
    // SAFETY: data/len came from SaBytes::from_vec: a boxed slice of len + 1 bytes.
    drop(unsafe { Box::from_raw(slice) });
    b.data = std::ptr::null_mut();
    b.len = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zero_terminated_and_freed_once() {
        for value in [Vec::new(), b"a\0b".to_vec()] {
            let mut b = SaBytes::from_vec(value.clone());
            assert!(!b.data.is_null());
            // SAFETY: from_vec allocated len + 1 bytes.
            let all = unsafe { std::slice::from_raw_parts(b.data, b.len + 1) };
            assert_eq!(&all[..b.len], value.as_slice());
            assert_eq!(all[b.len], 0);
            // SAFETY: b came from from_vec.
            unsafe { sa_bytes_free(&mut b) };
            assert!(b.data.is_null() && b.len == 0);
            // SAFETY: a freed (NULL) buffer is a no-op.
            unsafe { sa_bytes_free(&mut b) };
        }
        // SAFETY: NULL is a no-op.
        unsafe { sa_bytes_free(std::ptr::null_mut()) };
    }
}
