# What the toolchain files of this directory share: a cross build with Debian's cross
# compilers (g++-<gnu triple>), the target's libraries and headers under /usr/<gnu
# triple>, and the tests run under qemu-user. The including file sets _sa_cross_gnu (the
# GNU triple), _sa_cross_processor, _sa_cross_qemu (the qemu-user program) and
# _sa_cross_rust (the Rust target).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${_sa_cross_processor})
set(CMAKE_C_COMPILER ${_sa_cross_gnu}-gcc)
set(CMAKE_CXX_COMPILER ${_sa_cross_gnu}-g++)

# Libraries and headers come from the target's root only; programs (cargo, qemu) from
# the host.
set(CMAKE_FIND_ROOT_PATH /usr/${_sa_cross_gnu})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages also from a prefix given on the command line (GoogleTest built for the target:
# -DGTest_DIR=..., as scripts/test-cross.sh does).
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and gtest_discover_tests) run the target's programs under qemu-user, with the
# target's shared libraries from /usr/<gnu triple>.
set(CMAKE_CROSSCOMPILING_EMULATOR ${_sa_cross_qemu} -L /usr/${_sa_cross_gnu})

# The Rust target cargo builds the library and the CLI for (cmake/SoftadastraCargo.cmake).
set(SOFTADASTRA_RUST_TARGET ${_sa_cross_rust} CACHE STRING "Rust target triple cargo builds for")
