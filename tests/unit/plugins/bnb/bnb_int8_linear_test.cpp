// bnb 8-bit linear_forward (LLM.int8 mixed-precision decomposition) through the quantizer:
// against a float64 product of the dequantized weight within the int8 error bound, against
// an independent transcription of bitsandbytes' ops, with planted outlier columns, and with
// the decomposition switched off (threshold 0).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bnb_quantizer.hpp"
#include "cpu/half.hpp"
#include "unit/plugins/bnb/bnb_compute_util.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"

namespace qforge::plugins::bnb {
namespace {

using qforge::test::f16;
using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

float f16_round(float v) { return cpu::f16_to_f32(cpu::f32_to_f16(v)); }

std::string config_threshold(double t) {
  return std::string(R"({"load_in_8bit": true, "llm_int8_threshold": )") + std::to_string(t) + "}";
}

// A quantized [out, in] layer: its stored codes and scales and the dequantized weight.
struct Layer8 {
  Layer8(TestHost& host, const std::string& config, int64_t out, int64_t in, uint32_t seed)
      : quantizer(config), module("fc", QF_MODULE_LINEAR, out, in, true, f32()) {
    HostTensor w(f32(), {out, in});
    auto values = test::normal_values(out * in, seed);
    for (auto& v : values) v *= 0.05f;
    test::fill_f32(w, values);
    TensorSink sink(host);
    sdk::TensorSink handle(sink.get());
    quantizer.quantize(sdk::Call(nullptr), module.get(), w.get(), nullptr, nullptr, handle);
    test::copy_outputs(sink, tensors);
    const HostTensor& cbt = *sink.find("weight");
    const auto* p = static_cast<const int8_t*>(cbt.get().data);
    cb.assign(p, p + cbt.numel());
    scb = test::floats_of(*sink.find("SCB"));
    dense.resize(cb.size());
    for (size_t i = 0; i < cb.size(); ++i) {
      dense[i] = (static_cast<float>(cb[i]) * scb[i / static_cast<size_t>(in)]) *
                 static_cast<float>(7.874015718698502e-3);
    }
  }
  std::vector<float> forward(const std::vector<float>& x, int64_t rows,
                             const std::vector<float>& bias) {
    const int64_t out = module.get().out_features, in = module.get().in_features;
    HostTensor xt(f32(), {rows, in}), yt(f32(), {rows, out}), bt(f32(), {out});
    test::fill_f32(xt, x);
    test::fill_f32(bt, bias);
    quantizer.linear_forward(sdk::Call(nullptr), module.get(), tensors.get(), xt.get(), &bt.get(),
                             yt.get());
    return test::floats_of(yt);
  }

  Bnb8BitQuantizer quantizer;
  Module module;
  TensorList tensors;
  std::vector<int8_t> cb;
  std::vector<float> scb;
  std::vector<float> dense;  // [out, in]
};

// bitsandbytes' default-backend ops transcribed directly (int8_vectorwise_quant on
// x.to(float16), int8_scaled_mm, addmm of the outlier columns), as an oracle.
std::vector<float> bnb_ops(const Layer8& l, const std::vector<float>& x, int64_t rows,
                           const std::vector<float>& bias, float threshold) {
  const int64_t out = l.module.get().out_features, in = l.module.get().in_features;
  std::vector<float> a(x.size());
  for (size_t i = 0; i < x.size(); ++i) a[i] = f16_round(x[i]);
  std::vector<bool> col(static_cast<size_t>(in), false), elem(x.size(), false);
  if (threshold > 0) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::fabs(a[i]) >= threshold) {
        elem[i] = true;
        col[i % static_cast<size_t>(in)] = true;
      }
    }
  }
  std::vector<float> y(static_cast<size_t>(rows * out));
  for (int64_t m = 0; m < rows; ++m) {
    float stat = 0.0f;
    for (int64_t k = 0; k < in; ++k) {
      const size_t i = static_cast<size_t>(m * in + k);
      if (!elem[i]) stat = std::max(stat, std::fabs(a[i]));
    }
    std::vector<int> ca(static_cast<size_t>(in), 0);
    for (int64_t k = 0; k < in; ++k) {
      const size_t i = static_cast<size_t>(m * in + k);
      if (stat > 0 && !elem[i] && !col[static_cast<size_t>(k)]) {
        ca[static_cast<size_t>(k)] = static_cast<int>(std::nearbyint(a[i] * (127.0f / stat)));
      }
    }
    for (int64_t o = 0; o < out; ++o) {
      long long acc = 0;
      float sub = 0.0f;
      for (int64_t k = 0; k < in; ++k) {
        acc += static_cast<long long>(ca[static_cast<size_t>(k)]) *
               l.cb[static_cast<size_t>(o * in + k)];
        if (col[static_cast<size_t>(k)]) {
          sub += x[static_cast<size_t>(m * in + k)] * l.dense[static_cast<size_t>(o * in + k)];
        }
      }
      y[static_cast<size_t>(m * out + o)] =
          static_cast<float>(acc) * (stat * l.scb[static_cast<size_t>(o)]) * 6.200012e-05f +
          bias[static_cast<size_t>(o)] + sub;
    }
  }
  return y;
}

// x: N(0, 1) * 0.8 with a few planted outlier columns (|x| between 20 and 60 in some rows).
std::vector<float> activations(int64_t rows, int64_t in, const std::vector<int64_t>& cols,
                               uint32_t seed) {
  auto x = test::normal_values(rows * in, seed);
  for (auto& v : x) v = std::max(-4.0f, std::min(4.0f, v * 0.8f));
  for (int64_t c : cols) {
    for (int64_t m = 0; m < rows; m += 2) {
      x[static_cast<size_t>(m * in + c)] =
          (m % 4 == 0 ? 1.0f : -1.0f) * (20.0f + static_cast<float>((5 * c) % 40));
    }
  }
  return x;
}

class BnbInt8Linear : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  TestHost host_;
};

TEST_F(BnbInt8Linear, DecompositionMatchesTheFloatProductWithinTheInt8Bound) {
  const int64_t out = 40, in = 96, rows = 5;
  const std::vector<int64_t> planted = {3, 17, 50, 95};
  Layer8 l(host_, config_threshold(6.0), out, in, 31);
  Layer8 plain(host_, config_threshold(0.0), out, in, 31);
  const auto x = activations(rows, in, planted, 7);
  const std::vector<float> bias = test::normal_values(out, 77);
  const auto y = l.forward(x, rows, bias);
  const auto y_plain = plain.forward(x, rows, bias);
  int over_bound_without = 0;
  for (int64_t m = 0; m < rows; ++m) {
    // The int8 part quantizes x to half a step of the row's non-outlier absmax (plus the
    // float16 cast); the outlier columns are exact up to float32 rounding.
    double stat = 0.0;
    for (int64_t k = 0; k < in; ++k) {
      const float v = x[static_cast<size_t>(m * in + k)];
      if (std::fabs(f16_round(v)) < 6.0f) stat = std::max(stat, std::fabs(static_cast<double>(v)));
    }
    for (int64_t o = 0; o < out; ++o) {
      double ref = bias[static_cast<size_t>(o)], bound = 0.0, mag = 0.0;
      for (int64_t k = 0; k < in; ++k) {
        const double w = l.dense[static_cast<size_t>(o * in + k)];
        const double v = x[static_cast<size_t>(m * in + k)];
        ref += w * v;
        mag += std::fabs(w * v);
        if (std::find(planted.begin(), planted.end(), k) == planted.end()) {
          bound += std::fabs(w) * (stat / 254.0 + std::fabs(v) * std::ldexp(1.0, -11));
        }
      }
      bound = bound * 1.001 + mag * 1e-5 + 1e-6;
      const double err = std::fabs(y[static_cast<size_t>(m * out + o)] - ref);
      EXPECT_LE(err, bound) << "row " << m << " output " << o;
      if (std::fabs(y_plain[static_cast<size_t>(m * out + o)] - ref) > bound) ++over_bound_without;
    }
  }
  // Without the decomposition the planted outliers blow the row scales up: the same bound
  // fails broadly, so the test above does see the float path at work.
  EXPECT_GT(over_bound_without, out);
}

TEST_F(BnbInt8Linear, EqualsBitsandbytesOpsWithAndWithoutOutliers) {
  const int64_t out = 24, in = 130;
  for (double threshold : {6.0, 0.0, 2.5}) {
    for (int64_t rows : {1, 3, 8}) {
      SCOPED_TRACE("threshold " + std::to_string(threshold) + " rows " + std::to_string(rows));
      Layer8 l(host_, config_threshold(threshold), out, in, 5);
      const auto x = activations(rows, in, {0, 64, 129}, static_cast<uint32_t>(rows));
      const std::vector<float> bias = test::normal_values(out, 9);
      const auto y = l.forward(x, rows, bias);
      const auto want = bnb_ops(l, x, rows, bias, static_cast<float>(threshold));
      for (size_t i = 0; i < y.size(); ++i) {
        // The int8 part is exact; only the order of the float outlier sum may differ.
        EXPECT_NEAR(y[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << i;
      }
    }
  }
}

TEST_F(BnbInt8Linear, ThresholdZeroSendsEveryColumnThroughInt8) {
  // With threshold 0 the output must be the pure int8 product even where |x| is huge; with
  // the default threshold it must differ there (the outlier columns go through floats).
  const int64_t out = 16, in = 64, rows = 2;
  Layer8 off(host_, config_threshold(0.0), out, in, 12);
  Layer8 on(host_, config_threshold(6.0), out, in, 12);
  const auto x = activations(rows, in, {10}, 3);
  const std::vector<float> bias(static_cast<size_t>(out), 0.0f);
  const auto y_off = off.forward(x, rows, bias);
  const auto pure = bnb_ops(off, x, rows, bias, 0.0f);
  for (size_t i = 0; i < y_off.size(); ++i) EXPECT_FLOAT_EQ(y_off[i], pure[i]) << i;
  const auto y_on = on.forward(x, rows, bias);
  int differ = 0;
  for (size_t i = 0; i < y_on.size(); ++i) differ += y_on[i] != y_off[i] ? 1 : 0;
  EXPECT_GT(differ, out);
}

TEST_F(BnbInt8Linear, EveryKernelGivesTheScalarOutputAndF16WorksThroughThreeDims) {
  const int64_t out = 33, in = 200;
  Layer8 l(host_, config_threshold(6.0), out, in, 44);
  const auto x = activations(6, in, {7, 150}, 8);
  const std::vector<float> bias = test::normal_values(out, 1);
  std::vector<float> want;
  {
    test::ScopedKernel k("scalar");
    want = l.forward(x, 6, bias);
  }
  for (const char* isa : {"avx2", "avx512_vnni", "amx"}) {
    test::ScopedKernel k(isa);
    EXPECT_EQ(l.forward(x, 6, bias), want) << isa;
  }
  // F16 x / y / bias as [2, 3, in]: the float32 result rounded to float16 (x is rounded to
  // float16 first, so the reference uses the rounded x too).
  std::vector<float> xr(x.size());
  for (size_t i = 0; i < x.size(); ++i) xr[i] = f16_round(x[i]);
  std::vector<float> br(bias.size());
  for (size_t i = 0; i < bias.size(); ++i) br[i] = f16_round(bias[i]);
  const auto y32 = l.forward(xr, 6, br);
  HostTensor xt(f16(), {2, 3, in}), yt(f16(), {2, 3, out}), bt(f16(), {out});
  for (size_t i = 0; i < x.size(); ++i) xt.data<uint16_t>()[i] = cpu::f32_to_f16(x[i]);
  for (size_t i = 0; i < bias.size(); ++i) bt.data<uint16_t>()[i] = cpu::f32_to_f16(bias[i]);
  l.quantizer.linear_forward(sdk::Call(nullptr), l.module.get(), l.tensors.get(), xt.get(),
                             &bt.get(), yt.get());
  const auto y16 = test::floats_of(yt);
  for (size_t i = 0; i < y16.size(); ++i) EXPECT_EQ(y16[i], f16_round(y32[i])) << i;
}

TEST_F(BnbInt8Linear, RefusesMismatchedShapes) {
  Layer8 l(host_, config_threshold(6.0), 8, 16, 2);
  HostTensor x(f32(), {2, 15}), y(f32(), {2, 8});
  test::expect_error(
      [&] {
        l.quantizer.linear_forward(sdk::Call(nullptr), l.module.get(), l.tensors.get(), x.get(),
                                   nullptr, y.get());
      },
      QF_CODE_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace qforge::plugins::bnb
