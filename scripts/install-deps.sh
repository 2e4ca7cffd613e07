#!/usr/bin/env bash
# Installs the system tools the build and the tests need, when they are missing:
# cmake, ninja and GoogleTest (Debian packages), abigail-tools for the ABI check
# (scripts/check-abi.sh), and ip (iproute2) and nft (nftables) for the network-fault test
# (tests/durability_network.rs, run as root), and unshare (util-linux) for the full-disk
# test, and Node.js with npm for the JavaScript SDK (js/). The Rust toolchain is expected
# (rustup).
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
