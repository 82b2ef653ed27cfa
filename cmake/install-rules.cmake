# Install rules: the library, its headers, an exported target set with the
# keyfolio:: namespace, a package config with its version file, the find
# module consumers need for libsodium, and a pkg-config file.
include(CMakePackageConfigHelpers)

set(KEYFOLIO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/keyfolio"
    CACHE STRING "Where keyfolio's CMake package files are installed")

install(TARGETS keyfolio
  EXPORT keyfolioTargets
  RUNTIME COMPONENT keyfolio_runtime
  LIBRARY COMPONENT keyfolio_runtime NAMELINK_COMPONENT keyfolio_development
  ARCHIVE COMPONENT keyfolio_development
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

install(DIRECTORY include/ "${PROJECT_BINARY_DIR}/include/"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT keyfolio_development
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT keyfolioTargets
  NAMESPACE keyfolio::
  DESTINATION "${KEYFOLIO_INSTALL_CMAKEDIR}"
  COMPONENT keyfolio_development)

configure_package_config_file(cmake/keyfolioConfig.cmake.in
  "${PROJECT_BINARY_DIR}/keyfolioConfig.cmake"
  INSTALL_DESTINATION "${KEYFOLIO_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/keyfolioConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES
    "${PROJECT_BINARY_DIR}/keyfolioConfig.cmake"
    "${PROJECT_BINARY_DIR}/keyfolioConfigVersion.cmake"
    cmake/FindSodium.cmake
  DESTINATION "${KEYFOLIO_INSTALL_CMAKEDIR}"
  COMPONENT keyfolio_development)

# pkg-config: a shared keyfolio hides libsodium and Boost.JSON behind its own
# dependencies; consumers of a static one link them too, with or without
# --static. Boost.JSON has no pkg-config file on Debian, hence the plain -l.
# The prefix is computed from the .pc file's own location, so that the
# package can be installed with --prefix anywhere.
file(RELATIVE_PATH KEYFOLIO_PC_PREFIX_FROM_PCFILEDIR
  "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" KEYFOLIO_PC_PREFIX_FROM_PCFILEDIR "${KEYFOLIO_PC_PREFIX_FROM_PCFILEDIR}")
if(BUILD_SHARED_LIBS)
  set(KEYFOLIO_PC_CFLAGS "")
  set(KEYFOLIO_PC_REQUIRES "")
  set(KEYFOLIO_PC_REQUIRES_PRIVATE "libsodium >= 1.0.18, sqlite3 >= 3.35, libpq >= 14")
  set(KEYFOLIO_PC_LIBS "")
  set(KEYFOLIO_PC_LIBS_PRIVATE "-lboost_json")
else()
  set(KEYFOLIO_PC_CFLAGS "-DKEYFOLIO_STATIC_DEFINE")
  set(KEYFOLIO_PC_REQUIRES "libsodium >= 1.0.18, sqlite3 >= 3.35, libpq >= 14")
  set(KEYFOLIO_PC_REQUIRES_PRIVATE "")
  set(KEYFOLIO_PC_LIBS "-lboost_json")
  set(KEYFOLIO_PC_LIBS_PRIVATE "")
endif()
configure_file(cmake/keyfolio.pc.in "${PROJECT_BINARY_DIR}/keyfolio.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/keyfolio.pc"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  COMPONENT keyfolio_development)
