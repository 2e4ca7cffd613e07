# Creates (ACTION=setup) or removes (ACTION=cleanup) the data directory an example needs
# before and after its ctest run, e.g. /var/lib/softadastra/edge-store-kampala-01 for
# production_shape.cpp, whose WAL path is fixed by the production guide.
#
#   cmake -DACTION=setup|cleanup -DDIR=<dir> -DSTATE_FILE=<file> -P data_dir.cmake
#
# Setup records in STATE_FILE the directories it created (DIR and any missing parent);
# cleanup removes only those: DIR with its contents, a parent only when it is empty. A
# directory that existed before the setup (a real node's) is never removed. When DIR cannot
# be created or written, setup fails and says why.
cmake_minimum_required(VERSION 3.20)

foreach(_var ACTION DIR STATE_FILE)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "data_dir.cmake: -D${_var}=... is required")
  endif()
endforeach()

if(ACTION STREQUAL "setup")
  # What an earlier setup created stays recorded (its cleanup may not have run).
  set(_created "")
  if(EXISTS "${STATE_FILE}")
    file(STRINGS "${STATE_FILE}" _created)
  endif()

  # The directories missing now, outermost first.
  set(_missing "")
  set(_dir "${DIR}")
  while(NOT IS_DIRECTORY "${_dir}")
    list(PREPEND _missing "${_dir}")
    get_filename_component(_parent "${_dir}" DIRECTORY)
    if(_parent STREQUAL _dir OR _parent STREQUAL "")
      break()
    endif()
    set(_dir "${_parent}")
  endwhile()

  foreach(_dir IN LISTS _missing)
    execute_process(COMMAND "${CMAKE_COMMAND}" -E make_directory "${_dir}"
                    RESULT_VARIABLE _rc ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0 OR NOT IS_DIRECTORY "${_dir}")
      string(STRIP "${_err}" _err)
      message(FATAL_ERROR
        "cannot create the data directory ${_dir} (${_err}). The example uses the fixed "
        "WAL path of the production guide under ${DIR}: run the tests as root, or create "
        "${DIR} writable by this user first.")
    endif()
    list(APPEND _created "${_dir}")
  endforeach()
  list(REMOVE_DUPLICATES _created)
  string(REPLACE ";" "\n" _text "${_created}")
  file(WRITE "${STATE_FILE}" "${_text}\n")

  set(_probe "${DIR}/.softadastra-example-probe")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E touch "${_probe}"
                  RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    string(STRIP "${_err}" _err)
    message(FATAL_ERROR
      "the data directory ${DIR} is not writable by this user (${_err}): run the tests "
      "as root, or make ${DIR} writable.")
  endif()
  file(REMOVE "${_probe}")
  message(STATUS "data directory ready: ${DIR}")

elseif(ACTION STREQUAL "cleanup")
  if(NOT EXISTS "${STATE_FILE}")
    message(STATUS "nothing to remove: the setup created no directory")
    return()
  endif()
  file(STRINGS "${STATE_FILE}" _created)
  list(REVERSE _created)  # innermost first
  foreach(_dir IN LISTS _created)
    if(_dir STREQUAL "")
      continue()
    endif()
    if(_dir STREQUAL DIR)
      file(REMOVE_RECURSE "${_dir}")
      if(IS_DIRECTORY "${_dir}")
        message(FATAL_ERROR "cannot remove the data directory ${_dir}")
      endif()
    elseif(IS_DIRECTORY "${_dir}")
      # A parent the setup created: rmdir removes it only when nothing else was put in it.
      execute_process(COMMAND rmdir "${_dir}" RESULT_VARIABLE _rc ERROR_QUIET)
      if(NOT _rc EQUAL 0)
        message(STATUS "kept ${_dir}: it is not empty")
      endif()
    endif()
  endforeach()
  file(REMOVE "${STATE_FILE}")
  message(STATUS "removed: ${_created}")

else()
  message(FATAL_ERROR "data_dir.cmake: ACTION must be setup or cleanup, not '${ACTION}'")
endif()
