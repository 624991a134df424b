// GPU harness: loads the bnb, fp8, hqq, gptq and awq plugins through their C ABI and checks every
// CUDA kernel against the same plugin's CPU path; --bench adds the R7 figures. Needs only the CUDA
// runtime, no qforge host. Exit codes: 0 all PASS (SKIPs allowed), 1 any FAIL, 2 usage or load
// error, 77 no CUDA device (after the checks that need none).
//
//   bnb_gpu_harness [--plugin PATH/bnb.so] [--fp8-plugin PATH/fp8.so]
//                   [--hqq-plugin PATH/hqq.so] [--gptq-plugin PATH/gptq.so]
//                   [--awq-plugin PATH/awq.so] [--only bnb|fp8|hqq|gptq|awq] [--bench]
//                   [--iterations N] [--no-checks]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "awq_bench.hpp"
#include "awq_checks.hpp"
#include "bench.hpp"
#include "checks.hpp"
#include "fp8_bench.hpp"
#include "fp8_checks.hpp"
#include "gptq_bench.hpp"
#include "gptq_checks.hpp"
#include "host_shim.hpp"
#include "hqq_bench.hpp"
#include "hqq_checks.hpp"
#include "plugin.hpp"

#ifndef QFORGE_GPU_DEFAULT_PLUGIN
#define QFORGE_GPU_DEFAULT_PLUGIN ""
#endif
#ifndef QFORGE_GPU_DEFAULT_FP8_PLUGIN
#define QFORGE_GPU_DEFAULT_FP8_PLUGIN ""
#endif
#ifndef QFORGE_GPU_DEFAULT_HQQ_PLUGIN
#define QFORGE_GPU_DEFAULT_HQQ_PLUGIN ""
#endif
#ifndef QFORGE_GPU_DEFAULT_GPTQ_PLUGIN
#define QFORGE_GPU_DEFAULT_GPTQ_PLUGIN ""
#endif
#ifndef QFORGE_GPU_DEFAULT_AWQ_PLUGIN
#define QFORGE_GPU_DEFAULT_AWQ_PLUGIN ""
#endif

namespace qforge::gpu_harness {
namespace {

// Without a GPU: the plugin must load (its static CUDA runtime needs no libcudart) and refuse
// a CUDA call with FAILED_PRECONDITION, naming the device, rather than crash.
void no_gpu_checks(const Plugin& plugin, Report& report) {
  Quantizer q(plugin.method("bitsandbytes_4bit"), R"({"load_in_4bit": true})");
  if (!q.ok()) {
    report.result(false, "no-GPU create", q.error());
    return;
  }
  float host_weight[64 * 64] = {};
  int64_t shape[2] = {64, 64};
  DLTensor w{};
  w.data = host_weight;  // never dereferenced: the call must stop before any kernel
  w.device.device_type = kDLCUDA;
  w.ndim = 2;
  w.shape = shape;
  w.dtype = dtype_f32();
  qf_module_info mod = module_info("m", QF_MODULE_LINEAR, 64, 64, dtype_f32());
  Sink sink;
  qf_call_ctx gc = gpu_call(nullptr);
  qf_status* s = q.method()->quantize(q.raw(), &gc, &mod, &w, nullptr, nullptr, sink.raw());
  const int32_t code = status_code(s);
  const std::string text = take_status(s);
  const bool ok = code == QF_CODE_FAILED_PRECONDITION;
  report.result(ok, "no-GPU: CUDA quantize refused",
                ok ? "FAILED_PRECONDITION: " + text
                   : "expected FAILED_PRECONDITION, got " + (text.empty() ? "success" : text));
}

int usage() {
  std::fprintf(stderr,
               "usage: bnb_gpu_harness [--plugin PATH/bnb.so] [--fp8-plugin PATH/fp8.so] "
               "[--hqq-plugin PATH/hqq.so] [--gptq-plugin PATH/gptq.so] "
               "[--awq-plugin PATH/awq.so] [--only bnb|fp8|hqq|gptq|awq] [--bench] "
               "[--iterations N] [--no-checks]\n(default plugins: %s, %s, %s, %s, %s; env "
               "QFORGE_BNB_PLUGIN / QFORGE_FP8_PLUGIN / QFORGE_HQQ_PLUGIN / QFORGE_GPTQ_PLUGIN / "
               "QFORGE_AWQ_PLUGIN override them)\n",
               QFORGE_GPU_DEFAULT_PLUGIN, QFORGE_GPU_DEFAULT_FP8_PLUGIN,
               QFORGE_GPU_DEFAULT_HQQ_PLUGIN, QFORGE_GPU_DEFAULT_GPTQ_PLUGIN,
               QFORGE_GPU_DEFAULT_AWQ_PLUGIN);
  return 2;
}

}  // namespace
}  // namespace qforge::gpu_harness

int main(int argc, char** argv) {
  using namespace qforge::gpu_harness;
  std::string path = QFORGE_GPU_DEFAULT_PLUGIN;
  if (const char* env = std::getenv("QFORGE_BNB_PLUGIN"); env != nullptr && *env) path = env;
  std::string fp8_path = QFORGE_GPU_DEFAULT_FP8_PLUGIN;
  if (const char* env = std::getenv("QFORGE_FP8_PLUGIN"); env != nullptr && *env) fp8_path = env;
  std::string hqq_path = QFORGE_GPU_DEFAULT_HQQ_PLUGIN;
  if (const char* env = std::getenv("QFORGE_HQQ_PLUGIN"); env != nullptr && *env) hqq_path = env;
  std::string gptq_path = QFORGE_GPU_DEFAULT_GPTQ_PLUGIN;
  if (const char* env = std::getenv("QFORGE_GPTQ_PLUGIN"); env != nullptr && *env) {
    gptq_path = env;
  }
  std::string awq_path = QFORGE_GPU_DEFAULT_AWQ_PLUGIN;
  if (const char* env = std::getenv("QFORGE_AWQ_PLUGIN"); env != nullptr && *env) awq_path = env;
  std::string only;
  bool bench = false, checks = true;
  int iterations = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--plugin" && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "--fp8-plugin" && i + 1 < argc) {
      fp8_path = argv[++i];
    } else if (a == "--hqq-plugin" && i + 1 < argc) {
      hqq_path = argv[++i];
    } else if (a == "--gptq-plugin" && i + 1 < argc) {
      gptq_path = argv[++i];
    } else if (a == "--awq-plugin" && i + 1 < argc) {
      awq_path = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
      if (only != "bnb" && only != "fp8" && only != "hqq" && only != "gptq" && only != "awq") {
        return usage();
      }
    } else if (a == "--bench") {
      bench = true;
    } else if (a == "--no-checks") {
      checks = false;
    } else if (a == "--iterations" && i + 1 < argc) {
      iterations = std::atoi(argv[++i]);
      if (iterations < 1) return usage();
    } else {
      return usage();
    }
  }
  if (!only.empty() && only != "bnb") path.clear();
  if (!only.empty() && only != "fp8") fp8_path.clear();
  if (!only.empty() && only != "hqq") hqq_path.clear();
  if (!only.empty() && only != "gptq") gptq_path.clear();
  if (!only.empty() && only != "awq") awq_path.clear();
  if (path.empty() && fp8_path.empty() && hqq_path.empty() && gptq_path.empty() &&
      awq_path.empty()) {
    return usage();
  }
  Plugin plugin, fp8, hqq, gptq, awq;
  std::string error;
  if (!path.empty() && !plugin.load(path, error)) {
    std::fprintf(stderr, "FAIL  load: %s\n", error.c_str());
    return 2;
  }
  if (!fp8_path.empty() && !fp8.load(fp8_path, error)) {
    std::fprintf(stderr, "FAIL  load: %s\n", error.c_str());
    return 2;
  }
  if (!hqq_path.empty() && !hqq.load(hqq_path, error)) {
    std::fprintf(stderr, "FAIL  load: %s\n", error.c_str());
    return 2;
  }
  if (!gptq_path.empty() && !gptq.load(gptq_path, error)) {
    std::fprintf(stderr, "FAIL  load: %s\n", error.c_str());
    return 2;
  }
  if (!awq_path.empty() && !awq.load(awq_path, error)) {
    std::fprintf(stderr, "FAIL  load: %s\n", error.c_str());
    return 2;
  }
  if (!path.empty()) std::printf("plugin: %s\n", path.c_str());
  if (!fp8_path.empty()) std::printf("fp8 plugin: %s\n", fp8_path.c_str());
  if (!hqq_path.empty()) std::printf("hqq plugin: %s\n", hqq_path.c_str());
  if (!gptq_path.empty()) std::printf("gptq plugin: %s\n", gptq_path.c_str());
  if (!awq_path.empty()) std::printf("awq plugin: %s\n", awq_path.c_str());
  Report report;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    if (!path.empty()) no_gpu_checks(plugin, report);
    if (!fp8_path.empty()) fp8_no_gpu_checks(fp8, report);
    if (!hqq_path.empty()) hqq_no_gpu_checks(hqq, report);
    if (!gptq_path.empty()) gptq_no_gpu_checks(gptq, report);
    if (!awq_path.empty()) awq_no_gpu_checks(awq, report);
    std::printf("no CUDA device (%s); GPU checks skipped\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    std::printf("SUMMARY: %d passed, %d failed (no-GPU checks only)\n", report.passed,
                report.failed);
    return report.failed > 0 ? 1 : 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device 0: %s, compute capability %d.%d, %.1f GiB\n", prop.name, prop.major,
              prop.minor, static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  if (checks && !path.empty()) run_checks(plugin, report);
  if (checks && !fp8_path.empty()) run_fp8_checks(fp8, report);
  if (checks && !hqq_path.empty()) run_hqq_checks(hqq, report);
  if (checks && !gptq_path.empty()) run_gptq_checks(gptq, report);
  if (checks && !awq_path.empty()) run_awq_checks(awq, report);
  if (bench) {
    const double copy = copy_gbps(iterations, report);
    std::printf("R7 device-to-device copy: %.1f GB/s (read + write, 1 GiB, median of %d)\n", copy,
                iterations);
    if (!path.empty()) run_bench(plugin, report, iterations, copy);
    if (!fp8_path.empty()) run_fp8_bench(fp8, report, iterations, copy);
    if (!hqq_path.empty()) run_hqq_bench(hqq, report, iterations, copy);
    if (!gptq_path.empty()) run_gptq_bench(gptq, report, iterations, copy);
    if (!awq_path.empty()) run_awq_bench(awq, report, iterations, copy);
  }
  std::printf("SUMMARY: %d passed, %d failed, %d skipped\n", report.passed, report.failed,
              report.skipped);
  return report.failed > 0 ? 1 : 0;
}
