// GGUF header validation: valid v2/v3 files, and every RELIABILITY.md 6.2 case rejected with
// its own message (the `what` of the error names the check).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include "gguf_builder.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

using test::GgufBuilder;
using test::gstr;
using test::gu32;
using test::gu64;

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

Result<GgufHeader> parse(const std::string& bytes) {
  return parse_gguf_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                           bytes.size());
}

// The error's `what` (one per check); "" when the file was accepted.
std::string rejection(const std::string& bytes) {
  auto h = parse(bytes);
  return h.ok() ? std::string() : h.error().summary();
}

std::string f32_data(size_t n) { return std::string(n * 4, '\0'); }

GgufBuilder one_tensor(uint32_t version = 3) {
  return GgufBuilder()
      .version(version)
      .str("general.architecture", "llama")
      .tensor("w", {32, 2}, kGgmlF32, f32_data(64));
}

TEST(GgufHeader, ParsesVersion2And3WithEveryScalarTypeAndArrays) {
  for (uint32_t version : {2u, 3u}) {
    const std::string bytes =
        GgufBuilder()
            .version(version)
            .raw("u8", 0, std::string(1, '\x07'))
            .raw("i8", 1, std::string(1, '\xFF'))
            .raw("u16", 2, test::gle(65535, 2))
            .raw("i16", 3, test::gle(0xFFFE, 2))
            .u32("u32", 4000000000u)
            .raw("i32", 5, gu32(0xFFFFFFFFu))
            .f32("f32", 0.5f)
            .raw("bool", 7, std::string(1, '\x01'))
            .str("s", "hello")
            .str_array("tokens", {"a", "bc", ""})
            .raw("u64", 10, gu64(1ull << 40))
            .raw("i64", 11, gu64(kMax64))
            .raw("f64", 12, test::gle(0x3FF0000000000000ull, 8))
            .raw("nested", 9, gu32(9) + gu64(1) + gu32(4) + gu64(2) + gu32(1) + gu32(2))
            .tensor("a", {32, 3}, kGgmlQ8_0, std::string(3 * 34, '\0'))
            .tensor("b", {64}, kGgmlQ4_1, std::string(2 * 20, '\0'))
            .tensor("c", {4, 2, 2, 2}, kGgmlF16, std::string(32 * 2, '\0'))
            .tensor("d", {32}, kGgmlQ4_0, std::string(18, '\0'))
            .tensor("e", {3}, kGgmlBF16, std::string(6, '\0'))
            .bytes();
    auto h = parse(bytes);
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    EXPECT_EQ(h->version, version);
    EXPECT_EQ(h->kv.size(), 14u);
    EXPECT_EQ(h->find("u8")->u, 7u);
    EXPECT_EQ(h->find("i8")->i, -1);
    EXPECT_EQ(h->find("u16")->u, 65535u);
    EXPECT_EQ(h->find("i16")->i, -2);
    EXPECT_EQ(h->find("u32")->u, 4000000000u);
    EXPECT_EQ(h->find("i32")->i, -1);
    EXPECT_EQ(h->find("f32")->f, 0.5);
    EXPECT_EQ(h->find("bool")->u, 1u);
    EXPECT_EQ(h->find("s")->str, "hello");
    ASSERT_EQ(h->find("tokens")->array.size(), 3u);
    EXPECT_EQ(h->find("tokens")->array[1].str, "bc");
    EXPECT_EQ(h->find("u64")->u, 1ull << 40);
    EXPECT_EQ(h->find("i64")->i, -1);
    EXPECT_EQ(h->find("f64")->f, 1.0);
    ASSERT_EQ(h->find("nested")->array.size(), 1u);
    EXPECT_EQ(h->find("nested")->array[0].array[1].u, 2u);
    ASSERT_EQ(h->tensors.size(), 5u);
    EXPECT_EQ(h->tensors[0].shape(), (std::vector<int64_t>{3, 32}));  // ne reversed
    EXPECT_EQ(h->tensors[0].nbytes, 3u * 34u);
    EXPECT_EQ(h->tensors[1].nbytes, 40u);
    EXPECT_EQ(h->tensors[2].shape(), (std::vector<int64_t>{2, 2, 2, 4}));
    EXPECT_EQ(h->tensors[4].nbytes, 6u);
    EXPECT_EQ(h->alignment, 32u);
    EXPECT_EQ(h->data_offset % 32, 0u);
    for (const auto& t : h->tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  }
}

TEST(GgufHeader, HonoursGeneralAlignment) {
  const std::string bytes = GgufBuilder()
                                .u32("general.alignment", 64)
                                .tensor("a", {32}, kGgmlQ8_0, std::string(34, '\0'))
                                .tensor("b", {32}, kGgmlQ8_0, std::string(34, '\0'))
                                .bytes();
  auto h = parse(bytes);
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  EXPECT_EQ(h->alignment, 64u);
  EXPECT_EQ(h->data_offset % 64, 0u);
  EXPECT_EQ(h->tensors[1].offset, 64u);
}

TEST(GgufHeader, KnownButUnsupportedTypesParseAndAreNamed) {
  // Q4_K (12): a real ggml type; the header is fine, conversion refuses it later.
  auto h = parse(GgufBuilder().tensor("k", {256}, 12, std::string(144, '\0')).bytes());
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  EXPECT_STREQ(ggml_type_name(12), "Q4_K");
  EXPECT_FALSE(gguf_tensor_type_supported(12));
}

TEST(GgufHeaderRejects, BadMagic) {
  std::string bytes = one_tensor().bytes();
  bytes[3] = 'X';
  EXPECT_EQ(rejection(bytes), "not a GGUF file (bad magic)");
  EXPECT_EQ(rejection("GG"), "not a GGUF file (bad magic)");
  EXPECT_EQ(rejection(""), "not a GGUF file (bad magic)");
}

TEST(GgufHeaderRejects, Version0And1AndFuture) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u /* big-endian 3 */, 0xFFFFFFFFu}) {
    auto h = parse(one_tensor(v).bytes());
    ASSERT_FALSE(h.ok()) << v;
    EXPECT_EQ(h.error().summary(), "unsupported GGUF version") << v;
    EXPECT_NE(h.error().why().find(std::to_string(v)), std::string::npos) << h.error().why();
    EXPECT_EQ(h.error().exit_code(), ExitCode::kBadInput);
  }
}

TEST(GgufHeaderRejects, HugeCounts) {
  EXPECT_EQ(rejection(one_tensor().n_tensors(kMax64).bytes()), "GGUF tensor count implausible");
  EXPECT_EQ(rejection(one_tensor().n_kv(kMax64).bytes()), "GGUF key-value count implausible");
  // More entries than declared bytes: the reader runs out of header.
  EXPECT_EQ(rejection(one_tensor().n_kv(3).bytes()).rfind("GGUF", 0), 0u);
}

TEST(GgufHeaderRejects, KeyLengthBeyondFile) {
  const std::string bytes =
      "GGUF" + gu32(3) + gu64(0) + gu64(1) + gu64(kMax64) + std::string(40, 'k');
  EXPECT_EQ(rejection(bytes), "GGUF string length beyond the file");
}

TEST(GgufHeaderRejects, StringValueLengthBeyondFile) {
  const std::string bytes = "GGUF" + gu32(3) + gu64(0) + gu64(1) + gstr("k") + gu32(8) +
                            gu64(1000) + std::string(40, 'x');
  EXPECT_EQ(rejection(bytes), "GGUF string length beyond the file");
}

TEST(GgufHeaderRejects, EmptyKey) {
  EXPECT_EQ(rejection(GgufBuilder().u32("", 1).bytes()), "GGUF empty key");
}

TEST(GgufHeaderRejects, UnknownValueType) {
  EXPECT_EQ(rejection(GgufBuilder().raw("k", 13, gu32(0)).bytes()), "GGUF unknown value type");
  EXPECT_EQ(rejection(GgufBuilder().raw("k", 9, gu32(99) + gu64(0)).bytes()),
            "GGUF unknown value type");
}

TEST(GgufHeaderRejects, DuplicateKey) {
  EXPECT_EQ(rejection(GgufBuilder().u32("a.b", 1).u32("a.b", 2).bytes()), "GGUF duplicate key");
}

TEST(GgufHeaderRejects, BadAlignment) {
  for (uint32_t a : {0u, 13u, 1u << 31}) {
    EXPECT_EQ(rejection(one_tensor().u32("general.alignment", a).bytes()),
              "GGUF general.alignment invalid")
        << a;
  }
  EXPECT_EQ(rejection(one_tensor().raw("general.alignment", 10, gu64(32)).bytes()),
            "GGUF general.alignment has the wrong type");
}

TEST(GgufHeaderRejects, TooManyDimensions) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {1, 1, 1, 1, 1}, kGgmlF32, f32_data(1)).bytes()),
            "GGUF tensor has too many dimensions");
}

TEST(GgufHeaderRejects, ZeroDimension) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {32, 0}, kGgmlF32, "").bytes()),
            "GGUF tensor has a zero dimension");
}

TEST(GgufHeaderRejects, ElementCountOverflow) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {1ull << 32, 1ull << 32}, kGgmlF32, "").bytes()),
            "GGUF tensor element count overflows");
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {kMax64}, kGgmlF32, "").bytes()),
            "GGUF tensor element count overflows");
}

TEST(GgufHeaderRejects, ByteSizeOverflow) {
  // 2^62 elements fit int64, but 2^62 * 4 bytes do not fit 64 bits.
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {1ull << 62}, kGgmlF32, "").bytes()),
            "GGUF tensor byte size overflows");
}

TEST(GgufHeaderRejects, TensorTypeNegativeOrPastCount) {
  for (uint32_t t : {0xFFFFFFFFu /* -1 */, kGgmlTypeCount, 1000u, 4u /* retired Q4_2 */}) {
    EXPECT_EQ(rejection(GgufBuilder().tensor("w", {32}, t, f32_data(32)).bytes()),
              "GGUF unknown tensor type")
        << t;
  }
}

TEST(GgufHeaderRejects, PartialBlockRows) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {16, 2}, kGgmlQ8_0, std::string(34, '\0')).bytes()),
            "GGUF tensor row not a whole number of blocks");
}

TEST(GgufHeaderRejects, UnalignedOffset) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {8}, kGgmlF32, f32_data(8), 4).bytes()),
            "GGUF tensor offset unaligned");
}

TEST(GgufHeaderRejects, OverlappingOffsets) {
  const std::string bytes = GgufBuilder()
                                .tensor("a", {32}, kGgmlF32, f32_data(32), 0)
                                .tensor("b", {32}, kGgmlF32, f32_data(32), 64)
                                .bytes();
  EXPECT_EQ(rejection(bytes), "GGUF tensor offsets overlap");
}

TEST(GgufHeaderRejects, DuplicateTensorName) {
  const std::string bytes = GgufBuilder()
                                .tensor("w", {8}, kGgmlF32, f32_data(8))
                                .tensor("w", {8}, kGgmlF32, f32_data(8))
                                .bytes();
  EXPECT_EQ(rejection(bytes), "GGUF duplicate tensor name");
}

TEST(GgufHeaderRejects, EmptyTensorName) {
  EXPECT_EQ(rejection(GgufBuilder().tensor("", {8}, kGgmlF32, f32_data(8)).bytes()),
            "GGUF empty tensor name");
}

TEST(GgufHeaderRejects, DataShorterThanDeclared) {
  EXPECT_EQ(rejection(one_tensor().truncate(4).bytes()), "GGUF tensor data shorter than declared");
  // Declares 64 floats, holds 8.
  EXPECT_EQ(rejection(GgufBuilder().tensor("w", {64}, kGgmlF32, f32_data(8)).bytes()),
            "GGUF tensor data shorter than declared");
}

TEST(GgufHeaderRejects, TruncatedHeader) {
  // The key is complete, its value type is not there.
  const std::string bytes = "GGUF" + gu32(3) + gu64(0) + gu64(1) + gstr("general.architecture");
  EXPECT_EQ(rejection(bytes), "GGUF header truncated");
  EXPECT_EQ(rejection(bytes + gu32(8) + gu64(5) + "ll"), "GGUF string length beyond the file");
}

TEST(GgufHeaderRejects, ArrayLongerThanFile) {
  EXPECT_EQ(rejection(GgufBuilder().raw("a", 9, gu32(4) + gu64(kMax64)).bytes()),
            "GGUF array length beyond the file");
}

TEST(GgufHeaderRejects, ArraysNestedTooDeeply) {
  std::string payload;
  for (int i = 0; i < 8; ++i) payload += gu32(9) + gu64(1);
  payload += gu32(4) + gu64(0);
  EXPECT_EQ(rejection(GgufBuilder().raw("a", 9, payload).bytes()), "GGUF arrays nested too deeply");
}

TEST(GgufHeaderRejects, BoolOutOfRange) {
  EXPECT_EQ(rejection(GgufBuilder().raw("b", 7, std::string(1, '\x02')).bytes()),
            "GGUF bool out of range");
}

// RELIABILITY.md 6.7 "malformed corpus" figure for GGUF: every handcrafted file of the fuzz
// corpus whose name does not start with "valid_" is rejected as bad input; the valid ones parse.
TEST(GgufMalformedCorpus, EveryHandcraftedBadFileRejected) {
  const std::filesystem::path dir =
      std::filesystem::path(QFORGE_SOURCE_DIR) / "tests/fuzz/corpus/gguf";
  int bad = 0, rejected = 0, valid = 0, accepted = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto h = parse(bytes);
    if (entry.path().filename().string().rfind("valid_", 0) == 0) {
      ++valid;
      accepted += h.ok() ? 1 : 0;
      EXPECT_TRUE(h.ok()) << entry.path() << ": " << (h.ok() ? "" : h.error().to_string());
    } else {
      ++bad;
      const bool ok = !h.ok() && h.error().exit_code() == ExitCode::kBadInput;
      rejected += ok ? 1 : 0;
      EXPECT_TRUE(ok) << entry.path() << " was not rejected as bad input";
    }
  }
  EXPECT_GE(bad, 20);
  EXPECT_GE(valid, 3);
  std::printf(
      "GGUF malformed corpus: %d of %d rejected as bad input (exit 4), %d of %d valid "
      "files accepted\n",
      rejected, bad, accepted, valid);
}

TEST(GgufFileTest, OpenNamesThePathAndRejectsMissingFiles) {
  auto missing = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().summary(), "cannot open GGUF file");
  const auto path = std::filesystem::temp_directory_path() /
                    ("qforge-gguf-open-" + std::to_string(::getpid()) + ".gguf");
  std::string bytes = one_tensor().bytes();
  bytes[0] = 'X';
  test::write_bytes(path, bytes);
  auto bad = GgufFile::open(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().summary(), "not a GGUF file (bad magic)");
  EXPECT_NE(bad.error().why().find(path.string()), std::string::npos);
}

}  // namespace
}  // namespace qforge
