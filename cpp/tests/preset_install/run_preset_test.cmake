# ctest "preset_install": builds and installs the project the way CMakePresets.json says,
# with the softadastra command, in one temporary directory (removed at the end, also on
# failure):
#  1. configures with the debug preset (into the temporary directory: -B overrides the
#     preset's build/debug) and -DSOFTADASTRA_BUILD_APPS=ON, plus a misspelt option,
#     which must be named in a warning;
#  2. builds, and installs into a temporary prefix: bin/softadastra must run
#     (`--version` prints this version), and the libraries, headers, CMake package and
#     pkg-config files must be there;
#  3. configures with the release preset and checks its build type. Building it is the
#     same steps with cargo --release (minutes on a small machine), so it is left out.
# cargo uses the build tree's target directory, so only the command itself is compiled.
#
# Inputs: SOURCE_DIR, CARGO_TARGET_DIR, LIBDIR, BINDIR, VERSION, CMAKE_C_COMPILER,
#         CMAKE_CXX_COMPILER.

set(WORK_PREFIX softadastra-preset-test)
include("${CMAKE_CURRENT_LIST_DIR}/../script_support.cmake")
set(PREFIX "${WORK}/prefix")

set(_common
  "-DSOFTADASTRA_CARGO_TARGET_DIR=${CARGO_TARGET_DIR}"
  "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}"
  "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
  # The library and the command are what is checked: no tests, no examples.
  -DBUILD_TESTING=OFF -DSOFTADASTRA_BUILD_EXAMPLES=OFF)

# --- 1. configure with the debug preset -----------------------------------------------
run(configured "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" --preset debug -B "${WORK}/debug"
    ${_common} -DSOFTADASTRA_BUILD_APPS=ON -DSOFTADASTRA_BUILD_APP=ON)
set(configured "${configured}${configured_stderr}")
expect_contains("${configured}" "SOFTADASTRA_BUILD_APP is not an option of Softadastra"
                "a misspelt option")
string(FIND "${configured}" "SOFTADASTRA_BUILD_APPS is not an option" _known_warned)
if(NOT _known_warned EQUAL -1)
  fail("a known option was warned about:\n${configured}")
endif()
file(STRINGS "${WORK}/debug/CMakeCache.txt" _type REGEX "^CMAKE_BUILD_TYPE:")
expect_contains("${_type}" "=Debug" "debug preset build type")

# --- 2. build and install ---------------------------------------------------------------
run(_ "${CMAKE_COMMAND}" --build "${WORK}/debug")
run(_ "${CMAKE_COMMAND}" --install "${WORK}/debug" --prefix "${PREFIX}")
foreach(f ${BINDIR}/softadastra
          include/softadastra.h include/softadastra/sdk.hpp
          ${LIBDIR}/libsoftadastra.a ${LIBDIR}/libsoftadastra_sdk.a
          ${LIBDIR}/libsoftadastra.so ${LIBDIR}/libsoftadastra_sdk.so
          ${LIBDIR}/cmake/softadastra/softadastraConfig.cmake
          ${LIBDIR}/cmake/softadastra/softadastraConfigVersion.cmake
          ${LIBDIR}/pkgconfig/softadastra.pc ${LIBDIR}/pkgconfig/softadastra-sdk.pc)
  if(NOT EXISTS "${PREFIX}/${f}")
    fail("not installed: ${f}")
  endif()
endforeach()
run(version "${PREFIX}/${BINDIR}/softadastra" --version)
expect_contains("${version}" "softadastra ${VERSION}" "softadastra --version")
# Without the options, no command is installed.
run(_ "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" --preset debug -B "${WORK}/debug" ${_common}
    -DSOFTADASTRA_BUILD_APPS=OFF -USOFTADASTRA_BUILD_APP)
run(_ "${CMAKE_COMMAND}" --install "${WORK}/debug" --prefix "${WORK}/no-apps")
if(EXISTS "${WORK}/no-apps/${BINDIR}/softadastra")
  fail("softadastra installed without SOFTADASTRA_BUILD_APPS")
endif()

# --- 3. the release preset --------------------------------------------------------------
run(_ "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" --preset release -B "${WORK}/release" ${_common}
    -DSOFTADASTRA_BUILD_CLI_APP=ON)
file(STRINGS "${WORK}/release/CMakeCache.txt" _type REGEX "^CMAKE_BUILD_TYPE:")
expect_contains("${_type}" "=Release" "release preset build type")
file(STRINGS "${WORK}/release/CMakeCache.txt" _gen REGEX "^CMAKE_GENERATOR:")
expect_contains("${_gen}" "=Ninja" "release preset generator")

file(REMOVE_RECURSE "${WORK}")
message(STATUS "preset_install: configured, built and installed with the softadastra command")
