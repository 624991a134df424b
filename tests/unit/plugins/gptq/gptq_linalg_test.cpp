// Cholesky and the upper Cholesky factor of the inverse (gptq_linalg.hpp) against their
// definitions: L·Lᵀ = A, Uᵀ·U·H = I with U upper and a positive diagonal.
#include "gptq_linalg.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::gptq {
namespace {

std::vector<double> random_spd(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> b(static_cast<size_t>(n * 2 * n));
  for (auto& v : b) v = normal(rng);
  std::vector<double> a(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < 2 * n; ++k)
        s += b[static_cast<size_t>(i * 2 * n + k)] * b[static_cast<size_t>(j * 2 * n + k)];
      a[static_cast<size_t>(i * n + j)] = s / static_cast<double>(n) + (i == j ? 0.1 : 0.0);
    }
  }
  return a;
}

TEST(GptqLinalg, CholeskyReproducesTheMatrix) {
  const int64_t n = 37;
  const std::vector<double> a = random_spd(n, 1);
  std::vector<double> l = a;
  ASSERT_EQ(cholesky_lower_in_place(l.data(), n), -1);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_GT(l[static_cast<size_t>(i * n + i)], 0.0);
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k <= j; ++k)
        s += l[static_cast<size_t>(i * n + k)] * l[static_cast<size_t>(j * n + k)];
      EXPECT_NEAR(s, a[static_cast<size_t>(i * n + j)], 1e-10) << i << ", " << j;
    }
  }
}

TEST(GptqLinalg, CholeskyReportsTheFailingPivot) {
  std::vector<double> a = {4, 0, 0, 2, 2, 0, 0, 0, -1};  // [[4, 2, 0], [2, 2, 0], [0, 0, -1]]
  EXPECT_EQ(cholesky_lower_in_place(a.data(), 3), 2);
}

TEST(GptqLinalg, UpperCholeskyOfTheInverse) {
  test::TestHost host;
  sdk::g_host = host.api();
  host.set_threads(2);
  const int64_t n = 150;
  const std::vector<double> h = random_spd(n, 2);
  std::vector<double> consumed = h;
  std::vector<float> ut;  // ut[j*n + i] = U[i][j]
  ASSERT_EQ(upper_cholesky_of_inverse(sdk::Call(nullptr), consumed, n, ut), -1);
  auto u = [&](int64_t i, int64_t j) {
    return static_cast<double>(ut[static_cast<size_t>(j * n + i)]);
  };
  for (int64_t j = 0; j < n; ++j) {
    ASSERT_GT(u(j, j), 0.0);
    for (int64_t i = j + 1; i < n; ++i) ASSERT_EQ(u(i, j), 0.0) << "U must be upper triangular";
  }
  // (Uᵀ U) H = I, to float32 accuracy.
  double worst = 0.0;
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b < n; ++b) {
      double s = 0.0;
      for (int64_t m = 0; m < n; ++m) {
        double hinv_am = 0.0;  // (UᵀU)[a][m] = Σ_k U[k][a]·U[k][m]
        for (int64_t k = 0; k <= std::min(a, m); ++k) hinv_am += u(k, a) * u(k, m);
        s += hinv_am * h[static_cast<size_t>(m * n + b)];
      }
      worst = std::max(worst, std::fabs(s - (a == b ? 1.0 : 0.0)));
    }
  }
  EXPECT_LT(worst, 1e-3);
}

TEST(GptqLinalg, UpperCholeskyOfTheInverseReportsIndefiniteInput) {
  const int64_t n = 8;
  std::vector<double> h = random_spd(n, 3);
  h[3 * n + 3] = -1.0;
  std::vector<float> ut;
  const int64_t failed = upper_cholesky_of_inverse(sdk::Call(nullptr), h, n, ut);
  EXPECT_GE(failed, 0);
  EXPECT_LT(failed, n);
}

}  // namespace
}  // namespace qforge::plugins::gptq
