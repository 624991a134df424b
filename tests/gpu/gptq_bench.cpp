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
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "host_shim.hpp"
#include "spin.hpp"

namespace qforge::gpu_harness {
namespace {

using Tensors = std::vector<std::unique_ptr<OwnedTensor>>;

constexpr double kGB = 1e9;
constexpr size_t kColdBytes = size_t{1} << 30;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// GPU milliseconds per call of `call(k)`, k < batch, run back to back behind a spin kernel.
double gpu_ms_per_call(cudaStream_t s, int batch, int iterations,
                       const std::function<std::string(int)>& call, std::string& err) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double spin_ms = 20.0;
  std::vector<double> times;
  for (int rep = 0; rep < iterations + 1 && err.empty(); ++rep) {
    spin(s, spin_ms);
    cudaEventRecord(e0, s);
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < batch && err.empty(); ++k) err = call(k);
    const double host_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    cudaEventRecord(e1, s);
    const cudaError_t e = cudaEventSynchronize(e1);
    if (e != cudaSuccess) err = cudaGetErrorString(e);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (host_ms > 0.8 * spin_ms && spin_ms < 5000.0) {
      spin_ms = 2.0 * host_ms;  // the stream ran dry while enqueuing: redo with a longer spin
      --rep;
      continue;
    }
    if (rep > 0) times.push_back(static_cast<double>(ms) / batch);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(times);
}

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
  qf_module_info mod = module_info("bench", QF_MODULE_LINEAR, out, in, dtype_f16());
  qf_call_ctx gc = gpu_call(s);
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
  const size_t layer_bytes =
      qweight.size() * 4 + qzeros.size() * 4 + scales_b.size() + g_idx.size() * 4;
  const int copies = static_cast<int>(std::max<size_t>(2, kColdBytes / layer_bytes));
  std::vector<Tensors> sets(static_cast<size_t>(copies));
  std::vector<std::vector<qf_named_tensor>> items(static_cast<size_t>(copies));
  std::vector<qf_tensor_list> lists(static_cast<size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    auto& set = sets[static_cast<size_t>(c)];
    set.push_back(make_tensor("qweight", i32, {in / 8, out}, true, qweight.data()));
    set.push_back(make_tensor("qzeros", i32, {groups, out / 8}, true, qzeros.data()));
    set.push_back(make_tensor("scales", dtype_f16(), {groups, out}, true, scales_b.data()));
    set.push_back(make_tensor("g_idx", i32, {in}, true, g_idx.data()));
    auto& it = items[static_cast<size_t>(c)];
    for (const auto& t : set) it.push_back(qf_named_tensor{t->name.c_str(), &t->t});
    lists[static_cast<size_t>(c)] = qf_tensor_list{sizeof(qf_tensor_list), QF_ABI_VERSION,
                                                   static_cast<int64_t>(it.size()), it.data()};
  }
  const int64_t n = out * in;
  void* arena = nullptr;
  const size_t arena_bytes = static_cast<size_t>(n) * 2 + (1 << 20);
  if (cudaMalloc(&arena, arena_bytes) != cudaSuccess) {
    report.result(false, "gptq bench " + label, "cudaMalloc arena failed");
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
    report.result(false, "gptq bench dequantize " + label, err);
    return;
  }
  const double deq_bytes = static_cast<double>(layer_bytes) + static_cast<double>(n) * 2;
  const double deq_gbps = deq_bytes / (deq_ms * 1e-3) / kGB;

  const auto xb = to_bytes(random_values(in, 3, 1.0f), dtype_f16());
  auto x = make_tensor("x", dtype_f16(), {1, in}, true, xb.data());
  auto y = make_tensor("y", dtype_f16(), {1, out}, true);
  const double gemv_ms = gpu_ms_per_call(
      s, 2 * copies, iterations,
      [&](int k) {
        return take_status(q.method()->linear_forward(
            q.raw(), &gc, &mod, &lists[static_cast<size_t>(k % copies)], &x->t, nullptr, &y->t));
      },
      err);
  if (!err.empty()) {
    report.result(false, "gptq bench gemv " + label, err);
    return;
  }
  const double gemv_bytes =
      static_cast<double>(layer_bytes) + static_cast<double>(in) * 2 + static_cast<double>(out) * 2;
  const double gemv_gbps = gemv_bytes / (gemv_ms * 1e-3) / kGB;
  std::printf(
      "R7 gptq %-32s dequantize->f16: %7.1f GB/s ratio %.2f (%.1f us/call) | GEMV: %7.1f GB/s "
      "ratio %.2f (target >= 0.7; %.1f us/call)\n",
      label.c_str(), deq_gbps, copy > 0 ? deq_gbps / copy : 0.0, deq_ms * 1e3, gemv_gbps,
      copy > 0 ? gemv_gbps / copy : 0.0, gemv_ms * 1e3);
  std::fflush(stdout);
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
