// Bit-stream packing of qweight / qzeros (see gptq_pack.hpp).
#include "gptq_pack.hpp"

namespace qforge::plugins::gptq {
namespace {

// Value k of a stream whose word w lives at words[w * stride]. Words are written as uint32 and
// stored as int32 (AutoGPTQ packs in numpy uint32, then views the array as int32).
inline void put(uint32_t* words, int64_t stride, int bits, int64_t k, uint32_t value) noexcept {
  const int64_t bit = k * bits;
  const int64_t w = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  words[w * stride] |= value << shift;
  if (shift + bits > 32) words[(w + 1) * stride] |= value >> (32 - shift);
}

inline uint32_t get(const uint32_t* words, int64_t stride, int bits, int64_t k) noexcept {
  const int64_t bit = k * bits;
  const int64_t w = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  uint32_t v = words[w * stride] >> shift;
  if (shift + bits > 32) v |= words[(w + 1) * stride] << (32 - shift);
  return v & ((1u << bits) - 1u);
}

}  // namespace

void pack_qweight(const uint8_t* codes, int64_t in, int64_t out, int bits, int32_t* qweight) {
  auto* words = reinterpret_cast<uint32_t*>(qweight);
  const int64_t rows = in * bits / 32;
  for (int64_t n = 0; n < rows * out; ++n) words[n] = 0;
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      put(words + o, out, bits, i, static_cast<uint32_t>(codes[i * out + o]));
    }
  }
}

void unpack_qweight(const int32_t* qweight, int64_t in, int64_t out, int bits, uint8_t* codes) {
  const auto* words = reinterpret_cast<const uint32_t*>(qweight);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      codes[i * out + o] = static_cast<uint8_t>(get(words + o, out, bits, i));
    }
  }
}

uint32_t qweight_code(const int32_t* qweight, int64_t out, int bits, int64_t i,
                      int64_t o) noexcept {
  return get(reinterpret_cast<const uint32_t*>(qweight) + o, out, bits, i);
}

void pack_qzeros(const int32_t* zeros, int64_t groups, int64_t out, int bits, bool v2,
                 int32_t* qzeros) {
  auto* words = reinterpret_cast<uint32_t*>(qzeros);
  const int64_t cols = out * bits / 32;
  const uint32_t maxq = (1u << bits) - 1u;
  for (int64_t n = 0; n < groups * cols; ++n) words[n] = 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      const auto z = static_cast<uint32_t>(zeros[g * out + o]);
      put(words + g * cols, 1, bits, o, (v2 ? z : z - 1u) & maxq);
    }
  }
}

void unpack_qzeros(const int32_t* qzeros, int64_t groups, int64_t out, int bits, bool v2,
                   int32_t* zeros) {
  const auto* words = reinterpret_cast<const uint32_t*>(qzeros);
  const int64_t cols = out * bits / 32;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      const uint32_t s = get(words + g * cols, 1, bits, o);
      zeros[g * out + o] = static_cast<int32_t>(v2 ? s : s + 1u);
    }
  }
}

}  // namespace qforge::plugins::gptq
