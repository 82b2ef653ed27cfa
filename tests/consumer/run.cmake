# Builds and runs the consumer program against keyfolio, the way a user would:
#   MODE=find_package      install this build into a fresh prefix, then
#                          find_package(keyfolio) from it; also compile the
#                          program with the installed pkg-config file
#   MODE=add_subdirectory  add_subdirectory(<keyfolio source tree>)
cmake_minimum_required(VERSION 3.25)

set(work "${CONSUMER_WORK_DIR}/${MODE}")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("$ ${ARGN}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(configure_args
  -D "CMAKE_CXX_COMPILER=${CXX_COMPILER}"
  -D "CMAKE_CXX_FLAGS=${CXX_FLAGS}"
  -D "CMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
  -D "CMAKE_BUILD_TYPE=${BUILD_TYPE}"
  -D "BUILD_SHARED_LIBS=${SHARED}")

if(MODE STREQUAL "find_package")
  set(prefix "${work}/prefix")
  run("${CMAKE_COMMAND}" --install "${KEYFOLIO_BINARY_DIR}" --prefix "${prefix}")
  run("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}/find_package" -B "${work}/build"
      ${configure_args} -D "CMAKE_PREFIX_PATH=${prefix}")
  run("${CMAKE_COMMAND}" --build "${work}/build")
  run("${work}/build/consumer")

  # The same program through pkg-config, with nothing but the installed .pc file.
  file(GLOB_RECURSE pc_files "${prefix}/*/keyfolio.pc")
  list(LENGTH pc_files count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "expected one installed keyfolio.pc, found: ${pc_files}")
  endif()
  get_filename_component(pc_dir "${pc_files}" DIRECTORY)
  get_filename_component(lib_dir "${pc_dir}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  execute_process(COMMAND pkg-config --cflags --libs keyfolio
                  RESULT_VARIABLE rc OUTPUT_VARIABLE pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config could not read ${pc_files}")
  endif()
  separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
  separate_arguments(cxx_flags UNIX_COMMAND "${CXX_FLAGS} ${EXE_LINKER_FLAGS}")
  run("${CXX_COMPILER}" -std=c++20 ${cxx_flags} "${CONSUMER_SOURCE_DIR}/main.cpp" ${pc_flags}
      -o "${work}/consumer-pkg-config" "-Wl,-rpath,${lib_dir}")
  run("${work}/consumer-pkg-config")
elseif(MODE STREQUAL "add_subdirectory")
  run("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}/add_subdirectory" -B "${work}/build"
      ${configure_args} -D "KEYFOLIO_SOURCE_DIR=${KEYFOLIO_SOURCE_DIR}")
  run("${CMAKE_COMMAND}" --build "${work}/build" --parallel 2)
  run("${work}/build/consumer")
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
