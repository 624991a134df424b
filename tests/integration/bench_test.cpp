// `qforge bench` smoke tests: --quick runs on tiny sizes and the report's structure is checked
// (every figure present, ratios and rates positive and ordered, the byte ratio that follows from
// the NF4 layout). No timing is asserted: the figures of a --quick run mean nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

using ::testing::HasSubstr;

const std::string kFaultOkDir = std::string(QFORGE_FIXTURE_PLUGIN_DIR) + "/qf_fault_ok";

void expect_spread(const nlohmann::json& s, const std::string& what) {
  ASSERT_TRUE(s.is_object()) << what;
  for (const char* key : {"min", "median", "max"}) {
    ASSERT_TRUE(s.contains(key) && s[key].is_number()) << what << "." << key;
    const double v = s[key].get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << what << "." << key << " = " << v;
  }
  EXPECT_LE(s["min"].get<double>(), s["median"].get<double>()) << what;
  EXPECT_LE(s["median"].get<double>(), s["max"].get<double>()) << what;
}

void expect_figure(const nlohmann::json& f) {
  const std::string id = f.value("id", "?");
  for (const char* key : {"ratio", "candidate_gbps", "reference_gbps"}) {
    expect_spread(f[key], id + "." + key);
  }
  EXPECT_TRUE(f["target"].is_number()) << id;
  EXPECT_TRUE(f["meets_target"].is_boolean()) << id;
  EXPECT_GE(f.value("threads", 0), 1) << id;
  EXPECT_FALSE(f.value("candidate", "").empty()) << id;
  EXPECT_FALSE(f.value("reference", "").empty()) << id;
}

TEST(BenchQuick, Nf4JsonHasEveryFigureWithPositiveRatios) {
  const ProcessResult r =
      run_qforge({"bench", "all", "--method", "nf4", "--quick", "--threads", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string why;
  const auto doc = parse_stdout_json(r, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  EXPECT_EQ((*doc)["quick"], true);
  EXPECT_EQ((*doc)["meaningful"], false);
  EXPECT_EQ((*doc)["quant_method"], "bitsandbytes_4bit");
  EXPECT_EQ((*doc)["plugin"], "bnb");
  EXPECT_EQ((*doc)["dtype"], "BF16");
  EXPECT_EQ((*doc)["threads"], 2);
  EXPECT_TRUE((*doc)["errors"].empty()) << doc->dump(2);

  std::set<std::string> ids;
  std::set<int> r3_threads;
  std::set<int64_t> r4_batches;
  for (const auto& f : (*doc)["figures"]) {
    expect_figure(f);
    const std::string id = f["id"];
    ids.insert(id);
    if (id == "R3") r3_threads.insert(f["threads"].get<int>());
    if (id == "R4") {
      r4_batches.insert(f["batch"].get<int64_t>());
      expect_spread(f["fraction_of_byte_ratio"], "R4.fraction_of_byte_ratio");
      // fp32 is 32 bits a weight; NF4 at blocksize 64 stores 4 + 32/64 (fp32 absmax): 7.1x.
      EXPECT_NEAR(f["byte_ratio"].get<double>(), 32.0 / 4.5, 0.1);
      const double ratio = f["ratio"]["median"].get<double>();
      const double fraction = f["fraction_of_byte_ratio"]["median"].get<double>();
      EXPECT_NEAR(fraction * f["byte_ratio"].get<double>(), ratio, 1e-6 * ratio + 1e-9);
    }
    if (id == "R1" || id == "R2") {
      EXPECT_GT(f["detail"]["bytes_in"].get<uint64_t>(), 0u);
      EXPECT_GT(f["detail"]["bytes_out"].get<uint64_t>(), 0u);
    }
  }
  EXPECT_EQ(ids, (std::set<std::string>{"R1", "R2", "R3", "R4"}));
  EXPECT_EQ(r3_threads, (std::set<int>{1, 2}));
  EXPECT_EQ(r4_batches, (std::set<int64_t>{1, 2, 4, 8, 16}));
}

TEST(BenchQuick, TextReportNamesEveryFigureAndSaysItIsNotMeaningful) {
  const ProcessResult r = run_qforge(
      {"bench", "gemv", "--method", "nf4", "--quick", "--threads", "1", "--batches", "1,3"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("--quick"));
  EXPECT_THAT(r.out, HasSubstr("R3 "));
  EXPECT_THAT(r.out, HasSubstr("b=1"));
  EXPECT_THAT(r.out, HasSubstr("b=3"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("R1 ")));
}

TEST(BenchQuick, MissingLinearForwardIsAClearErrorNotACrash) {
  // fault_rtn implements quantize and dequantize only (fp32 weights).
  const ProcessResult r =
      run_qforge({"--no-default-dirs", "--plugin-dir", kFaultOkDir, "bench", "gemv", "--method",
                  "fault_rtn", "--dtype", "fp32", "--quick", "--json"});
  EXPECT_EQ(r.exit_code, 5) << r.describe();
  std::string why;
  const auto doc = parse_stdout_json(r, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  ASSERT_TRUE(doc->contains("error")) << doc->dump(2);
  EXPECT_THAT((*doc)["error"]["what"].get<std::string>(), HasSubstr("linear_forward"));
  EXPECT_EQ((*doc)["error"]["code"], "UNIMPLEMENTED");
  EXPECT_THAT(r.err, HasSubstr("linear_forward"));
}

TEST(BenchQuick, AllMeasuresWhatItCanAndListsTheMissingHook) {
  const ProcessResult r =
      run_qforge({"--no-default-dirs", "--plugin-dir", kFaultOkDir, "bench", "all", "--method",
                  "fault_rtn", "--dtype", "fp32", "--quick", "--json"});
  EXPECT_EQ(r.exit_code, 5) << r.describe();
  std::string why;
  const auto doc = parse_stdout_json(r, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  std::set<std::string> ids;
  for (const auto& f : (*doc)["figures"]) {
    expect_figure(f);
    ids.insert(f["id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"R1", "R2"}));
  ASSERT_EQ((*doc)["errors"].size(), 1u) << doc->dump(2);
  EXPECT_THAT((*doc)["errors"][0]["what"].get<std::string>(), HasSubstr("linear_forward"));
}

// R5 (gptq only): the GPTQ algorithm's figure, in GFLOP/s, with its FLOP count; `all` adds it
// to R1-R4 for gptq.
TEST(BenchQuick, GptqR5ReportsGflopsAndItsFlopCount) {
  const ProcessResult r = run_qforge(
      {"bench", "gptq", "--method", "gptq_4bit_128", "--quick", "--threads", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string why;
  const auto doc = parse_stdout_json(r, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  ASSERT_EQ((*doc)["figures"].size(), 1u) << doc->dump(2);
  const auto& f = (*doc)["figures"][0];
  EXPECT_EQ(f["id"], "R5");
  for (const char* key : {"ratio", "candidate_gflops", "reference_gflops"}) {
    expect_spread(f[key], std::string("R5.") + key);
  }
  // --quick: a 256x512 layer, I^3 * 2/3 + O * I^2 nominal FLOPs.
  EXPECT_EQ(f["detail"]["shape"], (nlohmann::json{256, 512}));
  EXPECT_NEAR(f["detail"]["flops"].get<double>(), 2.0 / 3.0 * 512.0 * 512 * 512 + 256.0 * 512 * 512,
              1.0);
  EXPECT_GE(f["detail"]["reference_flops"].get<double>(), f["detail"]["flops"].get<double>());
}

TEST(BenchUsage, BadFlagsAreUsageErrors) {
  EXPECT_EQ(run_qforge({"bench", "gptq", "--method", "nf4", "--quick"}).exit_code, 2);
  EXPECT_EQ(
      run_qforge({"bench", "gptq", "--method", "gptq_4bit_128", "--gptq-shape", "4096"}).exit_code,
      2);
  EXPECT_EQ(run_qforge({"bench", "gemv", "--shape", "4096"}).exit_code, 2);
  EXPECT_EQ(run_qforge({"bench", "gemv", "--dtype", "int8"}).exit_code, 2);
  EXPECT_EQ(run_qforge({"bench", "gemv", "--batches", "32"}).exit_code, 2);
  EXPECT_EQ(run_qforge({"bench", "frobnicate"}).exit_code, 2);
}

}  // namespace
}  // namespace qforge::test
