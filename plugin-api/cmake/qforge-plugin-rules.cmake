# qforge_plugin_link_rules(<target>): the link rules every qforge plugin follows.
#  - hidden visibility: only what the version script names is exported;
#  - the version script exports qf_plugin_entry alone;
#  - --no-undefined: a plugin resolves every symbol at link time and never links the host.
function(qforge_plugin_link_rules target)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${QFORGE_PLUGIN_EXPORTS_MAP}"
    "LINKER:--no-undefined")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${QFORGE_PLUGIN_EXPORTS_MAP})
endfunction()
