// Scalar reference kernels (dequantize, linear) and the run-time ISA choice.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/kernels.hpp"

namespace qforge::plugins::bnb::cpu {
namespace {

uint8_t nibble(const uint8_t* packed, int64_t e) noexcept {
  const uint8_t byte = packed[e >> 1];
  return (e & 1) != 0 ? static_cast<uint8_t>(byte & 0x0f) : static_cast<uint8_t>(byte >> 4);
}

}  // namespace

const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

bool isa_supported(Isa isa) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("f16c");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::kScalar:
      return true;
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa select_isa() noexcept {
  const char* forced = std::getenv("QFORGE_BNB_KERNEL");
  if (forced != nullptr) {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (std::strcmp(forced, isa_name(isa)) == 0 && isa_supported(isa)) return isa;
    }
  }
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

bool vector_path_applies(const Weight4& w) noexcept {
  return w.blocksize == kBlock && w.in % kBlock == 0;
}

void dequantize_range(Isa isa, const Weight4& w, int64_t e_begin, int64_t e_end,
                      float* out) noexcept {
  const int64_t bs = w.blocksize;
  int64_t e = e_begin;
  // Whole 64-element blocks go to the vector kernels; partial ones stay scalar.
  if (isa != Isa::kScalar && bs == kBlock) {
    const int64_t first = (e_begin + bs - 1) / bs;
    const int64_t last = e_end / bs;  // exclusive
    if (last > first) {
      for (; e < first * bs; ++e)
        out[e - e_begin] = w.code[nibble(w.packed, e)] * w.absmax.at(e / bs);
      float* dst = out + (first * bs - e_begin);
      if (isa == Isa::kAvx512) {
        dequantize_blocks_avx512(w, first, last, dst);
      } else {
        dequantize_blocks_avx2(w, first, last, dst);
      }
      e = last * bs;
    }
  }
  for (; e < e_end; ++e) out[e - e_begin] = w.code[nibble(w.packed, e)] * w.absmax.at(e / bs);
}

XLayout x_layout(Isa isa, const Weight4& w, int64_t rows) noexcept {
  if (isa == Isa::kScalar || !vector_path_applies(w)) return XLayout::kNatural;
  if (isa == Isa::kAvx512 && rows == 1 && w.in % (2 * kBlock) == 0) return XLayout::kWord128;
  return XLayout::kBlock64;
}

int64_t x_stride(int64_t in, int64_t rows) noexcept { return rows > 1 ? in + 16 : in; }

void prepare_x(XLayout layout, const float* x, int64_t rows, int64_t in, int64_t ldx,
               float* out) noexcept {
  for (int64_t m = 0; m < rows; ++m) {
    const float* src_row = x + m * in;
    float* dst_row = out + m * ldx;
    if (layout == XLayout::kNatural) {
      std::memcpy(dst_row, src_row, static_cast<size_t>(in) * sizeof(float));
    } else if (layout == XLayout::kBlock64) {
      for (int64_t k0 = 0; k0 < in; k0 += kBlock) {
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          dst_row[k0 + j] = src_row[k0 + 2 * j];
          dst_row[k0 + kBlock / 2 + j] = src_row[k0 + 2 * j + 1];
        }
      }
    } else {
      for (int64_t c0 = 0; c0 < in; c0 += 2 * kBlock) {
        for (int64_t k = 0; k < 8; ++k) {
          for (int64_t l = 0; l < 16; ++l) {
            // Nibble k of dword l: byte 4l + k/2; even k is the byte's low nibble (odd element).
            dst_row[c0 + k * 16 + l] = src_row[c0 + 2 * (4 * l + k / 2) + (k % 2 == 0 ? 1 : 0)];
          }
        }
      }
    }
  }
}

void linear_4bit_scalar(const Weight4& w, const float* x, int64_t rows, const float* bias, float* y,
                        int64_t ldy, int64_t row_begin, int64_t row_end) noexcept {
  const int64_t bs = w.blocksize;
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t m = 0; m < rows; ++m) {
      const float* xr = x + m * w.in;
      // Sum each block's code * x in float, then scale once by the block's absmax, the way
      // the vector paths do.
      float acc = 0.0f;
      int64_t e = r * w.in;
      const int64_t e_end = e + w.in;
      while (e < e_end) {
        const int64_t block = e / bs;
        const int64_t stop = std::min(e_end, (block + 1) * bs);
        float part = 0.0f;
        for (; e < stop; ++e) part += w.code[nibble(w.packed, e)] * xr[e - r * w.in];
        acc += part * w.absmax.at(block);
      }
      y[m * ldy + r] = acc + (bias != nullptr ? bias[r] : 0.0f);
    }
  }
}

void linear_4bit(Isa isa, const Weight4& w, const float* x, const float* xprep, int64_t ldx,
                 int64_t rows, const float* bias, float* y, int64_t ldy, int64_t row_begin,
                 int64_t row_end) noexcept {
  const XLayout layout = xprep != nullptr ? x_layout(isa, w, rows) : XLayout::kNatural;
  if (layout == XLayout::kWord128) {
    gemv_4bit_avx512_words(w, xprep, bias, y, row_begin, row_end);
  } else if (layout == XLayout::kBlock64 && isa == Isa::kAvx512) {
    linear_4bit_avx512(w, xprep, ldx, rows, bias, y, ldy, row_begin, row_end);
  } else if (layout == XLayout::kBlock64 && isa == Isa::kAvx2) {
    linear_4bit_avx2(w, xprep, ldx, rows, bias, y, ldy, row_begin, row_end);
  } else {
    linear_4bit_scalar(w, x, rows, bias, y, ldy, row_begin, row_end);
  }
}

}  // namespace qforge::plugins::bnb::cpu
