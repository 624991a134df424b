/* qf_plugin.h must compile as strict C99 (STYLE.md rule 6; tests/abi per rule 16): this
 * translation unit is built with -std=c99 -pedantic -Wall -Wextra -Werror. It is an include
 * test; the layout is pinned by abi_layout_test.cpp and abi_layout_c11.c. */
#include <qforge/qf_plugin.h>

/* Touch each type so an unusable declaration (e.g. an incomplete struct used by value) fails
 * here rather than in a vendor's C plugin. */
static size_t qf_abi_total_size(void) {
  return sizeof(qf_text_sink) + sizeof(qf_named_tensor) + sizeof(qf_tensor_list) +
         sizeof(qf_tensor_sink) + sizeof(qf_call_ctx) + sizeof(qf_module_info) +
         sizeof(qf_host_api) + sizeof(qf_method) + sizeof(qf_host_info) + sizeof(qf_plugin_info) +
         sizeof(qf_plugin_entry_fn) + sizeof(qf_range_fn);
}

int main(void) {
  qf_method method = {0};
  method.struct_size = (uint32_t)sizeof(qf_method);
  method.abi_version = QF_ABI_VERSION;
  method.flags = QF_METHOD_SERIALIZABLE | QF_METHOD_TRAINABLE;
  return (qf_abi_total_size() > 0 && QF_ABI_VERSION_MAJOR(method.abi_version) == QF_ABI_MAJOR) ? 0
                                                                                               : 1;
}
