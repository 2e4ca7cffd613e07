#!/usr/bin/env bash
# Builds for an edge device's CPU and tests there, under qemu-user (docs/edge.md):
#
#   scripts/test-cross.sh aarch64     64-bit Arm  (aarch64-unknown-linux-gnu)
#   scripts/test-cross.sh armv7       32-bit Arm  (armv7-unknown-linux-gnueabihf)
#
# 1. GoogleTest for the target, from Debian's sources (/usr/src/googletest), once.
# 2. The library, the C++ SDK, the softadastra command and the C and C++ suites, cross
#    built by CMake (cmake/toolchains/<triple>.cmake) in build/cross-<name>, Debug (cargo's
#    dev profile: no release build, so that the run stays short), statically linked.
# 3. ctest runs the C and C++ suites under qemu-user, except the tests that install the
#    package and build and run an outside project with the host's CMake (install_consumer,
#    testing_consumer, preset_install): they test the install layout, which does not
#    depend on the CPU, and run in the host suites.
# 4. A smoke test of the softadastra command under qemu-user: version, a write and a read
#    in a fresh data directory, and `wal inspect` of the data directory written on x86_64
#    (tests/fixtures/x86_64-data).
# 5. The Rust portability tests cross built and run under qemu-user (.cargo/config.toml's
#    runner): tests/portability.rs (the x86_64 WAL and snapshot open here, values at the
#    16 MiB limit, a record length near 4 GiB) and the WAL's unit tests of offsets past
#    4 GiB through its storage seam (src/wal/offsets_past_4_gib.rs).
#
# Uses CARGO_TARGET_DIR like the other scripts. Nothing here needs network namespaces or
# root: the tests that do (tests/durability_network.rs, the full-disk test of
# cli/tests/cli_health.rs) are Rust tests of the host suite.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  aarch64 | aarch64-unknown-linux-gnu)
    name=aarch64 triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armv7 | armv7-unknown-linux-gnueabihf)
    name=armv7 triple=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf qemu=qemu-arm ;;
  *)
    echo "usage: $0 aarch64|armv7" >&2
    exit 2 ;;
esac

scripts/install-deps.sh

toolchain="$PWD/cmake/toolchains/$triple.cmake"
build="build/cross-$name"
gtest_prefix="$PWD/$build/googletest"
if [ ! -f "$gtest_prefix/lib/cmake/GTest/GTestConfig.cmake" ]; then
  echo "== GoogleTest for $triple"
  cmake -S /usr/src/googletest -B "$build/googletest-build" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
    -DCMAKE_INSTALL_PREFIX="$gtest_prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
  cmake --build "$build/googletest-build" --target install >/dev/null
fi

echo "== cmake + ctest ($triple, under $qemu)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DGTest_DIR="$gtest_prefix/lib/cmake/GTest" \
  -DSOFTADASTRA_BUILD_APPS=ON
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -E '^(install_consumer|testing_consumer|preset_install)$'

echo "== softadastra command ($triple, under $qemu)"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cli="$target_dir/$triple/debug/softadastra"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
run() { "$qemu" -L "/usr/$gnu" "$cli" --no-color "$@"; }
# qemu-user refuses a program built for another CPU: each run proves the build's target.
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[[ "$(run version)" == *"$version"* ]] || { echo "softadastra version does not say $version" >&2; exit 1; }
run --data-dir "$scratch/node" --node-id "smoke-$name" store put greeting hello >/dev/null
[ "$(run --data-dir "$scratch/node" store get greeting --raw)" = hello ] \
  || { echo "store get did not read back what store put wrote" >&2; exit 1; }
# The data directory written on x86_64 (tests/fixtures/README.md): its snapshot covers
# records 1 to 23, its log segment holds records 24 to 26, nothing is damaged; then a value
# written after the snapshot is read (the CLI wants the node id file beside the WAL).
cp -r tests/fixtures/x86_64-data "$scratch/x86_64"
inspect="$(run --data-dir "$scratch/x86_64" --json wal inspect)"
for expected in '"damage":[]' '"healthy":true' '"intact":true' '"snapshot_cut":23' '"good_through":26'; do
  grep -qF "$expected" <<<"$inspect" \
    || { echo "wal inspect of the x86_64 data lacks $expected:" >&2; echo "$inspect" >&2; exit 1; }
done
echo till-x86-64 >"$scratch/x86_64/node-id"
[ "$(run --data-dir "$scratch/x86_64" store get item/00 --raw)" = "changed after the snapshot" ] \
  || { echo "store get of the x86_64 data did not read its value" >&2; exit 1; }
echo "softadastra command: version, store put/get, wal inspect and store get of the x86_64 data pass"

echo "== Rust portability tests ($triple, under $qemu)"
cargo test --locked --target "$triple" --test portability
cargo test --locked --target "$triple" --lib wal::offsets_past_4_gib
