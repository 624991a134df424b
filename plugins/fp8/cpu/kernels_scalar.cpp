// Scalar kernels: e4m3.{hpp,cpp} element by element, the oracle every vector path must equal.
#include <algorithm>
#include <vector>

#include "cpu/e4m3.hpp"
#include "cpu/half.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::fp8::cpu::scalar {

float widen(Dense kind, const void* src, int64_t i) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  if (kind == Dense::kF32) {
    float v = 0;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  uint16_t h = 0;
  std::memcpy(&h, p + 2 * i, 2);
  return kind == Dense::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

void narrow(float v, Dense kind, void* dst, int64_t i) noexcept {
  auto* p = static_cast<unsigned char*>(dst);
  if (kind == Dense::kF32) {
    std::memcpy(p + 4 * i, &v, 4);
    return;
  }
  const uint16_t h = kind == Dense::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
  std::memcpy(p + 2 * i, &h, 2);
}

void encode(const float* x, int64_t n, uint8_t* out) noexcept {
  for (int64_t i = 0; i < n; ++i) out[i] = e4m3_from_float(x[i]);
}

void decode(const uint8_t* codes, int64_t n, float* out) noexcept {
  const auto& table = e4m3_table();
  for (int64_t i = 0; i < n; ++i) out[i] = table[codes[i]];
}

uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, f32_bits(widen(kind, src, i)) & 0x7FFFFFFFu);
  return m;
}

void encode_scaled(Dense kind, const void* src, int64_t n, float scale, uint8_t* out) noexcept {
  for (int64_t i = 0; i < n; ++i) out[i] = e4m3_from_float(widen(kind, src, i) * scale);
}

void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind, void* out) noexcept {
  const auto& table = e4m3_table();
  for (int64_t i = 0; i < n; ++i) narrow(table[codes[i]] * scale, kind, out, i);
}

void round_trip_div(float* x, int64_t n, float s) noexcept {
  const auto& table = e4m3_table();
  for (int64_t i = 0; i < n; ++i) x[i] = table[e4m3_from_float(x[i] / s)] * s;
}

void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept {
  const auto& table = e4m3_table();
  for (int64_t i = 0; i < n; ++i) out[i] = table[e4m3_from_float(x[i] * m)];
}

void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens, int64_t row_begin,
                       int64_t row_end, float* y, int64_t ldy) {
  const auto& table = e4m3_table();
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t o = row_begin; o < row_end; ++o) {
    const uint8_t* codes = w.codes + o * w.cols;
    for (int64_t k = 0; k < w.cols; ++k)
      row[static_cast<size_t>(k)] = table[codes[k]] * w.scale(o, k);
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xr = x + t * w.cols;
      float acc = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) acc += xr[k] * row[static_cast<size_t>(k)];
      y[t * ldy + o] = acc;
    }
  }
}

}  // namespace qforge::plugins::fp8::cpu::scalar
