#include "qforge/tensor.hpp"

#include <qforge/qf_plugin.h>

#include <cstdlib>
#include <cstring>
#include <limits>

namespace qforge {
namespace {

struct DtypeRow {
  uint8_t code;
  uint8_t bits;
  const char* safetensors;
  const char* torch;
};

// One row per dtype a safetensors file may hold (plus U16..U64 that newer writers emit).
constexpr DtypeRow kDtypes[] = {
    {kDLFloat, 64, "F64", "float64"},
    {kDLFloat, 32, "F32", "float32"},
    {kDLFloat, 16, "F16", "float16"},
    {kDLBfloat, 16, "BF16", "bfloat16"},
    {QF_DL_FLOAT8_E4M3FN, 8, "F8_E4M3", "float8_e4m3fn"},
    {QF_DL_FLOAT8_E5M2, 8, "F8_E5M2", "float8_e5m2"},
    {kDLInt, 64, "I64", "int64"},
    {kDLInt, 32, "I32", "int32"},
    {kDLInt, 16, "I16", "int16"},
    {kDLInt, 8, "I8", "int8"},
    {kDLUInt, 64, "U64", "uint64"},
    {kDLUInt, 32, "U32", "uint32"},
    {kDLUInt, 16, "U16", "uint16"},
    {kDLUInt, 8, "U8", "uint8"},
    {QF_DL_BOOL, 8, "BOOL", "bool"},
};

}  // namespace

bool dtype_equal(DLDataType a, DLDataType b) noexcept {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

size_t dtype_size(DLDataType dtype) noexcept {
  if (dtype.lanes != 1) return 0;
  for (const auto& row : kDtypes) {
    if (row.code == dtype.code && row.bits == dtype.bits) return row.bits / 8;
  }
  return 0;
}

std::string dtype_to_string(DLDataType dtype) {
  if (dtype.lanes == 1) {
    for (const auto& row : kDtypes) {
      if (row.code == dtype.code && row.bits == dtype.bits) return row.safetensors;
    }
  }
  return "?";
}

Result<DLDataType> dtype_from_string(const std::string& name) {
  std::string bare = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
  for (const auto& row : kDtypes) {
    if (bare == row.safetensors || bare == row.torch) return DLDataType{row.code, row.bits, 1};
  }
  if (bare == "half") return DLDataType{kDLFloat, 16, 1};
  if (bare == "float") return DLDataType{kDLFloat, 32, 1};
  return bad_input("unknown dtype '" + name + "'",
                   "it is neither a safetensors dtype (F32, BF16, U8, ...) nor a torch dtype name",
                   "use one of float32, float16, bfloat16, int8, uint8, ...");
}

Result<int64_t> checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t d = shape[i];
    if (d < 0) {
      return bad_input("negative dimension in tensor shape",
                       "dimension " + std::to_string(i) + " is " + std::to_string(d),
                       "shapes must be non-negative");
    }
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return bad_input("tensor shape overflows",
                       "the element count exceeds 2^63-1 at dimension " + std::to_string(i),
                       "check the shape");
    }
    n *= d;
  }
  return n;
}

void Tensor::FreeDeleter::operator()(void* p) const noexcept { std::free(p); }

Result<Tensor> Tensor::zeros(DLDataType dtype, std::vector<int64_t> shape, DLDevice device) {
  if (device.device_type != kDLCPU) {
    return bad_input("host tensors live on the CPU",
                     "device type " + std::to_string(device.device_type) + " was requested",
                     "use a CPU device; device buffers come from a CUDA-enabled build");
  }
  const size_t elem = dtype_size(dtype);
  if (elem == 0) {
    return bad_input("unsupported tensor dtype",
                     "code " + std::to_string(dtype.code) + " bits " + std::to_string(dtype.bits) +
                         " lanes " + std::to_string(dtype.lanes),
                     "use a safetensors dtype");
  }
  auto numel = checked_numel(shape);
  if (!numel.ok()) return numel.error();
  const auto n = static_cast<uint64_t>(numel.value());
  if (n > std::numeric_limits<size_t>::max() / elem - 64) {
    return bad_input("tensor too large", std::to_string(n) + " elements", "check the shape");
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = numel.value();
  t.nbytes_ = static_cast<size_t>(n) * elem;
  const size_t alloc = ((t.nbytes_ + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, alloc == 0 ? 64 : alloc);
  if (p == nullptr) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kInternal, "out of host memory",
                 "could not allocate " + std::to_string(alloc) + " bytes",
                 "free memory or use a smaller model");
  }
  std::memset(p, 0, alloc == 0 ? 64 : alloc);
  t.data_.reset(p);
  t.view_.data = p;
  t.view_.device = device;
  t.view_.ndim = static_cast<int32_t>(t.shape_.size());
  t.view_.dtype = dtype;
  t.view_.shape = t.shape_.data();
  t.view_.strides = nullptr;
  t.view_.byte_offset = 0;
  return t;
}

TensorView::TensorView(DLDataType dtype, std::vector<int64_t> shape, const void* data,
                       std::shared_ptr<const void> keepalive)
    : shape_(std::move(shape)), keepalive_(std::move(keepalive)) {
  // Callers build views from validated headers or existing Tensors, so the numel is known to
  // fit; a failure here is our bug, not bad input.
  auto numel = checked_numel(shape_);
  QF_ASSERT(numel.ok());
  numel_ = numel.value();
  nbytes_ = static_cast<size_t>(numel_) * dtype_size(dtype);
  view_.data = const_cast<void*>(data);  // DLTensor has no const data; views are read-only
  view_.device = DLDevice{kDLCPU, 0};
  view_.dtype = dtype;
  view_.strides = nullptr;
  view_.byte_offset = 0;
  rebind();
}

TensorView TensorView::of(const Tensor& tensor) {
  return TensorView(tensor.dtype(), tensor.shape(), tensor.data());
}

void TensorView::rebind() noexcept {
  view_.ndim = static_cast<int32_t>(shape_.size());
  view_.shape = shape_.empty() ? nullptr : shape_.data();
}

TensorView::TensorView(const TensorView& other)
    : shape_(other.shape_),
      numel_(other.numel_),
      nbytes_(other.nbytes_),
      keepalive_(other.keepalive_),
      view_(other.view_) {
  rebind();
}

TensorView& TensorView::operator=(const TensorView& other) {
  if (this != &other) {
    shape_ = other.shape_;
    numel_ = other.numel_;
    nbytes_ = other.nbytes_;
    keepalive_ = other.keepalive_;
    view_ = other.view_;
    rebind();
  }
  return *this;
}

TensorView::TensorView(TensorView&& other) noexcept
    : shape_(std::move(other.shape_)),
      numel_(other.numel_),
      nbytes_(other.nbytes_),
      keepalive_(std::move(other.keepalive_)),
      view_(other.view_) {
  rebind();
}

TensorView& TensorView::operator=(TensorView&& other) noexcept {
  if (this != &other) {
    shape_ = std::move(other.shape_);
    numel_ = other.numel_;
    nbytes_ = other.nbytes_;
    keepalive_ = std::move(other.keepalive_);
    view_ = other.view_;
    rebind();
  }
  return *this;
}

Result<Tensor> TensorView::copy() const {
  auto t = Tensor::zeros(dtype(), shape_);
  if (!t.ok()) return t.error();
  if (nbytes_ != 0) std::memcpy(t.value().data(), data(), nbytes_);
  return std::move(t).value();
}

}  // namespace qforge
