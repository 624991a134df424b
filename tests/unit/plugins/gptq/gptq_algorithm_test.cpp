// The GPTQ algorithm (gptq_algorithm.hpp, AutoGPTQ fasterquant): on correlated synthetic inputs
// its output error on held-out tokens is below round-to-nearest's for every bits / group /
// act-order / static-groups combination; its Unpacked dequantizes (with g_idx) to exactly the
// fake-quantized weight it returns; dead inputs, non-finite and indefinite Hessians.
#include "gptq_algorithm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gptq_rtn.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::gptq {
namespace {

// Tokens X = Z·A (rows are tokens): A mixes the inputs so H = 2/N·XᵀX is far from diagonal, and
// per-input gains make diag(H) uneven so act-order has an order to find.
struct Data {
  int64_t in = 0, out = 0;
  std::vector<float> w;         // [out, in]
  std::vector<double> train;    // [n_train, in]
  std::vector<double> test;     // [n_test, in]
  std::vector<double> hessian;  // [in, in], from train
};

Data make_data(int64_t out, int64_t in, int64_t n_train, int64_t n_test, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Data d;
  d.in = in;
  d.out = out;
  std::vector<double> a(static_cast<size_t>(in * in));
  for (auto& v : a) v = normal(rng) / std::sqrt(static_cast<double>(in));
  std::vector<double> gain(static_cast<size_t>(in));
  for (auto& g : gain) g = std::exp(0.7 * normal(rng));
  auto tokens = [&](int64_t n) {
    std::vector<double> x(static_cast<size_t>(n * in), 0.0);
    std::vector<double> z(static_cast<size_t>(in));
    for (int64_t t = 0; t < n; ++t) {
      for (auto& v : z) v = normal(rng);
      for (int64_t k = 0; k < in; ++k) {
        const double zk = z[static_cast<size_t>(k)];
        for (int64_t i = 0; i < in; ++i) {
          x[static_cast<size_t>(t * in + i)] += zk * a[static_cast<size_t>(k * in + i)];
        }
      }
      for (int64_t i = 0; i < in; ++i)
        x[static_cast<size_t>(t * in + i)] *= gain[static_cast<size_t>(i)];
    }
    return x;
  };
  d.train = tokens(n_train);
  d.test = tokens(n_test);
  d.w.resize(static_cast<size_t>(out * in));
  std::normal_distribution<float> wn(0.0f, 0.05f);
  for (auto& v : d.w) v = wn(rng);
  d.hessian.assign(static_cast<size_t>(in * in), 0.0);
  for (int64_t t = 0; t < n_train; ++t) {
    const double* x = d.train.data() + t * in;
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = 0; j < in; ++j) d.hessian[static_cast<size_t>(i * in + j)] += x[i] * x[j];
    }
  }
  for (auto& v : d.hessian) v *= 2.0 / static_cast<double>(n_train);
  return d;
}

// scale · (code − zero) with g_idx, written independently of the plugin's kernels.
std::vector<float> dequantize(const Unpacked& u) {
  const int64_t in = u.shapes.in, out = u.shapes.out;
  std::vector<float> w(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < in; ++i) {
    const int64_t g = u.g_idx[static_cast<size_t>(i)];
    for (int64_t o = 0; o < out; ++o) {
      const auto gi = static_cast<size_t>(g * out + o);
      w[static_cast<size_t>(o * in + i)] =
          u.scales[gi] *
          static_cast<float>(u.codes[static_cast<size_t>(i * out + o)] - u.zeros[gi]);
    }
  }
  return w;
}

// Gram matrix XᵀX of tokens x [n, in].
std::vector<double> gram(const std::vector<double>& x, int64_t in) {
  const int64_t n = static_cast<int64_t>(x.size()) / in;
  std::vector<double> g(static_cast<size_t>(in * in), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    const double* row = x.data() + t * in;
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = 0; j < in; ++j) g[static_cast<size_t>(i * in + j)] += row[i] * row[j];
    }
  }
  return g;
}

// Σ over the tokens of gram and over outputs of ((W − Ŵ)·x)² = Σ_o δ_oᵀ·XᵀX·δ_o.
double output_error(const Data& d, const std::vector<float>& wq, const std::vector<double>& g) {
  double sum = 0.0;
  std::vector<double> delta(static_cast<size_t>(d.in));
  for (int64_t o = 0; o < d.out; ++o) {
    for (int64_t i = 0; i < d.in; ++i) {
      const auto k = static_cast<size_t>(o * d.in + i);
      delta[static_cast<size_t>(i)] = static_cast<double>(d.w[k]) - static_cast<double>(wq[k]);
    }
    for (int64_t i = 0; i < d.in; ++i) {
      double gi = 0.0;
      for (int64_t j = 0; j < d.in; ++j) {
        gi += g[static_cast<size_t>(i * d.in + j)] * delta[static_cast<size_t>(j)];
      }
      sum += delta[static_cast<size_t>(i)] * gi;
    }
  }
  return sum;
}

GptqConfig make_config(int bits, int64_t group_size, bool desc_act, bool static_groups,
                       bool sym = true, bool act_group_aware = true) {
  GptqConfig c;
  c.bits = bits;
  c.group_size = group_size;
  c.desc_act = desc_act;
  c.act_group_aware = act_group_aware && !desc_act;  // as parse_gptq_config forces it
  c.static_groups = static_groups;
  c.sym = sym;
  c.damp_percent = 0.1;  // transformers' GPTQConfig default (AutoGPTQ's own is 0.01)
  return c;
}

class GptqAlgorithm : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  test::TestHost host_;
  sdk::Call call_{nullptr};
};

TEST_F(GptqAlgorithm, HeldOutOutputErrorIsBelowRoundToNearest) {
  const Data d = make_data(64, 256, 1024, 512, 11);
  const std::vector<double> g_train = gram(d.train, d.in), g_test = gram(d.test, d.in);
  for (int bits : {2, 3, 4, 8}) {
    double worst = 0.0;
    for (int64_t group : {int64_t{128}, int64_t{-1}, int64_t{32}}) {
      for (int order = 0; order < 3; ++order) {  // natural, act_group_aware, desc_act
        const bool desc_act = order == 2, group_aware = order == 1;
        for (bool static_groups : {false, true}) {
          for (bool sym : {true, false}) {
            const GptqConfig c =
                make_config(bits, group, desc_act, static_groups, sym, group_aware);
            const std::string what =
                "bits " + std::to_string(bits) + " group " + std::to_string(group) + " desc_act " +
                std::to_string(desc_act) + " act_group_aware " + std::to_string(group_aware) +
                " static " + std::to_string(static_groups) + " sym " + std::to_string(sym);
            std::vector<float> fake;
            const GptqOutcome g =
                quantize_gptq(call_, d.w.data(), d.out, d.in, d.hessian, c, &fake);
            const std::vector<float> rtn = dequantize(quantize_rtn(d.w.data(), d.out, d.in, c, {}));
            const double e_gptq = output_error(d, dequantize(g.layer), g_test);
            const double e_rtn = output_error(d, rtn, g_test);
            EXPECT_LT(e_gptq, e_rtn) << what << ": held-out error ratio " << e_gptq / e_rtn;
            worst = std::max(worst, e_gptq / e_rtn);
            // The training-set error GPTQ minimizes is below RTN's by a clear margin.
            EXPECT_LT(output_error(d, fake, g_train), 0.9 * output_error(d, rtn, g_train)) << what;
          }
        }
      }
    }
    std::cout << "  " << bits << " bits: worst held-out GPTQ/RTN output error ratio " << worst
              << "\n";
  }
}

TEST_F(GptqAlgorithm, UnpackedDequantizesToTheFakeQuantizedWeightBitForBit) {
  const Data d = make_data(32, 128, 512, 1, 12);
  for (int bits : {3, 4}) {
    for (int64_t group : {int64_t{32}, int64_t{-1}, int64_t{64}}) {
      for (bool desc_act : {false, true}) {
        for (bool static_groups : {false, true}) {
          for (const char* format : {"gptq", "gptq_v2"}) {
            GptqConfig c = make_config(bits, group, desc_act, static_groups, /*sym=*/false);
            c.checkpoint_format = format;
            std::vector<float> fake;
            const GptqOutcome g =
                quantize_gptq(call_, d.w.data(), d.out, d.in, d.hessian, c, &fake);
            const std::vector<float> deq = dequantize(g.layer);
            ASSERT_EQ(deq.size(), fake.size());
            for (size_t k = 0; k < fake.size(); ++k) {
              ASSERT_EQ(deq[k], fake[k])
                  << "bits " << bits << " group " << group << " desc_act " << desc_act << " static "
                  << static_groups << " " << format << " at [" << k / 128 << ", " << k % 128 << "]";
            }
            for (int32_t z : g.layer.zeros) {
              ASSERT_GE(z, c.v2() ? 0 : 1);  // v1 cannot store zero 0 (write_checkpoint refuses)
              ASSERT_LE(z, c.maxq());
            }
          }
        }
      }
    }
  }
}

TEST_F(GptqAlgorithm, ActOrderGidxIsTheRankByDecreasingHessianDiagonal) {
  const Data d = make_data(32, 128, 512, 1, 13);
  std::vector<int64_t> order(128);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return d.hessian[static_cast<size_t>(a * 128 + a)] >
           d.hessian[static_cast<size_t>(b * 128 + b)];
  });
  ASSERT_FALSE(std::is_sorted(order.begin(), order.end())) << "the data must need a permutation";
  const GptqOutcome g =
      quantize_gptq(call_, d.w.data(), 32, 128, d.hessian, make_config(4, 32, true, false));
  std::vector<int> per_group(4, 0);
  for (int64_t j = 0; j < 128; ++j) {
    const int32_t gi = g.layer.g_idx[static_cast<size_t>(order[static_cast<size_t>(j)])];
    EXPECT_EQ(gi, j / 32) << "rank " << j;
    ASSERT_GE(gi, 0);
    ASSERT_LT(gi, 4);
    ++per_group[static_cast<size_t>(gi)];
  }
  for (int n : per_group) EXPECT_EQ(n, 32);
  // Static groups keep the natural groups even with act-order (AutoGPTQ's perm[i] // group_size,
  // un-permuted).
  const GptqOutcome s =
      quantize_gptq(call_, d.w.data(), 32, 128, d.hessian, make_config(4, 32, true, true));
  for (int64_t i = 0; i < 128; ++i) EXPECT_EQ(s.layer.g_idx[static_cast<size_t>(i)], i / 32);
}

TEST_F(GptqAlgorithm, ActGroupAwareVisitsGroupsOutOfOrderButKeepsThem) {
  const Data d = make_data(32, 128, 512, 1, 19);
  std::vector<float> fake_gar, fake_plain;
  const GptqOutcome gar = quantize_gptq(call_, d.w.data(), 32, 128, d.hessian,
                                        make_config(4, 32, false, false, true, true), &fake_gar);
  const GptqOutcome plain =
      quantize_gptq(call_, d.w.data(), 32, 128, d.hessian,
                    make_config(4, 32, false, false, true, false), &fake_plain);
  // The checkpoint is an ordinary desc_act=false one: natural groups, g_idx = i // group_size.
  for (int64_t i = 0; i < 128; ++i) EXPECT_EQ(gar.layer.g_idx[static_cast<size_t>(i)], i / 32);
  EXPECT_EQ(gar.layer.g_idx, plain.layer.g_idx);
  EXPECT_EQ(dequantize(gar.layer), fake_gar);
  // ... yet the visiting order changed the result (the data's diag(H) is not sorted).
  EXPECT_NE(gar.layer.codes, plain.layer.codes);
  // A short last group (80 = 32 + 32 + 16) is visited like the others and keeps its columns.
  const Data odd = make_data(16, 80, 512, 1, 20);
  std::vector<float> fake_odd;
  const GptqOutcome odd_gar =
      quantize_gptq(call_, odd.w.data(), 16, 80, odd.hessian,
                    make_config(4, 32, false, false, false, true), &fake_odd);
  for (int64_t i = 0; i < 80; ++i) EXPECT_EQ(odd_gar.layer.g_idx[static_cast<size_t>(i)], i / 32);
  EXPECT_EQ(dequantize(odd_gar.layer), fake_odd);
  const GptqOutcome odd_plain = quantize_gptq(call_, odd.w.data(), 16, 80, odd.hessian,
                                              make_config(4, 32, false, false, false, false));
  EXPECT_NE(odd_gar.layer.codes, odd_plain.layer.codes);
}

TEST_F(GptqAlgorithm, DiagonalHessianGivesRoundToNearest) {
  // With H diagonal Hinv is diagonal: no error reaches another column, so GPTQ is RTN exactly.
  const Data d = make_data(32, 128, 8, 1, 14);
  std::vector<double> h(128 * 128, 0.0);
  for (int64_t i = 0; i < 128; ++i)
    h[static_cast<size_t>(i * 129)] = 1.0 + 0.01 * static_cast<double>(i % 7);
  for (int64_t group : {int64_t{32}, int64_t{-1}}) {
    const GptqConfig c = make_config(4, group, false, false, false);
    const GptqOutcome g = quantize_gptq(call_, d.w.data(), 32, 128, h, c);
    const Unpacked r = quantize_rtn(d.w.data(), 32, 128, c, {});
    EXPECT_EQ(g.layer.codes, r.codes);
    EXPECT_EQ(g.layer.zeros, r.zeros);
    EXPECT_EQ(g.layer.scales, r.scales);
    EXPECT_EQ(g.layer.g_idx, r.g_idx);
  }
}

TEST_F(GptqAlgorithm, ResultDoesNotDependOnTheThreadSplit) {
  const Data d = make_data(200, 128, 512, 1, 15);  // 200 rows: slabs of 64 and a ragged end
  const GptqConfig c = make_config(4, 32, true, false, false);
  std::vector<float> serial, threaded;
  const GptqOutcome a = quantize_gptq(call_, d.w.data(), 200, 128, d.hessian, c, &serial);
  host_.set_threads(3);
  const GptqOutcome b = quantize_gptq(call_, d.w.data(), 200, 128, d.hessian, c, &threaded);
  EXPECT_EQ(a.layer.codes, b.layer.codes);
  EXPECT_EQ(a.layer.scales, b.layer.scales);
  EXPECT_EQ(a.layer.zeros, b.layer.zeros);
  EXPECT_EQ(serial, threaded);
}

TEST_F(GptqAlgorithm, DeadInputsAreZeroed) {
  Data d = make_data(32, 128, 512, 1, 16);
  const std::vector<int64_t> dead = {0, 17, 64, 127};
  for (int64_t i : dead) {
    for (int64_t k = 0; k < 128; ++k) {
      d.hessian[static_cast<size_t>(i * 128 + k)] = 0.0;
      d.hessian[static_cast<size_t>(k * 128 + i)] = 0.0;
    }
  }
  for (bool desc_act : {false, true}) {
    std::vector<float> fake;
    const GptqOutcome g = quantize_gptq(call_, d.w.data(), 32, 128, d.hessian,
                                        make_config(4, 32, desc_act, false), &fake);
    EXPECT_EQ(g.dead_columns, 4);
    for (int64_t o = 0; o < 32; ++o) {
      for (int64_t i : dead) EXPECT_EQ(fake[static_cast<size_t>(o * 128 + i)], 0.0f);
    }
    for (float v : fake) ASSERT_TRUE(std::isfinite(v));
    EXPECT_EQ(dequantize(g.layer), fake);
  }
}

TEST_F(GptqAlgorithm, IndefiniteHessianGetsItsOwnError) {
  const Data d = make_data(32, 64, 256, 1, 17);
  std::vector<double> h = d.hessian;
  h[5 * 64 + 5] = -50.0;  // a negative variance: no Cholesky factor exists
  try {
    quantize_gptq(call_, d.w.data(), 32, 64, h, make_config(4, 32, false, false));
    FAIL() << "expected an error";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_FAILED_PRECONDITION);
    EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.fix()).find("damp_percent"), std::string::npos) << e.fix();
  }
}

TEST_F(GptqAlgorithm, NonFiniteHessianOrWeightIsRejected) {
  const Data d = make_data(32, 64, 256, 1, 18);
  std::vector<double> h = d.hessian;
  h[3 * 64 + 9] = std::nan("");
  try {
    quantize_gptq(call_, d.w.data(), 32, 64, h, make_config(4, 32, false, false));
    FAIL() << "expected an error";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("hessian has a non-finite value (NaN) at [3, 9]"),
              std::string::npos)
        << e.what();
  }
  std::vector<float> w = d.w;
  w[70] = INFINITY;
  try {
    quantize_gptq(call_, w.data(), 32, 64, d.hessian, make_config(4, 32, false, false));
    FAIL() << "expected an error";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight has a non-finite value (Inf) at [1, 6]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qforge::plugins::gptq
