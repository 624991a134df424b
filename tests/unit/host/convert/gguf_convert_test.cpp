// GGUF -> HF conversion of a tiny llama built in the test: names, shapes, config.json, values of
// every supported type (expected values computed here from the block contents), the rotary
// permutation undone end to end, tied / untied heads, output dtypes, and the metadata errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "convert/half.hpp"
#include "gguf_builder.hpp"
#include "qforge/checkpoint.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using test::GgufBuilder;

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() /
           ("qforge-convert-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Lcg {
  uint32_t s;
  uint32_t next() {
    s = s * 1664525u + 1013904223u;
    return s >> 8;
  }
};

constexpr int64_t kHidden = 64, kHeads = 4, kKv = 2, kHeadDim = 16, kFf = 96, kLayers = 2,
                  kVocab = 40;

// The tiny model: each tensor's GGUF bytes and the HF values the converter must produce.
struct TinyLlama {
  GgufBuilder builder;
  std::map<std::string, std::vector<float>> expected;  // HF name -> row-major values
};

// Values exactly representable in fp16 and bf16 (multiples of 1/8 in [-4, 4)).
std::vector<float> grid_values(size_t n, Lcg& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(static_cast<int>(rng.next() % 64) - 32) / 8.0f;
  return v;
}

void add_f32(TinyLlama& m, const std::string& gguf, const std::string& hf, std::vector<uint64_t> ne,
             const std::vector<float>& hf_values, const std::vector<float>& stored) {
  m.builder.tensor(gguf, std::move(ne), kGgmlF32, test::f32_le(stored));
  m.expected[hf] = hf_values;
}

// rows x cols of quantized `type` with random blocks; expected = the block formula.
void add_quant(TinyLlama& m, const std::string& gguf, const std::string& hf, uint64_t rows,
               uint64_t cols, uint32_t type, Lcg& rng) {
  std::string bytes;
  std::vector<float> values;
  const uint16_t scales[] = {test::kHalfHalf, test::kHalfQuarter, test::kHalfOne, test::kHalfTwo};
  const float scale_values[] = {0.5f, 0.25f, 1.0f, 2.0f};
  for (uint64_t b = 0; b < rows * cols / 32; ++b) {
    const size_t si = rng.next() % 4;
    if (type == kGgmlQ8_0) {
      std::vector<int8_t> q(32);
      for (auto& x : q) x = static_cast<int8_t>(static_cast<int>(rng.next() % 256) - 128);
      bytes += test::q8_0_block(scales[si], q);
      for (int8_t x : q) values.push_back(static_cast<float>(x) * scale_values[si]);
    } else {
      std::vector<uint8_t> q(32);
      for (auto& x : q) x = static_cast<uint8_t>(rng.next() % 16);
      if (type == kGgmlQ4_0) {
        bytes += test::q4_0_block(scales[si], q);
        for (uint8_t x : q)
          values.push_back(static_cast<float>(static_cast<int>(x) - 8) * scale_values[si]);
      } else {
        bytes += test::q4_1_block(scales[si], test::kHalfMinusOne, q);
        for (uint8_t x : q) values.push_back(static_cast<float>(x) * scale_values[si] - 1.0f);
      }
    }
  }
  m.builder.tensor(gguf, {cols, rows}, type, bytes);
  m.expected[hf] = values;
}

std::string f16_le(const std::vector<float>& v, bool bf16) {
  std::string out;
  for (float f : v) out += test::gle(bf16 ? float_to_bf16(f) : float_to_half(f), 2);
  return out;
}

TinyLlama tiny_llama(uint32_t version, bool with_output,
                     std::function<void(GgufBuilder&)> meta = {}) {
  TinyLlama m;
  Lcg rng{1234};
  m.builder.version(version);
  if (meta) {
    meta(m.builder);
  } else {
    m.builder.str("general.architecture", "llama")
        .u32("llama.context_length", 2048)
        .u32("llama.embedding_length", kHidden)
        .u32("llama.feed_forward_length", kFf)
        .u32("llama.block_count", kLayers)
        .u32("llama.attention.head_count", kHeads)
        .u32("llama.attention.head_count_kv", kKv)
        .f32("llama.rope.freq_base", 100000.0f)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
        .u32("tokenizer.ggml.bos_token_id", 1)
        .u32("tokenizer.ggml.eos_token_id", 2)
        .str_array("tokenizer.ggml.tokens", {"a", "b"});
  }
  add_quant(m, "token_embd.weight", "model.embed_tokens.weight", kVocab, kHidden, kGgmlQ8_0, rng);
  for (int l = 0; l < kLayers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".";
    const std::string h = "model.layers." + std::to_string(l) + ".";
    // q: F32, stored permuted; k: F16 permuted; v: BF16 (never permuted).
    const auto q = grid_values(kHidden * kHidden, rng);
    std::vector<float> qp(q.size());
    EXPECT_TRUE(permute_rotary_rows(q.data(), qp.data(), kHidden, kHidden, kHeads).ok());
    add_f32(m, g + "attn_q.weight", h + "self_attn.q_proj.weight", {kHidden, kHidden}, q, qp);
    const auto k = grid_values(kKv * kHeadDim * kHidden, rng);
    std::vector<float> kp(k.size());
    EXPECT_TRUE(permute_rotary_rows(k.data(), kp.data(), kKv * kHeadDim, kHidden, kKv).ok());
    m.builder.tensor(g + "attn_k.weight", {kHidden, kKv * kHeadDim}, kGgmlF16, f16_le(kp, false));
    m.expected[h + "self_attn.k_proj.weight"] = k;
    const auto v = grid_values(kKv * kHeadDim * kHidden, rng);
    m.builder.tensor(g + "attn_v.weight", {kHidden, kKv * kHeadDim}, kGgmlBF16, f16_le(v, true));
    m.expected[h + "self_attn.v_proj.weight"] = v;
    add_quant(m, g + "attn_output.weight", h + "self_attn.o_proj.weight", kHidden, kHidden,
              kGgmlQ4_0, rng);
    add_quant(m, g + "ffn_gate.weight", h + "mlp.gate_proj.weight", kFf, kHidden, kGgmlQ4_1, rng);
    add_quant(m, g + "ffn_up.weight", h + "mlp.up_proj.weight", kFf, kHidden, kGgmlQ4_1, rng);
    add_quant(m, g + "ffn_down.weight", h + "mlp.down_proj.weight", kHidden, kFf, kGgmlQ8_0, rng);
    const auto n1 = grid_values(kHidden, rng);
    add_f32(m, g + "attn_norm.weight", h + "input_layernorm.weight", {kHidden}, n1, n1);
    const auto n2 = grid_values(kHidden, rng);
    add_f32(m, g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {kHidden}, n2, n2);
  }
  const auto norm = grid_values(kHidden, rng);
  add_f32(m, "output_norm.weight", "model.norm.weight", {kHidden}, norm, norm);
  if (with_output) {
    add_quant(m, "output.weight", "lm_head.weight", kVocab, kHidden, kGgmlQ4_1, rng);
  }
  return m;
}

fs::path write_gguf(const TempDir& dir, const std::string& bytes) {
  const fs::path p = dir.path / "model.gguf";
  test::write_bytes(p, bytes);
  return p;
}

std::vector<float> read_f32(const Checkpoint& ck, const std::string& name) {
  auto view = ck.view(name);
  EXPECT_TRUE(view.ok()) << name;
  if (!view.ok()) return {};
  std::vector<float> out(static_cast<size_t>(view->numel()));
  const DLDataType dt = view->dtype();
  for (size_t i = 0; i < out.size(); ++i) {
    if (dt.bits == 32) {
      out[i] = view->data_as<float>()[i];
    } else if (dt.code == kDLBfloat) {
      out[i] = bf16_to_float(view->data_as<uint16_t>()[i]);
    } else {
      out[i] = half_to_float(view->data_as<uint16_t>()[i]);
    }
  }
  return out;
}

TEST(GgufConvert, TinyLlamaEveryTypeBothVersionsF32Exact) {
  for (uint32_t version : {2u, 3u}) {
    TempDir dir;
    TinyLlama m = tiny_llama(version, /*with_output=*/false);
    const fs::path gguf = write_gguf(dir, m.builder.bytes());
    ConvertOptions opts;
    opts.dtype = DLDataType{kDLFloat, 32, 1};
    auto summary = convert_gguf_to_hf(gguf, dir.path / "hf", opts);
    ASSERT_TRUE(summary.ok()) << summary.error().to_string();
    auto ck = Checkpoint::open(dir.path / "hf");
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    EXPECT_EQ(ck->tensors().size(), m.expected.size());
    for (const auto& [name, values] : m.expected) {
      const TensorInfo* info = ck->find(name);
      ASSERT_NE(info, nullptr) << name;
      EXPECT_EQ(info->dtype_name, "F32");
      EXPECT_EQ(read_f32(ck.value(), name), values) << name << " (GGUF v" << version << ")";
    }
    EXPECT_EQ(ck->find("model.layers.1.self_attn.k_proj.weight")->shape,
              (std::vector<int64_t>{kKv * kHeadDim, kHidden}));
    EXPECT_EQ(ck->find("model.layers.0.mlp.down_proj.weight")->shape,
              (std::vector<int64_t>{kHidden, kFf}));
    EXPECT_EQ(ck->find("lm_head.weight"), nullptr);
    const auto& c = ck->config();
    EXPECT_EQ(c["architectures"][0], "LlamaForCausalLM");
    EXPECT_EQ(c["model_type"], "llama");
    EXPECT_EQ(c["hidden_size"], kHidden);
    EXPECT_EQ(c["intermediate_size"], kFf);
    EXPECT_EQ(c["num_hidden_layers"], kLayers);
    EXPECT_EQ(c["num_attention_heads"], kHeads);
    EXPECT_EQ(c["num_key_value_heads"], kKv);
    EXPECT_EQ(c["head_dim"], kHeadDim);
    EXPECT_EQ(c["vocab_size"], kVocab);
    EXPECT_EQ(c["max_position_embeddings"], 2048);
    EXPECT_EQ(c["rope_theta"].get<double>(), 100000.0);
    EXPECT_EQ(c["rms_norm_eps"].get<double>(), 1e-5);  // shortest decimal of the float
    EXPECT_EQ(c["tie_word_embeddings"], true);
    EXPECT_EQ(c["bos_token_id"], 1);
    EXPECT_EQ(c["eos_token_id"], 2);
    EXPECT_EQ(c["torch_dtype"], "float32");
    EXPECT_EQ(summary->tensor_types.at("model.layers.0.mlp.up_proj.weight"), "Q4_1");
  }
}

TEST(GgufConvert, UntiedHeadAndHalfOutputs) {
  TempDir dir;
  TinyLlama m = tiny_llama(3, /*with_output=*/true);
  const fs::path gguf = write_gguf(dir, m.builder.bytes());
  for (const auto& [dtype, name] : {std::pair<DLDataType, std::string>{{kDLBfloat, 16, 1}, "BF16"},
                                    {{kDLFloat, 16, 1}, "F16"}}) {
    ConvertOptions opts;
    opts.dtype = dtype;
    const fs::path out = dir.path / name;
    auto summary = convert_gguf_to_hf(gguf, out, opts);
    ASSERT_TRUE(summary.ok()) << summary.error().to_string();
    auto ck = Checkpoint::open(out);
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    EXPECT_EQ(ck->config()["tie_word_embeddings"], false);
    ASSERT_NE(ck->find("lm_head.weight"), nullptr);
    for (const auto& [tensor, values] : m.expected) {
      EXPECT_EQ(ck->find(tensor)->dtype_name, name);
      std::vector<float> rounded(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        rounded[i] = name == "BF16" ? bf16_to_float(float_to_bf16(values[i]))
                                    : half_to_float(float_to_half(values[i]));
      }
      EXPECT_EQ(read_f32(ck.value(), tensor), rounded) << tensor;
    }
  }
  // An existing output folder is kept unless overwrite is set.
  auto again = convert_gguf_to_hf(gguf, dir.path / "BF16");
  ASSERT_FALSE(again.ok());
  ConvertOptions force;
  force.overwrite = true;
  EXPECT_TRUE(convert_gguf_to_hf(gguf, dir.path / "BF16", force).ok());
}

std::string convert_error(TinyLlama m) {
  TempDir dir;
  const fs::path gguf = write_gguf(dir, m.builder.bytes());
  auto r = convert_gguf_to_hf(gguf, dir.path / "hf");
  EXPECT_FALSE(fs::exists(dir.path / "hf"));
  return r.ok() ? std::string() : r.error().summary() + " | " + r.error().why();
}

TEST(GgufConvertRejects, MissingAndMistypedMetadata) {
  auto base = [](GgufBuilder& b) {
    b.str("general.architecture", "llama")
        .u32("llama.context_length", 2048)
        .u32("llama.feed_forward_length", kFf)
        .u32("llama.attention.head_count", kHeads)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
        .u32("llama.embedding_length", kHidden);
  };
  std::string e = convert_error(tiny_llama(3, false, [&](GgufBuilder& b) { base(b); }));
  EXPECT_EQ(e.rfind("GGUF metadata key missing", 0), 0u) << e;
  EXPECT_NE(e.find("llama.block_count"), std::string::npos) << e;

  // The consumer reads an integer; the file holds a string (or an array of them).
  e = convert_error(tiny_llama(3, false, [&](GgufBuilder& b) {
    base(b);
    b.str("llama.block_count", "2");
  }));
  EXPECT_EQ(e.rfind("GGUF metadata key has the wrong type", 0), 0u) << e;
  EXPECT_NE(e.find("STRING"), std::string::npos) << e;
  e = convert_error(tiny_llama(3, false, [&](GgufBuilder& b) {
    base(b);
    b.str_array("llama.block_count", {"2"});
  }));
  EXPECT_EQ(e.rfind("GGUF metadata key has the wrong type", 0), 0u) << e;

  e = convert_error(tiny_llama(3, false, [&](GgufBuilder& b) {
    base(b);
    b.raw("llama.block_count", 5, test::gu32(0xFFFFFFFFu));  // int32 -1
  }));
  EXPECT_EQ(e.rfind("GGUF metadata value out of range", 0), 0u) << e;
}

TEST(GgufConvertRejects, OtherArchitecture) {
  const std::string e = convert_error(
      tiny_llama(3, false, [](GgufBuilder& b) { b.str("general.architecture", "gpt2"); }));
  EXPECT_EQ(e.rfind("GGUF architecture not supported", 0), 0u) << e;
  EXPECT_NE(e.find("gpt2"), std::string::npos);
}

TEST(GgufConvertRejects, UnmappedTensorName) {
  TinyLlama m = tiny_llama(3, false);
  m.builder.tensor("rope_freqs.weight", {8}, kGgmlF32, test::f32_le(std::vector<float>(8, 1.0f)));
  const std::string e = convert_error(std::move(m));
  EXPECT_EQ(e.rfind("GGUF tensor has no HF Llama name", 0), 0u) << e;
  EXPECT_NE(e.find("rope_freqs.weight"), std::string::npos);
}

TEST(GgufConvertRejects, ShapeDisagreesWithMetadata) {
  TinyLlama m = tiny_llama(3, false, [](GgufBuilder& b) {
    b.str("general.architecture", "llama")
        .u32("llama.context_length", 2048)
        .u32("llama.embedding_length", kHidden)
        .u32("llama.feed_forward_length", kFf + 32)  // tensors say kFf
        .u32("llama.block_count", kLayers)
        .u32("llama.attention.head_count", kHeads)
        .u32("llama.attention.head_count_kv", kKv)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  });
  const std::string e = convert_error(std::move(m));
  EXPECT_EQ(e.rfind("GGUF tensor shape disagrees with the metadata", 0), 0u) << e;
}

TEST(GgufConvertRejects, MissingLayerTensorAndExtraLayer) {
  TinyLlama m = tiny_llama(3, false, [](GgufBuilder& b) {
    b.str("general.architecture", "llama")
        .u32("llama.context_length", 2048)
        .u32("llama.embedding_length", kHidden)
        .u32("llama.feed_forward_length", kFf)
        .u32("llama.block_count", kLayers + 1)  // layer 2 has no tensors
        .u32("llama.attention.head_count", kHeads)
        .u32("llama.attention.head_count_kv", kKv)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  });
  std::string e = convert_error(std::move(m));
  EXPECT_EQ(e.rfind("GGUF tensor missing", 0), 0u) << e;
  EXPECT_NE(e.find("model.layers.2."), std::string::npos) << e;

  TinyLlama extra = tiny_llama(3, false);
  extra.builder.tensor("blk.7.attn_norm.weight", {kHidden}, kGgmlF32,
                       test::f32_le(std::vector<float>(kHidden, 1.0f)));
  e = convert_error(std::move(extra));
  EXPECT_EQ(e.rfind("GGUF tensor of a layer beyond block_count", 0), 0u) << e;
}

TEST(GgufConvertRejects, UnsupportedTensorType) {
  TinyLlama m = tiny_llama(3, false);
  m.builder.tensor("output.weight", {256, kVocab}, 12 /* Q4_K */, std::string(144 * kVocab, '\0'));
  const std::string e = convert_error(std::move(m));
  EXPECT_EQ(e.rfind("GGUF tensor type not supported", 0), 0u) << e;
  EXPECT_NE(e.find("Q4_K"), std::string::npos) << e;
}

TEST(GgufConvertRejects, BadOutputDtype) {
  TempDir dir;
  ConvertOptions opts;
  opts.dtype = DLDataType{kDLInt, 8, 1};
  auto r = convert_gguf_to_hf(dir.path / "none.gguf", dir.path / "hf", opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().summary(), "unsupported output dtype");
}

TEST(GgufToHfNames, MapsEveryLlamaTensor) {
  const std::map<std::string, std::string> cases = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
      {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
      {"blk.12.attn_k.weight", "model.layers.12.self_attn.k_proj.weight"},
      {"blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
      {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
      {"blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"},
      {"blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"},
      {"blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
      {"blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"},
      {"blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"}};
  for (const auto& [g, hf] : cases) {
    auto r = gguf_to_hf_tensor_name(g);
    ASSERT_TRUE(r.ok()) << g;
    EXPECT_EQ(r.value(), hf);
  }
  for (const char* bad : {"blk.01.attn_q.weight", "blk.x.attn_q.weight", "blk.0.attn_qkv.weight",
                          "rope_freqs.weight", "blk.0.attn_q.bias", ""}) {
    EXPECT_FALSE(gguf_to_hf_tensor_name(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace qforge
