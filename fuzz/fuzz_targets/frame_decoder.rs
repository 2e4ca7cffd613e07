//! The transport's `frame::FrameDecoder` and `message::Message::decode`.
//!
//! Input: a message type byte, a read-size byte, a flags byte, then bytes. The bytes are
//! decoded as that message type's payload directly, and as a TCP stream fed to the frame
//! decoder in reads of (read-size + 1) bytes, with every frame's payload decoded as a
//! message. Flags: bit 0 makes every complete frame's checksum valid; bits 1-3 pick the
//! payload limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

const LIMITS: [usize; 5] = [0, 16, 256, 4096, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let [kind, chunk, flags, rest @ ..] = data else {
        return;
    };
    fuzz_support::check_message(*kind, rest);
    let mut stream = rest.to_vec();
    if flags & 1 != 0 {
        fuzz_support::reseal_frame_stream(&mut stream);
    }
    let max = LIMITS[usize::from(flags >> 1) % LIMITS.len()];
    fuzz_support::check_frame_stream(&stream, usize::from(*chunk) + 1, max);
});
