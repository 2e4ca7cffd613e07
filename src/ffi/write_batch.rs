//! `sa_batch_t`: changes collected by the caller and applied atomically by
//! `sa_client_write_batch`.
//!
//! Thread safety: a batch is not synchronised. Use it from one thread at a time (it may
//! move between threads).

use crate::node::WriteBatch;

use super::SaStatus;
use super::boundary::{self, BoxHandle};

/// A batch handle. Create with `sa_batch_new`, free with `sa_batch_free`.
/// A batch is not synchronised: use it from one thread at a time (it may move between
/// threads).
pub struct SaBatch {
    pub(crate) batch: WriteBatch,
}

impl BoxHandle for SaBatch {}

/// Creates an empty batch and writes it to `*out_batch`.
///
/// Ownership: the caller owns the batch and frees it with `sa_batch_free`.
/// Errors: `SA_INVALID_ARGUMENT` when `out_batch` is NULL. Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_batch_new(out_batch: *mut *mut SaBatch) -> SaStatus {
    const F: &str = "sa_batch_new";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_batch, F, "out_batch") }?;
        out.write(
            SaBatch {
                batch: WriteBatch::new(),
            }
            .into_raw(),
        );
        Ok(())
    })
}

/// Frees a batch. NULL is a no-op. Does not touch the last error.
///
/// Ownership: `batch` must not be used afterwards.
/// Thread safety: no other thread may use the batch during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_batch_free(batch: *mut SaBatch) {
    let _ = boundary::catch("sa_batch_free", || {
        // SAFETY: the caller passes NULL or a live handle nobody uses any more.
        unsafe { SaBatch::free(batch) };
        Ok(())
    });
}

/// Adds "store `value` under `key`" to the batch (copying both).
///
/// Errors: `SA_INVALID_ARGUMENT` for a NULL batch or an invalid key (empty, over 1024
/// bytes, not UTF-8); the batch is unchanged then. The value size is checked by
/// `sa_client_write_batch`.
/// Thread safety: one thread at a time per batch (a batch is not synchronised).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_batch_put(
    batch: *mut SaBatch,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> SaStatus {
    const F: &str = "sa_batch_put";
    boundary::status(F, || {
        // SAFETY: the caller passes a live, unshared handle and buffers valid for their
        // lengths.
        let (b, key, value) = unsafe {
            (
                SaBatch::borrow_mut(batch, F, "batch")?,
                boundary::key_arg(key, key_len, F)?,
                boundary::bytes_arg(value, value_len, F, "value")?,
            )
        };
        b.batch.put(key, value);
        Ok(())
    })
}

/// Adds "remove `key`" to the batch.
///
/// Errors and thread safety: as `sa_batch_put`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_batch_remove(
    batch: *mut SaBatch,
    key: *const u8,
    key_len: usize,
) -> SaStatus {
    const F: &str = "sa_batch_remove";
    boundary::status(F, || {
        // SAFETY: the caller passes a live, unshared handle and a key valid for key_len.
        let (b, key) = unsafe {
            (
                SaBatch::borrow_mut(batch, F, "batch")?,
                boundary::key_arg(key, key_len, F)?,
            )
        };
        b.batch.remove(key);
        Ok(())
    })
}

/// The number of changes in the batch; 0 for NULL. Does not touch the last error.
/// Thread safety: one thread at a time per batch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_batch_len(batch: *const SaBatch) -> usize {
    const F: &str = "sa_batch_len";
    // SAFETY (in the closure): the caller passes NULL or a live handle.
    boundary::catch(F, || {
        Ok(unsafe { SaBatch::borrow(batch, F, "batch") }?.batch.len())
    })
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_keys_leave_the_batch_unchanged() {
        let mut b = std::ptr::null_mut();
        // SAFETY: valid out pointer, then a live handle with valid buffers.
        unsafe {
            assert_eq!(sa_batch_new(&mut b), SaStatus::SaOk);
            assert_eq!(
                sa_batch_put(b, b"k".as_ptr(), 1, b"v".as_ptr(), 1),
                SaStatus::SaOk
            );
            let bad = b"\xff";
            assert_eq!(
                sa_batch_put(b, bad.as_ptr(), 1, b"v".as_ptr(), 1),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(
                sa_batch_remove(b, std::ptr::null(), 0),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(sa_batch_len(b), 1);
            sa_batch_free(b);
        }
    }
}
