// GPU dispatch of the hqq compute hooks (see hqq_device.hpp).
#include "hqq_device.hpp"

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "device_checks.hpp"
#include "device_refusal.hpp"
#include "hqq_layout.hpp"
#include "hqq_tensor_io.hpp"

#if QFORGE_HQQ_GPU
#include "cuda/hqq_cuda.hpp"
#endif

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

#if QFORGE_HQQ_GPU
constexpr const char* kBackend = "CUDA";
constexpr bool kCudaBuild = true;
#else
constexpr const char* kBackend = "none";
constexpr bool kCudaBuild = false;
#endif

// The call's device must be one this build's kernels run on.
void require_served(const sdk::Call& call, const qf_module_info& module, const char* hook) {
  require_cuda_served(call, "module '" + module_name(module) + "': hqq " + hook, "hqq", kCudaBuild);
}

#if QFORGE_HQQ_GPU

void enter_device(const sdk::Call& call, const qf_module_info& module) {
  check_device_entered(gpu::set_device(call.device().device_id), call, module_name(module));
}

bool host_readable(const DLTensor& t) {
  return t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost;
}

gpu::Float gpu_kind(FloatKind k) {
  return k == FloatKind::kF32 ? gpu::Float::kF32
                              : (k == FloatKind::kF16 ? gpu::Float::kF16 : gpu::Float::kBF16);
}

// The meta fields check_tensors reads; scalars, a short string or a [2] size.
bool is_meta_field(const char* name) {
  for (const char* m : {"shape", "nbits", "group_size", "axis", "packing", "view_as_float"}) {
    if (std::strcmp(name, m) == 0) return true;
  }
  return false;
}
constexpr int64_t kMaxMetaBytes = 256;

// The module's tensor list with every device-resident meta field replaced by a host copy (one
// stream sync for all of them), so the CPU's check_tensors decides the geometry and its
// messages. W_q, scale and zero stay where they are: only their dtypes and shapes are read.
class HostMeta {
 public:
  HostMeta(const sdk::Call& call, const qf_module_info& module, const qf_tensor_list& tensors) {
    const auto n = static_cast<size_t>(tensors.count > 0 ? tensors.count : 0);
    items_.reserve(n);
    views_.reserve(n);  // items_ point into views_: no reallocation
    bytes_.reserve(n);
    bool pending = false;
    for (size_t i = 0; i < n; ++i) {
      const qf_named_tensor item = tensors.items[i];
      if (item.name == nullptr || item.tensor == nullptr || !is_meta_field(item.name) ||
          host_readable(*item.tensor)) {
        items_.push_back(item);
        continue;
      }
      const DLTensor& t = *item.tensor;
      const std::string what = "module '" + module_name(module) + "': tensor '" + item.name + "'";
      require_on_cuda_device(call, t, what);
      const int64_t size = sdk::numel(t) * ((t.dtype.bits * t.dtype.lanes + 7) / 8);
      if (size > kMaxMetaBytes) {
        throw Error(QF_CODE_INVALID_ARGUMENT, what + " is " + std::to_string(size) + " bytes",
                    "hqq's meta fields are scalars, a short string or a [2] size",
                    "check the checkpoint's tensors");
      }
      bytes_.emplace_back(static_cast<size_t>(size));
      DLTensor view = t;
      view.device = DLDevice{kDLCPU, 0};
      view.data = bytes_.back().data();
      view.byte_offset = 0;
      views_.push_back(view);
      items_.push_back(qf_named_tensor{item.name, &views_.back()});
      if (size > 0) {
        check_cuda(gpu::copy_to_host_async(bytes_.back().data(), bytes_of(t),
                                           static_cast<size_t>(size), call.stream()),
                   what + ": reading it back");
        pending = true;
      }
    }
    if (pending) check_cuda(gpu::synchronize(call.stream()), "reading the hqq meta fields");
    list_ = qf_tensor_list{sizeof(qf_tensor_list), QF_ABI_VERSION,
                           static_cast<int64_t>(items_.size()), items_.data()};
  }
  const qf_tensor_list& list() const { return list_; }

 private:
  std::vector<qf_named_tensor> items_;
  std::vector<DLTensor> views_;
  std::vector<std::vector<unsigned char>> bytes_;
  qf_tensor_list list_{};
};

std::string nbits_text(double nbits) {
  std::ostringstream s;
  s << nbits;
  return s.str();
}

// The layouts the kernels serve: axis 1, 4bit_u8 or 2bit_u8.
void require_kernel(const sdk::Call& call, const qf_module_info& module, const Geometry& g,
                    const char* hook) {
  if (g.axis == 1 && (g.packing == "4bit_u8" || g.packing == "2bit_u8")) return;
  throw Error(QF_CODE_UNIMPLEMENTED,
              "module '" + module_name(module) + "': hqq " + hook + " on " +
                  device_text(call.device()) + " has no kernel for nbits " + nbits_text(g.nbits) +
                  ", axis " + std::to_string(g.axis) + " (" + g.packing + ")",
              "this plugin's CUDA kernels cover axis 1 with 4bit_u8 or 2bit_u8 packing (nbits 4, "
              "2, 1.58), hqq's usual GPU layouts",
              "run with --device cpu (every layout works there), or quantize with nbits 4 or 2 "
              "and axis 1");
}

gpu::Packed packed_of(const sdk::Call& call, const qf_module_info& module,
                      const qf_tensor_list& tensors, const Geometry& g) {
  const auto on_device = [&](const char* name) -> const DLTensor& {
    const DLTensor& t = *sdk::find_tensor(&tensors, name);  // check_tensors found it
    require_on_cuda_device(call, t, "module '" + module_name(module) + "': tensor '" + name + "'");
    return t;
  };
  const DLTensor& wq = on_device("W_q");
  const DLTensor& st = on_device("scale");
  const DLTensor& zt = on_device("zero");
  gpu::Packed p;
  p.wq = bytes_of(wq);
  p.bits = g.packing == "4bit_u8" ? 4 : 2;
  p.out = g.out_features;
  p.in = g.in_features;
  p.group = g.group;
  p.scale = bytes_of(st);
  p.scale_kind = gpu_kind(float_kind(st.dtype, "scale"));
  p.zero = bytes_of(zt);
  p.zero_kind = gpu_kind(float_kind(zt.dtype, "zero"));
  return p;
}

#endif  // QFORGE_HQQ_GPU

}  // namespace

bool is_device_call(const sdk::Call& call) {
  const int type = call.device().device_type;
  return type != kDLCPU && type != kDLCUDAHost;
}

const char* gpu_backend() noexcept { return kBackend; }

void device_quantize_hqq(const sdk::Call& call, const qf_module_info& module) {
  require_served(call, module, "quantize");
#if QFORGE_HQQ_GPU
  enter_device(call, module);
  throw Error(QF_CODE_UNIMPLEMENTED,
              "module '" + module_name(module) + "': hqq quantize on " +
                  device_text(call.device()) + " is not available",
              "hqq's proximal optimizer runs on the CPU only in this plugin; its CUDA kernels "
              "cover dequantize and linear_forward",
              "quantize with --device cpu; the quantized layers then run on the GPU");
#endif
}

void device_dequantize_hqq(const sdk::Call& call, const qf_module_info& module,
                           const qf_tensor_list& tensors, sdk::TensorSink& out) {
  require_served(call, module, "dequantize");
#if QFORGE_HQQ_GPU
  enter_device(call, module);
  const HostMeta meta(call, module, tensors);
  const Geometry g = check_tensors(module, meta.list());
  require_kernel(call, module, g, "dequantize");
  const gpu::Packed w = packed_of(call, module, tensors, g);
  // The CPU path's output: the module's dtype (F32 for anything else), shape [out, in].
  const FloatKind kind = compute_kind(module);
  DLTensor& dense =
      out.allocate("weight", dtype_of(kind), {g.out_features, g.in_features}, call.device());
  check_cuda(gpu::dequantize(w, gpu_kind(kind), bytes_of(dense), call.stream()), "hqq dequantize");
#else
  (void)tensors, (void)out;
#endif
}

void device_linear_forward_hqq(const sdk::Call& call, const qf_module_info& module,
                               const qf_tensor_list& tensors, const DLTensor& x,
                               const DLTensor* bias, DLTensor& y) {
  require_served(call, module, "linear_forward");
#if QFORGE_HQQ_GPU
  enter_device(call, module);
  const HostMeta meta(call, module, tensors);
  const Geometry g = check_tensors(module, meta.list());
  require_kernel(call, module, g, "linear_forward");
  const gpu::Packed w = packed_of(call, module, tensors, g);
  const std::string name = module_name(module);
  const int64_t in = g.in_features, out_f = g.out_features;
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  require_on_cuda_device(call, x, "linear_forward input x");
  require_on_cuda_device(call, y, "linear_forward output y");
  const FloatKind xk = float_kind(x.dtype, "x");
  const FloatKind yk = float_kind(y.dtype, "y");
  const int64_t tokens = in > 0 ? sdk::numel(x) / in : 0;
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  const void* b = nullptr;
  FloatKind bk = FloatKind::kF32;
  if (bias != nullptr) {
    require_on_cuda_device(call, *bias, "linear_forward bias");
    bk = float_kind(bias->dtype, "bias");
    if (sdk::numel(*bias) != out_f) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': bias does not fit",
                  "bias has " + std::to_string(sdk::numel(*bias)) + " elements, expected " +
                      std::to_string(out_f),
                  "pass the module's [out_features] bias");
    }
    b = bytes_of(*bias);
  }
  check_cuda(gpu::linear(w, bytes_of(x), gpu_kind(xk), tokens, b, gpu_kind(bk), bytes_of(y),
                         gpu_kind(yk), call.stream()),
             "hqq linear_forward");
#else
  (void)tensors, (void)x, (void)bias, (void)y;
#endif
}

}  // namespace qforge::plugins::hqq
