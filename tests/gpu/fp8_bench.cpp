// R7 for the fp8 plugin (see fp8_bench.hpp).
//
// As the bnb bench: figures come from DRAM (the quantized weight is replicated over >= 1 GiB and
// calls rotate through the copies), and calls are queued behind a spin kernel so cudaEvents
// time the GPU work alone; median of N batches after a warm-up batch. Neither dequantize nor
// linear_forward synchronises, so whole hook calls are timed. Bytes counted: dequantize reads
// codes + scales and writes BF16; GEMV reads codes + scales + x and writes y.
#include "fp8_bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

void bench_shape(const Plugin& plugin, int64_t out, int64_t in, cudaStream_t s, int iterations,
                 double copy, Report& report) {
  const std::string label = std::to_string(out) + "x" + std::to_string(in);
  Quantizer q(plugin.method("fp8"), R"({"quant_method": "fp8"})");
  if (!q.ok()) {
    report.result(false, "fp8 bench create", q.error());
    return;
  }
  const int64_t n = out * in;
  qf_module_info mod = module_info("bench", QF_MODULE_LINEAR, out, in, dtype_bf16());
  qf_call_ctx gc = gpu_call(s);
  Sink quantized;
  {
    const auto bytes = to_bytes(random_values(n, 7, 0.02f), dtype_bf16());
    auto w = make_tensor("weight", dtype_bf16(), {out, in}, true, bytes.data());
    const std::string err = take_status(
        q.method()->quantize(q.raw(), &gc, &mod, &w->t, nullptr, nullptr, quantized.raw()));
    if (!err.empty()) {
      report.result(false, "fp8 bench quantize " + label, err);
      return;
    }
  }
  const OwnedTensor* codes = quantized.find("weight");
  const OwnedTensor* scales = quantized.find("weight_scale_inv");
  if (codes == nullptr || scales == nullptr) {
    report.result(false, "fp8 bench " + label, "quantize wrote no weight / weight_scale_inv");
    return;
  }
  const int64_t scale_bytes = byte_size(scales->t);
  const int copies = static_cast<int>(std::max<size_t>(2, kColdBytes / static_cast<size_t>(n)));
  std::vector<std::vector<std::unique_ptr<OwnedTensor>>> sets(static_cast<size_t>(copies));
  std::vector<std::vector<qf_named_tensor>> items(static_cast<size_t>(copies));
  std::vector<qf_tensor_list> lists(static_cast<size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    auto& set = sets[static_cast<size_t>(c)];
    set.push_back(make_tensor("weight", codes->t.dtype, codes->shape, true));
    set.push_back(make_tensor("weight_scale_inv", scales->t.dtype, scales->shape, true));
    cudaMemcpy(set[0]->t.data, codes->t.data, static_cast<size_t>(n), cudaMemcpyDeviceToDevice);
    cudaMemcpy(set[1]->t.data, scales->t.data, static_cast<size_t>(scale_bytes),
               cudaMemcpyDeviceToDevice);
    lists[static_cast<size_t>(c)] = list_of(set, items[static_cast<size_t>(c)]);
  }

  // Dequantize to BF16: every call writes into the same arena slot.
  void* arena = nullptr;
  const size_t arena_bytes = static_cast<size_t>(n) * 2 + (1 << 20);
  if (cudaMalloc(&arena, arena_bytes) != cudaSuccess) {
    report.result(false, "fp8 bench " + label, "cudaMalloc arena failed");
    return;
  }
  Sink dense;
  dense.use_arena(arena, arena_bytes);
  std::string err;
  const double deq_ms = gpu_ms_per_call(
      s, copies, iterations,
      [&](int k) {
        dense.reset();
        return take_status(q.method()->dequantize(q.raw(), &gc, &mod,
                                                  &lists[static_cast<size_t>(k)], dense.raw()));
      },
      err);
  dense.reset();
  cudaFree(arena);
  if (!err.empty()) {
    report.result(false, "fp8 bench dequantize " + label, err);
    return;
  }
  const double deq_bytes = static_cast<double>(n) * 3 + static_cast<double>(scale_bytes);
  const double deq_gbps = deq_bytes / (deq_ms * 1e-3) / kGB;

  // GEMV: x [1, in] BF16, default kernel (native on sm_89+), then the emulation kernel.
  const auto xb = to_bytes(random_values(in, 3, 1.0f), dtype_bf16());
  auto x = make_tensor("x", dtype_bf16(), {1, in}, true, xb.data());
  auto y = make_tensor("y", dtype_bf16(), {1, out}, true);
  auto gemv = [&](int k) {
    return take_status(q.method()->linear_forward(
        q.raw(), &gc, &mod, &lists[static_cast<size_t>(k % copies)], &x->t, nullptr, &y->t));
  };
  const double gemv_ms = gpu_ms_per_call(s, 2 * copies, iterations, gemv, err);
  if (!err.empty()) {
    report.result(false, "fp8 bench gemv " + label, err);
    return;
  }
  setenv("QFORGE_FP8_CUDA_PATH", "emulation", 1);
  const double emu_ms = gpu_ms_per_call(s, copies, std::min(iterations, 5), gemv, err);
  unsetenv("QFORGE_FP8_CUDA_PATH");
  const double gemv_bytes = static_cast<double>(n) + static_cast<double>(scale_bytes) +
                            static_cast<double>(in) * 2 + static_cast<double>(out) * 2;
  const double gemv_gbps = gemv_bytes / (gemv_ms * 1e-3) / kGB;

  // Block-scaled GEMM, 2048 tokens, default kernel (weight resident in L2 or not: one copy).
  const int64_t m = 2048;
  const auto gxb = to_bytes(random_values(m * in, 11, 1.0f), dtype_bf16());
  auto gx = make_tensor("x", dtype_bf16(), {m, in}, true, gxb.data());
  auto gy = make_tensor("y", dtype_bf16(), {m, out}, true);
  std::string gerr;
  const double gemm_ms = gpu_ms_per_call(
      s, 2, std::min(iterations, 5),
      [&](int) {
        return take_status(
            q.method()->linear_forward(q.raw(), &gc, &mod, &lists[0], &gx->t, nullptr, &gy->t));
      },
      gerr);
  const double tflops =
      gerr.empty() ? 2.0 * static_cast<double>(m) * static_cast<double>(n) / (gemm_ms * 1e-3) / 1e12
                   : 0.0;
  std::printf(
      "R7 %-11s fp8 128x128 dequantize->bf16: %7.1f GB/s ratio %.2f (%.1f us/call) | GEMV "
      "(default kernel): %7.1f GB/s ratio %.2f (target >= 0.7; %.1f us/call; emulation kernel "
      "%.1f us/call) | GEMM %lldx%lldx%lld: %.1f TFLOP/s (%.3f ms)%s\n",
      label.c_str(), deq_gbps, copy > 0 ? deq_gbps / copy : 0.0, deq_ms * 1e3, gemv_gbps,
      copy > 0 ? gemv_gbps / copy : 0.0, gemv_ms * 1e3, err.empty() ? emu_ms * 1e3 : -1.0,
      static_cast<long long>(m), static_cast<long long>(out), static_cast<long long>(in), tflops,
      gemm_ms, gerr.empty() ? "" : (" [GEMM failed: " + gerr + "]").c_str());
  std::fflush(stdout);
}

}  // namespace

void run_fp8_bench(const Plugin& plugin, Report& report, int iterations, double copy) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  struct {
    int64_t out, in;
  } shapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (const auto& sh : shapes) bench_shape(plugin, sh.out, sh.in, s, iterations, copy, report);
  std::printf(
      "R7 FP8 GEMM over cuBLASLt BF16 (target >= 1.4): not measured (no cuBLASLt in the "
      "bundle; docs/fp8.md)\n");
  cudaStreamDestroy(s);
}

}  // namespace qforge::gpu_harness
