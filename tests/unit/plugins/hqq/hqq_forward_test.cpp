// The few-token forward (weight rows decoded group by group, no dense layer) against the
// many-token one (dequantize once, blocked GEMM) and against x @ dequantize().T in double, for
// widths with and without a per-group table, groups that straddle weight rows, both dtypes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "hqq_compute.hpp"
#include "hqq_quantizer.hpp"
#include "hqq_tensor_io.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::hqq {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

void fill_normal(HostTensor& t, unsigned seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (auto& x : v) x = normal(rng);
  write_floats(v.data(), t.numel(), float_kind(t.get().dtype, "t"), t.data<unsigned char>());
}

class HqqForward : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  TestHost host_;
};

TEST_F(HqqForward, FewTokenPathEqualsDequantizeThenMatmul) {
  struct Case {
    const char* cfg;
    int64_t out, in;
    DLDataType dtype;
  };
  const Case cases[] = {
      {R"({"nbits":4,"group_size":64})", 40, 128, test::bf16()},  // table path
      {R"({"nbits":4,"group_size":32})", 64, 48, f32()},          // groups straddle rows
      {R"({"nbits":8,"group_size":64})", 24, 192, test::bf16()},  // g < 256 levels: no table
      {R"({"nbits":3,"group_size":16})", 30, 80, test::f16()},    // 3bit_32 packing
      {R"({"nbits":2,"group_size":8})", 16, 36, f32()},           // 2-bit, straddling
      {R"({"nbits":1,"group_size":8})", 32, 64, f32()},
  };
  for (const Case& c : cases) {
    HqqQuantizer q(c.cfg);
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, c.out, c.in, true, c.dtype);
    HostTensor w(c.dtype, {c.out, c.in});
    fill_normal(w, 7, 0.02f);
    TensorSink sink(host_);
    {
      sdk::TensorSink handle(sink.get());
      q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle);
    }
    TensorList list;
    for (const auto& [name, t] : sink.tensors()) {
      const DLTensor& d = t->get();
      HostTensor& copy = list.add(name, d.dtype, {d.shape, d.shape + d.ndim});
      std::memcpy(copy.data<unsigned char>(), d.data,
                  static_cast<size_t>(sdk::numel(d)) * ((d.dtype.bits + 7) / 8));
    }
    const std::vector<float> deq = dense_weight(sdk::Call(nullptr), m.get(), list.get());
    HostTensor b(f32(), {c.out});
    fill_normal(b, 9, 0.1f);
    // Enough tokens for the many-token path; its first rows are fed to the few-token one.
    const int64_t many = kFusedForwardTokens + 1;
    HostTensor x(f32(), {many, c.in});
    fill_normal(x, 8, 1.0f);
    HostTensor y_many(f32(), {many, c.out});
    q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), &b.get(), y_many.get());
    for (int64_t tokens : {int64_t{1}, int64_t{3}, kFusedForwardTokens - 1}) {
      HostTensor xf(f32(), {tokens, c.in});
      std::memcpy(xf.data<float>(), x.data<float>(),
                  static_cast<size_t>(tokens * c.in) * sizeof(float));
      HostTensor yf(f32(), {tokens, c.out});
      q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), xf.get(), &b.get(), yf.get());
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t o = 0; o < c.out; ++o) {
          double exact = b.data<float>()[o], mag = std::fabs(exact);
          for (int64_t i = 0; i < c.in; ++i) {
            const double p = static_cast<double>(xf.data<float>()[t * c.in + i]) *
                             deq[static_cast<size_t>(o * c.in + i)];
            exact += p;
            mag += std::fabs(p);
          }
          // Float sums of `in` products, different orders: a few ulp of the magnitude.
          const double tol = 1e-6 * mag + 1e-7;
          const float got = yf.data<float>()[t * c.out + o];
          EXPECT_NEAR(got, exact, tol) << c.cfg << " tokens " << tokens << " o " << o;
          EXPECT_NEAR(got, y_many.data<float>()[t * c.out + o], 2 * tol)
              << c.cfg << " tokens " << tokens << " o " << o;
        }
      }
    }
  }
}

}  // namespace
}  // namespace qforge::plugins::hqq
