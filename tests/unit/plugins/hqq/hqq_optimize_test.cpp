// hqq's min/max init and proximal zero-point solver: it beats plain min/max rounding for every
// width, stops at the first step that does not improve, and flat groups stay finite.
#include "hqq_optimize.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "hqq_config.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::hqq {
namespace {

std::vector<float> seeded_weights(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& v : w) v = normal(rng);
  return w;
}

class HqqOptimize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  test::TestHost host_;
  sdk::Call call_{nullptr};
};

TEST_F(HqqOptimize, BeatsPlainMinMaxRoundingForEveryWidth) {
  const int64_t groups = 512, g = 64;
  for (double nbits : {8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.58, 1.0}) {
    const int max_v = max_code(nbits);
    const auto w = seeded_weights(groups * g, 11);
    std::vector<float> scale(groups), zero(groups), plain_zero(groups);
    init_scale_zero(w.data(), groups, g, max_v, nbits == 4, scale.data(), zero.data());
    plain_zero = zero;
    std::vector<uint8_t> plain(w.size()), tuned(w.size());
    quantize_codes(call_, w.data(), groups, g, max_v, scale.data(), plain_zero.data(),
                   plain.data());
    const double before =
        mean_abs_error(w.data(), groups, g, plain.data(), scale.data(), plain_zero.data());
    const ProximalTrace trace =
        optimize_zero(call_, w.data(), groups, g, max_v, scale.data(), zero.data());
    quantize_codes(call_, w.data(), groups, g, max_v, scale.data(), zero.data(), tuned.data());
    const double after =
        mean_abs_error(w.data(), groups, g, tuned.data(), scale.data(), zero.data());
    EXPECT_LT(after, before) << "nbits " << nbits;
    // The first step measures the min/max quantization itself.
    ASSERT_FALSE(trace.errors.empty());
    EXPECT_NEAR(trace.errors[0], before, before * 1e-5) << "nbits " << nbits;
    RecordProperty("mae_nbits_" + std::to_string(static_cast<int>(nbits * 100)),
                   std::to_string(before) + " -> " + std::to_string(after));
  }
}

TEST_F(HqqOptimize, StopsAtTheFirstStepThatDoesNotImprove) {
  const int64_t groups = 256, g = 64;
  const auto w = seeded_weights(groups * g, 3);
  bool stopped_early = false;
  for (double nbits : {4.0, 3.0, 2.0}) {
    const int max_v = max_code(nbits);
    std::vector<float> scale(groups), zero(groups);
    init_scale_zero(w.data(), groups, g, max_v, nbits == 4, scale.data(), zero.data());
    const ProximalTrace t =
        optimize_zero(call_, w.data(), groups, g, max_v, scale.data(), zero.data());
    ASSERT_EQ(static_cast<int>(t.errors.size()), t.iterations);
    ASSERT_LE(t.iterations, 20);
    for (int i = 1; i + 1 < t.iterations; ++i) EXPECT_LT(t.errors[i], t.errors[i - 1]);
    if (t.iterations < 20) {
      stopped_early = true;
      const int last = t.iterations - 1;
      EXPECT_GE(t.errors[last], t.errors[last - 1]) << "nbits " << nbits;
    }
  }
  EXPECT_TRUE(stopped_early) << "no width stopped before 20 steps on this data";
}

TEST_F(HqqOptimize, FlatGroupsGetFiniteScales) {
  const int64_t g = 16;
  std::vector<float> w(static_cast<size_t>(3 * g), 0.25f);  // group 0: max == min
  for (int64_t k = 0; k < g; ++k) w[static_cast<size_t>(g + k)] = 0.1f + 5e-6f * k;     // < 1e-4
  for (int64_t k = 0; k < g; ++k) w[static_cast<size_t>(2 * g + k)] = 1e-3f * (k % 2);  // 2e4 cap
  std::vector<float> scale(3), zero(3);
  init_scale_zero(w.data(), 3, g, 255, false, scale.data(), zero.data());
  EXPECT_EQ(scale[0], 1.0f);
  EXPECT_EQ(scale[1], 1.0f);
  EXPECT_EQ(scale[2], 2e4f);  // 255 / 1e-3 = 255000, clamped
  (void)optimize_zero(call_, w.data(), 3, g, 255, scale.data(), zero.data());
  for (int j = 0; j < 3; ++j) {
    EXPECT_TRUE(std::isfinite(scale[j]));
    EXPECT_TRUE(std::isfinite(zero[j]));
    EXPECT_TRUE(std::isfinite(1.0f / scale[j]));
  }
}

TEST_F(HqqOptimize, RoundZeroRoundsTheZeroPoint) {
  // W in [-1/6, 1/2]: scale = 15 / (2/3) = 22.5, zero = 22.5 / 6 = 3.75; round_zero gives 4.
  std::vector<float> w = {-1.0f / 6.0f, 0.5f, 0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.0f};
  std::vector<float> scale(1), zero(1);
  init_scale_zero(w.data(), 1, 8, 15, true, scale.data(), zero.data());
  EXPECT_EQ(zero[0], 4.0f);
  init_scale_zero(w.data(), 1, 8, 15, false, scale.data(), zero.data());
  EXPECT_NEAR(zero[0], 3.75f, 1e-5f);
}

}  // namespace
}  // namespace qforge::plugins::hqq
