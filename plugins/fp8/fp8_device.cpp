// GPU dispatch of the fp8 / fbgemm_fp8 compute hooks (see fp8_device.hpp).
#include "fp8_device.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "device_checks.hpp"
#include "device_refusal.hpp"
#include "fbgemm_compute.hpp"
#include "fp8_layout.hpp"
#include "fp8_scales.hpp"
#include "fp8_tensor_io.hpp"

#if QFORGE_FP8_GPU
#include "cuda/fp8_cuda.hpp"
#endif

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

#if QFORGE_FP8_GPU
constexpr const char* kBackend = "CUDA";
constexpr bool kCudaBuild = true;
#else
constexpr const char* kBackend = "none";
constexpr bool kCudaBuild = false;
#endif

// The call's device must be one this build's kernels run on.
void require_served(const sdk::Call& call, const qf_module_info& module, const char* method,
                    const char* hook) {
  require_cuda_served(call, "module '" + module_name(module) + "': " + method + " " + hook, "fp8",
                      kCudaBuild,
                      {"holds only the CPU emulation",
                       "run with --device cpu (and --allow-emulation), or rebuild qforge with the "
                       "CUDA toolkit installed (-DQFORGE_CUDA=ON)"});
}

// Throws the CPU path's refusals before any device work, with the CPU path's messages
// (fp8_compute.cpp's quantize_fp8), so a request fails the same way on every device.
void check_fp8_quantize_request(const Fp8Config& config, const qf_module_info& module,
                                const DLTensor& weight, const Tiling& t) {
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
}

void check_fbgemm_quantize_request(const qf_module_info& module, const DLTensor& weight) {
  if (module.kind != QF_MODULE_LINEAR || weight.ndim != 2 ||
      weight.shape[0] != module.out_features || weight.shape[1] != module.in_features) {
    throw Error(
        QF_CODE_INVALID_ARGUMENT,
        "module '" + module_name(module) + "': not an nn.Linear weight [out_features, in_features]",
        "FbgemmFp8Linear replaces nn.Linear only; expected [" +
            std::to_string(module.out_features) + ", " + std::to_string(module.in_features) + "]",
        "leave the module unquantized (modules_to_not_convert)");
  }
}

#if QFORGE_FP8_GPU

void enter_device(const sdk::Call& call, const qf_module_info& module) {
  check_device_entered(gpu::set_device(call.device().device_id), call, module_name(module));
}

gpu::Float gpu_kind(FloatKind k) {
  return k == FloatKind::kF32 ? gpu::Float::kF32
                              : (k == FloatKind::kF16 ? gpu::Float::kF16 : gpu::Float::kBF16);
}

size_t item_size(FloatKind k) { return k == FloatKind::kF32 ? 4 : 2; }

// The dense dtype dequantize writes: the module's weight dtype when it is F32/F16/BF16, else F32
// (the CPU path's rule).
DLDataType dense_dtype(const qf_module_info& module) {
  const DLDataType d = module.weight_dtype;
  const bool ok = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                                   (d.code == kDLBfloat && d.bits == 16));
  return ok ? d : sdk::make_dtype(kDLFloat, 32);
}

const DLTensor& device_tensor(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': tensor '" + name + "' is missing",
                "an FP8 Linear needs its weight and scales", "pass the module's whole tensor set");
  }
  require_on_cuda_device(call, *t, "module '" + module_name(module) + "': tensor '" + name + "'");
  return *t;
}

// The first non-finite element of tile `tile` of the weight (row-major within the tile, the
// CPU's scan order), read back to the host: an error path only.
struct BadElement {
  int64_t row = -1, col = -1;
  float value = 0.0f;
};

BadElement find_bad_element(const DLTensor& weight, FloatKind kind, const gpu::Grid& g,
                            int64_t tile, void* stream) {
  const size_t item = item_size(kind);
  std::vector<unsigned char> bytes(static_cast<size_t>(g.rows * g.cols) * item);
  check_cuda(gpu::copy_to_host_sync(
                 bytes.data(), static_cast<const unsigned char*>(weight.data) + weight.byte_offset,
                 bytes.size(), stream),
             "reading the weight back for an error report");
  DLTensor host = weight;
  host.device = DLDevice{kDLCPU, 0};
  host.data = bytes.data();
  host.byte_offset = 0;
  host.strides = nullptr;
  const std::vector<float> w = read_floats(host, "weight");
  const int64_t tr = tile / g.tile_cols(), tc = tile % g.tile_cols();
  for (int64_t r = tr * g.bm; r < std::min(g.rows, (tr + 1) * g.bm); ++r) {
    for (int64_t c = tc * g.bn; c < std::min(g.cols, (tc + 1) * g.bn); ++c) {
      const float v = w[static_cast<size_t>(r * g.cols + c)];
      if (!std::isfinite(v)) return {r, c, v};
    }
  }
  return {};
}

std::string nonfinite_text(float v) { return std::isnan(v) ? "NaN" : "Inf"; }

// Shared quantize flow: maxima -> host scales -> codes -> stored inverses (see the header).
// `describe_tile` names a tile in the CPU's error text.
template <typename ScaleFn, typename TileText>
void quantize_on_device(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                        const gpu::Grid& g, DLTensor& codes, DLTensor& scales, ScaleFn scale_of,
                        TileText describe_tile, const char* why) {
  const std::string name = module_name(module);
  require_on_cuda_device(call, weight, "module '" + name + "': weight");
  const FloatKind kind = float_kind(weight.dtype, "module '" + name + "' weight");
  void* stream = call.stream();
  const void* w = static_cast<const unsigned char*>(weight.data) + weight.byte_offset;
  auto* park =
      reinterpret_cast<float*>(static_cast<unsigned char*>(scales.data) + scales.byte_offset);
  const int64_t tiles = g.tiles();
  check_cuda(gpu::tile_amax(w, gpu_kind(kind), g, park, stream), "fp8 quantize (tile maxima)");
  std::vector<float> amax(static_cast<size_t>(tiles));
  check_cuda(gpu::copy_to_host_sync(amax.data(), park, amax.size() * 4, stream),
             "reading the tile maxima back");
  for (int64_t t = 0; t < tiles; ++t) {
    if (!std::isnan(amax[static_cast<size_t>(t)])) continue;
    const BadElement bad = find_bad_element(weight, kind, g, t, stream);
    if (bad.row < 0) {
      throw Error(QF_CODE_INTERNAL, "tile " + std::to_string(t) + " was flagged non-finite",
                  "but no element of it is NaN or Inf on re-reading", "report this bug");
    }
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': weight has a non-finite value (" +
                    nonfinite_text(bad.value) + ") at [" + std::to_string(bad.row) + ", " +
                    std::to_string(bad.col) + "] in " + describe_tile(t),
                why, "fix or re-export the source checkpoint; the weights are corrupt");
  }
  call.throw_if_cancelled();
  std::vector<float> mul(static_cast<size_t>(tiles)), inv(static_cast<size_t>(tiles));
  for (int64_t t = 0; t < tiles; ++t) {
    const auto s = scale_of(amax[static_cast<size_t>(t)]);
    mul[static_cast<size_t>(t)] = s.mul;
    inv[static_cast<size_t>(t)] = s.inv;
  }
  // Stream order keeps the three steps apart: the kernel reads the multipliers before the
  // inverses overwrite them. Pageable copies return once staged, so the vectors may go.
  check_cuda(gpu::copy_to_device(park, mul.data(), mul.size() * 4, stream),
             "writing the quantize multipliers");
  check_cuda(gpu::quantize_tiles(w, gpu_kind(kind), g, park,
                                 static_cast<uint8_t*>(codes.data) + codes.byte_offset, stream),
             "fp8 quantize");
  check_cuda(gpu::copy_to_device(park, inv.data(), inv.size() * 4, stream),
             "writing the stored scales");
}

gpu::Grid fp8_grid(const Tiling& t) {
  gpu::Grid g;
  g.rows = t.rows;
  g.cols = t.cols;
  g.bm = t.per_tensor ? std::max<int64_t>(t.rows, 1) : t.bm;
  g.bn = t.per_tensor ? std::max<int64_t>(t.cols, 1) : t.bn;
  return g;
}

gpu::Grid fbgemm_grid(const qf_module_info& module) {
  gpu::Grid g;
  g.rows = module.out_features;
  g.cols = module.in_features;
  g.bm = 1;
  g.bn = std::max<int64_t>(module.in_features, 1);
  return g;
}

struct LinearIo {
  const void* x = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  gpu::Float xk = gpu::Float::kF32, bk = gpu::Float::kF32, yk = gpu::Float::kF32;
  int64_t rows = 0;
};

LinearIo check_linear_io(const sdk::Call& call, const qf_module_info& module, const DLTensor& x,
                         const DLTensor* bias, DLTensor& y) {
  const std::string name = module_name(module);
  const int64_t in = module.in_features, out = module.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  require_on_cuda_device(call, x, "linear_forward input x");
  require_on_cuda_device(call, y, "linear_forward output y");
  LinearIo io;
  io.xk = gpu_kind(float_kind(x.dtype, "x"));
  io.yk = gpu_kind(float_kind(y.dtype, "y"));
  io.rows = in > 0 ? sdk::numel(x) / in : 0;
  if (sdk::numel(y) != io.rows * out) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(io.rows * out) + " elements",
                "allocate y as [..., out_features]");
  }
  if (bias != nullptr) {
    require_on_cuda_device(call, *bias, "linear_forward bias");
    io.bk = gpu_kind(float_kind(bias->dtype, "bias"));
    if (sdk::numel(*bias) != out) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': bias does not fit",
                  "bias has " + std::to_string(sdk::numel(*bias)) + " elements, expected " +
                      std::to_string(out),
                  "pass the module's [out_features] bias");
    }
    io.bias = static_cast<const unsigned char*>(bias->data) + bias->byte_offset;
  }
  io.x = static_cast<const unsigned char*>(x.data) + x.byte_offset;
  io.y = static_cast<unsigned char*>(y.data) + y.byte_offset;
  return io;
}

// QFORGE_FP8_CUDA_PATH: "native", "emulation", or unset / "auto".
std::string forced_path() {
  const char* v = std::getenv("QFORGE_FP8_CUDA_PATH");
  return v != nullptr ? std::string(v) : std::string();
}

// auto_min_cc: the compute capability from which "auto" takes the native kernel, transformers'
// floor for the method (fp8 8.9, fbgemm_fp8 9.0), so "native" means what validate_environment
// reports; the kernel itself runs from 8.9 and "native" forces it there.
void run_linear(const qf_module_info& module, const gpu::Linear& w, const LinearIo& io,
                int auto_min_cc, void* stream) {
  const std::string forced = forced_path();
  if (!forced.empty() && forced != "auto" && forced != "native" && forced != "emulation") {
    throw Error(QF_CODE_INVALID_ARGUMENT, "QFORGE_FP8_CUDA_PATH is '" + forced + "'",
                "it chooses the CUDA linear kernel: auto, native or emulation",
                "unset it, or set it to one of those");
  }
  std::string why_not = gpu::native_available()
                            ? gpu::native_unsupported(w)
                            : "the device has no FP8 tensor cores usable by this build "
                              "(compute capability < 8.9, or no sm_89+ code compiled in)";
  if (forced == "native" && !why_not.empty()) {
    throw Error(QF_CODE_FAILED_PRECONDITION,
                "module '" + module_name(module) + "': the native FP8 kernel cannot run", why_not,
                "unset QFORGE_FP8_CUDA_PATH (auto falls back to the emulation kernel)");
  }
  const bool native =
      forced == "native" || (forced != "emulation" && gpu::compute_capability() >= auto_min_cc);
  if (native && why_not.empty()) {
    check_cuda(gpu::linear_native(w, io.x, io.xk, io.rows, io.bias, io.bk, io.y, io.yk, stream),
               "fp8 linear_forward (native)");
  } else {
    check_cuda(gpu::linear_emulated(w, io.x, io.xk, io.rows, io.bias, io.bk, io.y, io.yk, stream),
               "fp8 linear_forward (emulation)");
  }
}

#endif  // QFORGE_FP8_GPU

}  // namespace

bool is_device_call(const sdk::Call& call) {
  const int type = call.device().device_type;
  return type != kDLCPU && type != kDLCUDAHost;
}

const char* gpu_backend() noexcept { return kBackend; }

void device_quantize_fp8(const sdk::Call& call, const Fp8Config& config,
                         const qf_module_info& module, const DLTensor& weight,
                         sdk::TensorSink& out) {
  require_served(call, module, "fp8", "quantize");
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  check_fp8_quantize_request(config, module, weight, t);
#if QFORGE_FP8_GPU
  enter_device(call, module);
  const gpu::Grid g = fp8_grid(t);
  DLTensor& codes = out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8),
                                 {t.rows, t.cols}, call.device());
  DLTensor& scales = out.allocate("weight_scale_inv", sdk::make_dtype(kDLFloat, 32),
                                  t.scale_shape(), call.device());
  quantize_on_device(
      call, module, weight, g, codes, scales,
      [&](float amax) { return fp8_tile_scale(amax, config.scale_fmt); },
      [&](int64_t tile) {
        const int64_t tr = tile / g.tile_cols(), tc = tile % g.tile_cols();
        return "tile (" + std::to_string(tr) + ", " + std::to_string(tc) + ") = rows [" +
               std::to_string(tr * g.bm) + ", " +
               std::to_string(std::min(g.rows, (tr + 1) * g.bm)) + "), cols [" +
               std::to_string(tc * g.bn) + ", " +
               std::to_string(std::min(g.cols, (tc + 1) * g.bn)) + ")";
      },
      "an FP8 tile scale is max|w| / 448, which NaN or Inf makes meaningless");
#else
  (void)out;
#endif
}

void device_dequantize_fp8(const sdk::Call& call, const Fp8Config& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           sdk::TensorSink& out) {
  require_served(call, module, "fp8", "dequantize");
#if QFORGE_FP8_GPU
  enter_device(call, module);
  check_tensors(config, module, tensors);  // names, dtypes, shapes (ragged tiles accepted)
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  const DLTensor& q = device_tensor(call, module, tensors, "weight");
  const DLTensor& s = device_tensor(call, module, tensors, "weight_scale_inv");
  const DLDataType dtype = dense_dtype(module);
  DLTensor& dense = out.allocate("weight", dtype, {t.rows, t.cols}, call.device());
  check_cuda(
      gpu::dequantize_tiles(
          static_cast<const uint8_t*>(q.data) + q.byte_offset,
          reinterpret_cast<const float*>(static_cast<const unsigned char*>(s.data) + s.byte_offset),
          fp8_grid(t), gpu_kind(float_kind(dtype, "weight")),
          static_cast<unsigned char*>(dense.data) + dense.byte_offset, call.stream()),
      "fp8 dequantize");
#else
  (void)config, (void)tensors, (void)out;
#endif
}

void device_linear_forward_fp8(const sdk::Call& call, const Fp8Config& config,
                               const qf_module_info& module, const qf_tensor_list& tensors,
                               const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  require_served(call, module, "fp8", "linear_forward");
#if QFORGE_FP8_GPU
  enter_device(call, module);
  check_tensors(config, module, tensors);
  const Tiling t = make_tiling(config, module.out_features, module.in_features);
  const LinearIo io = check_linear_io(call, module, x, bias, y);
  gpu::Linear w;
  const DLTensor& q = device_tensor(call, module, tensors, "weight");
  const DLTensor& s = device_tensor(call, module, tensors, "weight_scale_inv");
  w.codes = static_cast<const uint8_t*>(q.data) + q.byte_offset;
  w.winv =
      reinterpret_cast<const float*>(static_cast<const unsigned char*>(s.data) + s.byte_offset);
  w.grid = fp8_grid(t);
  if (config.activation_scheme == "static") {
    const DLTensor& a = device_tensor(call, module, tensors, "activation_scale");
    w.act = gpu::ActQuant::kStatic;
    w.static_scale =
        reinterpret_cast<const float*>(static_cast<const unsigned char*>(a.data) + a.byte_offset);
  } else {
    w.act = gpu::ActQuant::kDynamicGroup;
    // The CPU's group: the tile width, or the whole row for per-tensor scales.
    w.group = config.weight_block_size ? (*config.weight_block_size)[1] : module.in_features;
    if (w.group <= 0) w.group = 1;
  }
  run_linear(module, w, io, 89, call.stream());
#else
  (void)config, (void)tensors, (void)x, (void)bias, (void)y;
#endif
}

void device_quantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, sdk::TensorSink& out) {
  require_served(call, module, "fbgemm_fp8", "quantize");
  check_fbgemm_quantize_request(module, weight);
#if QFORGE_FP8_GPU
  enter_device(call, module);
  const gpu::Grid g = fbgemm_grid(module);
  DLTensor& codes = out.allocate("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8),
                                 {g.rows, g.cols}, call.device());
  DLTensor& scales =
      out.allocate("weight_scale", sdk::make_dtype(kDLFloat, 32), {g.rows, 1}, call.device());
  quantize_on_device(
      call, module, weight, g, codes, scales, [](float amax) { return fbgemm_row_scale(amax); },
      [](int64_t row) { return "row " + std::to_string(row); },
      "an FP8 row scale is max|w| / 448, which NaN or Inf makes meaningless");
#else
  (void)out;
#endif
}

void device_dequantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out) {
  require_served(call, module, "fbgemm_fp8", "dequantize");
#if QFORGE_FP8_GPU
  enter_device(call, module);
  check_fbgemm_tensors(module, tensors);
  const DLTensor& q = device_tensor(call, module, tensors, "weight");
  const DLTensor& s = device_tensor(call, module, tensors, "weight_scale");
  const DLDataType dtype = dense_dtype(module);
  DLTensor& dense =
      out.allocate("weight", dtype, {module.out_features, module.in_features}, call.device());
  check_cuda(
      gpu::dequantize_tiles(
          static_cast<const uint8_t*>(q.data) + q.byte_offset,
          reinterpret_cast<const float*>(static_cast<const unsigned char*>(s.data) + s.byte_offset),
          fbgemm_grid(module), gpu_kind(float_kind(dtype, "weight")),
          static_cast<unsigned char*>(dense.data) + dense.byte_offset, call.stream()),
      "fbgemm_fp8 dequantize");
#else
  (void)tensors, (void)out;
#endif
}

void device_linear_forward_fbgemm(const sdk::Call& call, const FbgemmFp8Config& config,
                                  const qf_module_info& module, const qf_tensor_list& tensors,
                                  const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  require_served(call, module, "fbgemm_fp8", "linear_forward");
#if QFORGE_FP8_GPU
  enter_device(call, module);
  check_fbgemm_tensors(module, tensors);
  const LinearIo io = check_linear_io(call, module, x, bias, y);
  const DLTensor& q = device_tensor(call, module, tensors, "weight");
  const DLTensor& s = device_tensor(call, module, tensors, "weight_scale");
  gpu::Linear w;
  w.codes = static_cast<const uint8_t*>(q.data) + q.byte_offset;
  w.winv =
      reinterpret_cast<const float*>(static_cast<const unsigned char*>(s.data) + s.byte_offset);
  w.grid = fbgemm_grid(module);
  w.act = gpu::ActQuant::kRowCapped;
  w.ub = static_cast<float>(config.activation_scale_ub);
  run_linear(module, w, io, 90, call.stream());
#else
  (void)config, (void)tensors, (void)x, (void)bias, (void)y;
#endif
}

}  // namespace qforge::plugins::fp8
