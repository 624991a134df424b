// Fine-grained FP8 compute on the CPU (see fp8_compute.hpp). Arithmetic follows transformers'
// Fp8Quantize / Fp8Dequantize (FORMATS.md §2.6) so the bytes match a checkpoint it writes.
#include "fp8_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/e4m3.hpp"
#include "fp8_layout.hpp"
#include "fp8_tensor_io.hpp"

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

std::string tile_text(const Tiling& t, int64_t tr, int64_t tc) {
  return "tile (" + std::to_string(tr) + ", " + std::to_string(tc) + ") = rows [" +
         std::to_string(tr * t.bm) + ", " + std::to_string(std::min(t.rows, (tr + 1) * t.bm)) +
         "), cols [" + std::to_string(tc * t.bn) + ", " +
         std::to_string(std::min(t.cols, (tc + 1) * t.bn)) + ")";
}

// A tile's quantize multiplier and stored dequant multiplier, for its largest magnitude amax.
// transformers: scale = 448 / amax (1 when amax == 0), weight_scale_inv = 1 / scale. The clamp
// keeps a tile of float32-subnormal weights from getting an infinite scale. ue8m0 rounds the
// stored value up to a power of two (DeepSeek-V3.1 style), so its reciprocal is exact.
struct TileScale {
  float scale = 1.0f;
  float inv = 1.0f;
};

TileScale tile_scale(float amax, const std::string& scale_fmt) {
  if (amax == 0.0f) return {};
  TileScale t;
  t.scale = cpu::kE4m3Max / amax;
  if (!std::isfinite(t.scale)) t.scale = std::numeric_limits<float>::max();
  t.inv = 1.0f / t.scale;
  if (scale_fmt == "ue8m0") {
    t.inv = std::exp2(std::ceil(std::log2(t.inv)));
    t.scale = 1.0f / t.inv;
  }
  return t;
}

const DLTensor& required(const qf_module_info& module, const qf_tensor_list& tensors,
                         const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': tensor '" + name + "' is missing",
                "a fine-grained FP8 Linear stores weight and weight_scale_inv",
                "check the checkpoint was written by an fp8 quantizer");
  }
  return *t;
}

// Dense float32 weight [O, I] from the quantized tensors; ragged last tiles are fine.
std::vector<float> dense_weight(const sdk::Call& call, const Fp8Config& config,
                                const qf_module_info& module, const qf_tensor_list& tensors) {
  check_tensors(config, module, tensors);
  const DLTensor& q = required(module, tensors, "weight");
  const DLTensor& s = required(module, tensors, "weight_scale_inv");
  require_host_contiguous(q, "weight");
  require_host_contiguous(s, "weight_scale_inv");
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  const unsigned char* codes = bytes_of(q);
  std::vector<float> scales(static_cast<size_t>(sdk::numel(s)));
  std::memcpy(scales.data(), bytes_of(s), scales.size() * sizeof(float));
  const auto& table = cpu::e4m3_table();
  std::vector<float> w(static_cast<size_t>(t.rows * t.cols));
  call.parallel_for(t.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* srow = scales.data() + (r / t.bm) * t.tile_cols();
      for (int64_t c = 0; c < t.cols; ++c) {
        w[static_cast<size_t>(r * t.cols + c)] = table[codes[r * t.cols + c]] * srow[c / t.bn];
      }
    }
  });
  return w;
}

// The activation round trip FP8Linear applies before its GEMM. Dynamic: per token, per group of
// `group` input channels, s = amax / 448 and x -> e4m3(x / s) * s (DeepSeek's act_quant; a group
// of zeros, where that kernel would divide 0 by 0, stays zero). Static: x -> e4m3(x / a) * a,
// saturating at +-448.
void fake_quantize_activations(std::vector<float>& x, int64_t tokens, int64_t in,
                               const Fp8Config& config, float static_scale, int64_t group) {
  const auto& table = cpu::e4m3_table();
  for (int64_t tok = 0; tok < tokens; ++tok) {
    float* row = x.data() + tok * in;
    for (int64_t g0 = 0; g0 < in; g0 += group) {
      const int64_t g1 = std::min(in, g0 + group);
      float s = static_scale;
      if (config.activation_scheme != "static") {
        float amax = 0.0f;
        for (int64_t i = g0; i < g1; ++i) amax = std::max(amax, std::fabs(row[i]));
        if (amax == 0.0f) continue;
        s = amax / cpu::kE4m3Max;
      }
      for (int64_t i = g0; i < g1; ++i) row[i] = table[cpu::e4m3_from_float(row[i] / s)] * s;
    }
  }
}

}  // namespace

void quantize_fp8(const sdk::Call& call, const Fp8Config& config, const qf_module_info& module,
                  const DLTensor& weight, sdk::TensorSink& out) {
  const std::string name = module_name(module);
  if (module.kind != QF_MODULE_LINEAR) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' is not an nn.Linear",
                "transformers' FP8Linear replaces nn.Linear only (weight [out, in])",
                "leave the module unquantized (modules_to_not_convert)");
  }
  if (config.activation_scheme == "static") {
    throw Error(QF_CODE_UNIMPLEMENTED,
                "module '" + name + "': activation_scheme \"static\" cannot be quantized here",
                "static FP8 needs an activation_scale measured on calibration data, which this "
                "plugin does not collect yet; static checkpoints made elsewhere do load",
                "use activation_scheme \"dynamic\" (the default)");
  }
  if (weight.ndim != 2 || weight.shape[0] != module.out_features ||
      weight.shape[1] != module.in_features) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': weight shape does not match",
                "expected [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "]",
                "pass the nn.Linear weight [out_features, in_features]");
  }
  const Tiling t = make_tiling(config, weight.shape[0], weight.shape[1]);
  if (!t.per_tensor && (t.rows % t.bm != 0 || t.cols % t.bn != 0)) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': Matrix dimensions (" + std::to_string(t.rows) + ", " +
                    std::to_string(t.cols) + ") must be divisible by block sizes (" +
                    std::to_string(t.bm) + ", " + std::to_string(t.bn) + ")",
                "transformers' Fp8Quantize quantizes whole tiles only (checkpoints with ragged "
                "tiles made elsewhere still load)",
                "add the module to modules_to_not_convert, or choose a weight_block_size that "
                "divides it (null = one scale per tensor)");
  }
  const std::vector<float> w = read_floats(weight, "module '" + name + "' weight");
  const int64_t nt = t.tile_rows() * t.tile_cols();
  std::vector<TileScale> scales(static_cast<size_t>(nt));
  for (int64_t tile = 0; tile < nt; ++tile) {
    const int64_t tr = tile / t.tile_cols();
    const int64_t tc = tile % t.tile_cols();
    float amax = 0.0f;
    for (int64_t r = tr * t.bm; r < std::min(t.rows, (tr + 1) * t.bm); ++r) {
      for (int64_t c = tc * t.bn; c < std::min(t.cols, (tc + 1) * t.bn); ++c) {
        const float v = w[static_cast<size_t>(r * t.cols + c)];
        if (!std::isfinite(v)) {
          throw Error(QF_CODE_INVALID_ARGUMENT,
                      "module '" + name + "': weight has a non-finite value (" +
                          (std::isnan(v) ? std::string("NaN") : std::string("Inf")) + ") at [" +
                          std::to_string(r) + ", " + std::to_string(c) + "] in " +
                          tile_text(t, tr, tc),
                      "an FP8 tile scale is max|w| / 448, which NaN or Inf makes meaningless",
                      "fix or re-export the source checkpoint; the weights are corrupt");
        }
        amax = std::max(amax, std::fabs(v));
      }
    }
    scales[static_cast<size_t>(tile)] = tile_scale(amax, config.scale_fmt);
  }
  call.throw_if_cancelled();
  const DLDevice cpu_device{kDLCPU, 0};
  DLTensor& q =
      out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8), {t.rows, t.cols}, cpu_device);
  DLTensor& s =
      out.allocate("weight_scale_inv", sdk::make_dtype(kDLFloat, 32), t.scale_shape(), cpu_device);
  unsigned char* codes = bytes_of(q);
  call.parallel_for(t.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < t.cols; ++c) {
        // q = clamp(w * scale, +-448) -> e4m3 (the clamp is e4m3_from_float's saturation).
        const float scale =
            scales[static_cast<size_t>((r / t.bm) * t.tile_cols() + c / t.bn)].scale;
        codes[r * t.cols + c] =
            cpu::e4m3_from_float(w[static_cast<size_t>(r * t.cols + c)] * scale);
      }
    }
  });
  for (int64_t tile = 0; tile < nt; ++tile) {
    std::memcpy(bytes_of(s) + tile * 4, &scales[static_cast<size_t>(tile)].inv, sizeof(float));
  }
}

void dequantize_fp8(const sdk::Call& call, const Fp8Config& config, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const std::vector<float> w = dense_weight(call, config, module, tensors);
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = (d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                        (d.code == kDLBfloat && d.bits == 16);
  const DLDataType dtype = dense_ok && d.lanes == 1 ? d : sdk::make_dtype(kDLFloat, 32);
  DLTensor& dense =
      out.allocate("weight", dtype, {module.out_features, module.in_features}, DLDevice{kDLCPU, 0});
  write_floats(w.data(), static_cast<int64_t>(w.size()), float_kind(dtype, "weight"),
               bytes_of(dense));
}

void linear_forward_fp8(const sdk::Call& call, const Fp8Config& config,
                        const qf_module_info& module, const qf_tensor_list& tensors,
                        const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  const int64_t in = module.in_features;
  const int64_t out_f = module.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  const std::vector<float> w = dense_weight(call, config, module, tensors);
  std::vector<float> xs = read_floats(x, "x");
  const int64_t tokens = in > 0 ? static_cast<int64_t>(xs.size()) / in : 0;
  float static_scale = 1.0f;
  if (config.activation_scheme == "static") {
    const DLTensor& a = required(module, tensors, "activation_scale");
    require_host_contiguous(a, "activation_scale");
    std::memcpy(&static_scale, bytes_of(a), sizeof(float));
  }
  const int64_t group = config.weight_block_size ? (*config.weight_block_size)[1] : in;
  fake_quantize_activations(xs, tokens, in, config, static_scale, group > 0 ? group : 1);
  std::vector<float> b;
  if (bias != nullptr) b = read_floats(*bias, "bias");
  require_host_contiguous(y, "y");
  const FloatKind ykind = float_kind(y.dtype, "y");
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  unsigned char* ybytes = bytes_of(y);
  const size_t item = ykind == FloatKind::kF32 ? 4 : 2;
  call.parallel_for(tokens, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> row(static_cast<size_t>(out_f));
    for (int64_t tok = t0; tok < t1; ++tok) {
      const float* xr = xs.data() + tok * in;
      for (int64_t o = 0; o < out_f; ++o) {
        const float* wr = w.data() + o * in;
        float acc = 0.0f;
        for (int64_t i = 0; i < in; ++i) acc += xr[i] * wr[i];
        row[static_cast<size_t>(o)] = acc + (b.empty() ? 0.0f : b[static_cast<size_t>(o)]);
      }
      write_floats(row.data(), out_f, ykind, ybytes + static_cast<size_t>(tok * out_f) * item);
    }
  });
}

}  // namespace qforge::plugins::fp8
