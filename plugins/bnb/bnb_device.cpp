// GPU dispatch of the bnb compute hooks (see bnb_device.hpp).
#include "bnb_device.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bnb_layout.hpp"
#include "bnb_tensor_io.hpp"
#include "device_checks.hpp"
#include "device_refusal.hpp"

#if QFORGE_BNB_GPU
#include <nlohmann/json.hpp>

#include "cpu/codebook.hpp"
#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "cuda/bnb_cuda.hpp"
#endif

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

std::string name_of(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "<unnamed>";
}

#if QFORGE_BNB_GPU_HIP
constexpr bool kServes(int type) { return type == kDLROCM; }
constexpr const char* kBackend = "HIP";
#elif QFORGE_BNB_GPU
constexpr bool kServes(int type) { return type == kDLCUDA || type == kDLCUDAManaged; }
constexpr const char* kBackend = "CUDA";
#else
constexpr const char* kBackend = "none";
#endif

// The call's device must be one this build's kernels run on.
void require_served(const sdk::Call& call, const qf_module_info& module, const char* hook) {
#if QFORGE_BNB_GPU
  if (kServes(call.device().device_type)) return;
  throw Error(QF_CODE_FAILED_PRECONDITION,
              "module '" + name_of(module) + "': bnb " + hook + " cannot run on " +
                  device_text(call.device()),
              std::string("this bnb plugin was built with ") + kBackend +
                  " kernels, which serve only " +
                  (std::string(kBackend) == "HIP" ? "rocm" : "cuda") + " devices",
              "run with --device cpu, or use a bnb build for this GPU vendor");
#else
  throw Error(QF_CODE_FAILED_PRECONDITION,
              "module '" + name_of(module) + "': bnb " + hook + " on " +
                  device_text(call.device()) + " is not available in this build",
              "this bnb plugin was compiled without a GPU compiler (QFORGE_HAVE_CUDA and "
              "QFORGE_HAVE_HIP were OFF), so it holds only CPU kernels",
              "run with --device cpu, or rebuild qforge with the CUDA toolkit (nvcc) or ROCm "
              "(hipcc) installed (-DQFORGE_CUDA=ON / -DQFORGE_HIP=ON)");
#endif
}

#if QFORGE_BNB_GPU

void check_gpu(const std::string& err, const std::string& what) {
  if (err.empty()) return;
  throw Error(QF_CODE_DEVICE_ERROR, what, err,
              "check the GPU (nvidia-smi / rocm-smi) and that the inputs are valid device "
              "buffers of the call's device");
}

void enter_device(const sdk::Call& call, const qf_module_info& module) {
  check_device_entered(gpu::set_device(call.device().device_id), call, name_of(module));
}

bool host_readable(const DLTensor& t) {
  return t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost ||
         t.device.device_type == kDLROCMHost;
}

void require_on_device(const sdk::Call& call, const DLTensor& t, const std::string& what) {
  const DLDevice d = call.device();
  if (!kServes(t.device.device_type) || t.device.device_id != d.device_id) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not on the call's device",
                "it is on " + device_text(t.device) + ", the call runs on " + device_text(d),
                "move the tensor to " + device_text(d) + " before the call");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "its data pointer is NULL",
                "pass a tensor with a buffer");
  }
}

void require_contiguous(const DLTensor& t, const std::string& what) {
  if (!sdk::is_contiguous(t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not contiguous",
                "the GPU kernels read it as a flat array", "pass a contiguous tensor");
  }
}

unsigned char* bytes_of(DLTensor& t) { return static_cast<unsigned char*>(t.data) + t.byte_offset; }
const unsigned char* bytes_of(const DLTensor& t) {
  return static_cast<const unsigned char*>(t.data) + t.byte_offset;
}
int64_t nbytes(const DLTensor& t) {
  return sdk::numel(t) * ((t.dtype.bits * t.dtype.lanes + 7) / 8);
}

gpu::Float gpu_kind(FloatKind k) {
  return k == FloatKind::kF32 ? gpu::Float::kF32
                              : (k == FloatKind::kF16 ? gpu::Float::kF16 : gpu::Float::kBF16);
}

gpu::Matrix gpu_matrix(const DLTensor& weight, FloatKind kind, bool transpose) {
  const FloatMatrix m = matrix_view(weight, kind, transpose);
  gpu::Matrix g;
  g.data = m.base;
  g.kind = gpu_kind(kind);
  g.rows = m.rows;
  g.cols = m.cols;
  g.row_stride = m.row_stride;
  g.col_stride = m.col_stride;
  return g;
}

void check_weight(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight) {
  require_on_device(call, weight, "module '" + name_of(module) + "': weight");
  const bool conv1d = module.kind == QF_MODULE_CONV1D;
  const int64_t d0 = conv1d ? module.in_features : module.out_features;
  const int64_t d1 = conv1d ? module.out_features : module.in_features;
  if (weight.ndim != 2 || weight.shape[0] != d0 || weight.shape[1] != d1) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name_of(module) + "': weight shape does not match the module",
                "expected [" + std::to_string(d0) + ", " + std::to_string(d1) + "]" +
                    (conv1d ? " (Conv1D stores [in, out])" : " ([out, in])"),
                "fix the checkpoint or the architecture map");
  }
}

// Reads one element of the weight view to the host (error reports only: one sync each).
float read_element(const gpu::Matrix& m, int64_t e, void* stream) {
  const int64_t r = e / m.cols, c = e % m.cols;
  const int64_t size = m.kind == gpu::Float::kF32 ? 4 : 2;
  const auto* p =
      static_cast<const unsigned char*>(m.data) + (r * m.row_stride + c * m.col_stride) * size;
  uint32_t bits = 0;
  check_gpu(gpu::copy_to_host_sync(&bits, p, static_cast<size_t>(size), stream),
            "reading a weight element for an error report");
  if (m.kind == gpu::Float::kF32) return cpu::float_of(bits);
  return m.kind == gpu::Float::kF16 ? cpu::f16_to_f32(static_cast<uint16_t>(bits))
                                    : cpu::bf16_to_f32(static_cast<uint16_t>(bits));
}

[[noreturn]] void throw_bad_element(const qf_module_info& module, int64_t e, float v,
                                    int64_t block) {
  const int64_t row = e / module.in_features, col = e % module.in_features;
  throw Error(QF_CODE_INVALID_ARGUMENT,
              "module '" + name_of(module) + "': weight holds " + (std::isnan(v) ? "NaN" : "Inf") +
                  (block >= 0 ? " at block " + std::to_string(block) : std::string()) +
                  ", element " + std::to_string(e),
              "element " + std::to_string(e) + " of the flattened [out, in] weight (row " +
                  std::to_string(row) + ", column " + std::to_string(col) + ") is " +
                  (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) +
                  "; absmax scaling needs finite weights",
              "fix the checkpoint's weights, or skip the module (llm_int8_skip_modules)");
}

// ------------------------------------------------------------------ 4-bit

void quantize_4bit_device(const sdk::Call& call, const BnbConfig& config,
                          const qf_module_info& module, const DLTensor& weight,
                          sdk::TensorSink& out) {
  const std::string name = name_of(module);
  check_weight(call, module, weight);
  const FloatKind kind = float_kind(weight.dtype, "module '" + name + "': weight",
                                    "cast the weight to float16, bfloat16 or float32");
  const int64_t n = weight_numel(module);
  const int64_t blocks = (n + kBlocksize - 1) / kBlocksize;
  const gpu::Code4 type = config.bnb_4bit_quant_type == "nf4" ? gpu::Code4::kNf4 : gpu::Code4::kFp4;
  const bool nested = config.bnb_4bit_use_double_quant;
  const gpu::Matrix source = gpu_matrix(weight, kind, module.kind == QF_MODULE_CONV1D);
  void* stream = call.stream();

  const std::vector<TensorSpec> specs = describe_4bit(config, module);
  std::vector<DLTensor*> outs;
  for (const auto& s : specs)
    outs.push_back(&out.allocate(s.name, s.dtype, s.shape, call.device()));
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
  auto* packed = reinterpret_cast<uint8_t*>(bytes_of(packed_t));
  DLTensor& code_t = output("weight.quant_map");
  std::vector<float> absmax;  // host copy: double quantization only
  int64_t bad_block = -1;
  if (!nested) {
    // The first non-finite block's index comes back through quant_map's buffer (written with
    // the codebook afterwards): one 8-byte read instead of all of absmax.
    auto* flag = reinterpret_cast<unsigned long long*>(bytes_of(code_t));
    check_gpu(gpu::fill_bytes(flag, 0xff, sizeof *flag, stream), "4-bit quantize");
    check_gpu(gpu::quantize_4bit(type, source, packed,
                                 reinterpret_cast<float*>(bytes_of(output("weight.absmax"))), flag,
                                 stream),
              "4-bit quantize");
    unsigned long long first = 0;
    check_gpu(gpu::copy_to_host_sync(&first, flag, sizeof first, stream),
              "reading back the NaN flag");
    if (first != ~0ull) bad_block = static_cast<int64_t>(first);
  } else {
    // Park the float absmax in an output the codes overwrite later (no device scratch).
    DLTensor& park = nbytes(packed_t) >= blocks * 4 ? packed_t : code_t;
    if (nbytes(park) < blocks * 4) {
      throw Error(QF_CODE_INTERNAL, "no output buffer can hold the float absmax",
                  std::to_string(blocks) + " blocks", "report this bug");
    }
    auto* parked = reinterpret_cast<float*>(bytes_of(park));
    check_gpu(gpu::quantize_4bit(type, source, nullptr, parked, nullptr, stream), "4-bit absmax");
    absmax.resize(static_cast<size_t>(blocks));
    check_gpu(gpu::copy_to_host_sync(absmax.data(), parked, absmax.size() * 4, stream),
              "reading absmax back");
    for (int64_t b = 0; b < blocks && bad_block < 0; ++b) {
      if (std::isnan(absmax[static_cast<size_t>(b)])) bad_block = b;
    }
  }
  if (bad_block >= 0) {
    for (int64_t e = bad_block * kBlocksize; e < std::min(n, (bad_block + 1) * kBlocksize); ++e) {
      const float v = read_element(source, e, stream);
      if (!std::isfinite(v)) throw_bad_element(module, e, v, bad_block);
    }
    throw Error(QF_CODE_INTERNAL, "block " + std::to_string(bad_block) + " was flagged non-finite",
                "but no element of it is NaN or Inf on re-reading", "report this bug");
  }

  QuantStateFields fields;
  fields.quant_type = config.bnb_4bit_quant_type;
  fields.dtype = torch_float_name(module.weight_dtype, "module '" + name + "'");
  fields.out_features = module.out_features;
  fields.in_features = module.in_features;
  std::vector<uint8_t> codes;
  std::vector<float> nested_values;
  if (nested) {
    codes.resize(static_cast<size_t>(blocks));
    nested_values.resize(static_cast<size_t>((blocks + kNestedBlocksize - 1) / kNestedBlocksize));
    fields.nested_offset =
        cpu::double_quantize(absmax.data(), blocks, codes.data(), nested_values.data());
    check_gpu(gpu::quantize_4bit(type, source, packed, nullptr, nullptr, stream), "4-bit quantize");
    check_gpu(
        gpu::copy_to_device(bytes_of(output("weight.absmax")), codes.data(), codes.size(), stream),
        "writing absmax codes");
    check_gpu(gpu::copy_to_device(bytes_of(output("weight.nested_absmax")), nested_values.data(),
                                  nested_values.size() * 4, stream),
              "writing nested_absmax");
    check_gpu(gpu::copy_to_device(bytes_of(output("weight.nested_quant_map")),
                                  cpu::dynamic_map().data(), sizeof(float) * 256, stream),
              "writing nested_quant_map");
  }
  const auto& book =
      cpu::codebook(type == gpu::Code4::kNf4 ? cpu::QuantType::kNf4 : cpu::QuantType::kFp4);
  check_gpu(gpu::copy_to_device(bytes_of(code_t), book.data(), sizeof(float) * 16, stream),
            "writing quant_map");
  const std::string blob = quant_state_json(fields);
  DLTensor& blob_t = output("weight.quant_state.bitsandbytes__" + config.bnb_4bit_quant_type);
  if (nbytes(blob_t) != static_cast<int64_t>(blob.size())) {
    throw Error(QF_CODE_INTERNAL, "quant_state blob length changed after describe_quantized",
                "described " + std::to_string(nbytes(blob_t)) + " bytes, wrote " +
                    std::to_string(blob.size()),
                "report to the qforge developers (Note [nested_offset width])");
  }
  // Copies from pageable memory return once staged: `blob` may go out of scope now.
  check_gpu(gpu::copy_to_device(bytes_of(blob_t), blob.data(), blob.size(), stream),
            "writing the quant_state blob");
}

const DLTensor& device_tensor(const sdk::Call& call, const qf_tensor_list& tensors,
                              const std::string& name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name.c_str());
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "missing tensor '" + name + "'",
                "a bitsandbytes module needs it", "pass the module's complete tensor set");
  }
  require_on_device(call, *t, "tensor '" + name + "'");
  require_contiguous(*t, "tensor '" + name + "'");
  return *t;
}

gpu::Weight4 load_4bit_device(const sdk::Call& call, const BnbConfig& config,
                              const qf_module_info& module, const qf_tensor_list& tensors) {
  check_4bit(config, module, tensors);  // names, dtypes, shapes
  std::string blob_name;
  for (int64_t i = 0; i < tensors.count; ++i) {
    const char* n = tensors.items[i].name;
    if (n != nullptr && std::strstr(n, "quant_state.bitsandbytes__") != nullptr) blob_name = n;
  }
  const DLTensor* blob = sdk::find_tensor(&tensors, blob_name.c_str());
  std::string text(static_cast<size_t>(sdk::numel(*blob)), '\0');
  if (host_readable(*blob)) {
    std::memcpy(&text[0], bytes_of(*blob), text.size());
  } else {
    require_on_device(call, *blob, "tensor '" + blob_name + "'");
    check_gpu(gpu::copy_to_host_sync(&text[0], bytes_of(*blob), text.size(), call.stream()),
              "reading the quant_state blob");
  }
  const nlohmann::json state = nlohmann::json::parse(text, nullptr, false);
  const std::string fix = "re-save the checkpoint with qforge or bitsandbytes >= 0.41.3";
  if (state.is_discarded() || !state.is_object() || !state.contains("blocksize") ||
      !state["blocksize"].is_number_integer() || !state.contains("shape") ||
      !state["shape"].is_array() || state["shape"].size() != 2) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' is not a quant_state blob",
                "expected JSON with quant_type, blocksize, dtype and shape, got '" +
                    text.substr(0, 80) + "'",
                fix);
  }
  const int64_t blocksize = state["blocksize"].get<int64_t>();
  const auto shape = state["shape"].get<std::vector<int64_t>>();
  const int64_t n = weight_numel(module);
  const DLTensor& absmax = device_tensor(call, tensors, "weight.absmax");
  if (shape[0] != module.out_features || shape[1] != module.in_features || blocksize <= 0 ||
      sdk::numel(absmax) != (n + blocksize - 1) / blocksize) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name_of(module) + "': quant_state does not fit the module",
                "the blob says shape [" + std::to_string(shape[0]) + ", " +
                    std::to_string(shape[1]) + "], blocksize " + std::to_string(blocksize) +
                    "; the module is [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "] with " +
                    std::to_string(sdk::numel(absmax)) + " absmax values",
                fix);
  }
  gpu::Weight4 w;
  w.packed = bytes_of(device_tensor(call, tensors, "weight"));
  w.code =
      reinterpret_cast<const float*>(bytes_of(device_tensor(call, tensors, "weight.quant_map")));
  w.out = module.out_features;
  w.in = module.in_features;
  w.blocksize = blocksize;
  if (absmax.dtype.code == kDLFloat) {
    w.absmax.values = reinterpret_cast<const float*>(bytes_of(absmax));
    return w;
  }
  if (!state.contains("nested_offset") || !state["nested_offset"].is_number()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' lacks nested_offset",
                "absmax is stored as 8-bit codes (double quantization), which needs the offset",
                fix);
  }
  const DLTensor& nested = device_tensor(call, tensors, "weight.nested_absmax");
  w.absmax.codes = bytes_of(absmax);
  w.absmax.nested = reinterpret_cast<const float*>(bytes_of(nested));
  w.absmax.nested_map = reinterpret_cast<const float*>(
      bytes_of(device_tensor(call, tensors, "weight.nested_quant_map")));
  w.absmax.offset = static_cast<float>(state["nested_offset"].get<double>());
  w.absmax.nested_blocksize = state.value("nested_blocksize", kNestedBlocksize);
  if (w.absmax.nested_blocksize <= 0 ||
      nested.shape[0] * w.absmax.nested_blocksize < sdk::numel(absmax)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "tensor '" + blob_name + "' has a bad nested_blocksize",
                "nested_blocksize " + std::to_string(w.absmax.nested_blocksize) + " with " +
                    std::to_string(nested.shape[0]) + " nested_absmax values cannot cover " +
                    std::to_string(sdk::numel(absmax)) + " absmax codes",
                fix);
  }
  return w;
}

// ------------------------------------------------------------------ 8-bit

struct Weight8 {
  const int8_t* cb = nullptr;
  const float* scb = nullptr;
};

Weight8 load_8bit_device(const sdk::Call& call, const qf_module_info& module,
                         const qf_tensor_list& tensors) {
  // Names, dtypes, shapes. weight_format's value is checked only when it is in host memory:
  // reading it from the device would cost a stream synchronisation per call.
  check_8bit(module, tensors);
  Weight8 w;
  w.cb = reinterpret_cast<const int8_t*>(bytes_of(device_tensor(call, tensors, "weight")));
  w.scb = reinterpret_cast<const float*>(bytes_of(device_tensor(call, tensors, "SCB")));
  return w;
}

void quantize_8bit_device(const sdk::Call& call, const qf_module_info& module,
                          const DLTensor& weight, sdk::TensorSink& out) {
  const std::string name = name_of(module);
  check_weight(call, module, weight);
  const FloatKind kind = float_kind(weight.dtype, "module '" + name + "': weight",
                                    "cast the weight to float16, bfloat16 or float32");
  const gpu::Matrix source = gpu_matrix(weight, kind, module.kind == QF_MODULE_CONV1D);
  void* stream = call.stream();
  const std::vector<TensorSpec> specs = describe_8bit(module);
  DLTensor* cb = nullptr;
  DLTensor* scb = nullptr;
  for (const auto& s : specs) {
    DLTensor& t = out.allocate(s.name, s.dtype, s.shape, call.device());
    if (s.name == "weight") cb = &t;
    if (s.name == "SCB") scb = &t;
    if (s.name == "weight_format") {
      const uint8_t row_format = 0;  // "row"; the sink zero-fills, this states it
      check_gpu(gpu::copy_to_device(bytes_of(t), &row_format, 1, stream), "writing weight_format");
    }
  }
  if (cb == nullptr || scb == nullptr) {
    throw Error(QF_CODE_INTERNAL, "describe_8bit lists no weight or SCB", "", "report this bug");
  }
  auto* scb_d = reinterpret_cast<float*>(bytes_of(*scb));
  check_gpu(gpu::quantize_8bit(source, reinterpret_cast<int8_t*>(bytes_of(*cb)), scb_d, stream),
            "8-bit quantize");
  std::vector<float> scb_h(static_cast<size_t>(module.out_features));
  check_gpu(gpu::copy_to_host_sync(scb_h.data(), scb_d, scb_h.size() * 4, stream),
            "reading SCB back");
  for (int64_t r = 0; r < module.out_features; ++r) {
    if (!std::isnan(scb_h[static_cast<size_t>(r)])) continue;
    for (int64_t c = 0; c < module.in_features; ++c) {
      const float v = read_element(source, r * module.in_features + c, stream);
      if (!std::isfinite(v)) throw_bad_element(module, r * module.in_features + c, v, -1);
    }
    throw Error(QF_CODE_INTERNAL, "row " + std::to_string(r) + " was flagged non-finite",
                "but no element of it is NaN or Inf on re-reading", "report this bug");
  }
}

// ------------------------------------------------------------------ shared

void check_linear_io(const sdk::Call& call, const qf_module_info& module, const DLTensor& x,
                     const DLTensor* bias, const DLTensor& y, FloatKind& xk, FloatKind& bk) {
  const std::string name = name_of(module);
  const std::string fix = "pass x and y as F32, F16 or BF16 of the same dtype";
  require_on_device(call, x, "linear_forward input x");
  require_on_device(call, y, "linear_forward output y");
  xk = float_kind(x.dtype, "linear_forward input x", fix);
  const FloatKind yk = float_kind(y.dtype, "linear_forward output y", fix);
  const int64_t in = module.in_features, out = module.out_features;
  if (xk != yk || x.ndim < 1 || y.ndim != x.ndim || x.shape[x.ndim - 1] != in ||
      y.shape[y.ndim - 1] != out || !sdk::is_contiguous(x) || !sdk::is_contiguous(y) ||
      sdk::numel(x) / in != sdk::numel(y) / out) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': linear_forward input/output do not fit",
                std::string("x ") + sdk::dtype_name(x.dtype) + ", y " + sdk::dtype_name(y.dtype) +
                    "; the module is [" + std::to_string(out) + ", " + std::to_string(in) +
                    "]; both must be contiguous, same dtype, same leading dims",
                "allocate y as [..., out_features] in x's dtype");
  }
  bk = FloatKind::kF32;
  if (bias != nullptr) {
    require_on_device(call, *bias, "linear_forward bias");
    bk = float_kind(bias->dtype, "linear_forward bias", fix);
    if (sdk::numel(*bias) != out || !sdk::is_contiguous(*bias)) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': bias does not fit",
                  "bias has " + std::to_string(sdk::numel(*bias)) + " elements, expected " +
                      std::to_string(out) + " (contiguous)",
                  "pass the module's [out_features] bias");
    }
  }
}

#endif  // QFORGE_BNB_GPU

}  // namespace

bool is_device_call(const sdk::Call& call) {
  const int type = call.device().device_type;
  return type != kDLCPU && type != kDLCUDAHost && type != kDLROCMHost;
}

const char* gpu_backend() noexcept { return kBackend; }

void device_quantize(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                     const qf_module_info& module, const DLTensor& weight, sdk::TensorSink& out) {
  require_served(call, module, "quantize");
#if QFORGE_BNB_GPU
  enter_device(call, module);
  if (bits == BnbBits::k4) {
    quantize_4bit_device(call, config, module, weight, out);
  } else {
    quantize_8bit_device(call, module, weight, out);
  }
#else
  (void)config, (void)bits, (void)weight, (void)out;
#endif
}

void device_dequantize(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                       const qf_module_info& module, const qf_tensor_list& tensors,
                       sdk::TensorSink& out) {
  require_served(call, module, "dequantize");
#if QFORGE_BNB_GPU
  enter_device(call, module);
  const std::string name = name_of(module);
  const FloatKind kind = float_kind(module.weight_dtype, "module '" + name + "': weight_dtype",
                                    "dequantize to float16, bfloat16 or float32");
  const bool conv1d = module.kind == QF_MODULE_CONV1D;
  const int64_t rows = module.out_features, cols = module.in_features;
  if (bits == BnbBits::k4) {
    const gpu::Weight4 w = load_4bit_device(call, config, module, tensors);
    DLTensor& dense =
        out.allocate("weight", module.weight_dtype,
                     conv1d ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols},
                     call.device());
    check_gpu(gpu::dequantize_4bit(w, gpu_kind(kind), conv1d, bytes_of(dense), call.stream()),
              "4-bit dequantize");
  } else {
    const Weight8 w = load_8bit_device(call, module, tensors);
    DLTensor& dense =
        out.allocate("weight", module.weight_dtype,
                     conv1d ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols},
                     call.device());
    check_gpu(gpu::dequantize_8bit(w.cb, w.scb, rows, cols, gpu_kind(kind), conv1d, bytes_of(dense),
                                   call.stream()),
              "8-bit dequantize");
  }
#else
  (void)config, (void)bits, (void)tensors, (void)out;
#endif
}

void device_linear_forward(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  require_served(call, module, "linear_forward");
#if QFORGE_BNB_GPU
  enter_device(call, module);
  FloatKind xk = FloatKind::kF32, bk = FloatKind::kF32;
  check_linear_io(call, module, x, bias, y, xk, bk);
  const int64_t rows = sdk::numel(x) / module.in_features;
  const void* bias_p = bias != nullptr ? bytes_of(*bias) : nullptr;
  if (bits == BnbBits::k4) {
    const gpu::Weight4 w = load_4bit_device(call, config, module, tensors);
    check_gpu(gpu::linear_4bit(w, bytes_of(x), gpu_kind(xk), rows, bias_p, gpu_kind(bk),
                               bytes_of(y), call.stream()),
              "4-bit linear_forward");
  } else {
    const Weight8 w = load_8bit_device(call, module, tensors);
    check_gpu(gpu::linear_8bit(w.cb, w.scb, module.out_features, module.in_features, bytes_of(x),
                               gpu_kind(xk), rows, static_cast<float>(config.llm_int8_threshold),
                               bias_p, gpu_kind(bk), bytes_of(y), call.stream()),
              "8-bit linear_forward");
  }
#else
  (void)config, (void)bits, (void)tensors, (void)x, (void)bias, (void)y;
#endif
}

}  // namespace qforge::plugins::bnb
