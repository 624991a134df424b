// GPU vs CPU checks of the awq plugin (see awq_checks.hpp). Every layer is quantized by the
// plugin's CPU path (data_free: round-to-nearest with AWQ's quantizer, no calibration); the GPU
// hooks get device copies of its tensors. The CPU side runs the scalar kernels, the reference
// the vector ones are tested against bit for bit in the unit tests.
#include "awq_checks.hpp"

#include <cstdlib>
#include <vector>

#include "packed_case.hpp"

namespace qforge::gpu_harness {
namespace {

void refusal_checks(const Plugin& plugin, Report& report) {
  PackedCase c(plugin, "awq", R"({"group_size": 128, "data_free": true})", "gemm g128", 128, 256,
               dtype_bf16(), report);
  if (c.quantize()) packed_refusal_checks(c, "awq", report);
}

}  // namespace

void awq_no_gpu_checks(const Plugin& plugin, Report& report) {
  packed_no_gpu_check(plugin, "awq", R"({"group_size": 64})", 64, 8, report);
}

void run_awq_checks(const Plugin& plugin, Report& report) {
  // The CPU side is the scalar reference (the plugin reads this on every call).
  setenv("QFORGE_AWQ_KERNEL", "scalar", 1);
  struct Spec {
    const char* config;
    const char* label;
    int64_t out, in;
  } specs[] = {
      {R"({"group_size": 128, "data_free": true})", "gemm g128", 256, 512},
      {R"({"group_size": 32, "zero_point": false, "data_free": true})", "gemm g32 sym", 384, 1024},
      {R"({"group_size": -1, "data_free": true})", "gemm whole rows", 136, 640},
      // 5 words of outputs: a partial 32-word tile; groups of 24 straddle the 32-input runs.
      {R"({"group_size": 24, "data_free": true})", "gemm g24", 40, 192},
      {R"({"group_size": 64, "data_free": true})", "gemm g64", 40, 192},
      {R"({"group_size": 128, "version": "gemv", "data_free": true})", "gemv g128", 256, 512},
      {R"({"group_size": 64, "version": "gemv", "data_free": true})", "gemv g64", 40, 192},
      // 20 groups in 4 zero words (padded), symmetric.
      {R"({"group_size": 32, "version": "gemv", "zero_point": false, "data_free": true})",
       "gemv g32 sym", 136, 640},
      // Groups of 132: a qweight word's eight inputs straddle two groups.
      {R"({"group_size": 132, "version": "gemv", "data_free": true})", "gemv g132", 64, 264},
  };
  const std::vector<int64_t> rows = {1, 3, 4, 9};  // GEMV, partial pass, one pass, three passes
  for (const Spec& s : specs) {
    for (DLDataType d : {dtype_bf16(), dtype_f16(), dtype_f32()}) {
      PackedCase c(plugin, "awq", s.config, s.label, s.out, s.in, d, report);
      if (!c.quantize()) continue;
      c.dequantize();
      for (int64_t r : rows) c.forward(r);
    }
  }
  refusal_checks(plugin, report);
  unsetenv("QFORGE_AWQ_KERNEL");
}

}  // namespace qforge::gpu_harness
