// hqq's bit packing (see hqq_bitpack.hpp).
#include "hqq_bitpack.hpp"

#include <cstring>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

// Fields per packed element and the shift of slice 0 (slice s sits at first - s * bits).
struct Fields {
  int count = 1;
  int bits = 8;
};

Fields fields_of(const std::string& packing) {
  if (packing == "8bit_u8") return {1, 8};
  if (packing == "4bit_u8") return {2, 4};
  if (packing == "2bit_u8") return {4, 2};
  if (packing == "1bit_u8") return {8, 1};
  if (packing == "3bit_32") return {10, 3};
  throw Error(QF_CODE_INVALID_ARGUMENT, "hqq: unknown packing '" + packing + "'",
              "hqq packs as 8bit_u8, 4bit_u8, 3bit_32, 2bit_u8 or 1bit_u8",
              "check the checkpoint's 'packing' tensor");
}

}  // namespace

PackedShape packed_shape(const std::string& packing, int64_t rows) {
  const Fields f = fields_of(packing);
  if (packing == "3bit_32") return {(rows + 9) / 10, 4};
  if (rows % f.count != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "hqq: " + std::to_string(rows) + " rows cannot be packed as " + packing,
                packing + " splits the rows into " + std::to_string(f.count) +
                    " equal slices along dim 0 (hqq's BitPack fails on this shape too)",
                "choose a group_size so that the number of groups (axis 1) is a multiple of " +
                    std::to_string(f.count) + ", or use axis 0");
  }
  return {rows / f.count, 1};
}

void pack(const std::string& packing, const uint8_t* codes, int64_t rows, int64_t cols,
          unsigned char* out) {
  const Fields f = fields_of(packing);
  const PackedShape ps = packed_shape(packing, rows);
  const int64_t step = ps.rows;
  const int top = (f.count - 1) * f.bits;
  for (int64_t r = 0; r < step; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t v = 0;
      for (int s = 0; s < f.count; ++s) {
        const int64_t src = s * step + r;
        const uint32_t code = src < rows ? codes[src * cols + c] : 0u;  // 3-bit padding: zero
        v |= code << (top - s * f.bits);
      }
      if (ps.element_bytes == 4) {
        std::memcpy(out + (r * cols + c) * 4, &v, 4);
      } else {
        out[r * cols + c] = static_cast<unsigned char>(v);
      }
    }
  }
}

void unpack(const std::string& packing, const unsigned char* packed, int64_t packed_rows,
            int64_t cols, int64_t rows, uint8_t* codes) {
  const Fields f = fields_of(packing);
  const bool wide = packing == "3bit_32";
  const int top = (f.count - 1) * f.bits;
  const uint32_t mask = (1u << f.bits) - 1u;
  for (int64_t r = 0; r < packed_rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t v = 0;
      if (wide) {
        std::memcpy(&v, packed + (r * cols + c) * 4, 4);
      } else {
        v = packed[r * cols + c];
      }
      for (int s = 0; s < f.count; ++s) {
        const int64_t dst = s * packed_rows + r;
        if (dst < rows)
          codes[dst * cols + c] = static_cast<uint8_t>((v >> (top - s * f.bits)) & mask);
      }
    }
  }
}

}  // namespace qforge::plugins::hqq
