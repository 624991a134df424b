// R7 bench (see bench.hpp).
//
// Every figure comes from DRAM, not the 50+ MB L2: the copy moves a 1 GiB buffer, and GEMV and
// quantize rotate through enough weight copies that no call finds its weight in L2. GB/s counts
// bytes read plus bytes written (copy: 2 x size; GEMV: packed + absmax + x + y; quantize: the
// F16 weight + packed + absmax). Timing: after warm-up, median of N. Copy: cudaEvents around
// each copy. GEMV: batches of calls queued behind a spin kernel, so the events time
// the GPU work alone (the host's per-call time is printed beside it). The quantize hook
// synchronises internally (NaN check), so it is timed by wall clock around the whole call.
#include "bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "host_shim.hpp"
#include "spin.hpp"

namespace qforge::gpu_harness {
namespace {

bool ok_cuda(cudaError_t e, const char* what, Report& report) {
  if (e == cudaSuccess) return true;
  report.result(false, std::string("bench ") + what, cudaGetErrorString(e));
  return false;
}

struct Result {
  double gemv_gbps = 0.0;
  double gemv_gpu_us = 0.0;   // per call, back to back on the GPU
  double gemv_host_us = 0.0;  // per call, the hook's time on the host (checks + launch)
  double gemv_hot_us = 0.0;   // per call, weight resident in L2 (diagnostic)
  double quant_gbps = 0.0;
  double quant_ms = 0.0;  // per call, wall clock
};

Result bench_shape(const Plugin& plugin, int64_t out, int64_t in, cudaStream_t s, int iterations,
                   Report& report) {
  Result r;
  Quantizer q(plugin.method("bitsandbytes_4bit"),
              R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4"})");
  if (!q.ok()) {
    report.result(false, "bench create", q.error());
    return r;
  }
  const int64_t n = out * in;
  const size_t weight_bytes = static_cast<size_t>(n) * 2;  // f16
  const int copies = static_cast<int>(std::max<size_t>(2, kColdBytes / weight_bytes));
  qf_module_info mod = module_info("bench", QF_MODULE_LINEAR, out, in, dtype_f16());

  // Weights: one seeded F16 matrix, replicated so that rotation defeats the L2.
  const auto bytes = to_bytes(random_values(n, 7, 0.02f), dtype_f16());
  std::vector<std::unique_ptr<OwnedTensor>> weights;
  for (int c = 0; c < copies; ++c)
    weights.push_back(make_tensor("weight", dtype_f16(), {out, in}, true, bytes.data()));

  // Quantize: timed by wall clock (the hook synchronises), outputs into a reused arena.
  void* arena = nullptr;
  const size_t arena_bytes = static_cast<size_t>(n) / 2 + static_cast<size_t>(n) / 8 + (1 << 20);
  if (!ok_cuda(cudaMalloc(&arena, arena_bytes * static_cast<size_t>(copies)), "cudaMalloc arena",
               report))
    return r;
  std::vector<std::unique_ptr<Sink>> quantized;
  std::vector<double> qtimes;
  qf_call_ctx gc = gpu_call(s);
  for (int i = 0; i < std::max(copies, iterations + 2); ++i) {
    const int c = i % copies;
    if (static_cast<int>(quantized.size()) <= c) {
      quantized.push_back(std::make_unique<Sink>());
      quantized.back()->use_arena(
          static_cast<unsigned char*>(arena) + arena_bytes * static_cast<size_t>(c), arena_bytes);
    } else {
      quantized[static_cast<size_t>(c)]->reset();
    }
    cudaStreamSynchronize(s);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string err = take_status(
        q.method()->quantize(q.raw(), &gc, &mod, &weights[static_cast<size_t>(c)]->t, nullptr,
                             nullptr, quantized[static_cast<size_t>(c)]->raw()));
    const auto t1 = std::chrono::steady_clock::now();
    if (!err.empty()) {
      report.result(false, "bench quantize", err);
      cudaFree(arena);
      return r;
    }
    if (i >= 2) qtimes.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  const double qbytes = static_cast<double>(weight_bytes) + static_cast<double>(n) / 2 +
                        static_cast<double>(n) / 64 * 4;
  r.quant_gbps = qbytes / median(qtimes) / kGB;
  weights.clear();

  // GEMV: x [1, in] F16, the blob kept in host memory (as a host would), rotating copies.
  std::vector<std::vector<std::unique_ptr<OwnedTensor>>> lists(static_cast<size_t>(copies));
  std::vector<std::vector<qf_named_tensor>> items(static_cast<size_t>(copies));
  std::vector<qf_tensor_list> tl(static_cast<size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    for (const auto& t : quantized[static_cast<size_t>(c)]->tensors()) {
      if (t->name.find("quant_state") != std::string::npos) {
        const auto blob = host_bytes(t->t);
        lists[static_cast<size_t>(c)].push_back(
            make_tensor(t->name, t->t.dtype, t->shape, false, blob.data()));
        items[static_cast<size_t>(c)].push_back({lists[static_cast<size_t>(c)].back()->name.c_str(),
                                                 &lists[static_cast<size_t>(c)].back()->t});
      } else {
        items[static_cast<size_t>(c)].push_back({t->name.c_str(), &t->t});
      }
    }
    tl[static_cast<size_t>(c)] =
        qf_tensor_list{sizeof(qf_tensor_list), QF_ABI_VERSION,
                       static_cast<int64_t>(items[static_cast<size_t>(c)].size()),
                       items[static_cast<size_t>(c)].data()};
  }
  const auto xb = to_bytes(random_values(in, 3, 1.0f), dtype_f16());
  auto x = make_tensor("x", dtype_f16(), {1, in}, true, xb.data());
  auto y = make_tensor("y", dtype_f16(), {1, out}, true);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  // Each batch: a spin kernel holds the stream while the host enqueues `batch` calls (every
  // weight copy twice), which then run back to back between the events: GPU time per call.
  // The host's own time per call (checks, launch) is reported beside it.
  const int batch = 2 * copies;
  double spin_ms = 20.0;
  std::vector<double> gtimes, htimes;
  for (int rep = 0; rep < iterations + 1; ++rep) {
    spin(s, spin_ms);
    cudaEventRecord(e0, s);
    const auto t0 = std::chrono::steady_clock::now();
    std::string err;
    for (int k = 0; k < batch && err.empty(); ++k) {
      err = take_status(q.method()->linear_forward(
          q.raw(), &gc, &mod, &tl[static_cast<size_t>(k % copies)], &x->t, nullptr, &y->t));
    }
    const double host_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    cudaEventRecord(e1, s);
    if (!err.empty()) {
      report.result(false, "bench gemv", err);
      break;
    }
    if (!ok_cuda(cudaEventSynchronize(e1), "gemv batch", report)) break;
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (host_ms > 0.8 * spin_ms) {
      spin_ms = 2.0 * host_ms;  // the stream ran dry while enqueuing: redo with a longer spin
      continue;
    }
    if (rep > 0) {  // the first batch is warm-up
      gtimes.push_back(ms / batch);
      htimes.push_back(host_ms / batch);
    }
  }
  // Diagnostic: the same batches on one copy (weight resident in L2). Close to the cold figure
  // means the kernel is bound by its own latency/instructions, not by DRAM.
  std::vector<double> hot;
  for (int rep = 0; rep < 5; ++rep) {
    spin(s, spin_ms);
    cudaEventRecord(e0, s);
    for (int k = 0; k < batch; ++k) {
      take_status(q.method()->linear_forward(q.raw(), &gc, &mod, &tl[0], &x->t, nullptr, &y->t));
    }
    cudaEventRecord(e1, s);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (rep > 0) hot.push_back(ms / batch);
  }
  r.gemv_hot_us = median(hot) * 1e3;
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  r.gemv_host_us = median(htimes) * 1e3;
  r.gemv_gpu_us = median(gtimes) * 1e3;
  const double gbytes = static_cast<double>(n) / 2 + static_cast<double>(n) / 64 * 4 +
                        static_cast<double>(in) * 2 + static_cast<double>(out) * 2;
  if (!gtimes.empty()) r.gemv_gbps = gbytes / (median(gtimes) * 1e-3) / kGB;
  r.quant_ms = median(qtimes) * 1e3;
  quantized.clear();
  cudaFree(arena);
  return r;
}

}  // namespace

// Device-to-device copy bandwidth (read + write) of a 1 GiB buffer.
double copy_gbps(int iterations, Report& report) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  void* a = nullptr;
  void* b = nullptr;
  if (!ok_cuda(cudaMalloc(&a, kColdBytes), "cudaMalloc", report) ||
      !ok_cuda(cudaMalloc(&b, kColdBytes), "cudaMalloc", report)) {
    cudaFree(a);
    cudaStreamDestroy(s);
    return 0.0;
  }
  cudaMemset(a, 1, kColdBytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> times;
  for (int i = 0; i < iterations + 2; ++i) {
    cudaEventRecord(e0, s);
    cudaMemcpyAsync(b, a, kColdBytes, cudaMemcpyDeviceToDevice, s);
    cudaEventRecord(e1, s);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) times.push_back(ms);  // two warm-up copies
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  cudaStreamDestroy(s);
  return 2.0 * static_cast<double>(kColdBytes) / (median(times) * 1e-3) / kGB;
}

void run_bench(const Plugin& plugin, Report& report, int iterations, double copy) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  struct {
    const char* label;
    int64_t out, in;
  } shapes[] = {
      {"4096x4096", 4096, 4096}, {"11008x4096", 11008, 4096}, {"4096x11008", 4096, 11008}};
  for (const auto& sh : shapes) {
    const Result r = bench_shape(plugin, sh.out, sh.in, s, iterations, report);
    std::printf(
        "R7 %-11s nf4 GEMV: %7.1f GB/s ratio %.2f (target >= 0.7; %.1f us/call on the GPU, "
        "%.1f us/call host) | nf4 quantize (f16 in, whole hook): %7.1f GB/s ratio %.2f "
        "(target >= 0.6; %.3f ms/call)\n",
        sh.label, r.gemv_gbps, copy > 0 ? r.gemv_gbps / copy : 0.0, r.gemv_gpu_us, r.gemv_host_us,
        r.quant_gbps, copy > 0 ? r.quant_gbps / copy : 0.0, r.quant_ms);
    std::printf("    (diagnostic) %s GEMV with the weight resident in L2: %.1f us/call\n", sh.label,
                r.gemv_hot_us);
    std::fflush(stdout);
  }
  cudaStreamDestroy(s);
}

}  // namespace qforge::gpu_harness
