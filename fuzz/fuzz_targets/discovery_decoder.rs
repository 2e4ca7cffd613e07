//! The discovery datagram decoder, `discovery::packet::Packet::decode`.
//!
//! The first input byte picks the mode: bit 0 puts the magic and version ("SADI" 1) in
//! front of the rest; bit 1 makes the trailing checksum valid, so that decoding gets to the
//! fields.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = if mode & 1 != 0 {
        b"SADI\x01".to_vec()
    } else {
        Vec::new()
    };
    bytes.extend_from_slice(rest);
    if mode & 2 != 0 {
        fuzz_support::reseal_discovery_packet(&mut bytes);
    }
    fuzz_support::check_discovery_packet(&bytes);
});
