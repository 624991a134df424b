// Loads a bnb plugin .so through its one exported symbol, as the qforge host does, and wraps
// one quantizer instance's hooks for the harness.
#pragma once

#include <qforge/qf_plugin.h>

#include <string>

namespace qforge::gpu_harness {

class Plugin {
 public:
  // Returns false and fills `error` when the library cannot be loaded or negotiated.
  bool load(const std::string& path, std::string& error);
  const qf_method* method(const std::string& quant_method) const;

 private:
  qf_plugin_info info_{};
};

// One quantizer instance; destroyed with the object.
class Quantizer {
 public:
  Quantizer(const qf_method* method, const std::string& config_json);
  ~Quantizer();
  Quantizer(const Quantizer&) = delete;
  Quantizer& operator=(const Quantizer&) = delete;
  bool ok() const { return q_ != nullptr; }
  const std::string& error() const { return error_; }
  const qf_method* method() const { return m_; }
  qf_quantizer* raw() const { return q_; }

 private:
  const qf_method* m_;
  qf_quantizer* q_ = nullptr;
  std::string error_;
};

// A call context on the CPU, or on CUDA device 0 with `stream`.
qf_call_ctx cpu_call();
qf_call_ctx gpu_call(void* stream);

}  // namespace qforge::gpu_harness
