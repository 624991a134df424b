// Module targeting on synthetic tensor lists shaped like the real models (small dimensions),
// classified with the shipped maps in manifests/architectures.
#include <gtest/gtest.h>

#include <map>

#include "model/model_internal.hpp"
#include "qforge/tensor.hpp"

namespace qforge::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TensorInfo tensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape) {
  TensorInfo t;
  t.name = name;
  t.dtype = dtype_from_string(dtype).value();
  t.dtype_name = dtype;
  t.shape = std::move(shape);
  return t;
}

class Classify : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded =
        load_architecture_maps({fs::path(QFORGE_SOURCE_DIR) / "manifests" / "architectures"});
    ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
    maps_ = new std::vector<ArchitectureMap>(std::move(loaded).value());
  }
  static void TearDownTestSuite() {
    delete maps_;
    maps_ = nullptr;
  }

  static const ArchitectureMap& map_for(const json& config) {
    auto r = select_architecture(*maps_, config);
    EXPECT_TRUE(r.ok());
    return *r.value();
  }

  static ModelLayout classify(const std::vector<TensorInfo>& tensors, const json& config) {
    const ArchitectureMap& map = map_for(config);
    auto r = classify_modules(map, tensors, config);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? std::move(r).value() : ModelLayout{};
  }

  static Error classify_error(const std::vector<TensorInfo>& tensors, const json& config) {
    auto r = classify_modules(map_for(config), tensors, config);
    EXPECT_FALSE(r.ok());
    return r.ok() ? internal_error("classified", "") : r.error();
  }

  static std::map<std::string, const ModuleEntry*> by_name(const ModelLayout& layout) {
    std::map<std::string, const ModuleEntry*> out;
    for (const auto& m : layout.modules) out[m.name] = &m;
    return out;
  }

  static std::vector<ArchitectureMap>* maps_;
};
std::vector<ArchitectureMap>* Classify::maps_ = nullptr;

// ------------------------------------------------------------------ llama family

json llama_config(bool tie) {
  return {{"model_type", "llama"},     {"architectures", {"LlamaForCausalLM"}},
          {"hidden_size", 64},         {"num_attention_heads", 4},
          {"num_key_value_heads", 2},  {"intermediate_size", 128},
          {"vocab_size", 256},         {"num_hidden_layers", 2},
          {"tie_word_embeddings", tie}};
}

std::vector<TensorInfo> llama_tensors(int64_t q_out = 64, bool head = true,
                                      const std::string& dtype = "BF16") {
  std::vector<TensorInfo> t;
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back(tensor(p + "self_attn.q_proj.weight", dtype, {q_out, 64}));
    t.push_back(tensor(p + "self_attn.k_proj.weight", dtype, {32, 64}));
    t.push_back(tensor(p + "self_attn.v_proj.weight", dtype, {32, 64}));
    t.push_back(tensor(p + "self_attn.o_proj.weight", dtype, {64, 64}));
    t.push_back(tensor(p + "mlp.gate_proj.weight", dtype, {128, 64}));
    t.push_back(tensor(p + "mlp.up_proj.weight", dtype, {128, 64}));
    t.push_back(tensor(p + "mlp.down_proj.weight", dtype, {64, 128}));
    t.push_back(tensor(p + "input_layernorm.weight", dtype, {64}));
    t.push_back(tensor(p + "post_attention_layernorm.weight", dtype, {64}));
  }
  t.push_back(tensor("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {8}));
  t.push_back(tensor("model.embed_tokens.weight", dtype, {256, 64}));
  t.push_back(tensor("model.norm.weight", dtype, {64}));
  if (head) t.push_back(tensor("lm_head.weight", dtype, {256, 64}));
  return t;
}

TEST_F(Classify, LlamaRolesDimensionsAndTags) {
  const ModelLayout layout = classify(llama_tensors(), llama_config(false));
  ASSERT_NE(layout.map, nullptr);
  EXPECT_EQ(layout.map->family, "llama");
  ASSERT_EQ(layout.modules.size(), 2u * 9 + 3);
  for (size_t i = 1; i < layout.modules.size(); ++i) {
    EXPECT_LT(layout.modules[i - 1].name, layout.modules[i].name);
  }
  auto m = by_name(layout);
  const ModuleEntry& q = *m.at("model.layers.1.self_attn.q_proj");
  EXPECT_EQ(q.role, ModuleRole::kLinear);
  EXPECT_EQ(q.family, "llama");
  EXPECT_EQ(q.tag, "self_attn.q_proj");
  EXPECT_EQ(q.out_features, 64);
  EXPECT_EQ(q.in_features, 64);
  EXPECT_EQ(q.weight, std::optional<std::string>("model.layers.1.self_attn.q_proj.weight"));
  EXPECT_FALSE(q.bias);
  EXPECT_EQ(q.tensors, std::vector<std::string>{"model.layers.1.self_attn.q_proj.weight"});
  EXPECT_EQ(q.weight_shape, (std::vector<int64_t>{64, 64}));
  EXPECT_TRUE(dtype_equal(q.weight_dtype, DLDataType{kDLBfloat, 16, 1}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_proj")->out_features, 32);
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj")->in_features, 128);
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj")->tag, "mlp.down_proj");
  EXPECT_EQ(m.at("model.layers.0.input_layernorm")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("model.norm")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("model.norm")->tag, "norm");
  EXPECT_EQ(m.at("model.embed_tokens")->role, ModuleRole::kEmbedding);
  EXPECT_EQ(m.at("model.embed_tokens")->tag, "embed_tokens");
  EXPECT_EQ(m.at("lm_head")->role, ModuleRole::kOutputHead);
  EXPECT_EQ(m.at("lm_head")->out_features, 256);
  EXPECT_EQ(layout.loose_tensors,
            std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
}

TEST_F(Classify, LlamaUntiedSkipsOnlyTheHead) {
  const ModelLayout layout = classify(llama_tensors(), llama_config(false));
  auto m = by_name(layout);
  EXPECT_EQ(m.at("lm_head")->default_skip, "output head (lm_head)");
  EXPECT_EQ(m.at("model.embed_tokens")->default_skip, "");
  EXPECT_TRUE(layout.tied_weights.empty());
  size_t skipped = 0;
  for (const auto& e : layout.modules) skipped += e.default_skip.empty() ? 0 : 1;
  EXPECT_EQ(skipped, 1u);
  EXPECT_EQ(m.at("lm_head")->extra(), (json{{"role", "output_head"},
                                            {"tag", "lm_head"},
                                            {"family", "llama"},
                                            {"default_skip", "output head (lm_head)"}}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj")->extra(),
            (json{{"role", "linear"}, {"tag", "self_attn.q_proj"}, {"family", "llama"}}));
}

TEST_F(Classify, LlamaTiedWithoutHeadTensorRecordsTheTie) {
  const ModelLayout layout = classify(llama_tensors(64, /*head=*/false), llama_config(true));
  auto m = by_name(layout);
  EXPECT_EQ(m.count("lm_head"), 0u);
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(m.at("model.embed_tokens")->default_skip,
            "input embedding (model.embed_tokens), tied to lm_head");
}

TEST_F(Classify, LlamaTiedWithHeadTensorNamesTheEmbedding) {
  const ModelLayout layout = classify(llama_tensors(), llama_config(true));
  auto m = by_name(layout);
  EXPECT_EQ(m.at("lm_head")->default_skip, "output head (lm_head), tied to model.embed_tokens");
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"lm_head"});
}

TEST_F(Classify, TieDefaultComesFromTheMapWhenConfigIsSilent) {
  json config = llama_config(false);
  config.erase("tie_word_embeddings");  // LlamaConfig default: False
  EXPECT_TRUE(classify(llama_tensors(64, false), config).tied_weights.empty());
  config["tie_word_embeddings"] = nullptr;
  EXPECT_TRUE(classify(llama_tensors(64, false), config).tied_weights.empty());
  config["tie_word_embeddings"] = "yes";
  EXPECT_NE(classify_error(llama_tensors(), config).summary().find("not a boolean"),
            std::string::npos);
}

TEST_F(Classify, BaseModelCheckpointHasNothingTied) {
  json config = llama_config(true);
  config["architectures"] = {"LlamaModel"};
  std::vector<TensorInfo> bare;
  for (auto t : llama_tensors(64, false)) {
    t.name = t.name.rfind("model.", 0) == 0 ? t.name.substr(6) : t.name;
    bare.push_back(t);
  }
  const ModelLayout layout = classify(bare, config);
  auto m = by_name(layout);
  ASSERT_EQ(m.count("layers.0.self_attn.q_proj"), 1u);  // "model." is optional in the map
  EXPECT_EQ(m.at("layers.0.self_attn.q_proj")->out_features, 64);
  EXPECT_EQ(m.at("layers.0.self_attn.q_proj")->tag, "self_attn.q_proj");
  EXPECT_EQ(m.at("embed_tokens")->role, ModuleRole::kEmbedding);
  EXPECT_EQ(m.at("embed_tokens")->default_skip, "");
  EXPECT_TRUE(layout.tied_weights.empty());
}

TEST_F(Classify, ShapeMismatchIsAnErrorNamingModuleExpectedActualAndKeys) {  // CF5
  const Error e = classify_error(llama_tensors(/*q_out=*/48), llama_config(false));
  EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
  EXPECT_NE(e.summary().find("'model.layers.0.self_attn.q_proj'"), std::string::npos)
      << e.summary();
  EXPECT_NE(e.summary().find("out_features is 48, expected 64"), std::string::npos) << e.summary();
  EXPECT_NE(e.why().find("[48, 64]"), std::string::npos) << e.why();
  EXPECT_NE(e.why().find("num_attention_heads * head_dim"), std::string::npos) << e.why();
  EXPECT_NE(e.why().find("num_attention_heads=4"), std::string::npos) << e.why();
  EXPECT_NE(e.why().find("head_dim=16 (default: hidden_size / num_attention_heads)"),
            std::string::npos)
      << e.why();
}

TEST_F(Classify, ConfigHeadDimOverridesTheDefault) {
  json config = llama_config(false);
  config["head_dim"] = 32;  // q_proj out = 4 * 32 = 128 while hidden_size stays 64
  std::vector<TensorInfo> t = llama_tensors(/*q_out=*/128);
  for (auto& x : t) {
    const bool kv =
        x.name.find("k_proj") != std::string::npos || x.name.find("v_proj") != std::string::npos;
    if (kv) x.shape = {64, 64};
    if (x.name.find("o_proj") != std::string::npos) x.shape = {64, 128};
  }
  const ModelLayout layout = classify(t, config);
  EXPECT_EQ(by_name(layout).at("model.layers.0.self_attn.o_proj")->in_features, 128);
  // ...and the same weights without head_dim in config.json do not fit.
  config.erase("head_dim");
  classify_error(t, config);
}

TEST_F(Classify, MissingConfigKeyNamesModuleAndKey) {
  json config = llama_config(false);
  config.erase("intermediate_size");
  const Error e = classify_error(llama_tensors(), config);
  EXPECT_NE(e.summary().find("mlp."), std::string::npos) << e.summary();
  EXPECT_NE(e.summary().find("'intermediate_size'"), std::string::npos) << e.summary();
}

TEST_F(Classify, MistralDefaultsKeyValueHeadsToEight) {
  json config = {{"model_type", "mistral"},
                 {"hidden_size", 64},
                 {"num_attention_heads", 16},
                 {"intermediate_size", 128},
                 {"vocab_size", 256}};
  std::vector<TensorInfo> t = {
      tensor("model.layers.0.self_attn.q_proj.weight", "F16", {64, 64}),
      tensor("model.layers.0.self_attn.k_proj.weight", "F16", {32, 64}),  // 8 heads * 4
      tensor("lm_head.weight", "F16", {256, 64}),
      tensor("model.embed_tokens.weight", "F16", {256, 64}),
  };
  const ModelLayout layout = classify(t, config);
  EXPECT_EQ(layout.map->family, "mistral");
  auto m = by_name(layout);
  EXPECT_EQ(m.at("model.layers.0.self_attn.k_proj")->out_features, 32);
  EXPECT_EQ(m.at("lm_head")->default_skip, "output head (lm_head)");  // Mistral: untied default
}

TEST_F(Classify, Qwen2ProjectionsCarryTheirBias) {
  json config = {{"model_type", "qwen2"},      {"hidden_size", 64},
                 {"num_attention_heads", 4},   {"num_key_value_heads", 1},
                 {"intermediate_size", 96},    {"vocab_size", 100},
                 {"tie_word_embeddings", true}};
  std::vector<TensorInfo> t = {
      tensor("model.layers.0.self_attn.q_proj.weight", "BF16", {64, 64}),
      tensor("model.layers.0.self_attn.q_proj.bias", "BF16", {64}),
      tensor("model.layers.0.self_attn.k_proj.weight", "BF16", {16, 64}),
      tensor("model.layers.0.self_attn.k_proj.bias", "BF16", {16}),
      tensor("model.layers.0.self_attn.o_proj.weight", "BF16", {64, 64}),
      tensor("model.layers.0.mlp.up_proj.weight", "BF16", {96, 64}),
      tensor("model.embed_tokens.weight", "BF16", {100, 64}),
  };
  const ModelLayout layout = classify(t, config);
  EXPECT_EQ(layout.map->family, "qwen2");
  auto m = by_name(layout);
  const ModuleEntry& k = *m.at("model.layers.0.self_attn.k_proj");
  EXPECT_EQ(k.bias, std::optional<std::string>("model.layers.0.self_attn.k_proj.bias"));
  EXPECT_EQ(k.tensors, (std::vector<std::string>{"model.layers.0.self_attn.k_proj.bias",
                                                 "model.layers.0.self_attn.k_proj.weight"}));
  EXPECT_FALSE(m.at("model.layers.0.self_attn.o_proj")->bias);
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"lm_head"});  // Qwen2-0.5B style
}

// ------------------------------------------------------------------ gpt2 (Conv1D)

json gpt2_config() {
  return {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}},
          {"n_embd", 32},         {"n_head", 4},
          {"n_layer", 1},         {"n_inner", nullptr},
          {"vocab_size", 100},    {"n_positions", 64}};
}

std::vector<TensorInfo> gpt2_tensors(const std::string& prefix, bool transposed = true) {
  const std::string p = prefix + "h.0.";
  auto conv = [&](const std::string& name, int64_t in, int64_t out) {
    return tensor(name, "F32",
                  transposed ? std::vector<int64_t>{in, out} : std::vector<int64_t>{out, in});
  };
  return {
      tensor(prefix + "wte.weight", "F32", {100, 32}),
      tensor(prefix + "wpe.weight", "F32", {64, 32}),
      tensor(p + "ln_1.weight", "F32", {32}),
      tensor(p + "ln_1.bias", "F32", {32}),
      conv(p + "attn.c_attn.weight", 32, 96),
      tensor(p + "attn.c_attn.bias", "F32", {96}),
      conv(p + "attn.c_proj.weight", 32, 32),
      tensor(p + "attn.c_proj.bias", "F32", {32}),
      tensor(p + "attn.bias", "BOOL", {1, 1, 64, 64}),  // causal mask buffer of old checkpoints
      tensor(p + "ln_2.weight", "F32", {32}),
      conv(p + "mlp.c_fc.weight", 32, 128),
      tensor(p + "mlp.c_fc.bias", "F32", {128}),
      conv(p + "mlp.c_proj.weight", 128, 32),
      tensor(p + "mlp.c_proj.bias", "F32", {32}),
      tensor(prefix + "ln_f.weight", "F32", {32}),
  };
}

TEST_F(Classify, Gpt2Conv1DDimensionsComeFromTransposedWeights) {
  const ModelLayout layout = classify(gpt2_tensors("transformer."), gpt2_config());
  EXPECT_EQ(layout.map->family, "gpt2");
  auto m = by_name(layout);
  const ModuleEntry& c_attn = *m.at("transformer.h.0.attn.c_attn");
  EXPECT_EQ(c_attn.role, ModuleRole::kConv1D);
  EXPECT_EQ(c_attn.in_features, 32);
  EXPECT_EQ(c_attn.out_features, 96);
  EXPECT_EQ(c_attn.weight_shape, (std::vector<int64_t>{32, 96}));
  EXPECT_EQ(c_attn.tag, "transformer.h.attn.c_attn");
  EXPECT_EQ(c_attn.extra()["role"], "conv1d");
  const ModuleEntry& c_fc = *m.at("transformer.h.0.mlp.c_fc");  // n_inner null -> 4 * n_embd
  EXPECT_EQ(c_fc.out_features, 128);
  EXPECT_EQ(c_fc.in_features, 32);
  EXPECT_EQ(m.at("transformer.h.0.mlp.c_proj")->in_features, 128);
  EXPECT_EQ(m.at("transformer.h.0.ln_1")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("transformer.h.0.ln_1")->tensors.size(), 2u);
  EXPECT_EQ(m.at("transformer.ln_f")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("transformer.wpe")->role, ModuleRole::kEmbedding);
  EXPECT_EQ(layout.loose_tensors, std::vector<std::string>{"transformer.h.0.attn.bias"});
  // GPT2Config ties by default; GPT2LMHeadModel checkpoints carry no lm_head tensor.
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(m.at("transformer.wte")->default_skip,
            "input embedding (transformer.wte), tied to lm_head");
  EXPECT_EQ(m.at("transformer.wpe")->default_skip, "");
}

TEST_F(Classify, Gpt2BareNamesMatchToo) {
  const ModelLayout layout = classify(gpt2_tensors(""), gpt2_config());
  auto m = by_name(layout);
  ASSERT_EQ(m.count("h.0.attn.c_attn"), 1u);
  EXPECT_EQ(m.at("h.0.attn.c_attn")->role, ModuleRole::kConv1D);
  EXPECT_EQ(m.at("h.0.attn.c_attn")->tag, "h.attn.c_attn");
  EXPECT_EQ(m.at("wte")->default_skip, "input embedding (wte), tied to lm_head");
}

TEST_F(Classify, Gpt2NonTransposedWeightIsAShapeError) {
  const Error e = classify_error(gpt2_tensors("transformer.", /*transposed=*/false), gpt2_config());
  EXPECT_NE(e.summary().find("transformer.h.0.attn.c_attn"), std::string::npos) << e.summary();
  EXPECT_NE(e.why().find("Conv1D: [in, out]"), std::string::npos) << e.why();
  EXPECT_NE(e.why().find("n_embd=32"), std::string::npos) << e.why();
}

TEST_F(Classify, Gpt2ExplicitInnerSizeIsUsed) {
  json config = gpt2_config();
  config["n_inner"] = 64;
  classify_error(gpt2_tensors("transformer."), config);  // c_fc holds 128, config says 64
}

// ------------------------------------------------------------------ bert

json bert_config(const std::string& arch) {
  return {{"model_type", "bert"},     {"architectures", {arch}}, {"hidden_size", 32},
          {"num_attention_heads", 4}, {"intermediate_size", 64}, {"vocab_size", 50},
          {"type_vocab_size", 2}};
}

std::vector<TensorInfo> bert_tensors(bool decoder) {
  const std::string l = "bert.encoder.layer.0.";
  std::vector<TensorInfo> t = {
      tensor("bert.embeddings.word_embeddings.weight", "F32", {50, 32}),
      tensor("bert.embeddings.position_embeddings.weight", "F32", {64, 32}),
      tensor("bert.embeddings.token_type_embeddings.weight", "F32", {2, 32}),
      tensor("bert.embeddings.LayerNorm.gamma", "F32", {32}),  // Google's original names
      tensor("bert.embeddings.LayerNorm.beta", "F32", {32}),
      tensor("bert.embeddings.position_ids", "I64", {1, 64}),
      tensor(l + "attention.self.query.weight", "F32", {32, 32}),
      tensor(l + "attention.self.query.bias", "F32", {32}),
      tensor(l + "attention.self.key.weight", "F32", {32, 32}),
      tensor(l + "attention.self.value.weight", "F32", {32, 32}),
      tensor(l + "attention.output.dense.weight", "F32", {32, 32}),
      tensor(l + "attention.output.LayerNorm.weight", "F32", {32}),
      tensor(l + "intermediate.dense.weight", "F32", {64, 32}),
      tensor(l + "output.dense.weight", "F32", {32, 64}),
      tensor(l + "output.LayerNorm.weight", "F32", {32}),
      tensor("bert.pooler.dense.weight", "F32", {32, 32}),
      tensor("cls.predictions.bias", "F32", {50}),
      tensor("cls.predictions.transform.dense.weight", "F32", {32, 32}),
      tensor("cls.predictions.transform.LayerNorm.weight", "F32", {32}),
  };
  if (decoder) t.push_back(tensor("cls.predictions.decoder.weight", "F32", {50, 32}));
  return t;
}

TEST_F(Classify, BertMaskedLmRolesAndTiedDecoder) {
  const ModelLayout layout = classify(bert_tensors(true), bert_config("BertForMaskedLM"));
  EXPECT_EQ(layout.map->family, "bert");
  auto m = by_name(layout);
  const std::string l = "bert.encoder.layer.0.";
  for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value",
                        "attention.output.dense", "intermediate.dense", "output.dense"}) {
    EXPECT_EQ(m.at(l + n)->role, ModuleRole::kLinear) << n;
  }
  EXPECT_EQ(m.at(l + "intermediate.dense")->out_features, 64);
  EXPECT_EQ(m.at(l + "output.dense")->in_features, 64);
  EXPECT_EQ(m.at(l + "attention.self.query")->tag, "bert.encoder.layer.attention.self.query");
  EXPECT_EQ(m.at("bert.pooler.dense")->role, ModuleRole::kLinear);
  EXPECT_EQ(m.at("bert.embeddings.token_type_embeddings")->role, ModuleRole::kEmbedding);
  const ModuleEntry& ln = *m.at("bert.embeddings.LayerNorm");
  EXPECT_EQ(ln.role, ModuleRole::kNorm);
  EXPECT_EQ(ln.tensors, (std::vector<std::string>{"bert.embeddings.LayerNorm.beta",
                                                  "bert.embeddings.LayerNorm.gamma"}));
  EXPECT_FALSE(ln.weight);
  EXPECT_EQ(m.at(l + "output.LayerNorm")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("cls.predictions.transform.LayerNorm")->role, ModuleRole::kNorm);
  const ModuleEntry& decoder = *m.at("cls.predictions.decoder");
  EXPECT_EQ(decoder.role, ModuleRole::kOutputHead);
  EXPECT_EQ(decoder.out_features, 50);
  EXPECT_EQ(decoder.default_skip,
            "output head (cls.predictions.decoder), tied to bert.embeddings.word_embeddings");
  EXPECT_EQ(m.at("bert.embeddings.word_embeddings")->default_skip,
            "input embedding (bert.embeddings.word_embeddings), tied to cls.predictions.decoder");
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"cls.predictions.decoder"});
  EXPECT_EQ(layout.loose_tensors,
            (std::vector<std::string>{"bert.embeddings.position_ids", "cls.predictions.bias"}));
}

TEST_F(Classify, BertTiedDecoderWithoutTensorIsStillRecorded) {
  const ModelLayout layout = classify(bert_tensors(false), bert_config("BertForMaskedLM"));
  EXPECT_EQ(by_name(layout).count("cls.predictions.decoder"), 0u);
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"cls.predictions.decoder"});
}

TEST_F(Classify, BertModelHasNoHeadAndNoTie) {
  std::vector<TensorInfo> t;
  for (auto x : bert_tensors(false)) {
    if (x.name.rfind("cls.", 0) == 0) continue;
    x.name = x.name.substr(5);  // BertModel saved alone: no "bert." prefix
    t.push_back(x);
  }
  const ModelLayout layout = classify(t, bert_config("BertModel"));
  auto m = by_name(layout);
  EXPECT_EQ(m.at("encoder.layer.0.attention.self.query")->role, ModuleRole::kLinear);
  EXPECT_EQ(m.at("embeddings.word_embeddings")->default_skip, "");
  EXPECT_TRUE(layout.tied_weights.empty());
}

// ------------------------------------------------------------------ generic fallback

TEST_F(Classify, GenericFallbackOnAnUnknownModelType) {
  const json config = {{"model_type", "falcon"}, {"tie_word_embeddings", false}};
  std::vector<TensorInfo> t = {
      tensor("transformer.word_embeddings.weight", "BF16", {100, 32}),
      tensor("transformer.h.0.self_attention.query_key_value.weight", "BF16", {96, 32}),
      tensor("transformer.h.0.self_attention.dense.weight", "BF16", {32, 32}),
      tensor("transformer.h.0.mlp.dense_h_to_4h.weight", "BF16", {128, 32}),
      tensor("transformer.h.0.mlp.dense_h_to_4h.bias", "BF16", {128}),
      tensor("transformer.h.0.input_layernorm.weight", "BF16", {32}),
      tensor("transformer.h.0.input_layernorm.bias", "BF16", {32}),
      tensor("transformer.h.0.ln_attn.weight", "BF16", {32}),
      tensor("transformer.h.0.layer_scale.weight", "BF16", {32}),
      tensor("transformer.patch_conv.weight", "BF16", {8, 3, 2, 2}),
      tensor("transformer.rotary.inv_freq", "F32", {16}),
      tensor("transformer.ln_f.weight", "BF16", {32}),
      tensor("lm_head.weight", "BF16", {100, 32}),
  };
  const ModelLayout layout = classify(t, config);
  EXPECT_EQ(layout.map->family, "generic");
  auto m = by_name(layout);
  const ModuleEntry& qkv = *m.at("transformer.h.0.self_attention.query_key_value");
  EXPECT_EQ(qkv.role, ModuleRole::kLinear);
  EXPECT_EQ(qkv.out_features, 96);
  EXPECT_EQ(qkv.in_features, 32);
  EXPECT_EQ(qkv.family, "generic");
  EXPECT_EQ(m.at("transformer.h.0.mlp.dense_h_to_4h")->bias,
            std::optional<std::string>("transformer.h.0.mlp.dense_h_to_4h.bias"));
  EXPECT_EQ(m.at("transformer.word_embeddings")->role, ModuleRole::kEmbedding);
  EXPECT_EQ(m.at("transformer.h.0.input_layernorm")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("transformer.h.0.ln_attn")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("transformer.ln_f")->role, ModuleRole::kNorm);
  EXPECT_EQ(m.at("transformer.h.0.layer_scale")->role, ModuleRole::kOther);  // 1-D, not a norm
  EXPECT_EQ(m.at("transformer.patch_conv")->role, ModuleRole::kOther);       // 4-D
  EXPECT_EQ(m.at("lm_head")->role, ModuleRole::kOutputHead);
  EXPECT_EQ(m.at("lm_head")->default_skip, "output head (lm_head)");
  EXPECT_EQ(layout.loose_tensors, std::vector<std::string>{"transformer.rotary.inv_freq"});
  EXPECT_TRUE(layout.tied_weights.empty());
}

TEST_F(Classify, GenericTiesByPretrainedConfigDefault) {
  const json config = {{"model_type", "unknown"}, {"architectures", {"UnknownForCausalLM"}}};
  std::vector<TensorInfo> t = {
      tensor("model.embed_tokens.weight", "F16", {100, 32}),
      tensor("model.layers.0.proj.weight", "F16", {32, 32}),
  };
  const ModelLayout layout = classify(t, config);
  EXPECT_EQ(layout.tied_weights, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(by_name(layout).at("model.embed_tokens")->default_skip,
            "input embedding (model.embed_tokens), tied to lm_head");
}

TEST_F(Classify, UnknownTwoDimensionalWeightInAFamilyMapIsLinear) {
  std::vector<TensorInfo> t = llama_tensors();
  t.push_back(tensor("score.weight", "BF16", {3, 64}));  // LlamaForSequenceClassification
  const ModelLayout layout = classify(t, llama_config(false));
  const ModuleEntry& score = *by_name(layout).at("score");
  EXPECT_EQ(score.role, ModuleRole::kLinear);
  EXPECT_EQ(score.out_features, 3);
  EXPECT_EQ(score.default_skip, "");
}

// ------------------------------------------------------------------ pre-quantized inputs

TEST_F(Classify, BnbFourBitTensorsGroupIntoOneModuleWithMapDimensions) {
  std::vector<TensorInfo> t = llama_tensors();
  t.erase(std::remove_if(
              t.begin(), t.end(),
              [](const TensorInfo& x) { return x.name == "model.layers.0.mlp.up_proj.weight"; }),
          t.end());
  const std::string p = "model.layers.0.mlp.up_proj.weight";
  for (const auto& x :
       {tensor(p, "U8", {4096, 1}), tensor(p + ".absmax", "F32", {128}),
        tensor(p + ".quant_map", "F32", {16}), tensor(p + ".nested_absmax", "F32", {1}),
        tensor(p + ".nested_quant_map", "F32", {256}),
        tensor(p + ".quant_state.bitsandbytes__nf4", "U8", {120})}) {
    t.push_back(x);
  }
  const ModelLayout layout = classify(t, llama_config(false));
  const ModuleEntry& up = *by_name(layout).at("model.layers.0.mlp.up_proj");
  EXPECT_EQ(up.role, ModuleRole::kLinear);
  EXPECT_EQ(up.tensors.size(), 6u);
  EXPECT_EQ(up.weight, std::optional<std::string>(p));
  EXPECT_TRUE(dtype_equal(up.weight_dtype, DLDataType{kDLUInt, 8, 1}));
  EXPECT_EQ(up.out_features, 128);  // from the map's expressions, not the packed [4096, 1]
  EXPECT_EQ(up.in_features, 64);
  EXPECT_TRUE(layout.loose_tensors.size() == 1u) << layout.loose_tensors.size();
}

TEST_F(Classify, PreQuantizedLayoutsGroupUnderTheGenericRules) {
  const json config = {{"model_type", "somequant"}};
  std::vector<TensorInfo> t = {
      // bnb 4-bit
      tensor("a.up.weight", "U8", {64, 1}),
      tensor("a.up.weight.absmax", "F32", {2}),
      tensor("a.up.weight.quant_state.bitsandbytes__fp4", "U8", {90}),
      // bnb 8-bit
      tensor("a.down.weight", "I8", {16, 8}),
      tensor("a.down.SCB", "F32", {16}),
      tensor("a.down.weight_format", "U8", {1}),
      // GPTQ / AWQ
      tensor("a.gate.qweight", "I32", {4, 16}),
      tensor("a.gate.qzeros", "I32", {1, 2}),
      tensor("a.gate.scales", "F16", {1, 16}),
      tensor("a.gate.g_idx", "I32", {32}),
      tensor("a.gate.bias", "F16", {16}),
      // HQQ
      tensor("a.hqq.W_q", "U8", {8, 16}),
      tensor("a.hqq.meta", "U8", {4}),
      // fine-grained FP8
      tensor("a.fp8.weight", "F8_E4M3", {16, 32}),
      tensor("a.fp8.weight_scale_inv", "F32", {1, 1}),
  };
  const ModelLayout layout = classify(t, config);
  auto m = by_name(layout);
  ASSERT_EQ(layout.modules.size(), 5u) << "modules: " << [&] {
    std::string s;
    for (const auto& e : layout.modules) s += e.name + " ";
    return s;
  }();
  EXPECT_EQ(m.at("a.up")->tensors.size(), 3u);
  EXPECT_EQ(m.at("a.up")->role, ModuleRole::kLinear);
  EXPECT_EQ(m.at("a.up")->out_features, 0);  // packed uint8: unknown without map expressions
  EXPECT_EQ(m.at("a.down")->tensors.size(), 3u);
  EXPECT_EQ(m.at("a.gate")->tensors.size(), 5u);
  EXPECT_EQ(m.at("a.gate")->role, ModuleRole::kLinear);
  EXPECT_EQ(m.at("a.gate")->bias, std::optional<std::string>("a.gate.bias"));
  EXPECT_FALSE(m.at("a.gate")->weight);
  EXPECT_EQ(m.at("a.hqq")->tensors.size(), 2u);
  EXPECT_EQ(m.at("a.fp8")->tensors.size(), 2u);
  EXPECT_EQ(m.at("a.fp8")->out_features, 16);  // FP8 keeps the real [out, in]
  EXPECT_TRUE(layout.loose_tensors.empty());
}

// ------------------------------------------------------------------ helpers and robustness

TEST(LinearTag, DropsModelLayersAndNumbers) {
  EXPECT_EQ(linear_tag("model.layers.31.self_attn.k_proj"), "self_attn.k_proj");
  EXPECT_EQ(linear_tag("lm_head"), "lm_head");
  EXPECT_EQ(linear_tag("model.decoder.layers.2.fc1"), "decoder.fc1");
  EXPECT_EQ(linear_tag("transformer.h.0.attn.c_attn"), "transformer.h.attn.c_attn");
  EXPECT_EQ(linear_tag("model.layers.0.mlp.experts.7.w1"), "mlp.experts.w1");
  EXPECT_EQ(linear_tag("model"), "");
}

TEST(NameHeuristics, EmbeddingsAndNorms) {
  for (const char* e : {"model.embed_tokens", "transformer.wte", "wpe", "gpt_neox.embed_in",
                        "bert.embeddings.word_embeddings", "shared", "tok_emb"}) {
    EXPECT_TRUE(looks_like_embedding(e)) << e;
  }
  for (const char* n : {"model.layers.0.self_attn.q_proj", "lm_head", "h.0.mlp.c_fc"}) {
    EXPECT_FALSE(looks_like_embedding(n)) << n;
    EXPECT_FALSE(looks_like_norm(n)) << n;
  }
  for (const char* n : {"model.norm", "input_layernorm", "bert.embeddings.LayerNorm", "ln_f",
                        "h.0.ln_1", "ln", "ln2", "final_layer_norm", "q_norm"}) {
    EXPECT_TRUE(looks_like_norm(n)) << n;
  }
  EXPECT_FALSE(looks_like_norm("lnx_proj"));
}

TEST(ClassifyRobustness, BadRegexInAProgrammaticMapIsAnError) {
  ArchitectureMap map;
  map.family = "broken";
  ModulePattern p;
  p.regex = "model(";
  map.modules.push_back(p);
  auto r = classify_modules(map, {tensor("model.x.weight", "F32", {2, 2})}, json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().summary().find("bad regular expression 'model('"), std::string::npos);
}

TEST(ClassifyRobustness, DuplicateAndOddNamesDoNotCrash) {
  ArchitectureMap map;
  map.family = "generic";
  auto dup = classify_modules(
      map, {tensor("x.weight", "F32", {2, 2}), tensor("x.weight", "F32", {2, 2})}, json::object());
  EXPECT_FALSE(dup.ok());
  auto odd = classify_modules(
      map,
      {tensor("weight", "F32", {2, 2}), tensor(".weight", "F32", {2}),
       tensor("a..weight", "F32", {2, 2}), tensor("", "F32", {1}), tensor("a.weight.", "F32", {1})},
      json::array());  // config not an object: treated as empty
  ASSERT_TRUE(odd.ok()) << odd.error().to_string();
}

}  // namespace
}  // namespace qforge::model
