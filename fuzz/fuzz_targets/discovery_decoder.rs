//! The discovery datagram decoder, `discovery::packet::Packet::decode`.
//!
//! Input layout and checks: `fuzz_support::discovery_decoder_input`, shared with
//! the regression tests in tests/fuzz_decoders.rs, which replay crash inputs through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fuzz_target!(|data: &[u8]| fuzz_support::discovery_decoder_input(data));
