// `qforge generate` and `qforge eval` end to end: outputs, --json documents and exit codes, on a
// generated Llama checkpoint.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kMakeModel = std::string(QFORGE_BUILD_DIR) + "/bin/qforge-make-model";

class RuntimeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const ProcessResult r = run_process({kMakeModel, "--out", model().string(), "--hidden", "64",
                                         "--intermediate", "160", "--layers", "2", "--heads", "4",
                                         "--kv-heads", "2", "--vocab", "96", "--seed", "5"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  fs::path model() const { return tmp_.path() / "m"; }
  TempDir tmp_;
};

std::vector<int64_t> ids_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  int64_t v = 0;
  while (in >> v) ids.push_back(v);
  return ids;
}

TEST_F(RuntimeCli, GeneratePrintsNewIdsAndJson) {
  const ProcessResult text =
      run_qforge({"generate", model().string(), "--ids", "1,2,3", "-n", "8", "--threads", "1"});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  const auto ids = ids_of(text.out);
  ASSERT_EQ(ids.size(), 8u) << text.out;
  for (const int64_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 96);
  }
  const ProcessResult json =
      run_qforge({"generate", model().string(), "--ids", "1 2 3", "-n", "8", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.describe();
  std::string why;
  const auto doc = parse_stdout_json(json, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  EXPECT_EQ((*doc)["prompt"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ((*doc)["generated"].get<std::vector<int64_t>>(), ids);  // deterministic

  // --eos stops right after that id.
  const ProcessResult eos = run_qforge(
      {"generate", model().string(), "--ids", "1,2,3", "-n", "8", "--eos", std::to_string(ids[1])});
  ASSERT_EQ(eos.exit_code, 0) << eos.describe();
  const auto stopped = ids_of(eos.out);
  ASSERT_FALSE(stopped.empty());
  EXPECT_EQ(stopped.back(), ids[1]);
  EXPECT_LE(stopped.size(), 2u);
}

TEST_F(RuntimeCli, GenerateBadInputExitsFour) {
  const ProcessResult range =
      run_qforge({"generate", model().string(), "--ids", "1,96", "-n", "2"});
  EXPECT_EQ(range.exit_code, 4) << range.describe();
  EXPECT_THAT(range.err, HasSubstr("position 1"));
  const ProcessResult text = run_qforge({"generate", model().string(), "--ids", "1,a", "-n", "2"});
  EXPECT_EQ(text.exit_code, 4) << text.describe();
  const ProcessResult missing =
      run_qforge({"generate", (tmp_.path() / "nope").string(), "--ids", "1"});
  EXPECT_EQ(missing.exit_code, 4) << missing.describe();
  const ProcessResult usage = run_qforge({"generate", model().string()});
  EXPECT_EQ(usage.exit_code, 2) << usage.describe();
  const ProcessResult json = run_qforge({"generate", model().string(), "--ids", "500", "--json"});
  EXPECT_EQ(json.exit_code, 4);
  std::string why;
  const auto doc = parse_stdout_json(json, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  EXPECT_TRUE(doc->contains("error"));
}

TEST_F(RuntimeCli, EvalPrintsNllPerplexityAndTokens) {
  const fs::path ids = tmp_.write("ids.txt", "# two sequences\n1 2 3 4 5\n6,7,8\n");
  const ProcessResult text = run_qforge({"eval", model().string(), "--ids-file", ids.string()});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_THAT(text.out, HasSubstr("perplexity"));
  EXPECT_THAT(text.out, HasSubstr("6 tokens"));
  const ProcessResult json =
      run_qforge({"eval", model().string(), "--ids-file", ids.string(), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.describe();
  std::string why;
  const auto doc = parse_stdout_json(json, &why);
  ASSERT_TRUE(doc.has_value()) << why;
  EXPECT_EQ((*doc)["tokens"], 6);
  const double nll = (*doc)["mean_nll"].get<double>();
  // A random model predicts ~uniformly over 96 ids: NLL near log(96) = 4.56.
  EXPECT_GT(nll, 3.5);
  EXPECT_LT(nll, 5.5);
  EXPECT_NEAR((*doc)["perplexity"].get<double>(), std::exp(nll), 1e-6 * std::exp(nll));
}

TEST_F(RuntimeCli, EvalBadInputExitsFour) {
  const fs::path bad = tmp_.write("bad.txt", "1 2\n3 zz\n");
  const ProcessResult r = run_qforge({"eval", model().string(), "--ids-file", bad.string()});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("line 2"));
  const fs::path one = tmp_.write("one.txt", "1 2\n3\n");
  const ProcessResult s = run_qforge({"eval", model().string(), "--ids-file", one.string()});
  EXPECT_EQ(s.exit_code, 4) << s.describe();
  const ProcessResult m =
      run_qforge({"eval", model().string(), "--ids-file", (tmp_.path() / "none").string()});
  EXPECT_EQ(m.exit_code, 4) << m.describe();
}

}  // namespace
}  // namespace qforge::test
