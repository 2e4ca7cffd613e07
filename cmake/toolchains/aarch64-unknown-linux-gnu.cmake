# Cross build for aarch64-unknown-linux-gnu: 64-bit Arm (Raspberry Pi 3/4/5 with a 64-bit OS).
#
#   cmake -S . -B build/cross-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Debug \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-unknown-linux-gnu.cmake
#
# Needs Debian's gcc-aarch64-linux-gnu and g++-aarch64-linux-gnu (the C and C++ compilers, the linker
# .cargo/config.toml names, and the target's C library under /usr/aarch64-linux-gnu), the Rust
# target (rustup target add aarch64-unknown-linux-gnu) and, to run the tests, qemu-user: ctest
# runs every test program under qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR).
# scripts/test-cross.sh aarch64 does all of it (docs/edge.md).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Libraries and headers come from the target's root only; programs (cargo, qemu) from
# the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages also from a prefix given on the command line (GoogleTest built for the target:
# -DGTest_DIR=..., as scripts/test-cross.sh does).
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and gtest_discover_tests) run the target's programs under qemu-user, with the
# target's shared libraries from /usr/aarch64-linux-gnu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)

# The Rust target cargo builds the library and the CLI for (cmake/SoftadastraCargo.cmake).
set(SOFTADASTRA_RUST_TARGET aarch64-unknown-linux-gnu CACHE STRING "Rust target triple cargo builds for")
