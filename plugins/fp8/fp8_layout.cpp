// Tile arithmetic, describe and check for the fine-grained FP8 tensor set (see fp8_layout.hpp).
#include "fp8_layout.hpp"

#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i != 0 ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> shape_of(const DLTensor& t) { return {t.shape, t.shape + t.ndim}; }

void expect(const qf_module_info& module, const qf_tensor_list& tensors, const char* name,
            DLDataType dtype, const std::vector<int64_t>& shape, bool scalar_or_one = false) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  const std::string where = "module '" + module_name(module) + "': tensor '" + name + "'";
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where + " is missing",
                "a fine-grained FP8 Linear stores weight, weight_scale_inv (and activation_scale "
                "when activation_scheme is static)",
                "check the checkpoint was written by an fp8 quantizer with this config");
  }
  if (!sdk::same_dtype(t->dtype, dtype)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where + " has dtype " + sdk::dtype_name(t->dtype),
                std::string("expected ") + sdk::dtype_name(dtype),
                "check the checkpoint's quantization_config matches its tensors");
  }
  const std::vector<int64_t> got = shape_of(*t);
  const bool ok = got == shape || (scalar_or_one && got == std::vector<int64_t>{1});
  if (!ok) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where + " has shape " + shape_text(got),
                "expected " + shape_text(shape) + " for out_features " +
                    std::to_string(module.out_features) + ", in_features " +
                    std::to_string(module.in_features),
                "check weight_block_size in the quantization_config matches the checkpoint");
  }
}

}  // namespace

std::string module_name(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "";
}

std::vector<int64_t> Tiling::scale_shape() const {
  if (per_tensor) return {};
  return {tile_rows(), tile_cols()};
}

Tiling make_tiling(const Fp8Config& config, int64_t rows, int64_t cols) {
  Tiling t;
  t.rows = rows;
  t.cols = cols;
  if (config.weight_block_size) {
    t.bm = (*config.weight_block_size)[0];
    t.bn = (*config.weight_block_size)[1];
  } else {
    t.per_tensor = true;
    t.bm = rows > 0 ? rows : 1;
    t.bn = cols > 0 ? cols : 1;
  }
  return t;
}

std::string describe_json(const Fp8Config& config, const qf_module_info& module) {
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  nlohmann::json tensors = nlohmann::json::array();
  tensors.push_back({{"name", "weight"},
                     {"dtype", "F8_E4M3"},
                     {"shape", {module.out_features, module.in_features}}});
  tensors.push_back({{"name", "weight_scale_inv"}, {"dtype", "F32"}, {"shape", t.scale_shape()}});
  if (config.activation_scheme == "static") {
    tensors.push_back(
        {{"name", "activation_scale"}, {"dtype", "F32"}, {"shape", nlohmann::json::array()}});
  }
  return nlohmann::json{{"tensors", tensors}}.dump();
}

void check_tensors(const Fp8Config& config, const qf_module_info& module,
                   const qf_tensor_list& tensors) {
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  expect(module, tensors, "weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8),
         {module.out_features, module.in_features});
  expect(module, tensors, "weight_scale_inv", sdk::make_dtype(kDLFloat, 32), t.scale_shape(),
         t.per_tensor);
  if (config.activation_scheme == "static") {
    expect(module, tensors, "activation_scale", sdk::make_dtype(kDLFloat, 32), {}, true);
  }
}

}  // namespace qforge::plugins::fp8
