// R7 for the gptq plugin (see gptq_bench.hpp).
//
// As hqq's bench: figures come from DRAM (the packed layer is replicated over >= 1 GiB and calls
// rotate through the copies), calls are queued behind a spin kernel so cudaEvents time the GPU
// work alone; median of N batches after a warm-up batch. Layers are random words with random F16
// scales (no CPU quantize of 45M weights on the clock). Bytes counted: dequantize reads qweight +
// qzeros + scales + g_idx and writes F16; GEMV reads the same plus x and writes y.
#include "gptq_bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

void bench_shape(const Plugin& plugin, int64_t out, int64_t in, bool act_order, cudaStream_t s,
                 int iterations, double copy, Report& report) {
  const int64_t group = 128, groups = in / group;
  const std::string label = std::string("4-bit g128 ") + (act_order ? "act-order " : "") +
                            std::to_string(out) + "x" + std::to_string(in);
  Quantizer q(plugin.method("gptq"), R"({"bits": 4, "group_size": 128, "sym": true})");
  if (!q.ok()) {
    report.result(false, "gptq bench create", q.error());
    return;
  }
  const DLDataType i32{kDLInt, 32, 1};
  std::mt19937 rng(17);
  std::vector<int32_t> qweight(static_cast<size_t>(in / 8 * out));
  for (auto& w : qweight) w = static_cast<int32_t>(rng());
  std::vector<int32_t> qzeros(static_cast<size_t>(groups * out / 8));
  for (auto& z : qzeros) z = static_cast<int32_t>(rng());
  std::vector<float> scales(static_cast<size_t>(groups * out));
  std::uniform_real_distribution<float> sd(1e-3f, 4e-3f);
  for (auto& v : scales) v = sd(rng);
  const auto scales_b = to_bytes(scales, dtype_f16());
  std::vector<int32_t> g_idx(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i) g_idx[static_cast<size_t>(i)] = static_cast<int32_t>(i / group);
  if (act_order) std::shuffle(g_idx.begin(), g_idx.end(), rng);
  bench_packed_layer(q, "gptq", label, out, in,
                     {{"qweight", i32, {in / 8, out}, qweight.data(), qweight.size() * 4},
                      {"qzeros", i32, {groups, out / 8}, qzeros.data(), qzeros.size() * 4},
                      {"scales", dtype_f16(), {groups, out}, scales_b.data(), scales_b.size()},
                      {"g_idx", i32, {in}, g_idx.data(), g_idx.size() * 4}},
                     s, iterations, copy, report);
}

}  // namespace

void run_gptq_bench(const Plugin& plugin, Report& report, int iterations, double copy) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  struct {
    int64_t out, in;
    bool act_order;
  } shapes[] = {
      {4096, 4096, false}, {11008, 4096, false}, {4096, 11008, false}, {4096, 4096, true}};
  for (const auto& sh : shapes) {
    bench_shape(plugin, sh.out, sh.in, sh.act_order, s, iterations, copy, report);
  }
  cudaStreamDestroy(s);
}

}  // namespace qforge::gpu_harness
