// The host side of the C ABI's services: statuses, logging, parallel_for, text and tensor sinks.
// Private to host/src/plugins.
#pragma once

#include <qforge/qf_plugin.h>

#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "qforge/error.hpp"
#include "qforge/host.hpp"

namespace qforge::plugins {

// A services table for one plugin. Allocated once per plugin id and never freed: a plugin may
// keep the pointer for the life of the process (qf_plugin.h promises that).
const qf_host_api* host_api_for(const std::string& plugin_id);

// Takes ownership of a status a plugin returned. A pointer that status_new never made (garbage,
// or a status already consumed) is a contract violation reported as such, never dereferenced.
// `context` names the call for the message: "plugin 'bnb' (bitsandbytes_4bit) quantize".
Status consume_status(qf_status* status, const std::string& context);

// While one lives, plugin log messages below ERROR on this thread are dropped. select() probes
// candidates with throw-away quantizers; what they log would repeat what the chosen quantizer
// logs again moments later (FP8's emulation warning printed twice).
class QuietPluginLogs {
 public:
  QuietPluginLogs() noexcept;
  ~QuietPluginLogs();
  QuietPluginLogs(const QuietPluginLogs&) = delete;
  QuietPluginLogs& operator=(const QuietPluginLogs&) = delete;
};

// Maps a QF_CODE_* of a plugin status to the exit code the CLI uses.
ExitCode exit_code_for_plugin_code(int32_t code) noexcept;

// Collects text a plugin writes; bounded so a runaway plugin cannot exhaust memory.
class TextSink {
 public:
  TextSink();
  qf_text_sink* raw() noexcept { return &sink_; }
  const std::string& text() const noexcept { return text_; }
  bool written() const noexcept { return written_; }

 private:
  static qf_status* write(void* ctx, const char* utf8, size_t len);
  qf_text_sink sink_{};
  std::string text_;
  bool written_ = false;
};

// Allocates host tensors for a plugin's outputs and keeps them, in allocation order.
class TensorSink {
 public:
  TensorSink();
  qf_tensor_sink* raw() noexcept { return &sink_; }
  std::vector<NamedTensor> take();
  const std::deque<NamedTensor>& outputs() const noexcept { return outputs_; }

 private:
  static qf_status* allocate(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                             const int64_t* shape, DLDevice device, DLTensor** out);
  qf_tensor_sink sink_{};
  std::deque<NamedTensor> outputs_;  // deque: handed-out DLTensor pointers stay valid
  std::set<std::string> names_;
};

// Reads a C string from a plugin with a length cap, so a missing terminator cannot run away.
std::string bounded_string(const char* s, size_t cap = 64 * 1024);

}  // namespace qforge::plugins
