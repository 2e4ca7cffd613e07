# Cross build for aarch64-unknown-linux-gnu:
#   64-bit Arm (Raspberry Pi 3/4/5 with a 64-bit OS).
#
#   cmake -S . -B build/cross-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Debug \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-unknown-linux-gnu.cmake
#
# Needs Debian's g++-aarch64-linux-gnu (the compilers, the linker .cargo/config.toml
# names, the target's C library under /usr/aarch64-linux-gnu), the Rust target
# (rustup target add aarch64-unknown-linux-gnu) and, for the tests, qemu-user: ctest runs
# every test program under qemu-aarch64. scripts/test-cross.sh aarch64 does all of it
# (docs/edge.md); debian-cross.cmake holds the settings.
set(_sa_cross_gnu aarch64-linux-gnu)
set(_sa_cross_processor aarch64)
set(_sa_cross_qemu qemu-aarch64)
set(_sa_cross_rust aarch64-unknown-linux-gnu)
include("${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake")
