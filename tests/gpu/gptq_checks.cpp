// GPU vs CPU checks of the gptq plugin (see gptq_checks.hpp). Every layer is quantized by the
// plugin's CPU path (round-to-nearest: no Hessian); the GPU hooks get device copies of its
// tensors. The CPU side runs the scalar kernels, the reference the vector ones are tested
// against bit for bit in the unit tests.
#include "gptq_checks.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

using Tensors = std::vector<std::unique_ptr<OwnedTensor>>;

double dtype_tol(DLDataType d) {
  return d.bits == 32 ? 1e-4 : (d.code == kDLFloat ? 2e-3 : 1.6e-2);
}

Tensors copies(const Tensors& ts, bool on_gpu) {
  Tensors out;
  for (const auto& t : ts) {
    const auto bytes = host_bytes(t->t);
    out.push_back(make_tensor(t->name, t->t.dtype, t->shape, on_gpu, bytes.data()));
  }
  return out;
}

std::string shape_label(int64_t out, int64_t in) {
  return "[" + std::to_string(out) + "x" + std::to_string(in) + "]";
}

// Replaces g_idx by a shuffled one with every group still used (an act-order checkpoint's
// g_idx: input i's group is not i / group_size).
void permute_g_idx(Tensors& ts, uint32_t seed) {
  for (auto& t : ts) {
    if (t->name != "g_idx") continue;
    auto bytes = host_bytes(t->t);
    std::vector<int32_t> idx(bytes.size() / 4);
    std::memcpy(idx.data(), bytes.data(), bytes.size());
    std::mt19937 rng(seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    t = make_tensor("g_idx", t->t.dtype, t->shape, t->on_gpu, idx.data());
  }
}

class GptqCase {
 public:
  GptqCase(const Plugin& plugin, std::string config, std::string label, int64_t out, int64_t in,
           DLDataType dtype, Report& report, bool act_order = false)
      : q_(plugin.method("gptq"), config),
        label_(std::move(label) + (act_order ? " act-order" : "")),
        out_(out),
        in_(in),
        dtype_(dtype),
        act_order_(act_order),
        report_(report) {
    cudaStreamCreate(&stream_);
    module_ = module_info("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, dtype);
  }
  ~GptqCase() { cudaStreamDestroy(stream_); }
  GptqCase(const GptqCase&) = delete;
  GptqCase& operator=(const GptqCase&) = delete;

  // false (and a FAIL) when the CPU cannot quantize the layer.
  bool quantize() {
    if (!q_.ok()) {
      report_.result(false, name("create"), q_.error());
      return false;
    }
    const auto values = random_values(out_ * in_, static_cast<uint32_t>(out_ * 131 + in_), 0.02f);
    const auto bytes = to_bytes(values, dtype_);
    auto w = make_tensor("weight", dtype_, {out_, in_}, false, bytes.data());
    qf_call_ctx cc = cpu_call();
    Sink sink;
    const std::string err =
        take_status(m()->quantize(q_.raw(), &cc, &module_, &w->t, nullptr, nullptr, sink.raw()));
    if (!err.empty()) {
      report_.result(false, name("quantize"), "CPU quantize failed: " + err);
      return false;
    }
    for (const auto& t : sink.tensors()) {
      const auto b = host_bytes(t->t);
      host_.push_back(make_tensor(t->name, t->t.dtype, t->shape, false, b.data()));
    }
    if (act_order_) permute_g_idx(host_, static_cast<uint32_t>(in_));
    return true;
  }

  void dequantize() {
    const std::string step = "dequantize (bit-exact)";
    Sink cpu_out, gpu_out;
    std::vector<qf_named_tensor> cpu_items;
    qf_tensor_list cpu_list = list_of(host_, cpu_items);
    qf_call_ctx cc = cpu_call();
    std::string err =
        take_status(m()->dequantize(q_.raw(), &cc, &module_, &cpu_list, cpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name(step), "CPU dequantize failed: " + err);
      return;
    }
    auto gpu_in = copies(host_, true);
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(gpu_in, items);
    qf_call_ctx gc = gpu_call(stream_);
    err = take_status(m()->dequantize(q_.raw(), &gc, &module_, &list, gpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name(step), "GPU dequantize failed: " + err);
      return;
    }
    const OwnedTensor* a = cpu_out.find("weight");
    const OwnedTensor* b = gpu_out.find("weight");
    if (a == nullptr || b == nullptr || a->shape != b->shape ||
        a->t.dtype.code != b->t.dtype.code || a->t.dtype.bits != b->t.dtype.bits ||
        b->t.device.device_type != kDLCUDA) {
      report_.result(false, name(step), "output 'weight' missing, typed or placed differently");
      return;
    }
    const auto ab = host_bytes(a->t), bb = host_bytes(b->t);
    std::string detail;
    close(to_floats(ab, a->t.dtype), to_floats(bb, b->t.dtype), 0.0, detail);
    report_.result(ab == bb, name(step), detail);
  }

  void forward(int64_t rows) {
    const std::string step = rows == 1 ? "gemv" : "linear(rows " + std::to_string(rows) + ")";
    const auto xv = random_values(rows * in_, static_cast<uint32_t>(rows * 7 + in_), 1.0f);
    const auto bv = random_values(out_, 99, 0.1f);
    const auto xb = to_bytes(xv, dtype_), bb = to_bytes(bv, dtype_);
    auto x_cpu = make_tensor("x", dtype_, {rows, in_}, false, xb.data());
    auto b_cpu = make_tensor("bias", dtype_, {out_}, false, bb.data());
    auto y_cpu = make_tensor("y", dtype_, {rows, out_}, false);
    std::vector<qf_named_tensor> cpu_items;
    qf_tensor_list cpu_list = list_of(host_, cpu_items);
    qf_call_ctx cc = cpu_call();
    std::string err = take_status(
        m()->linear_forward(q_.raw(), &cc, &module_, &cpu_list, &x_cpu->t, &b_cpu->t, &y_cpu->t));
    if (!err.empty()) {
      report_.result(false, name(step), "CPU linear_forward failed: " + err);
      return;
    }
    auto x = make_tensor("x", dtype_, {rows, in_}, true, xb.data());
    auto b = make_tensor("bias", dtype_, {out_}, true, bb.data());
    auto y = make_tensor("y", dtype_, {rows, out_}, true);
    auto gpu_in = copies(host_, true);
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(gpu_in, items);
    qf_call_ctx gc = gpu_call(stream_);
    err = take_status(m()->linear_forward(q_.raw(), &gc, &module_, &list, &x->t, &b->t, &y->t));
    if (!err.empty()) {
      report_.result(false, name(step), "GPU linear_forward failed: " + err);
      return;
    }
    std::string detail;
    const bool ok = close(to_floats(host_bytes(y_cpu->t), dtype_),
                          to_floats(host_bytes(y->t), dtype_), dtype_tol(dtype_), detail);
    report_.result(ok, name(step + " vs CPU"), detail);
  }

  // The status of a GPU call on the quantized layer's device copies with `edit` applied, and
  // the CPU's status for the same edit of its own copies.
  struct Statuses {
    int32_t gpu_code = 0;
    std::string gpu, cpu;
  };
  template <typename Edit>
  Statuses dequantize_edited(Edit edit) {
    Statuses s;
    auto gpu_in = copies(host_, true);
    auto cpu_in = copies(host_, false);
    edit(gpu_in);
    edit(cpu_in);
    std::vector<qf_named_tensor> gi, ci;
    qf_tensor_list gl = list_of(gpu_in, gi), cl = list_of(cpu_in, ci);
    Sink go, co;
    qf_call_ctx gc = gpu_call(stream_), cc = cpu_call();
    qf_status* st = m()->dequantize(q_.raw(), &gc, &module_, &gl, go.raw());
    s.gpu_code = status_code(st);
    s.gpu = take_status(st);
    s.cpu = take_status(m()->dequantize(q_.raw(), &cc, &module_, &cl, co.raw()));
    return s;
  }

  int32_t gpu_forward_status(const DLTensor& x, const DLTensor* bias, DLTensor& y,
                             std::string& text) {
    auto gpu_in = copies(host_, true);
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(gpu_in, items);
    qf_call_ctx gc = gpu_call(stream_);
    qf_status* s = m()->linear_forward(q_.raw(), &gc, &module_, &list, &x, bias, &y);
    const int32_t code = status_code(s);
    text = take_status(s);
    return code;
  }

  std::string name(const std::string& step) const {
    return "gptq " + step + " " + label_ + " " + dtype_label(dtype_) + " " + shape_label(out_, in_);
  }
  const Quantizer& quantizer() const { return q_; }
  const qf_module_info& module() const { return module_; }

 private:
  const qf_method* m() const { return q_.method(); }

  Quantizer q_;
  std::string label_;
  int64_t out_, in_;
  DLDataType dtype_;
  bool act_order_;
  Report& report_;
  qf_module_info module_{};
  cudaStream_t stream_ = nullptr;
  Tensors host_;  // the CPU-quantized tensors (g_idx permuted for act-order)
};

void expect(Report& report, const std::string& label, int32_t code, const std::string& text,
            int32_t want, const std::string& needle) {
  const bool ok = code == want && text.find(needle) != std::string::npos;
  report.result(ok, label,
                ok ? text
                   : "expected code " + std::to_string(want) + " mentioning '" + needle +
                         "', got code " + std::to_string(code) + ": " +
                         (text.empty() ? "success" : text));
}

void refusal_checks(const Plugin& plugin, Report& report) {
  {
    GptqCase c(plugin, R"({"bits": 8, "group_size": 128})", "8-bit g128", 128, 256, dtype_bf16(),
               report);
    if (c.quantize()) {
      const auto xb = to_bytes(random_values(256, 5, 1.0f), dtype_bf16());
      auto x = make_tensor("x", dtype_bf16(), {1, 256}, true, xb.data());
      auto y = make_tensor("y", dtype_bf16(), {1, 128}, true);
      std::string text;
      const int32_t code = c.gpu_forward_status(x->t, nullptr, y->t, text);
      expect(report, "gptq linear_forward 8-bit on the GPU refused", code, text,
             QF_CODE_UNIMPLEMENTED, "8-bit");
    }
  }
  GptqCase c(plugin, R"({"bits": 4, "group_size": 128})", "4-bit g128", 128, 256, dtype_bf16(),
             report);
  if (!c.quantize()) return;
  // A broken tensor set: the CPU's check, with the CPU's words, on the device too.
  const auto s = c.dequantize_edited([](Tensors& ts) {
    ts.erase(
        std::remove_if(ts.begin(), ts.end(), [](const auto& t) { return t->name == "qzeros"; }),
        ts.end());
  });
  report.result(s.gpu_code == QF_CODE_INVALID_ARGUMENT && s.gpu == s.cpu && !s.gpu.empty(),
                c.name("missing 'qzeros' refused as on the CPU"),
                "GPU '" + s.gpu + "' vs CPU '" + s.cpu + "'");
  {
    const auto bytes = to_bytes(random_values(128 * 256, 3, 0.02f), dtype_bf16());
    auto w = make_tensor("weight", dtype_bf16(), {128, 256}, true, bytes.data());
    Sink sink;
    qf_call_ctx gc = gpu_call(nullptr);
    qf_module_info mod = c.module();
    qf_status* st = c.quantizer().method()->quantize(c.quantizer().raw(), &gc, &mod, &w->t, nullptr,
                                                     nullptr, sink.raw());
    const int32_t code = status_code(st);
    expect(report, "gptq quantize on the GPU refused", code, take_status(st), QF_CODE_UNIMPLEMENTED,
           "--device cpu");
  }
  const auto xb = to_bytes(random_values(256, 5, 1.0f), dtype_bf16());
  auto y = make_tensor("y", dtype_bf16(), {1, 128}, true);
  std::string text;
  {
    auto x_host = make_tensor("x", dtype_bf16(), {1, 256}, false, xb.data());
    const int32_t code = c.gpu_forward_status(x_host->t, nullptr, y->t, text);
    expect(report, "gptq linear_forward: x in host memory refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "not on the call's device");
  }
  auto x = make_tensor("x", dtype_bf16(), {1, 256}, true, xb.data());
  {
    auto bias = make_tensor("bias", dtype_bf16(), {127}, true);
    const int32_t code = c.gpu_forward_status(x->t, &bias->t, y->t, text);
    expect(report, "gptq linear_forward: bias of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "bias does not fit");
  }
  {
    auto y_short = make_tensor("y", dtype_bf16(), {1, 127}, true);
    const int32_t code = c.gpu_forward_status(x->t, nullptr, y_short->t, text);
    expect(report, "gptq linear_forward: y of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "y has the wrong size");
  }
}

}  // namespace

void gptq_no_gpu_checks(const Plugin& plugin, Report& report) {
  Quantizer q(plugin.method("gptq"), R"({"bits": 4, "group_size": 64})");
  if (!q.ok()) {
    report.result(false, "no-GPU create gptq", q.error());
    return;
  }
  int32_t host_words[64] = {};
  int64_t shape[2] = {8, 64};
  DLTensor qweight{};
  qweight.data = host_words;  // never dereferenced: the call must stop before any tensor is read
  qweight.device.device_type = kDLCUDA;
  qweight.ndim = 2;
  qweight.shape = shape;
  qweight.dtype = DLDataType{kDLInt, 32, 1};
  qf_named_tensor item{"qweight", &qweight};
  qf_tensor_list list{sizeof(qf_tensor_list), QF_ABI_VERSION, 1, &item};
  qf_module_info mod = module_info("m", QF_MODULE_LINEAR, 64, 64, dtype_bf16());
  Sink sink;
  qf_call_ctx gc = gpu_call(nullptr);
  qf_status* s = q.method()->dequantize(q.raw(), &gc, &mod, &list, sink.raw());
  const int32_t code = status_code(s);
  const std::string text = take_status(s);
  const bool ok = code == QF_CODE_FAILED_PRECONDITION;
  report.result(ok, "no-GPU: CUDA dequantize refused (gptq)",
                ok ? "FAILED_PRECONDITION: " + text
                   : "expected FAILED_PRECONDITION, got " + (text.empty() ? "success" : text));
}

void run_gptq_checks(const Plugin& plugin, Report& report) {
  // The CPU side is the scalar reference (the plugin reads this on every call).
  setenv("QFORGE_GPTQ_KERNEL", "scalar", 1);
  struct Spec {
    const char* config;
    const char* label;
    int64_t out, in;
    bool act_order;
  } specs[] = {
      {R"({"bits": 4, "group_size": 128, "sym": true})", "4-bit g128 sym v1", 256, 512, false},
      {R"({"bits": 4, "group_size": 32, "sym": false, "checkpoint_format": "gptq_v2"})",
       "4-bit g32 asym v2", 384, 1024, false},
      {R"({"bits": 4, "group_size": 32, "sym": false})", "4-bit g32 asym v1", 384, 1024, true},
      {R"({"bits": 4, "group_size": 128, "sym": true, "checkpoint_format": "gptq_v2"})",
       "4-bit g128 sym v2", 256, 512, true},
      {R"({"bits": 4, "group_size": -1})", "4-bit whole rows", 136, 640, false},
      // Output counts off the 32-lane tile.
      {R"({"bits": 4, "group_size": 64})", "4-bit g64", 40, 192, false},
      {R"({"bits": 2, "group_size": 64})", "2-bit g64", 256, 512, true},
      {R"({"bits": 3, "group_size": 128})", "3-bit g128", 96, 512, true},
      {R"({"bits": 8, "group_size": 128, "checkpoint_format": "gptq_v2"})", "8-bit g128 v2", 128,
       512, true},
  };
  const std::vector<int64_t> rows = {1, 3, 4, 9};  // GEMV, partial pass, one pass, three passes
  for (const Spec& s : specs) {
    for (DLDataType d : {dtype_bf16(), dtype_f16(), dtype_f32()}) {
      GptqCase c(plugin, s.config, s.label, s.out, s.in, d, report, s.act_order);
      if (!c.quantize()) continue;
      c.dequantize();
      if (std::string(s.config).find("\"bits\": 4") == std::string::npos) continue;
      for (int64_t r : rows) c.forward(r);
    }
  }
  refusal_checks(plugin, report);
  unsetenv("QFORGE_GPTQ_KERNEL");
}

}  // namespace qforge::gpu_harness
