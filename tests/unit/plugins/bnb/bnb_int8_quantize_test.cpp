// bnb 8-bit (LLM.int8) quantize / dequantize through the quantizer class: the tensor set of
// FORMATS.md §2.3, the rounding facts of §5 item 7, error bounds, and refused inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bnb_device.hpp"
#include "bnb_quantizer.hpp"
#include "cpu/half.hpp"
#include "cpu/int8.hpp"
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

float f16_round(float v) { return cpu::f16_to_f32(cpu::f32_to_f16(v)); }

// Int8Params' math written out independently of the plugin: float16 cast, row absmax,
// round-half-even(h * s) with s = fl(fl(1 / absmax) * 127), PyTorch's `127.0 / tensor`
// (std::nearbyint under the default rounding mode), 0 for an all-zero row.
void reference_int8(const std::vector<float>& w, int64_t out, int64_t in, std::vector<int8_t>& cb,
                    std::vector<float>& scb) {
  cb.assign(static_cast<size_t>(out * in), 0);
  scb.assign(static_cast<size_t>(out), 0.0f);
  for (int64_t r = 0; r < out; ++r) {
    float absmax = 0.0f;
    for (int64_t k = 0; k < in; ++k) {
      absmax = std::max(absmax, std::fabs(f16_round(w[static_cast<size_t>(r * in + k)])));
    }
    scb[static_cast<size_t>(r)] = absmax;
    if (absmax == 0.0f) continue;
    const float reciprocal = 1.0f / absmax;
    const float scale = reciprocal * 127.0f;
    for (int64_t k = 0; k < in; ++k) {
      cb[static_cast<size_t>(r * in + k)] = static_cast<int8_t>(
          std::nearbyint(f16_round(w[static_cast<size_t>(r * in + k)]) * scale));
    }
  }
}

// Values into a F32/F16/BF16 tensor, rounded to nearest even.
void fill_as(HostTensor& t, const std::vector<float>& values) {
  const DLDataType d = t.get().dtype;
  for (size_t i = 0; i < values.size(); ++i) {
    if (d.code == kDLFloat && d.bits == 32) {
      t.data<float>()[i] = values[i];
    } else if (d.code == kDLFloat) {
      t.data<uint16_t>()[i] = cpu::f32_to_f16(values[i]);
    } else {
      t.data<uint16_t>()[i] = cpu::f32_to_bf16(values[i]);
    }
  }
}

// One quantize (and optionally dequantize) of one module, with its own sinks.
class Int8Run {
 public:
  explicit Int8Run(TestHost& host) : sink_(host), dense_sink_(host) {}

  void quantize(Bnb8BitQuantizer& q, const Module& module, const DLTensor& weight) {
    sdk::TensorSink handle(sink_.get());
    q.quantize(sdk::Call(nullptr), module.get(), weight, nullptr, nullptr, handle);
  }
  const HostTensor& dequantize(Bnb8BitQuantizer& q, const Module& module) {
    test::copy_outputs(sink_, quantized_);
    sdk::TensorSink handle(dense_sink_.get());
    q.dequantize(sdk::Call(nullptr), module.get(), quantized_.get(), handle);
    return *dense_sink_.find("weight");
  }
  std::vector<int8_t> codes() const {
    const HostTensor& t = *sink_.find("weight");
    const auto* p = static_cast<const int8_t*>(t.get().data);
    return std::vector<int8_t>(p, p + t.numel());
  }
  std::vector<float> scb() const { return test::floats_of(*sink_.find("SCB")); }
  const TensorSink& sink() const { return sink_; }
  TensorList& quantized() { return quantized_; }

 private:
  TensorSink sink_;
  TensorList quantized_;
  TensorSink dense_sink_;
};

class BnbInt8Quantize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  TestHost host_;
  Bnb8BitQuantizer q_{test::config_8bit()};
};

TEST_F(BnbInt8Quantize, WritesExactlyTheTensorSetOfFormatsSection23) {
  Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 6, 10, true, f16());
  HostTensor w(f32(), {6, 10});
  test::fill_f32(w, test::normal_values(60, 3));
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  const TensorSink& sink_ = run.sink();
  ASSERT_EQ(sink_.tensors().size(), 3u);  // the bias is the host's to copy
  const DLTensor& weight = sink_.find("weight")->get();
  EXPECT_TRUE(sdk::same_dtype(weight.dtype, qforge::test::i8()));
  ASSERT_EQ(weight.ndim, 2);
  EXPECT_EQ(weight.shape[0], 6);
  EXPECT_EQ(weight.shape[1], 10);
  const DLTensor& s = sink_.find("SCB")->get();
  EXPECT_TRUE(sdk::same_dtype(s.dtype, f32()));
  ASSERT_EQ(s.ndim, 1);
  EXPECT_EQ(s.shape[0], 6);
  const DLTensor& format = sink_.find("weight_format")->get();
  EXPECT_TRUE(sdk::same_dtype(format.dtype, qforge::test::u8()));
  EXPECT_EQ(format.ndim, 0);
  EXPECT_EQ(*static_cast<const uint8_t*>(format.data), 0);  // "row"

  // describe_quantized announces the same set, and check_quantized accepts what was written.
  const auto described = nlohmann::json::parse(q_.describe_quantized(m.get()));
  ASSERT_EQ(described["tensors"].size(), 3u);
  for (const auto& t : described["tensors"]) {
    const HostTensor* written = sink_.find(t["name"].get<std::string>());
    ASSERT_NE(written, nullptr) << t.dump();
    EXPECT_EQ(t["dtype"], sdk::dtype_name(written->get().dtype));
    EXPECT_EQ(
        t["shape"].get<std::vector<int64_t>>(),
        std::vector<int64_t>(written->get().shape, written->get().shape + written->get().ndim));
  }
  test::copy_outputs(sink_, run.quantized());
  EXPECT_NO_THROW(q_.check_quantized(m.get(), run.quantized().get()));
}

TEST_F(BnbInt8Quantize, DescribeNamesTheCpuKernelEachMethodWouldRun) {
  // `qforge doctor` reads "kernels" beside "tensors"; it follows QFORGE_BNB_KERNEL.
  Module m("fc", QF_MODULE_LINEAR, 8, 64, false, f16());
  Bnb4BitQuantizer q4(test::config_4bit("nf4"));
  {
    test::ScopedKernel k("scalar");
    EXPECT_EQ(nlohmann::json::parse(q_.describe_quantized(m.get()))["kernels"]["cpu"], "scalar");
    EXPECT_EQ(nlohmann::json::parse(q4.describe_quantized(m.get()))["kernels"]["cpu"], "scalar");
  }
  const auto j8 = nlohmann::json::parse(q_.describe_quantized(m.get()));
  EXPECT_EQ(j8["kernels"]["cpu"], cpu::int8_isa_name(cpu::select_int8_isa()));
  const auto j4 = nlohmann::json::parse(q4.describe_quantized(m.get()));
  EXPECT_EQ(j4["kernels"]["cpu"], cpu::isa_name(cpu::select_isa()));
  // The GPU entry says what this build holds (a CUDA build names its kernels).
  const std::string backend = gpu_backend();
  const std::string gpu_key = backend == "HIP" ? "rocm" : "cuda";
  ASSERT_TRUE(j8["kernels"].contains(gpu_key)) << j8.dump();
  EXPECT_EQ(j8["kernels"][gpu_key].get<std::string>().find("none"),
            backend == "none" ? 0u : std::string::npos);
}

TEST_F(BnbInt8Quantize, CodesAndScalesFollowInt8ParamsBitForBit) {
  // float32 input: the float16 cast matters (SCB is the float16 absmax, not the float32 one).
  const int64_t out = 33, in = 77;
  std::vector<float> values = test::normal_values(out * in, 11);
  for (auto& v : values) v *= 0.37f;
  Module m("fc", QF_MODULE_LINEAR, out, in, false, f32());
  HostTensor w(f32(), {out, in});
  test::fill_f32(w, values);
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  std::vector<int8_t> cb;
  std::vector<float> s;
  reference_int8(values, out, in, cb, s);
  EXPECT_EQ(run.codes(), cb);
  const auto got = run.scb();
  ASSERT_EQ(got.size(), s.size());
  for (size_t r = 0; r < s.size(); ++r) {
    EXPECT_EQ(cpu::bits_of(got[r]), cpu::bits_of(s[r])) << "row " << r;
    EXPECT_EQ(got[r], f16_round(got[r])) << "SCB is a float16 value stored as float32";
  }
}

TEST_F(BnbInt8Quantize, RoundsHalfToEven) {
  // absmax 127 makes the scale exactly 1, so x.5 values sit on ties: 0.5 -> 0, 1.5 -> 2,
  // 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, -2.5 -> -2 (ties away from zero would differ).
  Module m("fc", QF_MODULE_LINEAR, 1, 7, false, f32());
  HostTensor w(f32(), {1, 7});
  test::fill_f32(w, {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f});
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  EXPECT_EQ(run.codes(), (std::vector<int8_t>{127, 0, 2, 2, 0, -2, -2}));
}

TEST_F(BnbInt8Quantize, ScaleIsTheReciprocalTimes127AsPyTorchComputesIt) {
  // Found in a real comparison with bitsandbytes (tests/reference/bnb8): with the correctly
  // rounded 127 / absmax these products land just below the tie (-63.499996 -> -63, 63.5 -> 64),
  // with PyTorch's reciprocal-then-multiply just beyond it (-63.500004 -> -64, 63.499996 -> 63).
  Module m("fc", QF_MODULE_LINEAR, 2, 2, false, f16());
  HostTensor w(f16(), {2, 2});
  fill_as(w, {0.054443359375f, -0.0272216796875f, 0.0458984375f, 0.02294921875f});
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  EXPECT_EQ(run.codes(), (std::vector<int8_t>{127, -64, 127, 63}));
}

TEST_F(BnbInt8Quantize, RefusesHasFp16WeightWhichWritesNoInt8Checkpoint) {
  Bnb8BitQuantizer q(R"({"quant_method": "bitsandbytes", "load_in_8bit": true,
                         "llm_int8_has_fp16_weight": true})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 2, 8, false, f16());
  HostTensor w(f16(), {2, 8});
  fill_as(w, test::normal_values(16, 3));
  TensorSink sink(host_);
  sdk::TensorSink handle(sink.get());
  const auto e = test::expect_error(
      [&] { q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle); },
      QF_CODE_INVALID_ARGUMENT);
  const std::string text = std::string(e.what()) + " " + e.why() + " " + e.fix();
  EXPECT_NE(text.find("model.layers.0.mlp.up_proj"), std::string::npos) << text;
  EXPECT_NE(text.find("llm_int8_has_fp16_weight: false"), std::string::npos) << text;
}

TEST_F(BnbInt8Quantize, RoundTripStaysWithinHalfAStep) {
  for (DLDataType dtype : {f32(), f16(), bf16()}) {
    SCOPED_TRACE(sdk::dtype_name(dtype));
    const int64_t out = 48, in = 96;
    const std::vector<float> values = test::normal_values(out * in, 21);
    Module m("fc", QF_MODULE_LINEAR, out, in, false, f32());
    HostTensor w(dtype, {out, in});
    fill_as(w, values);  // rounds to the dtype
    const std::vector<float> stored = test::floats_of(w);
    Int8Run run(host_);
    run.quantize(q_, m, w.get());
    const auto s = run.scb();
    const auto dense = test::floats_of(run.dequantize(q_, m));
    double worst = 0.0;
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t k = 0; k < in; ++k) {
        const size_t i = static_cast<size_t>(r * in + k);
        // Half a quantization step (SCB / 254), plus the float16 cast of the weight, plus
        // float32 rounding of the scale product.
        const double bound = s[static_cast<size_t>(r)] / 254.0 * (1 + 1e-5) +
                             std::fabs(stored[i]) * std::ldexp(1.0, -11) + 1e-7;
        const double err = std::fabs(static_cast<double>(dense[i]) - stored[i]);
        EXPECT_LE(err, bound) << "row " << r << " col " << k;
        worst = std::max(worst, err / (s[static_cast<size_t>(r)] / 127.0));
      }
    }
    EXPECT_GT(worst, 0.3) << "an error bound nothing approaches tests nothing";
  }
}

TEST_F(BnbInt8Quantize, DequantizeWritesTheModuleDtypeInBitsandbytesOrder) {
  const int64_t out = 5, in = 40;
  const std::vector<float> values = test::normal_values(out * in, 5);
  for (DLDataType dtype : {f32(), f16(), bf16()}) {
    SCOPED_TRACE(sdk::dtype_name(dtype));
    Module m("fc", QF_MODULE_LINEAR, out, in, false, dtype);
    HostTensor w(f32(), {out, in});
    test::fill_f32(w, values);
    Int8Run run(host_);
    run.quantize(q_, m, w.get());
    const auto cb = run.codes();
    const auto s = run.scb();
    const HostTensor& dense = run.dequantize(q_, m);
    EXPECT_TRUE(sdk::same_dtype(dense.get().dtype, dtype));
    const auto d = test::floats_of(dense);
    for (int64_t i = 0; i < out * in; ++i) {
      // int8_vectorwise_dequant: (CB * SCB) * 7.874015718698502e-3, in float32, then .to(dtype).
      const float expect32 =
          (static_cast<float>(cb[static_cast<size_t>(i)]) * s[static_cast<size_t>(i / in)]) *
          static_cast<float>(7.874015718698502e-3);
      float expect = expect32;
      if (dtype.bits == 16 && dtype.code == kDLFloat) expect = f16_round(expect32);
      if (dtype.code == kDLBfloat) expect = cpu::bf16_to_f32(cpu::f32_to_bf16(expect32));
      EXPECT_EQ(d[static_cast<size_t>(i)], expect) << i;
    }
  }
}

TEST_F(BnbInt8Quantize, ZeroRowsStoreScaleZeroAndCodesZero) {
  // bitsandbytes leaves SCB = 0 for an all-zero row (no substitute value); its codes are 0.
  const int64_t out = 4, in = 16;
  std::vector<float> values = test::normal_values(out * in, 8);
  for (int64_t k = 0; k < in; ++k) {
    values[static_cast<size_t>(1 * in + k)] = 0.0f;
    values[static_cast<size_t>(3 * in + k)] = (k % 2 != 0) ? -0.0f : 0.0f;
  }
  Module m("fc", QF_MODULE_LINEAR, out, in, false, f32());
  HostTensor w(f32(), {out, in});
  test::fill_f32(w, values);
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  const auto s = run.scb();
  const auto cb = run.codes();
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_EQ(s[3], 0.0f);
  EXPECT_GT(s[0], 0.0f);
  for (int64_t k = 0; k < in; ++k) {
    EXPECT_EQ(cb[static_cast<size_t>(1 * in + k)], 0);
    EXPECT_EQ(cb[static_cast<size_t>(3 * in + k)], 0);
  }
  const auto dense = test::floats_of(run.dequantize(q_, m));
  for (int64_t k = 0; k < in; ++k) {
    EXPECT_EQ(dense[static_cast<size_t>(1 * in + k)], 0.0f);
    EXPECT_FALSE(std::isnan(dense[static_cast<size_t>(3 * in + k)]));
  }
}

TEST_F(BnbInt8Quantize, ARowWithOneHugeValueKeepsItAndFlushesTheRest) {
  // Row-wise absmax: one value of 60000 (near the float16 maximum) takes code 127 and the
  // row's small values fall below half a step (0 codes); other rows are unaffected.
  const int64_t out = 3, in = 32;
  std::vector<float> values = test::normal_values(out * in, 9);
  values[static_cast<size_t>(1 * in + 7)] = -60000.0f;
  Module m("fc", QF_MODULE_LINEAR, out, in, false, f32());
  HostTensor w(f32(), {out, in});
  test::fill_f32(w, values);
  Int8Run run(host_);
  run.quantize(q_, m, w.get());
  const auto s = run.scb();
  const auto cb = run.codes();
  EXPECT_EQ(s[1], 60000.0f);
  EXPECT_EQ(cb[static_cast<size_t>(1 * in + 7)], -127);
  for (int64_t k = 0; k < in; ++k) {
    if (k != 7) {
      EXPECT_EQ(cb[static_cast<size_t>(1 * in + k)], 0) << k;
    }
  }
  const auto dense = test::floats_of(run.dequantize(q_, m));
  EXPECT_NEAR(dense[static_cast<size_t>(1 * in + 7)], -60000.0f, 60000.0f * 1e-6f);
  for (int64_t r : {0, 2}) {
    for (int64_t k = 0; k < in; ++k) {
      const size_t i = static_cast<size_t>(r * in + k);
      EXPECT_LE(std::fabs(dense[i] - values[i]),
                s[static_cast<size_t>(r)] / 254.0f * 1.001f + std::fabs(values[i]) / 2048.0f);
    }
  }
}

TEST_F(BnbInt8Quantize, RefusesNanInfAndValuesBeyondFloat16NamingRowAndColumn) {
  struct Case {
    float value;
    const char* word;
  };
  for (const Case& c :
       {Case{std::numeric_limits<float>::quiet_NaN(), "NaN"},
        Case{std::numeric_limits<float>::infinity(), "Inf"},
        Case{-std::numeric_limits<float>::infinity(), "Inf"}, Case{70000.0f, "float16"}}) {
    SCOPED_TRACE(c.word);
    std::vector<float> values = test::normal_values(4 * 8, 2);
    values[static_cast<size_t>(2 * 8 + 5)] = c.value;
    values[static_cast<size_t>(3 * 8 + 1)] = c.value;  // a later bad element is not the one named
    Module m("model.layers.3.self_attn.o_proj", QF_MODULE_LINEAR, 4, 8, false, f32());
    HostTensor w(f32(), {4, 8});
    test::fill_f32(w, values);
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    const auto e = test::expect_error(
        [&] { q_.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle); },
        QF_CODE_INVALID_ARGUMENT);
    const std::string text = std::string(e.what()) + " " + e.why() + " " + e.fix();
    EXPECT_NE(text.find("model.layers.3.self_attn.o_proj"), std::string::npos) << text;
    EXPECT_NE(text.find("row 2, column 5"), std::string::npos) << text;
    EXPECT_NE(text.find(c.word), std::string::npos) << text;
    EXPECT_NE(text.find("llm_int8_skip_modules"), std::string::npos) << text;
  }
}

TEST_F(BnbInt8Quantize, Conv1DIsTransposedBeforeQuantizingAndBackAfter) {
  // GPT-2's Conv1D stores [in, out]; transformers quantizes its transpose.
  const int64_t out = 6, in = 10;
  const std::vector<float> stored = test::normal_values(in * out, 4);  // [in, out]
  std::vector<float> as_linear(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t k = 0; k < in; ++k) {
      as_linear[static_cast<size_t>(r * in + k)] = stored[static_cast<size_t>(k * out + r)];
    }
  }
  Module conv("c_attn", QF_MODULE_CONV1D, out, in, false, f32());
  HostTensor w(f32(), {in, out});
  test::fill_f32(w, stored);
  Int8Run run(host_);
  run.quantize(q_, conv, w.get());
  std::vector<int8_t> cb;
  std::vector<float> s;
  reference_int8(as_linear, out, in, cb, s);
  EXPECT_EQ(run.codes(), cb);
  EXPECT_EQ(run.scb(), s);
  const HostTensor& dense = run.dequantize(q_, conv);
  ASSERT_EQ(dense.get().ndim, 2);
  EXPECT_EQ(dense.get().shape[0], in);
  EXPECT_EQ(dense.get().shape[1], out);
  const auto d = test::floats_of(dense);
  for (int64_t k = 0; k < in; ++k) {
    for (int64_t r = 0; r < out; ++r) {
      EXPECT_NEAR(d[static_cast<size_t>(k * out + r)], stored[static_cast<size_t>(k * out + r)],
                  s[static_cast<size_t>(r)] / 254.0f * 1.001f + 1e-3f);
    }
  }
}

TEST_F(BnbInt8Quantize, DequantizeChecksThePrequantizedSetLikeTransformers) {
  Module m("fc", QF_MODULE_LINEAR, 2, 4, false, f16());
  TensorList wrong_dtype;
  wrong_dtype.add("weight", f16(), {2, 4});
  wrong_dtype.add("SCB", f32(), {2});
  auto e = test::expect_error(
      [&] {
        TensorSink sink(host_);
        sdk::TensorSink handle(sink.get());
        q_.dequantize(sdk::Call(nullptr), m.get(), wrong_dtype.get(), handle);
      },
      QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("Expected `torch.int8`"), std::string::npos) << e.what();
  TensorList no_scb;
  no_scb.add("weight", qforge::test::i8(), {2, 4});
  e = test::expect_error(
      [&] {
        TensorSink sink(host_);
        sdk::TensorSink handle(sink.get());
        q_.dequantize(sdk::Call(nullptr), m.get(), no_scb.get(), handle);
      },
      QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("Missing quantization component `SCB`"), std::string::npos)
      << e.what();
}

}  // namespace
}  // namespace qforge::plugins::bnb
