// The runtime on real trained models against transformers (issue 4, deliver 6): SmolLM2-135M
// (converted from GGUF) logits, argmax, logsumexp and greedy ids; all-MiniLM-L6-v2 hidden states
// and mean-pooled embeddings. Numbers: tests/reference/real-models (docs/real-models.md). The
// weights live in the model cache (tools/fetch-models.sh); without them the tests are skipped,
// saying so.
#include <gtest/gtest.h>

#include <cstdlib>

#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

fs::path model_cache() {
  if (const char* env = std::getenv("QFORGE_MODEL_CACHE"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/nonexistent") / ".cache" / "qforge" / "models";
}

nlohmann::json real_reference(const std::string& name) {
  return read_json(fs::path(QFORGE_SOURCE_DIR) / "tests" / "reference" / "real-models" /
                   (name + ".json"));
}

#define SKIP_WITHOUT(dir)                                                                 \
  if (!fs::exists((dir) / "model.safetensors")) {                                         \
    GTEST_SKIP() << "model missing: " << (dir)                                            \
                 << " (run tools/fetch-models.sh --qforge build/bin/qforge to fetch it)"; \
  }

TEST(RealModels, SmolLM2LogitsAndGreedyIdsMatchTransformers) {
  const fs::path dir = model_cache() / "SmolLM2-135M-Instruct";
  SKIP_WITHOUT(dir);
  const nlohmann::json ref = real_reference("smollm2-135m-instruct");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  RuntimeOptions options = runtime_options();
  options.num_threads = 0;
  auto model = Model::load(host, ckpt, options).value();
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["input_ids"].get<std::vector<int64_t>>();
    SCOPED_TRACE("sequence of " + std::to_string(ids.size()) + " tokens");
    const Activations logits = model.forward({ids}).value();
    ASSERT_EQ(logits.seq, static_cast<int64_t>(ids.size()));
    for (int64_t t = 0; t < logits.seq; ++t) {
      const double range = seq["logit_range"][t].get<double>();
      const auto first8 = seq["first8_logits"][t].get<std::vector<double>>();
      for (size_t i = 0; i < first8.size(); ++i) {
        EXPECT_NEAR(logits.at(0, t, static_cast<int64_t>(i)), first8[i], 1e-3 * range)
            << "position " << t << " logit " << i;
      }
      int64_t best = 0;
      double max = logits.at(0, t, 0);
      for (int64_t v = 1; v < logits.width; ++v) {
        if (logits.at(0, t, v) > max) {
          max = logits.at(0, t, v);
          best = v;
        }
      }
      double sum = 0;
      for (int64_t v = 0; v < logits.width; ++v) sum += std::exp(logits.at(0, t, v) - max);
      EXPECT_EQ(best, seq["argmax"][t].get<int64_t>()) << "position " << t;
      EXPECT_NEAR(max + std::log(sum), seq["logsumexp"][t].get<double>(), 1e-3 * range)
          << "position " << t;
    }
    if (seq.contains("greedy_ids")) {
      const auto greedy = seq["greedy_ids"].get<std::vector<int64_t>>();
      EXPECT_EQ(model.generate(ids, static_cast<int64_t>(greedy.size())).value(), greedy);
    }
  }
}

TEST(RealModels, MiniLmEmbeddingsMatchTransformers) {
  const fs::path dir = model_cache() / "all-MiniLM-L6-v2";
  SKIP_WITHOUT(dir);
  const nlohmann::json ref = real_reference("all-minilm-l6-v2");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  EXPECT_EQ(model.kind(), ModelKind::kEncoder);
  for (const auto& seq : ref["sequences"]) {
    // Unpadded, each sequence on its own: the same as transformers' masked padded batch.
    const auto ids = seq["input_ids"].get<std::vector<int64_t>>();
    SCOPED_TRACE("sequence of " + std::to_string(ids.size()) + " tokens");
    const Activations emb = model.embed({ids}).value();
    const auto want = seq["mean_pooled"].get<std::vector<float>>();
    ASSERT_EQ(emb.data.size(), want.size());
    EXPECT_GE(cosine(emb.data, want), 0.9999);
    EXPECT_LE(max_abs_diff(emb.data, want), 1e-3);
    const Activations hidden = model.forward({ids}).value();
    for (int64_t t = 0; t < hidden.seq; ++t) {
      const auto first8 = seq["first8_hidden"][t].get<std::vector<double>>();
      for (size_t i = 0; i < first8.size(); ++i) {
        EXPECT_NEAR(hidden.at(0, t, static_cast<int64_t>(i)), first8[i], 1e-3)
            << "position " << t << " value " << i;
      }
    }
  }
}

}  // namespace
}  // namespace qforge::runtime::test
