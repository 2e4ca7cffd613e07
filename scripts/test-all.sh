#!/usr/bin/env bash
# Every check and every test, exactly what CI runs: formatting, lints, Rust tests (among
# them tests/c_header.rs: the committed C header is current), then the C and C++ suites
# under ctest with static and shared linking, and again under AddressSanitizer and
# UndefinedBehaviorSanitizer, then the JavaScript SDK (js/): its addon built by npm and
# its node:test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
# Without the tests, the `internals` feature is off: only the public API is public, and
# missing_docs and unreachable_pub check it as applications see it.
cargo clippy --locked --workspace --lib -- -D warnings
echo "== cargo test"
cargo test --locked

for linkage in static shared; do
  shared=OFF
  [ "$linkage" = shared ] && shared=ON
  echo "== cmake + ctest ($linkage)"
  cmake -S . -B "build/$linkage" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSOFTADASTRA_LINK_SHARED=$shared
  cmake --build "build/$linkage"
  ctest --test-dir "build/$linkage" --output-on-failure
done

echo "== C ABI against abi/softadastra.abi (abigail), SONAME and exported symbols"
scripts/check-abi.sh

echo "== cmake + ctest (static, AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSOFTADASTRA_SANITIZE=ON
cmake --build build/sanitize
# The install test builds an outside project without the sanitizers: it runs above.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/sanitize --output-on-failure -E 'install_consumer|testing_consumer'

echo "== JavaScript SDK: npm ci (builds the addon) + npm test"
cargo test --locked --quiet -p softadastra-js
# ci: the lock file's exact packages; it runs the package's prepare script (napi build).
npm --prefix js ci --no-audit --no-fund
npm --prefix js test

echo "== aarch64 under qemu-user: cross build, C and C++ suites, CLI smoke, portability tests"
scripts/test-cross.sh aarch64
