// qforge plugin SDK: header-only C++17 helpers over qf_plugin.h.
//
// A plugin is a C++ class deriving from qforge::sdk::Quantizer. The SDK owns everything that is
// easy to get wrong at the C boundary: ABI negotiation, the noexcept guard around every hook
// (an escaping exception becomes a status, never a crash), text and tensor sinks, logging that
// checks the level first. Nothing here links the host; the SDK depends only on qf_plugin.h and
// the C++ standard library, and none of its C++ types cross the ABI.
//
//   class MyInt4 final : public qforge::sdk::Quantizer {
//    public:
//     static constexpr const char* kQuantMethod = "acme_int4_rtn";
//     static constexpr uint32_t kFlags = QF_METHOD_SERIALIZABLE;
//     explicit MyInt4(const std::string& config_json);
//     void quantize(const Call&, const qf_module_info&, const DLTensor& w, const DLTensor* b,
//                   const qf_tensor_list*, TensorSink& out) override;
//   };
//   QF_PLUGIN_ENTRY(qforge::sdk::PluginSpec{"acme", "1.0.0", 0,
//                                           {qforge::sdk::method_table<MyInt4>()}});
#ifndef QFORGE_QF_PLUGIN_HPP_
#define QFORGE_QF_PLUGIN_HPP_

#include <qforge/qf_plugin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace qforge::sdk {

// The host services table handed to this plugin at entry; valid for the process lifetime.
// Each plugin library has its own copy (hidden visibility), so two plugins never share it.
inline const qf_host_api* g_host = nullptr;

inline const qf_host_api* host() noexcept { return g_host; }

// Throw to fail a hook with a status: what failed / why (values) / how to fix.
class Error : public std::exception {
 public:
  Error(int32_t code, std::string what, std::string why, std::string fix)
      : code_(code), what_(std::move(what)), why_(std::move(why)), fix_(std::move(fix)) {}
  const char* what() const noexcept override { return what_.c_str(); }
  int32_t code() const noexcept { return code_; }
  const std::string& why() const noexcept { return why_; }
  const std::string& fix() const noexcept { return fix_; }

 private:
  int32_t code_;
  std::string what_, why_, fix_;
};

// Carries a status the host already made (e.g. from a sink) up through C++ code unchanged.
class StatusError : public std::exception {
 public:
  explicit StatusError(qf_status* status) noexcept : status_(status) {}
  const char* what() const noexcept override { return "qforge host status"; }
  qf_status* release() const noexcept { return status_; }

 private:
  qf_status* status_;
};

inline qf_status* make_status(int32_t code, const char* what, const char* why,
                              const char* fix) noexcept {
  const qf_host_api* h = g_host;
  if (h == nullptr || h->status_new == nullptr) return nullptr;  // negotiation guards this
  return h->status_new(h->ctx, code, what, why, fix);
}

inline void throw_if_error(qf_status* status) {
  if (status != nullptr) throw StatusError(status);
}

// Runs fn inside the guard every hook needs: no exception may cross the C ABI.
template <class Fn>
qf_status* guard(Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const StatusError& e) {
    return e.release();
  } catch (const Error& e) {
    return make_status(e.code(), e.what(), e.why().c_str(), e.fix().c_str());
  } catch (const std::bad_alloc&) {
    return make_status(QF_CODE_RESOURCE_EXHAUSTED, "out of memory in plugin",
                       "std::bad_alloc escaped a plugin hook",
                       "free memory or quantize fewer modules at once");
  } catch (const std::exception& e) {
    return make_status(QF_CODE_INTERNAL, e.what(), "exception escaped the plugin",
                       "report to the plugin vendor");
  } catch (...) {
    return make_status(QF_CODE_INTERNAL, "unknown exception", "exception escaped the plugin",
                       "report to the plugin vendor");
  }
}

// ------------------------------------------------------------------ logging

inline bool log_enabled(int32_t level) noexcept {
  return g_host != nullptr && g_host->log != nullptr && level >= g_host->min_log_level;
}

inline void log(int32_t level, const std::string& msg, const char* component = nullptr) noexcept {
  if (log_enabled(level)) g_host->log(g_host->ctx, level, component, msg.c_str());
}

// ------------------------------------------------------------------ tensors

inline int64_t numel(const DLTensor& t) noexcept {
  int64_t n = 1;
  for (int32_t i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

inline bool is_contiguous(const DLTensor& t) noexcept {
  if (t.strides == nullptr) return true;
  int64_t expected = 1;
  for (int32_t i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

inline bool same_dtype(DLDataType a, DLDataType b) noexcept {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

inline DLDataType make_dtype(uint8_t code, uint8_t bits) noexcept {
  DLDataType d;
  d.code = code;
  d.bits = bits;
  d.lanes = 1;
  return d;
}

// safetensors dtype names ("F32", "BF16", "U8", ...); "?" for anything else.
inline const char* dtype_name(DLDataType d) noexcept {
  if (d.lanes != 1) return "?";
  switch (d.code) {
    case kDLFloat:
      return d.bits == 64 ? "F64" : d.bits == 32 ? "F32" : d.bits == 16 ? "F16" : "?";
    case kDLBfloat:
      return d.bits == 16 ? "BF16" : "?";
    case kDLInt:
      return d.bits == 64   ? "I64"
             : d.bits == 32 ? "I32"
             : d.bits == 16 ? "I16"
             : d.bits == 8  ? "I8"
                            : "?";
    case kDLUInt:
      return d.bits == 64   ? "U64"
             : d.bits == 32 ? "U32"
             : d.bits == 16 ? "U16"
             : d.bits == 8  ? "U8"
                            : "?";
    case QF_DL_BOOL:
      return d.bits == 8 ? "BOOL" : "?";
    case QF_DL_FLOAT8_E4M3FN:
      return d.bits == 8 ? "F8_E4M3" : "?";
    case QF_DL_FLOAT8_E5M2:
      return d.bits == 8 ? "F8_E5M2" : "?";
    default:
      return "?";
  }
}

// Hook-scoped output allocation; host-owned memory, zero-filled.
class TensorSink {
 public:
  explicit TensorSink(qf_tensor_sink* sink) noexcept : sink_(sink) {}
  DLTensor& allocate(const std::string& name, DLDataType dtype, const std::vector<int64_t>& shape,
                     DLDevice device) {
    if (sink_ == nullptr || sink_->allocate == nullptr) {
      throw Error(QF_CODE_INTERNAL, "no tensor sink", "the host passed a NULL sink",
                  "report to the qforge developers");
    }
    DLTensor* out = nullptr;
    throw_if_error(sink_->allocate(sink_->ctx, name.c_str(), dtype,
                                   static_cast<int32_t>(shape.size()), shape.data(), device, &out));
    if (out == nullptr || (out->data == nullptr && !shape.empty() && product(shape) != 0)) {
      throw Error(QF_CODE_RESOURCE_EXHAUSTED, "host returned no memory for '" + name + "'",
                  "tensor sink allocate succeeded with a NULL buffer", "free host memory");
    }
    return *out;
  }

 private:
  static int64_t product(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t v : s) n *= v;
    return n;
  }
  qf_tensor_sink* sink_;
};

// Finds a named tensor in a list; nullptr when absent.
inline const DLTensor* find_tensor(const qf_tensor_list* list, const char* name) noexcept {
  if (list == nullptr) return nullptr;
  for (int64_t i = 0; i < list->count; ++i) {
    if (list->items[i].name != nullptr && std::strcmp(list->items[i].name, name) == 0) {
      return list->items[i].tensor;
    }
  }
  return nullptr;
}

// ------------------------------------------------------------------ module facts

// A string field of qf_module_info.extra_json ("role", "tag", "family", "default_skip"), or ""
// when absent. The host writes extra_json compactly ({"key":"value",...}), and inside a JSON
// string every quote is escaped, so a plain search for "key":" cannot match inside a value.
inline std::string module_extra_string(const qf_module_info& module, const char* key) {
  if (module.extra_json == nullptr) return std::string();
  const std::string json = module.extra_json;
  const std::string pattern = std::string("\"") + key + "\":\"";
  const size_t at = json.find(pattern);
  if (at == std::string::npos) return std::string();
  std::string value;
  for (size_t i = at + pattern.size(); i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') return value;
    if (c == '\\' && i + 1 < json.size()) {
      const char e = json[++i];
      value += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \uXXXX is not decoded: names are ASCII
      continue;
    }
    value += c;
  }
  return std::string();  // unterminated: treat as absent
}

// ------------------------------------------------------------------ call context

class Call {
 public:
  explicit Call(const qf_call_ctx* ctx) noexcept : ctx_(ctx) {}
  const qf_call_ctx* raw() const noexcept { return ctx_; }
  DLDevice device() const noexcept {
    if (ctx_ != nullptr) return ctx_->device;
    DLDevice cpu;
    cpu.device_type = kDLCPU;
    cpu.device_id = 0;
    return cpu;
  }
  void* stream() const noexcept { return ctx_ != nullptr ? ctx_->stream : nullptr; }
  bool cancelled() const noexcept {
    return ctx_ != nullptr && ctx_->is_cancelled != nullptr &&
           ctx_->is_cancelled(ctx_->cancel_ctx) != 0;
  }
  void throw_if_cancelled() const {
    if (cancelled()) {
      throw Error(QF_CODE_CANCELLED, "cancelled", "the host asked the call to stop", "");
    }
  }
  // Runs fn(begin, end) over [0, n) on the host's pool; exceptions in fn become statuses.
  template <class Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) const {
    using F = std::remove_reference_t<Fn>;  // lvalue, const lvalue and rvalue callables alike
    struct Thunk {
      static qf_status* run(void* user, int64_t b, int64_t e) {
        return guard([&] { (*static_cast<F*>(user))(b, e); });
      }
    };
    const qf_host_api* h = g_host;
    if (h == nullptr || h->parallel_for == nullptr) {
      fn(0, n);
      return;
    }
    void* user = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    throw_if_error(h->parallel_for(h->ctx, ctx_, n, grain, &Thunk::run, user));
  }

 private:
  const qf_call_ctx* ctx_;
};

// ------------------------------------------------------------------ quantizer base

// One instance per resolved quantization_config. Defaults follow HfQuantizer's base class.
// Throw Error to fail; never write to stdout/stderr.
class Quantizer {
 public:
  Quantizer() = default;
  Quantizer(const Quantizer&) = delete;
  Quantizer& operator=(const Quantizer&) = delete;
  virtual ~Quantizer() = default;

  virtual void validate_environment(const std::string& /*env_json*/,
                                    const std::string& /*request_json*/) {}
  virtual std::string update_dtype(const std::string& dtype) { return dtype; }
  virtual std::string update_device_map(const std::string& device_map_json) {
    return device_map_json;
  }
  virtual std::string adjust_max_memory(const std::string& max_memory_json) {
    return max_memory_json;
  }
  // Returns true to quantize; sets `reason` when not. The default quantizes linear layers
  // except those transformers skips by default (the host marks them "default_skip": the output
  // head and tied weights); methods whose config can replace that list override this.
  virtual bool needs_quantization(const qf_module_info& module, std::string& reason) {
    if (module.kind != QF_MODULE_LINEAR && module.kind != QF_MODULE_CONV1D) {
      reason = "not a linear layer";
      return false;
    }
    const std::string skip = module_extra_string(module, "default_skip");
    if (!skip.empty()) {
      reason = "transformers' default skip list: " + skip;
      return false;
    }
    return true;
  }
  virtual std::string describe_quantized(const qf_module_info& /*module*/) {
    throw Error(QF_CODE_UNIMPLEMENTED, "describe_quantized is not implemented", "", "");
  }
  virtual void quantize(const Call& /*call*/, const qf_module_info& /*module*/,
                        const DLTensor& /*weight*/, const DLTensor* /*bias*/,
                        const qf_tensor_list* /*calibration*/, TensorSink& /*out*/) {
    throw Error(QF_CODE_UNIMPLEMENTED, "quantize is not implemented", "", "");
  }
  virtual void check_quantized(const qf_module_info& /*module*/,
                               const qf_tensor_list& /*tensors*/) {
    throw Error(QF_CODE_UNIMPLEMENTED, "check_quantized is not implemented", "", "");
  }
  virtual void dequantize(const Call& /*call*/, const qf_module_info& /*module*/,
                          const qf_tensor_list& /*tensors*/, TensorSink& /*out*/) {
    throw Error(QF_CODE_UNIMPLEMENTED, "dequantize is not implemented", "", "");
  }
  // UNIMPLEMENTED makes the host fall back to dequantize + matmul.
  virtual void linear_forward(const Call& /*call*/, const qf_module_info& /*module*/,
                              const qf_tensor_list& /*tensors*/, const DLTensor& /*x*/,
                              const DLTensor* /*bias*/, DLTensor& /*y*/) {
    throw Error(QF_CODE_UNIMPLEMENTED, "linear_forward is not implemented", "", "");
  }
  virtual std::string postprocess(const std::string& model_config_json) = 0;
};

}  // namespace qforge::sdk

// The plugin defines this struct (the ABI keeps it opaque); the SDK's is a box around the class.
struct qf_quantizer {
  std::unique_ptr<qforge::sdk::Quantizer> impl;
};

namespace qforge::sdk {
namespace detail {

inline Quantizer& self_of(qf_quantizer* q) {
  if (q == nullptr || !q->impl) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "NULL quantizer instance",
                "a hook was called without an instance made by create", "fix the caller");
  }
  return *q->impl;
}

inline std::string str(const char* s) { return s != nullptr ? std::string(s) : std::string(); }

inline void write_text(qf_text_sink* sink, const std::string& text) {
  if (sink == nullptr || sink->write == nullptr) return;
  throw_if_error(sink->write(sink->ctx, text.data(), text.size()));
}

inline void require(const void* p, const char* what) {
  if (p == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, std::string(what) + " is NULL", "the hook requires it",
                "pass a valid pointer");
  }
}

inline void hook_destroy(qf_quantizer* q) { delete q; }

inline qf_status* hook_validate_environment(qf_quantizer* q, const char* env, const char* req) {
  return guard([&] { self_of(q).validate_environment(str(env), str(req)); });
}
inline qf_status* hook_update_dtype(qf_quantizer* q, const char* dtype, qf_text_sink* out) {
  return guard([&] { write_text(out, self_of(q).update_dtype(str(dtype))); });
}
inline qf_status* hook_update_device_map(qf_quantizer* q, const char* map, qf_text_sink* out) {
  return guard([&] { write_text(out, self_of(q).update_device_map(str(map))); });
}
inline qf_status* hook_adjust_max_memory(qf_quantizer* q, const char* mem, qf_text_sink* out) {
  return guard([&] { write_text(out, self_of(q).adjust_max_memory(str(mem))); });
}
inline qf_status* hook_needs_quantization(qf_quantizer* q, const qf_module_info* m, int32_t* needed,
                                          qf_text_sink* reason) {
  return guard([&] {
    require(m, "module");
    require(needed, "out_needed");
    std::string why;
    *needed = self_of(q).needs_quantization(*m, why) ? 1 : 0;
    if (*needed == 0 && reason != nullptr) write_text(reason, why);
  });
}
inline qf_status* hook_describe_quantized(qf_quantizer* q, const qf_module_info* m,
                                          qf_text_sink* out) {
  return guard([&] {
    require(m, "module");
    write_text(out, self_of(q).describe_quantized(*m));
  });
}
inline qf_status* hook_quantize(qf_quantizer* q, const qf_call_ctx* c, const qf_module_info* m,
                                const DLTensor* w, const DLTensor* b, const qf_tensor_list* cal,
                                qf_tensor_sink* out) {
  return guard([&] {
    require(m, "module");
    require(w, "weight");
    TensorSink sink(out);
    self_of(q).quantize(Call(c), *m, *w, b, cal, sink);
  });
}
inline qf_status* hook_check_quantized(qf_quantizer* q, const qf_module_info* m,
                                       const qf_tensor_list* t) {
  return guard([&] {
    require(m, "module");
    require(t, "tensors");
    self_of(q).check_quantized(*m, *t);
  });
}
inline qf_status* hook_dequantize(qf_quantizer* q, const qf_call_ctx* c, const qf_module_info* m,
                                  const qf_tensor_list* t, qf_tensor_sink* out) {
  return guard([&] {
    require(m, "module");
    require(t, "tensors");
    TensorSink sink(out);
    self_of(q).dequantize(Call(c), *m, *t, sink);
  });
}
inline qf_status* hook_linear_forward(qf_quantizer* q, const qf_call_ctx* c,
                                      const qf_module_info* m, const qf_tensor_list* t,
                                      const DLTensor* x, const DLTensor* b, DLTensor* y) {
  return guard([&] {
    require(m, "module");
    require(t, "tensors");
    require(x, "x");
    require(y, "y");
    self_of(q).linear_forward(Call(c), *m, *t, *x, b, *y);
  });
}
inline qf_status* hook_postprocess(qf_quantizer* q, const char* cfg, qf_text_sink* out) {
  return guard([&] { write_text(out, self_of(q).postprocess(str(cfg))); });
}

template <class Q>
qf_status* hook_create(const char* config_json, qf_quantizer** out) {
  return guard([&] {
    require(out, "out");
    *out = nullptr;
    auto box = std::make_unique<qf_quantizer>();
    box->impl = std::make_unique<Q>(str(config_json));
    *out = box.release();
  });
}

}  // namespace detail

// The hook table for quantizer class Q. Q provides `static constexpr const char* kQuantMethod`,
// `static constexpr uint32_t kFlags` and a constructor taking the config JSON.
template <class Q>
const qf_method* method_table() noexcept {
  static const qf_method table = [] {
    qf_method m{};
    m.struct_size = sizeof(qf_method);
    m.abi_version = QF_ABI_VERSION;
    m.quant_method = Q::kQuantMethod;
    m.flags = Q::kFlags;
    m.create = &detail::hook_create<Q>;
    m.destroy = &detail::hook_destroy;
    m.validate_environment = &detail::hook_validate_environment;
    m.update_dtype = &detail::hook_update_dtype;
    m.update_device_map = &detail::hook_update_device_map;
    m.adjust_max_memory = &detail::hook_adjust_max_memory;
    m.needs_quantization = &detail::hook_needs_quantization;
    m.describe_quantized = &detail::hook_describe_quantized;
    m.quantize = &detail::hook_quantize;
    m.check_quantized = &detail::hook_check_quantized;
    m.dequantize = &detail::hook_dequantize;
    m.linear_forward = &detail::hook_linear_forward;
    m.postprocess = &detail::hook_postprocess;
    return m;
  }();
  return &table;
}

struct PluginSpec {
  const char* plugin_id;
  const char* plugin_version;
  // Oldest host minor (of QF_ABI_MAJOR) whose tables this plugin needs; 0 = any 1.x host.
  uint32_t required_host_minor;
  std::vector<const qf_method*> methods;
  qf_status* (*init)(const char* options_json) = nullptr;
  void (*shutdown)() = nullptr;
};

// Sizes of the ABI 1.0 structs. Compared instead of sizeof: a plugin built against a later 1.x
// header must still accept a 1.0 host, whose structs end where 1.0's did.
inline constexpr size_t kHostInfoSize_1_0 = offsetof(qf_host_info, api) + sizeof(void*);
inline constexpr size_t kHostApiSize_1_0 = offsetof(qf_host_api, parallel_for) + sizeof(void*);
inline constexpr size_t kPluginInfoSize_1_0 = offsetof(qf_plugin_info, shutdown) + sizeof(void*);

// Negotiation: the plugin speaks [QF_ABI_MAJOR.required_host_minor, QF_ABI_MAJOR.QF_ABI_MINOR];
// the host speaks [min_abi, max_abi]. Pick the highest version in both ranges.
inline qf_status* plugin_entry(const qf_host_info* host_info, qf_plugin_info* out,
                               const PluginSpec& spec) noexcept {
  if (host_info == nullptr || out == nullptr) return nullptr;          // nothing to report through
  if (out->struct_size >= sizeof(uint32_t) * 2) out->abi_version = 0;  // "refused" until done
  if (host_info->struct_size < kHostInfoSize_1_0 || host_info->api == nullptr ||
      host_info->api->struct_size < kHostApiSize_1_0 || host_info->api->status_new == nullptr) {
    return nullptr;  // abi_version 0 tells the host we refused without a status
  }
  g_host = host_info->api;
  const uint32_t plugin_min = QF_ABI_MAKE_VERSION(QF_ABI_MAJOR, spec.required_host_minor);
  const uint32_t plugin_max = QF_ABI_VERSION;
  const uint32_t low = plugin_min > host_info->min_abi ? plugin_min : host_info->min_abi;
  const uint32_t high = plugin_max < host_info->max_abi ? plugin_max : host_info->max_abi;
  if (low > high || QF_ABI_VERSION_MAJOR(low) != QF_ABI_VERSION_MAJOR(high)) {
    const std::string why = std::string("plugin '") + spec.plugin_id + "' speaks ABI " +
                            std::to_string(QF_ABI_VERSION_MAJOR(plugin_min)) + "." +
                            std::to_string(QF_ABI_VERSION_MINOR(plugin_min)) + ".." +
                            std::to_string(QF_ABI_MAJOR) + "." + std::to_string(QF_ABI_MINOR) +
                            "; the host speaks " +
                            std::to_string(QF_ABI_VERSION_MAJOR(host_info->min_abi)) + "." +
                            std::to_string(QF_ABI_VERSION_MINOR(host_info->min_abi)) + ".." +
                            std::to_string(QF_ABI_VERSION_MAJOR(host_info->max_abi)) + "." +
                            std::to_string(QF_ABI_VERSION_MINOR(host_info->max_abi));
    const bool host_too_old = plugin_min > host_info->max_abi;
    const std::string fix = host_too_old
                                ? "upgrade qforge to a host that speaks ABI " +
                                      std::to_string(QF_ABI_VERSION_MAJOR(plugin_min)) + "." +
                                      std::to_string(QF_ABI_VERSION_MINOR(plugin_min)) + " or newer"
                                : "rebuild the plugin against this host's plugin-api";
    return make_status(QF_CODE_FAILED_PRECONDITION, "plugin ABI version not supported by host",
                       why.c_str(), fix.c_str());
  }
  if (out->struct_size < kPluginInfoSize_1_0) {
    return make_status(QF_CODE_FAILED_PRECONDITION, "host plugin_info table too small",
                       "qf_plugin_info.struct_size is smaller than ABI 1.0 defines",
                       "upgrade qforge");
  }
  out->abi_version = high;
  out->plugin_id = spec.plugin_id;
  out->plugin_version = spec.plugin_version;
  out->method_count = static_cast<int32_t>(spec.methods.size());
  out->methods = spec.methods.data();
  out->init = spec.init;
  out->shutdown = spec.shutdown;
  return nullptr;
}

}  // namespace qforge::sdk

// Defines the exported entry from a PluginSpec expression (evaluated once, kept for the process).
// Variadic so a braced PluginSpec{...} with commas can be written inline.
#define QF_PLUGIN_ENTRY(...)                                                            \
  extern "C" QF_PLUGIN_EXPORT qf_status* qf_plugin_entry(const qf_host_info* host_info, \
                                                         qf_plugin_info* out) {         \
    static const ::qforge::sdk::PluginSpec qf_spec = __VA_ARGS__;                       \
    return ::qforge::sdk::plugin_entry(host_info, out, qf_spec);                        \
  }

#endif  // QFORGE_QF_PLUGIN_HPP_
