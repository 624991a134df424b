// Packed-row reads (see cpu/group_codes.hpp).
#include "cpu/group_codes.hpp"

#include <cstring>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq::cpu {

PackedCodes packed_codes(const std::string& packing, const unsigned char* packed,
                         int64_t packed_rows, int64_t cols) {
  PackedCodes c;
  c.packed = packed;
  c.packed_rows = packed_rows;
  c.cols = cols;
  if (packing == "8bit_u8") {
    c.slices = 1, c.bits = 8;
  } else if (packing == "4bit_u8") {
    c.slices = 2, c.bits = 4;
  } else if (packing == "2bit_u8") {
    c.slices = 4, c.bits = 2;
  } else if (packing == "1bit_u8") {
    c.slices = 8, c.bits = 1;
  } else if (packing == "3bit_32") {
    c.slices = 10, c.bits = 3, c.wide = true;
  } else {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT, "hqq: unknown packing '" + packing + "'",
                     "hqq packs as 8bit_u8, 4bit_u8, 3bit_32, 2bit_u8 or 1bit_u8",
                     "check the checkpoint's 'packing' tensor");
  }
  return c;
}

void row_codes(const PackedCodes& c, int64_t row, uint8_t* out) noexcept {
  const int64_t pr = row % c.packed_rows;
  const int slice = static_cast<int>(row / c.packed_rows);
  const int shift = (c.slices - 1 - slice) * c.bits;
  const uint32_t mask = (1u << c.bits) - 1u;
  if (c.wide) {
    const unsigned char* src = c.packed + pr * c.cols * 4;
    for (int64_t k = 0; k < c.cols; ++k) {
      uint32_t v;
      std::memcpy(&v, src + k * 4, 4);
      out[k] = static_cast<uint8_t>((v >> shift) & mask);
    }
    return;
  }
  const unsigned char* src = c.packed + pr * c.cols;
  for (int64_t k = 0; k < c.cols; ++k) out[k] = static_cast<uint8_t>((src[k] >> shift) & mask);
}

void row_values(const PackedCodes& c, int64_t row, const float* table, float* out) noexcept {
  const int64_t pr = row % c.packed_rows;
  const int slice = static_cast<int>(row / c.packed_rows);
  const int shift = (c.slices - 1 - slice) * c.bits;
  const uint32_t mask = (1u << c.bits) - 1u;
  if (c.wide) {
    const unsigned char* src = c.packed + pr * c.cols * 4;
    for (int64_t k = 0; k < c.cols; ++k) {
      uint32_t v;
      std::memcpy(&v, src + k * 4, 4);
      out[k] = table[(v >> shift) & mask];
    }
    return;
  }
  const unsigned char* src = c.packed + pr * c.cols;
  for (int64_t k = 0; k < c.cols; ++k) out[k] = table[(src[k] >> shift) & mask];
}

}  // namespace qforge::plugins::hqq::cpu
