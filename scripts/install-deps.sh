#!/usr/bin/env bash
# Installs the system tools the build and the tests need, when they are missing:
# cmake, ninja and GoogleTest (Debian packages), abigail-tools for the ABI check
# (scripts/check-abi.sh), and ip (iproute2) and nft (nftables) for the network-fault test
# (tests/durability_network.rs, run as root), and unshare (util-linux) for the full-disk
# test, Node.js with npm for the JavaScript SDK (js/), and the cross compilers and
# qemu-user for the edge-device builds. The Rust toolchain is expected (rustup); the Rust
# targets for those builds are added with it.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
# Both live in /usr/sbin, which is not on every user's PATH.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
# unshare (util-linux) gives the full-disk test (cli/tests/cli_health.rs) a small tmpfs in a
# mount namespace of its own.
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# The JavaScript SDK (js/) builds with npm and tests with node:test (Node.js 18 or later).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# abidw and abidiff check the C ABI against its committed baseline (scripts/check-abi.sh).
command -v abidiff >/dev/null 2>&1 || missing+=(abigail-tools)
[ -f /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake ] \
  || [ -n "$(find /usr/lib /usr/local/lib -name GTestConfig.cmake -print -quit 2>/dev/null)" ] \
  || missing+=(libgtest-dev)
# Cross builds for edge devices (scripts/test-cross.sh, docs/edge.md): Debian's cross
# compilers for aarch64 and armv7 (with their C libraries), and qemu-user to run what they
# build; GoogleTest for the target is built from libgtest-dev's sources.
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
command -v arm-linux-gnueabihf-g++ >/dev/null 2>&1 || missing+=(g++-arm-linux-gnueabihf)
command -v qemu-aarch64 >/dev/null 2>&1 && command -v qemu-arm >/dev/null 2>&1 \
  || missing+=(qemu-user)
# The Rust standard library for the same targets (rustup, like the toolchain itself).
rust_targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
installed_targets="$(rustup target list --installed)"
for t in "${rust_targets[@]}"; do
  grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
$sudo apt-get update -q
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}"
