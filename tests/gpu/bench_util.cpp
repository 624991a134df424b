// Shared bench timing (see bench_util.hpp).
#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "host_shim.hpp"
#include "spin.hpp"

namespace qforge::gpu_harness {

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

void bench_packed_layer(const Quantizer& q, const std::string& method, const std::string& label,
                        int64_t out, int64_t in, const std::vector<LayerTensor>& layer,
                        cudaStream_t s, int iterations, double copy, Report& report) {
  const qf_method* m = q.method();
  qf_module_info mod = module_info("bench", QF_MODULE_LINEAR, out, in, dtype_f16());
  qf_call_ctx gc = gpu_call(s);
  size_t layer_bytes = 0;
  for (const LayerTensor& t : layer) layer_bytes += t.bytes;
  const int copies = static_cast<int>(std::max<size_t>(2, kColdBytes / layer_bytes));
  std::vector<std::vector<std::unique_ptr<OwnedTensor>>> sets(static_cast<size_t>(copies));
  std::vector<std::vector<qf_named_tensor>> items(static_cast<size_t>(copies));
  std::vector<qf_tensor_list> lists(static_cast<size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    auto& set = sets[static_cast<size_t>(c)];
    for (const LayerTensor& t : layer) {
      set.push_back(make_tensor(t.name, t.dtype, t.shape, true, t.data));
    }
    auto& it = items[static_cast<size_t>(c)];
    for (const auto& t : set) it.push_back(qf_named_tensor{t->name.c_str(), &t->t});
    lists[static_cast<size_t>(c)] = qf_tensor_list{sizeof(qf_tensor_list), QF_ABI_VERSION,
                                                   static_cast<int64_t>(it.size()), it.data()};
  }
  const int64_t n = out * in;
  void* arena = nullptr;
  const size_t arena_bytes = static_cast<size_t>(n) * 2 + (1 << 20);
  if (cudaMalloc(&arena, arena_bytes) != cudaSuccess) {
    report.result(false, method + " bench " + label, "cudaMalloc arena failed");
    return;
  }
  Sink dense;
  dense.use_arena(arena, arena_bytes);
  std::string err;
  const double deq_ms = gpu_ms_per_call(
      s, copies, iterations,
      [&](int k) {
        dense.reset();
        return take_status(
            m->dequantize(q.raw(), &gc, &mod, &lists[static_cast<size_t>(k)], dense.raw()));
      },
      err);
  dense.reset();
  cudaFree(arena);
  if (!err.empty()) {
    report.result(false, method + " bench dequantize " + label, err);
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
        return take_status(m->linear_forward(
            q.raw(), &gc, &mod, &lists[static_cast<size_t>(k % copies)], &x->t, nullptr, &y->t));
      },
      err);
  if (!err.empty()) {
    report.result(false, method + " bench gemv " + label, err);
    return;
  }
  const double gemv_bytes =
      static_cast<double>(layer_bytes) + static_cast<double>(in) * 2 + static_cast<double>(out) * 2;
  const double gemv_gbps = gemv_bytes / (gemv_ms * 1e-3) / kGB;
  std::printf(
      "R7 %s %-32s dequantize->f16: %7.1f GB/s ratio %.2f (%.1f us/call) | GEMV: %7.1f GB/s "
      "ratio %.2f (target >= 0.7; %.1f us/call)\n",
      method.c_str(), label.c_str(), deq_gbps, copy > 0 ? deq_gbps / copy : 0.0, deq_ms * 1e3,
      gemv_gbps, copy > 0 ? gemv_gbps / copy : 0.0, gemv_ms * 1e3);
  std::fflush(stdout);
}

}  // namespace qforge::gpu_harness
