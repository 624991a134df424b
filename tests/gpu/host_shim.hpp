// A minimal qforge host for the GPU harness: statuses, logging, a serial-or-threaded
// parallel_for, and tensor sinks that allocate in host memory (calloc) or on the GPU
// (cudaMalloc + zero fill), owning everything they hand out.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qforge::gpu_harness {

const qf_host_api* host_api();

// "code N: what / why / fix" of a status the plugin returned, and frees it; "" for NULL.
std::string take_status(qf_status* status);
int32_t status_code(const qf_status* status);

// One owned tensor: DLTensor view + shape storage + buffer (host or device).
struct OwnedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DLTensor t{};
  bool on_gpu = false;
  ~OwnedTensor();
};

// Makes an owned tensor with `bytes` copied from host memory `src` (nullptr: zeros).
std::unique_ptr<OwnedTensor> make_tensor(const std::string& name, DLDataType dtype,
                                         std::vector<int64_t> shape, bool on_gpu,
                                         const void* src = nullptr);
int64_t byte_size(const DLTensor& t);
// The tensor's bytes in host memory (copied back from the GPU when needed).
std::vector<uint8_t> host_bytes(const DLTensor& t);

class Sink {
 public:
  Sink();
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  qf_tensor_sink* raw() { return &sink_; }
  const std::vector<std::unique_ptr<OwnedTensor>>& tensors() const { return tensors_; }
  const OwnedTensor* find(const std::string& name) const;
  // The allocated tensors as a qf_tensor_list (views valid while the sink lives).
  qf_tensor_list list();

  // Bench mode: device allocations come from one preallocated arena (reset() reuses it) with
  // no zero fill, so a timed hook call measures the plugin, not cudaMalloc.
  void use_arena(void* base, size_t bytes);
  void reset();

 private:
  static qf_status* allocate(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                             const int64_t* shape, DLDevice device, DLTensor** out);
  qf_tensor_sink sink_{};
  std::vector<std::unique_ptr<OwnedTensor>> tensors_;
  std::vector<qf_named_tensor> items_;
  unsigned char* arena_ = nullptr;
  size_t arena_size_ = 0;
  size_t arena_used_ = 0;
};

// Copies every tensor of `src` to the GPU (a 4-bit quant_state blob included: the plugin must
// read it back itself, as with a host that keeps everything on the device).
std::vector<std::unique_ptr<OwnedTensor>> to_gpu(const Sink& src);
// The tensors as a qf_tensor_list whose items live in `items`.
qf_tensor_list list_of(const std::vector<std::unique_ptr<OwnedTensor>>& ts,
                       std::vector<qf_named_tensor>& items);

DLDataType dtype_f32();
DLDataType dtype_f16();
DLDataType dtype_bf16();
DLDataType dtype_u8();
DLDataType dtype_i8();

}  // namespace qforge::gpu_harness
