// The output-quality figures of qforge verify on hand-computed values.
#include "verify/figures.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace qforge::verify {
namespace {

runtime::Activations activations(int64_t b, int64_t t, int64_t w, std::vector<float> data) {
  runtime::Activations a;
  a.batch = b;
  a.seq = t;
  a.width = w;
  a.data = std::move(data);
  return a;
}

TEST(VerifyFigures, CosineOfParallelOrthogonalAndDiagonalVectors) {
  const float a[] = {1, 2, 3}, b[] = {2, 4, 6}, c[] = {-1, -2, -3};
  EXPECT_NEAR(cosine_similarity(a, b, 3), 1.0, 1e-12);
  EXPECT_NEAR(cosine_similarity(a, c, 3), -1.0, 1e-12);
  const float x[] = {1, 0}, y[] = {0, 1}, d[] = {1, 1};
  EXPECT_NEAR(cosine_similarity(x, y, 2), 0.0, 1e-12);
  EXPECT_NEAR(cosine_similarity(x, d, 2), 1.0 / std::sqrt(2.0), 1e-12);
  const float z[] = {0, 0};
  EXPECT_EQ(cosine_similarity(z, z, 2), 1.0);
  EXPECT_EQ(cosine_similarity(z, x, 2), 0.0);
}

TEST(VerifyFigures, KlDivergenceOfKnownDistributions) {
  // p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
  const float p[] = {0, 0}, q[] = {static_cast<float>(std::log(3.0)), 0};
  EXPECT_NEAR(kl_divergence(p, q, 2), 0.14384103622589042, 1e-7);
  // Logits shifted by a constant are the same distribution, at any magnitude.
  const float big[] = {1000, 0, -5}, shifted[] = {1010, 10, 5};
  EXPECT_NEAR(kl_divergence(big, shifted, 3), 0.0, 1e-9);
  EXPECT_TRUE(std::isfinite(kl_divergence(big, p, 2)));
  EXPECT_GE(kl_divergence(p, q, 2), 0.0);
  // Not symmetric: KL(q || p) = 3/4 ln(3/2) + 1/4 ln(1/2).
  EXPECT_NEAR(kl_divergence(q, p, 2), 0.75 * std::log(1.5) + 0.25 * std::log(0.5), 1e-7);
}

TEST(VerifyFigures, ArgmaxTakesTheFirstOfEqualMaxima) {
  const float v[] = {1, 3, 3, -2};
  EXPECT_EQ(argmax(v, 4), 1u);
  const float w[] = {-1, -0.5f};
  EXPECT_EQ(argmax(w, 2), 1u);
}

TEST(VerifyFigures, NegativeLogLikelihoodOfUniformLogits) {
  const float u[] = {7, 7, 7, 7};
  EXPECT_NEAR(negative_log_likelihood(u, 4, 2), std::log(4.0), 1e-12);
}

TEST(VerifyFigures, CompareLogitsGivesCosineKlTop1AndPerplexityDelta) {
  // One sequence of ids [0, 1], vocab 2.
  // position 0: ORIG (2, 2) -> p = (1/2, 1/2); QUANT (2 + ln 3, 2) -> q = (3/4, 1/4).
  // position 1: ORIG (1, 0), QUANT (0, 1).
  const float ln3 = static_cast<float>(std::log(3.0));
  const auto orig = activations(1, 2, 2, {2, 2, 1, 0});
  const auto quant = activations(1, 2, 2, {2 + ln3, 2, 0, 1});
  auto f = compare_logits(orig, quant, {{0, 1}});
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f.value().positions, 2);
  EXPECT_EQ(f.value().predicted, 1);
  // cos(position 0) = 0.97756..., cos(position 1) = 0.
  EXPECT_NEAR(f.value().mean_cosine, 0.48878201625179757, 1e-6);
  // KL(position 1) = (e - 1) / (e + 1) (the log ratio of the two classes is 1 and -1).
  EXPECT_NEAR(f.value().mean_kl, 0.3029790967429501, 1e-6);
  // Position 0: both argmax 0 (ORIG ties -> first); position 1: 0 vs 1.
  EXPECT_DOUBLE_EQ(f.value().top1, 0.5);
  // Position 0 predicts id 1: ORIG p = 1/2 -> ppl 2; QUANT q = 1/4 -> ppl 4; delta +100%.
  EXPECT_NEAR(f.value().ppl_original, 2.0, 1e-6);
  EXPECT_NEAR(f.value().ppl_quantized, 4.0, 1e-6);
  EXPECT_NEAR(f.value().ppl_delta, 1.0, 1e-6);
}

TEST(VerifyFigures, IdenticalLogitsAgreeFully) {
  const auto a = activations(
      2, 3, 4, {1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1, 0, 5, 1, 1, 1, 1, 5, 1, 1, 2, 2, 2, 9});
  auto f = compare_logits(a, a, {{0, 1, 2}, {3, 2, 1}});
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f.value().mean_cosine, 1.0, 1e-12);
  EXPECT_NEAR(f.value().mean_kl, 0.0, 1e-12);
  EXPECT_EQ(f.value().top1, 1.0);
  EXPECT_NEAR(f.value().ppl_delta, 0.0, 1e-12);
  EXPECT_EQ(f.value().predicted, 4);
}

TEST(VerifyFigures, CompareLogitsRefusesMismatchedShapesAndIdsOutsideTheVocabulary) {
  const auto a = activations(1, 2, 2, {0, 0, 0, 0});
  const auto b = activations(1, 1, 2, {0, 0});
  EXPECT_FALSE(compare_logits(a, b, {{0, 1}}).ok());
  EXPECT_FALSE(compare_logits(a, a, {{0}}).ok());
  auto out_of_range = compare_logits(a, a, {{0, 7}});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_EQ(out_of_range.error().exit_code(), ExitCode::kBadInput);
  auto malformed = activations(1, 2, 2, {0, 0, 0});
  EXPECT_FALSE(compare_logits(malformed, malformed, {{0, 1}}).ok());
}

TEST(VerifyFigures, MeanRowCosineOfPooledEmbeddings) {
  const auto a = activations(2, 1, 2, {1, 0, 1, 1});
  const auto b = activations(2, 1, 2, {0, 1, 2, 2});
  auto c = mean_row_cosine(a, b);
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(c.value(), 0.5, 1e-12);  // (0 + 1) / 2
}

TEST(VerifyFigures, GenerationAgreementIsTheCommonPrefix) {
  EXPECT_DOUBLE_EQ(prefix_agreement({1, 2, 3, 4}, {1, 2, 3, 4}, 4), 1.0);
  // Diverging at the third token: later coincidences do not count.
  EXPECT_DOUBLE_EQ(prefix_agreement({1, 2, 9, 4}, {1, 2, 3, 4}, 4), 0.5);
  EXPECT_DOUBLE_EQ(prefix_agreement({5}, {1, 2}, 4), 0.0);
  // A continuation that stopped early agrees only as far as it goes.
  EXPECT_DOUBLE_EQ(prefix_agreement({1, 2}, {1, 2, 3, 4}, 4), 0.5);
}

TEST(VerifyFigures, RelativeErrorIsTheFrobeniusRatio) {
  // ||(3, 4)|| = 5; difference (0, 4) -> 4 / 5.
  EXPECT_NEAR(relative_error({3, 4}, {3, 0}), 0.8, 1e-12);
  EXPECT_EQ(relative_error({1, 2}, {1, 2}), 0.0);
  EXPECT_NEAR(relative_error({1, -1}, {0, 0}), 1.0, 1e-12);  // all scales zeroed
  EXPECT_EQ(relative_error({0, 0}, {0, 0}), 0.0);
  EXPECT_TRUE(std::isinf(relative_error({0, 0}, {1, 0})));
}

TEST(VerifyFigures, ToFloat32ReadsBf16AndF16) {
  const uint16_t bf16[] = {0x3F80, 0xC000, 0x0000};  // 1, -2, 0
  auto a = to_float32(TensorView(DLDataType{kDLBfloat, 16, 1}, {3}, bf16), "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value(), (std::vector<float>{1.0f, -2.0f, 0.0f}));
  const uint16_t f16[] = {0x3C00, 0xB800, 0x0001};  // 1, -0.5, 2^-24
  auto b = to_float32(TensorView(DLDataType{kDLFloat, 16, 1}, {3}, f16), "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value()[0], 1.0f);
  EXPECT_EQ(b.value()[1], -0.5f);
  EXPECT_EQ(b.value()[2], std::ldexp(1.0f, -24));
  const uint8_t u8[] = {1};
  EXPECT_FALSE(to_float32(TensorView(DLDataType{kDLUInt, 8, 1}, {1}, u8), "c").ok());
}

TEST(VerifyFigures, DefaultInputsAreSeededAndInTheVocabulary) {
  const auto a = default_token_batch(50, 3, 40);
  const auto b = default_token_batch(50, 3, 40);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 3u);
  for (const auto& s : a) {
    ASSERT_EQ(s.size(), 40u);
    for (int64_t id : s) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 50);
    }
  }
  EXPECT_NE(a[0], a[1]);
  EXPECT_NE(default_token_batch(50, 1, 40, 1), default_token_batch(50, 1, 40, 2));
}

}  // namespace
}  // namespace qforge::verify
