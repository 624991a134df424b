// Harness helpers (see harness_util.hpp).
#include "harness_util.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace qforge::gpu_harness {

void Report::result(bool ok, const std::string& name, const std::string& detail) {
  (ok ? passed : failed) += 1;
  std::printf("%s  %s: %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
}

void Report::skip(const std::string& name, const std::string& reason) {
  skipped += 1;
  std::printf("SKIP  %s: %s\n", name.c_str(), reason.c_str());
  std::fflush(stdout);
}

std::vector<float> random_values(int64_t count, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_int_distribution<int> pick(0, 499);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) {
    x = normal(rng);
    if (pick(rng) == 0) x *= 10.0f;  // heavy-tailed like real weights: absmax varies per block
  }
  return v;
}

std::vector<uint8_t> to_bytes(const std::vector<float>& v, DLDataType dtype) {
  const size_t item = dtype.bits / 8;
  std::vector<uint8_t> out(v.size() * item);
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype.bits == 32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else if (dtype.code == kDLFloat) {
      const __half h = __float2half_rn(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      const __nv_bfloat16 h = __float2bfloat16_rn(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

std::vector<float> to_floats(const std::vector<uint8_t>& bytes, DLDataType dtype) {
  const size_t item = dtype.bits / 8;
  std::vector<float> out(bytes.size() / item);
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype.bits == 32) {
      std::memcpy(&out[i], &bytes[i * 4], 4);
    } else if (dtype.code == kDLFloat) {
      __half h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = __half2float(h);
    } else {
      __nv_bfloat16 h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = __bfloat162float(h);
    }
  }
  return out;
}

const char* dtype_label(DLDataType dtype) {
  if (dtype.bits == 32) return "f32";
  return dtype.code == kDLFloat ? "f16" : "bf16";
}

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

bool close(const std::vector<float>& cpu, const std::vector<float>& gpu, double tol,
           std::string& detail) {
  if (cpu.size() != gpu.size()) {
    detail = "size " + std::to_string(gpu.size()) + " vs CPU " + std::to_string(cpu.size());
    return false;
  }
  double maxref = 0.0, maxdiff = 0.0;
  size_t same = 0, worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    maxref = std::max(maxref, static_cast<double>(std::fabs(cpu[i])));
    const double d = std::fabs(static_cast<double>(cpu[i]) - gpu[i]);
    if (!(d <= maxdiff)) {
      maxdiff = d;
      worst = i;
    }
    if (cpu[i] == gpu[i]) ++same;
  }
  const bool ok = maxdiff <= tol * std::max(maxref, 1e-30);
  detail = fmt("max |diff| %.3g (", maxdiff) +
           fmt("%.3g of max |cpu|", maxdiff / std::max(maxref, 1e-30)) + fmt(", tol %.1g), ", tol) +
           std::to_string(same) + "/" + std::to_string(cpu.size()) + " identical";
  if (!ok) {
    detail += fmt("; worst at %.0f: cpu %.9g", static_cast<double>(worst), cpu[worst]) +
              fmt(" gpu %.9g", gpu[worst]);
  }
  return ok;
}

qf_module_info module_info(const char* name, int32_t kind, int64_t out, int64_t in,
                           DLDataType weight_dtype) {
  qf_module_info m{};
  m.struct_size = sizeof(qf_module_info);
  m.abi_version = QF_ABI_VERSION;
  m.name = name;
  m.kind = kind;
  m.has_bias = 1;
  m.in_features = in;
  m.out_features = out;
  m.weight_dtype = weight_dtype;
  m.extra_json = nullptr;
  return m;
}

double dtype_tol(DLDataType d) {
  return d.bits == 32 ? 1e-4 : (d.code == kDLFloat ? 2e-3 : 1.6e-2);
}

std::string shape_label(int64_t out, int64_t in) {
  return "[" + std::to_string(out) + "x" + std::to_string(in) + "]";
}

void expect(Report& report, const std::string& label, int32_t code, const std::string& text,
            int32_t want, const std::string& needle) {
  const bool ok = code == want && text.find(needle) != std::string::npos;
  report.result(ok, label,
                ok ? text
                   : "expected code " + std::to_string(want) + " mentioning '" + needle +
                         "', got code " + std::to_string(code) + ": " +
                         (text.empty() ? "success" : text));
}

}  // namespace qforge::gpu_harness
