// AMX-INT8 int8 product: tdpbssd (signed x signed bytes into int32) on one 16x16 int32
// accumulator tile, one 16x64 activation tile and one 16x64 weight tile per step. The weight
// tile must be in AMX's "VNNI" layout: tile row g, bytes 4n..4n+3 hold W[n, 4g..4g+3]; each
// 16-output block of W is repacked so once per call. Activations are copied into a zero-padded
// buffer (rows to 16, columns to 64), so one tile configuration serves every shape and padding
// adds zero products. Exact int32 sums, equal to the scalar reference.
//
// Linux must grant tile data to the process first (int8_isa_supported asks, see int8.cpp);
// the tile configuration is per thread, so each call loads it and releases it at the end.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>
#include <vector>

#include "cpu/int8.hpp"

#define QF_AMX __attribute__((target("amx-tile,amx-int8")))

namespace qforge::plugins::bnb::cpu {
namespace {

constexpr int64_t kTileRows = 16;  // M and N per tile
constexpr int64_t kTileK = 64;     // bytes of K per tile row

// The 64-byte LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace

QF_AMX void gemm_int8_amx(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                          int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) {
  if (rows <= 0 || o_begin >= o_end) return;
  const int64_t kp = (in + kTileK - 1) / kTileK * kTileK;
  const int64_t kblocks = kp / kTileK;
  const int64_t mp = (rows + kTileRows - 1) / kTileRows * kTileRows;
  std::vector<int8_t> xp(static_cast<size_t>(mp * kp), 0);
  for (int64_t m = 0; m < rows; ++m) {
    std::memcpy(&xp[static_cast<size_t>(m * kp)], xq + m * ldq, static_cast<size_t>(in));
  }
  std::vector<int8_t> wp(static_cast<size_t>(kblocks * kTileRows * kTileK));
  alignas(64) int32_t c[kTileRows * kTileRows];

  TileConfig config;
  for (int t = 0; t < 3; ++t) {
    config.colsb[t] = static_cast<uint16_t>(kTileK);  // 16 int32 = 64 bytes for the C tile
    config.rows[t] = static_cast<uint8_t>(kTileRows);
  }
  _tile_loadconfig(&config);

  for (int64_t o0 = o_begin; o0 < o_end; o0 += kTileRows) {
    const int64_t n_valid = o_end - o0 < kTileRows ? o_end - o0 : kTileRows;
    std::memset(wp.data(), 0, wp.size());
    for (int64_t n = 0; n < n_valid; ++n) {
      const int8_t* wr = w + (o0 + n) * in;
      for (int64_t k = 0; k < in; ++k) {
        const int64_t kb = k / kTileK, kk = k % kTileK;
        wp[static_cast<size_t>(kb * kTileRows * kTileK + (kk / 4) * kTileK + n * 4 + kk % 4)] =
            wr[k];
      }
    }
    for (int64_t m0 = 0; m0 < rows; m0 += kTileRows) {
      _tile_zero(0);
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        _tile_loadd(1, &xp[static_cast<size_t>(m0 * kp + kb * kTileK)], kp);
        _tile_loadd(2, &wp[static_cast<size_t>(kb * kTileRows * kTileK)], kTileK);
        _tile_dpbssd(0, 1, 2);
      }
      _tile_stored(0, c, kTileRows * sizeof(int32_t));
      const int64_t m_valid = rows - m0 < kTileRows ? rows - m0 : kTileRows;
      for (int64_t m = 0; m < m_valid; ++m) {
        for (int64_t n = 0; n < n_valid; ++n) {
          acc[(m0 + m) * ldacc + o0 + n] = c[m * kTileRows + n];
        }
      }
    }
  }
  _tile_release();
}

}  // namespace qforge::plugins::bnb::cpu
