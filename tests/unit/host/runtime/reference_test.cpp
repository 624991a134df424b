// The runtime against transformers (tests/reference/runtime, made by
// tools/reference/runtime_reference.py): the same generated Llama checkpoints must give the same
// logits (max abs difference <= 1e-3 of the logit range), the same mean NLL and the same greedy
// ids; the tiny BERT fixture the same hidden states and mean-pooled embedding.
#include <gtest/gtest.h>

#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

TokenBatch ids_of(const nlohmann::json& j) { return j.get<TokenBatch>(); }

class LlamaReference : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaReference, LogitsNllAndGreedyIdsMatchTransformers) {
  const nlohmann::json ref = reference(GetParam());
  TempDir tmp;
  const auto dir = write_llama(
      spec_from_flags(ref["make_model_flags"].get<std::vector<std::string>>()), tmp.path() / "m");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  EXPECT_EQ(model.kind(), ModelKind::kCausalLM);
  EXPECT_EQ(model.family(), "llama");
  EXPECT_TRUE(model.quantized_modules().empty());

  const TokenBatch ids = ids_of(ref["ids"]);
  const Activations logits = model.forward(ids).value();
  const auto shape = ref["logits_shape"].get<std::vector<int64_t>>();
  ASSERT_EQ(logits.batch, shape[0]);
  ASSERT_EQ(logits.seq, shape[1]);
  ASSERT_EQ(logits.width, shape[2]);
  const auto expected = ref["logits"].get<std::vector<float>>();
  const double range = value_range(expected);
  EXPECT_GT(range, 0.1);  // the check below means something
  EXPECT_LE(max_abs_diff(logits.data, expected), 1e-3 * range);
  std::cout << GetParam() << ": max |logit diff| " << max_abs_diff(logits.data, expected)
            << " over a logit range of " << range << "\n";

  const Perplexity p = model.evaluate(ids).value();
  EXPECT_EQ(p.tokens, ref["tokens"].get<int64_t>());
  EXPECT_NEAR(p.mean_nll, ref["mean_nll"].get<double>(), 1e-4);
  EXPECT_NEAR(p.perplexity, ref["perplexity"].get<double>(), 1e-3);

  const auto prompt = ref["prompt"].get<std::vector<int64_t>>();
  const auto greedy = ref["greedy"].get<std::vector<int64_t>>();
  EXPECT_EQ(model.generate(prompt, static_cast<int64_t>(greedy.size())).value(), greedy);
}

INSTANTIATE_TEST_SUITE_P(Cases, LlamaReference,
                         ::testing::Values("llama-fp32", "llama-bf16", "llama-bf16-tied"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(LlamaRuntime, KvCacheGivesTheSameLogitsAsFullForwards) {
  // generate() decodes with the cache; each step must equal the argmax of a full forward.
  TempDir tmp;
  const auto dir = write_llama(small_spec("bf16", 11), tmp.path() / "m");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  std::vector<int64_t> seq = {3, 1, 4, 1, 5};
  const auto generated = model.generate(seq, 6).value();
  ASSERT_EQ(generated.size(), 6u);
  for (const int64_t id : generated) {
    const Activations logits = model.forward({seq}).value();
    int64_t best = 0;
    for (int64_t v = 1; v < logits.width; ++v) {
      if (logits.at(0, logits.seq - 1, v) > logits.at(0, logits.seq - 1, best)) best = v;
    }
    EXPECT_EQ(id, best);
    seq.push_back(id);
  }
}

TEST(LlamaRuntime, GenerateStopsAfterEos) {
  TempDir tmp;
  const auto dir = write_llama(small_spec("fp32", 3), tmp.path() / "m");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  const auto full = model.generate({1, 5, 9, 14}, 8).value();
  ASSERT_EQ(full.size(), 8u);
  const auto stopped = model.generate({1, 5, 9, 14}, 8, full[2]).value();
  const auto first = std::find(full.begin(), full.end(), full[2]);
  EXPECT_EQ(stopped, std::vector<int64_t>(full.begin(), first + 1));
  EXPECT_TRUE(model.generate({1, 5}, 0).value().empty());
}

TEST(LlamaRuntime, BatchRowsEqualSingleSequenceRuns) {
  TempDir tmp;
  const auto dir = write_llama(small_spec("bf16", 5), tmp.path() / "m");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  const Activations both = model.forward({{1, 2, 3, 4}, {9, 8, 7, 6}}).value();
  const Activations second = model.forward({{9, 8, 7, 6}}).value();
  std::vector<float> row(both.data.begin() + both.seq * both.width, both.data.end());
  EXPECT_LE(max_abs_diff(row, second.data), 1e-5);
}

TEST(BertReference, HiddenStatesAndEmbeddingMatchTransformers) {
  const nlohmann::json ref = reference("tiny-bert");
  Host host(build_tree_host());
  auto ckpt =
      Checkpoint::open(fs::path(QFORGE_SOURCE_DIR) / "tests" / "fixtures" / "tiny-bert").value();
  auto model = Model::load(host, ckpt, runtime_options()).value();
  EXPECT_EQ(model.kind(), ModelKind::kEncoder);
  EXPECT_EQ(model.family(), "bert");
  EXPECT_EQ(model.num_layers(), 2);
  EXPECT_EQ(model.hidden_size(), 32);
  const TokenBatch ids = ids_of(ref["ids"]);
  const Activations hidden = model.forward(ids).value();
  const auto expected = ref["hidden"].get<std::vector<float>>();
  ASSERT_EQ(hidden.data.size(), expected.size());
  EXPECT_LE(max_abs_diff(hidden.data, expected), 1e-3 * value_range(expected));
  std::cout << "tiny-bert: max |hidden diff| " << max_abs_diff(hidden.data, expected)
            << " over a range of " << value_range(expected) << "\n";

  const Activations emb = model.embed(ids).value();
  EXPECT_EQ(emb.seq, 1);
  const auto expected_emb = ref["embedding"].get<std::vector<float>>();
  ASSERT_EQ(emb.data.size(), expected_emb.size());
  for (int64_t b = 0; b < emb.batch; ++b) {
    const std::vector<float> got(emb.data.begin() + b * emb.width,
                                 emb.data.begin() + (b + 1) * emb.width);
    const std::vector<float> want(expected_emb.begin() + b * emb.width,
                                  expected_emb.begin() + (b + 1) * emb.width);
    EXPECT_GE(cosine(got, want), 0.9999) << "sequence " << b;
    EXPECT_LE(max_abs_diff(got, want), 1e-4);
  }
  // Causal-LM calls are refused for an encoder.
  EXPECT_FALSE(model.generate({1, 2}, 2).ok());
  EXPECT_FALSE(model.evaluate({{1, 2}}).ok());
}

}  // namespace
}  // namespace qforge::runtime::test
