# ctest "install_consumer": installs the build tree into a temporary prefix, then
#  1. configures, builds and runs the outside project in this directory with
#     find_package(softadastra CONFIG) (static, or shared with USE_SHARED=ON),
#  2. checks the pkg-config files and builds and runs the same programs with their flags.
# Everything happens in one temporary directory, removed at the end (also on failure).
#
# Inputs: BUILD_DIR, CONSUMER_DIR, USE_SHARED, GENERATOR, LIBDIR, CMAKE_C_COMPILER,
#         CMAKE_CXX_COMPILER.

set(WORK_PREFIX softadastra-install-test)
include("${CMAKE_CURRENT_LIST_DIR}/../script_support.cmake")
set(PREFIX "${WORK}/prefix")

# --- install --------------------------------------------------------------------------
run(_ "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}")
foreach(f include/softadastra.h include/softadastra/sdk.hpp
          ${LIBDIR}/libsoftadastra.a ${LIBDIR}/libsoftadastra_sdk.a
          ${LIBDIR}/cmake/softadastra/softadastraConfig.cmake
          ${LIBDIR}/cmake/softadastra/softadastraConfigVersion.cmake
          ${LIBDIR}/pkgconfig/softadastra.pc ${LIBDIR}/pkgconfig/softadastra-sdk.pc)
  if(NOT EXISTS "${PREFIX}/${f}" OR IS_SYMLINK "${PREFIX}/${f}")
    fail("not installed as a regular file: ${f}")
  endif()
endforeach()
# Shared libraries: lib<name>.so.<major>.<minor>.<patch> is the file; lib<name>.so.<major>
# (the SONAME, what programs load) and lib<name>.so (what linkers find) link to it.
foreach(name softadastra softadastra_sdk)
  file(GLOB _real "${PREFIX}/${LIBDIR}/lib${name}.so.*.*.*")
  list(LENGTH _real _count)
  if(NOT _count EQUAL 1 OR IS_SYMLINK "${_real}")
    fail("lib${name}.so.<version> is not installed as one regular file: ${_real}")
  endif()
  get_filename_component(_file "${_real}" NAME)
  string(REGEX REPLACE "^(lib${name}\\.so\\.[0-9]+).*" "\\1" _soname "${_file}")
  foreach(link "${_soname}" "lib${name}.so")
    if(NOT IS_SYMLINK "${PREFIX}/${LIBDIR}/${link}")
      fail("${link} is not a link")
    endif()
    get_filename_component(_target "${PREFIX}/${LIBDIR}/${link}" REALPATH)
    if(NOT _target STREQUAL _real)
      fail("${link} leads to ${_target}, not ${_real}")
    endif()
  endforeach()
  execute_process(COMMAND readelf -d "${_real}" OUTPUT_VARIABLE _dynamic)
  expect_contains("${_dynamic}" "Library soname: [${_soname}]" "lib${name} SONAME")
endforeach()
# The public headers are self-contained: no generated bridge header, no rust/cxx.h.
if(EXISTS "${PREFIX}/include/rust" OR EXISTS "${PREFIX}/include/softadastra/src")
  fail("bridge headers must not be installed")
endif()

# --- find_package ---------------------------------------------------------------------
set(_bin "${WORK}/consumer-build")
build_consumer("${CONSUMER_DIR}" "${_bin}")

run(out "${_bin}/consumer_cpp" "${WORK}/consumer.wal")
expect_contains("${out}" "node: consumer-01" "C++ consumer")
expect_contains("${out}" "value: hello" "C++ consumer")
expect_contains("${out}" "missing: not_found" "C++ consumer")
run(out "${_bin}/consumer_c")
expect_contains("${out}" "c value: from C" "C consumer")

# Static or shared, as asked: the dynamic sections tell, with the versioned SONAMEs. (The
# C++ consumer calls only the SDK, so the linker may leave libsoftadastra.so to
# libsoftadastra_sdk.so's own needs.)
find_program(READELF readelf)
if(READELF)
  run(dyn_cpp "${READELF}" -d "${_bin}/consumer_cpp")
  run(dyn_c "${READELF}" -d "${_bin}/consumer_c")
  string(FIND "${dyn_cpp}" "[libsoftadastra_sdk.so.0]" _sdk_so)
  string(FIND "${dyn_c}" "[libsoftadastra.so.0]" _core_so)
  if(USE_SHARED)
    if(_sdk_so EQUAL -1 OR _core_so EQUAL -1)
      fail("shared consumers do not load the shared libraries:\n${dyn_cpp}\n${dyn_c}")
    endif()
  else()
    string(FIND "${dyn_cpp}" "[libsoftadastra" _any_cpp)
    string(FIND "${dyn_c}" "[libsoftadastra" _any_c)
    if(NOT _any_cpp EQUAL -1 OR NOT _any_c EQUAL -1)
      fail("static consumers load a shared Softadastra library:\n${dyn_cpp}\n${dyn_c}")
    endif()
  endif()
endif()

# --- pkg-config -----------------------------------------------------------------------
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  fail("pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${LIBDIR}/pkgconfig")
run(version "${PKG_CONFIG}" --modversion softadastra-sdk)
string(STRIP "${version}" version)
if(NOT version MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  fail("unexpected pkg-config version '${version}'")
endif()
run(c_flags "${PKG_CONFIG}" --cflags --libs softadastra)
expect_contains("${c_flags}" "-lsoftadastra" "pkg-config softadastra")
run(cxx_flags "${PKG_CONFIG}" --cflags --libs softadastra-sdk)
expect_contains("${cxx_flags}" "-lsoftadastra_sdk" "pkg-config softadastra-sdk")
expect_contains("${cxx_flags}" "-lsoftadastra" "pkg-config softadastra-sdk")
separate_arguments(c_flags UNIX_COMMAND "${c_flags}")
separate_arguments(cxx_flags UNIX_COMMAND "${cxx_flags}")

# -l picks the shared libraries; run them from the prefix.
run(_ "${CMAKE_C_COMPILER}" -Wall -Werror "${CONSUMER_DIR}/main.c" ${c_flags}
    -o "${WORK}/pc_consumer_c")
run(_ "${CMAKE_CXX_COMPILER}" -std=c++17 -Wall -Werror "${CONSUMER_DIR}/main.cpp" ${cxx_flags}
    -o "${WORK}/pc_consumer_cpp")
set(_env "${CMAKE_COMMAND}" -E env "LD_LIBRARY_PATH=${PREFIX}/${LIBDIR}")
run(out ${_env} "${WORK}/pc_consumer_c")
expect_contains("${out}" "c value: from C" "pkg-config C consumer")
run(out ${_env} "${WORK}/pc_consumer_cpp" "${WORK}/pc.wal")
expect_contains("${out}" "value: hello" "pkg-config C++ consumer")

file(REMOVE_RECURSE "${WORK}")
message(STATUS "install_consumer: find_package (shared=${USE_SHARED}) and pkg-config consumers passed")
