// The shared layer checks of the gptq and awq plugins (see packed_case.hpp).
#include "packed_case.hpp"

#include <algorithm>
#include <utility>

namespace qforge::gpu_harness {

Tensors copies(const Tensors& ts, bool on_gpu) {
  Tensors out;
  for (const auto& t : ts) {
    const auto bytes = host_bytes(t->t);
    out.push_back(make_tensor(t->name, t->t.dtype, t->shape, on_gpu, bytes.data()));
  }
  return out;
}

PackedCase::PackedCase(const Plugin& plugin, const std::string& method, std::string config,
                       std::string label, int64_t out, int64_t in, DLDataType dtype, Report& report,
                       std::function<void(Tensors&)> prepare)
    : q_(plugin.method(method), config),
      method_(method),
      label_(std::move(label)),
      out_(out),
      in_(in),
      dtype_(dtype),
      report_(report),
      prepare_(std::move(prepare)) {
  cudaStreamCreate(&stream_);
  module_ = module_info("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, dtype);
}

PackedCase::~PackedCase() { cudaStreamDestroy(stream_); }

bool PackedCase::quantize() {
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
  if (prepare_) prepare_(host_);
  return true;
}

void PackedCase::dequantize() {
  const std::string step = "dequantize (bit-exact)";
  Sink cpu_out, gpu_out;
  std::vector<qf_named_tensor> cpu_items;
  qf_tensor_list cpu_list = list_of(host_, cpu_items);
  qf_call_ctx cc = cpu_call();
  std::string err = take_status(m()->dequantize(q_.raw(), &cc, &module_, &cpu_list, cpu_out.raw()));
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
  if (a == nullptr || b == nullptr || a->shape != b->shape || a->t.dtype.code != b->t.dtype.code ||
      a->t.dtype.bits != b->t.dtype.bits || b->t.device.device_type != kDLCUDA) {
    report_.result(false, name(step), "output 'weight' missing, typed or placed differently");
    return;
  }
  const auto ab = host_bytes(a->t), bb = host_bytes(b->t);
  std::string detail;
  close(to_floats(ab, a->t.dtype), to_floats(bb, b->t.dtype), 0.0, detail);
  report_.result(ab == bb, name(step), detail);
}

void PackedCase::forward(int64_t rows) {
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

PackedCase::Statuses PackedCase::dequantize_both(const Tensors& gpu_in, const Tensors& cpu_in) {
  Statuses s;
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

int32_t PackedCase::gpu_forward_status(const DLTensor& x, const DLTensor* bias, DLTensor& y,
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

std::string PackedCase::name(const std::string& step) const {
  return method_ + " " + step + " " + label_ + " " + dtype_label(dtype_) + " " +
         shape_label(out_, in_);
}

void packed_refusal_checks(PackedCase& c, const std::string& method, Report& report) {
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
    expect(report, method + " quantize on the GPU refused", code, take_status(st),
           QF_CODE_UNIMPLEMENTED, "--device cpu");
  }
  const auto xb = to_bytes(random_values(256, 5, 1.0f), dtype_bf16());
  auto y = make_tensor("y", dtype_bf16(), {1, 128}, true);
  std::string text;
  {
    auto x_host = make_tensor("x", dtype_bf16(), {1, 256}, false, xb.data());
    const int32_t code = c.gpu_forward_status(x_host->t, nullptr, y->t, text);
    expect(report, method + " linear_forward: x in host memory refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "not on the call's device");
  }
  auto x = make_tensor("x", dtype_bf16(), {1, 256}, true, xb.data());
  {
    auto bias = make_tensor("bias", dtype_bf16(), {127}, true);
    const int32_t code = c.gpu_forward_status(x->t, &bias->t, y->t, text);
    expect(report, method + " linear_forward: bias of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "bias does not fit");
  }
  {
    auto y_short = make_tensor("y", dtype_bf16(), {1, 127}, true);
    const int32_t code = c.gpu_forward_status(x->t, nullptr, y_short->t, text);
    expect(report, method + " linear_forward: y of the wrong size refused", code, text,
           QF_CODE_INVALID_ARGUMENT, "y has the wrong size");
  }
}

void packed_no_gpu_check(const Plugin& plugin, const std::string& method, const char* config,
                         int64_t rows, int64_t cols, Report& report) {
  Quantizer q(plugin.method(method), config);
  if (!q.ok()) {
    report.result(false, "no-GPU create " + method, q.error());
    return;
  }
  int32_t host_words[64] = {};
  int64_t shape[2] = {rows, cols};
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
  report.result(ok, "no-GPU: CUDA dequantize refused (" + method + ")",
                ok ? "FAILED_PRECONDITION: " + text
                   : "expected FAILED_PRECONDITION, got " + (text.empty() ? "success" : text));
}

}  // namespace qforge::gpu_harness
