// Timing pieces the per-plugin R7 benches share: cold-cache sizing, GPU-timed call batches, and
// the dequantize + GEMV figures of a packed-integer layer (gptq, awq).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

constexpr double kGB = 1e9;
// The total of the rotated copies of a layer: far beyond L2, so figures come from DRAM.
constexpr size_t kColdBytes = size_t{1} << 30;

double median(std::vector<double> v);

// GPU milliseconds per call of `call(k)`, k < batch, run back to back behind a spin kernel.
double gpu_ms_per_call(cudaStream_t s, int batch, int iterations,
                       const std::function<std::string(int)>& call, std::string& err);

// One host tensor of a packed layer, copied to the device for every rotated copy.
struct LayerTensor {
  std::string name;
  DLDataType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t bytes;
};

// Times `q`'s dequantize -> F16 and its one-token linear_forward on `layer` (an [out x in] F16
// module) and prints the R7 line; a failure is reported as "<method> bench ...".
void bench_packed_layer(const Quantizer& q, const std::string& method, const std::string& label,
                        int64_t out, int64_t in, const std::vector<LayerTensor>& layer,
                        cudaStream_t s, int iterations, double copy, Report& report);

}  // namespace qforge::gpu_harness
