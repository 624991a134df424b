#include "device_checks.hpp"

#include "device_refusal.hpp"

namespace qforge::plugins {

void require_cuda_served(const sdk::Call& call, const std::string& what, const std::string& plugin,
                         bool cuda_build, const CpuOnlyBuild& cpu_only) {
  if (cuda_build && cuda_serves(call.device().device_type)) return;
  refuse_device(what, call.device(), plugin, cuda_build, cpu_only);
}

void check_cuda(const std::string& err, const std::string& what) {
  if (err.empty()) return;
  throw sdk::Error(QF_CODE_DEVICE_ERROR, what, err,
                   "check the GPU (nvidia-smi) and that the inputs are valid device buffers of "
                   "the call's device");
}

void check_device_entered(const std::string& err, const sdk::Call& call,
                          const std::string& module_name) {
  if (err.empty()) return;
  throw sdk::Error(QF_CODE_FAILED_PRECONDITION,
                   "module '" + module_name + "': cannot use " + device_text(call.device()), err,
                   "run on a machine with that GPU and a working driver, or use --device cpu");
}

void require_on_cuda_device(const sdk::Call& call, const DLTensor& t, const std::string& what) {
  const DLDevice d = call.device();
  if (!cuda_serves(t.device.device_type) || t.device.device_id != d.device_id) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " is not on the call's device",
                     "it is on " + device_text(t.device) + ", the call runs on " + device_text(d),
                     "move the tensor to " + device_text(d) + " before the call");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "its data pointer is NULL",
                     "pass a tensor with a buffer");
  }
  if (!sdk::is_contiguous(t)) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " is not contiguous",
                     "the GPU kernels read it as a flat row-major array",
                     "pass a contiguous tensor");
  }
}

}  // namespace qforge::plugins
