// qforge::Quantizer: the host's C++ face of one plugin method instance. Every hook call is
// contained (a throwing C++ plugin without the SDK guard is caught here), every status is turned
// into a qforge::Error, and every output is validated before the host uses it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "plugins/host_services.hpp"
#include "qforge/host.hpp"

namespace qforge {
namespace {

using plugins::consume_status;
using plugins::TensorSink;
using plugins::TextSink;

// The C view of a ModuleInfo; owns the strings the view points to.
struct CModule {
  explicit CModule(const ModuleInfo& m) : name(m.name), extra(m.extra.dump()) {
    info.struct_size = sizeof(qf_module_info);
    info.abi_version = QF_ABI_VERSION;
    info.name = name.c_str();
    info.kind = m.kind;
    info.has_bias = m.has_bias ? 1 : 0;
    info.in_features = m.in_features;
    info.out_features = m.out_features;
    info.weight_dtype = m.weight_dtype;
    info.extra_json = extra.c_str();
  }
  std::string name, extra;
  qf_module_info info{};
};

qf_call_ctx cpu_call(int num_threads = 0) {
  qf_call_ctx ctx{};
  ctx.struct_size = sizeof(qf_call_ctx);
  ctx.abi_version = QF_ABI_VERSION;
  ctx.device = DLDevice{kDLCPU, 0};
  ctx.num_threads = num_threads < 0 ? 0 : num_threads;  // 0: host default
  return ctx;
}

// One list entry per tensor; the view borrows names and tensors from `tensors`.
struct CTensorList {
  explicit CTensorList(const std::vector<NamedView>& tensors) {
    items.reserve(tensors.size());
    for (const auto& t : tensors) {
      items.push_back(qf_named_tensor{t.name.c_str(), const_cast<DLTensor*>(t.tensor.dl())});
    }
    list.struct_size = sizeof(qf_tensor_list);
    list.abi_version = QF_ABI_VERSION;
    list.count = static_cast<int64_t>(items.size());
    list.items = items.data();
  }
  std::vector<qf_named_tensor> items;
  qf_tensor_list list{};
};

// Note [output scan]: the host checks every floating output of a plugin for NaN/Inf (PL8).
// A dequantized weight is the largest tensor a hook returns, and a one-thread element-by-element
// scan of it took longer than the plugin's own work. The scan looks at fixed-size pieces whose
// "any bad element" flag is a branch-free OR over exponent bits the compiler vectorizes; only a
// piece that has one is searched element by element. Pieces are spread over the host pool
// (parallel_for, the call's thread count) and the lowest bad index wins, so the answer is the
// same as a sequential scan.
constexpr int64_t kScanPiece = 2048;
constexpr int64_t kScanGrain = int64_t{1} << 18;  // elements per parallel_for chunk at least

typedef uint64_t alias_u64 __attribute__((may_alias));
typedef uint32_t alias_u32 __attribute__((may_alias));
typedef uint16_t alias_u16 __attribute__((may_alias));
typedef uint8_t alias_u8 __attribute__((may_alias));

// The elements of one dtype whose exponent bits are all ones (NaN or Inf), as (bits & mask) ==
// mask; e4m3fn has no Inf and uses 0x7F / 0xFF for NaN, which is the same test.
template <class U>
int64_t first_bad_in(const U* p, int64_t begin, int64_t end, U mask) {
  int64_t i = begin;
  while (i < end) {
    const int64_t stop = std::min(end, i + kScanPiece);
    bool any = false;
    if (stop - i == kScanPiece) {
      U acc = 0;
      for (int64_t k = 0; k < kScanPiece; ++k) acc |= static_cast<U>(((p[i + k] & mask) == mask));
      any = acc != 0;
    } else {
      any = true;  // a short tail is searched directly
    }
    if (any) {
      for (int64_t k = i; k < stop; ++k) {
        if ((p[k] & mask) == mask) return k;
      }
    }
    i = stop;
  }
  return -1;
}

struct ScanJob {
  const void* data = nullptr;
  DLDataType dtype{};
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
};

int64_t scan_range(const void* data, DLDataType d, int64_t begin, int64_t end) {
  if (d.code == kDLFloat && d.bits == 32) {
    return first_bad_in(static_cast<const alias_u32*>(data), begin, end, alias_u32{0x7F800000u});
  }
  if (d.code == kDLFloat && d.bits == 64) {
    return first_bad_in(static_cast<const alias_u64*>(data), begin, end,
                        alias_u64{0x7FF0000000000000ull});
  }
  if ((d.code == kDLFloat || d.code == kDLBfloat) && d.bits == 16) {
    const alias_u16 mask = d.code == kDLFloat ? 0x7C00 : 0x7F80;
    return first_bad_in(static_cast<const alias_u16*>(data), begin, end, mask);
  }
  if (d.code == QF_DL_FLOAT8_E4M3FN && d.bits == 8) {
    return first_bad_in(static_cast<const alias_u8*>(data), begin, end, alias_u8{0x7F});
  }
  return -1;
}

qf_status* scan_chunk(void* user, int64_t begin, int64_t end) {
  auto* job = static_cast<ScanJob*>(user);
  const int64_t bad = scan_range(job->data, job->dtype, begin, end);
  if (bad >= 0) {
    int64_t seen = job->first.load();
    while (bad < seen && !job->first.compare_exchange_weak(seen, bad)) {
    }
  }
  return nullptr;
}

// Index of the first non-finite element of a floating tensor, or -1. `call` gives the thread
// count; `plugin_id` the services table whose parallel_for runs the scan.
int64_t first_non_finite(const Tensor& t, const std::string& plugin_id, const qf_call_ctx& call) {
  const DLDataType d = t.dtype();
  const int64_t n = t.numel();
  const bool floating =
      d.code == kDLFloat || d.code == kDLBfloat || (d.code == QF_DL_FLOAT8_E4M3FN && d.bits == 8);
  if (!floating || n == 0) return -1;
  if (n < 2 * kScanGrain) return scan_range(t.data(), d, 0, n);
  ScanJob job;
  job.data = t.data();
  job.dtype = d;
  const qf_host_api* api = plugins::host_api_for(plugin_id);
  qf_status* status = api->parallel_for(api->ctx, &call, n, kScanGrain, &scan_chunk, &job);
  (void)consume_status(status, "output scan");  // scan_chunk never fails
  const int64_t first = job.first.load();
  return first == std::numeric_limits<int64_t>::max() ? -1 : first;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

Quantizer::Quantizer(std::string plugin_id, std::string quant_method, const qf_method* method,
                     qf_quantizer* instance, std::shared_ptr<void> library_keepalive)
    : plugin_id_(std::move(plugin_id)),
      quant_method_(std::move(quant_method)),
      method_(method),
      instance_(instance),
      keepalive_(std::move(library_keepalive)) {}

Quantizer::~Quantizer() {
  if (instance_ != nullptr) {
    try {
      method_->destroy(instance_);
    } catch (...) {
      // Nothing to report to: a destructor cannot fail. The SDK guard makes this unreachable.
    }
  }
}

uint32_t Quantizer::flags() const noexcept { return method_->flags; }

namespace {

template <class Fn>
Status call_hook(const std::string& context, Fn&& fn) {
  qf_status* status = nullptr;
  try {
    status = fn();
  } catch (const std::exception& e) {
    return plugin_error(context + " threw a C++ exception", e.what(),
                        "plugins must not let exceptions cross the C ABI; report to the vendor");
  } catch (...) {
    return plugin_error(context + " threw", "unknown exception type",
                        "plugins must not let exceptions cross the C ABI; report to the vendor");
  }
  return consume_status(status, context);
}

Result<nlohmann::json> parse_plugin_json(const std::string& text, const std::string& context) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return plugin_error(context + " returned invalid JSON",
                        "text: " + text.substr(0, 200) + (text.size() > 200 ? "..." : ""),
                        "report to the plugin vendor");
  }
  return j;
}

}  // namespace

#define QF_CONTEXT(hook) ("plugin '" + plugin_id_ + "' (" + quant_method_ + ") " hook)

Status Quantizer::validate_environment(const nlohmann::json& env, const nlohmann::json& request) {
  if (method_->validate_environment == nullptr) return ok_status();
  const std::string env_text = env.dump(), request_text = request.dump();
  Status status = call_hook(QF_CONTEXT("validate_environment"), [&] {
    return method_->validate_environment(instance_, env_text.c_str(), request_text.c_str());
  });
  // Every refusal here is a pre-flight failure (exit 3), whatever the plugin's code says.
  if (status.ok() || status.error().exit_code() == ExitCode::kPlugin) return status;
  const Error& e = status.error();
  return Error(e.code(), ExitCode::kEnvironment, e.summary(), e.why(), e.fix());
}

Result<std::string> Quantizer::update_dtype(const std::string& dtype) {
  if (method_->update_dtype == nullptr) return dtype;
  TextSink out;
  QF_RETURN_IF_ERROR(call_hook(QF_CONTEXT("update_dtype"), [&] {
    return method_->update_dtype(instance_, dtype.c_str(), out.raw());
  }));
  return out.written() ? out.text() : dtype;
}

Result<nlohmann::json> Quantizer::update_device_map(const nlohmann::json& device_map) {
  if (method_->update_device_map == nullptr) return device_map;
  TextSink out;
  const std::string text = device_map.dump();
  QF_RETURN_IF_ERROR(call_hook(QF_CONTEXT("update_device_map"), [&] {
    return method_->update_device_map(instance_, text.c_str(), out.raw());
  }));
  if (!out.written()) return device_map;
  return parse_plugin_json(out.text(), QF_CONTEXT("update_device_map"));
}

Result<nlohmann::json> Quantizer::adjust_max_memory(const nlohmann::json& max_memory) {
  if (method_->adjust_max_memory == nullptr) return max_memory;
  TextSink out;
  const std::string text = max_memory.dump();
  QF_RETURN_IF_ERROR(call_hook(QF_CONTEXT("adjust_max_memory"), [&] {
    return method_->adjust_max_memory(instance_, text.c_str(), out.raw());
  }));
  if (!out.written()) return max_memory;
  return parse_plugin_json(out.text(), QF_CONTEXT("adjust_max_memory"));
}

Result<std::pair<bool, std::string>> Quantizer::needs_quantization(const ModuleInfo& module) {
  if (method_->needs_quantization == nullptr) {
    const bool linear = module.kind == QF_MODULE_LINEAR || module.kind == QF_MODULE_CONV1D;
    return std::make_pair(linear, std::string(linear ? "" : "not a linear layer"));
  }
  CModule c(module);
  int32_t needed = -1;
  TextSink reason;
  QF_RETURN_IF_ERROR(call_hook(QF_CONTEXT("needs_quantization"), [&] {
    return method_->needs_quantization(instance_, &c.info, &needed, reason.raw());
  }));
  if (needed != 0 && needed != 1) {
    return plugin_error(QF_CONTEXT("needs_quantization") + " returned an invalid answer",
                        "out_needed is " + std::to_string(needed) + ", expected 0 or 1",
                        "report to the plugin vendor");
  }
  return std::make_pair(needed == 1, reason.text());
}

Result<nlohmann::json> Quantizer::describe_quantized(const ModuleInfo& module) {
  if (method_->describe_quantized == nullptr) {
    return Error(ErrorCode::kUnimplemented, ExitCode::kPlugin,
                 QF_CONTEXT("describe_quantized") + ": not implemented", "the hook is NULL", "");
  }
  CModule c(module);
  TextSink out;
  QF_RETURN_IF_ERROR(call_hook(QF_CONTEXT("describe_quantized"), [&] {
    return method_->describe_quantized(instance_, &c.info, out.raw());
  }));
  auto j = parse_plugin_json(out.text(), QF_CONTEXT("describe_quantized"));
  if (!j.ok()) return j;
  if (!j.value().is_object() || !j.value().contains("tensors") ||
      !j.value()["tensors"].is_array()) {
    return plugin_error(QF_CONTEXT("describe_quantized") + " returned malformed JSON",
                        "expected {\"tensors\": [...]}, got " + j.value().dump().substr(0, 200),
                        "report to the plugin vendor");
  }
  return j;
}

std::vector<NamedView> views_of(const std::vector<NamedTensor>& tensors) {
  std::vector<NamedView> views;
  views.reserve(tensors.size());
  for (const auto& t : tensors) views.push_back(NamedView{t.name, TensorView::of(t.tensor)});
  return views;
}

Result<std::vector<NamedTensor>> Quantizer::quantize(const ModuleInfo& module, const Tensor& weight,
                                                     const Tensor* bias) {
  const TensorView bias_view = bias != nullptr ? TensorView::of(*bias) : TensorView();
  return quantize(module, TensorView::of(weight), bias != nullptr ? &bias_view : nullptr);
}

Result<std::vector<NamedTensor>> Quantizer::quantize(const ModuleInfo& module,
                                                     const TensorView& weight,
                                                     const TensorView* bias, int num_threads,
                                                     const std::vector<NamedView>* calibration) {
  const std::string context = QF_CONTEXT("quantize");
  if (method_->quantize == nullptr) {
    return Error(ErrorCode::kUnimplemented, ExitCode::kPlugin, context + ": not implemented",
                 "the plugin has no quantize hook", "use a plugin that can quantize this method");
  }
  CModule c(module);
  qf_call_ctx call = cpu_call(num_threads);
  TensorSink sink;
  const bool has_calibration = calibration != nullptr && !calibration->empty();
  std::optional<CTensorList> stats;
  if (has_calibration) stats.emplace(*calibration);
  QF_RETURN_IF_ERROR(call_hook(context, [&] {
    return method_->quantize(instance_, &call, &c.info, const_cast<DLTensor*>(weight.dl()),
                             bias != nullptr ? const_cast<DLTensor*>(bias->dl()) : nullptr,
                             has_calibration ? &stats->list : nullptr, sink.raw());
  }));
  std::vector<NamedTensor> outputs = sink.take();
  if (outputs.empty()) {
    return plugin_error(context + " produced no tensors",
                        "quantize returned success with no output", "report to the plugin vendor");
  }
  for (const auto& t : outputs) {
    const int64_t bad = first_non_finite(t.tensor, plugin_id_, call);
    if (bad >= 0) {
      return plugin_error(context + " produced a non-finite value in '" + t.name + "'",
                          "element " + std::to_string(bad) + " of " + module.name + "." + t.name +
                              " is NaN or infinite",
                          "check the weight for NaN/Inf; otherwise report to the plugin vendor");
    }
  }
  auto described = describe_quantized(module);
  if (!described.ok()) {
    if (described.error().code() == ErrorCode::kUnimplemented) return outputs;
    return described.error();
  }
  std::map<std::string, const NamedTensor*> by_name;
  for (const auto& t : outputs) by_name[t.name] = &t;
  std::set<std::string> expected_names;
  for (const auto& d : described.value()["tensors"]) {
    const std::string name = d.value("name", "");
    expected_names.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return plugin_error(context + " did not produce '" + name + "'",
                          "describe_quantized lists it for " + module.name,
                          "report to the plugin vendor");
    }
    const Tensor& t = it->second->tensor;
    const std::string dtype = d.value("dtype", "");
    if (dtype_to_string(t.dtype()) != dtype) {
      return plugin_error(
          context + " produced '" + name + "' with the wrong dtype",
          "got " + dtype_to_string(t.dtype()) + ", describe_quantized says " + dtype,
          "report to the plugin vendor");
    }
    std::vector<int64_t> shape;
    if (d.contains("shape") && d["shape"].is_array()) {
      for (const auto& v : d["shape"])
        shape.push_back(v.is_number_integer() ? v.get<int64_t>() : -1);
    }
    if (shape != t.shape()) {
      return plugin_error(
          context + " produced '" + name + "' with the wrong shape",
          "got " + shape_string(t.shape()) + ", describe_quantized says " + shape_string(shape),
          "report to the plugin vendor");
    }
  }
  for (const auto& t : outputs) {
    if (expected_names.count(t.name) == 0) {
      return plugin_error(context + " produced an undeclared tensor '" + t.name + "'",
                          "describe_quantized does not list it for " + module.name,
                          "report to the plugin vendor");
    }
  }
  return outputs;
}

Status Quantizer::check_quantized(const ModuleInfo& module,
                                  const std::vector<NamedTensor>& tensors) {
  return check_quantized(module, views_of(tensors));
}

Status Quantizer::check_quantized(const ModuleInfo& module, const std::vector<NamedView>& tensors) {
  if (method_->check_quantized == nullptr) return ok_status();
  CModule c(module);
  CTensorList list(tensors);
  return call_hook(QF_CONTEXT("check_quantized"),
                   [&] { return method_->check_quantized(instance_, &c.info, &list.list); });
}

Result<std::vector<NamedTensor>> Quantizer::dequantize(const ModuleInfo& module,
                                                       const std::vector<NamedTensor>& tensors) {
  return dequantize(module, views_of(tensors));
}

Result<std::vector<NamedTensor>> Quantizer::dequantize(const ModuleInfo& module,
                                                       const std::vector<NamedView>& tensors,
                                                       int num_threads) {
  const std::string context = QF_CONTEXT("dequantize");
  if (method_->dequantize == nullptr) {
    return Error(ErrorCode::kUnimplemented, ExitCode::kPlugin, context + ": not implemented",
                 "the plugin has no dequantize hook", "");
  }
  CModule c(module);
  CTensorList list(tensors);
  qf_call_ctx call = cpu_call(num_threads);
  TensorSink sink;
  QF_RETURN_IF_ERROR(call_hook(context, [&] {
    return method_->dequantize(instance_, &call, &c.info, &list.list, sink.raw());
  }));
  std::vector<NamedTensor> outputs = sink.take();
  const NamedTensor* weight = nullptr;
  for (const auto& t : outputs) {
    if (t.name == "weight") weight = &t;
  }
  if (weight == nullptr) {
    return plugin_error(context + " produced no 'weight'", "dequantize must allocate 'weight'",
                        "report to the plugin vendor");
  }
  const std::vector<int64_t> expected =
      module.kind == QF_MODULE_CONV1D
          ? std::vector<int64_t>{module.in_features, module.out_features}
          : std::vector<int64_t>{module.out_features, module.in_features};
  if (weight->tensor.shape() != expected) {
    return plugin_error(
        context + " produced 'weight' with the wrong shape",
        "got " + shape_string(weight->tensor.shape()) + ", expected " + shape_string(expected),
        "report to the plugin vendor");
  }
  const int64_t bad = first_non_finite(weight->tensor, plugin_id_, call);
  if (bad >= 0) {
    return plugin_error(context + " produced a non-finite weight",
                        "element " + std::to_string(bad) + " is NaN or infinite",
                        "report to the plugin vendor");
  }
  return outputs;
}

Status Quantizer::linear_forward(const ModuleInfo& module, const std::vector<NamedView>& tensors,
                                 const TensorView& x, const TensorView* bias, Tensor& y,
                                 int num_threads) {
  const std::string context = QF_CONTEXT("linear_forward");
  if (method_->linear_forward == nullptr) {
    return Error(ErrorCode::kUnimplemented, ExitCode::kPlugin, context + ": not implemented",
                 "the plugin has no linear_forward hook", "dequantize and multiply instead");
  }
  const auto& xs = x.shape();
  const auto& ys = y.shape();
  if (xs.empty() || xs.back() != module.in_features || ys.size() != xs.size() ||
      ys.back() != module.out_features || !std::equal(xs.begin(), xs.end() - 1, ys.begin()) ||
      !dtype_equal(x.dtype(), y.dtype())) {
    return Error(ErrorCode::kInvalidArgument, ExitCode::kInternal,
                 context + ": input/output shapes do not fit the module",
                 "x " + shape_string(xs) + " " + dtype_to_string(x.dtype()) + ", y " +
                     shape_string(ys) + " " + dtype_to_string(y.dtype()) + ", module [" +
                     std::to_string(module.out_features) + ", " +
                     std::to_string(module.in_features) + "]",
                 "allocate y as [..., out_features] in x's dtype");
  }
  CModule c(module);
  CTensorList list(tensors);
  qf_call_ctx call = cpu_call(num_threads);
  QF_RETURN_IF_ERROR(call_hook(context, [&] {
    return method_->linear_forward(
        instance_, &call, &c.info, &list.list, const_cast<DLTensor*>(x.dl()),
        bias != nullptr ? const_cast<DLTensor*>(bias->dl()) : nullptr, y.dl());
  }));
  const int64_t bad = first_non_finite(y, plugin_id_, call);
  if (bad >= 0) {
    return plugin_error(context + " produced a non-finite output",
                        "element " + std::to_string(bad) + " of the output of " + module.name +
                            " is NaN or infinite",
                        "check the input for NaN/Inf; otherwise report to the plugin vendor");
  }
  return ok_status();
}

Result<nlohmann::json> Quantizer::postprocess(const nlohmann::json& model_config) {
  const std::string context = QF_CONTEXT("postprocess");
  if (method_->postprocess == nullptr) {
    return Error(ErrorCode::kUnimplemented, ExitCode::kPlugin, context + ": not implemented",
                 "the plugin has no postprocess hook", "");
  }
  TextSink out;
  const std::string text = model_config.dump();
  QF_RETURN_IF_ERROR(
      call_hook(context, [&] { return method_->postprocess(instance_, text.c_str(), out.raw()); }));
  auto j = parse_plugin_json(out.text(), context);
  if (!j.ok()) return j;
  if (!j.value().is_object() || !j.value().contains("quant_method")) {
    return plugin_error(
        context + " returned an invalid quantization_config",
        "expected a JSON object with \"quant_method\", got " + j.value().dump().substr(0, 200),
        "report to the plugin vendor");
  }
  return j;
}

#undef QF_CONTEXT

}  // namespace qforge
