// Dense tensor reading/writing and hqq field decoding (see hqq_tensor_io.hpp).
#include "hqq_tensor_io.hpp"

#include <cmath>
#include <cstring>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

float f32_from_bits(uint32_t b) noexcept {
  float f = 0;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
uint32_t bits_from_f32(float f) noexcept {
  uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

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
  const uint32_t b = bits_from_f32(f);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u;   // NaN
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520: Inf
  const uint32_t exponent = a >> 23;
  if (exponent < 113) {               // half subnormal or zero: multiples of 2^-24
    if (exponent < 102) return sign;  // below 2^-25
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

uint16_t float_to_bf16(float f) noexcept {
  const uint32_t b = bits_from_f32(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  const uint32_t lsb = (b >> 16) & 1u;
  return static_cast<uint16_t>((b + 0x7FFFu + lsb) >> 16);
}

[[noreturn]] void bad_field(const DLTensor& t, const std::string& what, const char* expected) {
  std::string shape = "[";
  for (int32_t i = 0; i < t.ndim; ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  throw Error(
      QF_CODE_INVALID_ARGUMENT,
      "hqq field '" + what + "' is " + sdk::dtype_name(t.dtype) + " " + shape + "]",
      std::string("hqq encodes it as ") + expected + " (hqq/core/utils.py encode_safetensor_type)",
      "check the checkpoint was saved by hqq / transformers with encoded_state_dict");
}

}  // namespace

FloatKind float_kind(DLDataType dtype, const std::string& what) {
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 32) return FloatKind::kF32;
  if (dtype.lanes == 1 && dtype.code == kDLFloat && dtype.bits == 16) return FloatKind::kF16;
  if (dtype.lanes == 1 && dtype.code == kDLBfloat && dtype.bits == 16) return FloatKind::kBF16;
  throw Error(QF_CODE_INVALID_ARGUMENT, what + " has dtype " + sdk::dtype_name(dtype),
              "the hqq plugin reads and writes dense tensors as F32, F16 or BF16",
              "convert the tensor to float32, float16 or bfloat16 first");
}

DLDataType dtype_of(FloatKind kind) {
  switch (kind) {
    case FloatKind::kF16:
      return sdk::make_dtype(kDLFloat, 16);
    case FloatKind::kBF16:
      return sdk::make_dtype(kDLBfloat, 16);
    default:
      return sdk::make_dtype(kDLFloat, 32);
  }
}

const char* torch_name(FloatKind kind) {
  switch (kind) {
    case FloatKind::kF16:
      return "torch.float16";
    case FloatKind::kBF16:
      return "torch.bfloat16";
    default:
      return "torch.float32";
  }
}

void require_host_contiguous(const DLTensor& t, const std::string& what) {
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost) {
    throw Error(QF_CODE_UNIMPLEMENTED, what + " is not in host memory",
                "device type " + std::to_string(t.device.device_type) +
                    "; this build of the hqq plugin computes on the CPU only",
                "run on the CPU (--device cpu)");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "DLTensor.data is NULL",
                "pass a tensor with a buffer");
  }
  if (!sdk::is_contiguous(t)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not contiguous",
                "the hqq plugin reads row-major contiguous tensors", "pass a contiguous copy");
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
  if (kind == FloatKind::kF32) {
    std::memcpy(out.data(), p, out.size() * 4);
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h = 0;
    std::memcpy(&h, p + 2 * i, 2);
    out[static_cast<size_t>(i)] =
        kind == FloatKind::kF16 ? half_to_float(h) : f32_from_bits(static_cast<uint32_t>(h) << 16);
  }
  return out;
}

void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept {
  auto* p = static_cast<unsigned char*>(dst);
  if (kind == FloatKind::kF32) {
    std::memcpy(p, values, static_cast<size_t>(count) * 4);
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t h =
        kind == FloatKind::kF16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

float round_as(FloatKind kind, float v) noexcept {
  switch (kind) {
    case FloatKind::kF16:
      return half_to_float(float_to_half(v));
    case FloatKind::kBF16:
      return f32_from_bits(static_cast<uint32_t>(float_to_bf16(v)) << 16);
    default:
      return v;
  }
}

int64_t decode_int(const DLTensor& t, const std::string& what) {
  require_host_contiguous(t, what);
  if (sdk::numel(t) != 1 || t.dtype.lanes != 1) bad_field(t, what, "an I32 scalar");
  const unsigned char* p = bytes_of(t);
  if (t.dtype.code == kDLInt && t.dtype.bits == 32) {
    int32_t v = 0;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (t.dtype.code == kDLInt && t.dtype.bits == 64) {
    int64_t v = 0;
    std::memcpy(&v, p, 8);
    return v;
  }
  if (t.dtype.code == kDLUInt && t.dtype.bits == 8) return p[0];
  bad_field(t, what, "an I32 scalar");
}

double decode_number(const DLTensor& t, const std::string& what) {
  if (t.dtype.code == kDLFloat && t.dtype.bits == 32 && t.dtype.lanes == 1 && sdk::numel(t) == 1) {
    require_host_contiguous(t, what);
    float v = 0;
    std::memcpy(&v, bytes_of(t), 4);
    return v;
  }
  return static_cast<double>(decode_int(t, what));
}

std::string decode_string(const DLTensor& t, const std::string& what) {
  require_host_contiguous(t, what);
  if (t.ndim != 1 || !sdk::same_dtype(t.dtype, sdk::make_dtype(kDLUInt, 8))) {
    bad_field(t, what, "a U8 vector of character codes");
  }
  const unsigned char* p = bytes_of(t);
  return std::string(p, p + t.shape[0]);
}

std::vector<int64_t> decode_size(const DLTensor& t, const std::string& what) {
  require_host_contiguous(t, what);
  if (t.ndim != 1 || !sdk::same_dtype(t.dtype, sdk::make_dtype(kDLInt, 64))) {
    bad_field(t, what, "an I64 vector (torch.Size)");
  }
  std::vector<int64_t> out(static_cast<size_t>(t.shape[0]));
  std::memcpy(out.data(), bytes_of(t), out.size() * 8);
  return out;
}

}  // namespace qforge::plugins::hqq
