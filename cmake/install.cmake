# Install rules: library, public header, pkg-config file and CMake package config.
include(CMakePackageConfigHelpers)
install(TARGETS cosmicsync EXPORT cosmicsyncTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The static archive is installed for pkg-config --static users; the CMake package
# exports the shared library only (its dependencies stay private to it).
install(TARGETS cosmicsync_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/cosmicsync.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
configure_file(cmake/cosmicsync.pc.in ${PROJECT_BINARY_DIR}/cosmicsync.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cosmicsync.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(EXPORT cosmicsyncTargets NAMESPACE cosmicsync::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cosmicsync)
configure_package_config_file(cmake/cosmicsyncConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cosmicsyncConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cosmicsync)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cosmicsyncConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cosmicsyncConfig.cmake
  ${PROJECT_BINARY_DIR}/cosmicsyncConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cosmicsync)
