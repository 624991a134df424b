// The dense tensors the gptq and awq plugins read and write (F32, F16, BF16) as float32, and the
// checks every input gets (host memory, contiguous, a buffer).
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::plugins {

enum class FloatKind { kF32, kF16, kBF16 };

// The kind of an F32/F16/BF16 dtype; throws INVALID_ARGUMENT naming `what` otherwise.
FloatKind float_kind(DLDataType dtype, const std::string& what);

// Throws unless `t` is a contiguous host tensor with a buffer.
void require_host_contiguous(const DLTensor& t, const std::string& what);

const unsigned char* bytes_of(const DLTensor& t) noexcept;
unsigned char* bytes_of(DLTensor& t) noexcept;

// Every element of contiguous `t` (F32/F16/BF16) as float32.
std::vector<float> read_floats(const DLTensor& t, const std::string& what);
// Every element of a contiguous I32 tensor (copied: the buffer need not be aligned).
std::vector<int32_t> read_int32(const DLTensor& t, const std::string& what);

// Writes values[0..count) as `kind` at dst, rounding to nearest even.
void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept;

float half_to_float(uint16_t h) noexcept;
uint16_t float_to_half(float f) noexcept;  // round to nearest even, saturating to Inf

}  // namespace qforge::plugins
