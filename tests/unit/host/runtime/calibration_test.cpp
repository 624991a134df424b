// Calibration capture (qforge/calibration.hpp) on tiny generated Llama checkpoints: statistics
// against direct computation from the captured inputs, group/block order, true-sequential vs
// non-sequential replacement, consistency with Model::forward, the data-free sampler, bad input.
#include "qforge/calibration.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

// Records every call; `replace` (optional) decides a group's replacements.
struct Recorder : CalibrationConsumer {
  struct Group {
    LinearGroup group;
    std::vector<LinearStats> stats;
  };
  std::vector<std::string> events;
  std::vector<Group> groups;
  std::function<Replacements(BlockHandle&, const LinearGroup&)> replace;

  Status begin_block(BlockHandle& block) override {
    events.push_back("begin " + std::to_string(block.index()));
    return ok_status();
  }
  Result<Replacements> on_group(BlockHandle& block, const LinearGroup& group,
                                std::vector<LinearStats>& stats) override {
    events.push_back("group " + std::to_string(group.block) + "." + std::to_string(group.index));
    groups.push_back({group, stats});
    return replace ? replace(block, group) : Replacements{};
  }
  Status end_block(BlockHandle& block) override {
    events.push_back("end " + std::to_string(block.index()));
    return ok_status();
  }
  const LinearStats& stats(const std::string& module) const {
    for (const auto& g : groups) {
      for (const auto& s : g.stats) {
        if (s.module == module) return s;
      }
    }
    throw std::runtime_error("no statistics for " + module);
  }
};

std::string lin(int block, const std::string& part) {
  return "model.layers." + std::to_string(block) + "." + part;
}

const std::vector<std::string> kParts = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};

CalibrationOptions options_all(HessianPrecision precision = HessianPrecision::kFloat32) {
  CalibrationOptions o;
  o.runtime = runtime_options();
  o.hessian = precision;
  o.mean_abs = true;
  o.max_sample_tokens = 1 << 20;  // every token: the sample is the captured input itself
  o.progress = [](const BlockProgress&) {};
  return o;
}

class Calibration : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = write_llama(small_spec("fp32", 5), tmp_.path() / "m"); }
  Checkpoint open() { return Checkpoint::open(dir_).value(); }
  Recorder run(const TokenBatch& ids, const CalibrationOptions& o,
               std::function<Replacements(BlockHandle&, const LinearGroup&)> replace = {}) {
    Recorder r;
    r.replace = std::move(replace);
    auto ckpt = open();
    auto done = calibrate(ckpt, ids, o, r);
    EXPECT_TRUE(done.ok()) << (done.ok() ? "" : done.error().to_string());
    return r;
  }
  TempDir tmp_;
  fs::path dir_;
};

const TokenBatch kIds = {{1, 5, 9, 14, 20}, {1, 7, 3, 3, 60}, {2, 90, 11, 4, 8, 30, 0}};

// max |a - b| / max |b|
template <class A, class B>
double rel_diff(const std::vector<A>& a, const std::vector<B>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
    m = std::max(m, std::fabs(double(b[i])));
  }
  return d / m;
}

// GPTQ's H from the rows directly: 2 / sequences * X^T X, in double.
std::vector<double> direct_hessian(const LinearStats& s) {
  const int64_t in = s.in_features;
  std::vector<double> h(static_cast<size_t>(in * in), 0.0);
  for (int64_t r = 0; r < s.sample.rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = 0; j < in; ++j)
        h[i * in + j] += double(s.sample.at(r, i)) * s.sample.at(r, j);
    }
  }
  for (double& v : h) v *= 2.0 / static_cast<double>(s.sequences);
  return h;
}

TEST_F(Calibration, HessianAndMeanAbsEqualDirectComputation) {
  const Recorder f32 = run(kIds, options_all(HessianPrecision::kFloat32));
  const Recorder f64 = run(kIds, options_all(HessianPrecision::kFloat64));
  ASSERT_EQ(f32.groups.size(), 8u);
  for (int b = 0; b < 2; ++b) {
    for (const auto& part : kParts) {
      const LinearStats& s = f32.stats(lin(b, part));
      const LinearStats& d = f64.stats(lin(b, part));
      SCOPED_TRACE(s.module);
      EXPECT_EQ(s.tokens, 17);
      EXPECT_EQ(s.sequences, 3);
      ASSERT_EQ(s.sample.rows, 17);
      ASSERT_EQ(s.sample.cols, s.in_features);
      const std::vector<double> h = direct_hessian(s);
      ASSERT_EQ(s.hessian32.size(), h.size());
      EXPECT_TRUE(s.hessian64.empty());
      EXPECT_LT(rel_diff(s.hessian32, h), 1e-5);
      ASSERT_EQ(d.hessian64.size(), h.size());
      EXPECT_LT(rel_diff(d.hessian64, h), 1e-12);
      std::vector<double> mean(static_cast<size_t>(s.in_features), 0.0);
      for (int64_t r = 0; r < s.sample.rows; ++r) {
        for (int64_t i = 0; i < s.in_features; ++i) mean[i] += std::fabs(s.sample.at(r, i)) / 17.0;
      }
      EXPECT_LT(rel_diff(s.mean_abs, mean), 1e-6);
    }
  }
}

TEST_F(Calibration, FirstBlockInputIsTheNormalizedEmbedding) {
  // The captured q_proj input of block 0 recomputed from the checkpoint tensors: RMSNorm of
  // the embedding rows (the test's own arithmetic, not the runtime's).
  const Recorder r = run(kIds, options_all());
  const LinearStats& q = r.stats(lin(0, "self_attn.q_proj"));
  auto ckpt = open();
  const auto embed = ckpt.view("model.embed_tokens.weight").value();
  const auto norm = ckpt.view("model.layers.0.input_layernorm.weight").value();
  const float* e = static_cast<const float*>(embed.data());
  const float* w = static_cast<const float*>(norm.data());
  const int64_t hidden = q.in_features;
  int64_t row = 0;
  double worst = 0;
  for (const auto& seq : kIds) {
    for (const int64_t id : seq) {
      double ss = 0;
      for (int64_t i = 0; i < hidden; ++i) ss += double(e[id * hidden + i]) * e[id * hidden + i];
      const double inv = 1.0 / std::sqrt(ss / hidden + 1e-6);
      for (int64_t i = 0; i < hidden; ++i) {
        const double want = w[i] * (e[id * hidden + i] * inv);
        worst = std::max(worst, std::fabs(want - q.sample.at(row, i)));
      }
      ++row;
    }
  }
  EXPECT_EQ(row, q.sample.rows);
  EXPECT_LT(worst, 1e-5);
}

TEST_F(Calibration, AccumulationOverBatchesEqualsOneShot) {
  const TokenBatch ids = {
      {1, 5, 9, 14, 20, 3}, {1, 7, 3, 3, 60, 2}, {4, 4, 8, 9, 10, 11}, {1, 2, 3, 4, 5, 6}};
  for (const auto precision : {HessianPrecision::kFloat32, HessianPrecision::kFloat64}) {
    CalibrationOptions one_by_one = options_all(precision);
    one_by_one.batch_size = 1;
    CalibrationOptions at_once = options_all(precision);
    at_once.batch_size = 4;
    const Recorder a = run(ids, one_by_one);
    const Recorder b = run(ids, at_once);
    // The float64 sums are exact enough for 1e-12, but their inputs are not: past block 0's
    // attention, activations come out of BLAS GEMMs whose blocking (and so float32 rounding)
    // depends on the batch's row count, ~1e-7 relative with OpenBLAS. A wrong batch rescale
    // (H *= n/(n+m)) is off by O(1), far above either bound.
    const double tol = precision == HessianPrecision::kFloat32 ? 1e-5 : 1e-6;
    for (int blk = 0; blk < 2; ++blk) {
      for (const auto& part : kParts) {
        const LinearStats& x = a.stats(lin(blk, part));
        const LinearStats& y = b.stats(lin(blk, part));
        SCOPED_TRACE(x.module);
        EXPECT_EQ(x.sequences, 4);
        EXPECT_EQ(y.sequences, 4);
        if (precision == HessianPrecision::kFloat32) {
          EXPECT_LT(rel_diff(x.hessian32, y.hessian32), tol);
        } else {
          EXPECT_LT(rel_diff(x.hessian64, y.hessian64), tol);
        }
        EXPECT_LT(rel_diff(x.mean_abs, y.mean_abs), 1e-6);
      }
    }
  }
}

TEST_F(Calibration, GroupsFollowTrueSequentialOrderBlockByBlock) {
  const Recorder r = run(kIds, options_all(HessianPrecision::kNone));
  const std::vector<std::string> events = {"begin 0",   "group 0.0", "group 0.1", "group 0.2",
                                           "group 0.3", "end 0",     "begin 1",   "group 1.0",
                                           "group 1.1", "group 1.2", "group 1.3", "end 1"};
  EXPECT_EQ(r.events, events);
  ASSERT_EQ(r.groups.size(), 8u);
  const std::vector<std::vector<std::string>> order = {
      {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
      {"self_attn.o_proj"},
      {"mlp.gate_proj", "mlp.up_proj"},
      {"mlp.down_proj"}};
  for (size_t g = 0; g < 8; ++g) {
    const int blk = static_cast<int>(g / 4);
    std::vector<std::string> want;
    for (const auto& p : order[g % 4]) want.push_back(lin(blk, p));
    EXPECT_EQ(r.groups[g].group.modules, want);
    ASSERT_EQ(r.groups[g].stats.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r.groups[g].stats[i].module, want[i]);
      EXPECT_TRUE(r.groups[g].stats[i].hessian32.empty());
    }
  }
}

// Zeroes block 0's o_proj when its group is handed over.
Replacements zero_o(BlockHandle& block, const LinearGroup& group) {
  if (group.block != 0 || group.index != 1) return {};
  const Matrix w = block.weight(group.modules[0]);
  return {{group.modules[0], std::vector<float>(w.data.size(), 0.0f)}};
}

TEST_F(Calibration, SequentialModeFeedsReplacementsForward) {
  const Recorder plain = run(kIds, options_all());
  CalibrationOptions seq = options_all();
  seq.true_sequential = true;
  const Recorder sequential = run(kIds, seq, zero_o);
  CalibrationOptions nonseq = options_all();
  nonseq.true_sequential = false;
  const Recorder deferred = run(kIds, nonseq, zero_o);

  const auto same = [](const LinearStats& a, const LinearStats& b) {
    return a.hessian32 == b.hessian32 && a.mean_abs == b.mean_abs;
  };
  // Block 0, groups up to o itself: unaffected in both modes.
  for (const auto& part : {"self_attn.q_proj", "self_attn.o_proj"}) {
    EXPECT_TRUE(same(sequential.stats(lin(0, part)), plain.stats(lin(0, part)))) << part;
    EXPECT_TRUE(same(deferred.stats(lin(0, part)), plain.stats(lin(0, part)))) << part;
  }
  // Block 0 after o: sequential sees the zeroed o_proj, non-sequential the original block.
  for (const auto& part : {"mlp.gate_proj", "mlp.down_proj"}) {
    EXPECT_FALSE(same(sequential.stats(lin(0, part)), plain.stats(lin(0, part)))) << part;
    EXPECT_TRUE(same(deferred.stats(lin(0, part)), plain.stats(lin(0, part)))) << part;
  }
  // Block 1: both modes computed block 0's output with the replacement installed.
  for (const auto& part : kParts) {
    EXPECT_FALSE(same(sequential.stats(lin(1, part)), plain.stats(lin(1, part)))) << part;
    EXPECT_LT(
        rel_diff(sequential.stats(lin(1, part)).hessian32, deferred.stats(lin(1, part)).hessian32),
        1e-6)
        << part;
  }
}

TEST_F(Calibration, LastBlockOutputMatchesModelForward) {
  CalibrationOptions o = options_all(HessianPrecision::kNone);
  o.keep_logits = true;
  Recorder r;
  auto ckpt = open();
  const auto done = calibrate(ckpt, kIds, o, r);
  ASSERT_TRUE(done.ok()) << done.error().to_string();
  ASSERT_EQ(done.value().logits.size(), kIds.size());
  EXPECT_EQ(done.value().blocks, 2);
  EXPECT_EQ(done.value().tokens, 17);
  EXPECT_EQ(done.value().replaced, 0);
  Host host(build_tree_host());
  auto model = Model::load(host, ckpt, runtime_options()).value();
  for (size_t s = 0; s < kIds.size(); ++s) {
    const Activations want = model.forward({kIds[s]}).value();
    const Matrix& got = done.value().logits[s];
    ASSERT_EQ(got.rows, want.seq);
    ASSERT_EQ(got.cols, want.width);
    EXPECT_LE(max_abs_diff(got.data, want.data), 1e-5 * value_range(want.data)) << s;
  }
}

TEST_F(Calibration, ReplacementChangesTheModelOutput) {
  CalibrationOptions o = options_all(HessianPrecision::kNone);
  o.keep_logits = true;
  Recorder r;
  r.replace = zero_o;
  auto ckpt = open();
  const auto done = calibrate(ckpt, kIds, o, r);
  ASSERT_TRUE(done.ok()) << done.error().to_string();
  EXPECT_EQ(done.value().replaced, 1);
  Host host(build_tree_host());
  auto model = Model::load(host, ckpt, runtime_options()).value();
  const Activations orig = model.forward({kIds[0]}).value();
  EXPECT_GT(max_abs_diff(done.value().logits[0].data, orig.data), 1e-3);
}

TEST_F(Calibration, SampleCapTakesEvenlyStridedRows) {
  const Recorder full = run(kIds, options_all());
  CalibrationOptions capped = options_all();
  capped.max_sample_tokens = 5;
  const Recorder few = run(kIds, capped);
  for (const auto& part : {"self_attn.q_proj", "mlp.down_proj"}) {
    const LinearStats& a = full.stats(lin(1, part));
    const LinearStats& b = few.stats(lin(1, part));
    ASSERT_EQ(b.sample.rows, 5) << part;
    EXPECT_EQ(b.tokens, 17);
    for (int64_t k = 0; k < 5; ++k) {
      const int64_t row = k * 17 / 5;
      for (int64_t i = 0; i < a.in_features; ++i) ASSERT_EQ(b.sample.at(k, i), a.sample.at(row, i));
    }
  }
  CalibrationOptions none = options_all();
  none.max_sample_tokens = 0;
  EXPECT_EQ(run(kIds, none).stats(lin(0, "mlp.up_proj")).sample.rows, 0);
}

TEST_F(Calibration, BlockHandleRunsPartsWithOverrides) {
  Recorder r;
  std::vector<std::string> failures;
  r.replace = [&](BlockHandle& block, const LinearGroup& group) -> Replacements {
    if (group.index != 3) return {};
    const std::string q = lin(static_cast<int>(block.index()), "self_attn.q_proj");
    const std::string down = group.modules[0];
    // A linear part is its input times W^T: compare with the captured q input.
    const LinearStats& qs = r.stats(q);
    const Matrix w = block.weight(q);
    const Matrix y = block.run(BlockPart::kLinear, {}, q).value();
    if (y.rows != qs.tokens || y.cols != w.rows) failures.push_back("q shape");
    double worst = 0;
    for (int64_t t = 0; t < y.rows; ++t) {
      for (int64_t o = 0; o < y.cols; ++o) {
        double want = 0;
        for (int64_t i = 0; i < w.cols; ++i) want += double(qs.sample.at(t, i)) * w.at(o, i);
        worst = std::max(worst, std::fabs(want - y.at(t, o)));
      }
    }
    if (worst > 1e-4) failures.push_back("q output off by " + std::to_string(worst));
    // The same weight as an override changes nothing; a zero down_proj zeroes the MLP.
    const Matrix attn = block.run(BlockPart::kAttention, {}).value();
    const std::string o_name = lin(static_cast<int>(block.index()), "self_attn.o_proj");
    const Matrix attn_same =
        block.run(BlockPart::kAttention, {{o_name, block.weight(o_name).data}}).value();
    if (attn.data != attn_same.data) failures.push_back("override with the same weight");
    const Matrix dw = block.weight(down);
    const Matrix mlp =
        block.run(BlockPart::kMlp, {{down, std::vector<float>(dw.data.size(), 0.0f)}}).value();
    if (mlp.rows != 17 || mlp.cols != 64) failures.push_back("mlp shape");
    for (float v : mlp.data) {
      if (v != 0.0f) {
        failures.push_back("mlp with zero down_proj");
        break;
      }
    }
    if (block.norm(BlockNorm::kInput).size() != 64u) failures.push_back("norm size");
    if (block.run(BlockPart::kLinear, {}, "model.lm_head").ok()) failures.push_back("bad name");
    return {};
  };
  auto ckpt = open();
  const auto done = calibrate(ckpt, kIds, options_all(), r);
  ASSERT_TRUE(done.ok()) << done.error().to_string();
  EXPECT_TRUE(failures.empty()) << failures.front();
}

TEST_F(Calibration, DataFreeSamplingIsSeededAndReproducible) {
  auto ckpt = open();
  DataFreeOptions o;
  o.num_sequences = 3;
  o.seq_len = 12;
  o.seed = 7;
  const TokenBatch a = sample_calibration_tokens(ckpt, o, runtime_options()).value();
  const TokenBatch b = sample_calibration_tokens(ckpt, o, runtime_options()).value();
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 3u);
  for (const auto& seq : a) {
    ASSERT_EQ(seq.size(), 12u);
    EXPECT_EQ(seq[0], 1);  // make-model's bos_token_id
    for (const int64_t id : seq) EXPECT_TRUE(id >= 0 && id < 96);
  }
  EXPECT_NE(a[0], a[1]);  // each sequence draws from its own generator
  o.seed = 8;
  EXPECT_NE(sample_calibration_tokens(ckpt, o, runtime_options()).value(), a);

  // top_k = 1 is greedy decoding from the start token.
  o.top_k = 1;
  o.num_sequences = 1;
  o.start_token = 5;
  const TokenBatch greedy = sample_calibration_tokens(ckpt, o, runtime_options()).value();
  Host host(build_tree_host());
  auto model = Model::load(host, ckpt, runtime_options()).value();
  std::vector<int64_t> want = {5};
  const std::vector<int64_t> generated = model.generate({5}, 11).value();
  want.insert(want.end(), generated.begin(), generated.end());
  EXPECT_EQ(greedy[0], want);

  // calibrate() without input uses exactly these sequences.
  CalibrationOptions c = options_all(HessianPrecision::kNone);
  c.data_free.num_sequences = 2;
  c.data_free.seq_len = 6;
  c.data_free.seed = 3;
  Recorder r;
  const auto done = calibrate(ckpt, std::nullopt, c, r);
  ASSERT_TRUE(done.ok()) << done.error().to_string();
  EXPECT_EQ(done.value().input,
            sample_calibration_tokens(ckpt, c.data_free, runtime_options()).value());
  EXPECT_EQ(r.stats(lin(0, "self_attn.q_proj")).tokens, 12);
}

TEST_F(Calibration, BadInputIsRefusedWithClearErrors) {
  auto ckpt = open();
  const auto fails = [&](const std::optional<TokenBatch>& ids, const CalibrationOptions& o,
                         Recorder& r) {
    const auto done = calibrate(ckpt, ids, o, r);
    EXPECT_FALSE(done.ok());
    return done.ok() ? std::string() : done.error().to_string();
  };
  const CalibrationOptions o = options_all(HessianPrecision::kNone);
  Recorder r;
  EXPECT_NE(fails(TokenBatch{{1, 2, 96}}, o, r).find("out of range"), std::string::npos);
  EXPECT_NE(fails(TokenBatch{{1, 2}, {-1, 2}}, o, r).find("sequence 1, position 0"),
            std::string::npos);
  EXPECT_NE(fails(TokenBatch{}, o, r).find("no calibration sequences"), std::string::npos);
  EXPECT_NE(fails(TokenBatch{{1, 2}, {3}}, o, r).find("too short"), std::string::npos);
  EXPECT_TRUE(r.groups.empty());  // nothing ran

  CalibrationOptions bad_free = o;
  bad_free.data_free.seq_len = 1;
  EXPECT_NE(fails(std::nullopt, bad_free, r).find("at least two tokens"), std::string::npos);
  bad_free = o;
  bad_free.data_free.start_token = 500;
  EXPECT_NE(fails(std::nullopt, bad_free, r).find("start token 500"), std::string::npos);

  Recorder wrong_size;
  wrong_size.replace = [](BlockHandle&, const LinearGroup& g) {
    return Replacements{{g.modules[0], std::vector<float>(3, 0.0f)}};
  };
  EXPECT_NE(fails(kIds, o, wrong_size).find("wrong size"), std::string::npos);
  Recorder wrong_name;
  wrong_name.replace = [](BlockHandle&, const LinearGroup& g) {
    return g.block == 0 ? Replacements{{"model.layers.1.mlp.up_proj", {}}} : Replacements{};
  };
  EXPECT_NE(fails(kIds, o, wrong_name).find("not a linear layer of block 0"), std::string::npos);
  Recorder nan;
  nan.replace = [](BlockHandle& b, const LinearGroup& g) {
    std::vector<float> w(b.weight(g.modules[0]).data.size(), 0.0f);
    w[3] = std::nanf("");
    return Replacements{{g.modules[0], w}};
  };
  EXPECT_NE(fails(kIds, o, nan).find("not finite"), std::string::npos);

  struct Failing : CalibrationConsumer {
    Result<Replacements> on_group(BlockHandle&, const LinearGroup&,
                                  std::vector<LinearStats>&) override {
      return bad_input("the method gave up", "because", "never mind");
    }
  } failing;
  const auto done = calibrate(ckpt, kIds, o, failing);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().summary(), "the method gave up");
}

TEST_F(Calibration, RefusesEncodersAndQuantizedCheckpoints) {
  Recorder r;
  const CalibrationOptions o = options_all(HessianPrecision::kNone);
  auto bert =
      Checkpoint::open(fs::path(QFORGE_SOURCE_DIR) / "tests" / "fixtures" / "tiny-bert").value();
  const auto b = calibrate(bert, TokenBatch{{1, 2, 3}}, o, r);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().summary().find("cannot run a 'bert' model"), std::string::npos)
      << b.error().to_string();

  edit_config(dir_, [](nlohmann::json& c) {
    c["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}};
  });
  auto quantized = open();
  const auto q = calibrate(quantized, kIds, o, r);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().summary().find("unquantized checkpoint"), std::string::npos);
  EXPECT_FALSE(sample_calibration_tokens(quantized, {}, runtime_options()).ok());
  EXPECT_TRUE(r.groups.empty());
}

}  // namespace
}  // namespace qforge::runtime::test
