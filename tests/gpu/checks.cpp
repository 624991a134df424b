// GPU vs CPU checks of the bnb plugin (see checks.hpp).
#include "checks.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "host_shim.hpp"

namespace qforge::gpu_harness {
namespace {

struct Shape {
  const char* label;
  int32_t kind;  // QF_MODULE_LINEAR or QF_MODULE_CONV1D
  int64_t out, in;
};

// Fast paths (in % 8 == 0, whole blocks), the generic path (odd sizes, a partial last block,
// odd element count), and Conv1D's transposed storage.
const Shape kShapes[] = {
    {"linear[256x512]", QF_MODULE_LINEAR, 256, 512},
    {"linear[33x69]", QF_MODULE_LINEAR, 33, 69},
    {"conv1d[in 64, out 96]", QF_MODULE_CONV1D, 96, 64},
};

class Case {
 public:
  Case(const Plugin& plugin, const char* method, std::string config, std::string label, Shape shape,
       DLDataType dtype, Report& report)
      : q_(plugin.method(method), config),
        label_(std::move(label)),
        shape_(shape),
        dtype_(dtype),
        report_(report) {
    cudaStreamCreate(&stream_);
    module_ = module_info("model.layers.0.mlp.up_proj", shape.kind, shape.out, shape.in, dtype);
  }
  ~Case() { cudaStreamDestroy(stream_); }

  void run(const std::vector<int64_t>& rows_list, bool plant_outliers) {
    if (!q_.ok()) {
      report_.result(false, label_, "create failed: " + q_.error());
      return;
    }
    if (!quantize()) return;
    dequantize();
    for (int64_t rows : rows_list) linear(rows, plant_outliers);
  }

 private:
  const qf_method* m() const { return q_.method(); }

  std::string name(const char* step) const {
    return std::string(step) + " " + label_ + " " + dtype_label(dtype_) + " " + shape_.label;
  }

  bool quantize() {
    const int64_t d0 = shape_.kind == QF_MODULE_CONV1D ? shape_.in : shape_.out;
    const int64_t d1 = shape_.kind == QF_MODULE_CONV1D ? shape_.out : shape_.in;
    const auto values = random_values(d0 * d1, static_cast<uint32_t>(d0 * 131 + d1), 0.02f);
    const auto bytes = to_bytes(values, dtype_);
    auto w_cpu = make_tensor("weight", dtype_, {d0, d1}, false, bytes.data());
    auto w_gpu = make_tensor("weight", dtype_, {d0, d1}, true, bytes.data());
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
      const auto a = host_bytes(t->t), b = host_bytes(g->t);
      if (g->t.device.device_type != kDLCUDA) {
        ok = false;
        detail += "'" + t->name + "' not on the GPU; ";
      }
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
                  (a.size() != b.size() ? ", sizes differ" : "") + "); ";
      }
    }
    if (ok) detail = std::to_string(cpu_q_.tensors().size()) + " tensors bit-identical";
    report_.result(ok, name("quantize"), detail);
    return true;  // later steps use the CPU's tensors, so they run either way
  }

  void dequantize() {
    qf_call_ctx cc = cpu_call(), gc = gpu_call(stream_);
    Sink cpu_out, gpu_out;
    qf_tensor_list cpu_list = cpu_q_.list();
    std::string err =
        take_status(m()->dequantize(q_.raw(), &cc, &module_, &cpu_list, cpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name("dequantize"), "CPU dequantize failed: " + err);
      return;
    }
    auto gpu_in = to_gpu(cpu_q_);
    std::vector<qf_named_tensor> items;
    qf_tensor_list gpu_list = list_of(gpu_in, items);
    err = take_status(m()->dequantize(q_.raw(), &gc, &module_, &gpu_list, gpu_out.raw()));
    if (!err.empty()) {
      report_.result(false, name("dequantize"), "GPU dequantize failed: " + err);
      return;
    }
    const OwnedTensor* a = cpu_out.find("weight");
    const OwnedTensor* b = gpu_out.find("weight");
    if (a == nullptr || b == nullptr || a->shape != b->shape) {
      report_.result(false, name("dequantize"), "output 'weight' missing or shaped differently");
      return;
    }
    std::string detail;
    const bool ok = close(to_floats(host_bytes(a->t), a->t.dtype),
                          to_floats(host_bytes(b->t), b->t.dtype), 1e-6, detail);
    report_.result(ok, name("dequantize"), detail);
  }

  void linear(int64_t rows, bool plant_outliers) {
    const int64_t in = shape_.in, out = shape_.out;
    auto xv = random_values(rows * in, static_cast<uint32_t>(rows * 7 + in), 1.0f);
    if (plant_outliers) {
      // LLM.int8 outlier columns: |x| >= 6 in a few columns of one row.
      for (int64_t c : {int64_t{3}, in / 2, in - 1})
        xv[static_cast<size_t>((rows / 2) * in + c)] = (c % 2 ? -8.5f : 7.25f);
    }
    const auto bv = random_values(out, 99, 0.1f);
    const auto xb = to_bytes(xv, dtype_), bb = to_bytes(bv, dtype_);
    auto x_cpu = make_tensor("x", dtype_, {rows, in}, false, xb.data());
    auto b_cpu = make_tensor("bias", dtype_, {out}, false, bb.data());
    auto y_cpu = make_tensor("y", dtype_, {rows, out}, false);
    auto x_gpu = make_tensor("x", dtype_, {rows, in}, true, xb.data());
    auto b_gpu = make_tensor("bias", dtype_, {out}, true, bb.data());
    auto y_gpu = make_tensor("y", dtype_, {rows, out}, true);
    qf_call_ctx cc = cpu_call(), gc = gpu_call(stream_);
    const std::string step = rows == 1 ? "gemv" : "gemm(rows " + std::to_string(rows) + ")";
    qf_tensor_list cpu_list = cpu_q_.list();
    std::string err = take_status(
        m()->linear_forward(q_.raw(), &cc, &module_, &cpu_list, &x_cpu->t, &b_cpu->t, &y_cpu->t));
    if (!err.empty()) {
      report_.result(false, name(step.c_str()), "CPU linear_forward failed: " + err);
      return;
    }
    auto gpu_in = to_gpu(cpu_q_);
    std::vector<qf_named_tensor> items;
    qf_tensor_list gpu_list = list_of(gpu_in, items);
    err = take_status(
        m()->linear_forward(q_.raw(), &gc, &module_, &gpu_list, &x_gpu->t, &b_gpu->t, &y_gpu->t));
    if (!err.empty()) {
      report_.result(false, name(step.c_str()), "GPU linear_forward failed: " + err);
      return;
    }
    std::string detail;
    // 8-bit: x is quantized to int8 per row on both sides; a different rounding of one x
    // element moves a sum by ~1/127 of that element, hence the looser bound.
    const double tol =
        dtype_tol(dtype_) + (std::string(m()->quant_method) == "bitsandbytes_8bit" ? 1e-2 : 0.0);
    const bool ok = close(to_floats(host_bytes(y_cpu->t), dtype_),
                          to_floats(host_bytes(y_gpu->t), dtype_), tol, detail);
    report_.result(ok, name(step.c_str()), detail);
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

// A NaN in the weight must be refused on the GPU as on the CPU (INVALID_ARGUMENT).
void nan_check(const Plugin& plugin, const char* method, const std::string& config,
               Report& report) {
  Quantizer q(plugin.method(method), config);
  const std::string label = std::string("NaN refused ") + method;
  if (!q.ok()) {
    report.result(false, label, "create failed: " + q.error());
    return;
  }
  auto values = random_values(64 * 128, 5, 0.02f);
  values[1000] = std::nanf("");
  const auto bytes = to_bytes(values, dtype_f16());
  auto w = make_tensor("weight", dtype_f16(), {64, 128}, true, bytes.data());
  qf_module_info mod = module_info("m", QF_MODULE_LINEAR, 64, 128, dtype_f16());
  Sink sink;
  qf_call_ctx gc = gpu_call(nullptr);
  qf_status* s = q.method()->quantize(q.raw(), &gc, &mod, &w->t, nullptr, nullptr, sink.raw());
  const int32_t code = status_code(s);
  const std::string text = take_status(s);
  const bool ok = code == QF_CODE_INVALID_ARGUMENT && text.find("1000") != std::string::npos;
  report.result(ok, label,
                ok ? "INVALID_ARGUMENT naming element 1000"
                   : "expected INVALID_ARGUMENT naming element 1000, got '" + text + "'");
}

}  // namespace

void run_checks(const Plugin& plugin, Report& report) {
  const DLDataType dtypes[] = {dtype_f16(), dtype_bf16(), dtype_f32()};
  for (const char* type : {"nf4", "fp4"}) {
    for (bool dq : {false, true}) {
      const std::string config = std::string(R"({"load_in_4bit": true, "bnb_4bit_quant_type": ")") +
                                 type + R"(", "bnb_4bit_use_double_quant": )" +
                                 (dq ? "true" : "false") + "}";
      const std::string label = std::string("4bit ") + type + (dq ? " dq" : "");
      for (const Shape& s : kShapes) {
        for (DLDataType d : dtypes) {
          Case(plugin, "bitsandbytes_4bit", config, label, s, d, report).run({1, 7}, false);
        }
      }
    }
  }
  for (double threshold : {6.0, 0.0}) {
    const std::string config =
        R"({"load_in_8bit": true, "llm_int8_threshold": )" + std::to_string(threshold) + "}";
    const std::string label = std::string("8bit threshold ") + (threshold > 0 ? "6" : "0");
    for (const Shape& s : kShapes) {
      for (DLDataType d : dtypes) {
        Case(plugin, "bitsandbytes_8bit", config, label, s, d, report).run({1, 5}, true);
      }
    }
  }
  nan_check(plugin, "bitsandbytes_4bit", R"({"load_in_4bit": true})", report);
  nan_check(plugin, "bitsandbytes_8bit", R"({"load_in_8bit": true})", report);
}

}  // namespace qforge::gpu_harness
