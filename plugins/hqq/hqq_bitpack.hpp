// hqq's BitPack (hqq/core/bitpack.py): codes of a [rows, cols] matrix packed along dim 0 in
// contiguous slices, not interleaved. 4-bit: row r of the packed matrix holds rows r (high
// nibble) and r + rows/2; 2-bit: quarters at shifts 6, 4, 2, 0; 1-bit: eighths at shifts 7..0;
// 3-bit: rows zero-padded to a multiple of 10, ten slices per int32 at shifts 27, 24, ..., 0;
// 8-bit: one byte per code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::plugins::hqq {

// How one packing stores `rows` rows of codes.
struct PackedShape {
  int64_t rows = 0;       // packed rows
  int element_bytes = 1;  // 1 (uint8) or 4 (int32, "3bit_32")
};

// Throws sdk::Error(INVALID_ARGUMENT) when `rows` does not split into the packing's slices
// (4-bit needs an even count, 2-bit a multiple of 4, 1-bit of 8; hqq fails on the same shapes).
PackedShape packed_shape(const std::string& packing, int64_t rows);

// codes: rows x cols, each < 2^bits. out: packed_shape(rows).rows x cols elements, stored as
// bytes (int32 little-endian for 3-bit).
void pack(const std::string& packing, const uint8_t* codes, int64_t rows, int64_t cols,
          unsigned char* out);

// Inverse of pack: reads packed_rows x cols and writes the first `rows` rows of codes (3-bit
// drops the padding rows, as hqq's dequantize trims to group_size or O*I/group_size).
void unpack(const std::string& packing, const unsigned char* packed, int64_t packed_rows,
            int64_t cols, int64_t rows, uint8_t* codes);

}  // namespace qforge::plugins::hqq
