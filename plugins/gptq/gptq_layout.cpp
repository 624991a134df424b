// Shapes, describe and checks of the GPTQ tensor set (see gptq_layout.hpp).
#include "gptq_layout.hpp"

#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>

#include "dense_tensor_io.hpp"  // plugins/common
#include "gptq_pack.hpp"

namespace qforge::plugins::gptq {
namespace {

using sdk::Error;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i != 0 ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> shape_of(const DLTensor& t) { return {t.shape, t.shape + t.ndim}; }

DLDataType i32() { return sdk::make_dtype(kDLInt, 32); }

std::string where(const qf_module_info& module, const char* name) {
  return "module '" + module_name(module) + "': tensor '" + name + "'";
}

const DLTensor& require(const qf_module_info& module, const qf_tensor_list& tensors,
                        const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where(module, name) + " is missing",
                "a GPTQ Linear stores qweight, qzeros, scales and g_idx",
                "check the checkpoint was written by a GPTQ quantizer (AutoGPTQ, GPTQModel, "
                "optimum, qforge)");
  }
  return *t;
}

void expect_i32(const qf_module_info& module, const DLTensor& t, const char* name) {
  if (!sdk::same_dtype(t.dtype, i32())) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, name) + " has dtype " + sdk::dtype_name(t.dtype),
                "expected I32 (AutoGPTQ stores packed words and g_idx as int32)",
                "check the checkpoint's quantization_config matches its tensors");
  }
}

void expect_shape(const qf_module_info& module, const DLTensor& t, const char* name,
                  const std::vector<int64_t>& shape, const std::string& hint) {
  if (shape_of(t) != shape) {
    throw Error(
        QF_CODE_INVALID_ARGUMENT, where(module, name) + " has shape " + shape_text(shape_of(t)),
        "expected " + shape_text(shape) + " for in_features " + std::to_string(module.in_features) +
            ", out_features " + std::to_string(module.out_features) + ", " + hint,
        "check bits and group_size in the quantization_config match the checkpoint");
  }
}

}  // namespace

std::string module_name(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "";
}

Shapes make_shapes(const GptqConfig& config, int64_t in, int64_t out) {
  Shapes s;
  s.in = in;
  s.out = out;
  s.bits = config.bits;
  s.group_size = config.effective_group_size(in);
  s.groups = config.groups(in);
  return s;
}

std::string packing_problem(const GptqConfig& config, int64_t in, int64_t out) {
  const int words = 32 / (config.bits == 3 ? 1 : config.bits);  // values per whole-word run
  if (!packs_whole_words(in, config.bits)) {
    return "in_features " + std::to_string(in) + " is not a multiple of " + std::to_string(words) +
           ": " + std::to_string(config.bits) +
           "-bit qweight packs whole int32 words along the input dimension";
  }
  if (!packs_whole_words(out, config.bits)) {
    return "out_features " + std::to_string(out) + " is not a multiple of " +
           std::to_string(words) + ": " + std::to_string(config.bits) +
           "-bit qzeros packs whole int32 words along the output dimension";
  }
  // in_features need not be a multiple of group_size: the last group is shorter (G =
  // ceil(I / group_size), as AutoGPTQ's g_idx = i // group_size and its scales have it).
  return "";
}

std::string describe_json(const GptqConfig& config, const qf_module_info& module) {
  const Shapes s = make_shapes(config, module.in_features, module.out_features);
  nlohmann::json tensors = nlohmann::json::array();
  tensors.push_back({{"name", "qweight"}, {"dtype", "I32"}, {"shape", {s.qweight_rows(), s.out}}});
  tensors.push_back({{"name", "qzeros"}, {"dtype", "I32"}, {"shape", {s.groups, s.qzeros_cols()}}});
  tensors.push_back({{"name", "scales"}, {"dtype", "F16"}, {"shape", {s.groups, s.out}}});
  tensors.push_back({{"name", "g_idx"}, {"dtype", "I32"}, {"shape", {s.in}}});
  return nlohmann::json{{"tensors", tensors}}.dump();
}

void check_tensors(const GptqConfig& config, const qf_module_info& module,
                   const qf_tensor_list& tensors) {
  const Shapes s = make_shapes(config, module.in_features, module.out_features);
  if (!packs_whole_words(s.in, s.bits) || !packs_whole_words(s.out, s.bits)) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "' cannot hold " + std::to_string(s.bits) +
                    "-bit GPTQ tensors",
                packing_problem(config, s.in, s.out),
                "check bits in the quantization_config matches the checkpoint");
  }
  const DLTensor& qweight = require(module, tensors, "qweight");
  const DLTensor& qzeros = require(module, tensors, "qzeros");
  const DLTensor& scales = require(module, tensors, "scales");
  const DLTensor& g_idx = require(module, tensors, "g_idx");
  expect_i32(module, qweight, "qweight");
  if (qweight.ndim == 2 && qweight.shape[1] == s.out && qweight.shape[0] != s.qweight_rows()) {
    // The one mistake worth its own message: the rows say which bit width wrote the file.
    const int64_t implied = s.in > 0 ? qweight.shape[0] * 32 / s.in : 0;
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, "qweight") + " has " + std::to_string(qweight.shape[0]) +
                    " rows, expected " + std::to_string(s.qweight_rows()) + " (in_features " +
                    std::to_string(s.in) + " x " + std::to_string(s.bits) + " bits / 32)",
                "the row count fits " + (qweight.shape[0] * 32 % (s.in > 0 ? s.in : 1) == 0
                                             ? std::to_string(implied) + "-bit packing"
                                             : std::string("no bit width")),
                "set bits in the quantization_config to what the checkpoint was written with");
  }
  expect_shape(module, qweight, "qweight", {s.qweight_rows(), s.out}, "packed along the input");
  expect_i32(module, qzeros, "qzeros");
  expect_shape(module, qzeros, "qzeros", {s.groups, s.qzeros_cols()},
               std::to_string(s.groups) + " groups of " + std::to_string(s.group_size));
  const DLDataType sd = scales.dtype;
  const bool float_scales =
      sd.lanes == 1 && ((sd.code == kDLFloat && (sd.bits == 16 || sd.bits == 32)) ||
                        (sd.code == kDLBfloat && sd.bits == 16));
  if (!float_scales) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, "scales") + " has dtype " + sdk::dtype_name(sd),
                "expected F16 (AutoGPTQ), BF16 or F32",
                "check the checkpoint's quantization_config matches its tensors");
  }
  expect_shape(module, scales, "scales", {s.groups, s.out},
               std::to_string(s.groups) + " groups of " + std::to_string(s.group_size));
  expect_i32(module, g_idx, "g_idx");
  expect_shape(module, g_idx, "g_idx", {s.in}, "one group index per input");
  if (g_idx.data == nullptr) return;  // metadata-only check: the range is checked on load
  const std::vector<int32_t> idx = read_int32(g_idx, "g_idx");
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= s.groups) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  where(module, "g_idx") + " is out of range: g_idx[" + std::to_string(i) +
                      "] = " + std::to_string(idx[i]),
                  "every input's group must lie in [0, " + std::to_string(s.groups) +
                      ") for group_size " + std::to_string(config.group_size),
                  "check group_size in the quantization_config; the checkpoint may be corrupt");
    }
  }
}

PackedView read_packed(const GptqConfig& config, const qf_module_info& module,
                       const qf_tensor_list& tensors) {
  check_tensors(config, module, tensors);
  PackedView p;
  p.shapes = make_shapes(config, module.in_features, module.out_features);
  const DLTensor& qweight = require(module, tensors, "qweight");
  require_host_contiguous(qweight, "qweight");  // check_tensors checked dtype I32 and shape
  p.qweight = reinterpret_cast<const int32_t*>(bytes_of(qweight));
  const std::vector<int32_t> qz = read_int32(require(module, tensors, "qzeros"), "qzeros");
  p.zeros.resize(static_cast<size_t>(p.shapes.groups * p.shapes.out));
  unpack_qzeros(qz.data(), p.shapes.groups, p.shapes.out, p.shapes.bits, config.v2(),
                p.zeros.data());
  p.scales = read_floats(require(module, tensors, "scales"), "scales");
  p.g_idx = read_int32(require(module, tensors, "g_idx"), "g_idx");
  return p;
}

Unpacked unpack(const PackedView& packed) {
  Unpacked u;
  u.shapes = packed.shapes;
  u.codes.resize(static_cast<size_t>(packed.shapes.in * packed.shapes.out));
  unpack_qweight(packed.qweight, packed.shapes.in, packed.shapes.out, packed.shapes.bits,
                 u.codes.data());
  u.zeros = packed.zeros;
  u.scales = packed.scales;
  u.g_idx = packed.g_idx;
  return u;
}

}  // namespace qforge::plugins::gptq
