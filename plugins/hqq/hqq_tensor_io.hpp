// Dense tensors the hqq plugin reads and writes (F32, F16, BF16) as float32, the rounding to a
// compute dtype that PyTorch applies after every elementwise op, and hqq's encodings of
// non-tensor fields (hqq/core/utils.py encode_safetensor_type).
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qforge::plugins::hqq {

enum class FloatKind { kF32, kF16, kBF16 };

// The kind of a F32/F16/BF16 dtype; throws INVALID_ARGUMENT naming `what` otherwise.
FloatKind float_kind(DLDataType dtype, const std::string& what);
DLDataType dtype_of(FloatKind kind);
// "torch.float32", "torch.float16", "torch.bfloat16": how hqq encodes compute_dtype.
const char* torch_name(FloatKind kind);

// Throws INVALID_ARGUMENT unless `t` is a contiguous tensor in host memory with a buffer.
void require_host_contiguous(const DLTensor& t, const std::string& what);

const unsigned char* bytes_of(const DLTensor& t) noexcept;
unsigned char* bytes_of(DLTensor& t) noexcept;

// Every element of contiguous `t` (F32/F16/BF16), in order, as float32.
std::vector<float> read_floats(const DLTensor& t, const std::string& what);
// Writes values[0..count) as `kind` at dst, rounding to nearest even.
void write_floats(const float* values, int64_t count, FloatKind kind, void* dst) noexcept;
// `v` rounded to `kind` and widened back (round to nearest even; identity for F32).
float round_as(FloatKind kind, float v) noexcept;

// Decoders of hqq's encoded fields: an integer scalar (I32, also I64/U8), a number scalar (adds
// F32 for nbits 1.58), a string (U8 character codes), a torch.Size (I64 vector).
int64_t decode_int(const DLTensor& t, const std::string& what);
double decode_number(const DLTensor& t, const std::string& what);
std::string decode_string(const DLTensor& t, const std::string& what);
std::vector<int64_t> decode_size(const DLTensor& t, const std::string& what);

}  // namespace qforge::plugins::hqq
