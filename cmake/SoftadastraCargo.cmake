# Builds the Rust library with cargo and describes its outputs as CMake targets.
#
# Defines (all GLOBAL, usable from any directory):
#   softadastra_cargo      custom target running `cargo build --lib --locked`
#   softadastra_static     IMPORTED STATIC  target/<profile>/libsoftadastra.a  (C ABI + cxx bridge)
#   softadastra_shared     IMPORTED SHARED  target/<profile>/libsoftadastra.so (SONAME
#                          libsoftadastra.so.<major>; a link of that name sits beside it)
#   softadastra_cxxglue    STATIC, the C++ half of the cxx bridge and cxx's runtime, compiled
#                          here. A Rust cdylib exports only its extern "C" symbols, so C++ code
#                          that talks to the bridge through the shared library links this.
#   softadastra_cli        when SOFTADASTRA_BUILD_CLI is true: custom target running
#                          `cargo build -p softadastra-cli --bin softadastra --locked`, the
#                          softadastra command, at SOFTADASTRA_CLI_EXECUTABLE
# and the variables SOFTADASTRA_CARGO_TARGET_DIR, SOFTADASTRA_CXXBRIDGE_DIR,
# SOFTADASTRA_RUST_STATIC_LIB, SOFTADASTRA_RUST_SHARED_LIB.
#
# The cargo target directory is SOFTADASTRA_CARGO_TARGET_DIR when given, else the
# CARGO_TARGET_DIR of the environment cmake was first run in, else <source>/target: the
# one `cargo test` uses, so their artifacts are shared. Debug (and an empty build type) uses cargo's dev
# profile, so a Debug CMake build reuses cargo test's artifacts; every other build type
# uses --release. Cargo decides what to rebuild; a no-op run takes about 0.1 s.
# Single-config generators only.
#
# Cross builds (docs/edge.md): with a toolchain file of cmake/toolchains/, cargo builds for
# the Rust target SOFTADASTRA_RUST_TARGET (the toolchain file sets it; e.g.
# aarch64-unknown-linux-gnu), into <target dir>/<triple>/<profile>; .cargo/config.toml
# names the linker of each target. Empty (the default): the host, <target dir>/<profile>.

find_package(Threads REQUIRED)

find_program(CARGO_EXECUTABLE cargo HINTS "$ENV{CARGO_HOME}/bin" "$ENV{HOME}/.cargo/bin")
if(NOT CARGO_EXECUTABLE)
  message(FATAL_ERROR "cargo not found: install Rust (https://rustup.rs) or set CARGO_EXECUTABLE")
endif()

# A cache variable, so that a build can keep cargo's output outside the source tree
# (-DSOFTADASTRA_CARGO_TARGET_DIR=/tmp/target, e.g. for several worktrees at once).
if(DEFINED ENV{CARGO_TARGET_DIR} AND NOT "$ENV{CARGO_TARGET_DIR}" STREQUAL "")
  set(_sa_default_target_dir "$ENV{CARGO_TARGET_DIR}")
else()
  set(_sa_default_target_dir "${PROJECT_SOURCE_DIR}/target")
endif()
set(SOFTADASTRA_CARGO_TARGET_DIR "${_sa_default_target_dir}" CACHE PATH
    "Where cargo builds the Rust library (CARGO_TARGET_DIR)")
if(CMAKE_BUILD_TYPE STREQUAL "" OR CMAKE_BUILD_TYPE STREQUAL "Debug")
  set(_sa_profile_dir debug)
  set(_sa_cargo_args)
else()
  set(_sa_profile_dir release)
  set(_sa_cargo_args --release)
endif()

set(SOFTADASTRA_RUST_TARGET "" CACHE STRING
    "Rust target triple cargo builds for (empty: the host; set by cmake/toolchains/*.cmake)")
if(SOFTADASTRA_RUST_TARGET STREQUAL "")
  set(_sa_out "${SOFTADASTRA_CARGO_TARGET_DIR}/${_sa_profile_dir}")
else()
  list(APPEND _sa_cargo_args --target "${SOFTADASTRA_RUST_TARGET}")
  set(_sa_out "${SOFTADASTRA_CARGO_TARGET_DIR}/${SOFTADASTRA_RUST_TARGET}/${_sa_profile_dir}")
endif()
set(SOFTADASTRA_RUST_STATIC_LIB "${_sa_out}/libsoftadastra.a")
set(SOFTADASTRA_RUST_SHARED_LIB "${_sa_out}/libsoftadastra.so")
set(SOFTADASTRA_CXXBRIDGE_DIR "${SOFTADASTRA_CARGO_TARGET_DIR}/cxxbridge")
set(_sa_bridge_cc "${SOFTADASTRA_CXXBRIDGE_DIR}/softadastra/src/bridge.rs.cc")
set(_sa_cxx_cc "${SOFTADASTRA_CXXBRIDGE_DIR}/rust/cxx.cc")

# The SONAME carries the major version (build.rs): programs record libsoftadastra.so.<major>,
# so the build tree gets a link of that name for them to load.
set(SOFTADASTRA_SONAME "libsoftadastra.so.${PROJECT_VERSION_MAJOR}")
add_custom_target(softadastra_cargo ALL
  COMMAND ${CMAKE_COMMAND} -E env "CARGO_TARGET_DIR=${SOFTADASTRA_CARGO_TARGET_DIR}"
          "${CARGO_EXECUTABLE}" build --lib --locked ${_sa_cargo_args}
  COMMAND ${CMAKE_COMMAND} -E create_symlink libsoftadastra.so "${_sa_out}/${SOFTADASTRA_SONAME}"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  BYPRODUCTS "${SOFTADASTRA_RUST_STATIC_LIB}" "${SOFTADASTRA_RUST_SHARED_LIB}"
             "${_sa_bridge_cc}" "${_sa_cxx_cc}"
  COMMENT "cargo build --lib (${_sa_profile_dir})"
  USES_TERMINAL
  VERBATIM)

# The softadastra command (one binary: the CLI commands and `node start`).
if(SOFTADASTRA_BUILD_CLI)
  set(SOFTADASTRA_CLI_EXECUTABLE "${_sa_out}/softadastra")
  add_custom_target(softadastra_cli ALL
    COMMAND ${CMAKE_COMMAND} -E env "CARGO_TARGET_DIR=${SOFTADASTRA_CARGO_TARGET_DIR}"
            "${CARGO_EXECUTABLE}" build -p softadastra-cli --bin softadastra --locked
            ${_sa_cargo_args}
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
    BYPRODUCTS "${SOFTADASTRA_CLI_EXECUTABLE}"
    COMMENT "cargo build --bin softadastra (${_sa_profile_dir})"
    USES_TERMINAL
    VERBATIM)
  # One cargo at a time on the target directory: the library first.
  add_dependencies(softadastra_cli softadastra_cargo)
endif()

# Imported targets need their include directories to exist when CMake generates.
file(MAKE_DIRECTORY "${SOFTADASTRA_CXXBRIDGE_DIR}")

set(_sa_system_libs Threads::Threads ${CMAKE_DL_LIBS} m rt util)

add_library(softadastra_static STATIC IMPORTED GLOBAL)
set_target_properties(softadastra_static PROPERTIES
  IMPORTED_LOCATION "${SOFTADASTRA_RUST_STATIC_LIB}"
  # The archive holds C++ (the cxx bridge), so even C programs link with the C++ driver.
  IMPORTED_LINK_INTERFACE_LANGUAGES "C;CXX"
  INTERFACE_INCLUDE_DIRECTORIES "${PROJECT_SOURCE_DIR}/include"
  INTERFACE_LINK_LIBRARIES "${_sa_system_libs}")
add_dependencies(softadastra_static softadastra_cargo)

add_library(softadastra_shared SHARED IMPORTED GLOBAL)
set_target_properties(softadastra_shared PROPERTIES
  IMPORTED_LOCATION "${SOFTADASTRA_RUST_SHARED_LIB}"
  IMPORTED_SONAME "${SOFTADASTRA_SONAME}"
  INTERFACE_INCLUDE_DIRECTORIES "${PROJECT_SOURCE_DIR}/include")
add_dependencies(softadastra_shared softadastra_cargo)

set_source_files_properties("${_sa_bridge_cc}" "${_sa_cxx_cc}" PROPERTIES GENERATED TRUE)
add_library(softadastra_cxxglue STATIC "${_sa_bridge_cc}" "${_sa_cxx_cc}")
target_include_directories(softadastra_cxxglue SYSTEM PUBLIC "${SOFTADASTRA_CXXBRIDGE_DIR}")
target_compile_features(softadastra_cxxglue PUBLIC cxx_std_17)
set_target_properties(softadastra_cxxglue PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(softadastra_cxxglue PUBLIC softadastra_shared)
add_dependencies(softadastra_cxxglue softadastra_cargo)
