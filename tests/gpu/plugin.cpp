// Plugin loading for the harness (see plugin.hpp).
#include "plugin.hpp"

#include <dlfcn.h>

#include <cstring>

#include "host_shim.hpp"

namespace qforge::gpu_harness {

bool Plugin::load(const std::string& path, std::string& error) {
  // RTLD_LOCAL: the plugin's symbols stay private, as under the real host.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    error = "dlopen(" + path + ") failed: " + (why ? why : "unknown");
    return false;
  }
  auto entry = reinterpret_cast<qf_plugin_entry_fn>(dlsym(lib, QF_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) {
    error = path + " exports no " QF_PLUGIN_ENTRY_SYMBOL;
    return false;
  }
  static qf_host_info host{};
  host.struct_size = sizeof(qf_host_info);
  host.abi_version = QF_ABI_VERSION;
  host.min_abi = QF_ABI_MAKE_VERSION(1, 0);
  host.max_abi = QF_ABI_VERSION;
  host.host_version = "0.1.0";
  host.api = host_api();
  info_ = qf_plugin_info{};
  info_.struct_size = sizeof(qf_plugin_info);
  std::string s = take_status(entry(&host, &info_));
  if (!s.empty()) {
    error = "qf_plugin_entry failed: " + s;
    return false;
  }
  if (info_.init != nullptr) {
    s = take_status(info_.init("{}"));
    if (!s.empty()) {
      error = "plugin init failed: " + s;
      return false;
    }
  }
  return true;
}

const qf_method* Plugin::method(const std::string& quant_method) const {
  for (int32_t i = 0; i < info_.method_count; ++i) {
    const qf_method* m = info_.methods[i];
    if (m != nullptr && m->quant_method != nullptr && quant_method == m->quant_method) return m;
  }
  return nullptr;
}

Quantizer::Quantizer(const qf_method* method, const std::string& config_json) : m_(method) {
  if (m_ == nullptr) {
    error_ = "the plugin has no such method";
    return;
  }
  error_ = take_status(m_->create(config_json.c_str(), &q_));
  if (!error_.empty()) q_ = nullptr;
}

Quantizer::~Quantizer() {
  if (q_ != nullptr) m_->destroy(q_);
}

qf_call_ctx cpu_call() {
  qf_call_ctx c{};
  c.struct_size = sizeof(qf_call_ctx);
  c.abi_version = QF_ABI_VERSION;
  c.device.device_type = kDLCPU;
  c.device.device_id = 0;
  c.num_threads = 0;
  return c;
}

qf_call_ctx gpu_call(void* stream) {
  qf_call_ctx c = cpu_call();
  c.device.device_type = kDLCUDA;
  c.stream = stream;
  return c;
}

}  // namespace qforge::gpu_harness
