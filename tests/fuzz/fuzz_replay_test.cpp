// Replays every committed fuzz input (corpus and past crashes) through the fuzzer's property, as
// an ordinary test that runs in every build (RELIABILITY.md: "committed crash cases replay as
// ordinary tests"). One test per file, so a failure names the input. Built once per fuzz target
// (tests/fuzz/CMakeLists.txt qforge_fuzz_replay): QFORGE_FUZZ_CHECK_HEADER declares the target's
// property QFORGE_FUZZ_CHECK(data, size), which returns nullptr or what broke.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include QFORGE_FUZZ_CHECK_HEADER

namespace qforge::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> replay_inputs() {
  std::vector<std::string> files;
  for (const char* dir : {QFORGE_FUZZ_CORPUS_DIR, QFORGE_FUZZ_CRASHES_DIR}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file() && entry.path().filename() != "README.md") {
        files.push_back(entry.path().string());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzReplay, ParserReturnsWithoutCrashing) {
  std::ifstream in(GetParam(), std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << GetParam();
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const char* broken =
      QFORGE_FUZZ_CHECK(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(broken, nullptr) << GetParam() << ": " << broken;
}

// The committed corpus is never empty: an empty list means the folders moved.
TEST(FuzzCorpus, IsPresent) { EXPECT_GE(replay_inputs().size(), 10u); }

INSTANTIATE_TEST_SUITE_P(Committed, FuzzReplay, ::testing::ValuesIn(replay_inputs()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           const fs::path p(param.param);
                           std::string name = p.parent_path().parent_path().filename().string() +
                                              "_" + p.filename().string();
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name + "_" + std::to_string(param.index);
                         });

}  // namespace
}  // namespace qforge::fuzz
