// FP8 end to end through the CLI on a generated model: quantize and verify refuse to emulate
// unless asked (--allow-emulation or dequantize: true), and with it quantize -> verify passes,
// also on the DeepSeek-V3 form of the config (no v5 keys).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kMakeModel = std::string(QFORGE_BUILD_DIR) + "/bin/qforge-make-model";

// Every linear divisible by the 128x128 block, as quantizing `fp8` needs (k/v: 4 heads of 32).
void make_model(const fs::path& out) {
  const ProcessResult r =
      run_process({kMakeModel, "--out", out.string(), "--hidden", "128", "--intermediate", "256",
                   "--layers", "2", "--heads", "4", "--kv-heads", "4", "--vocab", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2);
}

class Fp8Cli : public ::testing::Test {
 protected:
  void SetUp() override { make_model(model_); }
  TempDir dir_;
  fs::path model_ = dir_.path() / "model";
  fs::path out_ = dir_.path() / "out";
};

TEST_F(Fp8Cli, QuantizeOnTheCpuNeedsAllowEmulation) {
  const ProcessResult refused =
      run_qforge({"quantize", model_.string(), "-o", out_.string(), "--method", "fp8"});
  EXPECT_EQ(refused.exit_code, 3) << refused.describe();  // the environment cannot serve it
  EXPECT_THAT(refused.err, HasSubstr("No GPU or XPU found"));
  EXPECT_THAT(refused.err, HasSubstr("--allow-emulation"));
  EXPECT_FALSE(fs::exists(out_)) << "a refused run must not create the output";

  const ProcessResult plan =
      run_qforge({"plan", model_.string(), "--method", "fbgemm_fp8", "--allow-emulation"});
  EXPECT_EQ(plan.exit_code, 0) << plan.describe();
  EXPECT_THAT(plan.out + plan.err, HasSubstr("fbgemm_fp8: emulation on cpu"));
}

TEST_F(Fp8Cli, DequantizeTrueCountsAsAskingForEmulation) {
  const ProcessResult r =
      run_qforge({"plan", model_.string(), "--method", "fp8", "--set", "dequantize=true"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out + r.err, HasSubstr("allowed by dequantize: true"));
}

TEST_F(Fp8Cli, QuantizeThenVerifyPassWithEmulationAlsoInDeepSeekV3Form) {
  const ProcessResult q = run_qforge(
      {"quantize", model_.string(), "-o", out_.string(), "--method", "fp8", "--allow-emulation"});
  ASSERT_EQ(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.out + q.err, HasSubstr("emulation on cpu (allowed by --allow-emulation"));

  const ProcessResult refused = run_qforge({"verify", model_.string(), out_.string()});
  EXPECT_NE(refused.exit_code, 0) << refused.describe();
  EXPECT_THAT(refused.out + refused.err, HasSubstr("--allow-emulation"));

  const ProcessResult v =
      run_qforge({"verify", model_.string(), out_.string(), "--allow-emulation", "--json"});
  ASSERT_EQ(v.exit_code, 0) << v.describe();

  // DeepSeek-V3's config.json carries the pre-v5 keys only (and `fmt`); the v5 keys default.
  nlohmann::json config = read_json(out_ / "config.json");
  config["quantization_config"] = {{"quant_method", "fp8"},
                                   {"activation_scheme", "dynamic"},
                                   {"fmt", "e4m3"},
                                   {"weight_block_size", {128, 128}}};
  write_json(out_ / "config.json", config);
  const ProcessResult ds =
      run_qforge({"verify", model_.string(), out_.string(), "--allow-emulation", "--json"});
  ASSERT_EQ(ds.exit_code, 0) << ds.describe();
  std::string why;
  const auto report = parse_stdout_json(ds, &why);
  ASSERT_TRUE(report.has_value()) << why;
  bool saw_config = false;
  for (const auto& check : (*report)["checks"]) {
    if (check["id"] != "config") continue;
    saw_config = true;
    EXPECT_EQ(check["outcome"], "pass") << check.dump();
    EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("read as their defaults"));
  }
  EXPECT_TRUE(saw_config) << report->dump();
}

}  // namespace
}  // namespace qforge::test
