// One quantized linear layer: the plugin's linear_forward (through the C ABI) equals the
// plugin's dequantize + at::linear, and a dense layer is at::linear on the upcast weight.
#include <gtest/gtest.h>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/pipeline.hpp"
#include "runtime/runtime_internal.hpp"
#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

using detail::Linear;
using detail::WeightSource;

TEST(LinearLayer, PluginForwardEqualsDequantizePlusLinear) {
  TempDir tmp;
  const auto dense_dir = write_llama(small_spec("bf16", 9), tmp.path() / "dense");
  Host host(build_tree_host());
  {
    auto ckpt = Checkpoint::open(dense_dir).value();
    PlanRequest request;
    request.config.method = "nf4";
    request.architecture_dirs = runtime_options().architecture_dirs;
    const Plan plan = make_plan(host, ckpt, request).value();
    QuantizeOptions options;
    options.out_dir = tmp.path() / "nf4";
    run_quantize(plan, ckpt, options).value();
  }
  auto ckpt = Checkpoint::open(tmp.path() / "nf4").value();
  auto classified = pipeline::classify(ckpt, runtime_options().architecture_dirs).value();
  ConfigRequest cr;
  cr.model_config = ckpt.config();
  const nlohmann::json req = {
      {"pre_quantized", true}, {"dtype", nullptr}, {"device", "cpu"}, {"device_map", nullptr}};
  auto prepared =
      pipeline::prepare_quantizer(host, host.resolve(cr).value(), req, std::nullopt).value();
  const WeightSource source(ckpt, classified.layout, prepared.quantizer, 1);

  for (const auto& [name, out, in] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"model.layers.0.self_attn.q_proj", 64, 64},
           {"model.layers.1.mlp.down_proj", 64, 160},
           {"model.layers.0.self_attn.k_proj", 32, 64}}) {
    SCOPED_TRACE(name);
    Linear layer = Linear::load(source, name, out, in);
    ASSERT_TRUE(layer.quantized());
    ASSERT_TRUE(layer.uses_plugin_forward());
    const at::Tensor x = at::randn({2, 3, in}, at::TensorOptions(at::kFloat));
    const at::Tensor via_plugin = layer(x);
    const at::Tensor w = layer.dequantized_weight();
    const at::Tensor via_dense = at::linear(x, w);
    ASSERT_EQ(via_plugin.sizes(), via_dense.sizes());
    EXPECT_LE((via_plugin - via_dense).abs().max().item<float>(), 1e-4f);
    // The forced fallback path gives the same.
    layer.use_dequantized();
    EXPECT_FALSE(layer.uses_plugin_forward());
    EXPECT_LE((layer(x) - via_dense).abs().max().item<float>(), 1e-6f);
  }

  // A dense layer of the same checkpoint (lm_head is kept) is at::linear on the stored weight.
  Linear head = Linear::load(source, "lm_head", 96, 64);
  EXPECT_FALSE(head.quantized());
  const at::Tensor x = at::randn({4, 64}, at::TensorOptions(at::kFloat));
  const at::Tensor w = source.tensor("lm_head.weight");
  EXPECT_LE((head(x) - at::linear(x, w)).abs().max().item<float>(), 0.0f);

  // A wrong expected shape is bad input naming the module.
  try {
    (void)Linear::load(source, "model.layers.0.self_attn.q_proj", 32, 64);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kBadInput);
    EXPECT_NE(e.to_string().find("q_proj"), std::string::npos);
  }
}

}  // namespace
}  // namespace qforge::runtime::test
