/* The pinned layout of the qforge plugin C ABI v1 on x86_64 LP64 (System V), as X-macro lists
 * that both a C11 and a C++ translation unit check with static assertions. Changing any number
 * here is an ABI break: add members only at the end of a struct, bump QF_ABI_MINOR, tag them
 * "since 1.N", and append their lines here (ARCHITECTURE.md, "Versioning").
 *
 * QF_ABI_STRUCTS(X):  X(type, sizeof, alignof)
 * QF_ABI_MEMBERS(X):  X(type, member, offsetof, sizeof member) */
#ifndef QFORGE_TESTS_ABI_LAYOUT_EXPECTED_H_
#define QFORGE_TESTS_ABI_LAYOUT_EXPECTED_H_

#define QF_ABI_STRUCTS(X)   \
  X(DLDevice, 8, 4)         \
  X(DLDataType, 4, 2)       \
  X(DLTensor, 48, 8)        \
  X(qf_text_sink, 24, 8)    \
  X(qf_named_tensor, 16, 8) \
  X(qf_tensor_list, 24, 8)  \
  X(qf_tensor_sink, 24, 8)  \
  X(qf_call_ctx, 48, 8)     \
  X(qf_module_info, 56, 8)  \
  X(qf_host_api, 48, 8)     \
  X(qf_method, 128, 8)      \
  X(qf_host_info, 32, 8)    \
  X(qf_plugin_info, 56, 8)

#define QF_ABI_MEMBERS(X)                                 \
  /* dlpack 0.6+ (DLPack 1.x keeps DLTensor unchanged) */ \
  X(DLDevice, device_type, 0, 4)                          \
  X(DLDevice, device_id, 4, 4)                            \
  X(DLDataType, code, 0, 1)                               \
  X(DLDataType, bits, 1, 1)                               \
  X(DLDataType, lanes, 2, 2)                              \
  X(DLTensor, data, 0, 8)                                 \
  X(DLTensor, device, 8, 8)                               \
  X(DLTensor, ndim, 16, 4)                                \
  X(DLTensor, dtype, 20, 4)                               \
  X(DLTensor, shape, 24, 8)                               \
  X(DLTensor, strides, 32, 8)                             \
  X(DLTensor, byte_offset, 40, 8)                         \
  /* qforge ABI 1.0 */                                    \
  X(qf_text_sink, struct_size, 0, 4)                      \
  X(qf_text_sink, abi_version, 4, 4)                      \
  X(qf_text_sink, ctx, 8, 8)                              \
  X(qf_text_sink, write, 16, 8)                           \
  X(qf_named_tensor, name, 0, 8)                          \
  X(qf_named_tensor, tensor, 8, 8)                        \
  X(qf_tensor_list, struct_size, 0, 4)                    \
  X(qf_tensor_list, abi_version, 4, 4)                    \
  X(qf_tensor_list, count, 8, 8)                          \
  X(qf_tensor_list, items, 16, 8)                         \
  X(qf_tensor_sink, struct_size, 0, 4)                    \
  X(qf_tensor_sink, abi_version, 4, 4)                    \
  X(qf_tensor_sink, ctx, 8, 8)                            \
  X(qf_tensor_sink, allocate, 16, 8)                      \
  X(qf_call_ctx, struct_size, 0, 4)                       \
  X(qf_call_ctx, abi_version, 4, 4)                       \
  X(qf_call_ctx, device, 8, 8)                            \
  X(qf_call_ctx, stream, 16, 8)                           \
  X(qf_call_ctx, cancel_ctx, 24, 8)                       \
  X(qf_call_ctx, is_cancelled, 32, 8)                     \
  X(qf_call_ctx, num_threads, 40, 4)                      \
  X(qf_module_info, struct_size, 0, 4)                    \
  X(qf_module_info, abi_version, 4, 4)                    \
  X(qf_module_info, name, 8, 8)                           \
  X(qf_module_info, kind, 16, 4)                          \
  X(qf_module_info, has_bias, 20, 4)                      \
  X(qf_module_info, in_features, 24, 8)                   \
  X(qf_module_info, out_features, 32, 8)                  \
  X(qf_module_info, weight_dtype, 40, 4)                  \
  X(qf_module_info, extra_json, 48, 8)                    \
  X(qf_host_api, struct_size, 0, 4)                       \
  X(qf_host_api, abi_version, 4, 4)                       \
  X(qf_host_api, ctx, 8, 8)                               \
  X(qf_host_api, status_new, 16, 8)                       \
  X(qf_host_api, log, 24, 8)                              \
  X(qf_host_api, min_log_level, 32, 4)                    \
  X(qf_host_api, parallel_for, 40, 8)                     \
  X(qf_method, struct_size, 0, 4)                         \
  X(qf_method, abi_version, 4, 4)                         \
  X(qf_method, quant_method, 8, 8)                        \
  X(qf_method, flags, 16, 4)                              \
  X(qf_method, reserved0, 20, 4)                          \
  X(qf_method, create, 24, 8)                             \
  X(qf_method, destroy, 32, 8)                            \
  X(qf_method, validate_environment, 40, 8)               \
  X(qf_method, update_dtype, 48, 8)                       \
  X(qf_method, update_device_map, 56, 8)                  \
  X(qf_method, adjust_max_memory, 64, 8)                  \
  X(qf_method, needs_quantization, 72, 8)                 \
  X(qf_method, describe_quantized, 80, 8)                 \
  X(qf_method, quantize, 88, 8)                           \
  X(qf_method, check_quantized, 96, 8)                    \
  X(qf_method, dequantize, 104, 8)                        \
  X(qf_method, linear_forward, 112, 8)                    \
  X(qf_method, postprocess, 120, 8)                       \
  X(qf_host_info, struct_size, 0, 4)                      \
  X(qf_host_info, abi_version, 4, 4)                      \
  X(qf_host_info, min_abi, 8, 4)                          \
  X(qf_host_info, max_abi, 12, 4)                         \
  X(qf_host_info, host_version, 16, 8)                    \
  X(qf_host_info, api, 24, 8)                             \
  X(qf_plugin_info, struct_size, 0, 4)                    \
  X(qf_plugin_info, abi_version, 4, 4)                    \
  X(qf_plugin_info, plugin_id, 8, 8)                      \
  X(qf_plugin_info, plugin_version, 16, 8)                \
  X(qf_plugin_info, method_count, 24, 4)                  \
  X(qf_plugin_info, reserved0, 28, 4)                     \
  X(qf_plugin_info, methods, 32, 8)                       \
  X(qf_plugin_info, init, 40, 8)                          \
  X(qf_plugin_info, shutdown, 48, 8)

/* Values that cross the ABI as integers: X(macro, value). */
#define QF_ABI_CONSTANTS(X)                 \
  X(QF_ABI_MAJOR, 1)                        \
  X(QF_ABI_MAKE_VERSION(1, 2), 0x00010002u) \
  X(QF_ABI_VERSION_MAJOR(0x00030004u), 3)   \
  X(QF_ABI_VERSION_MINOR(0x00030004u), 4)   \
  X(QF_CODE_OK, 0)                          \
  X(QF_CODE_INVALID_ARGUMENT, 1)            \
  X(QF_CODE_FAILED_PRECONDITION, 2)         \
  X(QF_CODE_UNIMPLEMENTED, 3)               \
  X(QF_CODE_RESOURCE_EXHAUSTED, 4)          \
  X(QF_CODE_DEVICE_ERROR, 5)                \
  X(QF_CODE_INTERNAL, 6)                    \
  X(QF_CODE_CANCELLED, 7)                   \
  X(QF_LOG_TRACE, 0)                        \
  X(QF_LOG_DEBUG, 1)                        \
  X(QF_LOG_INFO, 2)                         \
  X(QF_LOG_WARN, 3)                         \
  X(QF_LOG_ERROR, 4)                        \
  X(QF_LOG_OFF, 6)                          \
  X(QF_DL_BOOL, 6)                          \
  X(QF_DL_FLOAT8_E4M3FN, 10)                \
  X(QF_DL_FLOAT8_E5M2, 12)                  \
  X(QF_MODULE_LINEAR, 0)                    \
  X(QF_MODULE_CONV1D, 1)                    \
  X(QF_MODULE_EMBEDDING, 2)                 \
  X(QF_MODULE_OTHER, 3)                     \
  X(QF_METHOD_REQUIRES_CALIBRATION, 1u)     \
  X(QF_METHOD_SERIALIZABLE, 2u)             \
  X(QF_METHOD_TRAINABLE, 4u)                \
  X(QF_METHOD_PREQUANTIZED_ONLY, 8u)        \
  X(kDLCPU, 1)                              \
  X(kDLCUDA, 2)                             \
  X(kDLCUDAHost, 3)                         \
  X(kDLROCM, 10)                            \
  X(kDLInt, 0)                              \
  X(kDLUInt, 1)                             \
  X(kDLFloat, 2)                            \
  X(kDLBfloat, 4)

#endif /* QFORGE_TESTS_ABI_LAYOUT_EXPECTED_H_ */
