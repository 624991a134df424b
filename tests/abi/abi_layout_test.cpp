// Pins the qforge plugin C ABI v1 on x86_64 LP64: the size and alignment of every struct, the
// offset and width of every member, the value of every constant, and the exact signature of
// every function pointer. All checks are static_asserts; the program only runs to let ctest
// record that it was built (a layout change fails the build of this test).
#include <qforge/qf_plugin.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include "abi_layout_expected.h"

#if !defined(__x86_64__) || !defined(__LP64__)
#error "abi_layout_test pins the x86_64 LP64 layout; add the expected values for this target"
#endif

#define QF_CHECK_STRUCT(type, size, align)                          \
  static_assert(sizeof(type) == (size), "sizeof(" #type ") moved"); \
  static_assert(alignof(type) == (align), "alignof(" #type ") moved");
#define QF_CHECK_MEMBER(type, member, offset, size)                                            \
  static_assert(offsetof(type, member) == (offset), "offsetof(" #type ", " #member ") moved"); \
  static_assert(sizeof(std::declval<type&>().member) == (size),                                \
                "sizeof(" #type "." #member ") changed");
#define QF_CHECK_CONSTANT(expr, value) static_assert((expr) == (value), #expr " changed");

QF_ABI_STRUCTS(QF_CHECK_STRUCT)
QF_ABI_MEMBERS(QF_CHECK_MEMBER)
QF_ABI_CONSTANTS(QF_CHECK_CONSTANT)

namespace {

// Every struct either side fills starts with struct_size, abi_version (ARCHITECTURE.md).
template <class T>
constexpr bool starts_versioned() {
  return std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T> &&
         offsetof(T, struct_size) == 0 && offsetof(T, abi_version) == 4 &&
         std::is_same_v<decltype(T::struct_size), uint32_t> &&
         std::is_same_v<decltype(T::abi_version), uint32_t>;
}
static_assert(starts_versioned<qf_text_sink>());
static_assert(starts_versioned<qf_tensor_list>());
static_assert(starts_versioned<qf_tensor_sink>());
static_assert(starts_versioned<qf_call_ctx>());
static_assert(starts_versioned<qf_module_info>());
static_assert(starts_versioned<qf_host_api>());
static_assert(starts_versioned<qf_method>());
static_assert(starts_versioned<qf_host_info>());
static_assert(starts_versioned<qf_plugin_info>());
static_assert(std::is_standard_layout_v<qf_named_tensor>);  // frozen: no version header

#define QF_CHECK_SIGNATURE(type, member, ...)                        \
  static_assert(std::is_same_v<decltype(type::member), __VA_ARGS__>, \
                #type "." #member " changed signature");

// Host services and sinks.
QF_CHECK_SIGNATURE(qf_text_sink, write, qf_status* (*)(void*, const char*, size_t))
QF_CHECK_SIGNATURE(qf_tensor_sink, allocate,
                   qf_status* (*)(void*, const char*, DLDataType, int32_t, const int64_t*, DLDevice,
                                  DLTensor**))
QF_CHECK_SIGNATURE(qf_call_ctx, is_cancelled, int32_t (*)(void*))
QF_CHECK_SIGNATURE(qf_host_api, status_new,
                   qf_status* (*)(void*, int32_t, const char*, const char*, const char*))
QF_CHECK_SIGNATURE(qf_host_api, log, void (*)(void*, int32_t, const char*, const char*))
QF_CHECK_SIGNATURE(qf_host_api, min_log_level, volatile int32_t)
QF_CHECK_SIGNATURE(qf_host_api, parallel_for,
                   qf_status* (*)(void*, const qf_call_ctx*, int64_t, int64_t, qf_range_fn, void*))
static_assert(std::is_same_v<qf_range_fn, qf_status* (*)(void*, int64_t, int64_t)>);

// Method hooks.
QF_CHECK_SIGNATURE(qf_method, create, qf_status* (*)(const char*, qf_quantizer**))
QF_CHECK_SIGNATURE(qf_method, destroy, void (*)(qf_quantizer*))
QF_CHECK_SIGNATURE(qf_method, validate_environment,
                   qf_status* (*)(qf_quantizer*, const char*, const char*))
QF_CHECK_SIGNATURE(qf_method, update_dtype,
                   qf_status* (*)(qf_quantizer*, const char*, qf_text_sink*))
QF_CHECK_SIGNATURE(qf_method, update_device_map,
                   qf_status* (*)(qf_quantizer*, const char*, qf_text_sink*))
QF_CHECK_SIGNATURE(qf_method, adjust_max_memory,
                   qf_status* (*)(qf_quantizer*, const char*, qf_text_sink*))
QF_CHECK_SIGNATURE(qf_method, needs_quantization,
                   qf_status* (*)(qf_quantizer*, const qf_module_info*, int32_t*, qf_text_sink*))
QF_CHECK_SIGNATURE(qf_method, describe_quantized,
                   qf_status* (*)(qf_quantizer*, const qf_module_info*, qf_text_sink*))
QF_CHECK_SIGNATURE(qf_method, quantize,
                   qf_status* (*)(qf_quantizer*, const qf_call_ctx*, const qf_module_info*,
                                  const DLTensor*, const DLTensor*, const qf_tensor_list*,
                                  qf_tensor_sink*))
QF_CHECK_SIGNATURE(qf_method, check_quantized,
                   qf_status* (*)(qf_quantizer*, const qf_module_info*, const qf_tensor_list*))
QF_CHECK_SIGNATURE(qf_method, dequantize,
                   qf_status* (*)(qf_quantizer*, const qf_call_ctx*, const qf_module_info*,
                                  const qf_tensor_list*, qf_tensor_sink*))
QF_CHECK_SIGNATURE(qf_method, linear_forward,
                   qf_status* (*)(qf_quantizer*, const qf_call_ctx*, const qf_module_info*,
                                  const qf_tensor_list*, const DLTensor*, const DLTensor*,
                                  DLTensor*))
QF_CHECK_SIGNATURE(qf_method, postprocess,
                   qf_status* (*)(qf_quantizer*, const char*, qf_text_sink*))

// Entry.
QF_CHECK_SIGNATURE(qf_plugin_info, methods, const qf_method* const*)
QF_CHECK_SIGNATURE(qf_plugin_info, init, qf_status* (*)(const char*))
QF_CHECK_SIGNATURE(qf_plugin_info, shutdown, void (*)())
static_assert(
    std::is_same_v<qf_plugin_entry_fn, qf_status* (*)(const qf_host_info*, qf_plugin_info*)>);
static_assert(std::is_same_v<decltype(&qf_plugin_entry), qf_plugin_entry_fn>);

}  // namespace

int main() { return 0; }
