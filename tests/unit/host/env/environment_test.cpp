#include "qforge/environment.hpp"

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "env/cpu_probe.hpp"
#include "env/cuda_probe.hpp"
#include "env/hip_probe.hpp"
#include "qforge/error.hpp"
#include "qforge/host.hpp"

namespace qforge {
namespace {

using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The Error environment_from_json throws for `j`; fails the test if it does not throw.
Error from_json_error(const json& j) {
  try {
    environment_from_json(j);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "environment_from_json accepted " << j.dump();
  return internal_error("no error", "");
}

Environment simulated_machine() {
  Environment env;
  env.host_version = "0.1.0";
  env.cpu_arch = "x86_64";
  env.cpu_model = "Intel(R) Xeon(R) Platinum 8480+";
  env.logical_cpus = 224;
  env.cpu_features = {"amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512f"};
  env.host_memory = 2199023255552ull;
  env.cuda_driver_found = true;
  env.cuda_driver_version = 12040;
  env.cuda_status = "ok: 2 device(s)";
  env.hip_runtime_found = true;
  env.hip_runtime_version = 60032830;
  env.hip_status = "ok: 1 device(s)";
  GpuDevice h100;
  h100.backend = "cuda";
  h100.index = 0;
  h100.name = "NVIDIA H100 80GB HBM3";
  h100.cc_major = 9;
  h100.cc_minor = 0;
  h100.total_memory = 85899345920ull;
  h100.free_memory = 84537131008ull;
  GpuDevice v100 = h100;
  v100.index = 1;
  v100.name = "Tesla V100-SXM2-16GB";
  v100.cc_major = 7;
  v100.total_memory = 17179869184ull;
  v100.free_memory = 0;
  GpuDevice mi250;
  mi250.backend = "rocm";
  mi250.index = 0;
  mi250.name = "AMD Instinct MI250X";
  mi250.gcn_arch = "gfx90a";
  mi250.total_memory = 68702699520ull;
  env.devices = {h100, v100, mi250};
  env.torch_cuda = true;
  return env;
}

void expect_same(const Environment& a, const Environment& b) {
  EXPECT_EQ(a.host_version, b.host_version);
  EXPECT_EQ(a.cpu_arch, b.cpu_arch);
  EXPECT_EQ(a.cpu_model, b.cpu_model);
  EXPECT_EQ(a.logical_cpus, b.logical_cpus);
  EXPECT_EQ(a.cpu_features, b.cpu_features);
  EXPECT_EQ(a.host_memory, b.host_memory);
  EXPECT_EQ(a.cuda_driver_found, b.cuda_driver_found);
  EXPECT_EQ(a.cuda_driver_version, b.cuda_driver_version);
  EXPECT_EQ(a.cuda_status, b.cuda_status);
  EXPECT_EQ(a.hip_runtime_found, b.hip_runtime_found);
  EXPECT_EQ(a.hip_runtime_version, b.hip_runtime_version);
  EXPECT_EQ(a.hip_status, b.hip_status);
  EXPECT_EQ(a.torch_cuda, b.torch_cuda);
  ASSERT_EQ(a.devices.size(), b.devices.size());
  for (std::size_t i = 0; i < a.devices.size(); ++i) {
    SCOPED_TRACE("device " + std::to_string(i));
    EXPECT_EQ(a.devices[i].backend, b.devices[i].backend);
    EXPECT_EQ(a.devices[i].index, b.devices[i].index);
    EXPECT_EQ(a.devices[i].name, b.devices[i].name);
    EXPECT_EQ(a.devices[i].cc_major, b.devices[i].cc_major);
    EXPECT_EQ(a.devices[i].cc_minor, b.devices[i].cc_minor);
    EXPECT_EQ(a.devices[i].gcn_arch, b.devices[i].gcn_arch);
    EXPECT_EQ(a.devices[i].total_memory, b.devices[i].total_memory);
    EXPECT_EQ(a.devices[i].free_memory, b.devices[i].free_memory);
  }
}

TEST(EnvProbe, NeverThrowsAndReportsThisMachinesArch) {
  Environment env;
  ASSERT_NO_THROW(env = probe_environment());
  struct utsname names {};
  ASSERT_EQ(uname(&names), 0);
  EXPECT_EQ(env.cpu_arch, names.machine);
  EXPECT_GT(env.logical_cpus, 0);
  EXPECT_GT(env.host_memory, 0u);
  EXPECT_EQ(env.host_version, kHostVersion);
  EXPECT_TRUE(std::is_sorted(env.cpu_features.begin(), env.cpu_features.end()));
}

#if defined(__x86_64__) || defined(__i386__)
TEST(EnvProbe, X86FeaturesAgreeWithTheKernelsCpuFlags) {
  const Environment env = probe_environment();
  ASSERT_FALSE(env.cpu_features.empty());
  // Every x86-64 CPU Linux still runs on qforge's targets has SSE4.2.
  EXPECT_TRUE(env.has_cpu_feature("sse4_2"));
  // Linux names these flags exactly as qforge does and clears them when the OS does not save
  // the register state, so cpuid+XCR0 must agree with /proc/cpuinfo. AMX is left out: it also
  // needs a per-process permission the kernel flags do not show.
  const std::vector<std::string> flags = cpuinfo_features(read_file("/proc/cpuinfo"));
  for (const char* name : {"sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512dq",
                           "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16"}) {
    const bool kernel = std::binary_search(flags.begin(), flags.end(), name);
    EXPECT_EQ(env.has_cpu_feature(name), kernel) << name;
  }
}
#else
TEST(EnvProbe, NonX86FeaturesComeFromProcCpuinfo) {
  const Environment env = probe_environment();
  EXPECT_EQ(env.cpu_features, cpuinfo_features(read_file("/proc/cpuinfo")));
}
#endif

TEST(EnvProbe, GpuAbsenceIsReportedAsAFact) {
  const Environment env = probe_environment();
  // Either "ok: N device(s)" or why there are none: never silent.
  EXPECT_FALSE(env.cuda_status.empty());
  EXPECT_FALSE(env.hip_status.empty());
  if (!env.cuda_driver_found) {
    EXPECT_FALSE(env.has_cuda());
  }
  if (!env.hip_runtime_found) {
    EXPECT_FALSE(env.has_rocm());
  }
  for (const GpuDevice& d : env.devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory, 0u);
  }
}

TEST(EnvCudaProbe, MissingDriverLibraryBecomesStatusText) {
  const GpuBackendProbe probe = probe_cuda("libqforge-no-such-cuda.so.1");
  EXPECT_FALSE(probe.found);
  EXPECT_EQ(probe.version, 0);
  EXPECT_TRUE(probe.devices.empty());
  EXPECT_EQ(probe.status.rfind("libqforge-no-such-cuda.so.1 not found: ", 0), 0u) << probe.status;
  EXPECT_NE(probe.status.find("cannot open shared object file"), std::string::npos) << probe.status;
}

TEST(EnvCudaProbe, LibraryWithoutDriverEntryPointsIsNamed) {
  // libm loads fine but is no CUDA driver.
  const GpuBackendProbe probe = probe_cuda("libm.so.6");
  EXPECT_FALSE(probe.found);
  EXPECT_TRUE(probe.devices.empty());
  EXPECT_EQ(probe.status,
            "libm.so.6 lacks cuInit (not a CUDA driver library, or older than "
            "CUDA 4)");
}

TEST(EnvCudaProbe, StubDriverReportsCuInitFailure) {
  // The CUDA toolkit's link stub exports the driver API but refuses cuInit, which exercises the
  // loaded-library path on machines without a GPU.
  const char* stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (!std::filesystem::exists(stub)) GTEST_SKIP() << "no CUDA toolkit stub at " << stub;
  const GpuBackendProbe probe = probe_cuda(stub);
  EXPECT_FALSE(probe.found);
  EXPECT_TRUE(probe.devices.empty());
  EXPECT_EQ(probe.status, "cuInit failed: error 34 (CUDA_ERROR_STUB_LIBRARY)");
}

TEST(EnvCudaProbe, FallbackErrorNamesMatchTheDriverEnum) {
  EXPECT_STREQ(cuda_error_fallback_name(100), "CUDA_ERROR_NO_DEVICE");
  EXPECT_STREQ(cuda_error_fallback_name(34), "CUDA_ERROR_STUB_LIBRARY");
  EXPECT_STREQ(cuda_error_fallback_name(12345), "unrecognised CUresult");
}

TEST(EnvHipProbe, MissingRuntimeLibraryReportsTheFirstName) {
  const GpuBackendProbe probe =
      probe_hip({"libqforge-no-such-hip.so", "libqforge-no-such-hip.so.6"});
  EXPECT_FALSE(probe.found);
  EXPECT_TRUE(probe.devices.empty());
  EXPECT_EQ(probe.status.rfind("libqforge-no-such-hip.so not found: ", 0), 0u) << probe.status;
}

TEST(EnvHipProbe, GfxArchFromKfdTargetVersion) {
  EXPECT_EQ(gfx_arch_from_target_version(90010), "gfx90a");
  EXPECT_EQ(gfx_arch_from_target_version(90402), "gfx942");
  EXPECT_EQ(gfx_arch_from_target_version(90008), "gfx908");
  EXPECT_EQ(gfx_arch_from_target_version(100300), "gfx1030");
  EXPECT_EQ(gfx_arch_from_target_version(110000), "gfx1100");
  EXPECT_EQ(gfx_arch_from_target_version(0), "");
}

TEST(EnvHipProbe, FindsGfxArchByPciAddressInKfdTopology) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(testing::TempDir()) / "qforge_env_kfd_nodes";
  fs::remove_all(root);
  auto node = [&](const char* name, const std::string& properties) {
    fs::create_directories(root / name);
    std::ofstream(root / name / "properties") << properties;
  };
  node("0", "cpu_cores_count 64\nsimd_count 0\ngfx_target_version 0\nlocation_id 0\n");
  // 0000:03:00.0 -> location_id 0x300; 0001:c1:00.0 -> 0xc100 in domain 1.
  node("1", "simd_count 416\ngfx_target_version 90010\nlocation_id 768\ndomain 0\n");
  node("2", "simd_count 1216\ngfx_target_version 90402\nlocation_id 49408\ndomain 1\n");
  EXPECT_EQ(find_gfx_arch(root.string(), "0000:03:00.0"), "gfx90a");
  EXPECT_EQ(find_gfx_arch(root.string(), "0001:c1:00.0"), "gfx942");
  EXPECT_EQ(find_gfx_arch(root.string(), "0000:c1:00.0"), "");  // wrong domain
  EXPECT_EQ(find_gfx_arch(root.string(), "not-a-pci-address"), "");
  EXPECT_EQ(find_gfx_arch((root / "missing").string(), "0000:03:00.0"), "");
  fs::remove_all(root);
}

TEST(EnvCpuinfo, ReadsModelAndFeaturesOnArmAndX86) {
  const std::string arm =
      "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve evtstrm fp\n"
      "CPU implementer\t: 0x41\n";
  EXPECT_EQ(cpuinfo_features(arm), (std::vector<std::string>{"asimd", "evtstrm", "fp", "sve"}));
  EXPECT_EQ(cpuinfo_model(arm), "");
  const std::string x86 =
      "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
      "flags\t\t: fpu sse4_2 avx2\n\nprocessor\t: 1\nmodel name\t: other\n";
  EXPECT_EQ(cpuinfo_model(x86), "AMD EPYC 9654 96-Core Processor");
  EXPECT_EQ(cpuinfo_features(x86), (std::vector<std::string>{"avx2", "fpu", "sse4_2"}));
}

TEST(EnvJson, RoundTripsASimulatedMachineWithGpus) {
  const Environment original = simulated_machine();
  const json j = original.to_json();
  const Environment back = environment_from_json(j);
  expect_same(original, back);
  EXPECT_EQ(back.to_json(), j);
  EXPECT_TRUE(back.has_cuda());
  EXPECT_TRUE(back.has_rocm());
  EXPECT_TRUE(back.has_cpu_feature("amx_int8"));
  EXPECT_FALSE(back.has_cpu_feature("avx512_fp16"));
}

TEST(EnvJson, RoundTripsTheProbedMachine) {
  const Environment probed = probe_environment();
  expect_same(probed, environment_from_json(probed.to_json()));
}

TEST(EnvJson, WritesTheDocumentedSchema) {
  const json j = simulated_machine().to_json();
  EXPECT_EQ(j.at("host_version"), "0.1.0");
  EXPECT_EQ(j.at("cpu").at("arch"), "x86_64");
  EXPECT_EQ(j.at("cpu").at("logical_cpus"), 224);
  EXPECT_EQ(j.at("cpu").at("memory_bytes"), 2199023255552ull);
  EXPECT_TRUE(j.at("cpu").at("features").is_array());
  EXPECT_EQ(j.at("cuda").at("driver_found"), true);
  EXPECT_EQ(j.at("cuda").at("driver_version"), 12040);
  EXPECT_EQ(j.at("rocm").at("runtime_found"), true);
  EXPECT_EQ(j.at("rocm").at("status"), "ok: 1 device(s)");
  const json& h100 = j.at("devices").at(0);
  EXPECT_EQ(h100.at("backend"), "cuda");
  EXPECT_EQ(h100.at("compute_capability"), "9.0");
  EXPECT_FALSE(h100.contains("gcn_arch"));
  EXPECT_EQ(h100.at("total_memory"), 85899345920ull);
  const json& mi250 = j.at("devices").at(2);
  EXPECT_EQ(mi250.at("gcn_arch"), "gfx90a");
  EXPECT_FALSE(mi250.contains("compute_capability"));
  EXPECT_EQ(j.at("torch"), (json{{"cpu", true}, {"cuda", true}}));
}

TEST(EnvJson, MinimalH100DescriptionDefaultsTheRest) {
  const Environment env = environment_from_json(json::parse(
      R"({"devices":[{"backend":"cuda","index":0,"name":"NVIDIA H100",
          "compute_capability":"9.0","total_memory":85899345920}]})"));
  ASSERT_EQ(env.devices.size(), 1u);
  EXPECT_TRUE(env.has_cuda());
  EXPECT_FALSE(env.has_rocm());
  EXPECT_EQ(env.devices[0].cc_major, 9);
  EXPECT_EQ(env.devices[0].cc_minor, 0);
  EXPECT_EQ(env.devices[0].total_memory, 85899345920ull);
  EXPECT_EQ(env.devices[0].free_memory, 0u);
  EXPECT_EQ(env.cpu_arch, "");
  EXPECT_EQ(env.logical_cpus, 0);
  EXPECT_FALSE(env.cuda_driver_found);
  EXPECT_FALSE(env.torch_cuda);
}

TEST(EnvJson, V100ComputeCapabilityParses) {
  const Environment env = environment_from_json(json::parse(
      R"({"devices":[{"backend":"cuda","name":"Tesla V100","compute_capability":"7.0"}]})"));
  ASSERT_EQ(env.devices.size(), 1u);
  EXPECT_EQ(env.devices[0].cc_major, 7);
  EXPECT_EQ(env.devices[0].cc_minor, 0);
  EXPECT_EQ(env.devices[0].index, 0);
}

TEST(EnvJson, RejectsMalformedFieldsNamingThem) {
  struct Case {
    const char* json_text;
    const char* field;
  };
  const Case cases[] = {
      {R"({"devices":[{"backend":"cuda","compute_capability":"9"}]})",
       "devices[0].compute_capability"},
      {R"({"devices":[{"backend":"cuda","compute_capability":9.0}]})",
       "devices[0].compute_capability"},
      {R"({"devices":[{"backend":"cuda"},{"backend":"cuda","total_memory":-1}]})",
       "devices[1].total_memory"},
      {R"({"devices":[{"backend":"cuda","total_memory":1.5}]})", "devices[0].total_memory"},
      {R"({"devices":[{"backend":"opencl"}]})", "devices[0].backend"},
      {R"({"devices":[{"name":"x"}]})", "devices[0].backend"},
      {R"({"devices":{"backend":"cuda"}})", "devices"},
      {R"({"cpu":{"features":["avx2",7]}})", "cpu.features[1]"},
      {R"({"cpu":{"logical_cpus":"many"}})", "cpu.logical_cpus"},
      {R"({"cuda":{"driver_found":"yes"}})", "cuda.driver_found"},
      {R"({"rocm":[]})", "rocm"},
      {R"({"torch":{"cuda":1}})", "torch.cuda"},
      {R"({"device":[]})", "device"},
      {R"({"cpu":{"flags":[]}})", "cpu.flags"},
      {R"([1,2])", "(top level)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json_text);
    const Error e = from_json_error(json::parse(c.json_text));
    EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
    EXPECT_NE(e.summary().find(std::string("'") + c.field + "'"), std::string::npos) << e.summary();
    EXPECT_FALSE(e.fix().empty());
  }
}

}  // namespace
}  // namespace qforge
