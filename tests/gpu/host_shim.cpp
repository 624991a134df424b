// The harness's host services (see host_shim.hpp).
#include "host_shim.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

struct qf_status {
  int32_t code;
  std::string text;
};

namespace qforge::gpu_harness {
namespace {

qf_status* status_new(void*, int32_t code, const char* what, const char* why, const char* fix) {
  auto* s = new qf_status{code, ""};
  s->text = std::string("code ") + std::to_string(code) + ": " + (what ? what : "") + " / " +
            (why ? why : "") + " / " + (fix ? fix : "");
  return s;
}

void log(void*, int32_t level, const char* component, const char* msg) {
  if (level >= QF_LOG_WARN) {
    std::fprintf(stderr, "[plugin %s] %s\n", component ? component : "bnb", msg ? msg : "");
  }
}

qf_status* parallel_for(void*, const qf_call_ctx* call, int64_t n, int64_t grain, qf_range_fn fn,
                        void* user) {
  if (n <= 0) return nullptr;
  grain = std::max<int64_t>(grain, 1);
  int64_t threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (call != nullptr && call->num_threads > 0)
    threads = std::min<int64_t>(threads, call->num_threads);
  threads = std::min(threads, (n + grain - 1) / grain);
  if (threads <= 1) return fn(user, 0, n);
  std::mutex mu;
  qf_status* first = nullptr;
  std::vector<std::thread> pool;
  const int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&, b, e] {
      qf_status* s = fn(user, b, e);
      if (s == nullptr) return;
      std::lock_guard<std::mutex> lock(mu);
      if (first == nullptr) {
        first = s;
      } else {
        delete s;
      }
    });
  }
  for (auto& th : pool) th.join();
  return first;
}

qf_host_api make_api() {
  qf_host_api api{};
  api.struct_size = sizeof(qf_host_api);
  api.abi_version = QF_ABI_VERSION;
  api.status_new = &status_new;
  api.log = &log;
  api.min_log_level = QF_LOG_WARN;
  api.parallel_for = &parallel_for;
  return api;
}

DLDataType dt(uint8_t code, uint8_t bits) {
  DLDataType d;
  d.code = code;
  d.bits = bits;
  d.lanes = 1;
  return d;
}

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "FATAL: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(3);
  }
}

}  // namespace

const qf_host_api* host_api() {
  static qf_host_api api = make_api();
  return &api;
}

std::string take_status(qf_status* status) {
  if (status == nullptr) return "";
  std::string text = status->text;
  delete status;
  return text;
}

int32_t status_code(const qf_status* status) { return status == nullptr ? 0 : status->code; }

DLDataType dtype_f32() { return dt(kDLFloat, 32); }
DLDataType dtype_f16() { return dt(kDLFloat, 16); }
DLDataType dtype_bf16() { return dt(kDLBfloat, 16); }
DLDataType dtype_u8() { return dt(kDLUInt, 8); }
DLDataType dtype_i8() { return dt(kDLInt, 8); }

int64_t byte_size(const DLTensor& t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n * ((t.dtype.bits * t.dtype.lanes + 7) / 8);
}

OwnedTensor::~OwnedTensor() {
  if (t.data == nullptr) return;
  if (on_gpu) {
    cudaFree(t.data);
  } else {
    std::free(t.data);
  }
}

std::unique_ptr<OwnedTensor> make_tensor(const std::string& name, DLDataType dtype,
                                         std::vector<int64_t> shape, bool on_gpu, const void* src) {
  auto o = std::make_unique<OwnedTensor>();
  o->name = name;
  o->shape = std::move(shape);
  o->on_gpu = on_gpu;
  o->t.ndim = static_cast<int32_t>(o->shape.size());
  o->t.shape = o->shape.data();
  o->t.dtype = dtype;
  o->t.device.device_type = on_gpu ? kDLCUDA : kDLCPU;
  o->t.device.device_id = 0;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(byte_size(o->t), 1));
  if (on_gpu) {
    cuda_check(cudaMalloc(&o->t.data, bytes), "cudaMalloc");
    if (src != nullptr) {
      cuda_check(
          cudaMemcpy(o->t.data, src, static_cast<size_t>(byte_size(o->t)), cudaMemcpyHostToDevice),
          "cudaMemcpy H2D");
    } else {
      cuda_check(cudaMemset(o->t.data, 0, bytes), "cudaMemset");
    }
  } else {
    o->t.data = std::calloc(1, bytes);
    if (src != nullptr) std::memcpy(o->t.data, src, static_cast<size_t>(byte_size(o->t)));
  }
  return o;
}

std::vector<uint8_t> host_bytes(const DLTensor& t) {
  std::vector<uint8_t> out(static_cast<size_t>(byte_size(t)));
  if (out.empty()) return out;
  const auto* src = static_cast<const unsigned char*>(t.data) + t.byte_offset;
  if (t.device.device_type == kDLCUDA) {
    cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    cuda_check(cudaMemcpy(out.data(), src, out.size(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  } else {
    std::memcpy(out.data(), src, out.size());
  }
  return out;
}

std::vector<std::unique_ptr<OwnedTensor>> to_gpu(const Sink& src) {
  std::vector<std::unique_ptr<OwnedTensor>> out;
  for (const auto& t : src.tensors()) {
    const auto bytes = host_bytes(t->t);
    out.push_back(make_tensor(t->name, t->t.dtype, t->shape, true, bytes.data()));
  }
  return out;
}

qf_tensor_list list_of(const std::vector<std::unique_ptr<OwnedTensor>>& ts,
                       std::vector<qf_named_tensor>& items) {
  items.clear();
  for (const auto& t : ts) items.push_back({t->name.c_str(), &t->t});
  qf_tensor_list l{};
  l.struct_size = sizeof(qf_tensor_list);
  l.abi_version = QF_ABI_VERSION;
  l.count = static_cast<int64_t>(items.size());
  l.items = items.data();
  return l;
}

Sink::Sink() {
  sink_.struct_size = sizeof(qf_tensor_sink);
  sink_.abi_version = QF_ABI_VERSION;
  sink_.ctx = this;
  sink_.allocate = &Sink::allocate;
}

Sink::~Sink() { reset(); }  // arena tensors must not reach cudaFree

const OwnedTensor* Sink::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t->name == name) return t.get();
  }
  return nullptr;
}

qf_tensor_list Sink::list() {
  items_.clear();
  for (const auto& t : tensors_) items_.push_back({t->name.c_str(), &t->t});
  qf_tensor_list l{};
  l.struct_size = sizeof(qf_tensor_list);
  l.abi_version = QF_ABI_VERSION;
  l.count = static_cast<int64_t>(items_.size());
  l.items = items_.data();
  return l;
}

void Sink::use_arena(void* base, size_t bytes) {
  arena_ = static_cast<unsigned char*>(base);
  arena_size_ = bytes;
  arena_used_ = 0;
}

void Sink::reset() {
  for (auto& t : tensors_) {
    if (arena_ != nullptr && t->on_gpu) t->t.data = nullptr;  // arena memory: not ours to free
  }
  tensors_.clear();
  arena_used_ = 0;
}

qf_status* Sink::allocate(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                          const int64_t* shape, DLDevice device, DLTensor** out) {
  auto* self = static_cast<Sink*>(ctx);
  if (self->find(name) != nullptr) {
    return host_api()->status_new(nullptr, QF_CODE_INVALID_ARGUMENT, "tensor allocated twice", name,
                                  "");
  }
  const bool gpu = device.device_type == kDLCUDA;
  std::vector<int64_t> dims(shape, shape + ndim);
  if (gpu && self->arena_ != nullptr) {
    auto o = std::make_unique<OwnedTensor>();
    o->name = name;
    o->shape = dims;
    o->on_gpu = true;
    o->t.ndim = ndim;
    o->t.shape = o->shape.data();
    o->t.dtype = dtype;
    o->t.device = device;
    const size_t bytes = (static_cast<size_t>(byte_size(o->t)) + 255) & ~size_t{255};
    if (self->arena_used_ + bytes > self->arena_size_) {
      return host_api()->status_new(nullptr, QF_CODE_RESOURCE_EXHAUSTED, "bench arena full", name,
                                    "");
    }
    o->t.data = self->arena_ + self->arena_used_;
    self->arena_used_ += bytes;
    self->tensors_.push_back(std::move(o));
  } else {
    self->tensors_.push_back(make_tensor(name, dtype, dims, gpu));
  }
  *out = &self->tensors_.back()->t;
  return nullptr;
}

}  // namespace qforge::gpu_harness
