// qforge quantize + qforge verify on the real trained models of docs/real-models.md (issue 4
// acceptance): each method's output must pass every check with the method's own thresholds
// (manifest `verify:` block), and the figures must say the models really ran. The weights live
// in the model cache (tools/fetch-models.sh); without them the tests are skipped, saying so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;

fs::path model_cache() {
  if (const char* env = std::getenv("QFORGE_MODEL_CACHE"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/nonexistent") / ".cache" / "qforge" / "models";
}

const nlohmann::json& check_of(const nlohmann::json& report, const std::string& id) {
  static const nlohmann::json none = nlohmann::json::object();
  for (const auto& c : report["checks"]) {
    if (c["id"] == id) return c;
  }
  ADD_FAILURE() << "no check '" << id << "' in " << report.dump(2);
  return none;
}

struct RealModelCase {
  std::string model;   // folder in the model cache
  std::string method;  // --method preset
  bool causal;         // causal LM (logit checks) or encoder (embedding check)
  std::vector<std::string> quantize_flags = {};  // e.g. --set for a shape the default refuses
  bool emulated = false;  // FP8 on this CPU: quantize and verify need --allow-emulation
};

std::string case_name(const ::testing::TestParamInfo<RealModelCase>& info) {
  std::string name = info.param.model + "_" + info.param.method +
                     (info.param.quantize_flags.empty() ? "" : "_custom");
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class RealModelVerify : public ::testing::TestWithParam<RealModelCase> {};

TEST_P(RealModelVerify, QuantizedOutputPassesEveryCheck) {
  const RealModelCase& c = GetParam();
  const fs::path orig = model_cache() / c.model;
  if (!fs::exists(orig / "model.safetensors")) {
    GTEST_SKIP() << "model missing: " << orig
                 << " (run tools/fetch-models.sh --qforge build/bin/qforge to fetch it)";
  }
  TempDir dir;
  const fs::path quant = dir.path() / "q";
  std::vector<std::string> quantize = {"quantize",     orig.string(), "-o",
                                       quant.string(), "--method",    c.method};
  quantize.insert(quantize.end(), c.quantize_flags.begin(), c.quantize_flags.end());
  if (c.emulated) quantize.emplace_back("--allow-emulation");
  const ProcessResult q = run_qforge(quantize);
  ASSERT_EQ(q.exit_code, 0) << q.describe();

  const fs::path md = dir.path() / "report" / "report.md";
  fs::create_directories(md.parent_path());
  std::vector<std::string> verify = {"verify", orig.string(), quant.string(),
                                     "--json", "--report",    md.string()};
  if (c.emulated) verify.emplace_back("--allow-emulation");
  const ProcessResult r = run_qforge(verify);
  std::string why;
  const auto report = parse_stdout_json(r, &why);
  ASSERT_TRUE(report.has_value()) << why << "\n" << r.describe();
  // Print the figures whatever the outcome: they are what the closing notes quote.
  for (const auto& check : (*report)["checks"]) {
    std::cout << "  " << c.model << " " << c.method << " " << check["id"].get<std::string>() << " "
              << check["outcome"].get<std::string>() << " " << check["figure"].dump() << "\n";
  }
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE((*report)["passed"].get<bool>()) << report->dump(2);
  EXPECT_TRUE(fs::exists(md));
  EXPECT_TRUE(fs::exists(md.parent_path() / "report.svg"));

  // Every static check ran and passed.
  for (const char* id : {"footprint", "layer_types", "dtypes", "config", "round_trip"}) {
    EXPECT_EQ(check_of(*report, id)["outcome"], "pass") << id;
  }
  // The output checks really ran the models (a skipped check would also leave `passed` true).
  const std::vector<std::string> output_checks =
      c.causal ? std::vector<std::string>{"logit_cosine", "kl", "top1", "ppl_delta", "generation"}
               : std::vector<std::string>{"embedding_cosine"};
  for (const auto& id : output_checks) {
    const nlohmann::json& check = check_of(*report, id);
    EXPECT_EQ(check["outcome"], "pass") << id << ": " << check.dump();
    EXPECT_TRUE(check["figure"].is_number()) << id << ": " << check.dump();
  }
  const double footprint = check_of(*report, "footprint")["figure"].get<double>();
  EXPECT_GT(footprint, 0.1);
  EXPECT_LT(footprint, 1.0);
}

INSTANTIATE_TEST_SUITE_P(Bnb, RealModelVerify,
                         ::testing::Values(RealModelCase{"SmolLM2-135M-Instruct", "nf4", true},
                                           RealModelCase{"all-MiniLM-L6-v2", "nf4", false},
                                           RealModelCase{"SmolLM2-135M-Instruct", "int8", true},
                                           RealModelCase{"all-MiniLM-L6-v2", "int8", false}),
                         case_name);

// FP8 by emulation on the CPU. SmolLM2's hidden size 576 is not a multiple of 128, which the
// default 128x128 block refuses (transformers' error): it uses 64x64 blocks; MiniLM (384, 1536)
// takes the default.
INSTANTIATE_TEST_SUITE_P(
    Fp8, RealModelVerify,
    ::testing::Values(
        RealModelCase{
            "SmolLM2-135M-Instruct", "fp8", true, {"--set", "weight_block_size=[64,64]"}, true},
        RealModelCase{"all-MiniLM-L6-v2", "fp8", false, {}, true}),
    case_name);

// HQQ 4-bit, group 64 (issue 7's acceptance); SmolLM2 only: MiniLM's BERT layers are fine too,
// but one model keeps CI short.
INSTANTIATE_TEST_SUITE_P(
    Hqq, RealModelVerify,
    ::testing::Values(RealModelCase{
        "SmolLM2-135M-Instruct", "hqq", true, {"--set", "nbits=4", "--set", "group_size=64"}}),
    case_name);

// GPTQ 4-bit, group 128, with data-free calibration (issue 8). Calibration is Llama-family
// only, so the causal LM alone. With act-order: on SmolLM2-135M without it GPTQ misses two
// default gates (logit cosine 0.896, ppl delta 0.52; round-to-nearest: 0.871, 0.94), with it
// every gate passes (docs/gptq.md, "Quality on SmolLM2-135M").
INSTANTIATE_TEST_SUITE_P(Gptq, RealModelVerify,
                         ::testing::Values(RealModelCase{
                             "SmolLM2-135M-Instruct",
                             "gptq",
                             true,
                             {"--set", "bits=4", "--set", "group_size=128", "--set",
                              "desc_act=true"}}),
                         case_name);

}  // namespace
}  // namespace qforge::test
