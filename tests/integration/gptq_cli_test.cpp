// GPTQ end to end through the CLI on a generated Llama: `qforge quantize --method gptq` runs the
// calibration pass (data-free or a token-id file), every block linear is quantized with its
// Hessian, and the checkpoint verifies; bad calibration input fails before anything is written.
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

// in_features 128 / 256: multiples of the group (64) and of 32, so every linear packs.
void make_model(const fs::path& out) {
  const ProcessResult r =
      run_process({kMakeModel, "--out", out.string(), "--hidden", "128", "--intermediate", "256",
                   "--layers", "2", "--heads", "4", "--kv-heads", "4", "--vocab", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
}

class GptqCli : public ::testing::Test {
 protected:
  void SetUp() override { make_model(model_); }
  std::vector<std::string> quantize_args() const {
    return {"quantize", model_.string(), "-o",    out_.string(),   "--method",  "gptq",
            "--set",    "bits=4",        "--set", "group_size=64", "--threads", "2"};
  }
  TempDir dir_;
  fs::path model_ = dir_.path() / "model";
  fs::path out_ = dir_.path() / "out";
};

TEST_F(GptqCli, DataFreeCalibrationQuantizesEveryBlockLinearThenVerifies) {
  std::vector<std::string> args = quantize_args();
  args.insert(args.end(), {"--calibration-sequences", "4", "--calibration-seq-len", "24"});
  const ProcessResult q = run_qforge(args);
  ASSERT_EQ(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.err, HasSubstr("calibration: 4 data-free sequences of 24 tokens"));
  // 2 blocks x 7 linears; lm_head is kept (transformers' default skip).
  EXPECT_THAT(q.err, HasSubstr("calibration: 14 linears quantized with their statistics"));
  EXPECT_THAT(q.err, HasSubstr("calibration: block 2/2"));
  EXPECT_THAT(q.err, ::testing::Not(HasSubstr("round-to-nearest")));
  EXPECT_TRUE(fs::exists(out_ / "model.safetensors"));

  const ProcessResult v = run_qforge(
      {"verify", model_.string(), out_.string(), "--threshold", "top1=0.25", "--threads", "2"});
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

TEST_F(GptqCli, TokenFileIsTheCalibrationWhenGiven) {
  const fs::path ids = dir_.write("calib.txt", "1 5 9 13 17 21 25 29\n2 4 6 8 10 12 14 16\n");
  std::vector<std::string> args = quantize_args();
  args.insert(args.end(), {"--calibration", ids.string()});
  const ProcessResult q = run_qforge(args);
  ASSERT_EQ(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.err, HasSubstr("calibration: 2 sequences from"));
  EXPECT_THAT(q.err, HasSubstr("(2 sequences, 16 tokens)"));
}

TEST_F(GptqCli, BadCalibrationInputFailsAndLeavesNoOutput) {
  const fs::path ids = dir_.write("calib.txt", "1 2 3\n4 500 6\n");  // vocab is 96
  std::vector<std::string> args = quantize_args();
  args.insert(args.end(), {"--calibration", ids.string()});
  const ProcessResult q = run_qforge(args);
  EXPECT_NE(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.err, HasSubstr("500"));
  EXPECT_FALSE(fs::exists(out_)) << "a failed calibration must not create the output";

  std::vector<std::string> missing = quantize_args();
  missing.insert(missing.end(), {"--calibration", (dir_.path() / "nope.txt").string()});
  const ProcessResult m = run_qforge(missing);
  EXPECT_NE(m.exit_code, 0) << m.describe();
  EXPECT_THAT(m.err, HasSubstr("nope.txt"));
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(GptqCli, CalibrationNoneQuantizesByRoundToNearestAndSaysSo) {
  std::vector<std::string> args = quantize_args();
  args.insert(args.end(), {"--calibration", "none"});
  const ProcessResult q = run_qforge(args);
  ASSERT_EQ(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.err, HasSubstr("--calibration none"));
  EXPECT_THAT(q.err, ::testing::Not(HasSubstr("calibration: block")));
  EXPECT_TRUE(fs::exists(out_ / "model.safetensors"));
}

TEST_F(GptqCli, CalibrationFlagOnAnUncalibratedMethodIsIgnoredWithAWarning) {
  const fs::path ids = dir_.write("calib.txt", "1 2 3\n");
  const ProcessResult q = run_qforge({"quantize", model_.string(), "-o", out_.string(), "--method",
                                      "nf4", "--calibration", ids.string()});
  ASSERT_EQ(q.exit_code, 0) << q.describe();
  EXPECT_THAT(q.err, HasSubstr("--calibration is ignored"));
}

}  // namespace
}  // namespace qforge::test
