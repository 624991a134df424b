// R7 for the hqq plugin (see hqq_bench.hpp).
//
// As the fp8 bench: figures come from DRAM (the packed weight is replicated over >= 1 GiB and
// calls rotate through the copies), and calls are queued behind a spin kernel so cudaEvents time
// the GPU work alone; median of N batches after a warm-up batch. Layers are random codes with
// random BF16 scale / zero (no CPU quantize of 45M weights on the clock); their meta fields stay
// in host memory, so no call reads anything back and whole hook calls are timed. Bytes counted:
// dequantize reads W_q + scale + zero and writes BF16; GEMV reads W_q + scale + zero + x and
// writes y.
#include "hqq_bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

using Tensors = std::vector<std::unique_ptr<OwnedTensor>>;

DLDataType dtype_of(uint8_t code, uint8_t bits) {
  DLDataType d{};
  d.code = code;
  d.bits = bits;
  d.lanes = 1;
  return d;
}

// hqq's encoded meta fields of an axis-1 layer, in host memory.
Tensors meta_fields(int64_t out, int64_t in, int bits, int64_t group) {
  Tensors m;
  const int64_t shape[2] = {out, in};
  const int32_t nbits = bits, gs = static_cast<int32_t>(group), axis = 1;
  const std::string packing = bits == 4 ? "4bit_u8" : "2bit_u8";
  m.push_back(make_tensor("shape", dtype_of(kDLInt, 64), {2}, false, shape));
  m.push_back(make_tensor("nbits", dtype_of(kDLInt, 32), {}, false, &nbits));
  m.push_back(make_tensor("group_size", dtype_of(kDLInt, 32), {}, false, &gs));
  m.push_back(make_tensor("axis", dtype_of(kDLInt, 32), {}, false, &axis));
  m.push_back(make_tensor("packing", dtype_u8(), {static_cast<int64_t>(packing.size())}, false,
                          packing.data()));
  return m;
}

void bench_shape(const Plugin& plugin, int64_t out, int64_t in, int bits, cudaStream_t s,
                 int iterations, double copy, Report& report) {
  const int64_t group = 64;
  const std::string label =
      std::to_string(bits) + "-bit g64 " + std::to_string(out) + "x" + std::to_string(in);
  Quantizer q(plugin.method("hqq"),
              "{\"nbits\": " + std::to_string(bits) + ", \"group_size\": 64}");
  if (!q.ok()) {
    report.result(false, "hqq bench create", q.error());
    return;
  }
  const int64_t n = out * in, groups = n / group, slices = 8 / bits;
  const int64_t wq_bytes = n / slices;
  qf_module_info mod = module_info("bench", QF_MODULE_LINEAR, out, in, dtype_bf16());
  qf_call_ctx gc = gpu_call(s);
  std::mt19937 rng(17);
  std::vector<uint8_t> codes(static_cast<size_t>(wq_bytes));
  for (auto& c : codes) c = static_cast<uint8_t>(rng() & 0xFF);
  std::vector<float> scale(static_cast<size_t>(groups)), zero(static_cast<size_t>(groups));
  std::uniform_real_distribution<float> sd(1e-3f, 4e-3f),
      zd(0.0f, static_cast<float>((1 << bits) - 1));
  for (auto& v : scale) v = sd(rng);
  for (auto& v : zero) v = zd(rng);
  const auto scale_b = to_bytes(scale, dtype_bf16()), zero_b = to_bytes(zero, dtype_bf16());
  const Tensors meta = meta_fields(out, in, bits, group);
  const int copies =
      static_cast<int>(std::max<size_t>(2, kColdBytes / static_cast<size_t>(wq_bytes)));
  std::vector<Tensors> sets(static_cast<size_t>(copies));
  std::vector<std::vector<qf_named_tensor>> items(static_cast<size_t>(copies));
  std::vector<qf_tensor_list> lists(static_cast<size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    auto& set = sets[static_cast<size_t>(c)];
    set.push_back(make_tensor("W_q", dtype_u8(), {wq_bytes / group, group}, true, codes.data()));
    set.push_back(make_tensor("scale", dtype_bf16(), {groups, 1}, true, scale_b.data()));
    set.push_back(make_tensor("zero", dtype_bf16(), {groups, 1}, true, zero_b.data()));
    auto& it = items[static_cast<size_t>(c)];
    for (const auto& t : set) it.push_back(qf_named_tensor{t->name.c_str(), &t->t});
    for (const auto& t : meta) it.push_back(qf_named_tensor{t->name.c_str(), &t->t});
    lists[static_cast<size_t>(c)] = qf_tensor_list{sizeof(qf_tensor_list), QF_ABI_VERSION,
                                                   static_cast<int64_t>(it.size()), it.data()};
  }
  const double meta_bytes = static_cast<double>(groups) * 4;  // BF16 scale + zero

  // Dequantize to BF16: every call writes into the same arena slot.
  void* arena = nullptr;
  const size_t arena_bytes = static_cast<size_t>(n) * 2 + (1 << 20);
  if (cudaMalloc(&arena, arena_bytes) != cudaSuccess) {
    report.result(false, "hqq bench " + label, "cudaMalloc arena failed");
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
    report.result(false, "hqq bench dequantize " + label, err);
    return;
  }
  const double deq_bytes = static_cast<double>(wq_bytes) + meta_bytes + static_cast<double>(n) * 2;
  const double deq_gbps = deq_bytes / (deq_ms * 1e-3) / kGB;

  // GEMV: x [1, in] BF16.
  const auto xb = to_bytes(random_values(in, 3, 1.0f), dtype_bf16());
  auto x = make_tensor("x", dtype_bf16(), {1, in}, true, xb.data());
  auto y = make_tensor("y", dtype_bf16(), {1, out}, true);
  const double gemv_ms = gpu_ms_per_call(
      s, 2 * copies, iterations,
      [&](int k) {
        return take_status(q.method()->linear_forward(
            q.raw(), &gc, &mod, &lists[static_cast<size_t>(k % copies)], &x->t, nullptr, &y->t));
      },
      err);
  if (!err.empty()) {
    report.result(false, "hqq bench gemv " + label, err);
    return;
  }
  const double gemv_bytes = static_cast<double>(wq_bytes) + meta_bytes +
                            static_cast<double>(in) * 2 + static_cast<double>(out) * 2;
  const double gemv_gbps = gemv_bytes / (gemv_ms * 1e-3) / kGB;
  std::printf(
      "R7 hqq %-22s dequantize->bf16: %7.1f GB/s ratio %.2f (%.1f us/call) | GEMV: %7.1f GB/s "
      "ratio %.2f (target >= 0.7; %.1f us/call)\n",
      label.c_str(), deq_gbps, copy > 0 ? deq_gbps / copy : 0.0, deq_ms * 1e3, gemv_gbps,
      copy > 0 ? gemv_gbps / copy : 0.0, gemv_ms * 1e3);
  std::fflush(stdout);
}

}  // namespace

void run_hqq_bench(const Plugin& plugin, Report& report, int iterations, double copy) {
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  struct {
    int64_t out, in;
    int bits;
  } shapes[] = {{4096, 4096, 4}, {11008, 4096, 4}, {4096, 11008, 4}, {4096, 4096, 2}};
  for (const auto& sh : shapes) {
    bench_shape(plugin, sh.out, sh.in, sh.bits, s, iterations, copy, report);
  }
  cudaStreamDestroy(s);
}

}  // namespace qforge::gpu_harness
