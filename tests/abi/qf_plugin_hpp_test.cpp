// qf_plugin.hpp must compile cleanly as C++17 with -Wall -Wextra -Wpedantic -Werror, with every
// template instantiated the way a plugin instantiates it (method_table, QF_PLUGIN_ENTRY, the
// guard, Call::parallel_for). The program then runs a smoke test of the SDK's C boundary
// against a minimal host and exits non-zero on the first surprise.
#include <cstdio>
#include <qforge/qf_plugin.hpp>
#include <stdexcept>
#include <string>

namespace {

class Probe final : public qforge::sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = "probe";
  static constexpr uint32_t kFlags = QF_METHOD_SERIALIZABLE;
  explicit Probe(const std::string& config_json) {
    if (config_json == "throw") throw std::runtime_error("bad config");
  }
  std::string update_dtype(const std::string& dtype) override {
    int64_t covered = 0;
    Call(nullptr).parallel_for(10, 3, [&](int64_t b, int64_t e) { covered += e - b; });
    return dtype + ":" + std::to_string(covered);
  }
  std::string postprocess(const std::string& /*model_config_json*/) override {
    throw qforge::sdk::Error(QF_CODE_INVALID_ARGUMENT, "what", "why", "fix");
  }

 private:
  using Call = qforge::sdk::Call;
};

qforge::sdk::PluginSpec probe_spec() {
  return qforge::sdk::PluginSpec{"probe", "1.0.0", 0, {qforge::sdk::method_table<Probe>()}};
}

struct Status {
  int32_t code;
};
Status g_statuses[16];
int g_status_count = 0;

qf_status* status_new(void* /*ctx*/, int32_t code, const char* /*what*/, const char* /*why*/,
                      const char* /*fix*/) {
  Status* s = &g_statuses[g_status_count++ % 16];
  s->code = code;
  return reinterpret_cast<qf_status*>(s);
}

int32_t code_of(const qf_status* s) {
  return s == nullptr ? QF_CODE_OK : reinterpret_cast<const Status*>(s)->code;
}

std::string g_text;
qf_status* write_text(void* /*ctx*/, const char* utf8, size_t len) {
  g_text.assign(utf8, len);
  return nullptr;
}

int fail(const char* what) {
  std::fprintf(stderr, "qf_plugin_hpp_test: %s\n", what);
  return 1;
}

}  // namespace

QF_PLUGIN_ENTRY(probe_spec())

int main() {
  qf_host_api api{};
  api.struct_size = sizeof(api);
  api.abi_version = QF_ABI_VERSION;
  api.status_new = &status_new;
  api.min_log_level = QF_LOG_OFF;
  qf_host_info host{};
  host.struct_size = sizeof(host);
  host.abi_version = QF_ABI_VERSION;
  host.min_abi = QF_ABI_MAKE_VERSION(1, 0);
  host.max_abi = QF_ABI_VERSION;
  host.host_version = "0.1.0";
  host.api = &api;
  qf_plugin_info info{};
  info.struct_size = sizeof(info);
  if (qf_plugin_entry(&host, &info) != nullptr) return fail("entry refused a matching host");
  if (info.abi_version != QF_ABI_VERSION || info.method_count != 1) return fail("bad info");
  const qf_method& m = *info.methods[0];

  qf_quantizer* q = nullptr;
  if (code_of(m.create("throw", &q)) != QF_CODE_INTERNAL || q != nullptr) {
    return fail("an exception in create did not become INTERNAL");
  }
  if (m.create("{}", &q) != nullptr || q == nullptr) return fail("create failed");
  qf_text_sink sink{sizeof(qf_text_sink), QF_ABI_VERSION, nullptr, &write_text};
  // The default needs_quantization honours the host's default_skip mark, and only that key.
  qf_module_info head{};
  head.struct_size = sizeof(head);
  head.abi_version = QF_ABI_VERSION;
  head.name = "lm_head";
  head.kind = QF_MODULE_LINEAR;
  head.extra_json =
      R"({"role":"output_head","tag":"x\"default_skip\":\"y","default_skip":"out \"head\""})";
  int32_t needed = -1;
  if (m.needs_quantization(q, &head, &needed, &sink) != nullptr || needed != 0 ||
      g_text != "transformers' default skip list: out \"head\"") {
    return fail("default_skip was not honoured or was misread");
  }
  head.extra_json = R"({"role":"linear","tag":"q_proj\"default_skip\":\"x"})";
  g_text.clear();
  if (m.needs_quantization(q, &head, &needed, &sink) != nullptr || needed != 1) {
    return fail("an escaped key inside a value was taken for default_skip");
  }

  if (m.update_dtype(q, "float16", &sink) != nullptr || g_text != "float16:10") {
    return fail("update_dtype / parallel_for fallback");
  }
  if (code_of(m.postprocess(q, "{}", &sink)) != QF_CODE_INVALID_ARGUMENT) {
    return fail("sdk::Error did not become its status");
  }
  if (code_of(m.update_device_map(nullptr, "null", &sink)) != QF_CODE_INVALID_ARGUMENT) {
    return fail("a NULL instance was not refused");
  }
  m.destroy(q);
  m.destroy(nullptr);

  host.min_abi = QF_ABI_MAKE_VERSION(2, 0);
  host.max_abi = QF_ABI_MAKE_VERSION(2, 0);
  if (code_of(qf_plugin_entry(&host, &info)) != QF_CODE_FAILED_PRECONDITION ||
      info.abi_version != 0) {
    return fail("a major-2 host was not refused with FAILED_PRECONDITION");
  }
  return 0;
}
