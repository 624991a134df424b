// GPU vs CPU checks of the fp8 plugin (see fp8_checks.hpp).
//
// The plugin chooses its CUDA linear kernel per call; QFORGE_FP8_CUDA_PATH (read by the plugin
// at every call) forces "emulation" or "native" so both are compared here.
#include "fp8_checks.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

DLDataType dtype_e4m3() {
  DLDataType d{};
  d.code = QF_DL_FLOAT8_E4M3FN;
  d.bits = 8;
  d.lanes = 1;
  return d;
}

// The tensor-core sums round differently from fp32 FMA-free sums (and are promoted to fp32 once
// per 128-wide K block): a looser bound for anything the native kernel computed.
double native_tol(DLDataType d) { return dtype_tol(d) + 5e-3; }

void set_path(const char* path) {
  if (path == nullptr) {
    unsetenv("QFORGE_FP8_CUDA_PATH");
  } else {
    setenv("QFORGE_FP8_CUDA_PATH", path, 1);
  }
}

int device_cc() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return 0;
  return prop.major * 10 + prop.minor;
}

struct Shape {
  int64_t out, in;
  bool native;  // the native kernel takes it (in % 32 == 0, K tiles a multiple of 32)
};

std::string shape_label(const Shape& s) {
  return "[" + std::to_string(s.out) + "x" + std::to_string(s.in) + "]";
}

class Fp8Case {
 public:
  Fp8Case(const Plugin& plugin, const char* method, std::string config, std::string label,
          Shape shape, DLDataType dtype, Report& report)
      : q_(plugin.method(method), config),
        label_(std::move(label)),
        shape_(shape),
        dtype_(dtype),
        report_(report) {
    cudaStreamCreate(&stream_);
    module_ =
        module_info("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, shape.out, shape.in, dtype);
  }
  ~Fp8Case() { cudaStreamDestroy(stream_); }

  // Quantize on both sides (bit-exact), then dequantize and forward from the CPU's tensors.
  void run_quantized(const std::vector<int64_t>& rows_list) {
    if (!q_.ok()) {
      report_.result(false, name("create"), q_.error());
      return;
    }
    if (!quantize()) return;
    dequantize(cpu_q_.tensors());
    for (int64_t rows : rows_list) forward(cpu_q_.tensors(), rows);
  }

  // Dequantize and forward from tensors made here (e.g. ragged tiles no quantizer writes).
  void run_loaded(const std::vector<std::unique_ptr<OwnedTensor>>& tensors,
                  const std::vector<int64_t>& rows_list) {
    if (!q_.ok()) {
      report_.result(false, name("create"), q_.error());
      return;
    }
    dequantize(tensors);
    for (int64_t rows : rows_list) forward(tensors, rows);
  }

 private:
  const qf_method* m() const { return q_.method(); }

  std::string name(const std::string& step) const {
    return step + " " + label_ + " " + dtype_label(dtype_) + " " + shape_label(shape_);
  }

  bool quantize() {
    const auto values = random_values(shape_.out * shape_.in,
                                      static_cast<uint32_t>(shape_.out * 131 + shape_.in), 0.02f);
    const auto bytes = to_bytes(values, dtype_);
    auto w_cpu = make_tensor("weight", dtype_, {shape_.out, shape_.in}, false, bytes.data());
    auto w_gpu = make_tensor("weight", dtype_, {shape_.out, shape_.in}, true, bytes.data());
    qf_call_ctx cc = cpu_call(), gc = gpu_call(stream_);
    std::string err = take_status(
        m()->quantize(q_.raw(), &cc, &module_, &w_cpu->t, nullptr, nullptr, cpu_q_.raw()));
    if (!err.empty()) {
      report_.result(false, name("quantize"), "CPU quantize failed: " + err);
      return false;
    }
    err = take_status(
        m()->quantize(q_.raw(), &gc, &module_, &w_gpu->t, nullptr, nullptr, gpu_q_.raw()));
    if (!err.empty()) {
      report_.result(false, name("quantize"), "GPU quantize failed: " + err);
      return false;
    }
    std::string detail;
    bool ok = cpu_q_.tensors().size() == gpu_q_.tensors().size();
    for (const auto& t : cpu_q_.tensors()) {
      const OwnedTensor* g = gpu_q_.find(t->name);
      if (g == nullptr) {
        ok = false;
        detail += "GPU lacks '" + t->name + "'; ";
        continue;
      }
      if (g->t.device.device_type != kDLCUDA) {
        ok = false;
        detail += "'" + t->name + "' not on the GPU; ";
      }
      if (g->shape != t->shape) {
        ok = false;
        detail += "'" + t->name + "' shaped differently; ";
      }
      const auto a = host_bytes(t->t), b = host_bytes(g->t);
      if (a != b) {
        ok = false;
        size_t diff = 0, first = a.size();
        for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
          if (a[i] != b[i]) {
            ++diff;
            first = std::min(first, i);
          }
        }
        detail += "'" + t->name + "' differs in " + std::to_string(diff) + " of " +
                  std::to_string(a.size()) + " bytes (first at byte " + std::to_string(first) +
                  "); ";
      }
    }
    if (ok) detail = std::to_string(cpu_q_.tensors().size()) + " tensors bit-identical";
    report_.result(ok, name("quantize"), detail);
    return true;  // later steps use the CPU's tensors, so they run either way
  }

  static qf_tensor_list host_list(const std::vector<std::unique_ptr<OwnedTensor>>& ts,
                                  std::vector<qf_named_tensor>& items) {
    return list_of(ts, items);
  }

  static std::vector<std::unique_ptr<OwnedTensor>> gpu_copies(
      const std::vector<std::unique_ptr<OwnedTensor>>& ts) {
    std::vector<std::unique_ptr<OwnedTensor>> out;
    for (const auto& t : ts) {
      const auto bytes = host_bytes(t->t);
      out.push_back(make_tensor(t->name, t->t.dtype, t->shape, true, bytes.data()));
    }
    return out;
  }

  void dequantize(const std::vector<std::unique_ptr<OwnedTensor>>& tensors) {
    qf_call_ctx cc = cpu_call(), gc = gpu_call(stream_);
    Sink cpu_out, gpu_out;
    std::vector<qf_named_tensor> cpu_items, gpu_items;
    qf_tensor_list cpu_list = host_list(tensors, cpu_items);
    std::string err =
        take_status(m()->dequantize(q_.raw(), &cc, &module_, &cpu_list, cpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name("dequantize"), "CPU dequantize failed: " + err);
      return;
    }
    auto gpu_in = gpu_copies(tensors);
    qf_tensor_list gpu_list = list_of(gpu_in, gpu_items);
    err = take_status(m()->dequantize(q_.raw(), &gc, &module_, &gpu_list, gpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name("dequantize"), "GPU dequantize failed: " + err);
      return;
    }
    const OwnedTensor* a = cpu_out.find("weight");
    const OwnedTensor* b = gpu_out.find("weight");
    if (a == nullptr || b == nullptr || a->shape != b->shape ||
        a->t.dtype.code != b->t.dtype.code || a->t.dtype.bits != b->t.dtype.bits) {
      report_.result(false, name("dequantize"), "output 'weight' missing or typed differently");
      return;
    }
    const auto ab = host_bytes(a->t), bb = host_bytes(b->t);
    std::string detail;
    close(to_floats(ab, a->t.dtype), to_floats(bb, b->t.dtype), 0.0, detail);
    report_.result(ab == bb, name("dequantize (bit-exact)"), detail);
  }

  // One forward on the GPU with QFORGE_FP8_CUDA_PATH = path; "" and the output, or the error.
  std::string gpu_forward(const std::vector<std::unique_ptr<OwnedTensor>>& tensors,
                          const char* path, const std::vector<uint8_t>& xb,
                          const std::vector<uint8_t>& bb, int64_t rows, std::vector<float>& y,
                          int32_t* code = nullptr) {
    auto x = make_tensor("x", dtype_, {rows, shape_.in}, true, xb.data());
    auto b = make_tensor("bias", dtype_, {shape_.out}, true, bb.data());
    auto yt = make_tensor("y", dtype_, {rows, shape_.out}, true);
    auto gpu_in = gpu_copies(tensors);
    std::vector<qf_named_tensor> items;
    qf_tensor_list list = list_of(gpu_in, items);
    qf_call_ctx gc = gpu_call(stream_);
    set_path(path);
    qf_status* s = m()->linear_forward(q_.raw(), &gc, &module_, &list, &x->t, &b->t, &yt->t);
    set_path(nullptr);
    if (code != nullptr) *code = status_code(s);
    const std::string err = take_status(s);
    if (err.empty()) y = to_floats(host_bytes(yt->t), dtype_);
    return err;
  }

  void forward(const std::vector<std::unique_ptr<OwnedTensor>>& tensors, int64_t rows) {
    const std::string step = rows == 1 ? "gemv" : "gemm(rows " + std::to_string(rows) + ")";
    auto xv = random_values(rows * shape_.in, static_cast<uint32_t>(rows * 7 + shape_.in), 1.0f);
    // A token whose first activation group is all zeros (kept as zeros, never 0/0).
    if (rows > 1) {
      for (int64_t k = 0; k < std::min<int64_t>(shape_.in, 32); ++k)
        xv[static_cast<size_t>(shape_.in + k)] = 0.0f;
    }
    const auto bv = random_values(shape_.out, 99, 0.1f);
    const auto xb = to_bytes(xv, dtype_), bb = to_bytes(bv, dtype_);
    auto x_cpu = make_tensor("x", dtype_, {rows, shape_.in}, false, xb.data());
    auto b_cpu = make_tensor("bias", dtype_, {shape_.out}, false, bb.data());
    auto y_cpu = make_tensor("y", dtype_, {rows, shape_.out}, false);
    std::vector<qf_named_tensor> items;
    qf_tensor_list cpu_list = host_list(tensors, items);
    qf_call_ctx cc = cpu_call();
    std::string err = take_status(
        m()->linear_forward(q_.raw(), &cc, &module_, &cpu_list, &x_cpu->t, &b_cpu->t, &y_cpu->t));
    if (!err.empty()) {
      report_.result(false, name(step), "CPU linear_forward failed: " + err);
      return;
    }
    const auto ref = to_floats(host_bytes(y_cpu->t), dtype_);
    std::vector<float> emu, nat;
    err = gpu_forward(tensors, "emulation", xb, bb, rows, emu);
    std::string detail;
    if (!err.empty()) {
      report_.result(false, name(step + " emulation"), "GPU linear_forward failed: " + err);
    } else {
      const bool ok = close(ref, emu, dtype_tol(dtype_), detail);
      report_.result(ok, name(step + " emulation vs CPU"), detail);
    }
    const int cc_now = device_cc();
    if (cc_now < 89) {
      report_.skip(name(step + " native"), "compute capability " + std::to_string(cc_now / 10) +
                                               "." + std::to_string(cc_now % 10) +
                                               " < 8.9: no FP8 tensor cores");
      return;
    }
    int32_t code = 0;
    err = gpu_forward(tensors, "native", xb, bb, rows, nat, &code);
    if (!shape_.native) {
      const bool ok = code == QF_CODE_FAILED_PRECONDITION;
      report_.result(ok, name(step + " native refused for this shape"),
                     ok ? "FAILED_PRECONDITION: " + err
                        : "expected FAILED_PRECONDITION, got " + (err.empty() ? "success" : err));
      return;
    }
    if (!err.empty()) {
      report_.result(false, name(step + " native"), "GPU linear_forward failed: " + err);
      return;
    }
    bool ok = close(ref, nat, native_tol(dtype_), detail);
    report_.result(ok, name(step + " native vs CPU"), detail);
    if (!emu.empty()) {
      ok = close(emu, nat, native_tol(dtype_), detail);
      report_.result(ok, name(step + " native vs emulation"), detail);
    }
    // The default path (no override) is native from transformers' floor for the method (fp8
    // 8.9, fbgemm_fp8 9.0), the emulation kernel below it: the same bits as that forced run.
    const bool fbgemm = std::string(m()->quant_method) == "fbgemm_fp8";
    const bool expect_native = cc_now >= (fbgemm ? 90 : 89);
    const std::vector<float>& want = expect_native ? nat : emu;
    std::vector<float> def;
    err = gpu_forward(tensors, nullptr, xb, bb, rows, def);
    const std::string which = expect_native ? "native" : "emulation";
    report_.result(err.empty() && def == want, name(step + " default path = " + which),
                   err.empty() ? (def == want ? "identical to the forced " + which + " run"
                                              : "differs from the forced " + which + " run")
                               : err);
  }

  Quantizer q_;
  std::string label_;
  Shape shape_;
  DLDataType dtype_;
  Report& report_;
  qf_module_info module_{};
  cudaStream_t stream_ = nullptr;
  Sink cpu_q_, gpu_q_;
};

// Pre-quantized tensors with ragged last tiles (DeepSeek-V3 style loads): random codes (no NaN
// codes) and positive scales [ceil(O/128), ceil(I/128)], plus activation_scale when static.
std::vector<std::unique_ptr<OwnedTensor>> ragged_tensors(const Shape& s, bool with_static) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  std::vector<uint8_t> codes(static_cast<size_t>(s.out * s.in));
  for (auto& c : codes) {
    do {
      c = static_cast<uint8_t>(byte(rng));
    } while ((c & 0x7F) == 0x7F);
  }
  const int64_t tr = (s.out + 127) / 128, tc = (s.in + 127) / 128;
  std::vector<float> scales(static_cast<size_t>(tr * tc));
  for (auto& v : scales) v = scale(rng);
  std::vector<std::unique_ptr<OwnedTensor>> out;
  out.push_back(make_tensor("weight", dtype_e4m3(), {s.out, s.in}, false, codes.data()));
  out.push_back(make_tensor("weight_scale_inv", dtype_f32(), {tr, tc}, false, scales.data()));
  if (with_static) {
    const float a = 0.02f;
    out.push_back(make_tensor("activation_scale", dtype_f32(), {}, false, &a));
  }
  return out;
}

// A NaN weight is refused on the GPU with the CPU's exact status text (module, element, tile).
void nan_check(const Plugin& plugin, const char* method, const std::string& config, int64_t bad_row,
               int64_t bad_col, Report& report) {
  Quantizer q(plugin.method(method), config);
  const std::string label = std::string("NaN refused ") + method;
  if (!q.ok()) {
    report.result(false, label, "create failed: " + q.error());
    return;
  }
  const int64_t out = 256, in = 256;
  auto values = random_values(out * in, 5, 0.02f);
  values[static_cast<size_t>(bad_row * in + bad_col)] = std::nanf("");
  const auto bytes = to_bytes(values, dtype_bf16());
  auto w_gpu = make_tensor("weight", dtype_bf16(), {out, in}, true, bytes.data());
  auto w_cpu = make_tensor("weight", dtype_bf16(), {out, in}, false, bytes.data());
  qf_module_info mod = module_info("m", QF_MODULE_LINEAR, out, in, dtype_bf16());
  Sink gpu_sink, cpu_sink;
  qf_call_ctx gc = gpu_call(nullptr), cc = cpu_call();
  qf_status* s =
      q.method()->quantize(q.raw(), &gc, &mod, &w_gpu->t, nullptr, nullptr, gpu_sink.raw());
  const int32_t code = status_code(s);
  const std::string text = take_status(s);
  const std::string cpu_text = take_status(
      q.method()->quantize(q.raw(), &cc, &mod, &w_cpu->t, nullptr, nullptr, cpu_sink.raw()));
  const bool ok = code == QF_CODE_INVALID_ARGUMENT && text == cpu_text && !text.empty();
  report.result(ok, label,
                ok ? "INVALID_ARGUMENT, same text as the CPU: " + text
                   : "GPU '" + text + "' vs CPU '" + cpu_text + "'");
}

}  // namespace

void fp8_no_gpu_checks(const Plugin& plugin, Report& report) {
  for (const char* method : {"fp8", "fbgemm_fp8"}) {
    Quantizer q(plugin.method(method), std::string(R"({"quant_method": ")") + method + "\"}");
    if (!q.ok()) {
      report.result(false, std::string("no-GPU create ") + method, q.error());
      continue;
    }
    float host_weight[128 * 128] = {};
    int64_t shape[2] = {128, 128};
    DLTensor w{};
    w.data = host_weight;  // never dereferenced: the call must stop before any kernel
    w.device.device_type = kDLCUDA;
    w.ndim = 2;
    w.shape = shape;
    w.dtype = dtype_f32();
    qf_module_info mod = module_info("m", QF_MODULE_LINEAR, 128, 128, dtype_f32());
    Sink sink;
    qf_call_ctx gc = gpu_call(nullptr);
    qf_status* s = q.method()->quantize(q.raw(), &gc, &mod, &w, nullptr, nullptr, sink.raw());
    const int32_t code = status_code(s);
    const std::string text = take_status(s);
    const bool ok = code == QF_CODE_FAILED_PRECONDITION;
    report.result(ok, std::string("no-GPU: CUDA quantize refused (") + method + ")",
                  ok ? "FAILED_PRECONDITION: " + text
                     : "expected FAILED_PRECONDITION, got " + (text.empty() ? "success" : text));
  }
}

void run_fp8_checks(const Plugin& plugin, Report& report) {
  const DLDataType dtypes[] = {dtype_bf16(), dtype_f16(), dtype_f32()};
  const std::vector<int64_t> rows = {1, 7, 33};  // GEMV, one token tile, several (MT = 4)
  struct Spec {
    const char* method;
    const char* config;
    const char* label;
    Shape shape;
  } specs[] = {
      {"fp8", R"({"quant_method": "fp8"})", "fp8 128x128", {256, 384, true}},
      {"fp8",
       R"({"quant_method": "fp8", "weight_block_size": null})",
       "fp8 per-tensor",
       {128, 256, true}},
      {"fp8",
       R"({"quant_method": "fp8", "weight_block_size": null})",
       "fp8 per-tensor",
       {96, 200, false}},
      {"fp8",
       R"({"quant_method": "fp8", "scale_fmt": "ue8m0"})",
       "fp8 128x128 ue8m0",
       {256, 256, true}},
      {"fp8",
       R"({"quant_method": "fp8", "weight_block_size": [64, 32]})",
       "fp8 64x32",
       {128, 96, true}},
      {"fbgemm_fp8", R"({"quant_method": "fbgemm_fp8"})", "fbgemm", {160, 320, true}},
      {"fbgemm_fp8", R"({"quant_method": "fbgemm_fp8"})", "fbgemm", {33, 70, false}},
      {"fbgemm_fp8",
       R"({"quant_method": "fbgemm_fp8", "activation_scale_ub": 2.0})",
       "fbgemm ub=2",
       {160, 320, true}},
  };
  for (const Spec& s : specs) {
    for (DLDataType d : dtypes) {
      Fp8Case(plugin, s.method, s.config, s.label, s.shape, d, report).run_quantized(rows);
    }
  }
  // Ragged tiles on load (200 = 128 + 72 rows, 320 = 128 + 128 + 64 columns: a 64-wide last K
  // block for the native kernel; 300 columns: emulation only), dynamic and static activations.
  for (const Shape& shape : {Shape{200, 320, true}, Shape{200, 300, false}}) {
    for (bool with_static : {false, true}) {
      const auto tensors = ragged_tensors(shape, with_static);
      const char* config = with_static ? R"({"quant_method": "fp8", "activation_scheme": "static"})"
                                       : R"({"quant_method": "fp8"})";
      Fp8Case(plugin, "fp8", config, with_static ? "fp8 ragged load static" : "fp8 ragged load",
              shape, dtype_bf16(), report)
          .run_loaded(tensors, {1, 7});
    }
  }
  nan_check(plugin, "fp8", R"({"quant_method": "fp8"})", 130, 7, report);
  nan_check(plugin, "fbgemm_fp8", R"({"quant_method": "fbgemm_fp8"})", 5, 9, report);
}

}  // namespace qforge::gpu_harness
