// Calibrated quantization (calibrated_quantize.hpp) with the in-tree GPTQ plugin: every block
// linear is quantized inside the calibration pass with its Hessian, and GPTQ earns its keep —
// on every linear, its output error on held-out tokens is below round-to-nearest's with the
// same bits and groups (issue 8: otherwise the algorithm is wrong). Run on the tiny Llama
// always, and on SmolLM2-135M when the model cache has it.
#include "qforge/calibrated_quantize.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/calibration.hpp"
#include "runtime/runtime_internal.hpp"
#include "runtime_test_support.hpp"
#include "verify/figures.hpp"

namespace qforge::runtime::test {
namespace {

Plan gptq_plan(Host& host, const Checkpoint& ckpt,
               const std::vector<std::pair<std::string, std::string>>& sets) {
  PlanRequest request;
  request.config.method = "gptq";
  request.config.overrides = sets;
  request.architecture_dirs = runtime_options().architecture_dirs;
  return make_plan(host, ckpt, request).value();
}

// Every linear's input rows on `tokens`, measured on the original model (nothing replaced).
struct InputRecorder : CalibrationConsumer {
  Result<Replacements> on_group(BlockHandle& /*block*/, const LinearGroup& /*group*/,
                                std::vector<LinearStats>& stats) override {
    for (auto& s : stats) inputs[s.module] = std::move(s.sample);
    return Replacements{};
  }
  std::map<std::string, Matrix> inputs;
};

// GPTQ (with the group's Hessians) and RTN (no statistics) of each planned linear, from one
// pass over the original model, so both see the same inputs.
struct GptqAndRtn : CalibrationConsumer {
  GptqAndRtn(const Plan& p, const Checkpoint& c) : plan(p), ckpt(c) {}
  std::vector<float> dense(const PlannedModule& pm, const std::vector<NamedTensor>& packed) {
    auto d = plan.quantizer->dequantize(pm.info, views_of(packed)).value();
    for (const auto& t : d) {
      if (t.name == "weight") return verify::to_float32(TensorView::of(t.tensor), "w").value();
    }
    ADD_FAILURE() << "no weight for " << pm.module.name;
    return {};
  }
  Result<Replacements> on_group(BlockHandle& /*block*/, const LinearGroup& /*group*/,
                                std::vector<LinearStats>& stats) override {
    for (auto& s : stats) {
      const PlannedModule* pm = nullptr;
      for (const auto& m : plan.modules) {
        if (m.module.name == s.module && m.action == ModuleAction::kQuantize) pm = &m;
      }
      if (pm == nullptr) continue;
      const TensorView h(DLDataType{kDLFloat, 32, 1}, {s.in_features, s.in_features},
                         s.hessian32.data());
      const std::vector<NamedView> calibration{{"hessian", h}};
      auto gptq = pipeline::quantize_planned_module(plan, *pm, ckpt, 0, &calibration);
      if (!gptq.ok()) return gptq.error();
      auto rtn = pipeline::quantize_planned_module(plan, *pm, ckpt, 0, nullptr);
      if (!rtn.ok()) return rtn.error();
      gptq_weights[s.module] = dense(*pm, gptq.value());
      rtn_weights[s.module] = dense(*pm, rtn.value());
      weights[s.module] = block_weight(s.module);
    }
    return Replacements{};
  }
  std::vector<float> block_weight(const std::string& module) {
    const TensorView w = ckpt.view(module + ".weight").value();
    return verify::to_float32(w, module).value();
  }
  const Plan& plan;
  const Checkpoint& ckpt;
  std::map<std::string, std::vector<float>> gptq_weights, rtn_weights, weights;
};

// ||X Wᵀ - X Ŵᵀ||_F over the rows of x, as one float32 GEMM on (W - Ŵ): the differences are
// ~1e-2 of W, so float32 rounding (~1e-7) cannot flip a comparison that matters.
double output_error(const Matrix& x, const std::vector<float>& w, const std::vector<float>& wq,
                    int64_t out) {
  const auto f32 = at::TensorOptions(at::kFloat);
  const at::Tensor xs = at::from_blob(const_cast<float*>(x.data.data()), {x.rows, x.cols}, f32);
  const at::Tensor ws = at::from_blob(const_cast<float*>(w.data()), {out, x.cols}, f32);
  const at::Tensor qs = at::from_blob(const_cast<float*>(wq.data()), {out, x.cols}, f32);
  return at::mm(xs, (ws - qs).t()).to(at::kDouble).norm().item<double>();
}

// Per linear: GPTQ's error on held-out tokens below RTN's. Returns how many linears compared.
struct TokenCounts {
  int64_t sequences, seq_len;  // calibration: GPTQ's Hessian
  int64_t held_out_sequences;  // of the same length, another seed: the error is measured there
};

int expect_gptq_beats_rtn(const fs::path& dense_dir,
                          const std::vector<std::pair<std::string, std::string>>& sets,
                          TokenCounts counts, int threads) {
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dense_dir).value();
  const Plan plan = gptq_plan(host, ckpt, sets);
  RuntimeOptions rt = runtime_options();
  rt.num_threads = threads;

  DataFreeOptions calib_opts;
  calib_opts.num_sequences = counts.sequences;
  calib_opts.seq_len = counts.seq_len;
  calib_opts.seed = 1;
  DataFreeOptions held_opts = calib_opts;
  held_opts.num_sequences = counts.held_out_sequences;
  held_opts.seed = 2;
  const TokenBatch calib = sample_calibration_tokens(ckpt, calib_opts, rt).value();
  const TokenBatch held_out = sample_calibration_tokens(ckpt, held_opts, rt).value();

  CalibrationOptions record;
  record.runtime = rt;
  record.hessian = HessianPrecision::kNone;
  record.max_sample_tokens = counts.held_out_sequences * counts.seq_len;
  record.true_sequential = false;
  InputRecorder inputs;
  calibrate(ckpt, held_out, record, inputs).value();

  CalibrationOptions measure;
  measure.runtime = rt;
  measure.true_sequential = false;  // both methods on the original model's inputs
  GptqAndRtn both(plan, ckpt);
  calibrate(ckpt, calib, measure, both).value();

  int compared = 0;
  for (const auto& [module, wq] : both.gptq_weights) {
    const Matrix& x = inputs.inputs.at(module);
    const std::vector<float>& w = both.weights.at(module);
    const int64_t out = static_cast<int64_t>(w.size()) / x.cols;
    const double gptq = output_error(x, w, wq, out);
    const double rtn = output_error(x, w, both.rtn_weights.at(module), out);
    EXPECT_LT(gptq, rtn) << module << ": GPTQ's held-out output error is not below RTN's";
    std::cout << "  " << module << " gptq/rtn output error " << gptq / rtn << "\n";
    ++compared;
  }
  return compared;
}

TEST(CalibratedQuantize, GptqBeatsRoundToNearestOnEveryLinearOfTheTinyLlama) {
  TempDir tmp;
  const auto dense = write_llama(small_spec("fp32", 11), tmp.path() / "dense");
  const int compared =
      expect_gptq_beats_rtn(dense, {{"bits", "4"}, {"group_size", "32"}}, {8, 32, 8},
                            /*threads=*/1);
  EXPECT_EQ(compared, 14);  // 2 blocks x 7 linears
}

TEST(CalibratedQuantize, GptqBeatsRoundToNearestOnEveryLinearOfSmolLm2) {
  const fs::path dir = model_cache() / "SmolLM2-135M-Instruct";
  SKIP_WITHOUT(dir);
  // GPTQ fits its calibration set: with fewer tokens than a few times a linear's inputs it
  // overfits, and on held-out tokens mlp.down_proj (1536 inputs) loses to RTN — layers 3-6 by
  // up to 6 % with 32 x 128 tokens, while on the calibration tokens themselves GPTQ's error is
  // 0.74-0.76 of RTN's there. With 96 x 128 tokens every linear wins (worst 0.983), with
  // 128 x 128 = 16384 by a margin that survives sampling noise (worst 0.969; docs/gptq.md).
  const int compared =
      expect_gptq_beats_rtn(dir, {{"bits", "4"}, {"group_size", "64"}}, {128, 128, 8}, 0);
  EXPECT_EQ(compared, 30 * 7);
}

TEST(CalibratedQuantize, RunWritesEveryBlockLinearFromTheCalibrationPass) {
  TempDir tmp;
  const auto dense = write_llama(small_spec("bf16", 5), tmp.path() / "dense");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dense).value();
  const Plan plan = gptq_plan(host, ckpt, {{"bits", "4"}, {"group_size", "32"}});
  ASSERT_TRUE(needs_calibration(plan));
  QuantizeOptions options;
  options.out_dir = tmp.path() / "q";
  options.threads = 1;
  CalibratedQuantizeOptions c;
  c.calibration.data_free.num_sequences = 2;
  c.calibration.data_free.seq_len = 16;
  c.calibration.runtime = runtime_options();
  const QuantizeSummary done = run_calibrated_quantize(plan, ckpt, options, c).value();
  EXPECT_EQ(done.quantized, 14);

  auto q_ckpt = Checkpoint::open(options.out_dir).value();
  auto dense_model = Model::load(host, ckpt, runtime_options()).value();
  auto quant = Model::load(host, q_ckpt, runtime_options()).value();
  EXPECT_EQ(quant.quantized_modules().size(), 14u);
  const TokenBatch ids = {{1, 8, 15, 22, 29, 36, 43, 50}};
  const double cos = cosine(dense_model.forward(ids).value().data, quant.forward(ids).value().data);
  EXPECT_GT(cos, 0.95);
}

TEST(CalibratedQuantize, NeedsCalibrationOnlyForCalibratedMethods) {
  TempDir tmp;
  const auto dense = write_llama(small_spec("bf16", 5), tmp.path() / "dense");
  Host host(build_tree_host());
  auto ckpt = Checkpoint::open(dense).value();
  PlanRequest request;
  request.config.method = "nf4";
  request.architecture_dirs = runtime_options().architecture_dirs;
  EXPECT_FALSE(needs_calibration(make_plan(host, ckpt, request).value()));
  EXPECT_TRUE(needs_calibration(gptq_plan(host, ckpt, {{"bits", "4"}, {"group_size", "32"}})));
}

}  // namespace
}  // namespace qforge::runtime::test
