// One row of hqq's reshaped code matrix read straight from the packed W_q (hqq_bitpack.hpp's
// layout: row r sits in packed row r % packed_rows, slice r / packed_rows), so the forward and
// dequantize can decode group by group, in parallel, without unpacking the whole layer first.
#pragma once

#include <cstdint>
#include <string>

namespace qforge::plugins::hqq::cpu {

struct PackedCodes {
  const unsigned char* packed = nullptr;
  int64_t packed_rows = 0;
  int64_t cols = 0;  // codes per reshaped row (the group size for axis 1)
  int slices = 1;    // rows per packed element
  int bits = 8;
  bool wide = false;  // 3bit_32: int32 elements
};

// Throws sdk::Error(INVALID_ARGUMENT) for an unknown packing.
PackedCodes packed_codes(const std::string& packing, const unsigned char* packed,
                         int64_t packed_rows, int64_t cols);

// out[k] = code (row, k), k < cols.
void row_codes(const PackedCodes& c, int64_t row, uint8_t* out) noexcept;

// out[k] = table[code (row, k)], k < cols: the decode of one group in a single pass.
void row_values(const PackedCodes& c, int64_t row, const float* table, float* out) noexcept;

}  // namespace qforge::plugins::hqq::cpu
