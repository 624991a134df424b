// RELIABILITY.md PL1: broken manifests are rejected before any library is opened, and each error
// names the file and the field. Manifests are written with tests/support/manifest_builder.hpp.
#include "qforge/manifest.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "support/manifest_builder.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using test::DeviceBuilder;
using test::ManifestBuilder;
using test::MethodBuilder;

const fs::path kFolder = "/opt/plugins/acme";

Result<PluginManifest> parse(const std::string& text) {
  return parse_manifest_text(text, "acme.yaml", kFolder);
}

Result<PluginManifest> parse(const ManifestBuilder& builder) { return parse(builder.yaml()); }

// The error's "what" line; fails the test when parsing succeeded.
std::string error_of(const Result<PluginManifest>& r) {
  EXPECT_FALSE(r.ok()) << "expected an error";
  if (r.ok()) return "";
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput) << r.error().to_string();
  EXPECT_FALSE(r.error().why().empty());
  EXPECT_FALSE(r.error().fix().empty());
  return r.error().summary();
}

// --- valid manifests ----------------------------------------------------------------------------

TEST(ManifestParse, AcceptsTheBuildersDefaultManifest) {
  auto r = parse(ManifestBuilder());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->schema, 1);
  EXPECT_EQ(r->id, "acme");
  ASSERT_EQ(r->methods.size(), 1u);
  EXPECT_EQ(r->methods[0].quant_method, "acme_int4");
  ASSERT_EQ(r->methods[0].devices.size(), 1u);
  EXPECT_EQ(r->methods[0].devices[0].type, "cpu");
  EXPECT_EQ(r->methods[0].priority, 0);
  EXPECT_FALSE(r->methods[0].requires_calibration);
  EXPECT_FALSE(r->sha256.has_value());
  EXPECT_FALSE(r->requires_libtorch.has_value());
  EXPECT_EQ(r->vendor_extras, nlohmann::json::object());
}

TEST(ManifestParse, RoundTripsEveryField) {
  const std::string sha(64, 'a');
  const std::string text = R"(schema: 1
id: bnb
name: bitsandbytes
version: 0.1.10
vendor: qforge
license: Apache-2.0
description: |
  Two lines
  of text.
library: lib/../bnb.so
sha256: )" + sha + R"(
abi:
  major: 1
  min_minor: 2
requires:
  libtorch: "1.13"
methods:
  - quant_method: bitsandbytes_4bit
    aliases: [bnb_4bit, bnb4]
    presets:
      nf4: {quant_method: bitsandbytes, load_in_4bit: true, bnb_4bit_quant_type: nf4}
      fp4: {load_in_4bit: true, bnb_4bit_quant_type: fp4}
    devices:
      - type: cpu
        cpu_features: [avx2, fma]
      - type: cuda
        min_compute_capability: "7.5"
      - type: rocm
        gcn_archs: [gfx90a, gfx942]
    priority: -5
    requires_calibration: true
    loading_attributes: [bnb_4bit_compute_dtype]
    config_keys: [load_in_4bit, bnb_4bit_quant_type]
  - quant_method: bitsandbytes_8bit
    devices: [{type: cuda, min_compute_capability: 8.0}]
    priority: 100
x_acme_build: "2026-11-01"
)";
  auto r = parse(text);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const PluginManifest& m = r.value();
  EXPECT_EQ(m.path, kFolder / "acme.yaml");
  EXPECT_EQ(m.schema, 1);
  EXPECT_EQ(m.id, "bnb");
  EXPECT_EQ(m.name, "bitsandbytes");
  EXPECT_EQ(m.version, "0.1.10");  // kept as written, not read as a number
  EXPECT_EQ(m.vendor, "qforge");
  EXPECT_EQ(m.license, "Apache-2.0");
  EXPECT_EQ(m.description, "Two lines\nof text.\n");
  EXPECT_EQ(m.library, fs::path("lib/../bnb.so"));
  EXPECT_EQ(m.library_path, kFolder / "bnb.so");
  EXPECT_EQ(m.sha256, sha);
  EXPECT_EQ(m.abi_major, 1u);
  EXPECT_EQ(m.abi_min_minor, 2u);
  EXPECT_EQ(m.requires_libtorch, "1.13");
  ASSERT_EQ(m.methods.size(), 2u);

  const MethodManifest& m4 = m.methods[0];
  EXPECT_EQ(m4.quant_method, "bitsandbytes_4bit");
  EXPECT_EQ(m4.aliases, (std::vector<std::string>{"bnb_4bit", "bnb4"}));
  ASSERT_EQ(m4.presets.size(), 2u);
  EXPECT_EQ(m4.presets.at("nf4"), nlohmann::json::parse(R"({"quant_method": "bitsandbytes",
      "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"})"));
  EXPECT_EQ(m4.presets.at("fp4"),
            nlohmann::json::parse(R"({"load_in_4bit": true, "bnb_4bit_quant_type": "fp4"})"));
  ASSERT_EQ(m4.devices.size(), 3u);
  EXPECT_EQ(m4.devices[0].type, "cpu");
  EXPECT_EQ(m4.devices[0].cpu_features, (std::vector<std::string>{"avx2", "fma"}));
  EXPECT_FALSE(m4.devices[0].min_cc_major.has_value());
  EXPECT_EQ(m4.devices[1].type, "cuda");
  EXPECT_EQ(m4.devices[1].min_cc_major, 7);
  EXPECT_EQ(m4.devices[1].min_cc_minor, 5);
  EXPECT_EQ(m4.devices[2].type, "rocm");
  EXPECT_EQ(m4.devices[2].gcn_archs, (std::vector<std::string>{"gfx90a", "gfx942"}));
  EXPECT_EQ(m4.priority, -5);
  EXPECT_TRUE(m4.requires_calibration);
  EXPECT_EQ(m4.loading_attributes, (std::vector<std::string>{"bnb_4bit_compute_dtype"}));
  EXPECT_EQ(m4.config_keys, (std::vector<std::string>{"load_in_4bit", "bnb_4bit_quant_type"}));

  const MethodManifest& m8 = m.methods[1];
  EXPECT_EQ(m8.quant_method, "bitsandbytes_8bit");
  EXPECT_TRUE(m8.aliases.empty());
  EXPECT_TRUE(m8.presets.empty());
  ASSERT_EQ(m8.devices.size(), 1u);
  EXPECT_EQ(m8.devices[0].min_cc_major, 8);  // written as the number 8.0
  EXPECT_EQ(m8.devices[0].min_cc_minor, 0);
  EXPECT_EQ(m8.priority, 100);
  EXPECT_FALSE(m8.requires_calibration);

  EXPECT_EQ(m.vendor_extras, nlohmann::json({{"x_acme_build", "2026-11-01"}}));
}

TEST(ManifestParse, BuilderSettersProduceTheFieldsTheyName) {
  auto r =
      parse(ManifestBuilder()
                .id("acme.v2")
                .name("Acme")
                .version("2")
                .vendor("Acme Corp")
                .license("MIT")
                .description("d")
                .library("sub/libacme.so")
                .sha256(std::string(64, '0'))
                .abi_major(1)
                .abi_min_minor(3)
                .requires_libtorch("1.13")
                .method(MethodBuilder("acme_int4")
                            .aliases({"acme4"})
                            .preset("fast", "{bits: 4}")
                            .devices({DeviceBuilder::cpu({"avx2"}), DeviceBuilder::cuda("8.6")})
                            .add_device(DeviceBuilder::rocm({"gfx942"}))
                            .priority(7)
                            .requires_calibration(true)
                            .loading_attributes({"group_size"})
                            .config_keys({"bits", "group_size"}))
                .add_method(MethodBuilder("acme_int8"))
                .vendor_extra("x_acme_flag", "true"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->id, "acme.v2");
  EXPECT_EQ(r->library_path, kFolder / "sub/libacme.so");
  EXPECT_EQ(r->abi_min_minor, 3u);
  ASSERT_EQ(r->methods.size(), 2u);
  EXPECT_EQ(r->methods[0].presets.at("fast"), nlohmann::json({{"bits", 4}}));
  ASSERT_EQ(r->methods[0].devices.size(), 3u);
  EXPECT_EQ(r->methods[0].devices[1].min_cc_minor, 6);
  EXPECT_EQ(r->methods[0].devices[2].gcn_archs, std::vector<std::string>{"gfx942"});
  EXPECT_EQ(r->methods[1].quant_method, "acme_int8");
  EXPECT_EQ(r->vendor_extras.at("x_acme_flag"), true);
}

// --- YAML-level faults --------------------------------------------------------------------------

TEST(ManifestParse, RejectsMalformedYamlNamingLineAndColumn) {
  const std::string what = error_of(parse("schema: 1\nid: acme\nmethods: [a, b\nname: x\n"));
  EXPECT_NE(what.find("acme.yaml: malformed YAML at line 4, column 5"), std::string::npos) << what;
}

TEST(ManifestParse, RejectsBadIndentationNamingTheLine) {
  const std::string what = error_of(parse("schema: 1\nabi:\n  major: 1\n min_minor: 0\n"));
  EXPECT_NE(what.find("acme.yaml: malformed YAML at line 4"), std::string::npos) << what;
}

// The 1-based line just after the builder's default manifest.
std::string line_after_default() {
  const std::string text = ManifestBuilder().yaml();
  return std::to_string(std::count(text.begin(), text.end(), '\n') + 1);
}

TEST(ManifestParse, RejectsDuplicateTopLevelKey) {
  auto r = parse(ManifestBuilder().raw_extra("id: other"));
  EXPECT_EQ(error_of(r), "acme.yaml: field 'id': duplicate key");
  EXPECT_EQ(r.error().why().find("at line " + line_after_default() +
                                 ", column 1: key 'id' was already given at line 2, column 1"),
            0u)
      << r.error().why();
}

TEST(ManifestParse, RejectsDuplicateKeyInsideAMethod) {
  auto r = parse(ManifestBuilder().method(MethodBuilder().priority(1).raw_extra("priority: 2")));
  EXPECT_EQ(error_of(r), "acme.yaml: field 'methods[0].priority': duplicate key");
}

TEST(ManifestParse, RejectsDuplicateKeyInsideAPreset) {
  auto r = parse(ManifestBuilder().method(MethodBuilder().preset("nf4", "{bits: 4, bits: 8}")));
  EXPECT_EQ(error_of(r), "acme.yaml: field 'methods[0].presets.nf4.bits': duplicate key");
}

TEST(ManifestParse, RejectsAliasBomb) {
  // "Billion laughs": nine levels of nine aliases would expand to 9^9 strings.
  std::string text = "x_lol_0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n";
  for (int i = 1; i < 9; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "x_lol_" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev +
            ", " + prev + ", " + prev + ", " + prev + ", " + prev + "]\n";
  }
  auto r = parse(ManifestBuilder().raw_extra(text));
  EXPECT_EQ(error_of(r), "acme.yaml: field 'x_lol_0': YAML anchors ('&name') are not allowed");
  EXPECT_NE(r.error().why().find("billion laughs"), std::string::npos);
}

TEST(ManifestParse, RejectsAnchorOnAScalar) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("name", "&n \"Acme\""))),
            "acme.yaml: field 'name': YAML anchors ('&name') are not allowed");
}

TEST(ManifestParse, RejectsExplicitTags) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("schema", "!!int 1"))),
            "acme.yaml: field 'schema': explicit YAML tags are not allowed");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("abi", "!!python/object:os.system {}"))),
            "acme.yaml: field 'abi': explicit YAML tags are not allowed");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("methods[0].aliases", "[!custom a]"))),
            "acme.yaml: field 'methods[0].aliases[0]': explicit YAML tags are not allowed");
}

TEST(ManifestParse, RejectsNestingDeeperThanTheCap) {
  auto r = parse(
      ManifestBuilder().vendor_extra("x_acme_deep", std::string(100, '[') + std::string(100, ']')));
  const std::string what = error_of(r);
  EXPECT_NE(what.find("field 'x_acme_deep"), std::string::npos) << what;
  EXPECT_NE(what.find("nesting is too deep"), std::string::npos) << what;
}

TEST(ManifestParse, RejectsASecondDocument) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().yaml() + "---\nid: other\n")),
            "acme.yaml: more than one YAML document");
}

TEST(ManifestParse, RejectsEmptyAndNonMappingDocuments) {
  EXPECT_EQ(error_of(parse("")), "acme.yaml: the manifest is empty");
  EXPECT_EQ(error_of(parse("# just a comment\n")), "acme.yaml: the manifest is empty");
  EXPECT_EQ(error_of(parse("- a\n- b\n")), "acme.yaml: the manifest must be a YAML mapping");
  EXPECT_EQ(error_of(parse("just text\n")), "acme.yaml: the manifest must be a YAML mapping");
}

TEST(ManifestParse, RejectsNonScalarKeys) {
  EXPECT_EQ(error_of(parse("? [a, b]\n: 1\n")), "acme.yaml: mapping keys must be plain strings");
}

TEST(ManifestParse, RejectsInvalidUtf8AndControlCharacters) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().yaml() + "x_acme_a: \"\xff\"\n")),
            "acme.yaml: not valid UTF-8 at line " + line_after_default() + ", column 12");
  EXPECT_EQ(error_of(parse("schema: 1\nid: a\x01\n")),
            "acme.yaml: control character 0x01 at line 2, column 6");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("name", "\"a\\x00b\""))),
            "acme.yaml: field 'name': string contains a control character");
}

TEST(ManifestParse, RejectsTextOverTheSizeCap) {
  std::string text = ManifestBuilder().yaml();
  text += "# " + std::string(2 * 1024 * 1024, 'x') + "\n";
  auto r = parse(text);
  EXPECT_EQ(error_of(r), "acme.yaml: manifest too large");
  EXPECT_NE(r.error().why().find("the limit is 1048576 bytes"), std::string::npos);
}

// --- keys ---------------------------------------------------------------------------------------

class ManifestMissingKey : public ::testing::TestWithParam<const char*> {};

TEST_P(ManifestMissingKey, IsRejectedNamingTheField) {
  const std::string path = GetParam();
  auto r = parse(ManifestBuilder().without(path));
  EXPECT_EQ(error_of(r), "acme.yaml: field '" + path + "': missing required key");
  const std::string key = path.substr(path.find_last_of('.') + 1);
  EXPECT_NE(r.error().fix().find("add '" + key + ":"), std::string::npos) << r.error().fix();
}

INSTANTIATE_TEST_SUITE_P(ManifestEveryRequiredKey, ManifestMissingKey,
                         ::testing::Values("schema", "id", "name", "version", "vendor", "license",
                                           "library", "abi", "abi.major", "abi.min_minor",
                                           "methods", "methods[0].quant_method",
                                           "methods[0].devices", "methods[0].devices[0].type"),
                         [](const ::testing::TestParamInfo<const char*>& param) {
                           std::string name;
                           for (const char* c = param.param; *c != '\0'; ++c) {
                             name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
                           }
                           return name;
                         });

TEST(ManifestParse, RejectsUnknownTopLevelKeySuggestingTheNearestOne) {
  auto r = parse(ManifestBuilder().without("license").raw_extra("licence: MIT"));
  EXPECT_EQ(error_of(r), "acme.yaml: field 'licence': unknown key");
  EXPECT_NE(r.error().why().find("did you mean 'license'?"), std::string::npos) << r.error().why();
}

TEST(ManifestParse, RejectsUnknownKeyInsideMethodsDevicesAndAbi) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().method(MethodBuilder().raw_extra("bits: 4")))),
            "acme.yaml: field 'methods[0].bits': unknown key");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("methods[0].devices[0].memory", "1"))),
            "acme.yaml: field 'methods[0].devices[0].memory': unknown key");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("abi.patch", "1"))),
            "acme.yaml: field 'abi.patch': unknown key");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("requires", "{cuda: \"12\"}"))),
            "acme.yaml: field 'requires.cuda': unknown key");
}

TEST(ManifestParse, CalibrationNamesWhatTheHostHandsAQuantize) {
  auto hessian = parse(ManifestBuilder());
  ASSERT_TRUE(hessian.ok()) << hessian.error().to_string();
  EXPECT_EQ(hessian->methods[0].calibration, "hessian");  // GPTQ's, the default
  auto scaling = parse(ManifestBuilder().method(MethodBuilder()
                                                    .raw_extra("requires_calibration: true")
                                                    .raw_extra("calibration: activation_scaling")));
  ASSERT_TRUE(scaling.ok()) << scaling.error().to_string();
  EXPECT_EQ(scaling->methods[0].calibration, "activation_scaling");
  auto unknown = parse(ManifestBuilder().method(MethodBuilder().raw_extra("calibration: fisher")));
  EXPECT_EQ(error_of(unknown),
            "acme.yaml: field 'methods[0].calibration': unknown calibration 'fisher'");
  EXPECT_NE(unknown.error().fix().find("activation_scaling"), std::string::npos);
}

TEST(ManifestParse, KeepsVendorExtrasAsJson) {
  auto r = parse(ManifestBuilder()
                     .vendor_extra("x_acme_build", "\"2026-11-01\"")
                     .vendor_extra("x_acme_meta", "{ids: [1, 2.5, true, ~, \"7\"], note: hi}"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->vendor_extras, nlohmann::json::parse(R"({
      "x_acme_build": "2026-11-01",
      "x_acme_meta": {"ids": [1, 2.5, true, null, "7"], "note": "hi"}})"));
}

TEST(ManifestParse, RejectsMalformedOrNestedVendorKeys) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().vendor_extra("x_acme", "1"))),
            "acme.yaml: field 'x_acme': malformed vendor key");
  EXPECT_EQ(error_of(parse(ManifestBuilder().vendor_extra("x_Acme_Build", "1"))),
            "acme.yaml: field 'x_Acme_Build': malformed vendor key");
  EXPECT_EQ(error_of(parse(ManifestBuilder().set("methods[0].x_acme_tile", "64"))),
            "acme.yaml: field 'methods[0].x_acme_tile': vendor keys are allowed only at the "
            "top level");
}

// --- types --------------------------------------------------------------------------------------

struct WrongType {
  const char* path;  // field to overwrite (builder path)
  const char* raw;   // raw YAML written there
  const char* what;  // the expected error summary after "acme.yaml: field '"
};

class ManifestWrongType : public ::testing::TestWithParam<WrongType> {};

TEST_P(ManifestWrongType, IsRejectedNamingFieldAndValue) {
  const WrongType& c = GetParam();
  EXPECT_EQ(error_of(parse(ManifestBuilder().set(c.path, c.raw))),
            std::string("acme.yaml: field '") + c.what);
}

INSTANTIATE_TEST_SUITE_P(
    ManifestEveryTypedField, ManifestWrongType,
    ::testing::Values(
        WrongType{"schema", "one", "schema': expected an integer, got 'one'"},
        WrongType{"schema", "\"1\"", "schema': expected an integer, got the quoted string '1'"},
        WrongType{"schema", "2", "schema': unsupported schema version 2"},
        WrongType{"id", "[acme]", "id': expected a plugin id string, got a list"},
        WrongType{"id", "\"Acme Int4\"", "id': invalid plugin id the quoted string 'Acme Int4'"},
        WrongType{"id", "_acme", "id': invalid plugin id '_acme'"},
        WrongType{"name", "{a: 1}", "name': expected a string, got a mapping"},
        WrongType{"name", "\"\"", "name': must not be empty"},
        WrongType{"name", "\"two\\nlines\"", "name': must be a single line"},
        WrongType{"version", "", "version': expected a string, got nothing (null)"},
        WrongType{"vendor", "[a]", "vendor': expected a string, got a list"},
        WrongType{"license", "~", "license': expected a string, got nothing (null)"},
        WrongType{"description", "[a]", "description': expected a string, got a list"},
        WrongType{"library", "[x.so]", "library': expected a string, got a list"},
        WrongType{"library", "\"\"", "library': must not be empty"},
        WrongType{"sha256", "abc", "sha256': expected 64 lowercase hex digits, got 'abc'"},
        WrongType{"sha256", "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
                  "sha256': expected 64 lowercase hex digits, got "
                  "'ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF012345...'"},
        WrongType{"abi", "1", "abi': expected a mapping, got '1'"},
        WrongType{"abi.major", "high", "abi.major': expected an integer, got 'high'"},
        WrongType{"abi.major", "1.5", "abi.major': expected an integer, got '1.5'"},
        WrongType{"abi.major", "-1", "abi.major': integer out of range, got '-1'"},
        WrongType{"abi.min_minor", "true", "abi.min_minor': expected an integer, got 'true'"},
        WrongType{"abi.min_minor", "99999999999999999999",
                  "abi.min_minor': integer out of range, got '99999999999999999999'"},
        WrongType{"requires", "[]", "requires': expected a mapping, got a list"},
        WrongType{"requires", "{libtorch: [1]}",
                  "requires.libtorch': expected a string, got a list"},
        WrongType{"methods", "{}",
                  "methods': expected a non-empty list of methods, got a "
                  "mapping"},
        WrongType{"methods", "[]",
                  "methods': expected a non-empty list of methods, got an "
                  "empty list"},
        WrongType{"methods", "[acme_int4]", "methods[0]': expected a mapping, got 'acme_int4'"},
        WrongType{"methods[0].quant_method", "\"Acme-Int4\"",
                  "methods[0].quant_method': invalid quant_method the quoted string "
                  "'Acme-Int4'"},
        WrongType{"methods[0].priority", "high",
                  "methods[0].priority': expected an integer, got 'high'"},
        WrongType{"methods[0].priority", "\"5\"",
                  "methods[0].priority': expected an integer, got the quoted string '5'"},
        WrongType{"methods[0].priority", "3000000000",
                  "methods[0].priority': integer out of range, got '3000000000'"},
        WrongType{"methods[0].requires_calibration", "yes",
                  "methods[0].requires_calibration': expected true or false, got 'yes'"},
        WrongType{"methods[0].requires_calibration", "1",
                  "methods[0].requires_calibration': expected true or false, got '1'"},
        WrongType{"methods[0].aliases", "acme4",
                  "methods[0].aliases': expected a list of strings, got 'acme4'"},
        WrongType{"methods[0].aliases", "[[a]]",
                  "methods[0].aliases[0]': expected a string, got a list"},
        WrongType{"methods[0].aliases", "[acme4, acme4]",
                  "methods[0].aliases[1]': duplicate entry 'acme4'"},
        WrongType{"methods[0].aliases", "[acme_int4]",
                  "methods[0].aliases[0]': invalid entry 'acme_int4'"},
        WrongType{"methods[0].presets", "[nf4]",
                  "methods[0].presets': expected a mapping of preset name to config, got a "
                  "list"},
        WrongType{"methods[0].presets", "{nf4: 4}",
                  "methods[0].presets.nf4': expected a mapping (the preset's config), got '4'"},
        WrongType{"methods[0].presets", "{NF4: {bits: 4}}",
                  "methods[0].presets.NF4': invalid preset name 'NF4'"},
        WrongType{"methods[0].presets", "{nf4: {scale: .inf}}",
                  "methods[0].presets.nf4.scale': infinity and NaN are not allowed, got '.inf'"},
        WrongType{"methods[0].devices", "[]",
                  "methods[0].devices': expected a non-empty list of devices, got an empty "
                  "list"},
        WrongType{"methods[0].devices", "cpu",
                  "methods[0].devices': expected a non-empty list of devices, got 'cpu'"},
        WrongType{"methods[0].devices", "[cpu]",
                  "methods[0].devices[0]': expected a mapping, got 'cpu'"},
        WrongType{"methods[0].devices[0].type", "tpu",
                  "methods[0].devices[0].type': expected one of cpu, cuda, rocm, got 'tpu'"},
        WrongType{"methods[0].devices[0].cpu_features", "[AVX2]",
                  "methods[0].devices[0].cpu_features[0]': invalid entry 'AVX2'"},
        WrongType{"methods[0].loading_attributes", "{a: 1}",
                  "methods[0].loading_attributes': expected a list of strings, got a mapping"},
        WrongType{"methods[0].config_keys", "[\"two words\"]",
                  "methods[0].config_keys[0]': invalid entry the quoted string 'two words'"}));

TEST(ManifestParse, ParsesComputeCapabilityWrittenAsStringOrNumber) {
  for (const auto& [raw, major, minor] : std::vector<std::tuple<std::string, int, int>>{
           {"\"7.5\"", 7, 5}, {"7.5", 7, 5}, {"8", 8, 0}, {"\"10.0\"", 10, 0}}) {
    auto r = parse(ManifestBuilder().method(
        MethodBuilder().devices({DeviceBuilder::cuda().set("min_compute_capability", raw)})));
    ASSERT_TRUE(r.ok()) << raw << ": " << r.error().to_string();
    EXPECT_EQ(r->methods[0].devices[0].min_cc_major, major) << raw;
    EXPECT_EQ(r->methods[0].devices[0].min_cc_minor, minor) << raw;
  }
  for (const std::string raw : {"high", "\"7.50\"", "7.5.1", "[7, 5]", "\"\"", "-7.5"}) {
    auto r = parse(ManifestBuilder().method(
        MethodBuilder().devices({DeviceBuilder::cuda().set("min_compute_capability", raw)})));
    const std::string what = error_of(r);
    EXPECT_NE(what.find("acme.yaml: field 'methods[0].devices[0].min_compute_capability': "
                        "expected \"major.minor\""),
              std::string::npos)
        << raw << ": " << what;
  }
}

TEST(ManifestParse, RejectsDeviceRequirementsOnTheWrongDeviceType) {
  EXPECT_EQ(error_of(parse(
                ManifestBuilder().set("methods[0].devices[0].min_compute_capability", "\"7.5\""))),
            "acme.yaml: field 'methods[0].devices[0].min_compute_capability': only allowed on "
            "type cuda");
  EXPECT_EQ(error_of(parse(ManifestBuilder().method(
                MethodBuilder().devices({DeviceBuilder::cuda().set("cpu_features", "[avx2]")})))),
            "acme.yaml: field 'methods[0].devices[0].cpu_features': only allowed on type cpu");
  EXPECT_EQ(error_of(parse(ManifestBuilder().method(MethodBuilder().devices(
                {DeviceBuilder::cpu(), DeviceBuilder::cuda().set("gcn_archs", "[gfx90a]")})))),
            "acme.yaml: field 'methods[0].devices[1].gcn_archs': only allowed on type rocm");
}

TEST(ManifestParse, RejectsTheSameDeviceTypeTwiceInAMethod) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().method(
                MethodBuilder().devices({DeviceBuilder::cuda("7.0"), DeviceBuilder::cuda()})))),
            "acme.yaml: field 'methods[0].devices[1].type': duplicate device type 'cuda'");
}

TEST(ManifestParse, RejectsDuplicateQuantMethod) {
  auto r =
      parse(ManifestBuilder().methods({MethodBuilder("acme_int4"), MethodBuilder("acme_int4")}));
  EXPECT_EQ(error_of(r),
            "acme.yaml: field 'methods[1].quant_method': duplicate quant_method 'acme_int4'");
  EXPECT_NE(r.error().why().find("'methods[0].quant_method'"), std::string::npos);
}

TEST(ManifestParse, RejectsAliasOrPresetNamedLikeAnotherMethod) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().methods(
                {MethodBuilder("acme_int4"), MethodBuilder("acme_int8").aliases({"acme_int4"})}))),
            "acme.yaml: field 'methods[1].aliases[0]': duplicate alias 'acme_int4'");
  EXPECT_EQ(
      error_of(parse(ManifestBuilder().methods({MethodBuilder("acme_int4").aliases({"a4"}),
                                                MethodBuilder("acme_int8").aliases({"a4"})}))),
      "acme.yaml: field 'methods[1].aliases[0]': duplicate alias 'a4'");
  EXPECT_EQ(error_of(parse(ManifestBuilder().methods(
                {MethodBuilder("acme_int4"),
                 MethodBuilder("acme_int8").preset("acme_int4", "{bits: 8}")}))),
            "acme.yaml: field 'methods[1].presets.acme_int4': duplicate preset name "
            "'acme_int4'");
}

TEST(ManifestParse, ParsesPresetScalarsByYamlCoreSchema) {
  auto r = parse(ManifestBuilder().method(MethodBuilder().preset(
      "p",
      "{t: true, f: False, i: -42, big: 9007199254740993, x: 0.5, e: 1e3, s: nf4, "
      "q: \"4\", n: ~, n2: null, empty: , list: [1, two], nested: {a: {b: [null]}}, "
      "ver: 1.2.3, hex: 0x10}")));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const nlohmann::json& p = r->methods[0].presets.at("p");
  EXPECT_EQ(p, nlohmann::json::parse(R"({"t": true, "f": false, "i": -42,
      "big": 9007199254740993, "x": 0.5, "e": 1000.0, "s": "nf4", "q": "4", "n": null,
      "n2": null, "empty": null, "list": [1, "two"], "nested": {"a": {"b": [null]}},
      "ver": "1.2.3", "hex": "0x10"})"));
  EXPECT_TRUE(p.at("i").is_number_integer());
  EXPECT_TRUE(p.at("big").is_number_integer());
  EXPECT_TRUE(p.at("e").is_number_float());
}

// --- library path -------------------------------------------------------------------------------

TEST(ManifestParse, ResolvesLibraryInsideTheManifestFolder) {
  auto r = parse(ManifestBuilder().library("./lib/x/../libacme.so"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->library, fs::path("./lib/x/../libacme.so"));
  EXPECT_EQ(r->library_path, kFolder / "lib/libacme.so");
}

TEST(ManifestParse, RejectsLibraryPathsThatLeaveTheFolderOrNameAFolder) {
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("../evil.so"))),
            "acme.yaml: field 'library': path '../evil.so' leaves the manifest's folder");
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("lib/../../evil.so"))),
            "acme.yaml: field 'library': path 'lib/../../evil.so' leaves the manifest's folder");
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("lib/.."))),
            "acme.yaml: field 'library': path 'lib/..' names a folder");
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("/usr/lib/libevil.so"))),
            "acme.yaml: field 'library': absolute path '/usr/lib/libevil.so'");
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("lib/"))),
            "acme.yaml: field 'library': path 'lib/' names a folder");
  EXPECT_EQ(error_of(parse(ManifestBuilder().library("."))),
            "acme.yaml: field 'library': path '.' names a folder");
}

// --- files --------------------------------------------------------------------------------------

class ManifestLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("qforge_manifest_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(ManifestLoad, LoadsAFileAndResolvesTheLibraryBesideIt) {
  const fs::path path = ManifestBuilder().write(dir_);
  auto r = load_manifest(path);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->path, path);
  EXPECT_EQ(r->library_path, dir_ / "libacme.so");
}

TEST_F(ManifestLoad, NamesTheFileInFieldErrors) {
  const fs::path path =
      ManifestBuilder().set("methods[0].priority", "high").write(dir_, "bnb.yaml");
  EXPECT_EQ(error_of(load_manifest(path)),
            "bnb.yaml: field 'methods[0].priority': expected an integer, got 'high'");
}

TEST_F(ManifestLoad, RefusesAWorldWritableFile) {
  const fs::path path = ManifestBuilder().write(dir_);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  auto r = load_manifest(path);
  EXPECT_EQ(error_of(r), path.string() + ": manifest is world-writable");
  EXPECT_NE(r.error().why().find("0666"), std::string::npos) << r.error().why();
  EXPECT_EQ(r.error().fix(), "run 'chmod o-w " + path.string() + "'");
}

TEST_F(ManifestLoad, RefusesATwoMebibyteFileBySizeBeforeReadingIt) {
  const fs::path path = dir_ / "big.yaml";
  {
    std::ofstream out(path, std::ios::binary);
    out << ManifestBuilder().yaml();
    out << "# " << std::string(2 * 1024 * 1024, 'x') << "\n";
  }
  auto r = load_manifest(path);
  EXPECT_EQ(error_of(r), path.string() + ": manifest too large");
  // "the file is": refused from its size, not after reading (the parser says "the text is").
  EXPECT_NE(r.error().why().find("the file is " + std::to_string(fs::file_size(path)) + " bytes"),
            std::string::npos)
      << r.error().why();
}

TEST_F(ManifestLoad, RefusesAHundredMegabyteSparseFileBySize) {
  const fs::path path = dir_ / "huge.yaml";
  std::ofstream(path).close();
  fs::resize_file(path, 100u * 1000u * 1000u);  // sparse: zeros that were never written
  auto r = load_manifest(path);
  // Had it been read, its NUL bytes would be reported as control characters instead.
  EXPECT_EQ(error_of(r), path.string() + ": manifest too large");
  EXPECT_NE(r.error().why().find("the file is 100000000 bytes"), std::string::npos)
      << r.error().why();
}

TEST_F(ManifestLoad, RefusesDirectoriesAndFifos) {
  fs::create_directories(dir_ / "sub.yaml");
  EXPECT_EQ(error_of(load_manifest(dir_ / "sub.yaml")),
            (dir_ / "sub.yaml").string() + ": not a regular file");
  const fs::path fifo = dir_ / "fifo.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(error_of(load_manifest(fifo)), fifo.string() + ": not a regular file");
}

TEST_F(ManifestLoad, ReportsAMissingFile) {
  auto r = load_manifest(dir_ / "absent.yaml");
  EXPECT_EQ(error_of(r), (dir_ / "absent.yaml").string() + ": cannot read manifest");
  EXPECT_NE(r.error().why().find("No such file"), std::string::npos) << r.error().why();
}

TEST_F(ManifestLoad, FollowsASymlinkAndNamesItsTargetInErrors) {
  const fs::path target = ManifestBuilder().write(dir_ / "real");
  const fs::path link = dir_ / "acme.yaml";
  fs::create_symlink(target, link);
  auto ok = load_manifest(link);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->path, link);
  EXPECT_EQ(ok->library_path, dir_ / "libacme.so");  // relative to the link's folder

  ASSERT_EQ(::chmod(target.c_str(), 0666), 0);
  EXPECT_EQ(error_of(load_manifest(link)), fs::canonical(target).string() + " (symlink target of " +
                                               link.string() + "): manifest is world-writable");
}

TEST_F(ManifestLoad, ReportsADanglingSymlink) {
  const fs::path link = dir_ / "acme.yaml";
  fs::create_symlink(dir_ / "nowhere.yaml", link);
  auto r = load_manifest(link);
  EXPECT_EQ(error_of(r), link.string() + ": cannot read manifest");
  EXPECT_NE(r.error().why().find("symlink"), std::string::npos) << r.error().why();
}

}  // namespace
}  // namespace qforge
