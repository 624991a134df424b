// One layer of a packed-integer plugin (gptq, awq): quantized by the plugin's CPU path, then
// dequantized and run forward on both the CPU and the GPU. The two plugins' checks differ only in
// their configs and tensors, so the comparison and the common refusals live here once.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness_util.hpp"
#include "host_shim.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

using Tensors = std::vector<std::unique_ptr<OwnedTensor>>;

// Copies of `ts`, on the GPU or in host memory.
Tensors copies(const Tensors& ts, bool on_gpu);

class PackedCase {
 public:
  // `method` names the plugin's method and starts every check's name; `prepare` (optional)
  // edits the CPU-quantized tensors before any call sees them.
  PackedCase(const Plugin& plugin, const std::string& method, std::string config, std::string label,
             int64_t out, int64_t in, DLDataType dtype, Report& report,
             std::function<void(Tensors&)> prepare = {});
  ~PackedCase();
  PackedCase(const PackedCase&) = delete;
  PackedCase& operator=(const PackedCase&) = delete;

  // false (and a FAIL) when the CPU cannot quantize the layer.
  bool quantize();
  // GPU dequantize bit-exact against the CPU's.
  void dequantize();
  // GPU linear_forward of `rows` tokens (with bias) within dtype_tol of the CPU's.
  void forward(int64_t rows);

  // The status of a GPU dequantize on the quantized layer's device copies with `edit` applied,
  // and the CPU's status for the same edit of its own copies.
  struct Statuses {
    int32_t gpu_code = 0;
    std::string gpu, cpu;
  };
  template <typename Edit>
  Statuses dequantize_edited(Edit edit) {
    auto gpu_in = copies(host_, true);
    auto cpu_in = copies(host_, false);
    edit(gpu_in);
    edit(cpu_in);
    return dequantize_both(gpu_in, cpu_in);
  }

  int32_t gpu_forward_status(const DLTensor& x, const DLTensor* bias, DLTensor& y,
                             std::string& text);

  std::string name(const std::string& step) const;
  const Quantizer& quantizer() const { return q_; }
  const qf_module_info& module() const { return module_; }

 private:
  const qf_method* m() const { return q_.method(); }
  Statuses dequantize_both(const Tensors& gpu_in, const Tensors& cpu_in);

  Quantizer q_;
  std::string method_;
  std::string label_;
  int64_t out_, in_;
  DLDataType dtype_;
  Report& report_;
  std::function<void(Tensors&)> prepare_;
  qf_module_info module_{};
  cudaStream_t stream_ = nullptr;
  Tensors host_;  // the CPU-quantized tensors, after prepare_
};

// The refusals every packed plugin owes on `c` (a quantized [128x256] BF16 layer): a missing
// 'qzeros' refused with the CPU's words, quantize on the device, x in host memory, a bias and a
// y of the wrong size.
void packed_refusal_checks(PackedCase& c, const std::string& method, Report& report);

// Without a GPU: a CUDA dequantize of a lone `qweight` of `shape` must be refused with
// FAILED_PRECONDITION, not crash.
void packed_no_gpu_check(const Plugin& plugin, const std::string& method, const char* config,
                         int64_t rows, int64_t cols, Report& report);

}  // namespace qforge::gpu_harness
