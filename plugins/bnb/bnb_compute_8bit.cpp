// bnb 8-bit (LLM.int8) quantize / dequantize / linear_forward over DLTensors (see
// bnb_compute.hpp): input checks, the serialized tensor set, threading; the math lives in
// cpu/int8.*. Format facts and their sources: docs/bnb-int8.md.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "bnb_compute.hpp"
#include "bnb_layout.hpp"
#include "bnb_tensor_io.hpp"
#include "cpu/half.hpp"
#include "cpu/int8.hpp"

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

constexpr int64_t kRowGrain = 16;     // weight rows per parallel_for chunk (quantize, dequantize)
constexpr int64_t kOutputGrain = 64;  // output features per chunk (linear_forward)
constexpr float kF16Max = 65504.0f;
// AMX pads the activations to 16 rows and repacks the weight on every call, so for a few rows
// (decoding) the VNNI dot products touch less memory; both give the same exact sums.
constexpr int64_t kAmxMinRows = 8;

std::string name_of(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "<unnamed>";
}

DLDevice host_device() {
  DLDevice d;
  d.device_type = kDLCPU;
  d.device_id = 0;
  return d;
}

unsigned char* bytes_of(DLTensor& t) { return static_cast<unsigned char*>(t.data) + t.byte_offset; }

const unsigned char* bytes_of(const DLTensor& t) {
  return static_cast<const unsigned char*>(t.data) + t.byte_offset;
}

void keep_min(std::atomic<int64_t>& slot, int64_t value) {
  int64_t seen = slot.load();
  while (value < seen && !slot.compare_exchange_weak(seen, value)) {
  }
}

float to_f16_value(float v) { return cpu::f16_to_f32(cpu::f32_to_f16(v)); }

void check_weight_shape(const qf_module_info& module, const DLTensor& weight) {
  const bool conv1d = module.kind == QF_MODULE_CONV1D;
  const int64_t d0 = conv1d ? module.in_features : module.out_features;
  const int64_t d1 = conv1d ? module.out_features : module.in_features;
  if (weight.ndim != 2 || weight.shape[0] != d0 || weight.shape[1] != d1) {
    std::string got = "[";
    for (int32_t i = 0; i < weight.ndim; ++i)
      got += (i ? ", " : "") + std::to_string(weight.shape[i]);
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name_of(module) + "': weight shape does not match the module",
                "got " + got + "], expected [" + std::to_string(d0) + ", " + std::to_string(d1) +
                    "]" + (conv1d ? " (Conv1D stores [in, out])" : " ([out, in])"),
                "fix the checkpoint or the architecture map");
  }
}

const DLTensor& tensor_named(const qf_tensor_list& tensors, const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, std::string("missing tensor '") + name + "'",
                "a bitsandbytes 8-bit module needs weight and SCB",
                "pass the module's complete tensor set");
  }
  require_host(*t, std::string("tensor '") + name + "'");
  if (!sdk::is_contiguous(*t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, std::string("tensor '") + name + "' is not contiguous",
                "the 8-bit kernels read weight and SCB as flat arrays",
                "pass contiguous tensors (as a checkpoint holds them)");
  }
  return *t;
}

// A stored 8-bit module: codes [out, in] row-major and one float32 scale per row.
struct Loaded8 {
  const int8_t* codes = nullptr;
  const float* scb = nullptr;
  int64_t out = 0, in = 0;
};

Loaded8 load_8bit(const qf_module_info& module, const qf_tensor_list& tensors) {
  check_8bit(module, tensors);  // names, dtypes, shapes, weight_format == 0
  Loaded8 l;
  l.codes = reinterpret_cast<const int8_t*>(bytes_of(tensor_named(tensors, "weight")));
  l.scb = reinterpret_cast<const float*>(bytes_of(tensor_named(tensors, "SCB")));
  l.out = module.out_features;
  l.in = module.in_features;
  return l;
}

}  // namespace

void quantize_8bit(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                   sdk::TensorSink& out) {
  const std::string name = name_of(module);
  require_host(weight, "module '" + name + "': weight");
  const FloatKind kind = float_kind(weight.dtype, "module '" + name + "': weight",
                                    "cast the weight to float16, bfloat16 or float32, or skip "
                                    "the module (llm_int8_skip_modules)");
  check_weight_shape(module, weight);
  const int64_t rows = module.out_features, cols = module.in_features;
  (void)weight_numel(module);  // overflow check of rows * cols
  // Transformers transposes a Conv1D weight before quantizing: read [in, out] as [out, in].
  const FloatMatrix source = matrix_view(weight, kind, module.kind == QF_MODULE_CONV1D);

  const std::vector<TensorSpec> specs = describe_8bit(module);
  std::vector<DLTensor*> outs;
  for (const auto& s : specs)
    outs.push_back(&out.allocate(s.name, s.dtype, s.shape, host_device()));
  auto* codes = reinterpret_cast<int8_t*>(bytes_of(*outs[0]));  // describe_8bit's order
  auto* scb = reinterpret_cast<float*>(bytes_of(*outs[1]));
  *bytes_of(*outs[2]) = 0;  // weight_format "row"

  // The first bad element (row-major flat index): NaN/Inf, or a value float16 cannot hold.
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  // The generic path: any layout (strided, Conv1D transposed), element by element.
  const auto quantize_gathered = [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      source.read_flat(r * cols, cols, row.data());
      bool bad = false;
      for (int64_t k = 0; k < cols && !bad; ++k) {
        // Int8Params casts the weight to float16 before the row absmax, so that is what SCB
        // and the codes are computed from.
        const float h = to_f16_value(row[static_cast<size_t>(k)]);
        if (!std::isfinite(h)) {
          keep_min(first_bad, r * cols + k);
          bad = true;
        }
        row[static_cast<size_t>(k)] = h;
      }
      if (bad) return;  // later rows of this range cannot hold the first bad element
      scb[r] = cpu::quantize_row_int8(row.data(), cols, codes + r * cols);
    }
  };
  // Row-major contiguous weights (every Linear in a checkpoint) go through the dense kernels,
  // which read F16/BF16 directly; a row they refuse is rescanned to name the element.
  const bool contiguous = source.col_stride == 1 && source.row_stride == cols;
  const cpu::Dense dense = kind == FloatKind::kF32   ? cpu::Dense::kF32
                           : kind == FloatKind::kF16 ? cpu::Dense::kF16
                                                     : cpu::Dense::kBF16;
  const cpu::Int8Isa isa = cpu::select_int8_isa();
  call.parallel_for(rows, kRowGrain, [&](int64_t begin, int64_t end) {
    if (!contiguous) {
      quantize_gathered(begin, end);
      return;
    }
    const int64_t failed =
        cpu::quantize_dense_int8(isa, dense, source.base, cols, begin, end, codes, scb);
    if (failed < end) quantize_gathered(failed, failed + 1);
  });
  const int64_t bad = first_bad.load();
  if (bad != std::numeric_limits<int64_t>::max()) {
    const int64_t r = bad / cols, c = bad % cols;
    const float v = source.at(r, c);
    const std::string what = std::isnan(v)   ? std::string("NaN")
                             : std::isinf(v) ? std::string(v > 0 ? "+Inf" : "-Inf")
                                             : std::to_string(v);
    const bool overflow = std::isfinite(v);
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': weight holds " +
                    (overflow ? "a value beyond float16" : what) + " at row " + std::to_string(r) +
                    ", column " + std::to_string(c),
                "element (" + std::to_string(r) + ", " + std::to_string(c) +
                    ") of the [out, in] weight is " + what +
                    (overflow ? "; bitsandbytes casts the weight to float16 (max " +
                                    std::to_string(static_cast<int>(kF16Max)) +
                                    ") before LLM.int8 quantization, where it becomes Inf"
                              : "; row-wise absmax scaling needs finite weights"),
                "fix the checkpoint's weights, or skip the module (llm_int8_skip_modules)");
  }
}

void dequantize_8bit(const sdk::Call& call, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const std::string name = name_of(module);
  const Loaded8 l = load_8bit(module, tensors);
  const FloatKind kind =
      float_kind(module.weight_dtype, "module '" + name + "': weight_dtype",
                 "set the module's weight_dtype to float16, bfloat16 or float32");
  const bool conv1d = module.kind == QF_MODULE_CONV1D;
  const int64_t rows = l.out, cols = l.in;
  DLTensor& dense = out.allocate(
      "weight", module.weight_dtype,
      conv1d ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols}, host_device());
  unsigned char* dst = bytes_of(dense);
  const int64_t item = kind == FloatKind::kF32 ? 4 : 2;
  if (!conv1d) {
    const cpu::Dense dense_kind = kind == FloatKind::kF32   ? cpu::Dense::kF32
                                  : kind == FloatKind::kF16 ? cpu::Dense::kF16
                                                            : cpu::Dense::kBF16;
    const cpu::Int8Isa isa = cpu::select_int8_isa();
    call.parallel_for(rows, kRowGrain, [&](int64_t begin, int64_t end) {
      cpu::dequantize_dense_int8(isa, l.codes, l.scb, cols, begin, end, dense_kind, dst);
    });
    return;
  }
  call.parallel_for(rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      cpu::dequantize_row_int8(l.codes + r * cols, l.scb[r], cols, row.data());
      // Conv1D: output row r of W is column r of the stored [in, out] weight.
      for (int64_t k = 0; k < cols; ++k) {
        write_floats(&row[static_cast<size_t>(k)], 1, kind, dst + (k * rows + r) * item);
      }
    }
  });
}

void linear_forward_8bit(const sdk::Call& call, const BnbConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  const std::string name = name_of(module);
  const Loaded8 l = load_8bit(module, tensors);
  const std::string fix = "pass x and y as F32, F16 or BF16 of the same dtype";
  require_host(x, "linear_forward input x");
  require_host(y, "linear_forward output y");
  const FloatKind xk = float_kind(x.dtype, "linear_forward input x", fix);
  const FloatKind yk = float_kind(y.dtype, "linear_forward output y", fix);
  const int64_t in = l.in, out = l.out;
  if (xk != yk || x.ndim < 1 || y.ndim != x.ndim || x.shape[x.ndim - 1] != in ||
      y.shape[y.ndim - 1] != out || !sdk::is_contiguous(x) || !sdk::is_contiguous(y) ||
      sdk::numel(x) / in != sdk::numel(y) / out) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': linear_forward input/output do not fit",
                std::string("x ") + sdk::dtype_name(x.dtype) + " with last dim " +
                    std::to_string(x.ndim > 0 ? x.shape[x.ndim - 1] : 0) + ", y " +
                    sdk::dtype_name(y.dtype) + " with last dim " +
                    std::to_string(y.ndim > 0 ? y.shape[y.ndim - 1] : 0) + "; the module is [" +
                    std::to_string(out) + ", " + std::to_string(in) +
                    "]; both must be contiguous, same dtype, same leading dims",
                "allocate y as [..., out_features] in x's dtype");
  }
  const int64_t rows = sdk::numel(x) / in;
  if (rows == 0) return;
  std::vector<float> bias_f;
  if (bias != nullptr) {
    require_host(*bias, "linear_forward bias");
    const FloatKind bk = float_kind(bias->dtype, "linear_forward bias", fix);
    if (sdk::numel(*bias) != out || !sdk::is_contiguous(*bias)) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': bias does not fit",
                  "bias has " + std::to_string(sdk::numel(*bias)) + " elements, expected " +
                      std::to_string(out) + " (contiguous)",
                  "pass the module's [out_features] bias");
    }
    bias_f = read_contiguous(*bias, bk);
  }

  // MatMul8bitLt quantizes x.to(float16); the outlier columns multiply the original x.
  const std::vector<float> xf = read_contiguous(x, xk);
  std::vector<float> xh(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) xh[i] = to_f16_value(xf[i]);
  std::vector<int8_t> xq(static_cast<size_t>(rows * in));
  std::vector<float> row_scale(static_cast<size_t>(rows));
  std::vector<uint8_t> outlier(static_cast<size_t>(in));
  const int64_t n_outliers = cpu::quantize_activations_int8(
      xh.data(), rows, in, static_cast<float>(config.llm_int8_threshold), xq.data(), in,
      row_scale.data(), outlier.data());
  std::vector<int64_t> outlier_cols;
  outlier_cols.reserve(static_cast<size_t>(n_outliers));
  for (int64_t c = 0; c < in; ++c) {
    if (outlier[static_cast<size_t>(c)] != 0) outlier_cols.push_back(c);
  }

  std::vector<int32_t> acc(static_cast<size_t>(rows * out));
  std::vector<float> y_copy;
  float* yf = nullptr;
  if (yk == FloatKind::kF32) {
    yf = reinterpret_cast<float*>(bytes_of(y));
  } else {
    y_copy.resize(static_cast<size_t>(rows * out));
    yf = y_copy.data();
  }
  cpu::Int8Isa isa = cpu::select_int8_isa();
  if (isa == cpu::Int8Isa::kAmx && rows < kAmxMinRows &&
      cpu::int8_isa_supported(cpu::Int8Isa::kAvx512Vnni)) {
    isa = cpu::Int8Isa::kAvx512Vnni;
  }
  call.parallel_for(out, kOutputGrain, [&](int64_t begin, int64_t end) {
    cpu::gemm_int8(isa, xq.data(), rows, in, l.codes, in, begin, end, acc.data(), out);
    for (int64_t o = begin; o < end; ++o) {
      const float scb = l.scb[o];
      const int8_t* wr = l.codes + o * in;
      for (int64_t m = 0; m < rows; ++m) {
        // int8_mm_dequant's order: acc * (row_stat * col_stat) * 1/(127*127), then bias.
        float v = static_cast<float>(acc[static_cast<size_t>(m * out + o)]) *
                  (row_scale[static_cast<size_t>(m)] * scb) * cpu::kMmDequant;
        if (!bias_f.empty()) v += bias_f[static_cast<size_t>(o)];
        if (!outlier_cols.empty()) {
          // The outlier columns in floating point against the dequantized weight columns,
          // added after the int8 part as int8_mixed_scaled_mm's addmm does.
          const float* xr = xf.data() + m * in;
          float s = 0.0f;
          for (int64_t c : outlier_cols) {
            s += xr[c] * ((static_cast<float>(wr[c]) * scb) * cpu::kInt8Dequant);
          }
          v += s;
        }
        yf[m * out + o] = v;
      }
    }
  });
  if (yk != FloatKind::kF32) write_floats(yf, rows * out, yk, bytes_of(y));
}

}  // namespace qforge::plugins::bnb
