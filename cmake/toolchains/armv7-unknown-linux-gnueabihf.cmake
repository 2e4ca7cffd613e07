# Cross build for armv7-unknown-linux-gnueabihf: 32-bit Arm, hard float (Raspberry Pi 2/3/4 with a 32-bit OS).
#
#   cmake -S . -B build/cross-armv7 -G Ninja -DCMAKE_BUILD_TYPE=Debug \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv7-unknown-linux-gnueabihf.cmake
#
# Needs Debian's gcc-arm-linux-gnueabihf and g++-arm-linux-gnueabihf (the C and C++ compilers, the linker
# .cargo/config.toml names, and the target's C library under /usr/arm-linux-gnueabihf), the Rust
# target (rustup target add armv7-unknown-linux-gnueabihf) and, to run the tests, qemu-user: ctest
# runs every test program under qemu-arm (CMAKE_CROSSCOMPILING_EMULATOR).
# scripts/test-cross.sh armv7 does all of it (docs/edge.md).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)

# Libraries and headers come from the target's root only; programs (cargo, qemu) from
# the host.
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages also from a prefix given on the command line (GoogleTest built for the target:
# -DGTest_DIR=..., as scripts/test-cross.sh does).
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and gtest_discover_tests) run the target's programs under qemu-user, with the
# target's shared libraries from /usr/arm-linux-gnueabihf.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)

# The Rust target cargo builds the library and the CLI for (cmake/SoftadastraCargo.cmake).
set(SOFTADASTRA_RUST_TARGET armv7-unknown-linux-gnueabihf CACHE STRING "Rust target triple cargo builds for")
