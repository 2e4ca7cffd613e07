//! The WAL reader: `wal::format::check_file_header` and `scan` on a whole file image, and
//! the record payload decoders (`store::op::decode_ops`, `sync::marks::decode`).
//!
//! The first input byte picks the mode: bit 0 makes every checksum valid (the file header's,
//! then each record's) so that the scan gets past them; bit 1 puts a valid file header in
//! front of the rest of the input. The rest is also decoded as a bare payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softadastra::wal::format::encode_file_header;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut image = if mode & 2 != 0 {
        encode_file_header().to_vec()
    } else {
        Vec::new()
    };
    image.extend_from_slice(rest);
    if mode & 1 != 0 {
        fuzz_support::reseal_wal_image(&mut image);
    }
    fuzz_support::check_wal_image(&image);
    fuzz_support::check_store_payload(rest);
    fuzz_support::check_marks_payload(rest);
});
