// The figures R1-R5 of PERFORMANCE.md, each measured through the host C++ API (Quantizer) against
// a same-run reference (bench_kernels.hpp). docs/bench.md explains every figure.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_stats.hpp"
#include "qforge/host.hpp"

namespace qforge::cli::bench {

struct BenchOptions {
  DLDataType dtype{kDLBfloat, 16, 1};  // --dtype: the dense weight's dtype
  int threads = 1;                     // --threads, resolved (never 0 here)
  int reps = 7;                        // --reps
  int64_t size_mib = 256;              // --size-mib: dense weight size for R1/R2
  int64_t weights_mib = 512;           // --weights-mib: distinct weights per GEMV pass (R3/R4)
  int64_t out_features = 4096;         // --shape OUTxIN of one GEMV layer
  int64_t in_features = 4096;
  int64_t cols = 4096;                           // row length of the R1/R2 weight
  std::vector<int64_t> batches{1, 2, 4, 8, 16};  // --batches for R4 (each 1..16)
  std::vector<int> gemv_threads;                 // R3 thread counts
  int64_t gptq_out = 4096;                       // --gptq-shape OUTxIN: R5's layer
  int64_t gptq_in = 4096;
  int64_t calib_tokens = 16384;  // --calib-tokens: rows behind R5's Hessian (32 x 512)
};

// One measured ratio with its context.
struct Figure {
  std::string id;         // "R1"
  std::string name;       // "quantize"
  std::string candidate;  // what was timed, e.g. "bitsandbytes_4bit quantize"
  std::string reference;  // e.g. "memcpy"
  int threads = 1;
  int64_t batch = 0;  // R4 only
  double target = 0;  // the ratio (R4: fraction of the byte ratio) PERFORMANCE.md asks for
  Spread ratio;       // candidate / reference throughput (R4: dense time / 4-bit time)
  Spread candidate_gbps, reference_gbps;  // R5: GFLOP/s (json: candidate_gflops, ...)
  double byte_ratio = 0;                  // R4: dense fp32 bytes / 4-bit bytes, the ideal speed-up
  Spread fraction;                        // R4: ratio / byte_ratio
  nlohmann::json detail = nlohmann::json::object();  // sizes, layers, shape
  bool meets_target() const { return (byte_ratio > 0 ? fraction.median : ratio.median) >= target; }
};
nlohmann::json figure_json(const Figure& f);

// R1: quantize throughput (bytes in + out per second) / memcpy of the dense weight.
Figure measure_quantize(Quantizer& quantizer, const BenchOptions& options);
// R1 split for a method whose quantize runs an iterative solver (hqq's zero-point optimizer):
// `without` is the same method with the solver switched off. Figures: R1 without the solver;
// the solver's own time (t_with - t_without, paired per rep) as dense-weight bytes per second
// over memcpy's, whole and, when the plugin logs its step count ("steps=N" at debug level,
// i.e. `qforge -v bench`), per step.
std::vector<Figure> measure_quantize_solver(Quantizer& with, Quantizer& without,
                                            const BenchOptions& options);
// R2: dequantize throughput / memcpy of the dense weight.
Figure measure_dequantize(Quantizer& quantizer, const BenchOptions& options);
// R3 (one figure per thread count) and R4 (one per batch): batch-1 GEMV through
// linear_forward against a streaming read of the same bytes; dense fp32 GEMV/GEMM time over
// the 4-bit time.
std::vector<Figure> measure_gemv(Quantizer& quantizer, const BenchOptions& options);
// R5: the plugin's quantize of one [gptq_out, gptq_in] layer with a Hessian from calib_tokens
// rows (the GPTQ algorithm; the host accumulates H, untimed here) against the same-run fp32
// GEMM (dense_gemm_f32, batch 16, on the layer's shape) doing the algorithm's nominal FLOPs.
Figure measure_gptq(Quantizer& quantizer, const BenchOptions& options);

}  // namespace qforge::cli::bench
