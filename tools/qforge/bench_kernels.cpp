#include "bench_kernels.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace qforge::cli::bench {
namespace {

#define QF_BENCH_AVX512 __attribute__((target("avx512f")))
#define QF_BENCH_AVX2 __attribute__((target("avx2,fma")))

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa detect_isa() noexcept {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa isa() noexcept {
  static const Isa chosen = detect_isa();
  return chosen;
}

// ------------------------------------------------------------------ streaming read

QF_BENCH_AVX512 uint64_t stream_avx512(const unsigned char* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
  }
  // Stored and summed by hand: GCC 12's _mm512_reduce_* trip -Wmaybe-uninitialized.
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  for (; i < n; ++i) sum += p[i];
  return sum;
}

QF_BENCH_AVX2 uint64_t stream_avx2(const unsigned char* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

uint64_t stream_scalar(const unsigned char* p, size_t n) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, sizeof(v));
    sum += v;
  }
  for (; i < n; ++i) sum += p[i];
  return sum;
}

uint64_t stream(const unsigned char* p, size_t n) {
  switch (isa()) {
    case Isa::kAvx512:
      return stream_avx512(p, n);
    case Isa::kAvx2:
      return stream_avx2(p, n);
    case Isa::kScalar:
      break;
  }
  return stream_scalar(p, n);
}

// ------------------------------------------------------------------ dense GEMM (small batch)
// A tile is R rows of W times B rows of x: each W vector is loaded once and used B times and the
// R * B accumulators stay in registers, so W streams from memory exactly once per call. Rows go
// in groups of kGroupRows and k in blocks whose B rows of x fit L1 (kXBlockFloats), so x is
// reused from L1 across the group instead of re-read from L2 for every row: without that,
// batch 16 ran at a quarter of its FMA rate. Partial sums live in `part` (vector lanes, one
// vector per row and batch column) between k-blocks.

constexpr int64_t kGroupRows = 8;
constexpr int64_t kXBlockFloats = 4096;  // B * k-block floats of x: 16 KiB
constexpr int kMaxBatch = 16;
constexpr int kMaxLanes = 16;

template <int R, int B>
QF_BENCH_AVX512 void tile_avx512(const float* w, int64_t cols, const float* x, int64_t ldx,
                                 float* part, int64_t r0, int64_t k0, int64_t k1) {
  __m512 acc[R][B];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) acc[i][j] = _mm512_load_ps(part + (i * B + j) * 16);
  }
  const float* wr = w + r0 * cols;
  const int64_t ahead = k1 - k0;  // this row's next k-block, used after the rest of the group
  for (int64_t k = k0; k < k1; k += 16) {
    __m512 wv[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + i * cols + k + ahead), _MM_HINT_T0);
      wv[i] = _mm512_loadu_ps(wr + i * cols + k);
    }
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) {
      const __m512 xv = _mm512_loadu_ps(x + j * ldx + k);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) _mm512_store_ps(part + (i * B + j) * 16, acc[i][j]);
  }
}

template <int R, int B>
QF_BENCH_AVX2 void tile_avx2(const float* w, int64_t cols, const float* x, int64_t ldx, float* part,
                             int64_t r0, int64_t k0, int64_t k1) {
  __m256 acc[R][B];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) acc[i][j] = _mm256_load_ps(part + (i * B + j) * 8);
  }
  const float* wr = w + r0 * cols;
  const int64_t ahead = k1 - k0;
  for (int64_t k = k0; k < k1; k += 8) {
    __m256 wv[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      if ((k & 15) == 0) {  // one prefetch per 64-byte line
        _mm_prefetch(reinterpret_cast<const char*>(wr + i * cols + k + ahead), _MM_HINT_T0);
      }
      wv[i] = _mm256_loadu_ps(wr + i * cols + k);
    }
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) {
      const __m256 xv = _mm256_loadu_ps(x + j * ldx + k);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < B; ++j) _mm256_store_ps(part + (i * B + j) * 8, acc[i][j]);
  }
}

void rows_scalar(const float* w, int64_t rows, int64_t cols, const float* x, int64_t batch,
                 float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < batch; ++j) {
      float s = 0;
      for (int64_t k = 0; k < cols; ++k) s += w[r * cols + k] * x[j * cols + k];
      y[j * rows + r] = s;
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t,
                        int64_t);

struct TilePlan {
  int rows_per_tile;
  int lanes;
  TileFn tile;  // R rows
  TileFn one;   // 1 row, for the rows left over
};

template <int R, int B>
constexpr TilePlan avx512_plan() {
  return {R, 16, &tile_avx512<R, B>, &tile_avx512<1, B>};
}
template <int R, int B>
constexpr TilePlan avx2_plan() {
  return {R, 8, &tile_avx2<R, B>, &tile_avx2<1, B>};
}

// Indexed by batch - 1. Rows per tile shrink as the batch grows so the R * B accumulators fit
// the register file (32 zmm / 16 ymm).
constexpr TilePlan kAvx512Plans[kMaxBatch] = {
    avx512_plan<4, 1>(),  avx512_plan<4, 2>(),  avx512_plan<4, 3>(),  avx512_plan<4, 4>(),
    avx512_plan<2, 5>(),  avx512_plan<2, 6>(),  avx512_plan<2, 7>(),  avx512_plan<2, 8>(),
    avx512_plan<1, 9>(),  avx512_plan<1, 10>(), avx512_plan<1, 11>(), avx512_plan<1, 12>(),
    avx512_plan<1, 13>(), avx512_plan<1, 14>(), avx512_plan<1, 15>(), avx512_plan<1, 16>()};
constexpr TilePlan kAvx2Plans[kMaxBatch] = {
    avx2_plan<2, 1>(),  avx2_plan<2, 2>(),  avx2_plan<2, 3>(),  avx2_plan<2, 4>(),
    avx2_plan<2, 5>(),  avx2_plan<2, 6>(),  avx2_plan<1, 7>(),  avx2_plan<1, 8>(),
    avx2_plan<1, 9>(),  avx2_plan<1, 10>(), avx2_plan<1, 11>(), avx2_plan<1, 12>(),
    avx2_plan<1, 13>(), avx2_plan<1, 14>(), avx2_plan<1, 15>(), avx2_plan<1, 16>()};

// Rows [r0, r1) of y through the vector tiles (see the note above the tiles).
void rows_vector(const TilePlan& plan, const float* w, int64_t rows, int64_t cols, const float* x,
                 int64_t ldx, int64_t batch, float* y, int64_t r0, int64_t r1) {
  alignas(64) float part[kGroupRows * kMaxBatch * kMaxLanes];
  const int64_t lanes = plan.lanes;
  const int64_t kvec = cols / lanes * lanes;
  const int64_t kblock = std::max<int64_t>(lanes, kXBlockFloats / batch / lanes * lanes);
  for (int64_t g = r0; g < r1; g += kGroupRows) {
    const int64_t gend = std::min(g + kGroupRows, r1);
    std::fill(part, part + (gend - g) * batch * lanes, 0.0f);
    for (int64_t kb = 0; kb < kvec; kb += kblock) {
      const int64_t ke = std::min(kb + kblock, kvec);
      int64_t r = g;
      for (; r + plan.rows_per_tile <= gend; r += plan.rows_per_tile) {
        plan.tile(w, cols, x, ldx, part + (r - g) * batch * lanes, r, kb, ke);
      }
      for (; r < gend; ++r) plan.one(w, cols, x, ldx, part + (r - g) * batch * lanes, r, kb, ke);
    }
    for (int64_t r = g; r < gend; ++r) {
      for (int64_t j = 0; j < batch; ++j) {
        const float* p = part + ((r - g) * batch + j) * lanes;
        float s = 0;
        for (int64_t l = 0; l < lanes; ++l) s += p[l];
        for (int64_t k = kvec; k < cols; ++k) s += w[r * cols + k] * x[j * ldx + k];
        y[j * rows + r] = s;
      }
    }
  }
}

TilePlan plan_for(int64_t batch) {
  if (batch < 1 || batch > kMaxBatch) return {0, 0, nullptr, nullptr};
  switch (isa()) {
    case Isa::kAvx512:
      return kAvx512Plans[batch - 1];
    case Isa::kAvx2:
      return kAvx2Plans[batch - 1];
    case Isa::kScalar:
      break;
  }
  return {0, 0, nullptr, nullptr};
}

}  // namespace

const char* reference_isa() noexcept {
  switch (isa()) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

ThreadTeam::ThreadTeam(int threads) : size_(std::max(1, threads)) {
  workers_.reserve(static_cast<size_t>(size_ - 1));
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadTeam::~ThreadTeam() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadTeam::run(const std::function<void(int, int)>& job) {
  if (size_ == 1) {
    job(0, 1);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    pending_ = size_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  job(0, size_);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadTeam::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int)>* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(index, size_);
    std::lock_guard<std::mutex> lock(mu_);
    if (--pending_ == 0) done_.notify_one();
  }
}

void slice_of(size_t n, size_t align, int index, int count, size_t* begin, size_t* end) {
  const size_t units = (n + align - 1) / align;
  const size_t per = (units + static_cast<size_t>(count) - 1) / static_cast<size_t>(count);
  *begin = std::min(n, static_cast<size_t>(index) * per * align);
  *end = std::min(n, *begin + per * align);
}

void parallel_memcpy(ThreadTeam& team, void* dst, const void* src, size_t bytes) {
  team.run([&](int index, int count) {
    size_t b = 0, e = 0;
    slice_of(bytes, 64, index, count, &b, &e);
    if (e > b) std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, e - b);
  });
}

uint64_t parallel_stream_read(ThreadTeam& team, const std::vector<const void*>& buffers,
                              const std::vector<size_t>& sizes) {
  std::vector<uint64_t> sums(static_cast<size_t>(team.size()) * 8, 0);  // 8: no false sharing
  team.run([&](int index, int count) {
    uint64_t sum = 0;
    for (size_t i = 0; i < buffers.size(); ++i) {
      size_t b = 0, e = 0;
      slice_of(sizes[i], 64, index, count, &b, &e);
      if (e > b) sum += stream(static_cast<const unsigned char*>(buffers[i]) + b, e - b);
    }
    sums[static_cast<size_t>(index) * 8] = sum;
  });
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  return total;
}

void dense_gemm_f32(ThreadTeam& team, const float* w, int64_t rows, int64_t cols, const float* x,
                    int64_t batch, float* y) {
  const TilePlan plan = plan_for(batch);
  // x rows a power of two apart (4096 floats) share one L1 set, and 16 of them overflow its 8
  // ways: every x load then misses L1 (batch 16 ran at a quarter of its FMA rate). A copy
  // with rows one cache line further apart spreads them over the sets.
  const int64_t ldx = cols + 16;
  std::vector<float> padded(static_cast<size_t>(batch * ldx));
  for (int64_t j = 0; j < batch; ++j) {
    std::memcpy(padded.data() + j * ldx, x + j * cols, static_cast<size_t>(cols) * sizeof(float));
  }
  team.run([&](int index, int count) {
    size_t b = 0, e = 0;
    slice_of(static_cast<size_t>(rows), static_cast<size_t>(kGroupRows), index, count, &b, &e);
    const auto r0 = static_cast<int64_t>(b), r1 = static_cast<int64_t>(e);
    if (plan.tile == nullptr) {
      rows_scalar(w, rows, cols, x, batch, y, r0, r1);
    } else {
      rows_vector(plan, w, rows, cols, padded.data(), ldx, batch, y, r0, r1);
    }
  });
}

void dense_gemm_f32_scalar(const float* w, int64_t rows, int64_t cols, const float* x,
                           int64_t batch, float* y) {
  rows_scalar(w, rows, cols, x, batch, y, 0, rows);
}

}  // namespace qforge::cli::bench
