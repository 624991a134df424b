// AWQ's activation-aware search (runtime/activation_scaling.hpp, the host's consumer for
// `calibration: activation_scaling`): the candidate scales and the clip search against
// re-statements of AutoAWQ's formulas, folding is exact on a whole model before any rounding,
// and, with the in-tree awq plugin, every scaling group's block output error is below
// round-to-nearest's with the same bits and groups (issue 9; on SmolLM2-135M when the model cache
// has it).
#include "runtime/activation_scaling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "qforge/calibrated_quantize.hpp"
#include "qforge/checkpoint.hpp"
#include "runtime/runtime_internal.hpp"
#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

namespace sc = qforge::runtime::scaling;

at::Tensor floats(std::vector<float> v) {
  return at::tensor(at::ArrayRef<float>(v), at::TensorOptions(at::kFloat));
}

TEST(ActivationScaling, CandidateScalesAreAutoAwqsDuoScalingNormalised) {
  const std::vector<double> x = {0.5, 2.0, 8.0, 1.0};
  const std::vector<double> w = {0.25, 0.5, 0.75, 1.0};
  for (const bool duo : {true, false}) {
    for (const double ratio : {0.0, 0.35, 0.95}) {
      std::vector<double> s(4);
      for (size_t i = 0; i < 4; ++i) {
        s[i] = duo ? std::pow(x[i], ratio) / (std::pow(w[i], 1 - ratio) + 1e-4)
                   : std::pow(x[i], ratio);
        s[i] = std::max(s[i], 1e-4);
      }
      const double norm =
          std::sqrt(*std::max_element(s.begin(), s.end()) * *std::min_element(s.begin(), s.end()));
      const at::Tensor got = sc::candidate_scales(floats({0.5f, 2.0f, 8.0f, 1.0f}),
                                                  floats({0.25f, 0.5f, 0.75f, 1.0f}), ratio, duo);
      for (int64_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(got[i].item<float>(), s[static_cast<size_t>(i)] / norm, 1e-5)
            << "duo " << duo << " ratio " << ratio << " channel " << i;
      }
    }
  }
  // A channel that never fires (mean |x| = 0) gets the floor, not zero or NaN.
  const at::Tensor dead =
      sc::candidate_scales(floats({0.0f, 1.0f}), floats({1.0f, 1.0f}), 0.5, true);
  EXPECT_TRUE(at::isfinite(dead).all().item<bool>());
  EXPECT_GT(dead[0].item<float>(), 0.0f);
}

TEST(ActivationScaling, WeightChannelMeanIsRelativeToEachGroupsMax) {
  // Two rows, groups of 2: |w| / (group max + 1e-6), averaged over rows.
  const at::Tensor w = floats({1, -2, 4, 4, -3, 3, 0, 2}).reshape({2, 4});
  const at::Tensor mean = sc::weight_channel_mean(w, 2);
  const std::vector<double> expected = {(0.5 + 1.0) / 2, (1.0 + 1.0) / 2, (1.0 + 0.0) / 2,
                                        (1.0 + 1.0) / 2};
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(mean[i].item<float>(), expected[i], 1e-5);
  // group_size -1: the whole row is one group.
  EXPECT_NEAR(sc::weight_channel_mean(w, -1)[0].item<float>(), (0.25 + 1.0) / 2, 1e-5);
}

// 2-bit asymmetric round-to-nearest per group of 8, written here independently of any plugin.
at::Tensor coarse_rtn(const at::Tensor& w) {
  const at::Tensor g = w.reshape({-1, 8});
  const at::Tensor mx = std::get<0>(g.max(1, true));
  const at::Tensor mn = std::get<0>(g.min(1, true));
  const at::Tensor scale = (mx - mn).clamp_min(1e-5) / 3;
  const at::Tensor zero = (-(mn / scale).round()).clamp(0, 3);
  return ((((g / scale).round() + zero).clamp(0, 3) - zero) * scale).reshape(w.sizes());
}

// Mean over tokens of the squared group output error, per (row, group).
at::Tensor group_output_error(const at::Tensor& x, const at::Tensor& w, const at::Tensor& q) {
  const int64_t groups = w.size(1) / 8;
  const at::Tensor d = (q - w).reshape({w.size(0), groups, 8});
  const at::Tensor xg = x.reshape({x.size(0), groups, 8});
  return at::einsum("tgk,ogk->tog", {xg, d}).pow(2).mean(0);
}

TEST(ActivationScaling, ClipSearchNeverLosesToNoClippingAndClipsOutliers) {
  at::manual_seed(7);
  at::Tensor w = at::randn({16, 32});
  w.index_put_({3, 5}, 9.0f);  // one outlier: with 4 levels it wrecks its group's resolution
  const at::Tensor x = at::randn({300, 32});
  const at::Tensor bound = sc::search_clip(w, x, 8, coarse_rtn);
  ASSERT_EQ(bound.sizes(), (at::IntArrayRef{16, 4}));
  const at::Tensor org_max = std::get<0>(w.abs().reshape({16, 4, 8}).max(-1));
  EXPECT_TRUE((bound <= org_max + 1e-6).all().item<bool>());
  EXPECT_TRUE((bound >= org_max * 0.55 - 1e-6).all().item<bool>());  // at most 9 steps of 5 %
  const at::Tensor clipped = sc::apply_clip(w, bound, 8);
  const at::Tensor with = group_output_error(x, w, coarse_rtn(clipped));
  const at::Tensor without = group_output_error(x, w, coarse_rtn(w));
  EXPECT_TRUE((with <= without * (1 + 1e-5)).all().item<bool>());
  EXPECT_LT(bound[3][0].item<float>(), 9.0f) << "the outlier's group is not clipped";
  EXPECT_LT(with.sum().item<double>(), without.sum().item<double>());

  // A quantizer that rounds nothing: clipping can only add error, so nothing is clipped.
  const at::Tensor none = sc::search_clip(w, x, 8, [](const at::Tensor& t) { return t; });
  EXPECT_TRUE(at::equal(none, org_max));
}

// Every tensor of a checkpoint as float32, by name.
std::map<std::string, at::Tensor> load_tensors(const Checkpoint& ckpt) {
  std::map<std::string, at::Tensor> t;
  for (const auto& info : ckpt.tensors()) {
    t[info.name] = detail::to_float_tensor(ckpt.view(info.name).value(), info.name);
  }
  return t;
}

fs::path write_float_checkpoint(const Checkpoint& like, const std::map<std::string, at::Tensor>& t,
                                const fs::path& out) {
  std::vector<OutputTensor> layout;
  for (const auto& info : like.tensors()) layout.push_back({info.name, info.dtype, info.shape});
  auto writer = CheckpointWriter::create(out, layout).value();
  for (const auto& info : like.tensors()) {
    const at::Tensor c = t.at(info.name).contiguous();
    EXPECT_TRUE(writer->write(info.name, c.data_ptr<float>(), c.numel() * sizeof(float)).ok());
  }
  EXPECT_TRUE(writer->add_file("config.json", like.config().dump(2)).ok());
  EXPECT_TRUE(writer->commit().ok());
  return out;
}

// Folding random positive scales into every scaling group of every block leaves the float32
// model's logits as they were: the transform AWQ quantizes under is exact before rounding.
void expect_folding_is_exact(int64_t kv_heads) {
  TempDir tmp;
  auto spec = small_spec("fp32", 17);
  spec.kv_heads = kv_heads;
  const auto dense = write_llama(spec, tmp.path() / "dense");
  auto ckpt = Checkpoint::open(dense).value();
  std::map<std::string, at::Tensor> t = load_tensors(ckpt);
  at::manual_seed(3);
  int folded = 0;
  for (int64_t b = 0; b < spec.layers; ++b) {
    const std::string p = "model.layers." + std::to_string(b);
    const std::vector<std::string> linears = {p + ".self_attn.q_proj", p + ".self_attn.k_proj",
                                              p + ".self_attn.v_proj", p + ".self_attn.o_proj",
                                              p + ".mlp.gate_proj",    p + ".mlp.up_proj",
                                              p + ".mlp.down_proj"};
    const bool v_feeds_o = kv_heads == spec.heads;
    for (const auto& g :
         sc::llama_scaling_groups(linears, p + ".input_layernorm.weight",
                                  p + ".post_attention_layernorm.weight", v_feeds_o)) {
      const int64_t in = t.at(g.members.front() + ".weight").size(1);
      sc::fold_scales(g, at::exp(at::randn({in})), t);  // factors from ~0.05 to ~20
      ++folded;
    }
  }
  EXPECT_EQ(folded, spec.layers * (kv_heads == spec.heads ? 4 : 3));
  const auto scaled_dir = write_float_checkpoint(ckpt, t, tmp.path() / "scaled");
  auto scaled = Checkpoint::open(scaled_dir).value();
  EXPECT_FALSE(at::equal(t.at("model.layers.0.input_layernorm.weight"),
                         load_tensors(ckpt).at("model.layers.0.input_layernorm.weight")));

  Host host(build_tree_host());
  auto a = Model::load(host, ckpt, runtime_options()).value();
  auto c = Model::load(host, scaled, runtime_options()).value();
  const TokenBatch ids = {{1, 9, 17, 33, 41, 57, 65, 80, 95, 3}};
  const auto before = a.forward(ids).value().data;
  const auto after = c.forward(ids).value().data;
  double scale = 0;
  for (float v : before) scale = std::max(scale, std::fabs(double(v)));
  EXPECT_LT(max_abs_diff(before, after), 1e-4 * scale);
}

TEST(ActivationScaling, FoldingIsExactBeforeRoundingWithVFeedingO) { expect_folding_is_exact(4); }
TEST(ActivationScaling, FoldingIsExactBeforeRoundingWithGroupedQueryAttention) {
  expect_folding_is_exact(2);
}

Plan awq_plan(Host& host, const Checkpoint& ckpt, int64_t group_size) {
  PlanRequest request;
  request.config.method = "awq";
  request.config.overrides = {{"group_size", std::to_string(group_size)}};
  request.architecture_dirs = runtime_options().architecture_dirs;
  return make_plan(host, ckpt, request).value();
}

struct Searched {
  std::vector<ScalingSearch> groups;
  QuantizeSummary summary;
};

Searched run_awq(Host& host, const Checkpoint& ckpt, int64_t group_size, const fs::path& out,
                 int64_t sequences, int64_t seq_len, int threads) {
  const Plan plan = awq_plan(host, ckpt, group_size);
  EXPECT_EQ(plan.calibration, "activation_scaling");
  QuantizeOptions options;
  options.out_dir = out;
  options.threads = threads;
  CalibratedQuantizeOptions c;
  c.calibration.data_free.num_sequences = sequences;
  c.calibration.data_free.seq_len = seq_len;
  c.calibration.runtime = runtime_options();
  c.calibration.runtime.num_threads = threads;
  Searched s;
  c.on_scaling_group = [&](const ScalingSearch& g) { s.groups.push_back(g); };
  auto done = run_calibrated_quantize(plan, ckpt, options, c);
  EXPECT_TRUE(done.ok()) << done.error().to_string();
  if (done.ok()) s.summary = std::move(done).value();
  return s;
}

// AWQ's reason to exist: per scaling group, the block part it feeds (attention, MLP, the linear
// itself) is closer to the float one with the searched scales and clipping than with plain
// round-to-nearest of the same bits and groups.
void expect_awq_beats_rtn(const std::vector<ScalingSearch>& groups) {
  for (const auto& g : groups) {
    EXPECT_LT(g.error_final, g.error_round_to_nearest)
        << "block " << g.block << ", scales folded into " << g.previous
        << ": AWQ's block output error is not below round-to-nearest's (scaled " << g.error_scaled
        << ", ratio " << g.ratio << ")";
  }
}

TEST(ActivationScaling, AwqBeatsRoundToNearestOnEveryScalingGroupOfTheTinyLlama) {
  TempDir tmp;
  auto spec = small_spec("fp32", 11);
  spec.kv_heads = spec.heads;  // o after v is a scaling group too
  const auto dense = write_llama(spec, tmp.path() / "dense");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dense).value();
  const Searched s = run_awq(host, ckpt, 32, tmp.path() / "q", 8, 32, 1);
  ASSERT_EQ(s.groups.size(), 8u);  // 2 blocks x 4 groups
  expect_awq_beats_rtn(s.groups);
  EXPECT_EQ(s.summary.calibrated, 14);

  // The written checkpoint runs (awq plugin's forward) and stays close to the float model.
  auto q_ckpt = Checkpoint::open(tmp.path() / "q").value();
  auto dense_model = Model::load(host, ckpt, runtime_options()).value();
  auto quant = Model::load(host, q_ckpt, runtime_options()).value();
  EXPECT_EQ(quant.quantized_modules().size(), 14u);
  const TokenBatch ids = {{1, 8, 15, 22, 29, 36, 43, 50}};
  EXPECT_GT(cosine(dense_model.forward(ids).value().data, quant.forward(ids).value().data), 0.95);
}

TEST(ActivationScaling, AwqBeatsRoundToNearestOnEveryScalingGroupOfSmolLm2) {
  const fs::path dir = model_cache() / "SmolLM2-135M-Instruct";
  SKIP_WITHOUT(dir);
  TempDir tmp;
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dir).value();
  const Searched s = run_awq(host, ckpt, 64, tmp.path() / "q", 4, 128, 0);
  ASSERT_EQ(s.groups.size(), 30u * 3);  // grouped-query attention: no o-after-v group
  expect_awq_beats_rtn(s.groups);
}

}  // namespace
}  // namespace qforge::runtime::test
