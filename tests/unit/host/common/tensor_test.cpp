#include "qforge/tensor.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace qforge {
namespace {

TEST(Tensor, ZerosAllocatesZeroFilledContiguousStorage) {
  auto t = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {3, 5});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->numel(), 15);
  EXPECT_EQ(t->nbytes(), 60u);
  EXPECT_EQ(t->dl()->ndim, 2);
  EXPECT_EQ(t->dl()->shape[1], 5);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t->data_as<float>()[i], 0.0f);
}

TEST(Tensor, RejectsNegativeAndOverflowingShapes) {
  EXPECT_FALSE(Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {2, -1}).ok());
  const int64_t big = int64_t{1} << 32;
  auto r = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {big, big});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
}

TEST(Dtype, RoundTripsSafetensorsAndTorchNames) {
  auto bf16 = dtype_from_string("bfloat16");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(dtype_to_string(bf16.value()), "BF16");
  EXPECT_EQ(dtype_size(bf16.value()), 2u);
  auto f8 = dtype_from_string("F8_E4M3");
  ASSERT_TRUE(f8.ok());
  EXPECT_EQ(dtype_to_string(f8.value()), "F8_E4M3");
  EXPECT_FALSE(dtype_from_string("float128").ok());
}

}  // namespace
}  // namespace qforge
