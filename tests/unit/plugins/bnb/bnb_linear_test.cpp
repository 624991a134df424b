// bnb 4-bit linear_forward (GEMV and GEMM) against a dense float64 reference, and every
// vector kernel this CPU runs against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "bnb_quantizer.hpp"
#include "cpu/kernels.hpp"
#include "unit/plugins/bnb/bnb_compute_util.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"

namespace qforge::plugins::bnb {
namespace {

using qforge::test::bf16;
using qforge::test::f16;
using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

// A quantized layer plus its dequantized weight, for reference products.
struct Layer {
  Layer(TestHost& host, const std::string& config, int64_t out, int64_t in, int32_t kind,
        std::vector<float> values)
      : quantizer(config), module("fc", kind, out, in, true, f32()) {
    const bool conv1d = kind == QF_MODULE_CONV1D;
    HostTensor w(f32(), conv1d ? std::vector<int64_t>{in, out} : std::vector<int64_t>{out, in});
    test::fill_f32(w, values);
    TensorSink sink(host);
    sdk::TensorSink handle(sink.get());
    quantizer.quantize(sdk::Call(nullptr), module.get(), w.get(), nullptr, nullptr, handle);
    test::copy_outputs(sink, tensors);
    TensorSink dense_sink(host);
    sdk::TensorSink dense_handle(dense_sink.get());
    quantizer.dequantize(sdk::Call(nullptr), module.get(), tensors.get(), dense_handle);
    const auto d = test::floats_of(*dense_sink.find("weight"));
    dense.resize(d.size());
    for (int64_t r = 0; r < out; ++r) {  // dense is [out, in] whatever the module kind
      for (int64_t k = 0; k < in; ++k) {
        dense[static_cast<size_t>(r * in + k)] =
            conv1d ? d[static_cast<size_t>(k * out + r)] : d[static_cast<size_t>(r * in + k)];
      }
    }
  }
  Bnb4BitQuantizer quantizer;
  Module module;
  TensorList tensors;
  std::vector<float> dense;
};

// y = x @ W^T + b in float64 from the dequantized weight; also sum |w x| per output, the
// scale float32 rounding error grows with.
std::vector<double> reference(const Layer& l, const std::vector<float>& x, int64_t rows,
                              const std::vector<float>& bias, std::vector<double>* magnitude) {
  const int64_t out = l.module.get().out_features, in = l.module.get().in_features;
  std::vector<double> y(static_cast<size_t>(rows * out));
  magnitude->assign(y.size(), 0.0);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t r = 0; r < out; ++r) {
      double acc = bias[static_cast<size_t>(r)], mag = std::fabs(acc);
      for (int64_t k = 0; k < in; ++k) {
        const double p = static_cast<double>(l.dense[static_cast<size_t>(r * in + k)]) *
                         x[static_cast<size_t>(m * in + k)];
        acc += p;
        mag += std::fabs(p);
      }
      y[static_cast<size_t>(m * out + r)] = acc;
      (*magnitude)[static_cast<size_t>(m * out + r)] = mag;
    }
  }
  return y;
}

// Runs linear_forward with float32 x [rows, in], bias, returns y.
std::vector<float> forward(TestHost& host, Layer& l, const std::vector<float>& x, int64_t rows,
                           const std::vector<float>& bias) {
  (void)host;
  const int64_t out = l.module.get().out_features, in = l.module.get().in_features;
  HostTensor xt(f32(), {rows, in});
  test::fill_f32(xt, x);
  HostTensor bt(f32(), {out});
  test::fill_f32(bt, bias);
  HostTensor yt(f32(), {rows, out});
  l.quantizer.linear_forward(sdk::Call(nullptr), l.module.get(), l.tensors.get(), xt.get(),
                             &bt.get(), yt.get());
  return test::floats_of(yt);
}

std::vector<const char*> available_isas() {
  std::vector<const char*> out;
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
    if (cpu::isa_supported(isa)) out.push_back(cpu::isa_name(isa));
  }
  return out;
}

class BnbLinear : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  TestHost host_;
};

TEST_F(BnbLinear, MatchesTheDenseReferenceForGemvAndGemmOnEveryKernel) {
  struct Case {
    const char* type;
    bool dq;
    int64_t out, in, rows;
    int32_t kind;
  };
  const Case cases[] = {
      {"nf4", false, 96, 256, 1, QF_MODULE_LINEAR}, {"nf4", true, 96, 256, 7, QF_MODULE_LINEAR},
      {"fp4", false, 40, 512, 1, QF_MODULE_LINEAR}, {"fp4", true, 40, 512, 16, QF_MODULE_LINEAR},
      {"nf4", false, 33, 200, 3, QF_MODULE_LINEAR},  // in % 64 != 0: blocks straddle rows
      {"nf4", true, 9, 192, 1, QF_MODULE_LINEAR},    // GEMV with in % 128 == 64
      {"fp4", false, 5, 128, 1, QF_MODULE_CONV1D},   // GEMV, one dword chunk, row remainder
      {"nf4", false, 20, 128, 5, QF_MODULE_CONV1D}, {"fp4", true, 7, 35, 2, QF_MODULE_LINEAR},
  };
  for (const Case& c : cases) {
    Layer layer(host_, test::config_4bit(c.type, c.dq), c.out, c.in, c.kind,
                test::normal_values(c.out * c.in, 31));
    const auto x = test::normal_values(c.rows * c.in, 37);
    const auto bias = test::normal_values(c.out, 41);
    std::vector<double> mag;
    const auto ref = reference(layer, x, c.rows, bias, &mag);
    std::vector<float> scalar;
    for (const char* isa : available_isas()) {
      test::ScopedKernel kernel(isa);
      const auto y = forward(host_, layer, x, c.rows, bias);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6)
            << isa << " " << c.type << " rows " << c.rows << " [" << c.out << ", " << c.in
            << "] at " << i;
      }
      if (std::string(isa) == "scalar") {
        scalar = y;
      } else {
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_NEAR(y[i], scalar[i], 1e-5 * mag[i]) << isa << " vs scalar at " << i;
        }
      }
    }
  }
}

TEST_F(BnbLinear, AnIdentityMatrixReproducesTheInputExactly) {
  // absmax is 1 in every block and the codes are exactly +1 and 0, so nothing rounds (Q10).
  const int64_t dim = 256;
  std::vector<float> eye(static_cast<size_t>(dim * dim), 0.0f);
  for (int64_t i = 0; i < dim; ++i) eye[static_cast<size_t>(i * dim + i)] = 1.0f;
  for (const char* type : {"nf4", "fp4"}) {
    for (bool dq : {false, true}) {
      Layer layer(host_, test::config_4bit(type, dq), dim, dim, QF_MODULE_LINEAR, eye);
      for (int64_t rows : {1, 6}) {
        const auto x = test::normal_values(rows * dim, 43);
        const std::vector<float> zero_bias(static_cast<size_t>(dim), 0.0f);
        for (const char* isa : available_isas()) {
          test::ScopedKernel kernel(isa);
          EXPECT_EQ(forward(host_, layer, x, rows, zero_bias), x) << type << " " << isa;
        }
      }
    }
  }
}

TEST_F(BnbLinear, HalfPrecisionInputsComputeInFloat32AndRoundOnce) {
  Layer layer(host_, test::config_4bit("nf4"), 64, 128, QF_MODULE_LINEAR,
              test::normal_values(64 * 128, 47));
  const int64_t rows = 3;
  const auto xf = test::normal_values(rows * 128, 53);
  for (DLDataType dtype : {bf16(), f16()}) {
    HostTensor x(dtype, {rows, 128});
    std::vector<float> x_rounded(xf.size());
    for (size_t i = 0; i < xf.size(); ++i) {
      const uint16_t h = dtype.code == kDLBfloat ? cpu::f32_to_bf16(xf[i]) : cpu::f32_to_f16(xf[i]);
      x.data<uint16_t>()[i] = h;
      x_rounded[i] = dtype.code == kDLBfloat ? cpu::bf16_to_f32(h) : cpu::f16_to_f32(h);
    }
    HostTensor y(dtype, {rows, 64});
    layer.quantizer.linear_forward(sdk::Call(nullptr), layer.module.get(), layer.tensors.get(),
                                   x.get(), nullptr, y.get());
    // The float32 result of the same inputs, rounded once to the output dtype.
    const std::vector<float> zero(64, 0.0f);
    const auto expect = forward(host_, layer, x_rounded, rows, zero);
    for (size_t i = 0; i < expect.size(); ++i) {
      const uint16_t want =
          dtype.code == kDLBfloat ? cpu::f32_to_bf16(expect[i]) : cpu::f32_to_f16(expect[i]);
      ASSERT_EQ(y.data<uint16_t>()[i], want) << i;
    }
  }
}

TEST_F(BnbLinear, OneAndTwoThreadsGiveIdenticalOutputs) {
  Layer layer(host_, test::config_4bit("nf4", true), 256, 512, QF_MODULE_LINEAR,
              test::normal_values(256 * 512, 59));
  const auto bias = test::normal_values(256, 61);
  for (int64_t rows : {1, 9}) {
    const auto x = test::normal_values(rows * 512, 67);
    host_.set_threads(1);
    const auto one = forward(host_, layer, x, rows, bias);
    host_.set_threads(2);
    const auto two = forward(host_, layer, x, rows, bias);
    host_.set_threads(1);
    EXPECT_EQ(one, two) << rows;
  }
}

TEST_F(BnbLinear, RejectsInputsThatDoNotFitTheModule) {
  Layer layer(host_, test::config_4bit("nf4"), 8, 64, QF_MODULE_LINEAR,
              test::normal_values(8 * 64, 71));
  HostTensor x(f32(), {2, 63});
  HostTensor y(f32(), {2, 8});
  test::expect_error(
      [&] {
        layer.quantizer.linear_forward(sdk::Call(nullptr), layer.module.get(), layer.tensors.get(),
                                       x.get(), nullptr, y.get());
      },
      QF_CODE_INVALID_ARGUMENT);
  HostTensor x_ok(f32(), {2, 64});
  HostTensor y_half(f16(), {2, 8});
  test::expect_error(
      [&] {
        layer.quantizer.linear_forward(sdk::Call(nullptr), layer.module.get(), layer.tensors.get(),
                                       x_ok.get(), nullptr, y_half.get());
      },
      QF_CODE_INVALID_ARGUMENT);
}

// The kernel entry points on raw pointers, as the bench helper calls them.
TEST(BnbKernels, VectorDequantizeEqualsScalarBitForBit) {
  const int64_t out = 10, in = 192;
  std::vector<float> w = test::normal_values(out * in, 73);
  std::vector<uint8_t> packed(static_cast<size_t>(out * in / 2));
  std::vector<float> absmax(static_cast<size_t>(out * in / 64));
  cpu::quantize_blocks_4bit(cpu::QuantType::kNf4, w.data(), out * in, 0,
                            static_cast<int64_t>(absmax.size()), packed.data(), absmax.data());
  cpu::Weight4 weight;
  weight.packed = packed.data();
  weight.code = cpu::kNf4Code.data();
  weight.absmax.values = absmax.data();
  weight.out = out;
  weight.in = in;
  std::vector<float> scalar(static_cast<size_t>(out * in));
  cpu::dequantize_range(cpu::Isa::kScalar, weight, 0, out * in, scalar.data());
  for (cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
    if (!cpu::isa_supported(isa)) continue;
    std::vector<float> got(scalar.size());
    cpu::dequantize_range(isa, weight, 0, out * in, got.data());
    EXPECT_EQ(got, scalar) << cpu::isa_name(isa);
    // An unaligned range: partial blocks at both ends.
    std::vector<float> part(1000);
    cpu::dequantize_range(isa, weight, 37, 1037, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), scalar.begin() + 37)) << cpu::isa_name(isa);
  }
}

TEST(BnbKernels, SelectsTheForcedKernelOnlyWhenTheCpuHasIt) {
  {
    test::ScopedKernel kernel("scalar");
    EXPECT_EQ(cpu::select_isa(), cpu::Isa::kScalar);
  }
  {
    test::ScopedKernel kernel("no-such-isa");
    EXPECT_TRUE(cpu::isa_supported(cpu::select_isa()));
  }
  for (cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
    test::ScopedKernel kernel(cpu::isa_name(isa));
    if (cpu::isa_supported(isa)) {
      EXPECT_EQ(cpu::select_isa(), isa);
    }
  }
}

}  // namespace
}  // namespace qforge::plugins::bnb
