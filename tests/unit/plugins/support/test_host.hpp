// A tiny host for driving plugins through the C ABI in unit tests, without libqforge: a
// qf_host_api whose status_new records code/what/why/fix, a text sink, a tensor sink, host
// tensors and tensor lists, and module descriptions that own their strings.
//
// Statuses are owned by the TestHost (as a real host owns them) and live as long as it does.
// The SDK's qforge::sdk::g_host points at the last TestHost that ran an entry; the destructor
// clears it so a later test never logs through a dead table.
#pragma once

#include <qforge/qf_plugin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <qforge/qf_plugin.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace qforge::test {

struct RecordedStatus {
  int32_t code = QF_CODE_OK;
  std::string what, why, fix;
};

struct LogRecord {
  int32_t level = 0;
  std::string component, message;
};

class TestHost {
 public:
  TestHost() {
    api_.struct_size = sizeof(qf_host_api);
    api_.abi_version = QF_ABI_VERSION;
    api_.ctx = this;
    api_.status_new = &TestHost::status_new;
    api_.log = &TestHost::log;
    api_.min_log_level = QF_LOG_TRACE;
    api_.parallel_for = &TestHost::parallel_for;
  }
  ~TestHost() {
    if (qforge::sdk::g_host == &api_) qforge::sdk::g_host = nullptr;
  }
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  const qf_host_api* api() const { return &api_; }
  void set_min_log_level(int32_t level) { api_.min_log_level = level; }
  // Threads parallel_for uses (1: serial, in grain-sized steps).
  void set_threads(int threads) { threads_ = threads; }

  // The host_info a qforge 0.1.0 host speaking [min_abi, max_abi] would pass.
  qf_host_info host_info(uint32_t min_abi = QF_ABI_VERSION,
                         uint32_t max_abi = QF_ABI_VERSION) const {
    qf_host_info info{};
    info.struct_size = sizeof(qf_host_info);
    info.abi_version = QF_ABI_VERSION;
    info.min_abi = min_abi;
    info.max_abi = max_abi;
    info.host_version = "0.1.0";
    info.api = &api_;
    return info;
  }

  // The recorded contents of a status this host made; nullptr for NULL (success).
  const RecordedStatus* status(const qf_status* s) const {
    return reinterpret_cast<const RecordedStatus*>(s);
  }

  std::vector<LogRecord> logs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return logs_;
  }
  void clear_logs() {
    std::lock_guard<std::mutex> lock(mutex_);
    logs_.clear();
  }

  // Makes a status the way a plugin would (for sinks that must fail).
  qf_status* make_status(int32_t code, const char* what) {
    return status_new(this, code, what, "", "");
  }

 private:
  static qf_status* status_new(void* ctx, int32_t code, const char* what, const char* why,
                               const char* fix) {
    auto* self = static_cast<TestHost*>(ctx);
    auto status = std::make_unique<RecordedStatus>();
    status->code = code;
    status->what = what != nullptr ? what : "";
    status->why = why != nullptr ? why : "";
    status->fix = fix != nullptr ? fix : "";
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->statuses_.push_back(std::move(status));
    return reinterpret_cast<qf_status*>(self->statuses_.back().get());
  }
  static void log(void* ctx, int32_t level, const char* component, const char* msg) {
    auto* self = static_cast<TestHost*>(ctx);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->logs_.push_back(
        {level, component != nullptr ? component : "", msg != nullptr ? msg : ""});
  }
  // Serial by default: tests want determinism, not speed. With set_threads(t > 1) it splits
  // [0, n) like the real host (contiguous equal chunks, at most ceil(n / grain) of them) and
  // runs them on t threads, so a test can check that results do not depend on the split.
  static qf_status* parallel_for(void* ctx, const qf_call_ctx* /*call*/, int64_t n, int64_t grain,
                                 qf_range_fn fn, void* user) {
    const int64_t step = grain > 0 ? grain : 1;
    const int64_t threads = static_cast<TestHost*>(ctx)->threads_;
    if (threads > 1 && n > 0) {
      const int64_t chunks = std::min<int64_t>(threads, (n + step - 1) / step);
      const int64_t chunk = (n + chunks - 1) / chunks;
      std::vector<qf_status*> results(static_cast<size_t>(chunks), nullptr);
      std::vector<std::thread> workers;
      for (int64_t t = 0; t < chunks && t * chunk < n; ++t) {
        workers.emplace_back([&, t] {
          results[static_cast<size_t>(t)] = fn(user, t * chunk, std::min(n, (t + 1) * chunk));
        });
      }
      for (auto& w : workers) w.join();
      for (qf_status* s : results) {
        if (s != nullptr) return s;
      }
      return nullptr;
    }
    for (int64_t begin = 0; begin < n; begin += step) {
      qf_status* s = fn(user, begin, begin + step < n ? begin + step : n);
      if (s != nullptr) return s;
    }
    return nullptr;
  }

  qf_host_api api_{};
  int threads_ = 1;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<RecordedStatus>> statuses_;
  std::vector<LogRecord> logs_;
};

// Collects what a hook writes; `written` tells "wrote empty text" from "wrote nothing".
class TextSink {
 public:
  TextSink() {
    sink_.struct_size = sizeof(qf_text_sink);
    sink_.abi_version = QF_ABI_VERSION;
    sink_.ctx = this;
    sink_.write = &TextSink::write;
  }
  TextSink(const TextSink&) = delete;
  TextSink& operator=(const TextSink&) = delete;

  qf_text_sink* get() { return &sink_; }
  const std::string& text() const { return text_; }
  bool written() const { return written_; }

 private:
  static qf_status* write(void* ctx, const char* utf8, size_t len) {
    auto* self = static_cast<TextSink*>(ctx);
    self->text_.assign(utf8, len);
    self->written_ = true;
    return nullptr;
  }
  qf_text_sink sink_{};
  std::string text_;
  bool written_ = false;
};

// A contiguous tensor in host memory that owns its buffer and shape.
class HostTensor {
 public:
  HostTensor(DLDataType dtype, std::vector<int64_t> shape) : shape_(std::move(shape)) {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    buffer_.assign(static_cast<size_t>(n) * ((dtype.bits * dtype.lanes + 7) / 8), 0);
    tensor_.data = buffer_.data();
    tensor_.device.device_type = kDLCPU;
    tensor_.device.device_id = 0;
    tensor_.ndim = static_cast<int32_t>(shape_.size());
    tensor_.dtype = dtype;
    tensor_.shape = shape_.data();
    tensor_.strides = nullptr;
    tensor_.byte_offset = 0;
  }
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  DLTensor& get() { return tensor_; }
  const DLTensor& get() const { return tensor_; }
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(buffer_.data());
  }
  int64_t numel() const { return qforge::sdk::numel(tensor_); }

 private:
  std::vector<int64_t> shape_;
  std::vector<unsigned char> buffer_;
  DLTensor tensor_{};
};

// Allocates through the C sink contract: zero-filled host tensors, duplicate names refused.
class TensorSink {
 public:
  explicit TensorSink(TestHost& host) : host_(host) {
    sink_.struct_size = sizeof(qf_tensor_sink);
    sink_.abi_version = QF_ABI_VERSION;
    sink_.ctx = this;
    sink_.allocate = &TensorSink::allocate;
  }
  TensorSink(const TensorSink&) = delete;
  TensorSink& operator=(const TensorSink&) = delete;

  qf_tensor_sink* get() { return &sink_; }
  const std::vector<std::pair<std::string, std::unique_ptr<HostTensor>>>& tensors() const {
    return tensors_;
  }
  HostTensor* find(const std::string& name) const {
    for (const auto& [n, t] : tensors_) {
      if (n == name) return t.get();
    }
    return nullptr;
  }

 private:
  static qf_status* allocate(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                             const int64_t* shape, DLDevice /*device*/, DLTensor** out) {
    auto* self = static_cast<TensorSink*>(ctx);
    if (self->find(name) != nullptr) {
      return self->host_.make_status(QF_CODE_INVALID_ARGUMENT, "tensor allocated twice");
    }
    auto tensor = std::make_unique<HostTensor>(dtype, std::vector<int64_t>(shape, shape + ndim));
    *out = &tensor->get();
    self->tensors_.emplace_back(name, std::move(tensor));
    return nullptr;
  }
  TestHost& host_;
  qf_tensor_sink sink_{};
  std::vector<std::pair<std::string, std::unique_ptr<HostTensor>>> tensors_;
};

// A qf_tensor_list over named HostTensors (borrowed: keep them alive while the list is used).
class TensorList {
 public:
  TensorList() {
    list_.struct_size = sizeof(qf_tensor_list);
    list_.abi_version = QF_ABI_VERSION;
  }
  TensorList(const TensorList&) = delete;
  TensorList& operator=(const TensorList&) = delete;

  // Adds a zero-filled tensor and returns it for filling.
  HostTensor& add(const std::string& name, DLDataType dtype, std::vector<int64_t> shape) {
    names_.push_back(std::make_unique<std::string>(name));
    tensors_.push_back(std::make_unique<HostTensor>(dtype, std::move(shape)));
    return *tensors_.back();
  }
  void remove(const std::string& name) {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (*names_[i] == name) {
        names_.erase(names_.begin() + static_cast<std::ptrdiff_t>(i));
        tensors_.erase(tensors_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  const qf_tensor_list& get() {
    items_.clear();
    for (size_t i = 0; i < names_.size(); ++i) {
      items_.push_back({names_[i]->c_str(), &tensors_[i]->get()});
    }
    list_.count = static_cast<int64_t>(items_.size());
    list_.items = items_.data();
    return list_;
  }

 private:
  std::vector<std::unique_ptr<std::string>> names_;
  std::vector<std::unique_ptr<HostTensor>> tensors_;
  std::vector<qf_named_tensor> items_;
  qf_tensor_list list_{};
};

// A qf_module_info that owns its name.
class Module {
 public:
  Module(std::string name, int32_t kind, int64_t out_features, int64_t in_features,
         bool has_bias = false, DLDataType weight_dtype = qforge::sdk::make_dtype(kDLFloat, 16))
      : name_(std::move(name)) {
    info_.struct_size = sizeof(qf_module_info);
    info_.abi_version = QF_ABI_VERSION;
    info_.name = name_.c_str();
    info_.kind = kind;
    info_.has_bias = has_bias ? 1 : 0;
    info_.in_features = in_features;
    info_.out_features = out_features;
    info_.weight_dtype = weight_dtype;
    info_.extra_json = nullptr;
  }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const qf_module_info& get() const { return info_; }
  const qf_module_info* ptr() const { return &info_; }

 private:
  std::string name_;
  qf_module_info info_{};
};

inline DLDataType f16() { return qforge::sdk::make_dtype(kDLFloat, 16); }
inline DLDataType bf16() { return qforge::sdk::make_dtype(kDLBfloat, 16); }
inline DLDataType f32() { return qforge::sdk::make_dtype(kDLFloat, 32); }
inline DLDataType u8() { return qforge::sdk::make_dtype(kDLUInt, 8); }
inline DLDataType i8() { return qforge::sdk::make_dtype(kDLInt, 8); }

}  // namespace qforge::test
