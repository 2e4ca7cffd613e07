//! A node fed sequences of remote messages: batches, acknowledgements, catch-up parts and
//! claims, vectors to serve, with local writes in between (stateful).
//!
//! Input layout and checks: `fuzz_support::node_session_input`, shared with the proptest in
//! tests/fuzz_decoders.rs (CI), which replays crash inputs through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fuzz_target!(|data: &[u8]| fuzz_support::node_session_input(data));
