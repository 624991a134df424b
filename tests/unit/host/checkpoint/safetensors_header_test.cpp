// parse_safetensors_header against the malformed-file corpus of RELIABILITY.md 6.1 (ST1-ST20):
// one case per failure, each rejected with its own error text.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "unit/host/checkpoint/safetensors_builder.hpp"

namespace qforge {
namespace {

using test::le64;
using test::raw_safetensors;
using test::SafetensorsBuilder;
using ::testing::HasSubstr;
using ::testing::Not;

Result<SafetensorsHeader> parse(const std::string& file, const SafetensorsLimits& limits = {}) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(),
                                  file.size(), limits);
}

// "summary | why" of the rejection, or "<accepted>".
std::string rejection(const std::string& file, const SafetensorsLimits& limits = {}) {
  auto result = parse(file, limits);
  if (result.ok()) return "<accepted>";
  EXPECT_EQ(result.error().exit_code(), ExitCode::kBadInput);
  EXPECT_FALSE(result.error().fix().empty());
  return result.error().summary() + " | " + result.error().why();
}

std::string tensor_json(const std::string& name, const std::string& dtype, const std::string& shape,
                        const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

std::string one_tensor(const std::string& dtype, const std::string& shape,
                       const std::string& offsets, const std::string& data) {
  return raw_safetensors("{" + tensor_json("w", dtype, shape, offsets) + "}", data);
}

struct MalformedCase {
  std::string id;     // RELIABILITY row
  std::string label;  // what is wrong
  std::string file;
  std::string expect;  // substring unique to this failure
  SafetensorsLimits limits{};
};

std::vector<MalformedCase> malformed_corpus() {
  std::vector<MalformedCase> cases;
  const std::string d8(8, '\0');
  // ST1: fewer than 8 bytes.
  for (size_t n = 0; n < 8; ++n) {
    cases.push_back(
        {"ST1", std::to_string(n) + " bytes", std::string(n, '\x01'), "header too small"});
  }
  // ST2: absurd header lengths, refused before anything is allocated or read.
  cases.push_back(
      {"ST2", "N = 2^64-1", le64(std::numeric_limits<uint64_t>::max()) + "{}", "header too large"});
  cases.push_back({"ST2", "N = 100,000,001", le64(100'000'001) + "{}", "header too large"});
  // ST3: N beyond the file.
  cases.push_back({"ST3", "N > size - 8", le64(64) + "{}", "invalid header length"});
  // ST4: not UTF-8, not JSON, an array, NUL padding, BOM.
  cases.push_back({"ST4", "not UTF-8", raw_safetensors("{\"\xff\xfe\":1}"), "not valid UTF-8"});
  cases.push_back({"ST4", "not JSON", raw_safetensors("{not json at all}   "), "malformed JSON"});
  cases.push_back(
      {"ST4", "truncated JSON", raw_safetensors("{\"w\":{\"dtype\":"), "malformed JSON"});
  cases.push_back({"ST4", "JSON array", raw_safetensors("[1,2,3]"), "does not start with '{'"});
  cases.push_back({"ST4", "NUL padded", raw_safetensors(std::string("{}") + std::string(6, '\0')),
                   "padded with NUL bytes"});
  cases.push_back({"ST4", "BOM", raw_safetensors("\xEF\xBB\xBF{}"), "byte order mark"});
  // ST5: a million nested arrays: the depth cap stops it (no recursion in the parser).
  cases.push_back({"ST5", "1M nested [", raw_safetensors("{\"w\":" + std::string(1'000'000, '[')),
                   "nesting deeper than"});
  // ST6: __metadata__ must map strings to strings.
  cases.push_back(
      {"ST6", "__metadata__ number", raw_safetensors("{\"__metadata__\":5}"), "__metadata__ is"});
  cases.push_back({"ST6", "__metadata__ value object",
                   raw_safetensors("{\"__metadata__\":{\"format\":{\"a\":1}}}"),
                   "__metadata__ value of"});
  // ST7: duplicate tensor names, same and different dtypes.
  cases.push_back({"ST7", "duplicate same dtype",
                   raw_safetensors("{" + tensor_json("w", "U8", "[4]", "[0,4]") + "," +
                                       tensor_json("w", "U8", "[4]", "[4,8]") + "}",
                                   d8),
                   "duplicate key"});
  cases.push_back({"ST7", "duplicate other dtype",
                   raw_safetensors("{" + tensor_json("w", "U8", "[4]", "[0,4]") + "," +
                                       tensor_json("w", "F32", "[1]", "[4,8]") + "}",
                                   d8),
                   "duplicate key"});
  // ST8: dtypes.
  cases.push_back(
      {"ST8", "unknown dtype", one_tensor("Q7", "[1]", "[0,1]", "x"), "unknown dtype 'Q7'"});
  cases.push_back({"ST8", "torch spelling", one_tensor("float32", "[1]", "[0,4]", "xxxx"),
                   "unknown dtype 'float32'"});
  cases.push_back(
      {"ST8", "sub-byte dtype", one_tensor("F4", "[2]", "[0,1]", "x"), "unsupported dtype 'F4'"});
  // ST9: shapes.
  cases.push_back({"ST9", "[2, 2^63]", one_tensor("U8", "[2,9223372036854775808]", "[0,1]", "x"),
                   "shape dimension 1 is too large"});
  cases.push_back({"ST9", "[2^32, 2^32]", one_tensor("U8", "[4294967296,4294967296]", "[0,1]", "x"),
                   "element count of shape"});
  cases.push_back({"ST9", "bytes overflow",
                   one_tensor("F64", "[2305843009213693952,2]", "[0,1]", "x"),
                   "byte size of shape"});
  cases.push_back({"ST9", "negative dim", one_tensor("U8", "[-1]", "[0,1]", "x"),
                   "negative shape dimension 0"});
  cases.push_back({"ST9", "float dim", one_tensor("U8", "[1.0]", "[0,1]", "x"),
                   "shape dimension 0 is not an integer"});
  cases.push_back({"ST9", "string dim", one_tensor("U8", "[\"1\"]", "[0,1]", "x"),
                   "shape dimension 0 is not an integer"});
  // ST10: offsets.
  cases.push_back(
      {"ST10", "end < begin", one_tensor("U8", "[0]", "[4,0]", "xxxx"), "is before begin"});
  cases.push_back({"ST10", "gap",
                   raw_safetensors("{" + tensor_json("a", "U8", "[4]", "[0,4]") + "," +
                                       tensor_json("b", "U8", "[4]", "[8,12]") + "}",
                                   std::string(12, 'x')),
                   "gap of 4 bytes"});
  cases.push_back({"ST10", "overlap",
                   raw_safetensors("{" + tensor_json("a", "U8", "[8]", "[0,8]") + "," +
                                       tensor_json("b", "U8", "[4]", "[4,8]") + "}",
                                   d8),
                   "overlaps tensor 'a'"});
  cases.push_back({"ST10", "first not at 0", one_tensor("U8", "[4]", "[4,8]", d8),
                   "the first tensor starts at offset 4"});
  cases.push_back({"ST10", "beyond buffer", one_tensor("U8", "[16]", "[0,16]", d8),
                   "beyond the end of the data section"});
  cases.push_back({"ST10", "non-integer offset", one_tensor("U8", "[4]", "[0,4.0]", "xxxx"),
                   "data_offsets entry 1 is not an integer"});
  cases.push_back({"ST10", "negative offset", one_tensor("U8", "[4]", "[-4,0]", "xxxx"),
                   "data_offsets entry 0 is not an integer"});
  cases.push_back({"ST10", "offsets not a pair", one_tensor("U8", "[4]", "[0,4,8]", "xxxx"),
                   "data_offsets is not a pair"});
  // ST11: span disagrees with dtype and shape.
  cases.push_back(
      {"ST11", "size mismatch", one_tensor("F32", "[2]", "[0,4]", "xxxx"), "invalid tensor info"});
  // ST12: bytes after the last tensor (an appended archive).
  cases.push_back({"ST12", "trailing bytes", one_tensor("U8", "[4]", "[0,4]", "xxxxPK\x03\x04"),
                   "trailing bytes after the last tensor"});
  // ST13: a zero-size tensor at the offset of a tensor with data.
  cases.push_back({"ST13", "zero-size at a data offset",
                   raw_safetensors("{" + tensor_json("a", "U8", "[4]", "[0,4]") + "," +
                                       tensor_json("e", "U8", "[0]", "[0,0]") + "}",
                                   "xxxx"),
                   "zero-size tensor at offset 0 shares it with tensor 'a'"});
  // ST15: more tensors than the limit.
  {
    SafetensorsBuilder b;
    for (int i = 0; i < 11; ++i) b.tensor("t" + std::to_string(i), "U8", {1}, "x");
    MalformedCase c{"ST15", "tensor count limit", b.bytes(), "too many tensors: 11"};
    c.limits.max_tensors = 10;
    cases.push_back(c);
  }
  // Structural errors outside the numbered rows.
  cases.push_back(
      {"shape", "tensor entry not an object", raw_safetensors("{\"w\":[1]}"), "entry is an array"});
  cases.push_back({"shape", "missing field",
                   raw_safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}"),
                   "missing field 'data_offsets'"});
  cases.push_back({"shape", "unknown field",
                   raw_safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                                   "\"x\":1}}",
                                   "x"),
                   "unknown field 'x'"});
  cases.push_back({"shape", "N = 0", le64(0), "header length 0 cannot hold"});
  return cases;
}

class MalformedSafetensors : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedSafetensors, IsRejectedWithItsOwnError) {
  const MalformedCase& c = GetParam();
  const std::string error = rejection(c.file, c.limits);
  EXPECT_THAT(error, HasSubstr(c.expect)) << c.id << " " << c.label;
  // Distinct: no other row's phrase matches this error.
  for (const MalformedCase& other : malformed_corpus()) {
    if (other.id == c.id || other.expect == c.expect) continue;
    EXPECT_THAT(error, Not(HasSubstr(other.expect)))
        << c.id << " " << c.label << " also matches " << other.id << " " << other.label;
  }
}

INSTANTIATE_TEST_SUITE_P(St, MalformedSafetensors, ::testing::ValuesIn(malformed_corpus()),
                         [](const ::testing::TestParamInfo<MalformedCase>& param) {
                           std::string name = param.param.id + "_" + param.param.label;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name + "_" + std::to_string(param.index);
                         });

TEST(SafetensorsHeader, ParsesAValidFileInOffsetOrder) {
  const std::string file = SafetensorsBuilder()
                               .metadata("format", "pt")
                               .tensor("b", "F32", {2}, test::f32_bytes({1.0f, 2.0f}))
                               .tensor("a", "BF16", {1, 2}, "abcd")
                               .bytes();
  auto header = parse(file);
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  EXPECT_EQ(header->metadata.at("format"), "pt");
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].name, "b");
  EXPECT_EQ(header->tensors[0].dtype_name, "F32");
  EXPECT_EQ(header->tensors[0].nbytes, 8u);
  EXPECT_EQ(header->tensors[1].name, "a");
  EXPECT_EQ(header->tensors[1].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(header->tensors[1].file_offset, 8 + header->header_bytes + 8);
  EXPECT_EQ(header->header_bytes % 8, 0u);
}

TEST(SafetensorsHeader, AcceptsEveryDtypeOfTheFormat) {
  struct Row {
    const char* name;
    size_t size;
  };
  const Row rows[] = {{"F64", 8},     {"F32", 4},  {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1},
                      {"F8_E5M2", 1}, {"I64", 8},  {"I32", 4}, {"I16", 2},  {"I8", 1},
                      {"U8", 1},      {"BOOL", 1}, {"U16", 2}, {"U32", 4},  {"U64", 8}};
  SafetensorsBuilder b;
  for (const Row& row : rows)
    b.tensor(std::string("t_") + row.name, row.name, {3}, std::string(3 * row.size, 'z'));
  auto header = parse(b.bytes());
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  ASSERT_EQ(header->tensors.size(), std::size(rows));
  for (size_t i = 0; i < std::size(rows); ++i) {
    EXPECT_EQ(header->tensors[i].dtype_name, rows[i].name);
    EXPECT_EQ(dtype_size(header->tensors[i].dtype), rows[i].size);
  }
}

TEST(SafetensorsHeader, AcceptsAnEmptyFile) {
  auto header = parse(raw_safetensors("{}      "));
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  EXPECT_TRUE(header->tensors.empty());
}

TEST(SafetensorsHeader, AcceptsSpacePaddingAndUnpaddedHeaders) {  // ST16
  for (size_t align : {0, 8}) {
    const std::string file =
        SafetensorsBuilder().pad_to(align).tensor("w", "F32", {1}, "abcd").bytes();
    auto header = parse(file);
    ASSERT_TRUE(header.ok()) << header.error().to_string();
  }
  const std::string unpadded =
      SafetensorsBuilder().pad_to(0).tensor("w", "F32", {1}, "abcd").header();
  EXPECT_NE(unpadded.size() % 8, 0u) << "the test needs a header length not a multiple of 8";
}

TEST(SafetensorsHeader, AcceptsZeroSizeTensorsAtTheEndOfTheData) {  // ST13 policy
  const std::string file = raw_safetensors("{" + tensor_json("a", "U8", "[4]", "[0,4]") + "," +
                                               tensor_json("e", "F32", "[0,3]", "[4,4]") + "," +
                                               tensor_json("f", "U8", "[0]", "[4,4]") + "}",
                                           "xxxx");
  auto header = parse(file);
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  ASSERT_EQ(header->tensors.size(), 3u);
  EXPECT_EQ(header->tensors[1].name, "e");
  EXPECT_EQ(header->tensors[1].nbytes, 0u);
  // A file of zero-size tensors only has an empty data section; all sit at offset 0 = its end.
  EXPECT_TRUE(parse(raw_safetensors("{" + tensor_json("e", "U8", "[0]", "[0,0]") + "}")).ok());
}

TEST(SafetensorsHeader, RefusesSubByteDtypesAsUnsupported) {  // ST14: no sub-byte dtypes here
  for (const char* dtype : {"F4", "F6_E2M3", "F6_E3M2"}) {
    EXPECT_THAT(rejection(one_tensor(dtype, "[3]", "[0,2]", "xx")), HasSubstr("unsupported dtype"))
        << dtype;
  }
}

TEST(SafetensorsHeader, BoundsManyTinyTensors) {  // ST15: 200k tensors within the header cap
  SafetensorsBuilder b;
  for (int i = 0; i < 200'000; ++i) b.tensor("t" + std::to_string(i), "U8", {1}, "x");
  const std::string file = b.bytes();
  auto header = parse(file);
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  EXPECT_EQ(header->tensors.size(), 200'000u);
  SafetensorsLimits limits;
  limits.max_tensors = 199'999;
  EXPECT_THAT(rejection(file, limits), HasSubstr("too many tensors"));
}

TEST(SafetensorsHeader, HeaderCapIsConfigurable) {  // ST2 with a small cap
  SafetensorsLimits limits;
  limits.max_header_bytes = 16;
  const std::string file = SafetensorsBuilder().tensor("w", "U8", {1}, "x").bytes();
  EXPECT_THAT(rejection(file, limits), HasSubstr("header too large"));
}

TEST(SafetensorsHeader, DepthCapIsConfigurable) {  // ST5
  SafetensorsLimits limits;
  limits.max_json_depth = 2;
  const std::string file = SafetensorsBuilder().tensor("w", "U8", {1}, "x").bytes();
  EXPECT_THAT(rejection(file, limits), HasSubstr("nesting deeper than 2"));
  limits.max_json_depth = 3;  // object > tensor object > shape array
  EXPECT_TRUE(parse(file, limits).ok());
}

TEST(SafetensorsHeader, NeverReadsPastTheGivenPrefix) {
  const std::string file = SafetensorsBuilder().tensor("w", "U8", {4}, "xxxx").bytes();
  // Give only the length field: the header is "not fully read", not a crash or a misparse.
  auto result =
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), 8, file.size());
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.error().summary(), HasSubstr("header not fully read"));
  // The header alone (without data) is enough.
  const size_t prefix = file.size() - 4;
  EXPECT_TRUE(
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), prefix, file.size())
          .ok());
}

TEST(SafetensorsHeader, EveryTruncationOfAValidFileIsAnError) {  // ST18 (in memory)
  const std::string file = SafetensorsBuilder()
                               .metadata("format", "pt")
                               .tensor("a", "F32", {2}, "abcdefgh")
                               .tensor("b", "U8", {3}, "xyz")
                               .bytes();
  ASSERT_TRUE(parse(file).ok());
  for (size_t n = 0; n < file.size(); ++n) {
    EXPECT_FALSE(parse(file.substr(0, n)).ok()) << "prefix of " << n << " bytes accepted";
  }
}

TEST(SafetensorsHeader, TensorNamesAreOpaqueStrings) {  // ST20
  const std::string nul_name("a\0b", 3);
  const std::string long_name(1 << 20, 'n');
  const std::string file = SafetensorsBuilder()
                               .tensor("../../etc/passwd", "U8", {1}, "1")
                               .tensor("/abs/path", "U8", {1}, "2")
                               .tensor(nul_name, "U8", {1}, "3")
                               .tensor(long_name, "U8", {1}, "4")
                               .bytes();
  auto header = parse(file);
  ASSERT_TRUE(header.ok()) << header.error().to_string();
  ASSERT_EQ(header->tensors.size(), 4u);
  EXPECT_EQ(header->tensors[0].name, "../../etc/passwd");
  EXPECT_EQ(header->tensors[1].name, "/abs/path");
  EXPECT_EQ(header->tensors[2].name, nul_name);
  EXPECT_EQ(header->tensors[3].name.size(), size_t{1} << 20);
}

TEST(SafetensorsHeader, ErrorsNameTheTensor) {
  EXPECT_THAT(rejection(raw_safetensors(
                  "{" + tensor_json("layers.0.w", "F32", "[2]", "[0,4]") + "}", "xxxx")),
              HasSubstr("tensor 'layers.0.w'"));
}

}  // namespace
}  // namespace qforge
