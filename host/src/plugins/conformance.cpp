// The plugin conformance check (qforge/conformance.hpp): drives every hook of every method of one
// plugin through the host's own Quantizer wrapper, so the plugin is judged by exactly the
// validation a real run applies, plus the checks only a test can afford (stray stdout, input
// buffers left untouched, dequantized values finite and near the input).
#include "qforge/conformance.hpp"

#include <qforge/qf_plugin.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>
#include <sstream>
#include <utility>

#include "qforge/error.hpp"
#include "qforge/host.hpp"
#include "qforge/tensor.hpp"

namespace qforge {
namespace {

constexpr size_t kStrayPreviewBytes = 160;

// Redirects fd 1 to an anonymous temporary file for its lifetime. Plugins must log through
// host->log; anything that reaches fd 1 would corrupt a CLI's --json output, so the check
// catches it here rather than in a user's pipeline.
class StdoutCapture {
 public:
  StdoutCapture() {
    std::fflush(stdout);
    std::cout.flush();
    file_ = std::tmpfile();
    if (file_ == nullptr) return;
    saved_fd_ = ::dup(STDOUT_FILENO);
    if (saved_fd_ < 0 || ::dup2(::fileno(file_), STDOUT_FILENO) < 0) {
      if (saved_fd_ >= 0) ::close(saved_fd_);
      saved_fd_ = -1;
      std::fclose(file_);
      file_ = nullptr;
    }
  }
  ~StdoutCapture() { finish(); }
  StdoutCapture(const StdoutCapture&) = delete;
  StdoutCapture& operator=(const StdoutCapture&) = delete;

  // Restores fd 1 and returns a description of what was written ("" when nothing was).
  std::string finish() {
    if (file_ == nullptr) return "";
    std::fflush(stdout);
    std::cout.flush();
    ::dup2(saved_fd_, STDOUT_FILENO);
    ::close(saved_fd_);
    std::string stray;
    std::fseek(file_, 0, SEEK_END);
    const long end = std::ftell(file_);
    if (end > 0) {
      std::string preview(std::min<size_t>(static_cast<size_t>(end), kStrayPreviewBytes), '\0');
      std::rewind(file_);
      preview.resize(std::fread(preview.data(), 1, preview.size(), file_));
      for (char& c : preview) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      }
      stray = "wrote " + std::to_string(end) + " bytes to stdout ('" + preview +
              (static_cast<size_t>(end) > preview.size() ? "...'" : "'") + ")";
    }
    std::fclose(file_);
    file_ = nullptr;
    return stray;
  }

 private:
  std::FILE* file_ = nullptr;
  int saved_fd_ = -1;
};

// Runs fn with fd 1 captured; returns fn's result and sets *stray to what leaked, if anything.
template <class Fn>
auto captured(Fn&& fn, std::string* stray) {
  StdoutCapture capture;
  auto result = fn();
  *stray = capture.finish();
  return result;
}

std::string describe_error(const Error& error) {
  return std::string("[") + error_code_name(error.code()) + "] " + error.to_string();
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// splitmix64: a tiny, fully specified generator, so the synthetic weights are the same bytes
// on every standard library (std::normal_distribution is not).
class SeededNormal {
 public:
  explicit SeededNormal(uint64_t seed) : state_(seed) {}
  float next() {
    const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;          // [0, 1)
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

struct DescribedTensor {
  std::string name;
  DLDataType dtype{};
  std::string dtype_name;
  std::vector<int64_t> shape;
};

// Parses describe_quantized's {"tensors":[{"name","dtype","shape"}]}; "" on success, else why.
std::string parse_description(const nlohmann::json& j, std::vector<DescribedTensor>* out) {
  if (!j.is_object() || !j.contains("tensors") || !j["tensors"].is_array()) {
    return "expected {\"tensors\": [...]}, got " + j.dump();
  }
  std::set<std::string> names;
  for (const auto& t : j["tensors"]) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("dtype") ||
        !t["dtype"].is_string() || !t.contains("shape") || !t["shape"].is_array()) {
      return R"(each tensor needs string "name", string "dtype" and array "shape", got )" +
             t.dump();
    }
    DescribedTensor d;
    d.name = t["name"].get<std::string>();
    d.dtype_name = t["dtype"].get<std::string>();
    auto dtype = dtype_from_string(d.dtype_name);
    if (!dtype.ok()) return "tensor '" + d.name + "': " + dtype.error().to_string();
    d.dtype = dtype.value();
    for (const auto& dim : t["shape"]) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
        return "tensor '" + d.name + "': shape must hold non-negative integers, got " +
               t["shape"].dump();
      }
      d.shape.push_back(dim.get<int64_t>());
    }
    if (!names.insert(d.name).second) return "tensor '" + d.name + "' is described twice";
    out->push_back(std::move(d));
  }
  if (out->empty()) return "describes no tensors";
  return "";
}

// Compares quantize's outputs with the description; "" when they agree, else the differences.
std::string compare_with_description(const std::vector<NamedTensor>& outputs,
                                     const std::vector<DescribedTensor>& described) {
  std::string diff;
  std::set<std::string> seen;
  for (const auto& out : outputs) {
    seen.insert(out.name);
    const DescribedTensor* match = nullptr;
    for (const auto& d : described) {
      if (d.name == out.name) match = &d;
    }
    if (match == nullptr) {
      diff += "output '" + out.name + "' is not described; ";
      continue;
    }
    if (!dtype_equal(match->dtype, out.tensor.dtype())) {
      diff += "'" + out.name + "' dtype " + dtype_to_string(out.tensor.dtype()) + ", described " +
              match->dtype_name + "; ";
    }
    if (match->shape != out.tensor.shape()) {
      diff += "'" + out.name + "' shape " + shape_string(out.tensor.shape()) + ", described " +
              shape_string(match->shape) + "; ";
    }
  }
  for (const auto& d : described) {
    if (seen.count(d.name) == 0) diff += "described '" + d.name + "' was not produced; ";
  }
  return diff;
}

class Checker {
 public:
  Checker(Host& host, CheckReport& report, const CheckOptions& options)
      : host_(host), report_(report), options_(options) {}

  void add(std::string name, CheckResult result, std::string detail) {
    report_.items.push_back(CheckItem{std::move(name), result, std::move(detail)});
  }

  // Records a hook outcome and returns whether the call succeeded, so later hooks can use its
  // result. A stray stdout write fails the check whatever the status was (the call's result is
  // still usable). UNIMPLEMENTED is a warning only where `may_be_unimplemented`.
  bool record(const std::string& name, const Status& status, const std::string& stray,
              bool may_be_unimplemented, const std::string& ok_detail) {
    if (!stray.empty()) {
      add(name, CheckResult::kFail,
          "the plugin " + stray + "; plugins must log through host->log, never stdout");
      return status.ok();
    }
    if (status.ok()) {
      add(name, CheckResult::kPass, ok_detail);
      return true;
    }
    if (may_be_unimplemented && status.error().code() == ErrorCode::kUnimplemented) {
      add(name, CheckResult::kNotImplemented, "not implemented: " + status.error().to_string());
      return false;
    }
    add(name, CheckResult::kFail, describe_error(status.error()));
    return false;
  }

  // Refines the item just recorded as passed: a closer look at the result may fail it. An item
  // already failed (e.g. for writing to stdout) keeps its failure.
  void amend(CheckResult result, std::string detail) {
    CheckItem& last = report_.items.back();
    if (last.result != CheckResult::kPass) return;
    last.result = result;
    last.detail = std::move(detail);
  }

  void check_method(const std::string& plugin_id, const MethodManifest& method);

 private:
  void check_compute(Quantizer& q, const MethodManifest& method, const std::string& prefix,
                     bool env_declined);

  Host& host_;
  CheckReport& report_;
  const CheckOptions& options_;
};

void Checker::check_method(const std::string& plugin_id, const MethodManifest& method) {
  const std::string prefix = method.quant_method + ": ";
  const nlohmann::json config = minimal_method_config(method);
  std::string stray;
  auto created = captured(
      [&] { return host_.create_quantizer(plugin_id, method.quant_method, config); }, &stray);
  if (!record(prefix + "create", created.status(), stray, false,
              "instance made for config " + config.dump())) {
    add(prefix + "other hooks", CheckResult::kSkipped, "create failed, so no hook could be called");
    return;
  }
  std::unique_ptr<Quantizer> q = std::move(created).value();

  const bool flag_calibration = (q->flags() & QF_METHOD_REQUIRES_CALIBRATION) != 0;
  std::ostringstream flags_hex;
  flags_hex << "0x" << std::hex << q->flags();
  if (flag_calibration == method.requires_calibration) {
    add(prefix + "flags", CheckResult::kPass,
        "flags " + flags_hex.str() + " agree with the manifest's requires_calibration");
  } else {
    add(prefix + "flags", CheckResult::kFail,
        std::string("QF_METHOD_REQUIRES_CALIBRATION is ") + (flag_calibration ? "set" : "clear") +
            " in the library but the manifest says requires_calibration: " +
            (method.requires_calibration ? "true" : "false") +
            "; make the manifest and qf_method.flags agree");
  }

  // validate_environment: declining the machine (FAILED_PRECONDITION) is a valid answer, e.g.
  // a CUDA-only method on a CPU box; the compute checks below then expect the same answer.
  nlohmann::json request = {
      {"device", "cpu"}, {"pre_quantized", false}, {"dtype", nullptr}, {"device_map", nullptr}};
  const nlohmann::json env_json = host_.environment().to_json();
  bool env_declined = false;
  Status valid = captured([&] { return q->validate_environment(env_json, request); }, &stray);
  if (stray.empty() && !valid.ok() && valid.error().code() == ErrorCode::kFailedPrecondition) {
    // A method that declines the CPU may still serve it by emulation when the user allows it
    // (--allow-emulation): then its computations are checked like any other's.
    request["allow_emulation"] = true;
    Status emulated = captured([&] { return q->validate_environment(env_json, request); }, &stray);
    if (stray.empty() && emulated.ok()) {
      add(prefix + "validate_environment", CheckResult::kPass,
          "declines device cpu unless emulation is allowed (" + valid.error().summary() +
              "); accepts it with allow_emulation: true, which the checks below use");
    } else {
      env_declined = true;
      add(prefix + "validate_environment", CheckResult::kPass,
          "declined this machine for device cpu (a valid answer): " + valid.error().to_string());
    }
  } else {
    (void)record(prefix + "validate_environment", valid, stray, false,
                 "accepts device cpu on this machine");
  }

  auto dtype = captured([&] { return q->update_dtype(""); }, &stray);
  if (record(prefix + "update_dtype", dtype.status(), stray, false, "")) {
    const std::string& d = dtype.value();
    if (!d.empty() && !dtype_from_string(d).ok()) {
      amend(CheckResult::kFail, "update_dtype(\"\") returned '" + d +
                                    "', not a torch dtype name; return \"float16\", \"bfloat16\", "
                                    "\"float32\" or \"\" to keep the caller's");
    } else {
      amend(CheckResult::kPass, d.empty() ? "keeps the caller's dtype" : "chooses " + d);
    }
  }

  auto device_map = captured([&] { return q->update_device_map(nullptr); }, &stray);
  if (record(prefix + "update_device_map", device_map.status(), stray, false, "")) {
    const auto& m = device_map.value();
    if (!m.is_null() && !m.is_object()) {
      amend(CheckResult::kFail, "update_device_map(null) returned " + m.dump() +
                                    "; return null or a JSON object mapping module prefixes to "
                                    "devices");
    } else {
      amend(CheckResult::kPass, "returns " + m.dump());
    }
  }

  const nlohmann::json max_memory = {{"cpu", 1000000}};
  auto memory = captured([&] { return q->adjust_max_memory(max_memory); }, &stray);
  if (record(prefix + "adjust_max_memory", memory.status(), stray, false, "")) {
    const auto& m = memory.value();
    bool valid_budget = m.is_object();
    if (valid_budget) {
      for (const auto& item : m.items()) {
        if (!item.value().is_number() || item.value().get<double>() < 0) valid_budget = false;
      }
    }
    if (!valid_budget) {
      amend(CheckResult::kFail, "adjust_max_memory(" + max_memory.dump() + ") returned " +
                                    m.dump() +
                                    "; return an object of non-negative byte counts per device");
    } else {
      amend(CheckResult::kPass, max_memory.dump() + " -> " + m.dump());
    }
  }

  check_compute(*q, method, prefix, env_declined);

  auto post = captured([&] { return q->postprocess(nlohmann::json::object()); }, &stray);
  if (record(prefix + "postprocess", post.status(), stray, false, "")) {
    const auto& qc = post.value();
    if (!qc.is_object() || !qc.contains("quant_method") || !qc["quant_method"].is_string()) {
      amend(CheckResult::kFail, "postprocess({}) returned " + qc.dump() +
                                    "; return the quantization_config object for config.json, "
                                    "with a string \"quant_method\"");
    } else {
      amend(CheckResult::kPass, "quantization_config " + qc.dump());
    }
  }

  StdoutCapture capture;
  q.reset();
  stray = capture.finish();
  (void)record(prefix + "destroy", Status(), stray, false, "instance released");
}

void Checker::check_compute(Quantizer& q, const MethodManifest& method, const std::string& prefix,
                            bool env_declined) {
  ModuleInfo module;
  module.name = "conformance.linear";
  module.kind = QF_MODULE_LINEAR;
  module.has_bias = true;
  module.in_features = options_.in_features;
  module.out_features = options_.out_features;
  module.weight_dtype = DLDataType{kDLFloat, 32, 1};
  std::string stray;

  auto needs = captured([&] { return q.needs_quantization(module); }, &stray);
  if (record(prefix + "needs_quantization", needs.status(), stray, false, "")) {
    const auto& [needed, reason] = needs.value();
    amend(CheckResult::kPass, needed ? "quantizes a " +
                                           shape_string({module.out_features, module.in_features}) +
                                           " linear layer"
                                     : "skips a linear layer: " + reason);
  }

  std::vector<DescribedTensor> described;
  auto description = captured([&] { return q.describe_quantized(module); }, &stray);
  if (record(prefix + "describe_quantized", description.status(), stray, true, "")) {
    const std::string why = parse_description(description.value(), &described);
    if (!why.empty()) {
      described.clear();
      amend(CheckResult::kFail,
            "describe_quantized: " + why + R"(; write {"tensors":[{"name","dtype","shape"}]})");
    } else {
      std::string d;
      for (const auto& t : described) {
        d += (d.empty() ? "" : ", ") + t.name + " " + t.dtype_name + " " + shape_string(t.shape);
      }
      amend(CheckResult::kPass, d);
    }
  }

  // Synthetic inputs: a seeded N(0, 1) weight [out, in] and bias [out].
  const DLDataType f32{kDLFloat, 32, 1};
  Tensor weight = Tensor::zeros(f32, {module.out_features, module.in_features}).value();
  Tensor bias = Tensor::zeros(f32, {module.out_features}).value();
  SeededNormal rng(options_.seed);
  for (int64_t i = 0; i < weight.numel(); ++i) weight.data_as<float>()[i] = rng.next();
  for (int64_t i = 0; i < bias.numel(); ++i) bias.data_as<float>()[i] = 0.1f * rng.next();
  const std::vector<float> weight_copy(weight.data_as<float>(),
                                       weight.data_as<float>() + weight.numel());
  const std::vector<float> bias_copy(bias.data_as<float>(), bias.data_as<float>() + bias.numel());

  std::vector<NamedTensor> quantized;
  bool have_quantized = false;
  if (method.requires_calibration) {
    add(prefix + "quantize", CheckResult::kSkipped,
        "the method requires calibration statistics, which this check does not synthesize");
  } else {
    auto result = captured([&] { return q.quantize(module, weight, &bias); }, &stray);
    if (env_declined && stray.empty() && !result.ok() &&
        result.error().code() == ErrorCode::kFailedPrecondition) {
      add(prefix + "quantize", CheckResult::kSkipped,
          "declined on this machine, as validate_environment said: " + result.error().to_string());
    } else if (record(prefix + "quantize", result.status(), stray, true, "")) {
      quantized = std::move(result).value();
      have_quantized = true;
      std::string d;
      for (const auto& t : quantized) {
        d += (d.empty() ? "" : ", ") + t.name + " " + dtype_to_string(t.tensor.dtype()) + " " +
             shape_string(t.tensor.shape());
      }
      amend(CheckResult::kPass, "produced " + d);
      const bool untouched = std::memcmp(weight_copy.data(), weight.data(), weight.nbytes()) == 0 &&
                             std::memcmp(bias_copy.data(), bias.data(), bias.nbytes()) == 0;
      if (!untouched) {
        amend(CheckResult::kFail,
              "quantize wrote into its read-only weight or bias input; inputs "
              "are borrowed read-only, write only into tensors from the sink");
      } else if (!described.empty()) {
        const std::string diff = compare_with_description(quantized, described);
        add(prefix + "outputs match describe_quantized",
            diff.empty() ? CheckResult::kPass : CheckResult::kFail,
            diff.empty() ? "names, dtypes and shapes agree"
                         : diff + "make describe_quantized and quantize agree");
      }
    }
  }

  if (!have_quantized) {
    add(prefix + "dequantize", CheckResult::kSkipped, "no quantized tensors to dequantize");
  } else {
    auto dense = captured([&] { return q.dequantize(module, quantized); }, &stray);
    if (record(prefix + "dequantize", dense.status(), stray, true, "")) {
      const auto& outs = dense.value();
      const NamedTensor* w = nullptr;
      for (const auto& t : outs) {
        if (t.name == "weight") w = &t;
      }
      const std::vector<int64_t> expect_shape{module.out_features, module.in_features};
      std::string why;
      if (w == nullptr) {
        why = "no output named 'weight' among " + std::to_string(outs.size()) + " outputs";
      } else if (!dtype_equal(w->tensor.dtype(), f32)) {
        why = "'weight' dtype " + dtype_to_string(w->tensor.dtype()) +
              ", expected F32 (the module's weight_dtype)";
      } else if (w->tensor.shape() != expect_shape) {
        why = "'weight' shape " + shape_string(w->tensor.shape()) + ", expected " +
              shape_string(expect_shape);
      }
      if (why.empty()) {
        double err2 = 0;
        double ref2 = 0;
        int64_t non_finite = 0;
        const auto* got = w->tensor.data_as<float>();
        for (int64_t i = 0; i < w->tensor.numel(); ++i) {
          if (!std::isfinite(got[i])) {
            ++non_finite;
            continue;
          }
          const double e = static_cast<double>(got[i]) - weight_copy[static_cast<size_t>(i)];
          err2 += e * e;
          ref2 += static_cast<double>(weight_copy[static_cast<size_t>(i)]) *
                  weight_copy[static_cast<size_t>(i)];
        }
        const double rel = std::sqrt(err2 / (ref2 > 0 ? ref2 : 1.0));
        std::ostringstream rel_text;
        rel_text.precision(4);
        rel_text << rel;
        if (non_finite > 0) {
          why = std::to_string(non_finite) + " of " + std::to_string(w->tensor.numel()) +
                " dequantized values are NaN or Inf";
        } else if (rel > 1.0) {
          // Worse than returning zeros: the round trip is broken, not merely lossy.
          why = "relative error ||W - deq(q(W))|| / ||W|| = " + rel_text.str() +
                " exceeds 1 (all zeros would score 1)";
        } else {
          report_.items.back().detail =
              "weight F32 " + shape_string(expect_shape) + ", relative error " + rel_text.str();
        }
      }
      if (!why.empty()) {
        amend(CheckResult::kFail, why +
                                      "; dequantize must rebuild 'weight' [out, in] in the "
                                      "module's dtype from quantize's outputs");
      }
    }
  }

  // check_quantized: on quantize's outputs, or on zero tensors shaped as described when this
  // plugin cannot quantize yet (a pre-quantized checkpoint would look like that to the host).
  std::vector<NamedTensor> to_check;
  std::string source = "quantize's outputs";
  if (have_quantized) {
    to_check = std::move(quantized);
  } else if (!described.empty()) {
    source = "zero tensors shaped as described";
    for (const auto& d : described) {
      auto t = Tensor::zeros(d.dtype, d.shape);
      if (!t.ok()) break;
      to_check.push_back(NamedTensor{d.name, std::move(t).value()});
    }
  }
  if (to_check.empty()) {
    add(prefix + "check_quantized", CheckResult::kSkipped,
        "neither quantize nor describe_quantized produced tensors to check");
    return;
  }
  Status checked = captured([&] { return q.check_quantized(module, to_check); }, &stray);
  if (record(prefix + "check_quantized", checked, stray, true, "accepts " + source)) {
    const std::vector<NamedTensor> none;
    Status empty = captured([&] { return q.check_quantized(module, none); }, &stray);
    if (!stray.empty()) {
      (void)record(prefix + "check_quantized rejects missing tensors", empty, stray, false, "");
    } else if (empty.ok()) {
      add(prefix + "check_quantized rejects missing tensors", CheckResult::kFail,
          "check_quantized accepted an empty tensor list; it must name each missing tensor");
    } else {
      add(prefix + "check_quantized rejects missing tensors", CheckResult::kPass,
          describe_error(empty.error()));
    }
  }
}

}  // namespace

const char* check_result_name(CheckResult result) noexcept {
  switch (result) {
    case CheckResult::kPass:
      return "pass";
    case CheckResult::kFail:
      return "fail";
    case CheckResult::kNotImplemented:
      return "not-implemented";
    case CheckResult::kSkipped:
      return "skipped";
  }
  return "unknown";
}

int CheckReport::count(CheckResult result) const {
  int n = 0;
  for (const auto& item : items) n += item.result == result ? 1 : 0;
  return n;
}

nlohmann::json CheckReport::to_json() const {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& item : items) {
    checks.push_back(
        {{"name", item.name}, {"result", check_result_name(item.result)}, {"detail", item.detail}});
  }
  nlohmann::json summary = nlohmann::json::object();
  for (CheckResult r : {CheckResult::kPass, CheckResult::kFail, CheckResult::kNotImplemented,
                        CheckResult::kSkipped}) {
    summary[check_result_name(r)] = count(r);
  }
  return {{"manifest", manifest.string()},
          {"plugin", plugin_id},
          {"version", plugin_version},
          {"passed", passed()},
          {"summary", summary},
          {"checks", checks}};
}

nlohmann::json minimal_method_config(const MethodManifest& method) {
  nlohmann::json config = {{"quant_method", method.quant_method}};
  if (!method.presets.empty()) {
    const auto& preset = method.presets.begin()->second;
    if (preset.is_object()) config.update(preset);
  }
  return config;
}

CheckReport check_plugin(const std::filesystem::path& manifest, const CheckOptions& options) {
  CheckReport report;
  report.manifest = manifest;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(manifest, ec)) {
    throw bad_input(
        "plugin check: cannot read manifest '" + manifest.string() + "'",
        std::filesystem::exists(manifest, ec) ? "it is not a regular file" : "no such file",
        "pass the path of the plugin's .yaml manifest, e.g. build/lib/qforge/"
        "plugins/bnb.yaml");
  }

  // An isolated host: no search folders, so only this manifest is known.
  HostOptions host_options;
  host_options.use_env_path = false;
  host_options.use_default_dirs = false;
  host_options.environment = options.environment;
  Host host(host_options);
  Checker checker(host, report, options);

  Result<std::string> added = host.add_manifest(manifest);
  if (!added.ok()) throw added.error();
  report.plugin_id = added.value();

  std::optional<PluginManifest> parsed;
  for (const auto& record : host.plugins()) {
    if (record.manifest && record.manifest->path == manifest && record.id() == report.plugin_id) {
      parsed = record.manifest;
    }
  }
  if (!parsed) {
    for (const auto& record : host.plugins()) {
      if (record.manifest && record.id() == report.plugin_id) parsed = record.manifest;
    }
  }
  if (!parsed) {
    throw internal_error("plugin check: manifest '" + manifest.string() + "' was added as '" +
                             report.plugin_id + "' but the host lists no such plugin",
                         "Host::plugins() does not return what add_manifest registered");
  }
  std::string methods;
  for (const auto& m : parsed->methods) methods += (methods.empty() ? "" : ", ") + m.quant_method;
  checker.add("manifest", CheckResult::kPass,
              "id '" + parsed->id + "' version " + parsed->version + ", library " +
                  parsed->library_path.string() + ", methods: " + methods);

  std::string stray;
  Status loaded = captured([&] { return host.load(report.plugin_id); }, &stray);
  std::string load_detail;
  for (const auto& record : host.plugins()) {
    if (record.id() == report.plugin_id && record.state == PluginState::kLoaded) {
      report.plugin_version = record.runtime_version;
      load_detail = "negotiated ABI " +
                    std::to_string(QF_ABI_VERSION_MAJOR(record.negotiated_abi)) + "." +
                    std::to_string(QF_ABI_VERSION_MINOR(record.negotiated_abi)) +
                    "; runtime methods equal the manifest's";
    }
  }
  if (!checker.record("load", loaded, stray, false, load_detail)) {
    checker.add("methods", CheckResult::kSkipped, "the library did not load");
    return report;
  }
  if (report.plugin_version == parsed->version) {
    checker.add("version", CheckResult::kPass, "library and manifest both say " + parsed->version);
  } else {
    checker.add("version", CheckResult::kFail,
                "the library reports version '" + report.plugin_version +
                    "' but the manifest says '" + parsed->version +
                    "'; ship the manifest that was built with this library");
  }

  for (const auto& method : parsed->methods) checker.check_method(report.plugin_id, method);
  return report;
}

}  // namespace qforge
