// FBGEMM per-channel FP8 on the CPU (see fbgemm_compute.hpp).
#include "fbgemm_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "cpu/e4m3.hpp"
#include "fp8_layout.hpp"
#include "fp8_tensor_io.hpp"

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

// The quantize multiplier of a row whose largest magnitude is amax (fp8_row_quantize_ref).
float row_scale(float amax) {
  const float s = cpu::kE4m3Max / amax;  // inf for amax == 0
  return std::min(s, kFbgemmMaxScale);
}

struct RowQuantized {
  const unsigned char* codes = nullptr;
  std::vector<float> inv;  // weight_scale per row
};

RowQuantized read_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  check_fbgemm_tensors(module, tensors);
  const DLTensor& q = *sdk::find_tensor(&tensors, "weight");
  const DLTensor& s = *sdk::find_tensor(&tensors, "weight_scale");
  require_host_contiguous(q, "weight");
  require_host_contiguous(s, "weight_scale");
  RowQuantized r;
  r.codes = bytes_of(q);
  r.inv.resize(static_cast<size_t>(module.out_features));
  std::memcpy(r.inv.data(), bytes_of(s), r.inv.size() * sizeof(float));
  return r;
}

void expect_tensor(const qf_module_info& module, const qf_tensor_list& tensors, const char* name,
                   DLDataType dtype, std::vector<int64_t> shape) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  const std::string where = "module '" + module_name(module) + "': tensor '" + name + "'";
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where + " is missing",
                "an FBGEMM FP8 Linear stores weight [O, I] (F8_E4M3) and weight_scale [O, 1] (F32)",
                "check the checkpoint was written by an fbgemm_fp8 quantizer");
  }
  const std::vector<int64_t> got(t->shape, t->shape + t->ndim);
  if (!sdk::same_dtype(t->dtype, dtype) || got != shape) {
    std::string want = std::string(sdk::dtype_name(dtype)) + " [";
    for (size_t i = 0; i < shape.size(); ++i)
      want += (i != 0 ? ", " : "") + std::to_string(shape[i]);
    std::string have = std::string(sdk::dtype_name(t->dtype)) + " [";
    for (size_t i = 0; i < got.size(); ++i) have += (i != 0 ? ", " : "") + std::to_string(got[i]);
    throw Error(QF_CODE_INVALID_ARGUMENT, where + " is " + have + "]", "expected " + want + "]",
                "check the checkpoint's quantization_config matches its tensors");
  }
}

}  // namespace

std::string describe_fbgemm_json(const qf_module_info& module) {
  nlohmann::json tensors = nlohmann::json::array();
  tensors.push_back({{"name", "weight"},
                     {"dtype", "F8_E4M3"},
                     {"shape", {module.out_features, module.in_features}}});
  tensors.push_back(
      {{"name", "weight_scale"}, {"dtype", "F32"}, {"shape", {module.out_features, 1}}});
  return nlohmann::json{{"tensors", tensors}}.dump();
}

void check_fbgemm_tensors(const qf_module_info& module, const qf_tensor_list& tensors) {
  expect_tensor(module, tensors, "weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8),
                {module.out_features, module.in_features});
  expect_tensor(module, tensors, "weight_scale", sdk::make_dtype(kDLFloat, 32),
                {module.out_features, 1});
}

void quantize_fbgemm(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                     sdk::TensorSink& out) {
  const std::string name = module_name(module);
  if (module.kind != QF_MODULE_LINEAR || weight.ndim != 2 ||
      weight.shape[0] != module.out_features || weight.shape[1] != module.in_features) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': not an nn.Linear weight [out_features, in_features]",
                "FbgemmFp8Linear replaces nn.Linear only; expected [" +
                    std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "]",
                "leave the module unquantized (modules_to_not_convert)");
  }
  const int64_t rows = weight.shape[0];
  const int64_t cols = weight.shape[1];
  const std::vector<float> w = read_floats(weight, "module '" + name + "' weight");
  std::vector<float> scale(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[static_cast<size_t>(r * cols + c)];
      if (!std::isfinite(v)) {
        throw Error(QF_CODE_INVALID_ARGUMENT,
                    "module '" + name + "': weight has a non-finite value (" +
                        (std::isnan(v) ? std::string("NaN") : std::string("Inf")) + ") at [" +
                        std::to_string(r) + ", " + std::to_string(c) + "] in row " +
                        std::to_string(r),
                    "an FP8 row scale is max|w| / 448, which NaN or Inf makes meaningless",
                    "fix or re-export the source checkpoint; the weights are corrupt");
      }
      amax = std::max(amax, std::fabs(v));
    }
    scale[static_cast<size_t>(r)] = row_scale(amax);
  }
  call.throw_if_cancelled();
  const DLDevice cpu_device{kDLCPU, 0};
  DLTensor& q =
      out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8), {rows, cols}, cpu_device);
  DLTensor& s = out.allocate("weight_scale", sdk::make_dtype(kDLFloat, 32), {rows, 1}, cpu_device);
  unsigned char* codes = bytes_of(q);
  call.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        codes[r * cols + c] = cpu::e4m3_from_float(w[static_cast<size_t>(r * cols + c)] *
                                                   scale[static_cast<size_t>(r)]);
      }
    }
  });
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / scale[static_cast<size_t>(r)];
    std::memcpy(bytes_of(s) + r * 4, &inv, sizeof inv);
  }
}

void dequantize_fbgemm(const sdk::Call& /*call*/, const qf_module_info& module,
                       const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const RowQuantized q = read_quantized(module, tensors);
  const int64_t rows = module.out_features;
  const int64_t cols = module.in_features;
  const auto& table = cpu::e4m3_table();
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[static_cast<size_t>(r * cols + c)] =
          table[q.codes[r * cols + c]] * q.inv[static_cast<size_t>(r)];
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                                         (d.code == kDLBfloat && d.bits == 16));
  const DLDataType dtype = dense_ok ? d : sdk::make_dtype(kDLFloat, 32);
  DLTensor& dense = out.allocate("weight", dtype, {rows, cols}, DLDevice{kDLCPU, 0});
  write_floats(w.data(), rows * cols, float_kind(dtype, "weight"), bytes_of(dense));
}

void linear_forward_fbgemm(const sdk::Call& call, const FbgemmFp8Config& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  const int64_t in = module.in_features;
  const int64_t out_f = module.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  const RowQuantized q = read_quantized(module, tensors);
  const std::vector<float> xs = read_floats(x, "x");
  const int64_t tokens = in > 0 ? static_cast<int64_t>(xs.size()) / in : 0;
  std::vector<float> b;
  if (bias != nullptr) b = read_floats(*bias, "bias");
  require_host_contiguous(y, "y");
  const FloatKind ykind = float_kind(y.dtype, "y");
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  const auto& table = cpu::e4m3_table();
  const auto ub = static_cast<float>(config.activation_scale_ub);
  unsigned char* ybytes = bytes_of(y);
  const size_t item = ykind == FloatKind::kF32 ? 4 : 2;
  call.parallel_for(tokens, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> xq(static_cast<size_t>(in));
    std::vector<float> row(static_cast<size_t>(out_f));
    for (int64_t t = t0; t < t1; ++t) {
      const float* xr = xs.data() + t * in;
      float amax = 0.0f;
      for (int64_t i = 0; i < in; ++i) amax = std::max(amax, std::fabs(xr[i]));
      const float xscale = row_scale(std::min(amax, ub));
      for (int64_t i = 0; i < in; ++i)
        xq[static_cast<size_t>(i)] = table[cpu::e4m3_from_float(xr[i] * xscale)];
      const float xinv = 1.0f / xscale;
      for (int64_t o = 0; o < out_f; ++o) {
        const unsigned char* wr = q.codes + o * in;
        float acc = 0.0f;
        for (int64_t i = 0; i < in; ++i) acc += xq[static_cast<size_t>(i)] * table[wr[i]];
        row[static_cast<size_t>(o)] = acc * xinv * q.inv[static_cast<size_t>(o)] +
                                      (b.empty() ? 0.0f : b[static_cast<size_t>(o)]);
      }
      write_floats(row.data(), out_f, ykind, ybytes + static_cast<size_t>(t * out_f) * item);
    }
  });
}

}  // namespace qforge::plugins::fp8
