// Dense tensor reading and writing for the fp8 plugin (see fp8_tensor_io.hpp).
#include "fp8_tensor_io.hpp"

#include <cmath>
#include <cstring>
#include <qforge/qf_plugin.hpp>

#include "cpu/half.hpp"

namespace qforge::plugins::fp8 {

using sdk::Error;

FloatKind float_kind(DLDataType dtype, const std::string& what) {
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 32) return FloatKind::kF32;
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 16) return FloatKind::kF16;
  if (dtype.lanes == 1 && dtype.code == kDLBfloat && dtype.bits == 16) return FloatKind::kBF16;
  throw Error(QF_CODE_INVALID_ARGUMENT, what + " has dtype " + sdk::dtype_name(dtype),
              "the fp8 plugin reads and writes dense tensors as F32, F16 or BF16",
              "convert the tensor to float32, float16 or bfloat16 first");
}

void require_host_contiguous(const DLTensor& t, const std::string& what) {
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost) {
    throw Error(QF_CODE_UNIMPLEMENTED, what + " is not in host memory",
                "device type " + std::to_string(t.device.device_type) +
                    "; this build of the fp8 plugin computes on the CPU only (emulation)",
                "run on the CPU (--device cpu)");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "DLTensor.data is NULL",
                "pass a tensor with a buffer");
  }
  if (!sdk::is_contiguous(t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not contiguous",
                "the fp8 plugin reads row-major contiguous tensors", "pass a contiguous copy");
  }
}

const unsigned char* bytes_of(const DLTensor& t) noexcept {
  return static_cast<const unsigned char*>(t.data) + t.byte_offset;
}
unsigned char* bytes_of(DLTensor& t) noexcept {
  return static_cast<unsigned char*>(t.data) + t.byte_offset;
}

std::vector<float> read_floats(const DLTensor& t, const std::string& what) {
  const FloatKind kind = float_kind(t.dtype, what);
  require_host_contiguous(t, what);
  const int64_t n = sdk::numel(t);
  std::vector<float> out(static_cast<size_t>(n));
  const unsigned char* p = bytes_of(t);
  for (int64_t i = 0; i < n; ++i) {
    if (kind == FloatKind::kF32) {
      std::memcpy(&out[static_cast<size_t>(i)], p + 4 * i, 4);
    } else {
      uint16_t h = 0;
      std::memcpy(&h, p + 2 * i, 2);
      out[static_cast<size_t>(i)] =
          kind == FloatKind::kF16 ? cpu::f16_to_f32(h) : cpu::bf16_to_f32(h);
    }
  }
  return out;
}

void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept {
  auto* p = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < count; ++i) {
    if (kind == FloatKind::kF32) {
      std::memcpy(p + 4 * i, &values[i], 4);
    } else {
      const uint16_t h =
          kind == FloatKind::kF16 ? cpu::f32_to_f16(values[i]) : cpu::f32_to_bf16(values[i]);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

}  // namespace qforge::plugins::fp8
