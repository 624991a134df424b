// Helpers shared by the bnb plugin tests: error expectations and environment JSON builders.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>
#include <string>
#include <vector>

namespace qforge::plugins::bnb::test {

// Runs fn and expects it to throw sdk::Error with `code`; returns the error (a copy) so the
// test can check what/why/fix. A missing throw is a test failure, never a crash.
template <class Fn>
sdk::Error expect_error(Fn&& fn, int32_t code) {
  try {
    fn();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), code) << "what: " << e.what() << "\nwhy: " << e.why();
    return e;
  }
  ADD_FAILURE() << "expected an sdk::Error with code " << code << ", but nothing was thrown";
  return sdk::Error(QF_CODE_OK, "", "", "");
}

inline nlohmann::json cuda_gpu(int index, const std::string& name, const std::string& cc) {
  return {
      {"backend", "cuda"},          {"index", index},  {"name", name}, {"compute_capability", cc},
      {"total_memory", 16LL << 30}, {"free_memory", 0}};
}

inline nlohmann::json rocm_gpu(int index, const std::string& name) {
  return {{"backend", "rocm"},          {"index", index},  {"name", name}, {"gcn_arch", "gfx90a"},
          {"total_memory", 64LL << 30}, {"free_memory", 0}};
}

// An environment report as the host writes it (docs/environment.md) with the given GPUs.
inline std::string env_json(const std::vector<nlohmann::json>& gpus,
                            const std::string& cuda_status = "") {
  const nlohmann::json env = {
      {"host_version", "0.1.0"},
      {"cpu",
       {{"arch", "x86_64"},
        {"model", "test CPU"},
        {"logical_cpus", 2},
        {"features", {"avx2", "fma"}},
        {"memory_bytes", 8LL << 30}}},
      {"cuda",
       {{"driver_found", !gpus.empty()},
        {"driver_version", gpus.empty() ? 0 : 12040},
        {"status", cuda_status.empty() ? "ok" : cuda_status}}},
      {"rocm", {{"runtime_found", false}, {"runtime_version", 0}, {"status", "not probed"}}},
      {"devices", gpus},
      {"torch", {{"cpu", true}, {"cuda", false}}}};
  return env.dump();
}

inline std::string no_gpu_env() { return env_json({}, "libcuda.so.1 not found"); }
inline std::string a100_env() { return env_json({cuda_gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")}); }
inline std::string v100_env() { return env_json({cuda_gpu(0, "Tesla V100-SXM2-16GB", "7.0")}); }

inline std::string request(const nlohmann::json& device,
                           const nlohmann::json& device_map = nullptr) {
  return nlohmann::json{
      {"pre_quantized", false}, {"dtype", nullptr}, {"device", device}, {"device_map", device_map}}
      .dump();
}

inline const char* config_4bit() {
  return R"({"quant_method": "bitsandbytes", "load_in_4bit": true})";
}
inline const char* config_8bit() {
  return R"({"quant_method": "bitsandbytes", "load_in_8bit": true})";
}

}  // namespace qforge::plugins::bnb::test
