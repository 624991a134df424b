#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/config.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace {

using nlohmann::json;

// A catalog written by hand, shaped like the manifests of bnb and two vendor plugins.
std::vector<MethodCatalogEntry> test_catalog() {
  const std::vector<std::string> bnb_keys = {"load_in_4bit",
                                             "load_in_8bit",
                                             "llm_int8_threshold",
                                             "llm_int8_skip_modules",
                                             "llm_int8_enable_fp32_cpu_offload",
                                             "llm_int8_has_fp16_weight",
                                             "bnb_4bit_compute_dtype",
                                             "bnb_4bit_quant_type",
                                             "bnb_4bit_use_double_quant",
                                             "bnb_4bit_quant_storage"};
  MethodCatalogEntry bnb4;
  bnb4.quant_method = "bitsandbytes_4bit";
  bnb4.aliases = {"bnb_4bit"};
  bnb4.known_keys = bnb_keys;
  bnb4.presets["nf4"] = json::parse(
      R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"nf4"})");
  bnb4.presets["fp4"] = json::parse(
      R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"fp4"})");
  MethodCatalogEntry bnb8;
  bnb8.quant_method = "bitsandbytes_8bit";
  bnb8.aliases = {"bnb_8bit"};
  bnb8.known_keys = bnb_keys;
  bnb8.presets["int8"] = json::parse(R"({"quant_method":"bitsandbytes","load_in_8bit":true})");
  MethodCatalogEntry gptq;
  gptq.quant_method = "gptq";
  gptq.loading_attributes = {"max_input_length", "backend"};
  gptq.known_keys = {"bits",    "group_size",       "desc_act", "sym",
                     "dataset", "max_input_length", "backend"};
  MethodCatalogEntry awq;  // declares no keys: nothing is "unknown"
  awq.quant_method = "awq";
  awq.aliases = {"autoawq"};
  awq.loading_attributes = {"do_fuse", "fuse_max_seq_len", "exllama_config"};
  return {bnb4, bnb8, gptq, awq};
}

ConfigRequest prequantized(const char* quantization_config) {
  ConfigRequest request;
  request.model_config =
      json{{"model_type", "llama"}, {"quantization_config", json::parse(quantization_config)}};
  return request;
}

ResolvedConfig resolve_ok(const ConfigRequest& request) {
  Result<ResolvedConfig> r = resolve_config(request, test_catalog());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? r.value() : ResolvedConfig{};
}

Error resolve_error(const ConfigRequest& request) {
  Result<ResolvedConfig> r = resolve_config(request, test_catalog());
  EXPECT_FALSE(r.ok()) << "resolved to " << (r.ok() ? r.value().config.dump() : "");
  return r.ok() ? internal_error("no error", "") : r.error();
}

// The warning that contains `needle`, or "" (tests then fail on the comparison).
std::string find_warning(const ResolvedConfig& r, const std::string& needle) {
  for (const auto& w : r.warnings) {
    if (w.find(needle) != std::string::npos) return w;
  }
  return "";
}

constexpr const char* kTransformersPrequantized =
    "You passed `quantization_config` or equivalent parameters to `from_pretrained` but the "
    "model you're loading already has a `quantization_config` attribute. The "
    "`quantization_config` from the model will be used.";

constexpr const char* kGptqCheckpoint =
    R"({"quant_method":"gptq","bits":4,"group_size":128,"desc_act":false,"sym":true,
        "max_input_length":2048,"backend":"auto"})";

TEST(ResolveCheckpoint, CheckpointConfigWinsOverUserKeys) {
  ConfigRequest request = prequantized(kGptqCheckpoint);
  request.overrides = {{"bits", "8"}, {"group_size", "32"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_TRUE(r.quantize);
  EXPECT_TRUE(r.pre_quantized);
  EXPECT_EQ(r.quant_method, "gptq");
  EXPECT_EQ(r.config, json::parse(kGptqCheckpoint));
  EXPECT_EQ(r.warnings.at(0), kTransformersPrequantized);
  const std::string ignored = find_warning(r, "ignored user config keys");
  EXPECT_NE(ignored.find("[bits, group_size]"), std::string::npos) << ignored;
  EXPECT_NE(ignored.find("[max_input_length, backend]"), std::string::npos) << ignored;
}

TEST(ResolveCheckpoint, LoadingAttributesOverrideWithAWarning) {
  ConfigRequest request = prequantized(kGptqCheckpoint);
  request.user_config = json{{"backend", "marlin"}, {"bits", 8}, {"desc_act", true}};
  request.overrides = {{"max_input_length", "4096"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.config.at("backend"), "marlin");
  EXPECT_EQ(r.config.at("max_input_length"), 4096);
  EXPECT_EQ(r.config.at("bits"), 4);
  EXPECT_EQ(r.config.at("desc_act"), false);
  const std::string overwritten = find_warning(r, "loading attributes (e.g. ");
  EXPECT_NE(overwritten.find("(e.g. [backend, max_input_length]) will be overwritten"),
            std::string::npos)
      << overwritten;
  EXPECT_NE(find_warning(r, "ignored user config keys [bits, desc_act]"), "");
  EXPECT_EQ(r.warnings.size(), 3u);
}

TEST(ResolveCheckpoint, NoUserInputMeansNoWarnings) {
  const ResolvedConfig r = resolve_ok(prequantized(kGptqCheckpoint));
  EXPECT_TRUE(r.pre_quantized);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.at(0);
  EXPECT_EQ(r.config, json::parse(kGptqCheckpoint));
}

TEST(ResolveCheckpoint, BitsandbytesCheckpointDispatchesByItsFlags) {
  // As transformers writes it (FORMATS.md §2.1), private keys included.
  const ResolvedConfig r = resolve_ok(prequantized(
      R"({"_load_in_4bit":true,"_load_in_8bit":false,"bnb_4bit_compute_dtype":"bfloat16",
          "bnb_4bit_quant_storage":"uint8","bnb_4bit_quant_type":"nf4",
          "bnb_4bit_use_double_quant":true,"llm_int8_enable_fp32_cpu_offload":false,
          "llm_int8_has_fp16_weight":false,"llm_int8_skip_modules":null,
          "llm_int8_threshold":6.0,"load_in_4bit":true,"load_in_8bit":false,
          "quant_method":"bitsandbytes"})"));
  EXPECT_EQ(r.quant_method, "bitsandbytes_4bit");
  EXPECT_EQ(r.config.at("quant_method"), "bitsandbytes");
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.at(0);
}

TEST(ResolveCheckpoint, SameMethodFromTheUserIsAcceptedButIgnored) {
  ConfigRequest request = prequantized(
      R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"fp4"})");
  request.method = "nf4";
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.quant_method, "bitsandbytes_4bit");
  EXPECT_EQ(r.config.at("bnb_4bit_quant_type"), "fp4");
  EXPECT_NE(find_warning(r, "ignored user config keys [bnb_4bit_quant_type, load_in_4bit]"), "");
  EXPECT_NE(find_warning(r, "bitsandbytes_4bit has no loading attributes"), "");
}

TEST(ResolveCheckpoint, UserMethodDisagreeingWithTheCheckpointFails) {
  ConfigRequest request = prequantized(kGptqCheckpoint);
  request.method = "nf4";
  const Error e = resolve_error(request);
  EXPECT_EQ(e.summary(),
            "The model is quantized with gptq but you are passing a bitsandbytes_4bit config");
  EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
  EXPECT_NE(e.fix().find("[max_input_length, backend]"), std::string::npos) << e.fix();
}

TEST(ResolveCheckpoint, UnknownCheckpointMethodListsInstalledMethods) {
  const Error e = resolve_error(prequantized(R"({"quant_method":"hqq","nbits":4})"));
  EXPECT_EQ(e.summary(), "unknown quantization method 'hqq'");
  EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
  EXPECT_NE(e.why().find("installed methods: [awq, bitsandbytes_4bit, bitsandbytes_8bit, gptq]"),
            std::string::npos)
      << e.why();
  EXPECT_NE(e.why().find("config.json"), std::string::npos) << e.why();
}

TEST(ResolveCheckpoint, CheckpointWithoutQuantMethodIsAnError) {
  const Error e = resolve_error(prequantized(R"({"bits":4,"group_size":128})"));
  EXPECT_NE(e.summary().find("has no quant_method attribute"), std::string::npos) << e.summary();
  EXPECT_NE(e.why().find("[bits, group_size]"), std::string::npos) << e.why();
}

TEST(ResolveCheckpoint, NonObjectQuantizationConfigIsBadInput) {
  ConfigRequest request;
  request.model_config = json{{"quantization_config", "gptq"}};
  EXPECT_EQ(resolve_error(request).exit_code(), ExitCode::kBadInput);
}

TEST(ResolveDispatch, BitsandbytesPicks4bitOr8bitByFlag) {
  ConfigRequest four;
  four.user_config = json{{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}};
  EXPECT_EQ(resolve_ok(four).quant_method, "bitsandbytes_4bit");
  ConfigRequest eight;
  eight.user_config = json{{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
  const ResolvedConfig r = resolve_ok(eight);
  EXPECT_EQ(r.quant_method, "bitsandbytes_8bit");
  EXPECT_EQ(r.config.at("quant_method"), "bitsandbytes");
  EXPECT_EQ(r.config.at("load_in_8bit"), true);
  EXPECT_EQ(r.config.at("load_in_4bit"), false);
}

TEST(ResolveDispatch, LoadInFlagAloneSelectsBitsandbytes) {
  ConfigRequest request;
  request.overrides = {{"load_in_8bit", "true"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.quant_method, "bitsandbytes_8bit");
  EXPECT_EQ(r.config.at("quant_method"), "bitsandbytes");
}

TEST(ResolveDispatch, CanonicalBnbMethodIsWrittenInTheCheckpointSpelling) {
  ConfigRequest request;
  request.method = "bitsandbytes_4bit";
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.quant_method, "bitsandbytes_4bit");
  EXPECT_EQ(r.config, json::parse(
                          R"({"quant_method":"bitsandbytes","load_in_4bit":true,
                              "load_in_8bit":false})"));
  EXPECT_FALSE(r.pre_quantized);
}

TEST(ResolveDispatch, BothBnbFlagsArePreflightFailuresWithExitCode3) {
  ConfigRequest family;
  family.user_config =
      json{{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"load_in_8bit", true}};
  ConfigRequest no_method;
  no_method.user_config = json{{"load_in_4bit", true}, {"load_in_8bit", true}};
  ConfigRequest preset_plus_set;
  preset_plus_set.method = "nf4";
  preset_plus_set.overrides = {{"load_in_8bit", "true"}};
  ConfigRequest canonical_plus_flag;
  canonical_plus_flag.method = "bitsandbytes_8bit";
  canonical_plus_flag.overrides = {{"load_in_4bit", "true"}};
  for (const ConfigRequest* request :
       {&family, &no_method, &preset_plus_set, &canonical_plus_flag}) {
    const Error e = resolve_error(*request);
    EXPECT_EQ(e.summary(),
              "load_in_4bit and load_in_8bit are both True, but only one can be used at the "
              "same time");
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.exit_code(), ExitCode::kEnvironment);
    EXPECT_FALSE(e.why().empty());
    EXPECT_FALSE(e.fix().empty());
  }
}

TEST(ResolveDispatch, BitsandbytesWithoutAFlagIsAnError) {
  ConfigRequest request;
  request.method = "bitsandbytes";
  const Error e = resolve_error(request);
  EXPECT_NE(e.summary().find("needs load_in_4bit or load_in_8bit"), std::string::npos)
      << e.summary();
  EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
}

TEST(ResolveDispatch, NonBooleanFlagIsRejectedNamingTheKey) {
  ConfigRequest request;
  request.user_config = json{{"quant_method", "bitsandbytes"}, {"load_in_4bit", "yes"}};
  const Error e = resolve_error(request);
  EXPECT_NE(e.summary().find("key 'load_in_4bit' must be true or false"), std::string::npos)
      << e.summary();
}

TEST(ResolveDispatch, OtherMethodWithABnbFlagIsAConflict) {
  ConfigRequest request;
  request.user_config = json{{"quant_method", "gptq"}, {"load_in_4bit", true}};
  const Error e = resolve_error(request);
  EXPECT_NE(e.summary().find("quant_method 'gptq' conflicts with load_in_4bit: true"),
            std::string::npos)
      << e.summary();
}

TEST(ResolveMethod, PresetGivesTheBaseConfig) {
  ConfigRequest request;
  request.method = "nf4";
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_TRUE(r.quantize);
  EXPECT_EQ(r.quant_method, "bitsandbytes_4bit");
  EXPECT_EQ(r.config, json::parse(R"({"quant_method":"bitsandbytes","load_in_4bit":true,
                                      "load_in_8bit":false,"bnb_4bit_quant_type":"nf4"})"));
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.at(0);
}

TEST(ResolveMethod, ConfigFileThenSetOverridePresetLaterWins) {
  ConfigRequest request;
  request.method = "nf4";
  request.user_config =
      json{{"bnb_4bit_compute_dtype", "bfloat16"}, {"bnb_4bit_quant_type", "fp4"}};
  request.overrides = {{"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", "true"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.config.at("bnb_4bit_compute_dtype"), "bfloat16");
  EXPECT_EQ(r.config.at("bnb_4bit_quant_type"), "nf4");
  EXPECT_EQ(r.config.at("bnb_4bit_use_double_quant"), true);
}

TEST(ResolveMethod, AliasesMapToTheCanonicalMethod) {
  ConfigRequest flag;
  flag.method = "autoawq";
  const ResolvedConfig r = resolve_ok(flag);
  EXPECT_EQ(r.quant_method, "awq");
  EXPECT_EQ(r.config.at("quant_method"), "awq");
  ConfigRequest in_config;
  in_config.user_config = json{{"quant_method", "bnb_8bit"}};
  const ResolvedConfig bnb = resolve_ok(in_config);
  EXPECT_EQ(bnb.quant_method, "bitsandbytes_8bit");
  EXPECT_EQ(bnb.config.at("load_in_8bit"), true);
}

TEST(ResolveMethod, UnknownMethodFlagListsInstalledMethodsAndPresets) {
  ConfigRequest request;
  request.method = "nf5";
  const Error e = resolve_error(request);
  EXPECT_EQ(e.summary(), "unknown --method 'nf5'");
  EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
  EXPECT_EQ(e.why(),
            "installed methods: [awq, bitsandbytes_4bit, bitsandbytes_8bit, gptq]; aliases: "
            "[autoawq, bnb_4bit, bnb_8bit]; presets: [fp4, int8, nf4]");
}

TEST(ResolveMethod, UnknownQuantMethodInTheUserConfigIsNeverASilentNoOp) {
  ConfigRequest request;
  request.user_config = json{{"quant_method", "hqq"}, {"nbits", 4}};
  const Error e = resolve_error(request);
  EXPECT_EQ(e.summary(), "unknown quantization method 'hqq'");
  EXPECT_NE(e.why().find("[awq, bitsandbytes_4bit, bitsandbytes_8bit, gptq]"), std::string::npos);
}

TEST(ResolveMethod, EmptyCatalogStillNamesWhatIsMissing) {
  ConfigRequest request;
  request.method = "bitsandbytes_4bit";
  Result<ResolvedConfig> r = resolve_config(request, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().why().find("installed methods: []"), std::string::npos) << r.error().why();
}

TEST(ResolveMethod, MethodFlagConflictingWithTheConfigFileFails) {
  ConfigRequest request;
  request.method = "gptq";
  request.user_config = json{{"quant_method", "awq"}};
  const Error e = resolve_error(request);
  EXPECT_EQ(e.summary(), "--method gptq selects gptq but --config/--set select awq");
}

TEST(ResolveMethod, NothingToQuantizeIsANoteNotAnError) {
  const ResolvedConfig none = resolve_ok(ConfigRequest{});
  EXPECT_FALSE(none.quantize);
  EXPECT_EQ(none.note,
            "no quantization_config in the checkpoint and no --method/--config given: nothing "
            "to quantize");
  ConfigRequest plain_checkpoint;
  plain_checkpoint.model_config = json{{"model_type", "llama"}, {"quantization_config", nullptr}};
  const ResolvedConfig plain = resolve_ok(plain_checkpoint);
  EXPECT_FALSE(plain.quantize);
  EXPECT_FALSE(plain.pre_quantized);
  EXPECT_FALSE(plain.note.empty());
}

TEST(ResolveMethod, OverridesWithoutAMethodFailLikeTransformers) {
  ConfigRequest request;
  request.overrides = {{"bits", "4"}};
  const Error e = resolve_error(request);
  EXPECT_NE(e.summary().find("has no quant_method attribute"), std::string::npos) << e.summary();
}

TEST(ResolveKeys, UnknownKeysAreWarnedByName) {
  ConfigRequest request;
  request.method = "gptq";
  request.overrides = {{"bits", "4"}, {"bitz", "3"}, {"group_sise", "128"}, {"_private", "1"}};
  const ResolvedConfig r = resolve_ok(request);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].rfind("Unused kwargs: [bitz, group_sise]. These kwargs are not used "
                                "by gptq",
                                0),
            0u)
      << r.warnings[0];
  EXPECT_EQ(r.config.at("bitz"), 3);  // warned, not dropped: the plugin decides
}

TEST(ResolveKeys, MethodWithoutDeclaredKeysIsNotChecked) {
  ConfigRequest request;
  request.method = "awq";
  request.overrides = {{"anything_goes", "1"}};
  EXPECT_TRUE(resolve_ok(request).warnings.empty());
}

TEST(ResolveBnbTypes, ComputeDtypeOutsideTheAllowedSetIsAPreflightError) {
  ConfigRequest request;
  request.method = "nf4";
  request.overrides = {{"bnb_4bit_compute_dtype", "float8"}};
  const Error e = resolve_error(request);
  EXPECT_EQ(e.exit_code(), ExitCode::kEnvironment);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(e.summary().find("bnb_4bit_compute_dtype \"float8\" is not allowed"), std::string::npos)
      << e.summary();
  EXPECT_NE(e.why().find("[bfloat16, double, float, float16, float32, float64, half]"),
            std::string::npos)
      << e.why();
}

TEST(ResolveBnbTypes, QuantStorageOutsideTheAllowedSetIsAPreflightError) {
  ConfigRequest request;
  request.method = "fp4";
  request.user_config = json{{"bnb_4bit_quant_storage", "int4"}};
  const Error e = resolve_error(request);
  EXPECT_EQ(e.exit_code(), ExitCode::kEnvironment);
  EXPECT_NE(e.summary().find("\"int4\""), std::string::npos) << e.summary();
  EXPECT_NE(e.why().find("[bfloat16, float16, float32, float64, int8, uint8]"), std::string::npos)
      << e.why();
}

TEST(ResolveBnbTypes, ThresholdMustBeANumber) {
  ConfigRequest bad;
  bad.method = "int8";
  bad.overrides = {{"llm_int8_threshold", "high"}};
  const Error e = resolve_error(bad);
  EXPECT_NE(e.summary().find("llm_int8_threshold must be a number"), std::string::npos);
  ConfigRequest integer;
  integer.method = "int8";
  integer.overrides = {{"llm_int8_threshold", "6"}};
  const ResolvedConfig r = resolve_ok(integer);
  EXPECT_TRUE(r.config.at("llm_int8_threshold").is_number_float());
  EXPECT_EQ(r.config.at("llm_int8_threshold"), 6.0);
}

TEST(ResolveOverrides, ValuesAreJsonWhenTheyParseElseStrings) {
  ConfigRequest request;
  request.method = "awq";
  request.overrides = {{"n", "3"},    {"f", "0.5"},   {"b", "true"},
                       {"s", "gemm"}, {"q", "\"3\""}, {"l", "[1, \"x\"]"},
                       {"z", "null"}, {"e", ""},      {"o", "{\"k\": 1}"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.config.at("n"), 3);
  EXPECT_EQ(r.config.at("f"), 0.5);
  EXPECT_EQ(r.config.at("b"), true);
  EXPECT_EQ(r.config.at("s"), "gemm");
  EXPECT_EQ(r.config.at("q"), "3");
  EXPECT_EQ(r.config.at("l"), json::parse(R"([1, "x"])"));
  EXPECT_TRUE(r.config.at("z").is_null());
  EXPECT_EQ(r.config.at("e"), "");
  EXPECT_EQ(r.config.at("o"), json::parse(R"({"k": 1})"));
}

TEST(ResolveOverrides, DottedKeysNestAndDeepMerge) {
  ConfigRequest request;
  request.method = "awq";
  request.user_config = json::parse(R"({"exllama_config":{"version":1,"max_input_len":2048}})");
  request.overrides = {{"exllama_config.version", "2"}, {"a.b.c", "x"}};
  const ResolvedConfig r = resolve_ok(request);
  EXPECT_EQ(r.config.at("exllama_config"), json::parse(R"({"version":2,"max_input_len":2048})"));
  EXPECT_EQ(r.config.at("a"), json::parse(R"({"b":{"c":"x"}})"));
}

TEST(ResolveOverrides, MalformedOverrideKeyIsAUsageError) {
  ConfigRequest request;
  request.method = "awq";
  request.overrides = {{"a..b", "1"}};
  EXPECT_EQ(resolve_error(request).exit_code(), ExitCode::kUsage);
}

TEST(ResolveLogging, WarningsAreAlsoLoggedToHostConfig) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto logger = get_logger("host.config");
  const spdlog::level::level_enum saved = log_level();
  set_log_level(spdlog::level::info);
  logger->sinks().push_back(sink);
  ConfigRequest request = prequantized(kGptqCheckpoint);
  request.overrides = {{"bits", "8"}};
  const ResolvedConfig r = resolve_ok(request);
  logger->sinks().pop_back();
  set_log_level(saved);
  std::vector<std::string> logged;
  for (const auto& msg : sink->last_raw()) {
    logged.emplace_back(msg.payload.data(), msg.payload.size());
    EXPECT_EQ(msg.level, spdlog::level::warn);
  }
  EXPECT_EQ(logged, r.warnings);
  EXPECT_EQ(r.warnings.size(), 2u);
}

}  // namespace
}  // namespace qforge
