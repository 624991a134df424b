// The dense tensors the fp8 plugin reads and writes (F32, F16, BF16) as float32, and the checks
// every input gets (host memory, contiguous, expected dtype).
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::plugins::fp8 {

enum class FloatKind { kF32, kF16, kBF16 };

// The kind of a F32/F16/BF16 dtype; throws INVALID_ARGUMENT naming `what` otherwise.
FloatKind float_kind(DLDataType dtype, const std::string& what);

// Throws INVALID_ARGUMENT unless `t` is a contiguous tensor in host memory with a buffer.
void require_host_contiguous(const DLTensor& t, const std::string& what);

// The first byte of `t`'s elements.
const unsigned char* bytes_of(const DLTensor& t) noexcept;
unsigned char* bytes_of(DLTensor& t) noexcept;

// Every element of contiguous `t` (F32/F16/BF16), in order, as float32.
std::vector<float> read_floats(const DLTensor& t, const std::string& what);

// Writes values[0..count) as `kind` at dst, rounding to nearest even.
void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept;

}  // namespace qforge::plugins::fp8
