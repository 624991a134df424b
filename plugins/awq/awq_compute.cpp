// AWQ compute on the CPU (see awq_compute.hpp).
#include "awq_compute.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "awq_pack.hpp"
#include "awq_rtn.hpp"
#include "cpu/kernels.hpp"
#include "dense_tensor_io.hpp"  // plugins/common

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

constexpr int64_t kInputBlock = 256;  // inputs dequantized at a time per output range
constexpr int64_t kOutputTile = 64;   // outputs per dequantize tile (a multiple of 8: whole words)

cpu::PackedMatrix matrix_of(const PackedView& p) {
  return cpu::PackedMatrix{p.qweight,           p.shapes.in,    p.shapes.out,
                           p.shapes.group_size, p.zeros.data(), p.scales.data()};
}

void copy_words(const std::vector<int32_t>& words, DLTensor& t) {
  if (!words.empty()) std::memcpy(bytes_of(t), words.data(), words.size() * 4);
}

}  // namespace

void write_checkpoint(const Layer& layer, const AwqConfig& config, sdk::TensorSink& out) {
  const Shapes& s = layer.shapes;
  const std::string problem = packing_problem(config, s.in, s.out);
  if (!problem.empty()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "the layer does not pack as AWQ", problem,
                "leave the module unquantized (modules_to_not_convert) or change group_size");
  }
  const DLDevice cpu_device{kDLCPU, 0};
  const DLDataType i32 = sdk::make_dtype(kDLInt, 32);
  const DLDataType f16 = sdk::make_dtype(kDLFloat, 16);
  std::vector<int32_t> qweight(static_cast<size_t>(s.in * s.out / kPackNum));
  std::vector<float> scales;
  std::vector<int32_t> qzeros;
  if (s.version == AwqVersion::kGemm) {
    pack_gemm(layer.codes.data(), s.in, s.out, qweight.data());
    qzeros.resize(static_cast<size_t>(s.groups * s.out / kPackNum));
    pack_gemm(layer.zeros.data(), s.groups, s.out, qzeros.data());
    scales = layer.scales;
  } else {
    pack_gemv_qweight(layer.codes.data(), s.in, s.out, qweight.data());
    qzeros.resize(static_cast<size_t>(s.out * s.zeros_width));
    pack_gemv_qzeros(layer.zeros.data(), s.groups, s.out, s.zeros_width, qzeros.data());
    // [O, 8W], the columns past the last group 0 as AutoAWQ's torch.zeros leaves them.
    const int64_t ld = s.zeros_width * kPackNum;
    scales.assign(static_cast<size_t>(s.out * ld), 0.0f);
    for (int64_t g = 0; g < s.groups; ++g) {
      for (int64_t o = 0; o < s.out; ++o) {
        scales[static_cast<size_t>(o * ld + g)] = layer.scales[static_cast<size_t>(g * s.out + o)];
      }
    }
  }
  copy_words(qweight, out.allocate("qweight", i32, s.qweight_shape(), cpu_device));
  copy_words(qzeros, out.allocate("qzeros", i32, s.qzeros_shape(), cpu_device));
  DLTensor& sc = out.allocate("scales", f16, s.scales_shape(), cpu_device);
  write_floats(scales.data(), static_cast<int64_t>(scales.size()), FloatKind::kF16, bytes_of(sc));
}

void quantize_rtn_module(const AwqConfig& config, const qf_module_info& module,
                         const DLTensor& weight, sdk::TensorSink& out) {
  const std::string name = module_name(module);
  if (module.kind != QF_MODULE_LINEAR) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' is not an nn.Linear",
                "AWQ's WQLinear replaces nn.Linear only (weight [out, in])",
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
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' cannot be written as AWQ", problem,
                "leave it unquantized (needs_quantization skips it with this reason)");
  }
  const std::vector<float> w = read_floats(weight, "module '" + name + "' weight");
  Layer layer;
  try {
    layer = quantize_rtn(w.data(), module.out_features, module.in_features, config);
  } catch (const Error& e) {
    throw Error(e.code(), "module '" + name + "': " + e.what(), e.why(), e.fix());
  }
  write_checkpoint(layer, config, out);
}

void dequantize_awq(const sdk::Call& call, const AwqConfig& config, const qf_module_info& module,
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
  // Tiles of inputs x outputs dequantized [I, O]-wise (qweight's order), then written transposed
  // through a cache-line-padded buffer (gptq measured the unpadded stride halving throughput).
  call.parallel_for(s.in, kInputBlock, [&](int64_t i0, int64_t i1) {
    const int64_t rows = i1 - i0;
    std::vector<float> tile(static_cast<size_t>(rows * kOutputTile));
    const int64_t ld = rows + 16;
    std::vector<float> cols(static_cast<size_t>(ld * kOutputTile));
    for (int64_t o0 = 0; o0 < s.out; o0 += kOutputTile) {
      const int64_t o1 = std::min(s.out, o0 + kOutputTile), width = o1 - o0;
      cpu::dequantize_block(isa, m, i0, i1, o0, o1, tile.data(), width);
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

void linear_forward_awq(const sdk::Call& call, const AwqConfig& config,
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
  // Each task owns a range of outputs (whole words: grain 64) and walks the inputs in order, a
  // block at a time, so every output's sum runs in input order whatever the split.
  call.parallel_for(out_f, 64, [&](int64_t o0, int64_t o1) {
    std::vector<float> block(static_cast<size_t>(kInputBlock * (o1 - o0)));
    for (int64_t i0 = 0; i0 < in; i0 += kInputBlock) {
      const int64_t i1 = std::min(in, i0 + kInputBlock);
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

}  // namespace qforge::plugins::awq
