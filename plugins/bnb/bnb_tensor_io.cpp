// Float tensor access for the bnb plugin (see bnb_tensor_io.hpp).
#include "bnb_tensor_io.hpp"

#include <cstring>
#include <qforge/qf_plugin.hpp>

#include "cpu/half.hpp"

namespace qforge::plugins::bnb {
namespace {

int64_t itemsize(FloatKind kind) noexcept { return kind == FloatKind::kF32 ? 4 : 2; }

float load(const unsigned char* p, FloatKind kind) noexcept {
  if (kind == FloatKind::kF32) {
    float f;
    std::memcpy(&f, p, sizeof f);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return kind == FloatKind::kF16 ? cpu::f16_to_f32(h) : cpu::bf16_to_f32(h);
}

}  // namespace

FloatKind float_kind(DLDataType dtype, const std::string& what, const std::string& fix) {
  if (dtype.lanes == 1) {
    if (dtype.code == kDLFloat && dtype.bits == 32) return FloatKind::kF32;
    if (dtype.code == kDLFloat && dtype.bits == 16) return FloatKind::kF16;
    if (dtype.code == kDLBfloat && dtype.bits == 16) return FloatKind::kBF16;
  }
  throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " has dtype " + sdk::dtype_name(dtype),
                   std::string("bitsandbytes 4-bit works on F32, F16 and BF16 only; got ") +
                       sdk::dtype_name(dtype),
                   fix);
}

void require_host(const DLTensor& t, const std::string& what) {
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " is not in host memory",
                     "device type " + std::to_string(t.device.device_type) +
                         "; the bnb CPU kernels read host memory",
                     "pass --device cpu, or copy the tensor to the host first");
  }
  if (t.data == nullptr && sdk::numel(t) != 0) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, what + " has no data", "its data pointer is NULL",
                     "pass a tensor with a buffer");
  }
}

float FloatMatrix::at(int64_t i, int64_t j) const noexcept {
  return load(base + (i * row_stride + j * col_stride) * itemsize(kind), kind);
}

void FloatMatrix::read_flat(int64_t e, int64_t count, float* out) const noexcept {
  int64_t i = e / cols;
  int64_t j = e % cols;
  const int64_t size = itemsize(kind);
  if (col_stride == 1 && kind == FloatKind::kF32) {
    // Contiguous rows of float32: copy row pieces.
    while (count > 0) {
      const int64_t take = count < cols - j ? count : cols - j;
      std::memcpy(out, base + (i * row_stride + j) * size, static_cast<size_t>(take) * 4);
      out += take;
      count -= take;
      ++i;
      j = 0;
    }
    return;
  }
  for (int64_t k = 0; k < count; ++k) {
    out[k] = load(base + (i * row_stride + j * col_stride) * size, kind);
    if (++j == cols) {
      j = 0;
      ++i;
    }
  }
}

FloatMatrix matrix_view(const DLTensor& t, FloatKind kind, bool transpose) {
  FloatMatrix m;
  m.base = static_cast<const unsigned char*>(t.data) + t.byte_offset;
  m.kind = kind;
  const int64_t s0 = t.strides != nullptr ? t.strides[0] : t.shape[1];
  const int64_t s1 = t.strides != nullptr ? t.strides[1] : 1;
  m.rows = transpose ? t.shape[1] : t.shape[0];
  m.cols = transpose ? t.shape[0] : t.shape[1];
  m.row_stride = transpose ? s1 : s0;
  m.col_stride = transpose ? s0 : s1;
  return m;
}

std::vector<float> read_contiguous(const DLTensor& t, FloatKind kind) {
  const int64_t n = sdk::numel(t);
  std::vector<float> out(static_cast<size_t>(n));
  const auto* base = static_cast<const unsigned char*>(t.data) + t.byte_offset;
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = load(base + i * itemsize(kind), kind);
  return out;
}

void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept {
  if (kind == FloatKind::kF32) {
    std::memcpy(dst, values, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  if (kind == FloatKind::kF16) {
    for (int64_t i = 0; i < count; ++i) out[i] = cpu::f32_to_f16(values[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) out[i] = cpu::f32_to_bf16(values[i]);
  }
}

}  // namespace qforge::plugins::bnb
