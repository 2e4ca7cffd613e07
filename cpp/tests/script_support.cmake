# Shared by the ctest scripts that build and install into a temporary directory
# (find_package/run_install_test.cmake, preset_install/run_preset_test.cmake):
#   WORK                 a new directory under $TMPDIR (else /tmp), named <prefix>-<random>
#   fail(message)        removes WORK and fails the test with the message
#   run(out_var cmd...)  runs a command; on a non-zero exit fails with its output; sets
#                        <out_var> to its standard output and <out_var>_stderr to its error
#   expect_contains(text needle what)
#   build_consumer(source binary)
#                        configures (Debug, with PREFIX on the prefix path, USE_SHARED,
#                        GENERATOR and the compilers) and builds an outside project
# Set WORK_PREFIX before including.

if(DEFINED ENV{TMPDIR} AND NOT "$ENV{TMPDIR}" STREQUAL "")
  set(_tmp "$ENV{TMPDIR}")
else()
  set(_tmp "/tmp")
endif()
string(RANDOM LENGTH 12 _suffix)
set(WORK "${_tmp}/${WORK_PREFIX}-${_suffix}")
file(MAKE_DIRECTORY "${WORK}")

function(fail message)
  file(REMOVE_RECURSE "${WORK}")
  message(FATAL_ERROR "${message}")
endfunction()

function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " shown "${ARGN}")
    fail("command failed (${rc}): ${shown}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${out_var}_stderr "${err}" PARENT_SCOPE)
endfunction()

function(expect_contains text needle what)
  string(FIND "${text}" "${needle}" at)
  if(at EQUAL -1)
    fail("${what}: expected to find '${needle}' in:\n${text}")
  endif()
endfunction()

function(build_consumer source binary)
  run(_ "${CMAKE_COMMAND}" -S "${source}" -B "${binary}" -G "${GENERATOR}"
      -DCMAKE_BUILD_TYPE=Debug
      "-DCMAKE_PREFIX_PATH=${PREFIX}"
      "-Dsoftadastra_USE_SHARED=${USE_SHARED}"
      "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}"
      "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}")
  run(_ "${CMAKE_COMMAND}" --build "${binary}")
endfunction()
