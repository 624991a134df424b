// qforge-make-model: the binary's determinism, tying, sharding and flag errors (run as a child
// process, as tests and the demo use it), and the generator's parts (conversions, the portable
// log, the Llama layout) called directly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>

#include "cli_runner.hpp"
#include "deterministic_normal.hpp"
#include "float_convert.hpp"
#include "llama_model.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;
namespace mm = qforge::make_model;
using ::testing::HasSubstr;

const std::vector<std::string> kSmall = {"--hidden",   "64", "--intermediate", "160",
                                         "--layers",   "2",  "--heads",        "4",
                                         "--kv-heads", "2",  "--vocab",        "96"};

ProcessResult make_model(const fs::path& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {QFORGE_MAKE_MODEL_PATH, "--out", out.string()};
  argv.insert(argv.end(), kSmall.begin(), kSmall.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json header_of(const fs::path& file) {
  const std::string bytes = read_file(file);
  uint64_t n = 0;
  EXPECT_GE(bytes.size(), 8u);
  std::memcpy(&n, bytes.data(), 8);
  return nlohmann::json::parse(bytes.substr(8, n));
}

std::set<std::string> file_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001B3ull;
  }
  return h;
}

TEST(MakeModel, SameFlagsGiveIdenticalBytes) {
  TempDir tmp;
  const ProcessResult a = make_model(tmp.path() / "a", {"--seed", "7"});
  ASSERT_EQ(a.exit_code, 0) << a.describe();
  const ProcessResult b = make_model(tmp.path() / "b", {"--seed", "7"});
  ASSERT_EQ(b.exit_code, 0) << b.describe();
  const auto names = file_names(tmp.path() / "a");
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(names, file_names(tmp.path() / "b"));
  for (const auto& name : names) {
    EXPECT_TRUE(read_file(tmp.path() / "a" / name) == read_file(tmp.path() / "b" / name))
        << name << " differs between two runs with the same flags";
  }
  // And the seed matters.
  const ProcessResult c = make_model(tmp.path() / "c", {"--seed", "8"});
  ASSERT_EQ(c.exit_code, 0) << c.describe();
  EXPECT_FALSE(read_file(tmp.path() / "a" / "model.safetensors") ==
               read_file(tmp.path() / "c" / "model.safetensors"));
}

TEST(MakeModel, WritesLlamaTensorsAndConfig) {
  TempDir tmp;
  const ProcessResult r = make_model(tmp.path() / "m");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("parameters"));
  const nlohmann::json header = header_of(tmp.path() / "m" / "model.safetensors");
  EXPECT_EQ(header["__metadata__"], nlohmann::json({{"format", "pt"}}));
  // hidden 64, 4 heads -> head_dim 16; 2 kv heads -> k/v out 32.
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"model.embed_tokens.weight", {96, 64}},
      {"model.layers.1.input_layernorm.weight", {64}},
      {"model.layers.1.self_attn.q_proj.weight", {64, 64}},
      {"model.layers.1.self_attn.k_proj.weight", {32, 64}},
      {"model.layers.1.self_attn.v_proj.weight", {32, 64}},
      {"model.layers.1.self_attn.o_proj.weight", {64, 64}},
      {"model.layers.1.post_attention_layernorm.weight", {64}},
      {"model.layers.1.mlp.gate_proj.weight", {160, 64}},
      {"model.layers.1.mlp.up_proj.weight", {160, 64}},
      {"model.layers.1.mlp.down_proj.weight", {64, 160}},
      {"model.norm.weight", {64}},
      {"lm_head.weight", {96, 64}}};
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(header.contains(name)) << name;
    EXPECT_EQ(header[name]["dtype"], "BF16") << name;
    EXPECT_EQ(header[name]["shape"].get<std::vector<int64_t>>(), shape) << name;
  }
  EXPECT_EQ(header.size(), 1u + 2u + 2u * 9u + 1u);  // metadata, embed+lm_head, layers, norm

  std::ifstream in(tmp.path() / "m" / "config.json");
  const nlohmann::json config = nlohmann::json::parse(in);
  const std::set<std::string> keys = {"architectures",
                                      "attention_bias",
                                      "attention_dropout",
                                      "bos_token_id",
                                      "eos_token_id",
                                      "head_dim",
                                      "hidden_act",
                                      "hidden_size",
                                      "initializer_range",
                                      "intermediate_size",
                                      "max_position_embeddings",
                                      "mlp_bias",
                                      "model_type",
                                      "num_attention_heads",
                                      "num_hidden_layers",
                                      "num_key_value_heads",
                                      "pretraining_tp",
                                      "rms_norm_eps",
                                      "rope_scaling",
                                      "rope_theta",
                                      "tie_word_embeddings",
                                      "torch_dtype",
                                      "transformers_version",
                                      "use_cache",
                                      "vocab_size"};
  std::set<std::string> actual;
  for (const auto& [k, v] : config.items()) actual.insert(k);
  EXPECT_EQ(actual, keys);
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(config["head_dim"], 16);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_TRUE(config["rope_scaling"].is_null());
}

TEST(MakeModel, TieEmbeddingsOmitsLmHead) {
  TempDir tmp;
  const ProcessResult r = make_model(tmp.path() / "m", {"--tie-embeddings", "--dtype", "fp16"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json header = header_of(tmp.path() / "m" / "model.safetensors");
  EXPECT_FALSE(header.contains("lm_head.weight"));
  ASSERT_TRUE(header.contains("model.embed_tokens.weight"));
  EXPECT_EQ(header["model.embed_tokens.weight"]["dtype"], "F16");
  std::ifstream in(tmp.path() / "m" / "config.json");
  const nlohmann::json config = nlohmann::json::parse(in);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["torch_dtype"], "float16");
}

TEST(MakeModel, MaxShardSizeWritesShardsAndIndex) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "m";
  const ProcessResult r = make_model(dir, {"--max-shard-size", "20KB", "--dtype", "fp32"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto names = file_names(dir);
  ASSERT_TRUE(names.count("model.safetensors.index.json")) << r.describe();
  EXPECT_FALSE(names.count("model.safetensors"));
  std::ifstream in(dir / "model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(in);
  const auto& weight_map = index["weight_map"];
  EXPECT_EQ(weight_map.size(), 2u + 2u * 9u + 1u);
  std::set<std::string> shards;
  uint64_t total = 0;
  for (const auto& [tensor, shard] : weight_map.items()) {
    shards.insert(shard.get<std::string>());
    const nlohmann::json header = header_of(dir / shard.get<std::string>());
    ASSERT_TRUE(header.contains(tensor)) << tensor << " not in " << shard;
    const auto offsets = header[tensor]["data_offsets"].get<std::vector<uint64_t>>();
    total += offsets[1] - offsets[0];
  }
  EXPECT_GT(shards.size(), 1u);
  for (const auto& s : shards) {
    EXPECT_TRUE(names.count(s)) << s;
    EXPECT_THAT(s, ::testing::MatchesRegex("model-[0-9]{5}-of-[0-9]{5}\\.safetensors"));
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  // Every file in the folder is a listed shard, the index or config.json.
  EXPECT_EQ(names.size(), shards.size() + 2u);
}

TEST(MakeModel, RefusesBadFlagsAndExistingOutput) {
  TempDir tmp;
  ProcessResult r = make_model(tmp.path() / "m", {"--heads", "3"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--heads"));
  EXPECT_FALSE(fs::exists(tmp.path() / "m"));
  r = make_model(tmp.path() / "m", {"--max-shard-size", "lots"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();  // a bad flag value: usage
  EXPECT_THAT(r.err, HasSubstr("lots"));
  r = run_process({QFORGE_MAKE_MODEL_PATH, "--hidden", "64"});  // no --out
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  r = make_model(tmp.path() / "m");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string before = read_file(tmp.path() / "m" / "model.safetensors");
  r = make_model(tmp.path() / "m", {"--seed", "1"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--force"));
  EXPECT_TRUE(read_file(tmp.path() / "m" / "model.safetensors") == before);
  r = make_model(tmp.path() / "m", {"--seed", "1", "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(read_file(tmp.path() / "m" / "model.safetensors") == before);
}

TEST(MakeModelGenerator, DefaultsAreMostlyLinearLayers) {
  const mm::LlamaSpec spec;  // the tool's defaults
  ASSERT_TRUE(mm::validate(spec).ok());
  int64_t total = 0, linear = 0;
  for (const auto& t : mm::llama_tensors(spec)) {
    int64_t n = 1;
    for (const int64_t d : t.out.shape) n *= d;
    total += n;
    if (t.linear) linear += n;
    EXPECT_EQ(t.linear, t.out.name.find("_proj.weight") != std::string::npos) << t.out.name;
  }
  const double fraction = static_cast<double>(linear) / static_cast<double>(total);
  EXPECT_GE(fraction, 0.90);  // the demo's acceptance criterion
  EXPECT_NEAR(fraction, 0.96, 0.005);
}

TEST(MakeModelGenerator, WeightsHaveTheInitialiserStatistics) {
  mm::LlamaSpec spec;
  spec.dtype = "fp32";
  const mm::GeneratedTensor t{OutputTensor{"w", DLDataType{kDLFloat, 32, 1}, {512, 512}},
                              mm::Init::kNormal, true};
  const std::vector<uint8_t> bytes = mm::generate_tensor(spec, t);
  ASSERT_EQ(bytes.size(), 512u * 512u * 4u);
  std::vector<float> v(512 * 512);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  double sum = 0, sq = 0, quart = 0;
  for (const float x : v) {
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / v.size();
  const double var = sq / v.size() - mean * mean;
  for (const float x : v) quart += std::pow((x - mean), 4);
  const double kurtosis = quart / v.size() / (var * var);
  EXPECT_NEAR(mean, 0.0, 2e-4);
  EXPECT_NEAR(std::sqrt(var), 0.02, 2e-4);
  EXPECT_NEAR(kurtosis, 3.0, 0.05);  // a normal, not a uniform (1.8)
}

// Golden FNV-1a hashes of one tensor's bytes, taken from this generator when it was written
// (and its bf16/fp16 bytes checked then against Python's struct 'e' and bit-exact RNE). A
// change here means every generated model changed: tests and demo figures shift with it.
TEST(MakeModelGenerator, TensorBytesArePinned) {
  mm::LlamaSpec spec;
  spec.seed = 3;
  const std::vector<int64_t> shape = {48, 40};
  for (const auto& [dtype, expected] :
       std::vector<std::pair<std::string, uint64_t>>{{"bf16", 0x020220203d9598b6ull},
                                                     {"fp16", 0xdd6624853a93fa4cull},
                                                     {"fp32", 0x6ecaeb75b89ce09eull}}) {
    spec.dtype = dtype;
    const mm::GeneratedTensor t{OutputTensor{"model.layers.0.mlp.up_proj.weight", {}, shape},
                                mm::Init::kNormal, true};
    const uint64_t h = fnv1a(mm::generate_tensor(spec, t));
    EXPECT_EQ(h, expected) << dtype << " hash 0x" << std::hex << h;
  }
}

TEST(MakeModelGenerator, Bf16RoundsToNearestEven) {
  auto f = [](uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  };
  EXPECT_EQ(mm::float_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(mm::float_to_bf16_bits(f(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(mm::float_to_bf16_bits(f(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(mm::float_to_bf16_bits(f(0x3F808001u)), 0x3F81);  // above the tie
  EXPECT_EQ(mm::float_to_bf16_bits(f(0xBF807FFFu)), 0xBF80);  // below the tie, negative
  EXPECT_EQ(mm::float_to_bf16_bits(f(0x7F7FFFFFu)), 0x7F80);  // max float rounds to inf
  EXPECT_EQ(mm::float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7FC0, 0x7FC0);
}

TEST(MakeModelGenerator, Fp16RoundsToNearestEvenWithSubnormals) {
  EXPECT_EQ(mm::float_to_fp16_bits(1.0f), 0x3C00);
  EXPECT_EQ(mm::float_to_fp16_bits(-2.0f), 0xC000);
  EXPECT_EQ(mm::float_to_fp16_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(mm::float_to_fp16_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(mm::float_to_fp16_bits(65520.0f), 0x7C00);               // tie at max: to even = inf
  EXPECT_EQ(mm::float_to_fp16_bits(1.0f + 0x1.0p-11f), 0x3C00);      // tie, even stays
  EXPECT_EQ(mm::float_to_fp16_bits(1.0f + 3 * 0x1.0p-11f), 0x3C02);  // tie, odd rounds up
  EXPECT_EQ(mm::float_to_fp16_bits(0x1.0p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(mm::float_to_fp16_bits(0x1.0p-25f), 0x0000);             // half of it: tie to even zero
  EXPECT_EQ(mm::float_to_fp16_bits(0x1.8p-25f), 0x0001);
  EXPECT_EQ(mm::float_to_fp16_bits(0x1.8p-24f), 0x0002);    // 1.5 units: tie to even 2
  EXPECT_EQ(mm::float_to_fp16_bits(0x1.ffcp-15f), 0x0400);  // rounds up into the normals
  EXPECT_EQ(mm::float_to_fp16_bits(-0x1.0p-14f), 0x8400);   // smallest normal
  EXPECT_EQ(mm::float_to_fp16_bits(1e-10f), 0x0000);
  EXPECT_EQ(mm::float_to_fp16_bits(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(mm::float_to_fp16_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7E00, 0x7E00);
}

TEST(MakeModelGenerator, PortableLogMatchesLibm) {
  mm::SplitMix64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    const double x = 1.0 - rng.uniform();  // (0, 1]
    const double expected = std::log(x);
    EXPECT_NEAR(mm::portable_log(x), expected, 4e-16 * std::max(1.0, std::fabs(expected)))
        << "x=" << x;
  }
  EXPECT_EQ(mm::portable_log(1.0), 0.0);
  EXPECT_NEAR(mm::portable_log(0x1.0p-53), -53 * std::log(2.0), 1e-13);
}

}  // namespace
}  // namespace qforge::test
