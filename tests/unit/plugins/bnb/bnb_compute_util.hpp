// Helpers for the bnb 4-bit compute tests: seeded weights, running the quantizer's hooks
// through the test host, and turning a hook's outputs into the next hook's inputs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bnb_quantizer.hpp"
#include "cpu/half.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::bnb::test {

using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

// N(0, 1) from a fixed-seed mt19937; libstdc++'s normal_distribution is deterministic for a
// given engine, so the same seed gives the same weights on every run.
inline std::vector<float> normal_values(int64_t n, uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(engine);
  return v;
}

// A contiguous F32 tensor holding `values`.
inline HostTensor& fill_f32(HostTensor& t, const std::vector<float>& values) {
  std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
  return t;
}

// A hook's outputs copied into a list the next hook can read (names, dtypes, shapes, bytes).
inline void copy_outputs(const TensorSink& sink, TensorList& list) {
  for (const auto& [name, tensor] : sink.tensors()) {
    const DLTensor& src = tensor->get();
    HostTensor& dst =
        list.add(name, src.dtype, std::vector<int64_t>(src.shape, src.shape + src.ndim));
    const size_t bytes =
        static_cast<size_t>(tensor->numel()) * ((src.dtype.bits * src.dtype.lanes + 7) / 8);
    if (bytes != 0) std::memcpy(dst.get().data, src.data, bytes);
  }
}

inline std::vector<uint8_t> bytes_of(const HostTensor& t) {
  const DLTensor& d = t.get();
  const size_t n = static_cast<size_t>(t.numel()) * ((d.dtype.bits * d.dtype.lanes + 7) / 8);
  const auto* p = static_cast<const uint8_t*>(d.data);
  return std::vector<uint8_t>(p, p + n);
}

// Every output of a quantize call, by name, as bytes.
inline std::vector<std::pair<std::string, std::vector<uint8_t>>> all_bytes(const TensorSink& s) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (const auto& [name, t] : s.tensors()) out.emplace_back(name, bytes_of(*t));
  return out;
}

inline std::vector<float> floats_of(const HostTensor& t) {
  const DLTensor& d = t.get();
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (d.dtype.code == kDLFloat && d.dtype.bits == 32) {
      out[i] = static_cast<const float*>(d.data)[i];
    } else if (d.dtype.code == kDLFloat && d.dtype.bits == 16) {
      out[i] = cpu::f16_to_f32(static_cast<const uint16_t*>(d.data)[i]);
    } else {
      out[i] = cpu::bf16_to_f32(static_cast<const uint16_t*>(d.data)[i]);
    }
  }
  return out;
}

inline std::string config_4bit(const std::string& quant_type, bool double_quant = false) {
  return std::string(R"({"load_in_4bit": true, "bnb_4bit_quant_type": ")") + quant_type +
         R"(", "bnb_4bit_use_double_quant": )" + (double_quant ? "true" : "false") + "}";
}

// Sets QFORGE_BNB_KERNEL for a scope.
class ScopedKernel {
 public:
  explicit ScopedKernel(const char* isa) {
    const char* old = std::getenv("QFORGE_BNB_KERNEL");
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv("QFORGE_BNB_KERNEL", isa, 1);
  }
  ~ScopedKernel() {
    if (had_) {
      setenv("QFORGE_BNB_KERNEL", old_.c_str(), 1);
    } else {
      unsetenv("QFORGE_BNB_KERNEL");
    }
  }
  ScopedKernel(const ScopedKernel&) = delete;
  ScopedKernel& operator=(const ScopedKernel&) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

}  // namespace qforge::plugins::bnb::test
