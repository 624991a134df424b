// A host-owned, contiguous, CPU tensor with a DLTensor view: what the host hands plugins and
// what tensor sinks allocate. Sizes are overflow-checked; memory is 64-byte aligned.
#pragma once

#include <dlpack/dlpack.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge {

// Bytes of one element; 0 for a dtype qforge does not know.
size_t dtype_size(DLDataType dtype) noexcept;
// safetensors spelling ("F32", "BF16", "U8", "F8_E4M3", ...); "?" when unknown.
std::string dtype_to_string(DLDataType dtype);
// Inverse of dtype_to_string; also accepts torch names ("float16", "bfloat16", "uint8", ...).
Result<DLDataType> dtype_from_string(const std::string& name);
bool dtype_equal(DLDataType a, DLDataType b) noexcept;

// numel of `shape` with overflow and negative-dimension checks.
Result<int64_t> checked_numel(const std::vector<int64_t>& shape);

class Tensor {
 public:
  // Allocates zero-filled storage. Fails on negative dims, overflow or unknown dtype.
  static Result<Tensor> zeros(DLDataType dtype, std::vector<int64_t> shape,
                              DLDevice device = DLDevice{kDLCPU, 0});
  Tensor() = default;
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  DLDataType dtype() const noexcept { return dtype_; }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  int64_t numel() const noexcept { return numel_; }
  size_t nbytes() const noexcept { return nbytes_; }
  void* data() noexcept { return data_.get(); }
  const void* data() const noexcept { return data_.get(); }
  template <class T>
  T* data_as() noexcept {
    return static_cast<T*>(data());
  }
  template <class T>
  const T* data_as() const noexcept {
    return static_cast<const T*>(data());
  }
  // A view valid while this tensor lives and is not moved.
  DLTensor* dl() noexcept { return &view_; }
  const DLTensor* dl() const noexcept { return &view_; }

 private:
  struct FreeDeleter {
    void operator()(void* p) const noexcept;
  };
  DLDataType dtype_{kDLFloat, 32, 1};
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  size_t nbytes_ = 0;
  std::unique_ptr<void, FreeDeleter> data_;
  DLTensor view_{};
};

// A read-only, contiguous view of tensor bytes owned elsewhere: a mapped safetensors file
// (`keepalive` holds the mapping) or a Tensor (borrowed; the Tensor must outlive the view).
// Copyable; each copy has its own DLTensor pointing at its own shape.
class TensorView {
 public:
  TensorView() = default;
  TensorView(DLDataType dtype, std::vector<int64_t> shape, const void* data,
             std::shared_ptr<const void> keepalive = nullptr);
  static TensorView of(const Tensor& tensor);
  TensorView(const TensorView& other);
  TensorView& operator=(const TensorView& other);
  TensorView(TensorView&& other) noexcept;
  TensorView& operator=(TensorView&& other) noexcept;

  DLDataType dtype() const noexcept { return view_.dtype; }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  int64_t numel() const noexcept { return numel_; }
  size_t nbytes() const noexcept { return nbytes_; }
  const void* data() const noexcept { return view_.data; }
  template <class T>
  const T* data_as() const noexcept {
    return static_cast<const T*>(data());
  }
  const DLTensor* dl() const noexcept { return &view_; }
  // An owned copy (e.g. to outlive the mapping).
  Result<Tensor> copy() const;

 private:
  void rebind() noexcept;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  size_t nbytes_ = 0;
  std::shared_ptr<const void> keepalive_;
  DLTensor view_{};
};

}  // namespace qforge
