// Dense tensor reading and writing shared by the gptq and awq plugins (dense_tensor_io.hpp).
#include "dense_tensor_io.hpp"

#include <cmath>
#include <cstring>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins {
namespace {

using sdk::Error;

float f32_from_bits(uint32_t b) noexcept {
  float f = 0;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

uint16_t float_to_bf16(float f) noexcept {
  uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

}  // namespace

float half_to_float(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const int e = (h >> 10) & 0x1F;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m << 13));
  if (e == 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);
    return sign != 0 ? -v : v;
  }
  return f32_from_bits(sign | (static_cast<uint32_t>(e + 112) << 23) | (m << 13));
}

uint16_t float_to_half(float f) noexcept {
  uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u;
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  const uint32_t exponent = a >> 23;
  if (exponent < 113) {  // half subnormal or zero: a multiple of 2^-24, rounded to even
    if (exponent < 102) return sign;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - exponent;
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    return sign |
           static_cast<uint16_t>((rem > half || (rem == half && (q & 1u) != 0)) ? q + 1u : q);
  }
  const uint32_t q = a >> 13;
  const uint32_t rem = a & 0x1FFFu;
  const uint32_t r = (rem > 0x1000u || (rem == 0x1000u && (q & 1u) != 0)) ? q + 1u : q;
  return sign | static_cast<uint16_t>(r - (112u << 10));
}

FloatKind float_kind(DLDataType dtype, const std::string& what) {
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 32) return FloatKind::kF32;
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 16) return FloatKind::kF16;
  if (dtype.lanes == 1 && dtype.code == kDLBfloat && dtype.bits == 16) return FloatKind::kBF16;
  throw Error(QF_CODE_INVALID_ARGUMENT, what + " has dtype " + sdk::dtype_name(dtype),
              "the gptq plugin reads and writes dense tensors as F32, F16 or BF16",
              "convert the tensor to float32, float16 or bfloat16 first");
}

void require_host_contiguous(const DLTensor& t, const std::string& what) {
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost) {
    throw Error(QF_CODE_UNIMPLEMENTED, what + " is not in host memory",
                "device type " + std::to_string(t.device.device_type) +
                    "; this landing of the gptq plugin computes on the CPU only",
                "run on the CPU (--device cpu)");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "DLTensor.data is NULL",
                "pass a tensor with a buffer");
  }
  if (!sdk::is_contiguous(t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not contiguous",
                "the gptq plugin reads row-major contiguous tensors", "pass a contiguous copy");
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
  const auto n = static_cast<size_t>(sdk::numel(t));
  std::vector<float> out(n);
  const unsigned char* p = bytes_of(t);
  if (kind == FloatKind::kF32) {
    if (n != 0) std::memcpy(out.data(), p, n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = 0;
    std::memcpy(&h, p + 2 * i, 2);
    out[i] =
        kind == FloatKind::kF16 ? half_to_float(h) : f32_from_bits(static_cast<uint32_t>(h) << 16);
  }
  return out;
}

std::vector<int32_t> read_int32(const DLTensor& t, const std::string& what) {
  require_host_contiguous(t, what);
  const auto n = static_cast<size_t>(sdk::numel(t));
  std::vector<int32_t> out(n);
  if (n != 0) std::memcpy(out.data(), bytes_of(t), n * 4);
  return out;
}

void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept {
  auto* p = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < count; ++i) {
    if (kind == FloatKind::kF32) {
      std::memcpy(p + 4 * i, &values[i], 4);
    } else {
      const uint16_t h =
          kind == FloatKind::kF16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

}  // namespace qforge::plugins
