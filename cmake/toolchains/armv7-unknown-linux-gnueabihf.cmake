# Cross build for armv7-unknown-linux-gnueabihf:
#   32-bit Arm, hard float (Raspberry Pi 2/3/4 with a 32-bit OS).
#
#   cmake -S . -B build/cross-armv7 -G Ninja -DCMAKE_BUILD_TYPE=Debug \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv7-unknown-linux-gnueabihf.cmake
#
# Needs Debian's g++-arm-linux-gnueabihf (the compilers, the linker .cargo/config.toml
# names, the target's C library under /usr/arm-linux-gnueabihf), the Rust target
# (rustup target add armv7-unknown-linux-gnueabihf) and, for the tests, qemu-user: ctest runs
# every test program under qemu-arm. scripts/test-cross.sh armv7 does all of it
# (docs/edge.md); debian-cross.cmake holds the settings.
set(_sa_cross_gnu arm-linux-gnueabihf)
set(_sa_cross_processor armv7l)
set(_sa_cross_qemu qemu-arm)
set(_sa_cross_rust armv7-unknown-linux-gnueabihf)
include("${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake")
