// Whole-block quantize from, and dequantize to, dense F32 / F16 / BF16 memory: the scalar
// reference (the oracle the vector variants are tested against) and the run-time dispatch.
#include <cmath>
#include <cstring>

#include "cpu/half.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::bnb::cpu {
namespace {

float load_dense(Dense kind, const void* src, int64_t e) noexcept {
  if (kind == Dense::kF32) {
    float f;
    std::memcpy(&f, static_cast<const unsigned char*>(src) + e * 4, sizeof f);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const unsigned char*>(src) + e * 2, sizeof h);
  return kind == Dense::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

void store_dense(Dense kind, void* dst, int64_t i, float v) noexcept {
  auto* d = static_cast<unsigned char*>(dst);
  if (kind == Dense::kF32) {
    std::memcpy(d + i * 4, &v, sizeof v);
    return;
  }
  const uint16_t h = kind == Dense::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
  std::memcpy(d + i * 2, &h, sizeof h);
}

}  // namespace

int64_t quantize_dense_4bit_scalar(QuantType type, Dense kind, const void* src, int64_t block_begin,
                                   int64_t block_end, uint8_t* packed, float* absmax) noexcept {
  float values[kBlock];
  uint8_t codes[kBlock];
  for (int64_t b = block_begin; b < block_end; ++b) {
    for (int64_t i = 0; i < kBlock; ++i) {
      values[i] = load_dense(kind, src, b * kBlock + i);
      if (!std::isfinite(values[i])) return b;
    }
    absmax[b] = quantize_block_4bit(type, values, kBlock, codes);
    for (int64_t i = 0; i < kBlock; i += 2) {
      packed[b * (kBlock / 2) + i / 2] = static_cast<uint8_t>((codes[i] << 4) | codes[i + 1]);
    }
  }
  return block_end;
}

int64_t quantize_dense_4bit(Isa isa, QuantType type, Dense kind, const void* src,
                            int64_t block_begin, int64_t block_end, uint8_t* packed,
                            float* absmax) noexcept {
  switch (isa) {
    case Isa::kAvx512:
      return quantize_dense_4bit_avx512(type, kind, src, block_begin, block_end, packed, absmax);
    case Isa::kAvx2:
      return quantize_dense_4bit_avx2(type, kind, src, block_begin, block_end, packed, absmax);
    case Isa::kScalar:
      break;
  }
  return quantize_dense_4bit_scalar(type, kind, src, block_begin, block_end, packed, absmax);
}

void dequantize_dense_scalar(const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                             void* out) noexcept {
  for (int64_t b = block_begin; b < block_end; ++b) {
    const float scale = w.absmax.at(b);
    for (int64_t i = 0; i < kBlock; ++i) {
      const int64_t e = b * kBlock + i;
      const uint8_t byte = w.packed[e >> 1];
      const uint8_t q = (e & 1) != 0 ? static_cast<uint8_t>(byte & 0x0f) : byte >> 4;
      store_dense(kind, out, (b - block_begin) * kBlock + i, w.code[q] * scale);
    }
  }
}

void dequantize_dense(Isa isa, const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                      void* out, bool stream) noexcept {
  switch (isa) {
    case Isa::kAvx512:
      dequantize_dense_avx512(w, kind, block_begin, block_end, out, stream);
      return;
    case Isa::kAvx2:
      dequantize_dense_avx2(w, kind, block_begin, block_end, out, stream);
      return;
    case Isa::kScalar:
      break;
  }
  dequantize_dense_scalar(w, kind, block_begin, block_end, out);
}

}  // namespace qforge::plugins::bnb::cpu
