# qforge_add_plugin(<name> SOURCES ... [MANIFEST file] [LIBRARIES ...] [STATIC])
# Builds an in-tree plugin the way a vendor would: a MODULE library against qforge::plugin_api
# with the plugin link rules, named <name>.so, placed beside a copy of its manifest in the
# build-tree plugin folder (so the host finds it without installing) and installed likewise.
# STATIC builds an object library <name>_objects instead of the module as well, for unit tests
# that call the plugin's C++ classes directly.
function(qforge_add_plugin name)
  cmake_parse_arguments(ARG "" "MANIFEST" "SOURCES;LIBRARIES" ${ARGN})
  add_library(${name}_objects OBJECT ${ARG_SOURCES})
  target_link_libraries(${name}_objects PUBLIC qforge::plugin_api ${ARG_LIBRARIES})
  set_target_properties(${name}_objects PROPERTIES
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON POSITION_INDEPENDENT_CODE ON)
  qforge_target_warnings(${name}_objects)

  add_library(${name} MODULE $<TARGET_OBJECTS:${name}_objects>)
  target_link_libraries(${name} PRIVATE qforge::plugin_api ${ARG_LIBRARIES})
  qforge_plugin_link_rules(${name})
  set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${QFORGE_BUILD_PLUGIN_DIR})
  install(TARGETS ${name} LIBRARY DESTINATION ${QFORGE_INSTALL_PLUGIN_RELDIR})

  if(ARG_MANIFEST)
    get_filename_component(manifest_name ${ARG_MANIFEST} NAME)
    configure_file(${ARG_MANIFEST} ${QFORGE_BUILD_PLUGIN_DIR}/${manifest_name} COPYONLY)
    install(FILES ${ARG_MANIFEST} DESTINATION ${QFORGE_INSTALL_PLUGIN_RELDIR})
  endif()
endfunction()
