// SafetensorsFile: mapped reading, zero-copy views, misaligned data (ST16), special float values
// (ST17), truncated and replaced files (ST18, IO7).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <limits>

#include "qforge/checkpoint.hpp"
#include "unit/host/checkpoint/safetensors_builder.hpp"

namespace qforge {
namespace {

using test::SafetensorsBuilder;
using test::TempDir;
using test::write_bytes;
using ::testing::HasSubstr;

std::string bytes_of(const TensorView& view) {
  return std::string(static_cast<const char*>(view.data()), view.nbytes());
}

TEST(SafetensorsFile, ViewsPointIntoTheMappingAndOutliveTheFileObject) {
  TempDir dir;
  const std::string a = test::pattern_bytes(24, 1);
  write_bytes(
      dir / "m.safetensors",
      SafetensorsBuilder().tensor("a", "F32", {2, 3}, a).tensor("b", "U8", {3}, "xyz").bytes());
  TensorView view;
  {
    auto file = SafetensorsFile::open(dir / "m.safetensors");
    ASSERT_TRUE(file.ok()) << file.error().to_string();
    const auto& f = *file.value();
    ASSERT_EQ(f.tensors().size(), 2u);
    ASSERT_NE(f.find("b"), nullptr);
    EXPECT_EQ(f.find("c"), nullptr);
    auto v = f.view("a");
    ASSERT_TRUE(v.ok());
    view = v.value();
    auto again = f.view("a");
    EXPECT_EQ(again->data(), view.data()) << "views must be zero-copy";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data()) % 4, 0u);
    EXPECT_THAT(f.view("nope").error().summary(), HasSubstr("tensor 'nope' is not in"));
  }
  // The file object is gone; the view keeps the mapping.
  EXPECT_EQ(view.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(bytes_of(view), a);
}

TEST(SafetensorsFile, MisalignedDataIsCopiedToAlignedMemory) {  // ST16
  TempDir dir;
  const std::string a = test::pattern_bytes(8, 3);
  const std::string file = SafetensorsBuilder().pad_to(0).tensor("a", "F64", {1}, a).bytes();
  ASSERT_NE((file.size() - 8) % 8, 0u);
  write_bytes(dir / "m.safetensors", file);
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  auto view = f.value()->view("a");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data()) % 8, 0u);
  EXPECT_EQ(bytes_of(view.value()), a);
  double value = 0;
  std::memcpy(&value, a.data(), 8);
  EXPECT_EQ(std::memcmp(view->data_as<double>(), &value, 8), 0);
}

TEST(SafetensorsFile, SpecialFloatValuesLoadUnchanged) {  // ST17
  TempDir dir;
  const std::vector<float> values = {
      std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(), -0.0f};
  const std::string raw = test::f32_bytes(values);
  write_bytes(dir / "m.safetensors", SafetensorsBuilder().tensor("w", "F32", {5}, raw).bytes());
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(bytes_of(f.value()->view("w").value()), raw);
}

TEST(SafetensorsFile, ErrorsNameTheFile) {
  TempDir dir;
  write_bytes(dir / "bad.safetensors", "abc");
  auto f = SafetensorsFile::open(dir / "bad.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error().summary(),
              HasSubstr("bad.safetensors: safetensors header: header too small"));
  EXPECT_EQ(f.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(SafetensorsFile::open(dir / "missing.safetensors").error().summary(),
              HasSubstr("cannot open"));
  EXPECT_THAT(SafetensorsFile::open(dir.path()).error().summary(), HasSubstr("not a regular file"));
}

TEST(SafetensorsFile, TruncatedFilesAreRejectedAtOpen) {  // ST18
  TempDir dir;
  const std::string full =
      SafetensorsBuilder().tensor("a", "F32", {4}, test::pattern_bytes(16)).bytes();
  for (size_t n :
       {size_t{0}, size_t{4}, size_t{8}, size_t{20}, full.size() - 16, full.size() - 1}) {
    write_bytes(dir / "t.safetensors", full.substr(0, n));
    EXPECT_FALSE(SafetensorsFile::open(dir / "t.safetensors").ok()) << n << " bytes";
  }
  write_bytes(dir / "t.safetensors", full.substr(0, full.size() - 1));
  EXPECT_THAT(SafetensorsFile::open(dir / "t.safetensors").error().summary(),
              HasSubstr("beyond the end of the data section"));
}

TEST(SafetensorsFile, ReplacingTheFileByRenameKeepsOldViewsIntact) {  // IO7
  TempDir dir;
  const std::string old_bytes = test::pattern_bytes(16, 1);
  write_bytes(dir / "m.safetensors",
              SafetensorsBuilder().tensor("a", "U8", {16}, old_bytes).bytes());
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok());
  const TensorView view = f.value()->view("a").value();
  write_bytes(dir / "new.safetensors",
              SafetensorsBuilder().tensor("a", "U8", {16}, test::pattern_bytes(16, 9)).bytes());
  std::filesystem::rename(dir / "new.safetensors", dir / "m.safetensors");
  EXPECT_EQ(bytes_of(view), old_bytes);
}

// IO7, documented: truncating a mapped file in place makes access fault (SIGBUS); qforge never
// returns stale or zeroed weights silently.
TEST(SafetensorsFileDeathTest, TruncationWhileMappedFaultsInsteadOfReadingWrongData) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::string data = test::pattern_bytes(static_cast<size_t>(page) * 4, 5);
  write_bytes(
      dir / "m.safetensors",
      SafetensorsBuilder().tensor("a", "U8", {static_cast<int64_t>(data.size())}, data).bytes());
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok());
  const TensorView view = f.value()->view("a").value();
  EXPECT_EXIT(
      {
        ::truncate((dir / "m.safetensors").c_str(), 8);
        volatile const char* p = static_cast<const char*>(view.data());
        char sum = 0;
        for (size_t i = 0; i < view.nbytes(); i += 512) sum = static_cast<char>(sum + p[i]);
        std::fprintf(stderr, "read %d\n", sum);
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

}  // namespace
}  // namespace qforge
