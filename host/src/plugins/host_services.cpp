#include "plugins/host_services.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "qforge/logging.hpp"

// The ABI leaves qf_status opaque; this is the host's definition.
struct qf_status {
  int32_t code;
  std::string what, why, fix;
};

namespace qforge::plugins {
namespace {

constexpr size_t kMaxTextBytes = size_t{64} << 20;  // 64 MiB of JSON is far beyond any config
constexpr int32_t kMaxTensorRank = 8;

// Every status the host made and has not consumed yet. Lets consume_status refuse pointers it
// did not make instead of dereferencing them.
std::mutex g_status_mutex;
std::unordered_set<qf_status*>& live_statuses() {
  static auto* set = new std::unordered_set<qf_status*>();  // never freed: plugins outlive us
  return *set;
}

struct PluginServices {
  std::string plugin_id;
  std::shared_ptr<spdlog::logger> logger;
  qf_host_api api{};
};

qf_status* status_new(void* /*ctx*/, int32_t code, const char* what, const char* why,
                      const char* fix) {
  auto* s = new (std::nothrow)
      qf_status{code, bounded_string(what), bounded_string(why), bounded_string(fix)};
  if (s == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(g_status_mutex);
  live_statuses().insert(s);
  return s;
}

spdlog::level::level_enum to_spdlog(int32_t level) {
  switch (level) {
    case QF_LOG_TRACE:
      return spdlog::level::trace;
    case QF_LOG_DEBUG:
      return spdlog::level::debug;
    case QF_LOG_INFO:
      return spdlog::level::info;
    case QF_LOG_WARN:
      return spdlog::level::warn;
    default:
      return spdlog::level::err;
  }
}

int32_t from_spdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return QF_LOG_TRACE;
    case spdlog::level::debug:
      return QF_LOG_DEBUG;
    case spdlog::level::info:
      return QF_LOG_INFO;
    case spdlog::level::warn:
      return QF_LOG_WARN;
    case spdlog::level::off:
      return QF_LOG_OFF;
    default:
      return QF_LOG_ERROR;
  }
}

thread_local int t_quiet_logs = 0;

void log_message(void* ctx, int32_t level, const char* component, const char* msg) {
  auto* services = static_cast<PluginServices*>(ctx);
  if (services == nullptr) return;
  if (t_quiet_logs > 0 && level < QF_LOG_ERROR) return;
  const std::string text = bounded_string(msg);
  if (component != nullptr && component[0] != '\0') {
    services->logger->log(to_spdlog(level), "[{}] {}", bounded_string(component, 256), text);
  } else {
    services->logger->log(to_spdlog(level), "{}", text);
  }
}

// Note [host thread pool]: parallel_for used to start and join a std::thread per chunk on
// every call, which cost tens of microseconds per call: a GEMV of one small layer is over in
// about as long. The pool starts its workers on first use (hardware_concurrency - 1 of them;
// the caller runs chunks too) and keeps them for the life of the process (never destroyed, so
// no exit-time join can hang). Chunks are still the same contiguous ranges for a given thread
// count, whichever thread runs them, so results do not depend on scheduling. One call uses the
// pool at a time; a concurrent or nested call (a parallel_for from inside a chunk) falls back to
// threads of its own rather than waiting.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static auto* pool = new ThreadPool();  // never freed: see the note
    return *pool;
  }

  // Runs task(0..tasks) with the caller taking part; false when the pool is busy.
  template <class Task>
  bool try_run(int64_t tasks, const Task& task) {
    if (tl_in_pool_) return false;  // nested: this thread already runs a chunk of the pool
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(tasks - 1);
    Job job;
    job.run = [](const void* t, int64_t i) { (*static_cast<const Task*>(t))(i); };
    job.task = &task;
    job.tasks = tasks;
    job.next.store(0);
    job.pending.store(tasks);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    tl_in_pool_ = true;
    work_on(job);
    tl_in_pool_ = false;
    // The caller is done with its share; wait for chunks workers took.
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return job.pending.load() == 0; });
    job_ = nullptr;
    return true;
  }

 private:
  struct Job {
    void (*run)(const void*, int64_t) = nullptr;
    const void* task = nullptr;
    int64_t tasks = 0;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> pending{0};
  };

  // Fewer workers than wanted (thread creation failed) only means the caller runs more chunks.
  void ensure_workers(int64_t wanted) {
    while (static_cast<int64_t>(workers_) < wanted) {
      try {
        std::thread([this] { worker(); }).detach();
      } catch (const std::system_error&) {
        return;
      }
      ++workers_;
    }
  }

  void work_on(Job& job) {
    for (int64_t i = job.next.fetch_add(1); i < job.tasks; i = job.next.fetch_add(1)) {
      job.run(job.task, i);
      if (job.pending.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_all();
      }
    }
  }

  void worker() {
    tl_in_pool_ = true;
    uint64_t seen = 0;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
        // A job that finished before this worker woke is gone; it only waits for the next.
        if (job == nullptr) continue;
        job->pending.fetch_add(1);  // hold the job open while this worker looks at it
      }
      work_on(*job);
      if (job->pending.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_all();
      }
    }
  }

  std::mutex busy_;  // held by the one call using the pool
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  Job* job_ = nullptr;
  size_t workers_ = 0;  // only touched with busy_ held
  static thread_local bool tl_in_pool_;
};

thread_local bool ThreadPool::tl_in_pool_ = false;

qf_status* parallel_for(void* /*ctx*/, const qf_call_ctx* call, int64_t n, int64_t grain,
                        qf_range_fn fn, void* user) {
  if (fn == nullptr || n <= 0) return nullptr;
  if (grain < 1) grain = 1;
  int64_t threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (call != nullptr && call->num_threads > 0)
    threads = std::min<int64_t>(threads, call->num_threads);
  threads = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (threads <= 1) return fn(user, 0, n);

  // Contiguous equal chunks, one per thread: deterministic partition for a given thread count.
  const int64_t chunk = (n + threads - 1) / threads;
  const int64_t tasks = (n + chunk - 1) / chunk;
  std::vector<qf_status*> results(static_cast<size_t>(tasks), nullptr);
  const auto task = [&](int64_t t) {
    const int64_t begin = t * chunk;
    results[static_cast<size_t>(t)] = fn(user, begin, std::min(n, begin + chunk));
  };
  if (!ThreadPool::instance().try_run(tasks, task)) {
    std::vector<std::thread> workers;
    for (int64_t t = 1; t < tasks; ++t) workers.emplace_back([&task, t] { task(t); });
    task(0);
    for (auto& w : workers) w.join();
  }
  qf_status* first = nullptr;
  for (qf_status* s : results) {
    if (s == nullptr) continue;
    if (first == nullptr) {
      first = s;
    } else {
      (void)consume_status(s, "parallel_for");  // dropped: only the first failure is reported
    }
  }
  return first;
}

}  // namespace

std::string bounded_string(const char* s, size_t cap) {
  if (s == nullptr) return std::string();
  return std::string(s, strnlen(s, cap));
}

QuietPluginLogs::QuietPluginLogs() noexcept { ++t_quiet_logs; }
QuietPluginLogs::~QuietPluginLogs() { --t_quiet_logs; }

const qf_host_api* host_api_for(const std::string& plugin_id) {
  static std::mutex mutex;
  static auto* registry = new std::map<std::string, PluginServices*>();  // process lifetime
  std::lock_guard<std::mutex> lock(mutex);
  auto it = registry->find(plugin_id);
  if (it != registry->end()) {
    it->second->api.min_log_level = from_spdlog(log_level());
    return &it->second->api;
  }
  auto* services = new PluginServices();
  services->plugin_id = plugin_id;
  services->logger = get_logger("plugin." + plugin_id);
  qf_host_api& api = services->api;
  api.struct_size = sizeof(qf_host_api);
  api.abi_version = QF_ABI_VERSION;
  api.ctx = services;
  api.status_new = &status_new;
  api.log = &log_message;
  api.min_log_level = from_spdlog(log_level());
  api.parallel_for = &parallel_for;
  (*registry)[plugin_id] = services;
  return &api;
}

ExitCode exit_code_for_plugin_code(int32_t code) noexcept {
  switch (code) {
    case QF_CODE_INVALID_ARGUMENT:
      return ExitCode::kBadInput;
    case QF_CODE_FAILED_PRECONDITION:
      return ExitCode::kEnvironment;
    case QF_CODE_RESOURCE_EXHAUSTED:
    case QF_CODE_CANCELLED:
      return ExitCode::kInternal;
    default:
      return ExitCode::kPlugin;
  }
}

Status consume_status(qf_status* status, const std::string& context) {
  if (status == nullptr) return ok_status();
  {
    std::lock_guard<std::mutex> lock(g_status_mutex);
    if (live_statuses().erase(status) == 0) {
      return plugin_error(context + " returned an invalid status pointer",
                          "the pointer was not made by host->status_new (or was returned twice)",
                          "return NULL for success or a status from host->status_new; report to "
                          "the plugin vendor");
    }
  }
  std::unique_ptr<qf_status> owned(status);
  if (owned->code < QF_CODE_INVALID_ARGUMENT || owned->code > QF_CODE_CANCELLED) {
    return plugin_error(
        context + " returned an unknown status code " + std::to_string(owned->code),
        "codes are QF_CODE_INVALID_ARGUMENT(1)..QF_CODE_CANCELLED(7); message: " + owned->what,
        "report to the plugin vendor");
  }
  // A plugin that fails without saying why still gets a message a user can act on.
  const std::string code_name = error_code_name(static_cast<ErrorCode>(owned->code));
  if (owned->what.empty()) owned->what = "returned an error with no message";
  if (owned->why.empty()) owned->why = "status code " + code_name + " with an empty 'why'";
  if (owned->fix.empty()) owned->fix = "report to the plugin vendor";
  return Error(static_cast<ErrorCode>(owned->code), exit_code_for_plugin_code(owned->code),
               context + ": " + owned->what, owned->why, owned->fix);
}

TextSink::TextSink() {
  sink_.struct_size = sizeof(qf_text_sink);
  sink_.abi_version = QF_ABI_VERSION;
  sink_.ctx = this;
  sink_.write = &TextSink::write;
}

qf_status* TextSink::write(void* ctx, const char* utf8, size_t len) {
  auto* self = static_cast<TextSink*>(ctx);
  if (utf8 == nullptr && len != 0) {
    return status_new(nullptr, QF_CODE_INVALID_ARGUMENT,
                      "text sink: NULL text with non-zero length", "", "pass a valid buffer");
  }
  if (len > kMaxTextBytes) {
    return status_new(nullptr, QF_CODE_RESOURCE_EXHAUSTED, "text sink: text too long",
                      (std::to_string(len) + " bytes > 64 MiB").c_str(), "return less text");
  }
  self->text_.assign(utf8 == nullptr ? "" : utf8, len);
  self->written_ = true;
  return nullptr;
}

TensorSink::TensorSink() {
  sink_.struct_size = sizeof(qf_tensor_sink);
  sink_.abi_version = QF_ABI_VERSION;
  sink_.ctx = this;
  sink_.allocate = &TensorSink::allocate;
}

std::vector<NamedTensor> TensorSink::take() {
  std::vector<NamedTensor> out;
  out.reserve(outputs_.size());
  for (auto& t : outputs_) out.push_back(std::move(t));
  outputs_.clear();
  names_.clear();
  return out;
}

qf_status* TensorSink::allocate(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                                const int64_t* shape, DLDevice device, DLTensor** out) {
  auto* self = static_cast<TensorSink*>(ctx);
  if (out == nullptr) {
    return status_new(nullptr, QF_CODE_INVALID_ARGUMENT, "tensor sink: out is NULL", "",
                      "pass a DLTensor** to receive the tensor");
  }
  *out = nullptr;
  const std::string tensor_name = bounded_string(name, 4096);
  if (tensor_name.empty()) {
    return status_new(nullptr, QF_CODE_INVALID_ARGUMENT, "tensor sink: empty tensor name", "",
                      "name every output, e.g. \"weight\"");
  }
  if (self->names_.count(tensor_name) != 0) {
    return status_new(nullptr, QF_CODE_INVALID_ARGUMENT,
                      ("tensor sink: '" + tensor_name + "' allocated twice").c_str(),
                      "output names must be unique", "allocate each output once");
  }
  if (ndim < 0 || ndim > kMaxTensorRank || (ndim > 0 && shape == nullptr)) {
    return status_new(nullptr, QF_CODE_INVALID_ARGUMENT,
                      ("tensor sink: bad rank for '" + tensor_name + "'").c_str(),
                      ("ndim " + std::to_string(ndim) + ", expected 0.." +
                       std::to_string(kMaxTensorRank) + " with a shape array")
                          .c_str(),
                      "pass the output's shape");
  }
  if (device.device_type != kDLCPU) {
    return status_new(nullptr, QF_CODE_FAILED_PRECONDITION,
                      ("tensor sink: '" + tensor_name + "' requested on a non-CPU device").c_str(),
                      "this host build holds tensors on the CPU only",
                      "allocate outputs on the call's device (qf_call_ctx.device)");
  }
  std::vector<int64_t> dims(shape, shape + ndim);
  auto tensor = Tensor::zeros(dtype, dims, device);
  if (!tensor.ok()) {
    const Error& e = tensor.error();
    return status_new(
        nullptr,
        e.code() == ErrorCode::kResourceExhausted ? QF_CODE_RESOURCE_EXHAUSTED
                                                  : QF_CODE_INVALID_ARGUMENT,
        ("tensor sink: cannot allocate '" + tensor_name + "': " + e.summary()).c_str(),
        e.why().c_str(), e.fix().c_str());
  }
  self->names_.insert(tensor_name);
  self->outputs_.push_back(NamedTensor{tensor_name, std::move(tensor).value()});
  *out = self->outputs_.back().tensor.dl();
  return nullptr;
}

}  // namespace qforge::plugins
