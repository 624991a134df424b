// Shared pieces of the harness's checks and bench: seeded data, dtype conversion, module
// descriptions, PASS/FAIL bookkeeping.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::gpu_harness {

struct Report {
  int passed = 0;
  int failed = 0;
  int skipped = 0;
  void result(bool ok, const std::string& name, const std::string& detail);
  // A check this GPU cannot run (e.g. FP8 tensor cores on compute capability < 8.9).
  void skip(const std::string& name, const std::string& reason);
};

// Deterministic pseudo-normal weights (scale ~0.02, a few 10x larger), seeded.
std::vector<float> random_values(int64_t count, uint32_t seed, float scale);
// Float values to `dtype` bytes (F32 / F16 / BF16, round to nearest even) and back.
std::vector<uint8_t> to_bytes(const std::vector<float>& v, DLDataType dtype);
std::vector<float> to_floats(const std::vector<uint8_t>& bytes, DLDataType dtype);
const char* dtype_label(DLDataType dtype);

// printf-style text of up to two numbers.
std::string fmt(const char* f, double a, double b = 0.0);
// Compares float outputs: max |got - ref| against tol * max |ref|; `detail` gets the figures
// (and the worst element when it fails).
bool close(const std::vector<float>& ref, const std::vector<float>& got, double tol,
           std::string& detail);

qf_module_info module_info(const char* name, int32_t kind, int64_t out, int64_t in,
                           DLDataType weight_dtype);

// The float tolerance of a forward whose inputs and outputs are `d` (relative to max |ref|).
double dtype_tol(DLDataType d);
// "[OUTxIN]".
std::string shape_label(int64_t out, int64_t in);
// PASS when a call answered `want` with `needle` in its text; the FAIL says what came instead.
void expect(Report& report, const std::string& label, int32_t code, const std::string& text,
            int32_t want, const std::string& needle);

}  // namespace qforge::gpu_harness
