// FBGEMM per-channel FP8 on the CPU (see fbgemm_compute.hpp).
#include "fbgemm_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "cpu/e4m3.hpp"
#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "fp8_layout.hpp"
#include "fp8_scales.hpp"
#include "fp8_tensor_io.hpp"

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

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

cpu::Dense dense_of(FloatKind kind) {
  return kind == FloatKind::kF32 ? cpu::Dense::kF32
                                 : (kind == FloatKind::kF16 ? cpu::Dense::kF16 : cpu::Dense::kBF16);
}

// The row's max |x| as the reference computes it: std::max(amax, |x|) skips NaN (the comparison
// is false), which the kernels' bit maximum would not.
float row_amax(cpu::Isa isa, const float* x, int64_t n) {
  const uint32_t bits = cpu::amax_bits(isa, cpu::Dense::kF32, x, n);
  if (bits <= 0x7F800000u) return cpu::f32_of(bits);
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
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
  const std::string what = "module '" + name + "' weight";
  const cpu::Dense kind = dense_of(float_kind(weight.dtype, what));
  require_host_contiguous(weight, what);
  const unsigned char* src = bytes_of(weight);
  const int64_t esize = cpu::dense_size(kind);
  const cpu::Isa isa = cpu::select_isa();
  const DLDevice cpu_device{kDLCPU, 0};
  DLTensor& q =
      out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8), {rows, cols}, cpu_device);
  DLTensor& s = out.allocate("weight_scale", sdk::make_dtype(kDLFloat, 32), {rows, 1}, cpu_device);
  unsigned char* codes = bytes_of(q);
  std::vector<float> scale(static_cast<size_t>(rows));
  std::vector<uint32_t> amax(static_cast<size_t>(rows));  // >= 0x7F800000: non-finite
  // Max and encode row by row: the row is still in cache for the encode.
  call.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const unsigned char* row = src + r * cols * esize;
      const uint32_t m = cpu::amax_bits(isa, kind, row, cols);
      amax[static_cast<size_t>(r)] = m;
      if (m >= 0x7F800000u) continue;  // reported below
      scale[static_cast<size_t>(r)] = fbgemm_row_multiplier(cpu::f32_of(m));
      cpu::encode_scaled(isa, kind, row, cols, scale[static_cast<size_t>(r)], codes + r * cols);
    }
  });
  for (int64_t r = 0; r < rows; ++r) {
    if (amax[static_cast<size_t>(r)] < 0x7F800000u) continue;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = cpu::scalar::widen(kind, src, r * cols + c);
      if (!std::isfinite(v)) {
        throw Error(QF_CODE_INVALID_ARGUMENT,
                    "module '" + name + "': weight has a non-finite value (" +
                        (std::isnan(v) ? std::string("NaN") : std::string("Inf")) + ") at [" +
                        std::to_string(r) + ", " + std::to_string(c) + "] in row " +
                        std::to_string(r),
                    "an FP8 row scale is max|w| / 448, which NaN or Inf makes meaningless",
                    "fix or re-export the source checkpoint; the weights are corrupt");
      }
    }
  }
  call.throw_if_cancelled();
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / scale[static_cast<size_t>(r)];
    std::memcpy(bytes_of(s) + r * 4, &inv, sizeof inv);
  }
}

void dequantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                       const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const RowQuantized q = read_quantized(module, tensors);
  const int64_t rows = module.out_features;
  const int64_t cols = module.in_features;
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                                         (d.code == kDLBfloat && d.bits == 16));
  const DLDataType dtype = dense_ok ? d : sdk::make_dtype(kDLFloat, 32);
  const cpu::Dense kind = dense_of(float_kind(dtype, "weight"));
  DLTensor& dense = out.allocate("weight", dtype, {rows, cols}, DLDevice{kDLCPU, 0});
  unsigned char* dst = bytes_of(dense);
  const int64_t esize = cpu::dense_size(kind);
  const cpu::Isa isa = cpu::select_isa();
  call.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      cpu::decode_scaled(isa, q.codes + r * cols, cols, q.inv[static_cast<size_t>(r)], kind,
                         dst + r * cols * esize);
    }
  });
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
  const auto ub = static_cast<float>(config.activation_scale_ub);
  const cpu::Isa isa = cpu::select_isa();
  // Activations through e4m3 per row (not rescaled: the row's 1 / scale multiplies the sum).
  std::vector<float> xq(xs.size());
  std::vector<float> xinv(static_cast<size_t>(tokens));
  call.parallel_for(tokens, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float xscale =
          fbgemm_row_multiplier(std::min(row_amax(isa, xs.data() + t * in, in), ub));
      cpu::round_trip_mul(isa, xs.data() + t * in, in, xscale, xq.data() + t * in);
      xinv[static_cast<size_t>(t)] = 1.0f / xscale;
    }
  });
  // Sums of e4m3 products in fp32, k in order: the weight's matrix with a unit scale.
  const float one = 1.0f;
  const cpu::CodeMatrix w{
      q.codes, out_f, in, &one, std::max<int64_t>(out_f, 1), std::max<int64_t>(in, 1), 1};
  std::vector<float> acc(static_cast<size_t>(tokens * out_f));
  call.parallel_for(out_f, 64, [&](int64_t o0, int64_t o1) {
    cpu::linear_accumulate(isa, w, xq.data(), tokens, o0, o1, acc.data(), out_f);
  });
  unsigned char* ybytes = bytes_of(y);
  const size_t item = ykind == FloatKind::kF32 ? 4 : 2;
  for (int64_t t = 0; t < tokens; ++t) {
    float* row = acc.data() + t * out_f;
    const float inv_x = xinv[static_cast<size_t>(t)];
    for (int64_t o = 0; o < out_f; ++o) {
      row[o] = row[o] * inv_x * q.inv[static_cast<size_t>(o)] +
               (b.empty() ? 0.0f : b[static_cast<size_t>(o)]);
    }
    write_floats(row, out_f, ykind, ybytes + static_cast<size_t>(t * out_f) * item);
  }
}

}  // namespace qforge::plugins::fp8
