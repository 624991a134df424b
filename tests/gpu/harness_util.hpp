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
  void result(bool ok, const std::string& name, const std::string& detail);
};

// Deterministic pseudo-normal weights (scale ~0.02, a few 10x larger), seeded.
std::vector<float> random_values(int64_t count, uint32_t seed, float scale);
// Float values to `dtype` bytes (F32 / F16 / BF16, round to nearest even) and back.
std::vector<uint8_t> to_bytes(const std::vector<float>& v, DLDataType dtype);
std::vector<float> to_floats(const std::vector<uint8_t>& bytes, DLDataType dtype);
const char* dtype_label(DLDataType dtype);

qf_module_info module_info(const char* name, int32_t kind, int64_t out, int64_t in,
                           DLDataType weight_dtype);

}  // namespace qforge::gpu_harness
