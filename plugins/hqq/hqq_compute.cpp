// HQQ compute on the CPU (see hqq_compute.hpp). Order of operations follows hqq's
// Quantizer.quantize / HQQLinear (FORMATS.md §2.8, docs/hqq.md).
#include "hqq_compute.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/group_codes.hpp"
#include "hqq_bitpack.hpp"
#include "hqq_matmul.hpp"
#include "hqq_optimize.hpp"
#include "hqq_tensor_io.hpp"

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

void write_int32(DLTensor& t, int32_t v) { std::memcpy(bytes_of(t), &v, 4); }
void write_u8(DLTensor& t, bool v) { bytes_of(t)[0] = v ? 1 : 0; }
void write_text(DLTensor& t, const std::string& s) { std::memcpy(bytes_of(t), s.data(), s.size()); }

}  // namespace

void quantize_hqq(const sdk::Call& call, const WeightQuantParams& params,
                  const qf_module_info& module, const DLTensor& weight, sdk::TensorSink& out) {
  const std::string name = module_name(module);
  if (module.kind != QF_MODULE_LINEAR) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "' is not an nn.Linear",
                "transformers' HQQ quantizer replaces nn.Linear only (weight [out, in])",
                "leave the module unquantized (skip_modules)");
  }
  if (!params.channel_wise || params.view_as_float) {
    throw Error(QF_CODE_UNIMPLEMENTED,
                "module '" + name + "': channel_wise=false / view_as_float=true is not supported",
                "this plugin quantizes hqq's default path (per-group, W_q stored as integers)",
                "use channel_wise true and view_as_float false (HqqConfig's defaults)");
  }
  if (weight.ndim != 2 || weight.shape[0] != module.out_features ||
      weight.shape[1] != module.in_features) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': weight shape does not match",
                "expected [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "]",
                "pass the nn.Linear weight [out_features, in_features]");
  }
  const Geometry g = make_geometry(params.nbits, params.group_size, params.axis,
                                   module.out_features, module.in_features, name);
  const std::vector<float> w = read_floats(weight, "module '" + name + "' weight");
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i])) {
      throw Error(
          QF_CODE_INVALID_ARGUMENT,
          "module '" + name + "': weight has a non-finite value at flat index " + std::to_string(i),
          "hqq's per-group min/max and scale are meaningless with NaN or Inf",
          "fix or re-export the source checkpoint; the weights are corrupt");
    }
  }
  const int64_t groups = g.groups();
  const int64_t gs = g.group;
  // Group-major copy (axis 1 already is: row j of [numel/g, g]).
  std::vector<float> wg;
  const float* grouped = w.data();
  if (g.axis == 0) {
    wg.resize(w.size());
    for (int64_t j = 0; j < groups; ++j) {
      for (int64_t k = 0; k < gs; ++k)
        wg[static_cast<size_t>(j * gs + k)] = w[static_cast<size_t>(g.flat_index(j, k))];
    }
    grouped = wg.data();
  }
  std::vector<float> scale(static_cast<size_t>(groups));
  std::vector<float> zero(static_cast<size_t>(groups));
  init_scale_zero(grouped, groups, gs, g.max_v, params.round_zero, scale.data(), zero.data());
  if (params.optimize) {
    const ProximalTrace trace =
        optimize_zero(call, grouped, groups, gs, g.max_v, scale.data(), zero.data());
    // "steps=N" is what `qforge -v bench` reads for its per-step optimizer figure.
    if (sdk::log_enabled(QF_LOG_DEBUG) && !trace.errors.empty()) {
      sdk::log(QF_LOG_DEBUG, "module '" + name +
                                 "': optimizer steps=" + std::to_string(trace.iterations) +
                                 ", mean |W - W_r| " + std::to_string(trace.errors.front()) +
                                 " -> " + std::to_string(trace.errors.back()));
    }
  }
  std::vector<uint8_t> codes(w.size());
  quantize_codes(call, grouped, groups, gs, g.max_v, scale.data(), zero.data(), codes.data());
  call.throw_if_cancelled();

  // Codes in the reshaped [rows, cols] layout hqq packs.
  std::vector<uint8_t> reshaped;
  const uint8_t* packed_src = codes.data();
  if (g.axis == 0) {
    reshaped.resize(codes.size());
    for (int64_t j = 0; j < groups; ++j) {
      for (int64_t k = 0; k < gs; ++k) {
        reshaped[static_cast<size_t>(k * g.cols + j)] = codes[static_cast<size_t>(j * gs + k)];
      }
    }
    packed_src = reshaped.data();
  }
  const FloatKind compute = compute_kind(module);
  // hqq stores 1 / scale (float32), then HQQLinear.cuda() casts scale and zero to compute_dtype.
  std::vector<float> inv(static_cast<size_t>(groups));
  for (int64_t j = 0; j < groups; ++j)
    inv[static_cast<size_t>(j)] = 1.0f / scale[static_cast<size_t>(j)];

  const DLDevice cpu{kDLCPU, 0};
  for (const auto& f : field_specs(params, g, compute)) {
    DLTensor& t = out.allocate(f.name, f.dtype, f.shape, cpu);
    if (f.name == "W_q") {
      pack(g.packing, packed_src, g.rows, g.cols, bytes_of(t));
    } else if (f.name == "scale") {
      write_floats(inv.data(), groups, compute, bytes_of(t));
    } else if (f.name == "zero") {
      write_floats(zero.data(), groups, compute, bytes_of(t));
    } else if (f.name == "nbits") {
      if (f.dtype.code == kDLFloat) {
        const float v = static_cast<float>(params.nbits);
        std::memcpy(bytes_of(t), &v, 4);
      } else {
        write_int32(t, static_cast<int32_t>(params.nbits));
      }
    } else if (f.name == "group_size") {
      write_int32(t, static_cast<int32_t>(gs));
    } else if (f.name == "shape") {
      const int64_t s[2] = {module.out_features, module.in_features};
      std::memcpy(bytes_of(t), s, sizeof s);
    } else if (f.name == "axis") {
      write_int32(t, g.axis);
    } else if (f.name == "packing") {
      write_text(t, g.packing);
    } else if (f.name == "unpack_view_dtype") {
      write_text(t, g.packed.element_bytes == 4 ? "torch.int32" : "torch.uint8");
    } else if (f.name == "compute_dtype") {
      write_text(t, torch_name(compute));
    } else if (f.name == "encoded_state_dict" || f.name == "stores_quant_config") {
      write_u8(t, true);
    } else if (f.name == "channel_wise") {
      write_u8(t, params.channel_wise);
    } else if (f.name == "optimize") {
      write_u8(t, params.optimize);
    } else if (f.name == "round_zero") {
      write_u8(t, params.round_zero);
    } else {
      write_u8(t, false);  // view_as_float, quant_scale, quant_zero, offload_meta
    }
  }
}

namespace {

// round_as(kBF16) inline (same bits: nearest even, NaN kept quiet).
inline float bf16_round(float v) noexcept {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) {
    b |= 0x400000u;
  } else {
    b += 0x7FFFu + ((b >> 16) & 1u);
  }
  b &= 0xFFFF0000u;
  std::memcpy(&v, &b, 4);
  return v;
}

// A pre-quantized layer's values, decoded group by group straight from the packed W_q.
class GroupDecoder {
 public:
  GroupDecoder(const qf_module_info& module, const qf_tensor_list& tensors)
      : g_(check_tensors(module, tensors)) {
    const DLTensor& wq = *sdk::find_tensor(&tensors, "W_q");
    const DLTensor& st = *sdk::find_tensor(&tensors, "scale");
    require_host_contiguous(wq, "W_q");
    kind_ = float_kind(st.dtype, "scale");
    scale_ = read_floats(st, "scale");
    zero_ = read_floats(*sdk::find_tensor(&tensors, "zero"), "zero");
    codes_ = cpu::packed_codes(g_.packing, bytes_of(wq), g_.packed.rows, g_.cols);
    levels_ = g_.max_v + 1;
  }

  const Geometry& geometry() const noexcept { return g_; }
  const cpu::PackedCodes& codes() const noexcept { return codes_; }

  // (W_r - zero) * scale in the compute dtype: each op rounds (PyTorch's bf16/fp16 ops).
  float value(int code, size_t j) const noexcept {
    return round_as(kind_, round_as(kind_, static_cast<float>(code) - zero_[j]) * scale_[j]);
  }

  // Axis 1: group j's g values into out. The result depends only on (code, group), so a group
  // of at least `levels` elements reads it from a table of every code's value.
  void group(int64_t j, uint8_t* codes, float* table, float* out) const noexcept {
    const auto jj = static_cast<size_t>(j);
    const int64_t n = g_.cols;
    if (n >= levels_) {
      const float z = zero_[jj], s = scale_[jj];
      if (kind_ == FloatKind::kF32) {
        // round_as(kF32) is the identity: skip the calls.
        for (int q = 0; q < levels_; ++q) table[q] = (static_cast<float>(q) - z) * s;
      } else if (kind_ == FloatKind::kBF16) {
        // The table is rebuilt per group: the out-of-line round_as was most of the decode.
        for (int q = 0; q < levels_; ++q)
          table[q] = bf16_round(bf16_round(static_cast<float>(q) - z) * s);
      } else {
        for (int q = 0; q < levels_; ++q) table[q] = value(q, jj);
      }
      cpu::row_values(codes_, j, table, out);
    } else {
      cpu::row_codes(codes_, j, codes);
      for (int64_t k = 0; k < n; ++k) out[k] = value(codes[k], jj);
    }
  }

  int levels() const noexcept { return levels_; }

 private:
  Geometry g_;
  FloatKind kind_ = FloatKind::kF32;
  std::vector<float> scale_, zero_;
  cpu::PackedCodes codes_;
  int levels_ = 0;
};

// Scratch of one thread for GroupDecoder::group.
struct GroupScratch {
  std::vector<uint8_t> codes;
  std::vector<float> table;
  explicit GroupScratch(const GroupDecoder& d)
      : codes(static_cast<size_t>(d.geometry().cols)), table(static_cast<size_t>(d.levels())) {}
};

std::vector<float> dense_of(const sdk::Call& call, const GroupDecoder& d) {
  const Geometry& g = d.geometry();
  std::vector<float> w(static_cast<size_t>(g.rows * g.cols));
  const int64_t cols = g.cols;
  if (g.axis == 1) {
    // Reshaped row r is group r: threads decode groups straight from the packed codes.
    call.parallel_for(g.rows, 16, [&](int64_t r0, int64_t r1) {
      GroupScratch s(d);
      for (int64_t r = r0; r < r1; ++r) {
        d.group(r, s.codes.data(), s.table.data(), w.data() + r * cols);
      }
    });
    return w;  // reshaped [rows, cols] is W's row-major flattening: reshape(shape) is free
  }
  // Axis 0: every element of a reshaped row is in a different group (column).
  call.parallel_for(g.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      cpu::row_codes(d.codes(), r, codes.data());
      float* wr = w.data() + r * cols;
      for (int64_t c = 0; c < cols; ++c)
        wr[c] = d.value(codes[static_cast<size_t>(c)], static_cast<size_t>(c));
    }
  });
  return w;
}

}  // namespace

std::vector<float> dense_weight(const sdk::Call& call, const qf_module_info& module,
                                const qf_tensor_list& tensors, Geometry* geometry) {
  const GroupDecoder d(module, tensors);
  if (geometry != nullptr) *geometry = d.geometry();
  return dense_of(call, d);
}

void dequantize_hqq(const sdk::Call& call, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const std::vector<float> w = dense_weight(call, module, tensors);
  const FloatKind kind = compute_kind(module);
  const DLTensor* shape = sdk::find_tensor(&tensors, "shape");
  const std::vector<int64_t> s = decode_size(*shape, "shape");
  DLTensor& dense = out.allocate("weight", dtype_of(kind), s, DLDevice{kDLCPU, 0});
  // The conversion to the weight dtype is as long as the decode: threaded the same way.
  const int64_t elem = kind == FloatKind::kF32 ? 4 : 2;
  const auto n = static_cast<int64_t>(w.size());
  const int64_t chunk = 1 << 16;
  call.parallel_for((n + chunk - 1) / chunk, 1, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * chunk, e = std::min(n, c1 * chunk);
    write_floats(w.data() + b, e - b, kind, bytes_of(dense) + b * elem);
  });
}

void linear_forward_hqq(const sdk::Call& call, const qf_module_info& module,
                        const qf_tensor_list& tensors, const DLTensor& x, const DLTensor* bias,
                        DLTensor& y) {
  const GroupDecoder d(module, tensors);
  const Geometry& g = d.geometry();
  const int64_t in = g.in_features;
  const int64_t out_f = g.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
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
  std::vector<float> ys(static_cast<size_t>(tokens * out_f));
  const float* bp = b.empty() ? nullptr : b.data();
  if (tokens < kFusedForwardTokens && g.axis == 1) {
    // Decode: each weight row is decoded group by group as it is used (a group may straddle two
    // rows when g does not divide in_features) and read by every token; the dense layer is
    // never written, which is what made few-token forwards cost a full dequantize.
    const int64_t gs = g.group;
    matmul_xwt_rows(
        call, xs.data(), tokens, in, out_f,
        [&](int64_t o, float* row) {
          thread_local std::vector<uint8_t> codes;
          thread_local std::vector<float> table, values;
          codes.resize(static_cast<size_t>(gs));
          table.resize(static_cast<size_t>(d.levels()));
          values.resize(static_cast<size_t>(gs));
          const int64_t first = o * in, last = first + in;
          for (int64_t j = first / gs; j * gs < last; ++j) {
            const int64_t s0 = std::max(first, j * gs), s1 = std::min(last, (j + 1) * gs);
            if (s0 == j * gs && s1 == (j + 1) * gs) {
              d.group(j, codes.data(), table.data(), row + (s0 - first));
            } else {
              d.group(j, codes.data(), table.data(), values.data());
              std::memcpy(row + (s0 - first), values.data() + (s0 - j * gs),
                          static_cast<size_t>(s1 - s0) * sizeof(float));
            }
          }
        },
        bp, ys.data());
  } else {
    const std::vector<float> w = dense_of(call, d);
    matmul_xwt(call, xs.data(), tokens, in, w.data(), out_f, bp, ys.data());
  }
  write_floats(ys.data(), tokens * out_f, ykind, bytes_of(y));
}

}  // namespace qforge::plugins::hqq
