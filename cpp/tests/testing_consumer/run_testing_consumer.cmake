# ctest "testing_consumer": the application test of docs/testing.md, built and run as an
# outside project would: installs the build tree into a temporary prefix, writes the
# page's CMakeLists.txt and till_test.cpp (the code blocks after the markers
# "<!-- testing_consumer: NAME -->") into a project directory, configures it with
# find_package(softadastra CONFIG COMPONENTS testing), builds it and runs the test.
# Everything happens in one temporary directory, removed at the end (also on failure).
#
# Inputs: BUILD_DIR, DOC, USE_SHARED, GENERATOR, CMAKE_C_COMPILER, CMAKE_CXX_COMPILER.

set(WORK_PREFIX softadastra-testing-consumer)
include("${CMAKE_CURRENT_LIST_DIR}/../script_support.cmake")
set(PREFIX "${WORK}/prefix")
set(PROJECT "${WORK}/project")

# The fenced code block that follows "<!-- testing_consumer: NAME -->" in the page.
function(extract name out_var)
  file(READ "${DOC}" doc)
  set(marker "<!-- testing_consumer: ${name} -->")
  string(FIND "${doc}" "${marker}" at)
  if(at EQUAL -1)
    fail("${DOC} has no marker ${marker}")
  endif()
  string(SUBSTRING "${doc}" ${at} -1 rest)
  string(FIND "${rest}" "```" fence)
  if(fence EQUAL -1)
    fail("${DOC}: no code block after ${marker}")
  endif()
  string(SUBSTRING "${rest}" ${fence} -1 rest)
  string(FIND "${rest}" "\n" eol)
  math(EXPR start "${eol} + 1")
  string(SUBSTRING "${rest}" ${start} -1 rest)
  string(FIND "${rest}" "\n```" end)
  if(end EQUAL -1)
    fail("${DOC}: the code block after ${marker} does not end")
  endif()
  math(EXPR end "${end} + 1")
  string(SUBSTRING "${rest}" 0 ${end} code)
  set(${out_var} "${code}" PARENT_SCOPE)
endfunction()

run(_ "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}")
if(NOT EXISTS "${PREFIX}/include/softadastra/testing.hpp")
  fail("softadastra/testing.hpp is not installed")
endif()

file(MAKE_DIRECTORY "${PROJECT}")
foreach(name CMakeLists.txt till_test.cpp)
  extract("${name}" code)
  file(WRITE "${PROJECT}/${name}" "${code}")
endforeach()

set(_bin "${WORK}/build")
build_consumer("${PROJECT}" "${_bin}")
run(out "${CMAKE_CTEST_COMMAND}" --test-dir "${_bin}" --output-on-failure)
expect_contains("${out}" "100% tests passed" "the application test of docs/testing.md")

# A component that does not exist is refused.
file(WRITE "${WORK}/unknown/CMakeLists.txt" "cmake_minimum_required(VERSION 3.20)
project(unknown_component LANGUAGES CXX)
find_package(softadastra CONFIG REQUIRED COMPONENTS no_such_component)
")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${WORK}/unknown" -B "${WORK}/unknown-build"
                        -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${PREFIX}"
                        "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  fail("find_package(softadastra COMPONENTS no_such_component) succeeded")
endif()

file(REMOVE_RECURSE "${WORK}")
message(STATUS "testing_consumer: the application test of docs/testing.md passed")
