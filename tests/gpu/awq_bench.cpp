// R7 for the awq plugin (see awq_bench.hpp).
//
// As gptq's bench: figures come from DRAM (the packed layer is replicated over >= 1 GiB and calls
// rotate through the copies), calls are queued behind a spin kernel so cudaEvents time the GPU
// work alone; median of N batches after a warm-up batch. Layers are random words with random F16
// scales (no CPU quantize of 45M weights on the clock). Bytes counted: dequantize reads qweight +
// qzeros + scales and writes F16; GEMV reads the same plus x and writes y.
#include "awq_bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

// AutoAWQ's calculate_zeros_width for group 128: one word per 8 groups.
int64_t gemv_zeros_width_g128(int64_t in) { return (in / 128 + 7) / 8; }

void bench_shape(const Plugin& plugin, int64_t out, int64_t in, bool gemv, cudaStream_t s,
                 int iterations, double copy, Report& report) {
  const int64_t group = 128, groups = in / group;
  const std::string label = std::string("4-bit g128 ") + (gemv ? "gemv " : "gemm ") +
                            std::to_string(out) + "x" + std::to_string(in);
  Quantizer q(plugin.method("awq"),
              gemv ? R"({"group_size": 128, "version": "gemv"})" : R"({"group_size": 128})");
  if (!q.ok()) {
    report.result(false, "awq bench create", q.error());
    return;
  }
  const DLDataType i32{kDLInt, 32, 1};
  std::mt19937 rng(17);
  const int64_t width = gemv_zeros_width_g128(in);
  const std::vector<int64_t> qweight_shape =
      gemv ? std::vector<int64_t>{out, in / 8} : std::vector<int64_t>{in, out / 8};
  const std::vector<int64_t> qzeros_shape =
      gemv ? std::vector<int64_t>{out, width} : std::vector<int64_t>{groups, out / 8};
  const std::vector<int64_t> scales_shape =
      gemv ? std::vector<int64_t>{out, 8 * width} : std::vector<int64_t>{groups, out};
  std::vector<int32_t> qweight(static_cast<size_t>(in / 8 * out));
  for (auto& w : qweight) w = static_cast<int32_t>(rng());
  std::vector<int32_t> qzeros(static_cast<size_t>(qzeros_shape[0] * qzeros_shape[1]));
  for (auto& z : qzeros) z = static_cast<int32_t>(rng());
  std::vector<float> scales(static_cast<size_t>(scales_shape[0] * scales_shape[1]));
  std::uniform_real_distribution<float> sd(1e-3f, 4e-3f);
  for (auto& v : scales) v = sd(rng);
  const auto scales_b = to_bytes(scales, dtype_f16());
  bench_packed_layer(q, "awq", label, out, in,
                     {{"qweight", i32, qweight_shape, qweight.data(), qweight.size() * 4},
                      {"qzeros", i32, qzeros_shape, qzeros.data(), qzeros.size() * 4},
                      {"scales", dtype_f16(), scales_shape, scales_b.data(), scales_b.size()}},
                     s, iterations, copy, report);
}

}  // namespace

void run_awq_bench(const Plugin& plugin, Report& report, int iterations, double copy) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  struct {
    int64_t out, in;
    bool gemv;
  } shapes[] = {
      {4096, 4096, false}, {11008, 4096, false}, {4096, 11008, false}, {4096, 4096, true}};
  for (const auto& sh : shapes)
    bench_shape(plugin, sh.out, sh.in, sh.gemv, s, iterations, copy, report);
  cudaStreamDestroy(s);
}

}  // namespace qforge::gpu_harness
