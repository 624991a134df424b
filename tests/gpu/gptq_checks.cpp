// GPU vs CPU checks of the gptq plugin (see gptq_checks.hpp). Every layer is quantized by the
// plugin's CPU path (round-to-nearest: no Hessian); the GPU hooks get device copies of its
// tensors. The CPU side runs the scalar kernels, the reference the vector ones are tested
// against bit for bit in the unit tests.
#include "gptq_checks.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "packed_case.hpp"

namespace qforge::gpu_harness {
namespace {

// Replaces g_idx by a shuffled one with every group still used (an act-order checkpoint's
// g_idx: input i's group is not i / group_size).
void permute_g_idx(Tensors& ts, uint32_t seed) {
  for (auto& t : ts) {
    if (t->name != "g_idx") continue;
    auto bytes = host_bytes(t->t);
    std::vector<int32_t> idx(bytes.size() / 4);
    std::memcpy(idx.data(), bytes.data(), bytes.size());
    std::mt19937 rng(seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    t = make_tensor("g_idx", t->t.dtype, t->shape, t->on_gpu, idx.data());
  }
}

// act_order: g_idx shuffled after quantization (the label says so).
PackedCase gptq_case(const Plugin& plugin, const std::string& config, const std::string& label,
                     int64_t out, int64_t in, DLDataType dtype, Report& report,
                     bool act_order = false) {
  std::function<void(Tensors&)> prepare;
  if (act_order) prepare = [in](Tensors& ts) { permute_g_idx(ts, static_cast<uint32_t>(in)); };
  return PackedCase(plugin, "gptq", config, label + (act_order ? " act-order" : ""), out, in, dtype,
                    report, std::move(prepare));
}

void refusal_checks(const Plugin& plugin, Report& report) {
  {
    PackedCase c = gptq_case(plugin, R"({"bits": 8, "group_size": 128})", "8-bit g128", 128, 256,
                             dtype_bf16(), report);
    if (c.quantize()) {
      const auto xb = to_bytes(random_values(256, 5, 1.0f), dtype_bf16());
      auto x = make_tensor("x", dtype_bf16(), {1, 256}, true, xb.data());
      auto y = make_tensor("y", dtype_bf16(), {1, 128}, true);
      std::string text;
      const int32_t code = c.gpu_forward_status(x->t, nullptr, y->t, text);
      expect(report, "gptq linear_forward 8-bit on the GPU refused", code, text,
             QF_CODE_UNIMPLEMENTED, "8-bit");
    }
  }
  PackedCase c = gptq_case(plugin, R"({"bits": 4, "group_size": 128})", "4-bit g128", 128, 256,
                           dtype_bf16(), report);
  if (c.quantize()) packed_refusal_checks(c, "gptq", report);
}

}  // namespace

void gptq_no_gpu_checks(const Plugin& plugin, Report& report) {
  packed_no_gpu_check(plugin, "gptq", R"({"bits": 4, "group_size": 64})", 8, 64, report);
}

void run_gptq_checks(const Plugin& plugin, Report& report) {
  // The CPU side is the scalar reference (the plugin reads this on every call).
  setenv("QFORGE_GPTQ_KERNEL", "scalar", 1);
  struct Spec {
    const char* config;
    const char* label;
    int64_t out, in;
    bool act_order;
  } specs[] = {
      {R"({"bits": 4, "group_size": 128, "sym": true})", "4-bit g128 sym v1", 256, 512, false},
      {R"({"bits": 4, "group_size": 32, "sym": false, "checkpoint_format": "gptq_v2"})",
       "4-bit g32 asym v2", 384, 1024, false},
      {R"({"bits": 4, "group_size": 32, "sym": false})", "4-bit g32 asym v1", 384, 1024, true},
      {R"({"bits": 4, "group_size": 128, "sym": true, "checkpoint_format": "gptq_v2"})",
       "4-bit g128 sym v2", 256, 512, true},
      {R"({"bits": 4, "group_size": -1})", "4-bit whole rows", 136, 640, false},
      // Output counts off the 32-lane tile.
      {R"({"bits": 4, "group_size": 64})", "4-bit g64", 40, 192, false},
      {R"({"bits": 2, "group_size": 64})", "2-bit g64", 256, 512, true},
      {R"({"bits": 3, "group_size": 128})", "3-bit g128", 96, 512, true},
      {R"({"bits": 8, "group_size": 128, "checkpoint_format": "gptq_v2"})", "8-bit g128 v2", 128,
       512, true},
  };
  const std::vector<int64_t> rows = {1, 3, 4, 9};  // GEMV, partial pass, one pass, three passes
  for (const Spec& s : specs) {
    for (DLDataType d : {dtype_bf16(), dtype_f16(), dtype_f32()}) {
      PackedCase c = gptq_case(plugin, s.config, s.label, s.out, s.in, d, report, s.act_order);
      if (!c.quantize()) continue;
      c.dequantize();
      if (std::string(s.config).find("\"bits\": 4") == std::string::npos) continue;
      for (int64_t r : rows) c.forward(r);
    }
  }
  refusal_checks(plugin, report);
  unsetenv("QFORGE_GPTQ_KERNEL");
}

}  // namespace qforge::gpu_harness
