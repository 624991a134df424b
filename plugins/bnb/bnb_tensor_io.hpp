// Reading and writing the float tensors the host hands the bnb plugin (F32, F16, BF16), with
// strides and byte_offset honoured, converting to and from float32.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::plugins::bnb {

enum class FloatKind { kF32, kF16, kBF16 };

// The kind of a F32/F16/BF16 dtype; throws INVALID_ARGUMENT naming `what` and the dtype
// otherwise.
FloatKind float_kind(DLDataType dtype, const std::string& what, const std::string& fix);

// Throws INVALID_ARGUMENT unless `t` lives in host memory with a non-NULL buffer.
void require_host(const DLTensor& t, const std::string& what);

// A read-only 2-D view: element (i, j) at base + (i * row_stride + j * col_stride) * itemsize.
struct FloatMatrix {
  const unsigned char* base = nullptr;
  FloatKind kind = FloatKind::kF32;
  int64_t rows = 0, cols = 0;
  int64_t row_stride = 0, col_stride = 0;  // in elements

  float at(int64_t i, int64_t j) const noexcept;
  // Reads `count` elements of the row-major flattening starting at flat index e.
  void read_flat(int64_t e, int64_t count, float* out) const noexcept;
};

// The 2-D tensor `t` as a matrix; transpose swaps the roles of its two dimensions (a Conv1D
// weight stored [in, out] read as [out, in]).
FloatMatrix matrix_view(const DLTensor& t, FloatKind kind, bool transpose);

// Every element of a contiguous float tensor, in order, as float32.
std::vector<float> read_contiguous(const DLTensor& t, FloatKind kind);

// Writes values[0..count) as `kind` at dst (contiguous), rounding to nearest even.
void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept;

}  // namespace qforge::plugins::bnb
