// Quantize, dequantize and the emulated forward of all three FP8 granularities give the same
// bytes whichever CPU kernel QFORGE_FP8_KERNEL picks: 128x128 tiles, small tiles, per-tensor
// on a ragged shape, FBGEMM rows; F32/F16/BF16 weights; all-zero tiles and rows; ragged tiles
// of a pre-quantized load; a thread split. An ISA this CPU lacks is skipped, saying so. And
// describe_quantized (what `qforge doctor` shows) names the kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "fbgemm_compute.hpp"
#include "fbgemm_quantizer.hpp"
#include "fp8_compute.hpp"
#include "fp8_quantizer.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::fp8 {
namespace {

using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

using Bytes = std::vector<unsigned char>;

Bytes bytes_of_tensor(const DLTensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.data);
  return Bytes(p, p + sdk::numel(t) * ((t.dtype.bits + 7) / 8));
}

// Sets QFORGE_FP8_KERNEL for one scope and restores what was there.
class KernelEnv {
 public:
  explicit KernelEnv(const char* name) {
    const char* old = std::getenv("QFORGE_FP8_KERNEL");
    had_ = old != nullptr;
    if (had_) old_ = old;
    ::setenv("QFORGE_FP8_KERNEL", name, 1);
  }
  ~KernelEnv() {
    if (had_) {
      ::setenv("QFORGE_FP8_KERNEL", old_.c_str(), 1);
    } else {
      ::unsetenv("QFORGE_FP8_KERNEL");
    }
  }
  KernelEnv(const KernelEnv&) = delete;
  KernelEnv& operator=(const KernelEnv&) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

enum class Method { kFp8, kFbgemm };

struct Case {
  const char* name;
  Method method;
  const char* config;
  int64_t rows, cols;
};

// Weights of `dtype` with a spread of magnitudes, one all-zero 32x48 corner (an all-zero tile
// for the small tiles, all-zero rows' starts for FBGEMM) and one all-zero row.
void fill(HostTensor& w, int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const DLDataType d = w.get().dtype;
  const cpu::Dense kind = d.bits == 32
                              ? cpu::Dense::kF32
                              : (d.code == kDLBfloat ? cpu::Dense::kBF16 : cpu::Dense::kF16);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float v = normal(rng) * 0.02f * static_cast<float>(1 + (r * 7 + c * 3) % 11);
      if ((r < 32 && c < 48) || r == rows / 2) v = 0.0f;
      if ((r * cols + c) % 211 == 3) v = std::ldexp(v, -12);  // far below the tile's max
      cpu::scalar::narrow(v, kind, w.data<unsigned char>(), r * cols + c);
    }
  }
}

struct Outputs {
  std::vector<std::pair<std::string, Bytes>> tensors;
};

class Fp8KernelChoice : public ::testing::TestWithParam<cpu::Isa> {
 protected:
  void SetUp() override {
    if (!cpu::isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU lacks " << cpu::isa_name(GetParam())
                   << " (its kernels are compiled but cannot run here)";
    }
    sdk::g_host = host_.api();
  }

  // Quantize, then dequantize and forward (F32 and BF16 y, 1 and 5 tokens, with bias) of the
  // result, all under kernel `kernel`; every output's bytes in order.
  Outputs run(const char* kernel, const Case& c, DLDataType dtype, int threads) {
    KernelEnv env(kernel);
    host_.set_threads(threads);
    Outputs o;
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, c.rows, c.cols, true, dtype);
    HostTensor w(dtype, {c.rows, c.cols});
    fill(w, c.rows, c.cols, static_cast<unsigned>(c.rows * 31 + c.cols));
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    const sdk::Call call(nullptr);
    const Fp8Config fp8 = parse_fp8_config(c.method == Method::kFp8 ? c.config : "{}");
    const FbgemmFp8Config fbgemm =
        parse_fbgemm_config(c.method == Method::kFbgemm ? c.config : "{}");
    if (c.method == Method::kFp8) {
      quantize_fp8(call, fp8, m.get(), w.get(), handle);
    } else {
      quantize_fbgemm(call, m.get(), w.get(), handle);
    }
    TensorList list;
    for (const auto& [name, t] : sink.tensors()) {
      o.tensors.emplace_back("quantized " + name, bytes_of_tensor(t->get()));
      const std::vector<int64_t> shape(t->get().shape, t->get().shape + t->get().ndim);
      HostTensor& copy = list.add(name, t->get().dtype, shape);
      std::memcpy(copy.data<unsigned char>(), t->get().data, o.tensors.back().second.size());
    }
    TensorSink dense(host_);
    sdk::TensorSink dense_handle(dense.get());
    if (c.method == Method::kFp8) {
      dequantize_fp8(call, fp8, m.get(), list.get(), dense_handle);
    } else {
      dequantize_fbgemm(call, m.get(), list.get(), dense_handle);
    }
    o.tensors.emplace_back("dequantized", bytes_of_tensor(dense.find("weight")->get()));
    forwards(o, c, m, list, fp8, fbgemm);
    return o;
  }

  void forwards(Outputs& o, const Case& c, const Module& m, TensorList& list, const Fp8Config& fp8,
                const FbgemmFp8Config& fbgemm) {
    std::mt19937 rng(77);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    HostTensor bias(qforge::test::f32(), {c.rows});
    for (int64_t i = 0; i < c.rows; ++i) bias.data<float>()[i] = normal(rng) * 0.1f;
    for (int64_t tokens : {1, 5}) {
      HostTensor x(qforge::test::f32(), {tokens, c.cols});
      for (int64_t i = 0; i < tokens * c.cols; ++i) x.data<float>()[i] = normal(rng);
      for (int64_t i = 0; i < std::min<int64_t>(c.cols, 40); ++i) x.data<float>()[i] = 0.0f;
      for (DLDataType yd : {qforge::test::f32(), qforge::test::bf16()}) {
        HostTensor y(yd, {tokens, c.rows});
        if (c.method == Method::kFp8) {
          linear_forward_fp8(sdk::Call(nullptr), fp8, m.get(), list.get(), x.get(), &bias.get(),
                             y.get());
        } else {
          linear_forward_fbgemm(sdk::Call(nullptr), fbgemm, m.get(), list.get(), x.get(),
                                &bias.get(), y.get());
        }
        o.tensors.emplace_back(
            "forward tokens " + std::to_string(tokens) + " y bits " + std::to_string(yd.bits),
            bytes_of_tensor(y.get()));
      }
    }
  }

  TestHost host_;
};

const Case kCases[] = {
    {"fp8 128x128", Method::kFp8, R"({"quant_method":"fp8"})", 256, 384},
    {"fp8 32x48 tiles", Method::kFp8, R"({"quant_method":"fp8","weight_block_size":[32,48]})", 96,
     144},
    {"fp8_per_tensor ragged", Method::kFp8, R"({"quant_method":"fp8","weight_block_size":null})",
     37, 100},
    {"fbgemm_fp8 ragged", Method::kFbgemm, R"({"quant_method":"fbgemm_fp8"})", 45, 203},
};

TEST_P(Fp8KernelChoice, EveryGranularityAndDtypeGivesTheScalarBytes) {
  for (const Case& c : kCases) {
    for (DLDataType dtype : {qforge::test::f32(), qforge::test::f16(), qforge::test::bf16()}) {
      SCOPED_TRACE(std::string(c.name) + ", dtype bits " + std::to_string(dtype.bits) + " code " +
                   std::to_string(dtype.code));
      const Outputs ref = run("scalar", c, dtype, 1);
      const Outputs got = run(cpu::isa_name(GetParam()), c, dtype, 3);
      ASSERT_EQ(ref.tensors.size(), got.tensors.size());
      for (size_t i = 0; i < ref.tensors.size(); ++i) {
        EXPECT_EQ(got.tensors[i].first, ref.tensors[i].first);
        EXPECT_TRUE(got.tensors[i].second == ref.tensors[i].second)
            << got.tensors[i].first << " differs from the scalar kernel's";
      }
    }
  }
}

// A DeepSeek-V3-style load: [128, 128] blocks over a ragged 200 x 300 weight, scales
// ceil-divided [2, 3], codes of every value including NaN.
TEST_P(Fp8KernelChoice, RaggedPreQuantizedLoadsDequantizeAndForwardAsScalar) {
  const Fp8Config config = parse_fp8_config(R"({"quant_method":"fp8"})");
  Module m("proj", QF_MODULE_LINEAR, 200, 300, false, qforge::test::bf16());
  TensorList list;
  HostTensor& q = list.add("weight", sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8), {200, 300});
  HostTensor& s = list.add("weight_scale_inv", qforge::test::f32(), {2, 3});
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> code(0, 255);
  for (int64_t i = 0; i < 200 * 300; ++i) {
    auto c = static_cast<uint8_t>(code(rng));
    if ((c & 0x7F) == 0x7F && i % 1000 != 0) c = 0x40;  // a few NaN codes only
    q.data<uint8_t>()[i] = c;
  }
  for (int i = 0; i < 6; ++i) s.data<float>()[i] = 0.001f * static_cast<float>(i + 1);
  HostTensor x(qforge::test::f32(), {3, 300});
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < 900; ++i) x.data<float>()[i] = normal(rng);
  const auto outputs = [&](const char* kernel) {
    KernelEnv env(kernel);
    std::vector<Bytes> out;
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    dequantize_fp8(sdk::Call(nullptr), config, m.get(), list.get(), handle);
    out.push_back(bytes_of_tensor(dense.find("weight")->get()));
    HostTensor y(qforge::test::f32(), {3, 200});
    linear_forward_fp8(sdk::Call(nullptr), config, m.get(), list.get(), x.get(), nullptr, y.get());
    out.push_back(bytes_of_tensor(y.get()));
    return out;
  };
  const std::vector<Bytes> ref = outputs("scalar");
  const std::vector<Bytes> got = outputs(cpu::isa_name(GetParam()));
  EXPECT_TRUE(got[0] == ref[0]) << "dequantized weight differs";
  EXPECT_TRUE(got[1] == ref[1]) << "forward output differs";
}

TEST_P(Fp8KernelChoice, NonFiniteWeightsAreNamedAsWithTheScalarKernel) {
  const Fp8Config config = parse_fp8_config(R"({"quant_method":"fp8"})");
  Module m("proj", QF_MODULE_LINEAR, 256, 256, false, qforge::test::bf16());
  HostTensor w(qforge::test::bf16(), {256, 256});
  fill(w, 256, 256, 4);
  // Two bad values: the one in the earlier tile (tile order, not row order) must be named.
  cpu::scalar::narrow(std::numeric_limits<float>::infinity(), cpu::Dense::kBF16,
                      w.data<unsigned char>(), 10 * 256 + 200);
  cpu::scalar::narrow(std::numeric_limits<float>::quiet_NaN(), cpu::Dense::kBF16,
                      w.data<unsigned char>(), 100 * 256 + 7);
  const auto error = [&](const char* kernel, Method method) {
    KernelEnv env(kernel);
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    try {
      if (method == Method::kFp8) {
        quantize_fp8(sdk::Call(nullptr), config, m.get(), w.get(), handle);
      } else {
        quantize_fbgemm(sdk::Call(nullptr), m.get(), w.get(), handle);
      }
    } catch (const sdk::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string fp8 = error(cpu::isa_name(GetParam()), Method::kFp8);
  EXPECT_EQ(fp8, error("scalar", Method::kFp8));
  EXPECT_NE(fp8.find("(NaN) at [100, 7] in tile (0, 0)"), std::string::npos) << fp8;
  const std::string rows = error(cpu::isa_name(GetParam()), Method::kFbgemm);
  EXPECT_EQ(rows, error("scalar", Method::kFbgemm));
  EXPECT_NE(rows.find("(Inf) at [10, 200] in row 10"), std::string::npos) << rows;
}

INSTANTIATE_TEST_SUITE_P(Isas, Fp8KernelChoice,
                         ::testing::Values(cpu::Isa::kAvx2, cpu::Isa::kAvx512),
                         [](const ::testing::TestParamInfo<cpu::Isa>& p) {
                           return std::string(cpu::isa_name(p.param));
                         });

}  // namespace
}  // namespace qforge::plugins::fp8

namespace qforge::plugins::fp8 {
namespace {

// `qforge doctor` prints describe_quantized's "kernels": the CPU entry names the kernel family
// this machine runs, and follows QFORGE_FP8_KERNEL.
TEST(Fp8KernelReport, DescribeQuantizedNamesTheCpuKernel) {
  qforge::test::TestHost host;
  sdk::g_host = host.api();
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 256, 256, false, qforge::test::bf16());
  Fp8Quantizer fp8(R"({"quant_method":"fp8"})");
  FbgemmFp8Quantizer fbgemm(R"({"quant_method":"fbgemm_fp8"})");
  for (const char* kernel : {"scalar", "avx2", "avx512"}) {
    KernelEnv env(kernel);
    const std::string expected = std::string("CPU kernel ") + cpu::isa_name(cpu::select_isa());
    for (sdk::Quantizer* q :
         {static_cast<sdk::Quantizer*>(&fp8), static_cast<sdk::Quantizer*>(&fbgemm)}) {
      const std::string cpu_entry =
          nlohmann::json::parse(q->describe_quantized(m.get()))["kernels"]["cpu"]
              .get<std::string>();
      EXPECT_NE(cpu_entry.find(expected), std::string::npos) << kernel << ": " << cpu_entry;
    }
  }
}

}  // namespace
}  // namespace qforge::plugins::fp8
