// Micro-benchmarks of the bnb plugin's 4-bit hooks (quantize, dequantize, linear_forward)
// through qforge::Quantizer, one layer at a time. A single layer may sit in cache, so these
// numbers are for profiling and regressions by hand, not the R1-R4 ratios (`qforge bench`).
//
//   qforge_micro_bench --benchmark_filter=Nf4Gemv --benchmark_repetitions=5
#include <benchmark/benchmark.h>
#include <qforge/qf_plugin.h>

#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>

#include "qforge/host.hpp"

namespace {

using qforge::ModuleInfo;
using qforge::NamedTensor;
using qforge::Quantizer;
using qforge::Tensor;
using qforge::TensorView;

const DLDataType kF32{kDLFloat, 32, 1};
const DLDataType kBF16{kDLBfloat, 16, 1};

// One host and one NF4 quantizer for the whole run, from this build tree's plugin folder.
Quantizer& nf4() {
  static const auto state = [] {
    qforge::HostOptions options;
    options.plugin_dirs = {QFORGE_BUILD_PLUGIN_DIR};
    options.use_default_dirs = false;
    options.use_env_path = false;
    auto host = std::make_shared<qforge::Host>(options);
    qforge::ConfigRequest request;
    request.method = "nf4";
    const qforge::ResolvedConfig config = host->resolve(request).value();
    std::shared_ptr<Quantizer> q =
        host->create_quantizer("bnb", config.quant_method, config.config).value();
    const nlohmann::json req = {
        {"pre_quantized", false}, {"dtype", nullptr}, {"device", "cpu"}, {"device_map", nullptr}};
    if (!q->validate_environment(host->environment().to_json(), req).ok()) {
      throw std::runtime_error("bnb refused this environment");
    }
    return std::make_pair(host, q);
  }();
  return *state.second;
}

ModuleInfo linear(int64_t out, int64_t in) {
  ModuleInfo m;
  m.name = "bench.layer";
  m.kind = QF_MODULE_LINEAR;
  m.out_features = out;
  m.in_features = in;
  m.weight_dtype = kBF16;
  return m;
}

Tensor random_weight(int64_t out, int64_t in) {
  Tensor w = Tensor::zeros(kBF16, {out, in}).value();
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  auto* p = w.data_as<uint16_t>();
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float v = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    p[i] = static_cast<uint16_t>(bits >> 16);
  }
  return w;
}

uint64_t bytes_of(const std::vector<NamedTensor>& tensors) {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.tensor.nbytes();
  return n;
}

// range(0): rows of a [rows, 4096] weight; range(1): threads.
void BM_Nf4Quantize(benchmark::State& state) {
  const ModuleInfo m = linear(state.range(0), 4096);
  const Tensor w = random_weight(m.out_features, m.in_features);
  const auto threads = static_cast<int>(state.range(1));
  uint64_t out = 0;
  for (auto _ : state) {
    auto q = nf4().quantize(m, TensorView::of(w), nullptr, threads).value();
    out = bytes_of(q);
    benchmark::DoNotOptimize(q);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (w.nbytes() + out)));
}
BENCHMARK(BM_Nf4Quantize)->Args({4096, 1})->Args({4096, 2})->UseRealTime();

void BM_Nf4Dequantize(benchmark::State& state) {
  const ModuleInfo m = linear(state.range(0), 4096);
  const Tensor w = random_weight(m.out_features, m.in_features);
  const auto threads = static_cast<int>(state.range(1));
  const auto packed = nf4().quantize(m, TensorView::of(w), nullptr, threads).value();
  const auto views = qforge::views_of(packed);
  for (auto _ : state) {
    auto d = nf4().dequantize(m, views, threads).value();
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * (bytes_of(packed) + w.nbytes())));
}
BENCHMARK(BM_Nf4Dequantize)->Args({4096, 1})->Args({4096, 2})->UseRealTime();

// range(0): batch; range(1): threads. Bytes are the 4-bit weight's, read once per call.
void BM_Nf4Gemv(benchmark::State& state) {
  const ModuleInfo m = linear(4096, 4096);
  const Tensor w = random_weight(m.out_features, m.in_features);
  const auto threads = static_cast<int>(state.range(1));
  const auto packed = nf4().quantize(m, TensorView::of(w), nullptr, threads).value();
  const auto views = qforge::views_of(packed);
  Tensor x = Tensor::zeros(kF32, {state.range(0), m.in_features}).value();
  for (int64_t i = 0; i < x.numel(); ++i) x.data_as<float>()[i] = static_cast<float>(i % 7) - 3;
  Tensor y = Tensor::zeros(kF32, {state.range(0), m.out_features}).value();
  for (auto _ : state) {
    if (!nf4().linear_forward(m, views, TensorView::of(x), nullptr, y, threads).ok()) {
      state.SkipWithError("linear_forward failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes_of(packed)));
}
BENCHMARK(BM_Nf4Gemv)->ArgsProduct({{1, 4, 16}, {1, 2}})->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
