// hqq's BitPack: round trips for every width and both axes (incl. 3-bit row padding), the bit
// positions of each slice, and the stored shapes of FORMATS.md §2.8.
#include "hqq_bitpack.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <qforge/qf_plugin.hpp>
#include <random>
#include <vector>

#include "hqq_layout.hpp"

namespace qforge::plugins::hqq {
namespace {

std::vector<uint8_t> random_codes(int64_t n, int max_v, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, max_v);
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (auto& v : out) v = static_cast<uint8_t>(d(rng));
  return out;
}

struct Case {
  double nbits;
  int64_t group;
  int axis;
  int64_t out_f, in_f;
};

TEST(HqqBitpack, RoundTripsEveryWidthBothAxes) {
  const double widths[] = {8, 6, 5, 4, 3, 2, 1.58, 1};
  for (double nbits : widths) {
    for (int axis : {0, 1}) {
      for (int64_t group : {8, 16, 64}) {
        // 32 x 64: 256, 128 or 32 groups, all splittable; 3-bit pads 32 -> 40 and 8 -> 10 rows.
        const Geometry g = make_geometry(nbits, group, axis, 32, 64, "t");
        const auto codes = random_codes(g.rows * g.cols, g.max_v, 7);
        std::vector<unsigned char> packed(
            static_cast<size_t>(g.packed.rows * g.cols * g.packed.element_bytes));
        pack(g.packing, codes.data(), g.rows, g.cols, packed.data());
        std::vector<uint8_t> back(codes.size(), 0xFF);
        unpack(g.packing, packed.data(), g.packed.rows, g.cols, g.rows, back.data());
        EXPECT_EQ(back, codes) << "nbits " << nbits << " axis " << axis << " group " << group;
      }
    }
  }
}

TEST(HqqBitpack, StoredShapesAreFormatsTable) {
  // Weight [O, I] = [32, 64], g = 16: O*I/g = 128 groups.
  const int64_t O = 32, I = 64, gsz = 16, n = O * I / gsz;
  const Geometry a1 = make_geometry(4, gsz, 1, O, I, "t");
  EXPECT_EQ(a1.wq_shape(), (std::vector<int64_t>{n / 2, gsz}));
  EXPECT_EQ(a1.scale_shape(), (std::vector<int64_t>{n, 1}));
  const Geometry a0 = make_geometry(4, gsz, 0, O, I, "t");
  EXPECT_EQ(a0.wq_shape(), (std::vector<int64_t>{gsz / 2, n}));
  EXPECT_EQ(a0.scale_shape(), (std::vector<int64_t>{1, n}));
  EXPECT_EQ(make_geometry(2, gsz, 1, O, I, "t").wq_shape(), (std::vector<int64_t>{n / 4, gsz}));
  EXPECT_EQ(make_geometry(1, gsz, 0, O, I, "t").wq_shape(), (std::vector<int64_t>{gsz / 8, n}));
  EXPECT_EQ(make_geometry(8, gsz, 1, O, I, "t").wq_shape(), (std::vector<int64_t>{n, gsz}));
  // 3-bit: rows padded to a multiple of 10 (128 -> 130 -> 13 int32 rows; 16 -> 20 -> 2).
  const Geometry b1 = make_geometry(3, gsz, 1, O, I, "t");
  EXPECT_EQ(b1.wq_shape(), (std::vector<int64_t>{13, gsz}));
  EXPECT_TRUE(sdk::same_dtype(b1.wq_dtype(), sdk::make_dtype(kDLInt, 32)));
  EXPECT_EQ(make_geometry(3, gsz, 0, O, I, "t").wq_shape(), (std::vector<int64_t>{2, n}));
}

TEST(HqqBitpack, SlicesAlongDimZeroAtHqqsShifts) {
  // 4-bit: packed row r = (row r << 4) | row r + rows/2 (split, not interleaved).
  const std::vector<uint8_t> c4 = {1, 2, 3, 4, 5, 6, 7, 8};  // 4 rows x 2 cols
  std::vector<unsigned char> p4(4);
  pack("4bit_u8", c4.data(), 4, 2, p4.data());
  EXPECT_EQ(p4, (std::vector<unsigned char>{0x15, 0x26, 0x37, 0x48}));
  // 2-bit: quarters at shifts 6, 4, 2, 0.
  const std::vector<uint8_t> c2 = {3, 0, 1, 2};  // 4 rows x 1 col
  std::vector<unsigned char> p2(1);
  pack("2bit_u8", c2.data(), 4, 1, p2.data());
  EXPECT_EQ(p2[0], (3 << 6) | (0 << 4) | (1 << 2) | 2);
  // 1-bit: eighths at shifts 7..0.
  const std::vector<uint8_t> c1 = {1, 0, 1, 1, 0, 0, 0, 1};
  std::vector<unsigned char> p1(1);
  pack("1bit_u8", c1.data(), 8, 1, p1.data());
  EXPECT_EQ(p1[0], 0b10110001);
  // 3-bit: 7 rows pad to 10; ten fields at shifts 27, 24, ..., 0; padding rows are zero.
  const std::vector<uint8_t> c3 = {7, 1, 2, 3, 4, 5, 6};
  std::vector<unsigned char> p3(4);
  pack("3bit_32", c3.data(), 7, 1, p3.data());
  int32_t v = 0;
  std::memcpy(&v, p3.data(), 4);
  const int32_t expect =
      (7 << 27) | (1 << 24) | (2 << 21) | (3 << 18) | (4 << 15) | (5 << 12) | (6 << 9);
  EXPECT_EQ(v, expect);
  std::vector<uint8_t> back(7, 0xFF);
  unpack("3bit_32", p3.data(), 1, 1, 7, back.data());
  EXPECT_EQ(back, c3);
}

TEST(HqqBitpack, RefusesGroupCountsThatDoNotSplit) {
  // [3, 8] with g 8, axis 1: 3 groups cannot be split into 4-bit halves (hqq fails too).
  try {
    (void)make_geometry(4, 8, 1, 3, 8, "m.proj");
    FAIL() << "expected an error";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.proj"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("4bit_u8"), std::string::npos);
  }
  EXPECT_NO_THROW((void)make_geometry(4, 8, 0, 3, 8, "t"));  // axis 0 splits g rows
  try {
    (void)make_geometry(4, 64, 1, 10, 20, "m.proj");
    FAIL() << "expected an error";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("group_size should be divisble by the total tensor "
                                         "dimensions. shape: torch.Size([10, 20]), group_size: 64"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace qforge::plugins::hqq
