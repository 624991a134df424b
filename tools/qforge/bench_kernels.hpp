// The references `qforge bench` divides by: multi-threaded memcpy, a read-only streaming kernel
// and a dense fp32 GEMV/GEMM. They are the yardstick, so they are written to be fast (AVX-512
// or AVX2 chosen at run time, scalar fallback) and run on a persistent thread team: a reference
// that is slow for avoidable reasons would flatter the plugin.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qforge::cli::bench {

// Which instruction set the references use on this machine: "avx512", "avx2" or "scalar".
const char* reference_isa() noexcept;

// A fixed set of worker threads that runs one job at a time: job(thread_index, thread_count)
// on every thread, the caller being thread 0. Not thread-safe: one caller at a time.
class ThreadTeam {
 public:
  explicit ThreadTeam(int threads);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const noexcept { return size_; }
  void run(const std::function<void(int, int)>& job);

 private:
  void work(int index);
  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// [begin, end) of `n` items for thread `index` of `count`, in units of `align` items (the last
// thread takes the remainder), so slices start on cache-line boundaries.
void slice_of(size_t n, size_t align, int index, int count, size_t* begin, size_t* end);

// Copies `bytes` from src to dst, split across the team (glibc memcpy per slice).
void parallel_memcpy(ThreadTeam& team, void* dst, const void* src, size_t bytes);

// Reads every byte of the buffers once (vector loads, summed so the loads are not dead) split
// across the team; returns the sum so the caller can keep it.
uint64_t parallel_stream_read(ThreadTeam& team, const std::vector<const void*>& buffers,
                              const std::vector<size_t>& sizes);

// y[b, rows] = x[b, cols] @ W[rows, cols]^T in fp32, rows split across the team. W is streamed
// once per call whatever the batch (batch <= 16).
void dense_gemm_f32(ThreadTeam& team, const float* w, int64_t rows, int64_t cols, const float* x,
                    int64_t batch, float* y);

// The scalar version of dense_gemm_f32 on one thread: the oracle for the vector paths.
void dense_gemm_f32_scalar(const float* w, int64_t rows, int64_t cols, const float* x,
                           int64_t batch, float* y);

}  // namespace qforge::cli::bench
