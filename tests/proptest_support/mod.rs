//! Seeded proptest runs shared by the fuzzing tests of both packages (tests/fuzz_decoders.rs
//! and cli/tests/config_fuzz.rs): the runner with a fixed seed, and byte-level mutations of
//! valid inputs.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The default seed: CI runs exactly the same inputs every time.
pub(crate) const DEFAULT_SEED: u64 = 0x50F7_ADA5_7A00_0006;

pub(crate) fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `test` on `cases` values of `strategy` (or `SOFTADASTRA_FUZZ_CASES`), from the
/// fixed seed (or `SOFTADASTRA_FUZZ_SEED`). A panic in `test` fails the run with the
/// shrunk input.
pub(crate) fn run<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value)) {
    let cases = env_u64("SOFTADASTRA_FUZZ_CASES").map_or(cases, |n| n as u32);
    let seed = env_u64("SOFTADASTRA_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    // The target's name goes into the seed too, so that targets do not share inputs.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in name.bytes().enumerate() {
        key[8 + i % 24] ^= b;
    }
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    if let Err(e) = runner.run(&strategy, |v| {
        test(v);
        Ok(())
    }) {
        panic!("{name} (seed {seed}): {e}");
    }
}

/// One change to a valid input.
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    /// XOR the byte at (index modulo length) with a non-zero mask.
    Flip(usize, u8),
    Set(usize, u8),
    /// Keep only the first (n modulo length + 1) bytes.
    Truncate(usize),
    Extend(Vec<u8>),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

pub(crate) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1..=u8::MAX).prop_map(|(i, m)| Edit::Flip(i, m)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        2 => any::<usize>().prop_map(Edit::Truncate),
        1 => vec(any::<u8>(), 1..16).prop_map(Edit::Extend),
        1 => (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<usize>(), 1..16usize).prop_map(|(i, n)| Edit::Remove(i, n)),
    ]
}

pub(crate) fn edits() -> impl Strategy<Value = Vec<Edit>> {
    vec(edit(), 1..6)
}

pub(crate) fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, m) if len > 0 => bytes[i % len] ^= m,
            Edit::Set(i, v) if len > 0 => bytes[i % len] = *v,
            Edit::Truncate(n) => bytes.truncate(n % (len + 1)),
            Edit::Extend(b) => bytes.extend_from_slice(b),
            Edit::Insert(i, b) => {
                let at = i % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Remove(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            _ => {}
        }
    }
    bytes
}

pub(crate) fn random_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}
