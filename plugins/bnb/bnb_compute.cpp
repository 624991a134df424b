// bnb 4-bit quantize / dequantize / linear_forward over DLTensors (see bnb_compute.hpp).
#include "bnb_compute.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bnb_layout.hpp"
#include "bnb_tensor_io.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

// Blocks per parallel_for grain when quantizing: large, so small layers run on one thread and
// a chunk amortizes its start-up; results never depend on the split.
constexpr int64_t kQuantizeGrain = 4096;
constexpr int64_t kRowGrain = 16;
constexpr int64_t kDequantizeGrain = 2048;  // blocks
// Dense outputs at least this large are written with non-temporal stores: they cannot stay in
// the cache anyway, and streaming them skips reading every line before it is overwritten.
constexpr int64_t kStreamBytes = int64_t{32} << 20;

cpu::Dense dense_of(FloatKind kind) {
  return kind == FloatKind::kF32 ? cpu::Dense::kF32
                                 : (kind == FloatKind::kF16 ? cpu::Dense::kF16 : cpu::Dense::kBF16);
}

std::string name_of(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "<unnamed>";
}

cpu::QuantType quant_type_of(const std::string& name) {
  return name == "nf4" ? cpu::QuantType::kNf4 : cpu::QuantType::kFp4;
}

DLDevice host_device() {
  DLDevice d;
  d.device_type = kDLCPU;
  d.device_id = 0;
  return d;
}

int64_t nbytes(const DLTensor& t) {
  return sdk::numel(t) * ((t.dtype.bits * t.dtype.lanes + 7) / 8);
}

unsigned char* bytes_of(DLTensor& t) { return static_cast<unsigned char*>(t.data) + t.byte_offset; }

const unsigned char* bytes_of(const DLTensor& t) {
  return static_cast<const unsigned char*>(t.data) + t.byte_offset;
}

// Lowers `slot` to `value` if smaller (first bad element across threads, deterministically).
void keep_min(std::atomic<int64_t>& slot, int64_t value) {
  int64_t seen = slot.load();
  while (value < seen && !slot.compare_exchange_weak(seen, value)) {
  }
}

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

// The state a stored 4-bit module describes: pointers into the host's tensors.
struct Loaded4 {
  cpu::Weight4 weight;
  std::string dtype;  // the blob's "dtype"
};

const DLTensor& tensor_named(const qf_tensor_list& tensors, const std::string& name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name.c_str());
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "missing tensor '" + name + "'",
                "a bitsandbytes 4-bit module needs it", "pass the module's complete tensor set");
  }
  require_host(*t, "tensor '" + name + "'");
  if (!sdk::is_contiguous(*t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + name + "' is not contiguous",
                "the 4-bit kernels read packed tensors as flat arrays",
                "pass contiguous tensors (as a checkpoint holds them)");
  }
  return *t;
}

Loaded4 load_4bit(const BnbConfig& config, const qf_module_info& module,
                  const qf_tensor_list& tensors) {
  check_4bit(config, module, tensors);  // names, dtypes, shapes
  std::string blob_name;
  for (int64_t i = 0; i < tensors.count; ++i) {
    const char* n = tensors.items[i].name;
    if (n != nullptr && std::strstr(n, "quant_state.bitsandbytes__") != nullptr) blob_name = n;
  }
  const DLTensor& blob = tensor_named(tensors, blob_name);
  const auto* text = reinterpret_cast<const char*>(bytes_of(blob));
  const nlohmann::json state = nlohmann::json::parse(text, text + sdk::numel(blob), nullptr, false);
  const std::string fix = "re-save the checkpoint with qforge or bitsandbytes >= 0.41.3";
  if (state.is_discarded() || !state.is_object() || !state.contains("blocksize") ||
      !state["blocksize"].is_number_integer() || !state.contains("shape") ||
      !state["shape"].is_array() || state["shape"].size() != 2) {
    throw Error(
        QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' is not a quant_state blob",
        "expected JSON with quant_type, blocksize, dtype and shape, got '" +
            std::string(text, static_cast<size_t>(std::min<int64_t>(sdk::numel(blob), 80))) + "'",
        fix);
  }
  const int64_t blocksize = state["blocksize"].get<int64_t>();
  const auto shape = state["shape"].get<std::vector<int64_t>>();
  if (shape[0] != module.out_features || shape[1] != module.in_features) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name_of(module) + "': quant_state shape does not match the module",
                "the blob says [" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) +
                    "], the module is [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "] ([out, in])",
                fix);
  }
  const int64_t n = weight_numel(module);
  const DLTensor& absmax = tensor_named(tensors, "weight.absmax");
  if (blocksize <= 0 || sdk::numel(absmax) != (n + blocksize - 1) / blocksize) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name_of(module) + "': absmax does not fit the blocksize",
                "blocksize " + std::to_string(blocksize) + " needs " +
                    std::to_string(blocksize > 0 ? (n + blocksize - 1) / blocksize : 0) +
                    " absmax values, got " + std::to_string(sdk::numel(absmax)),
                fix);
  }

  Loaded4 loaded;
  loaded.dtype = state.value("dtype", "");
  cpu::Weight4& w = loaded.weight;
  w.packed = bytes_of(tensor_named(tensors, "weight"));
  w.code = reinterpret_cast<const float*>(bytes_of(tensor_named(tensors, "weight.quant_map")));
  w.out = module.out_features;
  w.in = module.in_features;
  w.blocksize = blocksize;
  if (absmax.dtype.code == kDLFloat) {
    w.absmax.values = reinterpret_cast<const float*>(bytes_of(absmax));
  } else {
    if (!state.contains("nested_offset") || !state["nested_offset"].is_number()) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' lacks nested_offset",
                  "absmax is stored as 8-bit codes (double quantization), which needs the offset",
                  fix);
    }
    w.absmax.codes = bytes_of(absmax);
    w.absmax.nested =
        reinterpret_cast<const float*>(bytes_of(tensor_named(tensors, "weight.nested_absmax")));
    w.absmax.nested_map =
        reinterpret_cast<const float*>(bytes_of(tensor_named(tensors, "weight.nested_quant_map")));
    w.absmax.offset = static_cast<float>(state["nested_offset"].get<double>());
    w.absmax.nested_blocksize = state.value("nested_blocksize", kNestedBlocksize);
    const int64_t nested = tensor_named(tensors, "weight.nested_absmax").shape[0];
    if (w.absmax.nested_blocksize <= 0 || nested * w.absmax.nested_blocksize < sdk::numel(absmax)) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' has a bad nested_blocksize",
                  "nested_blocksize " + std::to_string(w.absmax.nested_blocksize) + " with " +
                      std::to_string(nested) + " nested_absmax values cannot cover " +
                      std::to_string(sdk::numel(absmax)) + " absmax codes",
                  fix);
    }
  }
  return loaded;
}

}  // namespace

void quantize_4bit(const sdk::Call& call, const BnbConfig& config, const qf_module_info& module,
                   const DLTensor& weight, sdk::TensorSink& out) {
  const std::string name = name_of(module);
  require_host(weight, "module '" + name + "': weight");
  const FloatKind kind = float_kind(weight.dtype, "module '" + name + "': weight",
                                    "cast the weight to float16, bfloat16 or float32, or skip "
                                    "the module (llm_int8_skip_modules)");
  check_weight_shape(module, weight);
  const int64_t n = weight_numel(module);
  const int64_t blocks = (n + kBlocksize - 1) / kBlocksize;
  const cpu::QuantType type = quant_type_of(config.bnb_4bit_quant_type);
  const bool nested = config.bnb_4bit_use_double_quant;
  // Transformers transposes a Conv1D weight before quantizing: read [in, out] as [out, in].
  const FloatMatrix source = matrix_view(weight, kind, module.kind == QF_MODULE_CONV1D);

  // Allocate exactly what describe_quantized announces, in its order.
  const std::vector<TensorSpec> specs = describe_4bit(config, module);
  std::vector<DLTensor*> outs;
  for (const auto& s : specs)
    outs.push_back(&out.allocate(s.name, s.dtype, s.shape, host_device()));
  auto output = [&](const std::string& n_) -> DLTensor& {
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].name == n_) return *outs[i];
    }
    throw Error(QF_CODE_INTERNAL, "describe_4bit lists no '" + n_ + "'", "", "report this bug");
  };
  DLTensor& packed_t = output("weight");
  if (nbytes(packed_t) != (n + 1) / 2) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': bnb_4bit_quant_storage " + config.bnb_4bit_quant_storage +
                    " cannot hold the packed weight",
                std::to_string((n + 1) / 2) + " packed bytes are not a whole number of " +
                    config.bnb_4bit_quant_storage + " elements (bitsandbytes would fail too)",
                "use bnb_4bit_quant_storage uint8");
  }
  uint8_t* packed = bytes_of(packed_t);
  std::vector<float> absmax_plain;
  float* absmax = nullptr;
  if (nested) {
    absmax_plain.resize(static_cast<size_t>(blocks));
    absmax = absmax_plain.data();
  } else {
    absmax = reinterpret_cast<float*>(bytes_of(output("weight.absmax")));
  }

  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  // The generic path: any layout (strided, Conv1D transposed), element by element.
  const auto quantize_gathered = [&](int64_t begin, int64_t end) {
    float values[kBlocksize];
    uint8_t codes[kBlocksize + 1];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t e0 = b * kBlocksize;
      const int64_t count = std::min(kBlocksize, n - e0);
      source.read_flat(e0, count, values);
      for (int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(values[i])) {
          keep_min(first_bad, e0 + i);
          return;  // later elements of this range cannot be the first bad one
        }
      }
      absmax[b] = cpu::quantize_block_4bit(type, values, count, codes);
      codes[count] = 0;  // odd n: the last low nibble is padding code 0
      for (int64_t i = 0; i < count; i += 2) {
        packed[(e0 + i) / 2] = static_cast<uint8_t>((codes[i] << 4) | codes[i + 1]);
      }
    }
  };
  // Row-major contiguous weights (every checkpoint tensor) go through the whole-block kernels,
  // which read F16/BF16 directly; only a partial last block takes the generic path.
  const bool contiguous = source.col_stride == 1 && source.row_stride == source.cols;
  const int64_t whole = contiguous && kBlocksize == cpu::kBlock ? n / kBlocksize : 0;
  const cpu::Isa isa = cpu::select_isa();
  call.parallel_for(blocks, kQuantizeGrain, [&](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end, whole);
    if (begin < stop) {
      const int64_t failed = cpu::quantize_dense_4bit(isa, type, dense_of(kind), source.base, begin,
                                                      stop, packed, absmax);
      if (failed < stop) {
        quantize_gathered(failed, failed + 1);  // finds and records the element
        return;
      }
    }
    quantize_gathered(std::max(begin, stop), end);
  });
  const int64_t bad = first_bad.load();
  if (bad != std::numeric_limits<int64_t>::max()) {
    const int64_t row = bad / module.in_features, col = bad % module.in_features;
    const float v = source.at(row, col);
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': weight holds " + (std::isnan(v) ? "NaN" : "Inf") +
                    " at block " + std::to_string(bad / kBlocksize) + ", element " +
                    std::to_string(bad),
                "element " + std::to_string(bad) + " of the flattened [out, in] weight (row " +
                    std::to_string(row) + ", column " + std::to_string(col) + ") in block " +
                    std::to_string(bad / kBlocksize) + " of " + std::to_string(kBlocksize) +
                    " is " + (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) +
                    "; 4-bit absmax scaling needs finite weights",
                "fix the checkpoint's weights, or skip the module (llm_int8_skip_modules)");
  }

  QuantStateFields fields;
  fields.quant_type = config.bnb_4bit_quant_type;
  fields.dtype = torch_float_name(module.weight_dtype, "module '" + name + "'");
  fields.out_features = module.out_features;
  fields.in_features = module.in_features;
  if (nested) {
    fields.nested_offset =
        cpu::double_quantize(absmax, blocks, bytes_of(output("weight.absmax")),
                             reinterpret_cast<float*>(bytes_of(output("weight.nested_absmax"))));
    std::memcpy(bytes_of(output("weight.nested_quant_map")), cpu::dynamic_map().data(),
                sizeof(float) * cpu::dynamic_map().size());
  }
  std::memcpy(bytes_of(output("weight.quant_map")), cpu::codebook(type).data(), sizeof(float) * 16);
  const std::string blob = quant_state_json(fields);
  DLTensor& blob_t = output("weight.quant_state.bitsandbytes__" + config.bnb_4bit_quant_type);
  if (nbytes(blob_t) != static_cast<int64_t>(blob.size())) {
    throw Error(QF_CODE_INTERNAL, "quant_state blob length changed after describe_quantized",
                "described " + std::to_string(nbytes(blob_t)) + " bytes, wrote " +
                    std::to_string(blob.size()),
                "report to the qforge developers (Note [nested_offset width])");
  }
  std::memcpy(bytes_of(blob_t), blob.data(), blob.size());
}

void dequantize_4bit(const sdk::Call& call, const BnbConfig& config, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out) {
  const std::string name = name_of(module);
  const Loaded4 loaded = load_4bit(config, module, tensors);
  const FloatKind kind = float_kind(module.weight_dtype, "module '" + name + "': weight_dtype",
                                    "dequantize to float16, bfloat16 or float32");
  const std::string dtype_name = torch_float_name(module.weight_dtype, "module '" + name + "'");
  if (!loaded.dtype.empty() && loaded.dtype != dtype_name) {
    sdk::log(QF_LOG_WARN, "module '" + name + "': quant_state says dtype " + loaded.dtype +
                              ", the module says " + dtype_name + "; writing " + dtype_name);
  }
  const bool conv1d = module.kind == QF_MODULE_CONV1D;
  const int64_t rows = module.out_features, cols = module.in_features;
  DLTensor& dense = out.allocate(
      "weight", module.weight_dtype,
      conv1d ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols}, host_device());
  unsigned char* dst = bytes_of(dense);
  const int64_t item = kind == FloatKind::kF32 ? 4 : 2;
  const cpu::Isa isa = cpu::select_isa();
  const cpu::Weight4& w = loaded.weight;
  if (!conv1d && w.blocksize == cpu::kBlock) {
    // Whole blocks straight into the output in its dtype; a partial last block (n % 64) is
    // written element by element.
    const int64_t n = rows * cols;
    const int64_t whole = n / cpu::kBlock;
    const bool stream = n * item >= kStreamBytes && reinterpret_cast<uintptr_t>(dst) % 64 == 0;
    call.parallel_for(whole, kDequantizeGrain, [&](int64_t begin, int64_t end) {
      cpu::dequantize_dense(isa, w, dense_of(kind), begin, end, dst + begin * cpu::kBlock * item,
                            stream);
    });
    if (whole * cpu::kBlock < n) {
      std::vector<float> tail(static_cast<size_t>(n - whole * cpu::kBlock));
      cpu::dequantize_range(isa, w, whole * cpu::kBlock, n, tail.data());
      write_floats(tail.data(), static_cast<int64_t>(tail.size()), kind,
                   dst + whole * cpu::kBlock * item);
    }
    return;
  }
  call.parallel_for(rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      cpu::dequantize_range(isa, w, r * cols, (r + 1) * cols, row.data());
      if (!conv1d) {
        write_floats(row.data(), cols, kind, dst + r * cols * item);
        continue;
      }
      // Conv1D: output row r of W is column r of the stored [in, out] weight.
      for (int64_t k = 0; k < cols; ++k) {
        write_floats(&row[static_cast<size_t>(k)], 1, kind, dst + (k * rows + r) * item);
      }
    }
  });
}

void linear_forward_4bit(const sdk::Call& call, const BnbConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  const std::string name = name_of(module);
  const Loaded4 loaded = load_4bit(config, module, tensors);
  const cpu::Weight4& w = loaded.weight;
  const std::string fix = "pass x and y as F32, F16 or BF16 of the same dtype";
  require_host(x, "linear_forward input x");
  require_host(y, "linear_forward output y");
  const FloatKind xk = float_kind(x.dtype, "linear_forward input x", fix);
  const FloatKind yk = float_kind(y.dtype, "linear_forward output y", fix);
  const int64_t in = w.in, out = w.out;
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

  std::vector<float> x_copy;
  const float* xf = nullptr;
  if (xk == FloatKind::kF32) {
    xf = reinterpret_cast<const float*>(bytes_of(x));
  } else {
    x_copy = read_contiguous(x, xk);
    xf = x_copy.data();
  }
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
  const cpu::Isa isa = cpu::select_isa();
  std::vector<float> xperm;
  const cpu::XLayout layout = cpu::x_layout(isa, w, rows);
  const int64_t ldx = cpu::x_stride(in, rows);
  if (layout != cpu::XLayout::kNatural) {
    xperm.resize(static_cast<size_t>(rows * ldx));
    cpu::prepare_x(layout, xf, rows, in, ldx, xperm.data());
  }
  std::vector<float> y_copy;
  float* yf = nullptr;
  if (yk == FloatKind::kF32) {
    yf = reinterpret_cast<float*>(bytes_of(y));
  } else {
    y_copy.resize(static_cast<size_t>(rows * out));
    yf = y_copy.data();
  }
  const float* bp = bias != nullptr ? bias_f.data() : nullptr;
  const float* xp = xperm.empty() ? nullptr : xperm.data();
  call.parallel_for(out, kRowGrain, [&](int64_t begin, int64_t end) {
    cpu::linear_4bit(isa, w, xf, xp, ldx, rows, bp, yf, out, begin, end);
  });
  if (yk != FloatKind::kF32) write_floats(yf, rows * out, yk, bytes_of(y));
}

}  // namespace qforge::plugins::bnb
