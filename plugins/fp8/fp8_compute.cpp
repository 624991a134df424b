// Fine-grained FP8 compute on the CPU (see fp8_compute.hpp). Arithmetic follows transformers'
// Fp8Quantize / Fp8Dequantize (FORMATS.md §2.6) so the bytes match a checkpoint it writes.
#include "fp8_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
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

std::string tile_text(const Tiling& t, int64_t tr, int64_t tc) {
  return "tile (" + std::to_string(tr) + ", " + std::to_string(tc) + ") = rows [" +
         std::to_string(tr * t.bm) + ", " + std::to_string(std::min(t.rows, (tr + 1) * t.bm)) +
         "), cols [" + std::to_string(tc * t.bn) + ", " +
         std::to_string(std::min(t.cols, (tc + 1) * t.bn)) + ")";
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

// The quantized tensors of a module as the kernels read them; ragged last tiles are fine.
// `scales` keeps weight_scale_inv (copied: the tensor need not be float-aligned).
cpu::CodeMatrix code_matrix(const Fp8Config& config, const qf_module_info& module,
                            const qf_tensor_list& tensors, std::vector<float>& scales) {
  check_tensors(config, module, tensors);
  const DLTensor& q = required(module, tensors, "weight");
  const DLTensor& s = required(module, tensors, "weight_scale_inv");
  require_host_contiguous(q, "weight");
  require_host_contiguous(s, "weight_scale_inv");
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  scales.resize(static_cast<size_t>(sdk::numel(s)));
  std::memcpy(scales.data(), bytes_of(s), scales.size() * sizeof(float));
  return cpu::CodeMatrix{bytes_of(q), t.rows, t.cols, scales.data(), t.bm, t.bn, t.tile_cols()};
}

cpu::Dense dense_of(FloatKind kind) {
  return kind == FloatKind::kF32 ? cpu::Dense::kF32
                                 : (kind == FloatKind::kF16 ? cpu::Dense::kF16 : cpu::Dense::kBF16);
}

// The activation round trip FP8Linear applies before its GEMM. Dynamic: per token, per group of
// `group` input channels, s = amax / 448 and x -> e4m3(x / s) * s (DeepSeek's act_quant; a group
// of zeros, where that kernel would divide 0 by 0, stays zero). Static: x -> e4m3(x / a) * a,
// saturating at +-448.
void fake_quantize_activations(const sdk::Call& call, cpu::Isa isa, std::vector<float>& x,
                               int64_t tokens, int64_t in, const Fp8Config& config,
                               float static_scale, int64_t group) {
  call.parallel_for(tokens, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t tok = t0; tok < t1; ++tok) {
      float* row = x.data() + tok * in;
      for (int64_t g0 = 0; g0 < in; g0 += group) {
        const int64_t g1 = std::min(in, g0 + group);
        float s = static_scale;
        if (config.activation_scheme != "static") {
          const uint32_t bits = cpu::amax_bits(isa, cpu::Dense::kF32, row + g0, g1 - g0);
          float amax = cpu::f32_of(bits);
          if (bits > 0x7F800000u) {
            // A NaN in the group: std::max(amax, NaN) keeps amax, so the maximum is that of
            // the other values (the reference's order, kept exactly).
            amax = 0.0f;
            for (int64_t i = g0; i < g1; ++i) amax = std::max(amax, std::fabs(row[i]));
          }
          if (amax == 0.0f) continue;
          s = amax / cpu::kE4m3Max;
        }
        cpu::round_trip_div(isa, row + g0, g1 - g0, s);
      }
    }
  });
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
  const std::string what = "module '" + name + "' weight";
  const cpu::Dense kind = dense_of(float_kind(weight.dtype, what));
  require_host_contiguous(weight, what);
  const unsigned char* src = bytes_of(weight);
  const int64_t esize = cpu::dense_size(kind);
  const cpu::Isa isa = cpu::select_isa();
  const int64_t nt = t.tile_rows() * t.tile_cols();
  std::vector<Fp8Scale> scales(static_cast<size_t>(nt));
  std::vector<uint32_t> amax(static_cast<size_t>(nt), 0);  // |w| bits; >= 0x7F800000: non-finite
  const DLDevice cpu_device{kDLCPU, 0};
  DLTensor& q =
      out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8), {t.rows, t.cols}, cpu_device);
  DLTensor& s =
      out.allocate("weight_scale_inv", sdk::make_dtype(kDLFloat, 32), t.scale_shape(), cpu_device);
  unsigned char* codes = bytes_of(q);
  // q = clamp(w * scale, +-448) -> e4m3 (the clamp is the encoder's saturation).
  const auto encode_rows = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, float scale) {
    for (int64_t r = r0; r < r1; ++r) {
      cpu::encode_scaled(isa, kind, src + (r * t.cols + c0) * esize, c1 - c0, scale,
                         codes + r * t.cols + c0);
    }
  };
  if (t.per_tensor && nt > 0) {
    // One scale for the whole matrix: a parallel max over rows, then a parallel encode.
    std::vector<uint32_t> row_amax(static_cast<size_t>(t.rows), 0);
    call.parallel_for(t.rows, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        row_amax[static_cast<size_t>(r)] =
            cpu::amax_bits(isa, kind, src + r * t.cols * esize, t.cols);
      }
    });
    for (uint32_t m : row_amax) amax[0] = std::max(amax[0], m);
    if (amax[0] < 0x7F800000u) {
      scales[0] = fp8_tile_scale(cpu::f32_of(amax[0]), config.scale_fmt);
      call.throw_if_cancelled();
      call.parallel_for(t.rows, 16, [&](int64_t r0, int64_t r1) {
        encode_rows(r0, r1, 0, t.cols, scales[0].mul);
      });
    }
  } else if (!t.per_tensor) {
    // One tile row per task, read row by row (sequential memory, which the hardware prefetcher
    // follows; a tile's 128 rows a weight row apart are more streams than it tracks): the maxima
    // of all the row's tiles, then the encode while the tile row is still in L2/L3.
    call.parallel_for(t.tile_rows(), 1, [&](int64_t tr0, int64_t tr1) {
      for (int64_t tr = tr0; tr < tr1; ++tr) {
        const int64_t r0 = tr * t.bm, r1 = std::min(t.rows, r0 + t.bm);
        uint32_t* m = amax.data() + tr * t.tile_cols();
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t tc = 0; tc < t.tile_cols(); ++tc) {
            const int64_t c0 = tc * t.bn, c1 = std::min(t.cols, c0 + t.bn);
            m[tc] = std::max(m[tc],
                             cpu::amax_bits(isa, kind, src + (r * t.cols + c0) * esize, c1 - c0));
          }
        }
        bool finite = true;
        for (int64_t tc = 0; tc < t.tile_cols(); ++tc) {
          if (m[tc] >= 0x7F800000u) {
            finite = false;  // reported below, in tile order
          } else {
            scales[static_cast<size_t>(tr * t.tile_cols() + tc)] =
                fp8_tile_scale(cpu::f32_of(m[tc]), config.scale_fmt);
          }
        }
        if (!finite) continue;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t tc = 0; tc < t.tile_cols(); ++tc) {
            const int64_t c0 = tc * t.bn, c1 = std::min(t.cols, c0 + t.bn);
            encode_rows(r, r + 1, c0, c1, scales[static_cast<size_t>(tr * t.tile_cols() + tc)].mul);
          }
        }
      }
    });
  }
  // The first tile (in tile order) holding a NaN or Inf, and in it the first such element
  // row by row, as the message has always named it.
  for (int64_t tile = 0; tile < nt; ++tile) {
    if (amax[static_cast<size_t>(tile)] < 0x7F800000u) continue;
    const int64_t tr = tile / t.tile_cols();
    const int64_t tc = tile % t.tile_cols();
    for (int64_t r = tr * t.bm; r < std::min(t.rows, (tr + 1) * t.bm); ++r) {
      for (int64_t c = tc * t.bn; c < std::min(t.cols, (tc + 1) * t.bn); ++c) {
        const float v = cpu::scalar::widen(kind, src, r * t.cols + c);
        if (!std::isfinite(v)) {
          throw Error(QF_CODE_INVALID_ARGUMENT,
                      "module '" + name + "': weight has a non-finite value (" +
                          (std::isnan(v) ? std::string("NaN") : std::string("Inf")) + ") at [" +
                          std::to_string(r) + ", " + std::to_string(c) + "] in " +
                          tile_text(t, tr, tc),
                      "an FP8 tile scale is max|w| / 448, which NaN or Inf makes meaningless",
                      "fix or re-export the source checkpoint; the weights are corrupt");
        }
      }
    }
  }
  call.throw_if_cancelled();
  for (int64_t tile = 0; tile < nt; ++tile) {
    std::memcpy(bytes_of(s) + tile * 4, &scales[static_cast<size_t>(tile)].inv, sizeof(float));
  }
}

void dequantize_fp8(const sdk::Call& call, const Fp8Config& config, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out) {
  std::vector<float> scales;
  const cpu::CodeMatrix w = code_matrix(config, module, tensors, scales);
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = (d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                        (d.code == kDLBfloat && d.bits == 16);
  const DLDataType dtype = dense_ok && d.lanes == 1 ? d : sdk::make_dtype(kDLFloat, 32);
  const cpu::Dense kind = dense_of(float_kind(dtype, "weight"));
  DLTensor& dense =
      out.allocate("weight", dtype, {module.out_features, module.in_features}, DLDevice{kDLCPU, 0});
  unsigned char* dst = bytes_of(dense);
  const int64_t esize = cpu::dense_size(kind);
  const cpu::Isa isa = cpu::select_isa();
  call.parallel_for(w.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c0 = 0; c0 < w.cols; c0 += w.bn) {
        const int64_t c1 = std::min(w.cols, c0 + w.bn);
        cpu::decode_scaled(isa, w.codes + r * w.cols + c0, c1 - c0, w.scale(r, c0), kind,
                           dst + (r * w.cols + c0) * esize);
      }
    }
  });
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
  std::vector<float> scales;
  const cpu::CodeMatrix w = code_matrix(config, module, tensors, scales);
  const cpu::Isa isa = cpu::select_isa();
  std::vector<float> xs = read_floats(x, "x");
  const int64_t tokens = in > 0 ? static_cast<int64_t>(xs.size()) / in : 0;
  float static_scale = 1.0f;
  if (config.activation_scheme == "static") {
    const DLTensor& a = required(module, tensors, "activation_scale");
    require_host_contiguous(a, "activation_scale");
    std::memcpy(&static_scale, bytes_of(a), sizeof(float));
  }
  const int64_t group = config.weight_block_size ? (*config.weight_block_size)[1] : in;
  fake_quantize_activations(call, isa, xs, tokens, in, config, static_scale, group > 0 ? group : 1);
  std::vector<float> b;
  if (bias != nullptr) b = read_floats(*bias, "bias");
  require_host_contiguous(y, "y");
  const FloatKind ykind = float_kind(y.dtype, "y");
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  std::vector<float> acc(static_cast<size_t>(tokens * out_f));
  call.parallel_for(out_f, 64, [&](int64_t o0, int64_t o1) {
    cpu::linear_accumulate(isa, w, xs.data(), tokens, o0, o1, acc.data(), out_f);
  });
  unsigned char* ybytes = bytes_of(y);
  const size_t item = ykind == FloatKind::kF32 ? 4 : 2;
  for (int64_t tok = 0; tok < tokens; ++tok) {
    float* row = acc.data() + tok * out_f;
    for (int64_t o = 0; o < out_f; ++o) {
      row[o] = row[o] + (b.empty() ? 0.0f : b[static_cast<size_t>(o)]);
    }
    write_floats(row, out_f, ykind, ybytes + static_cast<size_t>(tok * out_f) * item);
  }
}

}  // namespace qforge::plugins::fp8
