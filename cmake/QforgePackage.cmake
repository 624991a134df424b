# The installed CMake package `qforge` (docs/embedding.md): qforgeConfig.cmake,
# qforgeConfigVersion.cmake and qforgeTargets.cmake under <prefix>/lib/cmake/qforge, next to
# the qforge-plugin-api package it depends on. Included once every target is defined.
include(CMakePackageConfigHelpers)

set(QFORGE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/qforge)
set(QFORGE_INSTALL_ARCH_RELDIR ${CMAKE_INSTALL_DATADIR}/qforge/architectures)

install(EXPORT qforge-targets NAMESPACE qforge:: FILE qforgeTargets.cmake
        DESTINATION ${QFORGE_INSTALL_CMAKEDIR})
# PATH_VARS become @PACKAGE_<var>@: absolute paths computed from the config file's location at
# find_package time, so a relocated install still points at its own plugins and maps.
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/qforgeConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/qforgeConfig.cmake
  INSTALL_DESTINATION ${QFORGE_INSTALL_CMAKEDIR}
  PATH_VARS QFORGE_INSTALL_PLUGIN_RELDIR QFORGE_INSTALL_ARCH_RELDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/qforgeConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/package/qforgeConfig.cmake
              ${CMAKE_BINARY_DIR}/package/qforgeConfigVersion.cmake
        DESTINATION ${QFORGE_INSTALL_CMAKEDIR})
