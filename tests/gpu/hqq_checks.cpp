// GPU vs CPU checks of the hqq plugin (see hqq_checks.hpp). Every layer is quantized by the
// plugin's CPU path; the GPU hooks get copies of all its tensors on the device (meta fields
// included, as a host that keeps the whole module there), except where a check says otherwise.
#include "hqq_checks.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

using Tensors = std::vector<std::unique_ptr<OwnedTensor>>;

bool is_meta(const std::string& name) { return name != "W_q" && name != "scale" && name != "zero"; }

// Copies of `ts`: on the GPU, or (meta_on_host) W_q / scale / zero only, the rest in host memory.
Tensors copies(const Tensors& ts, bool meta_on_host = false) {
  Tensors out;
  for (const auto& t : ts) {
    const auto bytes = host_bytes(t->t);
    const bool gpu = !(meta_on_host && is_meta(t->name));
    out.push_back(make_tensor(t->name, t->t.dtype, t->shape, gpu, bytes.data()));
  }
  return out;
}

// One layer: quantized on the CPU, then dequantize and forward on both sides.
class HqqCase {
 public:
  HqqCase(const Plugin& plugin, std::string config, std::string label, int64_t out, int64_t in,
          DLDataType dtype, Report& report)
      : q_(plugin.method("hqq"), config),
        label_(std::move(label)),
        out_(out),
        in_(in),
        dtype_(dtype),
        report_(report) {
    cudaStreamCreate(&stream_);
    module_ = module_info("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, dtype);
  }
  ~HqqCase() { cudaStreamDestroy(stream_); }
  HqqCase(const HqqCase&) = delete;
  HqqCase& operator=(const HqqCase&) = delete;

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
    const std::string err =
        take_status(m()->quantize(q_.raw(), &cc, &module_, &w->t, nullptr, nullptr, cpu_q_.raw()));
    if (!err.empty()) {
      report_.result(false, name("quantize"), "CPU quantize failed: " + err);
      return false;
    }
    return true;
  }

  void run(const std::vector<int64_t>& rows_list) {
    if (!quantize()) return;
    dequantize(false);
    for (int64_t rows : rows_list) forward(rows);
  }

  // Dequantize on the CPU and on the GPU (meta fields on the device, or kept in host memory).
  void dequantize(bool meta_on_host) {
    const std::string step =
        meta_on_host ? "dequantize, meta in host memory (bit-exact)" : "dequantize (bit-exact)";
    Sink cpu_out, gpu_out;
    std::string err = cpu_dequantize(cpu_out);
    if (!err.empty()) {
      report_.result(false, name(step), "CPU dequantize failed: " + err);
      return;
    }
    auto gpu_in = copies(cpu_q_.tensors(), meta_on_host);
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
    qf_tensor_list cpu_list = list_of(cpu_q_.tensors(), cpu_items);
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
    auto gpu_in = copies(cpu_q_.tensors());
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

  // The status of a GPU dequantize of the quantized layer with `edit` applied to its device
  // tensors, and the CPU's status for the same edit of its own.
  struct Statuses {
    int32_t gpu_code = 0;
    std::string gpu, cpu;
  };
  template <typename Edit>
  Statuses dequantize_edited(Edit edit) {
    Statuses s;
    auto gpu_in = copies(cpu_q_.tensors());
    Tensors cpu_in;
    for (const auto& t : cpu_q_.tensors()) {
      const auto bytes = host_bytes(t->t);
      cpu_in.push_back(make_tensor(t->name, t->t.dtype, t->shape, false, bytes.data()));
    }
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

  // linear_forward on the GPU with x, bias, y as given; its status code and text.
  int32_t gpu_forward_status(const DLTensor& x, const DLTensor* bias, DLTensor& y,
                             std::string& text) {
    auto gpu_in = copies(cpu_q_.tensors());
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(gpu_in, items);
    qf_call_ctx gc = gpu_call(stream_);
    qf_status* s = m()->linear_forward(q_.raw(), &gc, &module_, &list, &x, bias, &y);
    const int32_t code = status_code(s);
    text = take_status(s);
    return code;
  }

  std::string name(const std::string& step) const {
    return "hqq " + step + " " + label_ + " " + dtype_label(dtype_) + " " + shape_label(out_, in_);
  }
  const Quantizer& quantizer() const { return q_; }
  const qf_module_info& module() const { return module_; }

 private:
  const qf_method* m() const { return q_.method(); }

  std::string cpu_dequantize(Sink& out) {
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(cpu_q_.tensors(), items);
    qf_call_ctx cc = cpu_call();
    return take_status(m()->dequantize(q_.raw(), &cc, &module_, &list, out.raw()));
  }

  Quantizer q_;
  std::string label_;
  int64_t out_, in_;
  DLDataType dtype_;
  Report& report_;
  qf_module_info module_{};
  cudaStream_t stream_ = nullptr;
  Sink cpu_q_;
};

void refusal_checks(const Plugin& plugin, Report& report) {
  // Layouts without a kernel: UNIMPLEMENTED naming the layout.
  struct Layout {
    const char* config;
    const char* label;
    const char* needle;
  } layouts[] = {
      {R"({"nbits": 4, "group_size": 64, "axis": 0})", "4-bit axis 0", "axis 0"},
      {R"({"nbits": 3, "group_size": 64})", "3-bit axis 1", "3bit_32"},
      {R"({"nbits": 8, "group_size": 64})", "8-bit axis 1", "8bit_u8"},
  };
  for (const Layout& l : layouts) {
    HqqCase c(plugin, l.config, l.label, 128, 128, dtype_bf16(), report);
    if (!c.quantize()) continue;
    const auto s = c.dequantize_edited([](Tensors&) {});
    expect(report, c.name("refused on the GPU:"), s.gpu_code, s.gpu, QF_CODE_UNIMPLEMENTED,
           l.needle);
  }
  HqqCase c(plugin, R"({"nbits": 4, "group_size": 64})", "4-bit g64", 128, 256, dtype_bf16(),
            report);
  if (!c.quantize()) return;
  // A broken tensor set: the CPU's check, with the CPU's words, on the device too.
  const auto s = c.dequantize_edited([](Tensors& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const auto& t) { return t->name == "zero"; }),
             ts.end());
  });
  report.result(s.gpu_code == QF_CODE_INVALID_ARGUMENT && s.gpu == s.cpu && !s.gpu.empty(),
                c.name("missing 'zero' refused as on the CPU"),
                "GPU '" + s.gpu + "' vs CPU '" + s.cpu + "'");
  // quantize on the device is not served.
  {
    const auto bytes = to_bytes(random_values(128 * 256, 3, 0.02f), dtype_bf16());
    auto w = make_tensor("weight", dtype_bf16(), {128, 256}, true, bytes.data());
    Sink sink;
    qf_call_ctx gc = gpu_call(nullptr);
    qf_module_info mod = c.module();
    qf_status* st = c.quantizer().method()->quantize(c.quantizer().raw(), &gc, &mod, &w->t, nullptr,
                                                     nullptr, sink.raw());
    const int32_t code = status_code(st);
    expect(report, "hqq quantize on the GPU refused", code, take_status(st), QF_CODE_UNIMPLEMENTED,
           "--device cpu");
  }
  const auto xb = to_bytes(random_values(256, 5, 1.0f), dtype_bf16());
  auto y = make_tensor("y", dtype_bf16(), {1, 128}, true);
  std::string text;
  {
    auto x_host = make_tensor("x", dtype_bf16(), {1, 256}, false, xb.data());
    const int32_t code = c.gpu_forward_status(x_host->t, nullptr, y->t, text);
    expect(report, "hqq linear_forward: x in host memory refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "not on the call's device");
  }
  auto x = make_tensor("x", dtype_bf16(), {1, 256}, true, xb.data());
  {
    auto bias = make_tensor("bias", dtype_bf16(), {127}, true);
    const int32_t code = c.gpu_forward_status(x->t, &bias->t, y->t, text);
    expect(report, "hqq linear_forward: bias of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "bias does not fit");
  }
  {
    auto x_wide = make_tensor("x", dtype_bf16(), {1, 255}, true, xb.data());
    const int32_t code = c.gpu_forward_status(x_wide->t, nullptr, y->t, text);
    expect(report, "hqq linear_forward: x of the wrong width refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "x's last dimension is not in_features");
  }
  {
    auto y_short = make_tensor("y", dtype_bf16(), {1, 127}, true);
    const int32_t code = c.gpu_forward_status(x->t, nullptr, y_short->t, text);
    expect(report, "hqq linear_forward: y of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "y has the wrong size");
  }
}

}  // namespace

void hqq_no_gpu_checks(const Plugin& plugin, Report& report) {
  Quantizer q(plugin.method("hqq"), R"({"nbits": 4, "group_size": 64})");
  if (!q.ok()) {
    report.result(false, "no-GPU create hqq", q.error());
    return;
  }
  unsigned char host_bytes_[64] = {};
  int64_t shape[2] = {8, 8};
  DLTensor wq{};
  wq.data = host_bytes_;  // never dereferenced: the call must stop before any tensor is read
  wq.device.device_type = kDLCUDA;
  wq.ndim = 2;
  wq.shape = shape;
  wq.dtype = dtype_u8();
  qf_named_tensor item{"W_q", &wq};
  qf_tensor_list list{sizeof(qf_tensor_list), QF_ABI_VERSION, 1, &item};
  qf_module_info mod = module_info("m", QF_MODULE_LINEAR, 64, 64, dtype_bf16());
  Sink sink;
  qf_call_ctx gc = gpu_call(nullptr);
  qf_status* s = q.method()->dequantize(q.raw(), &gc, &mod, &list, sink.raw());
  const int32_t code = status_code(s);
  const std::string text = take_status(s);
  const bool ok = code == QF_CODE_FAILED_PRECONDITION;
  report.result(ok, "no-GPU: CUDA dequantize refused (hqq)",
                ok ? "FAILED_PRECONDITION: " + text
                   : "expected FAILED_PRECONDITION, got " + (text.empty() ? "success" : text));
}

void run_hqq_checks(const Plugin& plugin, Report& report) {
  struct Spec {
    const char* config;
    const char* label;
    int64_t out, in;
  } specs[] = {
      // Sliced kernel (out a multiple of the slices, in % 4 == 0).
      {R"({"nbits": 4, "group_size": 64})", "4-bit g64", 256, 512},
      {R"({"nbits": 4, "group_size": 128})", "4-bit g128", 384, 1024},
      {R"({"nbits": 2, "group_size": 64})", "2-bit g64", 256, 512},
      {R"({"nbits": 2, "group_size": 128})", "2-bit g128", 384, 1024},
      // Groups spanning rows of W (group 128 > in 96).
      {R"({"nbits": 4, "group_size": 128})", "4-bit g128 spanning rows", 96, 96},
      {R"({"nbits": 2, "group_size": 128})", "2-bit g128 spanning rows", 96, 96},
      // Generic kernel: out not a multiple of the slices, or in % 4 != 0.
      {R"({"nbits": 4, "group_size": 64})", "4-bit g64 generic", 33, 256},
      {R"({"nbits": 2, "group_size": 64})", "2-bit g64 generic", 33, 256},
      {R"({"nbits": 4, "group_size": 64})", "4-bit g64 generic", 128, 66},
      {R"({"nbits": 2, "group_size": 64})", "2-bit g64 generic", 128, 66},
      // 1.58 bits (2bit_u8, codes 0..2) and a whole row per group.
      {R"({"nbits": 1.58, "group_size": 64})", "1.58-bit g64", 256, 512},
      {R"({"nbits": 4, "group_size": null})", "4-bit row groups", 128, 640},
  };
  const std::vector<int64_t> rows = {1, 3, 8, 11};  // GEMV, partial pass, one pass, two passes
  for (const Spec& s : specs) {
    for (DLDataType d : {dtype_bf16(), dtype_f16()}) {
      HqqCase(plugin, s.config, s.label, s.out, s.in, d, report).run(rows);
    }
  }
  // F32 compute dtype (no rounding between the ops), and meta fields the host keeps in host
  // memory (no read-back).
  {
    HqqCase c(plugin, R"({"nbits": 4, "group_size": 64})", "4-bit g64", 256, 512, dtype_f32(),
              report);
    c.run(rows);
    c.dequantize(true);
  }
  {
    HqqCase c(plugin, R"({"nbits": 2, "group_size": 128})", "2-bit g128", 256, 512, dtype_bf16(),
              report);
    if (c.quantize()) c.dequantize(true);
  }
  refusal_checks(plugin, report);
}

}  // namespace qforge::gpu_harness
