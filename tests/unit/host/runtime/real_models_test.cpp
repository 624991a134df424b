// The runtime on real trained models against transformers (issue 4, deliver 6): SmolLM2-135M
// (converted from GGUF) logits, argmax, logsumexp and greedy ids; all-MiniLM-L6-v2 hidden states
// and mean-pooled embeddings. Numbers: tests/reference/real-models (docs/real-models.md). The
// weights live in the model cache (tools/fetch-models.sh); without them the tests are skipped,
// saying so.
#include <gtest/gtest.h>

#include <cstdlib>

#include "qforge/calibration.hpp"
#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

nlohmann::json real_reference(const std::string& name) {
  return read_json(fs::path(QFORGE_SOURCE_DIR) / "tests" / "reference" / "real-models" /
                   (name + ".json"));
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

// Calibration capture on a real model: data-free sequences sampled from SmolLM2, every block's
// four groups in true-sequential order, finite Hessians with a positive diagonal, and, with no
// replacement, the calibrated model's logits equal Model::forward on the same sequences.
TEST(RealModels, SmolLM2CalibrationCaptureIsConsistentWithForward) {
  const fs::path dir = model_cache() / "SmolLM2-135M-Instruct";
  SKIP_WITHOUT(dir);
  auto ckpt = Checkpoint::open(dir).value();
  struct Counter : CalibrationConsumer {
    int64_t groups = 0, bad_diagonals = 0;
    Result<Replacements> on_group(BlockHandle& block, const LinearGroup& group,
                                  std::vector<LinearStats>& stats) override {
      (void)block;
      EXPECT_EQ(group.index, groups % 4);
      ++groups;
      for (const auto& st : stats) {
        for (int64_t i = 0; i < st.in_features; ++i) {
          const float d = st.hessian32[static_cast<size_t>(i * st.in_features + i)];
          if (!(d > 0.0f) || !std::isfinite(d)) ++bad_diagonals;
        }
      }
      return Replacements{};
    }
  } counter;
  CalibrationOptions options;
  options.runtime = runtime_options();
  options.runtime.num_threads = 0;
  options.data_free.num_sequences = 2;
  options.data_free.seq_len = 24;
  options.keep_logits = true;
  const auto done = calibrate(ckpt, std::nullopt, options, counter);
  ASSERT_TRUE(done.ok()) << done.error().to_string();
  EXPECT_EQ(done.value().blocks, 30);
  EXPECT_EQ(counter.groups, 30 * 4);
  EXPECT_EQ(counter.bad_diagonals, 0);
  ASSERT_EQ(done.value().input.size(), 2u);

  Host host(build_tree_host());
  auto model = Model::load(host, ckpt, options.runtime).value();
  for (size_t s = 0; s < done.value().input.size(); ++s) {
    const Activations logits = model.forward({done.value().input[s]}).value();
    const Matrix& captured = done.value().logits[s];
    ASSERT_EQ(captured.rows, logits.seq);
    ASSERT_EQ(captured.cols, logits.width);
    float lo = logits.data[0], hi = logits.data[0], worst = 0.0f;
    for (size_t i = 0; i < logits.data.size(); ++i) {
      lo = std::min(lo, logits.data[i]);
      hi = std::max(hi, logits.data[i]);
      worst = std::max(worst, std::abs(logits.data[i] - captured.data[i]));
    }
    EXPECT_LE(worst, 1e-3f * (hi - lo)) << "sequence " << s;
  }
}

}  // namespace
}  // namespace qforge::runtime::test
