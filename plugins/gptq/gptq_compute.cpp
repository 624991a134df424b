// GPTQ compute on the CPU (see gptq_compute.hpp).
#include "gptq_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/kernels.hpp"
#include "dense_tensor_io.hpp"  // plugins/common
#include "gptq_algorithm.hpp"
#include "gptq_pack.hpp"
#include "gptq_rtn.hpp"

namespace qforge::plugins::gptq {
namespace {

using sdk::Error;

constexpr int64_t kInputBlock = 256;  // inputs dequantized at a time per output range
constexpr int64_t kOutputTile = 64;   // outputs per dequantize tile (256 x 64 floats: 64 KiB)

cpu::PackedMatrix matrix_of(const PackedView& p) {
  return cpu::PackedMatrix{p.qweight,      p.shapes.in,     p.shapes.out,  p.shapes.bits,
                           p.zeros.data(), p.scales.data(), p.g_idx.data()};
}

}  // namespace

void write_checkpoint(const Unpacked& layer, const GptqConfig& config, sdk::TensorSink& out) {
  const Shapes& s = layer.shapes;
  const std::string problem = packing_problem(config, s.in, s.out);
  if (!packs_whole_words(s.in, s.bits) || !packs_whole_words(s.out, s.bits)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "the layer does not pack as GPTQ", problem,
                "leave the module unquantized (modules_to_not_convert) or choose other bits");
  }
  for (int32_t z : layer.zeros) {
    if (z < (config.v2() ? 0 : 1) || z > config.maxq()) {
      throw Error(QF_CODE_INTERNAL, "zero point " + std::to_string(z) + " cannot be stored",
                  std::string("checkpoint_format ") + config.checkpoint_format + " stores " +
                      (config.v2() ? "zero" : "zero - 1") + " in " + std::to_string(s.bits) +
                      " bits",
                  "report this: the quantizer should have kept zero points in range");
    }
  }
  const DLDevice cpu_device{kDLCPU, 0};
  const DLDataType i32 = sdk::make_dtype(kDLInt, 32);
  DLTensor& qweight = out.allocate("qweight", i32, {s.qweight_rows(), s.out}, cpu_device);
  std::vector<int32_t> words(static_cast<size_t>(s.qweight_rows() * s.out));
  pack_qweight(layer.codes.data(), s.in, s.out, s.bits, words.data());
  if (!words.empty()) std::memcpy(bytes_of(qweight), words.data(), words.size() * 4);
  DLTensor& qzeros = out.allocate("qzeros", i32, {s.groups, s.qzeros_cols()}, cpu_device);
  words.assign(static_cast<size_t>(s.groups * s.qzeros_cols()), 0);
  pack_qzeros(layer.zeros.data(), s.groups, s.out, s.bits, config.v2(), words.data());
  if (!words.empty()) std::memcpy(bytes_of(qzeros), words.data(), words.size() * 4);
  DLTensor& scales =
      out.allocate("scales", sdk::make_dtype(kDLFloat, 16), {s.groups, s.out}, cpu_device);
  write_floats(layer.scales.data(), static_cast<int64_t>(layer.scales.size()), FloatKind::kF16,
               bytes_of(scales));
  DLTensor& g_idx = out.allocate("g_idx", i32, {s.in}, cpu_device);
  if (s.in != 0) std::memcpy(bytes_of(g_idx), layer.g_idx.data(), layer.g_idx.size() * 4);
}

namespace {

// The module's weight as float32 [O, I], after the checks quantizing needs.
std::vector<float> read_weight_to_quantize(const GptqConfig& config, const qf_module_info& module,
                                           const DLTensor& weight) {
  const std::string name = module_name(module);
  if (module.kind != QF_MODULE_LINEAR) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' is not an nn.Linear",
                "GPTQ's QuantLinear replaces nn.Linear only (weight [out, in])",
                "leave the module unquantized (modules_to_not_convert)");
  }
  if (weight.ndim != 2 || weight.shape[0] != module.out_features ||
      weight.shape[1] != module.in_features) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': weight shape does not match",
                "expected [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "]",
                "pass the nn.Linear weight [out_features, in_features]");
  }
  const std::string problem = packing_problem(config, module.in_features, module.out_features);
  if (!problem.empty()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' cannot be written as GPTQ",
                problem, "leave it unquantized (needs_quantization skips it with this reason)");
  }
  return read_floats(weight, "module '" + name + "' weight");
}

}  // namespace

int64_t quantize_rtn_module(const GptqConfig& config, const qf_module_info& module,
                            const DLTensor& weight, sdk::TensorSink& out) {
  const std::vector<float> w = read_weight_to_quantize(config, module, weight);
  int64_t clamped = 0;
  Unpacked layer;
  try {
    layer = quantize_rtn(w.data(), module.out_features, module.in_features, config, {}, &clamped);
  } catch (const Error& e) {
    throw Error(e.code(), "module '" + module_name(module) + "': " + e.what(), e.why(), e.fix());
  }
  write_checkpoint(layer, config, out);
  return clamped;
}

std::vector<double> read_hessian(const qf_module_info& module, const DLTensor& hessian) {
  const std::string what = "module '" + module_name(module) + "': calibration tensor '" +
                           std::string(kHessianName) + "'";
  const int64_t in = module.in_features;
  const DLDataType d = hessian.dtype;
  if (d.code != kDLFloat || (d.bits != 32 && d.bits != 64) || d.lanes != 1) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has dtype " + sdk::dtype_name(d),
                "GPTQ's Hessian H = 2/N·XᵀX is accumulated in float32 (AutoGPTQ) or float64",
                "pass the Hessian as float32 or float64");
  }
  if (hessian.ndim != 2 || hessian.shape[0] != in || hessian.shape[1] != in) {
    std::string shape = "[";
    for (int32_t k = 0; k < hessian.ndim; ++k) {
      shape += (k > 0 ? ", " : "") + std::to_string(hessian.shape[k]);
    }
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has shape " + shape + "]",
                "expected [in_features, in_features] = [" + std::to_string(in) + ", " +
                    std::to_string(in) + "]: the Hessian of the layer's inputs",
                "accumulate H over this layer's input activations (x of shape [..., " +
                    std::to_string(in) + "])");
  }
  require_host_contiguous(hessian, what);
  std::vector<double> h(static_cast<size_t>(in * in));
  const unsigned char* src = bytes_of(hessian);
  for (int64_t n = 0; n < in * in; ++n) {
    if (d.bits == 64) {
      std::memcpy(&h[static_cast<size_t>(n)], src + n * 8, 8);
    } else {
      float v = 0.0f;
      std::memcpy(&v, src + n * 4, 4);
      h[static_cast<size_t>(n)] = static_cast<double>(v);
    }
  }
  return h;
}

GptqReport quantize_gptq_module(const sdk::Call& call, const GptqConfig& config,
                                const qf_module_info& module, const DLTensor& weight,
                                const DLTensor& hessian, sdk::TensorSink& out) {
  const std::vector<float> w = read_weight_to_quantize(config, module, weight);
  std::vector<double> h = read_hessian(module, hessian);
  GptqOutcome outcome;
  try {
    outcome = quantize_gptq(call, w.data(), module.out_features, module.in_features, std::move(h),
                            config);
  } catch (const Error& e) {
    throw Error(e.code(), "module '" + module_name(module) + "': " + e.what(), e.why(), e.fix());
  }
  write_checkpoint(outcome.layer, config, out);
  return GptqReport{outcome.dead_columns, outcome.zero_clamped, outcome.damp};
}

void dequantize_gptq(const sdk::Call& call, const GptqConfig& config, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const PackedView p = read_packed(config, module, tensors);
  const cpu::PackedMatrix m = matrix_of(p);
  const Shapes& s = p.shapes;
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                                         (d.code == kDLBfloat && d.bits == 16));
  const DLDataType dtype = dense_ok ? d : sdk::make_dtype(kDLFloat, 32);
  const FloatKind kind = float_kind(dtype, "weight");
  DLTensor& dense = out.allocate("weight", dtype, {s.out, s.in}, DLDevice{kDLCPU, 0});
  unsigned char* dst = bytes_of(dense);
  const size_t item = kind == FloatKind::kF32 ? 4 : 2;
  const cpu::Isa isa = cpu::select_isa();
  // Tiles of inputs x outputs dequantized [I, O]-wise (qweight's order), then written
  // transposed. The tile stays in L2: a whole [256, O] block did not, and its strided column
  // reads made dequantize run at 1/100 of memcpy.
  call.parallel_for(s.in, kInputBlock, [&](int64_t i0, int64_t i1) {
    const int64_t rows = i1 - i0;
    std::vector<float> tile(static_cast<size_t>(rows * kOutputTile));
    // The tile transposed, [width, rows] with rows padded by a cache line: a stride of 256 floats
    // put all 64 rows in the same L1 sets (R2 halved).
    const int64_t ld = rows + 16;
    std::vector<float> cols(static_cast<size_t>(ld * kOutputTile));
    for (int64_t o0 = 0; o0 < s.out; o0 += kOutputTile) {
      const int64_t o1 = std::min(s.out, o0 + kOutputTile), width = o1 - o0;
      cpu::dequantize_block(isa, m, i0, i1, o0, o1, tile.data(), width);
      // Row by row of the tile, so reads are sequential and the writes go to `width` streams.
      for (int64_t i = 0; i < rows; ++i) {
        const float* src = tile.data() + i * width;
        for (int64_t o = 0; o < width; ++o) cols[static_cast<size_t>(o * ld + i)] = src[o];
      }
      for (int64_t o = o0; o < o1; ++o) {
        write_floats(cols.data() + (o - o0) * ld, rows, kind,
                     dst + static_cast<size_t>(o * s.in + i0) * item);
      }
    }
  });
}

void linear_forward_gptq(const sdk::Call& call, const GptqConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  const int64_t in = module.in_features;
  const int64_t out_f = module.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  const PackedView p = read_packed(config, module, tensors);
  const cpu::PackedMatrix m = matrix_of(p);
  const std::vector<float> xs = read_floats(x, "x");
  const int64_t tokens = in > 0 ? static_cast<int64_t>(xs.size()) / in : 0;
  std::vector<float> b;
  if (bias != nullptr) b = read_floats(*bias, "bias");
  if (!b.empty() && static_cast<int64_t>(b.size()) != out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "bias has " + std::to_string(b.size()) + " elements",
                "expected out_features = " + std::to_string(out_f), "pass bias [out_features]");
  }
  require_host_contiguous(y, "y");
  const FloatKind ykind = float_kind(y.dtype, "y");
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  const cpu::Isa isa = cpu::select_isa();
  std::vector<float> acc(static_cast<size_t>(tokens * out_f), 0.0f);
  // Each task owns a range of outputs and walks the inputs in order, a block at a time, so every
  // output's sum runs in input order whatever the split.
  call.parallel_for(out_f, 64, [&](int64_t o0, int64_t o1) {
    std::vector<float> block(static_cast<size_t>(kInputBlock * (o1 - o0)));
    for (int64_t i0 = 0; i0 < in; i0 += kInputBlock) {
      const int64_t i1 = std::min(in, i0 + kInputBlock);
      if (tokens == 1) {
        // A GEMV uses each weight once: form it in registers (cpu::gemv, the same bits).
        cpu::gemv(isa, m, i0, i1, xs.data(), o0, o1, acc.data());
        continue;
      }
      cpu::dequantize_block(isa, m, i0, i1, o0, o1, block.data(), o1 - o0);
      cpu::accumulate(isa, block.data(), i1 - i0, o1 - o0, xs.data() + i0, in, tokens, o0, o1,
                      acc.data(), out_f);
    }
  });
  unsigned char* ybytes = bytes_of(y);
  const size_t item = ykind == FloatKind::kF32 ? 4 : 2;
  for (int64_t t = 0; t < tokens; ++t) {
    float* row = acc.data() + t * out_f;
    if (!b.empty()) {
      for (int64_t o = 0; o < out_f; ++o) row[o] = row[o] + b[static_cast<size_t>(o)];
    }
    write_floats(row, out_f, ykind, ybytes + static_cast<size_t>(t * out_f) * item);
  }
}

}  // namespace qforge::plugins::gptq
