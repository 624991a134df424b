#include "bench_figures.hpp"

#include <qforge/qf_plugin.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <utility>

#include "bench_kernels.hpp"
#include "qforge/logging.hpp"

namespace qforge::cli::bench {
namespace {

constexpr double kGB = 1e9;
constexpr int64_t kMiB = int64_t{1} << 20;

// Keeps the reference's sums observable so the compiler cannot drop the loads.
volatile uint64_t g_sink = 0;

ModuleInfo linear_module(const std::string& name, int64_t out, int64_t in, DLDataType dtype) {
  ModuleInfo m;
  m.name = name;
  m.kind = QF_MODULE_LINEAR;
  m.in_features = in;
  m.out_features = out;
  m.weight_dtype = dtype;
  return m;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Roughly N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall), cheap enough for GiBs.
float gaussish(uint64_t r) {
  const auto s =
      static_cast<float>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
  return (s - 131070.0f) / 37837.2f;
}

uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  x += 0x7FFFu + ((x >> 16) & 1u);  // round to nearest even; inputs are finite
  return static_cast<uint16_t>(x >> 16);
}

uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const int32_t exponent = static_cast<int32_t>((x >> 23) & 0xFFu) - 127 + 15;
  uint32_t mantissa = x & 0x7FFFFFu;
  if (exponent >= 31) return sign | 0x7C00u;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000u;
    const auto shift = static_cast<uint32_t>(14 - exponent);
    return static_cast<uint16_t>(sign | ((mantissa + (1u << (shift - 1))) >> shift));
  }
  return static_cast<uint16_t>((sign | (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13)) +
                               ((mantissa >> 12) & 1u));
}

// Fills a float tensor with scale * N(0,1)-ish values, split across the team.
void fill_random(ThreadTeam& team, Tensor& t, uint64_t seed, float scale) {
  const DLDataType dtype = t.dtype();
  const auto n = static_cast<size_t>(t.numel());
  team.run([&](int index, int count) {
    size_t b = 0, e = 0;
    slice_of(n, 64, index, count, &b, &e);
    uint64_t state = seed * 0x100000001B3ull + static_cast<uint64_t>(index);
    for (size_t i = b; i < e; ++i) {
      const float v = scale * gaussish(splitmix64(state));
      if (dtype.code == kDLFloat && dtype.bits == 32) {
        t.data_as<float>()[i] = v;
      } else if (dtype.code == kDLBfloat) {
        t.data_as<uint16_t>()[i] = to_bf16(v);
      } else {
        t.data_as<uint16_t>()[i] = to_f16(v);
      }
    }
  });
}

Tensor random_tensor(ThreadTeam& team, DLDataType dtype, std::vector<int64_t> shape, uint64_t seed,
                     float scale) {
  Tensor t = Tensor::zeros(dtype, std::move(shape)).value();
  fill_random(team, t, seed, scale);
  return t;
}

uint64_t total_bytes(const std::vector<NamedTensor>& tensors) {
  uint64_t sum = 0;
  for (const auto& t : tensors) sum += t.tensor.nbytes();
  return sum;
}

// A missing hook (or one the plugin reports as not implemented) says which figures cannot be
// measured and why, instead of a bare plugin error.
Error hook_error(const Error& e, const Quantizer& q, const std::string& hook,
                 const std::string& figures) {
  if (e.code() != ErrorCode::kUnimplemented) return e;
  return Error(e.code(), e.exit_code(),
               "method '" + q.quant_method() + "' (plugin '" + q.plugin_id() + "') cannot be " +
                   "benchmarked for " + figures + ": it has no working " + hook + " hook",
               e.summary() + (e.why().empty() ? "" : ": " + e.why()),
               "benchmark a method whose plugin implements " + hook + ", e.g. --method nf4");
}

template <class T>
T checked(Result<T> r, const Quantizer& q, const std::string& hook, const std::string& figures) {
  if (!r.ok()) throw hook_error(r.error(), q, hook, figures);
  return std::move(r).value();
}

void checked(const Status& s, const Quantizer& q, const std::string& hook,
             const std::string& figures) {
  if (!s.ok()) throw hook_error(s.error(), q, hook, figures);
}

std::vector<NamedTensor> copy_of(const std::vector<NamedTensor>& tensors) {
  std::vector<NamedTensor> out;
  for (const auto& t : tensors) {
    Tensor c = Tensor::zeros(t.tensor.dtype(), t.tensor.shape()).value();
    if (t.tensor.nbytes() > 0) std::memcpy(c.data(), t.tensor.data(), t.tensor.nbytes());
    out.push_back(NamedTensor{t.name, std::move(c)});
  }
  return out;
}

int64_t rows_for(int64_t mib, int64_t cols, DLDataType dtype) {
  const auto row_bytes = cols * static_cast<int64_t>(dtype_size(dtype));
  return std::max<int64_t>(1, mib * kMiB / row_bytes);
}

// Per-repetition throughputs from times: bytes / seconds in GB/s.
std::vector<double> gbps(const std::vector<double>& seconds, double bytes) {
  std::vector<double> out;
  for (double s : seconds) out.push_back(bytes / s / kGB);
  return out;
}

std::vector<double> divide(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) out.push_back(a[i] / b[i]);
  return out;
}

// The vector paths of the dense reference must agree with its scalar oracle, or R4 would
// compare against a wrong kernel; an odd shape exercises the row and column tails.
void self_check_dense(ThreadTeam& team, const std::vector<int64_t>& batches) {
  const int64_t rows = 37, cols = 100;
  Tensor w = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {rows, cols}, 11, 1.0f);
  for (int64_t b : batches) {
    Tensor x = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {b, cols}, 12, 1.0f);
    std::vector<float> fast(static_cast<size_t>(b * rows)), slow(fast.size());
    dense_gemm_f32(team, w.data_as<float>(), rows, cols, x.data_as<float>(), b, fast.data());
    dense_gemm_f32_scalar(w.data_as<float>(), rows, cols, x.data_as<float>(), b, slow.data());
    for (size_t i = 0; i < fast.size(); ++i) {
      if (std::fabs(fast[i] - slow[i]) > 1e-3f * (1.0f + std::fabs(slow[i]))) {
        throw internal_error("the dense reference GEMV disagrees with its scalar oracle",
                             "batch " + std::to_string(b) + ", element " + std::to_string(i) +
                                 ": " + std::to_string(fast[i]) + " vs " + std::to_string(slow[i]) +
                                 " (" + reference_isa() + " path)");
      }
    }
  }
}

struct GemvLayers {
  ModuleInfo module;
  std::vector<std::vector<NamedTensor>> owned;
  std::vector<std::vector<NamedView>> views;
  std::vector<std::vector<const void*>> buffers;
  std::vector<std::vector<size_t>> sizes;
  uint64_t layer_bytes = 0;
};

// One quantized layer copied into enough distinct buffers that a pass streams weights_mib from
// DRAM; every buffer is written (touched) here, before any timing.
GemvLayers make_layers(Quantizer& q, const BenchOptions& o) {
  GemvLayers g;
  g.module = linear_module("bench.gemv", o.out_features, o.in_features, o.dtype);
  {
    ThreadTeam team(o.threads);
    const Tensor w = random_tensor(team, o.dtype, {o.out_features, o.in_features}, 3, 0.02f);
    g.owned.push_back(checked(q.quantize(g.module, TensorView::of(w), nullptr, o.threads), q,
                              "quantize", "R3/R4 (their weights are quantized first)"));
  }
  g.layer_bytes = total_bytes(g.owned.front());
  const auto wanted = static_cast<uint64_t>(o.weights_mib * kMiB);
  const uint64_t count = std::max<uint64_t>(2, (wanted + g.layer_bytes - 1) / g.layer_bytes);
  while (g.owned.size() < count) g.owned.push_back(copy_of(g.owned.front()));
  for (const auto& layer : g.owned) {
    g.views.push_back(views_of(layer));
    std::vector<const void*> bufs;
    std::vector<size_t> sizes;
    for (const auto& t : layer) {
      bufs.push_back(t.tensor.data());
      sizes.push_back(t.tensor.nbytes());
    }
    g.buffers.push_back(std::move(bufs));
    g.sizes.push_back(std::move(sizes));
  }
  return g;
}

Figure measure_r3(Quantizer& q, const BenchOptions& o, const GemvLayers& g, int threads) {
  ThreadTeam team(threads);
  Tensor x = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {1, o.in_features}, 5, 1.0f);
  Tensor y = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {1, o.out_features}).value();
  const TensorView xv = TensorView::of(x);
  const auto candidate = [&] {
    for (const auto& views : g.views) {
      checked(q.linear_forward(g.module, views, xv, nullptr, y, threads), q, "linear_forward",
              "R3/R4");
    }
  };
  const auto reference = [&] {
    uint64_t sum = 0;
    for (size_t l = 0; l < g.buffers.size(); ++l) {
      sum += parallel_stream_read(team, g.buffers[l], g.sizes[l]);
    }
    g_sink = g_sink + sum;
  };
  const Interleaved t = run_interleaved(o.reps, reference, candidate);
  const double pass = static_cast<double>(g.layer_bytes) * static_cast<double>(g.owned.size());
  Figure f;
  f.id = "R3";
  f.name = "gemv";
  f.candidate = q.quant_method() + " linear_forward, batch 1";
  f.reference = std::string("streaming read (") + reference_isa() + ")";
  f.threads = threads;
  f.target = 0.9;
  f.ratio = spread_of(divide(t.reference_s, t.candidate_s));
  f.candidate_gbps = spread_of(gbps(t.candidate_s, pass));
  f.reference_gbps = spread_of(gbps(t.reference_s, pass));
  f.detail = {{"shape", {o.out_features, o.in_features}},
              {"layers", g.owned.size()},
              {"layer_bytes", g.layer_bytes},
              {"pass_bytes", static_cast<uint64_t>(pass)}};
  return f;
}

Figure measure_r4(Quantizer& q, const BenchOptions& o, const GemvLayers& g,
                  const std::vector<Tensor>& dense, ThreadTeam& team, int64_t batch) {
  Tensor x = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {batch, o.in_features}, 7, 1.0f);
  Tensor y = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {batch, o.out_features}).value();
  std::vector<float> yd(static_cast<size_t>(batch * o.out_features));
  const TensorView xv = TensorView::of(x);
  const auto candidate = [&] {
    for (const auto& views : g.views) {
      checked(q.linear_forward(g.module, views, xv, nullptr, y, o.threads), q, "linear_forward",
              "R3/R4");
    }
  };
  const auto reference = [&] {
    for (const auto& w : dense) {
      dense_gemm_f32(team, w.data_as<float>(), o.out_features, o.in_features, x.data_as<float>(),
                     batch, yd.data());
    }
  };
  const Interleaved t = run_interleaved(o.reps, reference, candidate);
  const double dense_layer = static_cast<double>(o.out_features * o.in_features * 4);
  const auto nd = static_cast<double>(dense.size());
  const auto n4 = static_cast<double>(g.owned.size());
  std::vector<double> ratios, fractions;
  Figure f;
  f.byte_ratio = dense_layer / static_cast<double>(g.layer_bytes);
  for (size_t i = 0; i < t.reference_s.size(); ++i) {
    ratios.push_back((t.reference_s[i] / nd) / (t.candidate_s[i] / n4));
    fractions.push_back(ratios.back() / f.byte_ratio);
  }
  f.id = "R4";
  f.name = "gemv-vs-fp32";
  f.candidate = q.quant_method() + " linear_forward, batch " + std::to_string(batch);
  f.reference = std::string("dense fp32 GEMV (") + reference_isa() + " FMA)";
  f.threads = o.threads;
  f.batch = batch;
  f.target = 0.8;
  f.ratio = spread_of(ratios);
  f.fraction = spread_of(fractions);
  f.candidate_gbps = spread_of(gbps(t.candidate_s, static_cast<double>(g.layer_bytes) * n4));
  f.reference_gbps = spread_of(gbps(t.reference_s, dense_layer * nd));
  f.detail = {{"shape", {o.out_features, o.in_features}},
              {"layers_4bit", g.owned.size()},
              {"layers_fp32", dense.size()},
              {"layer_bytes_4bit", g.layer_bytes},
              {"layer_bytes_fp32", static_cast<uint64_t>(dense_layer)}};
  return f;
}

// The step count the plugin logged during run() ("steps=N", the last one), or 0 when it logged
// none: plugins get debug logging only when qforge runs with -v.
int logged_steps(const Quantizer& q, const std::function<void()>& run) {
  const auto logger = get_logger("plugin." + q.plugin_id());
  std::ostringstream text;
  const auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
  sink->set_pattern("%v");
  logger->sinks().push_back(sink);
  try {
    run();
  } catch (...) {
    logger->sinks().pop_back();
    throw;
  }
  logger->sinks().pop_back();
  const std::string s = text.str();
  const size_t at = s.rfind("steps=");
  return at == std::string::npos ? 0 : std::atoi(s.c_str() + at + 6);
}

// The GPTQ algorithm's nominal FLOPs given H (docs/bench.md, R5): Hinv as one Cholesky and one
// triangular inverse (I^3/3 each) plus the error feedback, every column's error times its
// Hinv row into the columns after it (2 * O * I^2 / 2). Quantizing the codes is O(O * I).
double gptq_flops(int64_t out, int64_t in) {
  const auto o = static_cast<double>(out), i = static_cast<double>(in);
  return 2.0 / 3.0 * i * i * i + o * i * i;
}

// H = 2/N * X^T X over N calibration rows with unequal input scales (so act-order has something
// to sort), float32 [in, in], built with the fp32 GEMM 16 inputs at a time. Not timed.
Tensor make_hessian(ThreadTeam& team, int64_t in, int64_t tokens) {
  Tensor xt = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {in, tokens}, 21, 1.0f);
  float* x = xt.data_as<float>();
  for (int64_t r = 0; r < in; ++r) {
    const float s = 0.25f + static_cast<float>((r * 37) % 101) / 50.0f;
    for (int64_t t = 0; t < tokens; ++t) x[r * tokens + t] *= s;
  }
  Tensor h = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {in, in}).value();
  float* hp = h.data_as<float>();
  for (int64_t r0 = 0; r0 < in; r0 += 16) {
    const int64_t b = std::min<int64_t>(16, in - r0);
    dense_gemm_f32(team, x, in, tokens, x + r0 * tokens, b, hp + r0 * in);
  }
  const float scale = 2.0f / static_cast<float>(tokens);
  for (int64_t n = 0; n < in * in; ++n) hp[n] *= scale;
  return h;
}

}  // namespace

nlohmann::json figure_json(const Figure& f) {
  nlohmann::json j = {
      {"id", f.id},
      {"name", f.name},
      {"candidate", f.candidate},
      {"reference", f.reference},
      {"threads", f.threads},
      {"ratio", spread_json(f.ratio)},
      {f.id == "R5" ? "candidate_gflops" : "candidate_gbps", spread_json(f.candidate_gbps)},
      {f.id == "R5" ? "reference_gflops" : "reference_gbps", spread_json(f.reference_gbps)},
      {"target", f.target},
      {"meets_target", f.meets_target()},
      {"detail", f.detail}};
  if (f.batch > 0) j["batch"] = f.batch;
  if (f.byte_ratio > 0) {
    j["byte_ratio"] = f.byte_ratio;
    j["fraction_of_byte_ratio"] = spread_json(f.fraction);
  }
  return j;
}

Figure measure_quantize(Quantizer& q, const BenchOptions& o) {
  ThreadTeam team(o.threads);
  const int64_t rows = rows_for(o.size_mib, o.cols, o.dtype);
  const Tensor weight = random_tensor(team, o.dtype, {rows, o.cols}, 1, 0.02f);
  Tensor copy = Tensor::zeros(o.dtype, {rows, o.cols}).value();  // touched by the warm-up
  const ModuleInfo module = linear_module("bench.quantize", rows, o.cols, o.dtype);
  const TensorView view = TensorView::of(weight);
  uint64_t out_bytes = 0;
  const auto candidate = [&] {
    const auto out = checked(q.quantize(module, view, nullptr, o.threads), q, "quantize", "R1");
    out_bytes = total_bytes(out);
  };
  const auto reference = [&] {
    parallel_memcpy(team, copy.data(), weight.data(), weight.nbytes());
  };
  const Interleaved t = run_interleaved(o.reps, reference, candidate);
  const auto in_bytes = static_cast<double>(weight.nbytes());
  Figure f;
  f.id = "R1";
  f.name = "quantize";
  f.candidate = q.quant_method() + " quantize";
  f.reference = "memcpy";
  f.threads = o.threads;
  f.target = 0.5;
  f.candidate_gbps = spread_of(gbps(t.candidate_s, in_bytes + static_cast<double>(out_bytes)));
  // memcpy moves every byte twice (read + write): its bytes per second count both, as the
  // quantizer's count its input and its output.
  const std::vector<double> ref = gbps(t.reference_s, 2 * in_bytes);
  f.reference_gbps = spread_of(ref);
  f.ratio = spread_of(divide(gbps(t.candidate_s, in_bytes + static_cast<double>(out_bytes)), ref));
  f.detail = {{"shape", {rows, o.cols}},
              {"dtype", dtype_to_string(o.dtype)},
              {"bytes_in", weight.nbytes()},
              {"bytes_out", out_bytes},
              {"memcpy_bytes", weight.nbytes()}};
  return f;
}

std::vector<Figure> measure_quantize_solver(Quantizer& with, Quantizer& without,
                                            const BenchOptions& o) {
  ThreadTeam team(o.threads);
  const int64_t rows = rows_for(o.size_mib, o.cols, o.dtype);
  const Tensor weight = random_tensor(team, o.dtype, {rows, o.cols}, 1, 0.02f);  // R1's weight
  Tensor copy = Tensor::zeros(o.dtype, {rows, o.cols}).value();
  const ModuleInfo module = linear_module("bench.quantize", rows, o.cols, o.dtype);
  const TensorView view = TensorView::of(weight);
  uint64_t out_bytes = 0;
  const auto run = [&](Quantizer& q) {
    const auto out = checked(q.quantize(module, view, nullptr, o.threads), q, "quantize", "R1");
    out_bytes = total_bytes(out);
  };
  const auto memcpy_ref = [&] {
    parallel_memcpy(team, copy.data(), weight.data(), weight.nbytes());
  };
  const int steps = logged_steps(with, [&] { run(with); });
  const Interleaved base = run_interleaved(o.reps, memcpy_ref, [&] { run(without); });
  const Interleaved paired = run_interleaved(
      o.reps, [&] { run(without); }, [&] { run(with); });
  const auto in_bytes = static_cast<double>(weight.nbytes());
  const std::vector<double> ref = gbps(base.reference_s, 2 * in_bytes);
  const Spread ref_spread = spread_of(ref);
  const nlohmann::json detail = {
      {"shape", {rows, o.cols}}, {"dtype", dtype_to_string(o.dtype)}, {"bytes_in", weight.nbytes()},
      {"bytes_out", out_bytes},  {"memcpy_bytes", weight.nbytes()},   {"solver_steps", steps}};
  std::vector<Figure> figures;
  Figure plain;
  plain.id = "R1";
  plain.name = "quantize-no-solver";
  plain.candidate = without.quant_method() + " quantize, solver off";
  plain.reference = "memcpy";
  plain.threads = o.threads;
  plain.target = 0.5;
  const std::vector<double> cand =
      gbps(base.candidate_s, in_bytes + static_cast<double>(out_bytes));
  plain.candidate_gbps = spread_of(cand);
  plain.reference_gbps = ref_spread;
  plain.ratio = spread_of(divide(cand, ref));
  plain.detail = detail;
  figures.push_back(plain);
  // The solver's time per rep: the paired difference (interleaved, so drift hits both alike).
  std::vector<double> solver_s;
  for (size_t i = 0; i < paired.candidate_s.size(); ++i) {
    solver_s.push_back(std::max(paired.candidate_s[i] - paired.reference_s[i], 1e-9));
  }
  const auto solver_figure = [&](const std::string& name, const std::string& what, double per) {
    std::vector<double> s;
    for (double t : solver_s) s.push_back(t / per);
    const std::vector<double> g = gbps(s, in_bytes);
    Figure f;
    f.id = "R1";
    f.name = name;
    f.candidate = with.quant_method() + " " + what;
    f.reference = "memcpy";
    f.threads = o.threads;
    f.target = 0.5;
    f.candidate_gbps = spread_of(g);
    f.reference_gbps = ref_spread;
    f.ratio = spread_of(divide(g, std::vector<double>(g.size(), ref_spread.median)));
    f.detail = detail;
    return f;
  };
  figures.push_back(solver_figure("solver", "solver, all steps", 1));
  if (steps > 0) {
    figures.push_back(solver_figure("solver-step",
                                    "solver, one step (of " + std::to_string(steps) + ")",
                                    static_cast<double>(steps)));
  }
  return figures;
}

Figure measure_dequantize(Quantizer& q, const BenchOptions& o) {
  ThreadTeam team(o.threads);
  const int64_t rows = rows_for(o.size_mib, o.cols, o.dtype);
  const ModuleInfo module = linear_module("bench.dequantize", rows, o.cols, o.dtype);
  std::vector<NamedTensor> packed;
  uint64_t dense_bytes = 0;
  {
    const Tensor weight = random_tensor(team, o.dtype, {rows, o.cols}, 2, 0.02f);
    dense_bytes = weight.nbytes();
    packed = checked(q.quantize(module, TensorView::of(weight), nullptr, o.threads), q, "quantize",
                     "R2 (its input is quantized first)");
  }
  const std::vector<NamedView> views = views_of(packed);
  // Written, not just allocated: large tensors are lazily zeroed mappings, and a memcpy from
  // pages never touched would read the shared zero page from cache instead of DRAM.
  const Tensor src = random_tensor(team, o.dtype, {rows, o.cols}, 4, 0.02f);
  Tensor dst = Tensor::zeros(o.dtype, {rows, o.cols}).value();
  uint64_t out_bytes = 0;
  const auto candidate = [&] {
    const auto out = checked(q.dequantize(module, views, o.threads), q, "dequantize", "R2");
    out_bytes = total_bytes(out);
  };
  const auto reference = [&] { parallel_memcpy(team, dst.data(), src.data(), dense_bytes); };
  const Interleaved t = run_interleaved(o.reps, reference, candidate);
  const auto in_bytes = static_cast<double>(total_bytes(packed));
  const std::vector<double> cand = gbps(t.candidate_s, in_bytes + static_cast<double>(out_bytes));
  const std::vector<double> ref = gbps(t.reference_s, 2 * static_cast<double>(dense_bytes));
  Figure f;
  f.id = "R2";
  f.name = "dequantize";
  f.candidate = q.quant_method() + " dequantize";
  f.reference = "memcpy";
  f.threads = o.threads;
  f.target = 0.7;
  f.candidate_gbps = spread_of(cand);
  f.reference_gbps = spread_of(ref);
  f.ratio = spread_of(divide(cand, ref));
  f.detail = {{"shape", {rows, o.cols}},
              {"dtype", dtype_to_string(o.dtype)},
              {"bytes_in", total_bytes(packed)},
              {"bytes_out", out_bytes},
              {"memcpy_bytes", dense_bytes}};
  return f;
}

std::vector<Figure> measure_gemv(Quantizer& q, const BenchOptions& o) {
  const GemvLayers g = make_layers(q, o);
  std::vector<Figure> figures;
  for (int threads : o.gemv_threads) figures.push_back(measure_r3(q, o, g, threads));

  ThreadTeam team(o.threads);
  self_check_dense(team, o.batches);
  const int64_t dense_layer = o.out_features * o.in_features * 4;
  const int64_t wanted = o.weights_mib * kMiB;
  const int64_t count = std::max<int64_t>(2, (wanted + dense_layer - 1) / dense_layer);
  std::vector<Tensor> dense;
  for (int64_t i = 0; i < count; ++i) {
    dense.push_back(random_tensor(team, DLDataType{kDLFloat, 32, 1},
                                  {o.out_features, o.in_features}, 100 + static_cast<uint64_t>(i),
                                  0.02f));
  }
  for (int64_t b : o.batches) figures.push_back(measure_r4(q, o, g, dense, team, b));
  return figures;
}

Figure measure_gptq(Quantizer& q, const BenchOptions& o) {
  ThreadTeam team(o.threads);
  const int64_t out = o.gptq_out, in = o.gptq_in;
  const ModuleInfo module = linear_module("bench.gptq", out, in, o.dtype);
  const Tensor weight = random_tensor(team, o.dtype, {out, in}, 22, 0.02f);
  const Tensor hessian = make_hessian(team, in, o.calib_tokens);
  const std::vector<NamedView> calibration{NamedView{"hessian", TensorView::of(hessian)}};
  const TensorView view = TensorView::of(weight);
  // The reference: the layer's weight in fp32 times 16 columns, as many calls as make up the
  // algorithm's FLOPs.
  const Tensor dense = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {out, in}, 23, 0.02f);
  const Tensor x = random_tensor(team, DLDataType{kDLFloat, 32, 1}, {16, in}, 24, 1.0f);
  std::vector<float> y(static_cast<size_t>(16 * out));
  self_check_dense(team, {16});
  const double flops = gptq_flops(out, in);
  const double call_flops = 2.0 * static_cast<double>(out) * static_cast<double>(in) * 16.0;
  const auto calls = static_cast<int64_t>(std::ceil(flops / call_flops));
  const auto candidate = [&] {
    checked(q.quantize(module, view, nullptr, o.threads, &calibration), q, "quantize",
            "R5 (the GPTQ algorithm runs in quantize, given a Hessian)");
  };
  const auto reference = [&] {
    for (int64_t c = 0; c < calls; ++c) {
      dense_gemm_f32(team, dense.data_as<float>(), out, in, x.data_as<float>(), 16, y.data());
    }
  };
  const Interleaved t = run_interleaved(o.reps, reference, candidate);
  const double ref_flops = call_flops * static_cast<double>(calls);
  std::vector<double> ratios;
  for (size_t i = 0; i < t.reference_s.size() && i < t.candidate_s.size(); ++i) {
    // The reference's time for exactly the algorithm's FLOPs at its own rate.
    ratios.push_back(t.reference_s[i] * (flops / ref_flops) / t.candidate_s[i]);
  }
  Figure f;
  f.id = "R5";
  f.name = "gptq";
  f.candidate = q.quant_method() + " quantize with a Hessian (GPTQ algorithm)";
  f.reference = std::string("fp32 GEMM x16 (") + reference_isa() + ")";
  f.threads = o.threads;
  f.target = 0.3;
  f.ratio = spread_of(ratios);
  f.candidate_gbps = spread_of(gbps(t.candidate_s, flops));
  f.reference_gbps = spread_of(gbps(t.reference_s, ref_flops));
  f.detail = {{"shape", {out, in}},
              {"dtype", dtype_to_string(o.dtype)},
              {"calibration_tokens", o.calib_tokens},
              {"flops", flops},
              {"reference_calls", calls},
              {"reference_flops", ref_flops}};
  return f;
}

}  // namespace qforge::cli::bench
