# Runs an example program for ctest, passing its output through, and fails when it exits
# with a status other than 0.
#
#   cmake -DEXAMPLE=<program> [-DARGS=<arg;...>] [-DFRESH_DIR=<dir>]
#         [-DEMULATOR=<program|arg|...>] -P run_example.cmake
#
# ctest checks the output with PASS_REGULAR_EXPRESSION, which ignores exit codes; so a
# failure here prints "example failed:", which the test's FAIL_REGULAR_EXPRESSION matches.
# FRESH_DIR, when given, is removed before and after the run, so every run starts empty.
# EMULATOR, when given (a cross build: qemu-user and its arguments, separated by '|'), runs
# the program.
cmake_minimum_required(VERSION 3.20)

if(NOT DEFINED EXAMPLE OR EXAMPLE STREQUAL "")
  message(FATAL_ERROR "example failed: run_example.cmake needs -DEXAMPLE=<program>")
endif()

if(DEFINED FRESH_DIR AND NOT FRESH_DIR STREQUAL "")
  file(REMOVE_RECURSE "${FRESH_DIR}")
endif()

string(REPLACE "|" ";" _emulator "${EMULATOR}")
execute_process(COMMAND ${_emulator} "${EXAMPLE}" ${ARGS}
                RESULT_VARIABLE _rc
                OUTPUT_VARIABLE _out ECHO_OUTPUT_VARIABLE
                ERROR_VARIABLE _err ECHO_ERROR_VARIABLE)

if(DEFINED FRESH_DIR AND NOT FRESH_DIR STREQUAL "")
  file(REMOVE_RECURSE "${FRESH_DIR}")
endif()

if(NOT _rc STREQUAL "0")
  message(FATAL_ERROR "example failed: ${EXAMPLE} exited with ${_rc}")
endif()
