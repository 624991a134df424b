// A quantized checkpoint runs through its plugin: the tiny Llama quantized with nf4 through the
// pipeline API loads with every decoder linear served by the bnb plugin, and its logits stay
// close to the dense model's. Linear-level: the plugin's linear_forward equals dequantize +
// at::linear (linear_layer_test.cpp).
#include <gtest/gtest.h>

#include "qforge/pipeline.hpp"
#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

fs::path quantize(Host& host, const fs::path& dense, const fs::path& out,
                  const std::string& method) {
  auto ckpt = Checkpoint::open(dense).value();
  PlanRequest request;
  request.config.method = method;
  request.architecture_dirs = runtime_options().architecture_dirs;
  const Plan plan = make_plan(host, ckpt, request).value();
  QuantizeOptions options;
  options.out_dir = out;
  options.threads = 1;
  run_quantize(plan, ckpt, options).value();
  return out;
}

TEST(QuantizedRuntime, Nf4ModelRunsThroughThePluginCloseToTheDenseModel) {
  TempDir tmp;
  const auto dense_dir = write_llama(small_spec("bf16", 5), tmp.path() / "dense");
  Host host(build_tree_host());
  const auto q_dir = quantize(host, dense_dir, tmp.path() / "nf4", "nf4");

  auto dense_ckpt = Checkpoint::open(dense_dir).value();
  auto q_ckpt = Checkpoint::open(q_dir).value();
  auto dense = Model::load(host, dense_ckpt, runtime_options()).value();
  auto quant = Model::load(host, q_ckpt, runtime_options()).value();

  // 2 layers x 7 linears; lm_head stays dense (transformers' default skip).
  const auto modules = quant.quantized_modules();
  ASSERT_EQ(modules.size(), 14u);
  EXPECT_EQ(modules.front(), "model.layers.0.mlp.down_proj");
  for (const auto& m : modules) EXPECT_EQ(m.find("lm_head"), std::string::npos) << m;

  const TokenBatch ids = {{1, 8, 15, 22, 29, 36, 43, 50, 57, 64},
                          {3, 10, 17, 24, 31, 38, 45, 52, 59, 66}};
  const Activations a = dense.forward(ids).value();
  const Activations b = quant.forward(ids).value();
  ASSERT_EQ(a.data.size(), b.data.size());
  // Measured 0.99 on this model (docs/runtime.md); the bound leaves margin for other kernels.
  const double cos = cosine(a.data, b.data);
  EXPECT_GT(cos, 0.95);
  // ... and quantization did change something.
  EXPECT_GT(max_abs_diff(a.data, b.data), 1e-4);
  RecordProperty("logit_cosine", std::to_string(cos));
  std::cout << "nf4 vs dense logit cosine: " << cos << "\n";

  const Perplexity pd = dense.evaluate(ids).value();
  const Perplexity pq = quant.evaluate(ids).value();
  EXPECT_NEAR(pq.mean_nll, pd.mean_nll, 0.05 * pd.mean_nll);
  EXPECT_EQ(quant.generate({1, 2, 3}, 4).value().size(), 4u);
}

TEST(QuantizedRuntime, QuantizedCheckpointWithoutItsPluginFailsWithEnvironmentError) {
  TempDir tmp;
  const auto dense_dir = write_llama(small_spec("bf16", 5), tmp.path() / "dense");
  Host host(build_tree_host());
  const auto q_dir = quantize(host, dense_dir, tmp.path() / "nf4", "nf4");
  HostOptions none;
  none.use_env_path = false;
  none.use_default_dirs = false;
  Host empty(none);
  auto q_ckpt = Checkpoint::open(q_dir).value();
  auto model = Model::load(empty, q_ckpt, runtime_options());
  ASSERT_FALSE(model.ok());
  // runtime.hpp: a quantized checkpoint whose method no plugin serves is exit 3.
  EXPECT_EQ(model.error().exit_code(), ExitCode::kEnvironment) << model.error().to_string();
  EXPECT_NE(model.error().to_string().find("bitsandbytes"), std::string::npos)
      << model.error().to_string();
}

}  // namespace
}  // namespace qforge::runtime::test
