//! The WAL reader: `wal::format::check_file_header` and `scan_from` on a whole file image
//! (a version 1 file or a segment, from the first sequence number its header names), and
//! the record payload decoders (`store::op::decode_ops`, `sync::marks::decode`).
//!
//! Input layout and checks: `fuzz_support::wal_reader_input`, shared with
//! the regression tests in tests/fuzz_decoders.rs, which replay crash inputs through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fuzz_target!(|data: &[u8]| fuzz_support::wal_reader_input(data));
