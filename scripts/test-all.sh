#!/usr/bin/env bash
# Every check and every test, exactly what CI runs: formatting, lints, Rust tests, the
# committed C header, then the C and C++ suites under ctest with static and shared linking.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked

echo "== include/softadastra.h is current"
# build.rs regenerated it during the builds above; a difference means it was not committed.
if ! git diff --exit-code -- include/softadastra.h \
  || [ -n "$(git status --porcelain -- include/softadastra.h)" ]; then
  echo "include/softadastra.h is stale: commit the regenerated header" >&2
  exit 1
fi

for linkage in static shared; do
  shared=OFF
  [ "$linkage" = shared ] && shared=ON
  echo "== cmake + ctest ($linkage)"
  cmake -S . -B "build/$linkage" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSOFTADASTRA_LINK_SHARED=$shared
  cmake --build "build/$linkage"
  ctest --test-dir "build/$linkage" --output-on-failure
done
