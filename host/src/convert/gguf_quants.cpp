// ggml tensor types: names, block sizes and dequantization of the types qforge converts.
// Block layouts from ggml-common.h (all little-endian, scales IEEE fp16):
//   Q8_0: d, int8 q[32]              x[j] = q[j] * d                       34 bytes / 32
//   Q4_0: d, u8 qs[16]               x[j] = ((qs[j] & 15) - 8) * d,
//                                    x[j+16] = ((qs[j] >> 4) - 8) * d       18 bytes / 32
//   Q4_1: d, m, u8 qs[16]            x[j] = (qs[j] & 15) * d + m, high nibble likewise
//                                                                           20 bytes / 32
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "convert/half.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

constexpr uint64_t kBlock = 32;

struct TypeTraits {
  uint64_t block;  // elements per block
  uint64_t bytes;  // bytes per block
};

bool traits_of(uint32_t type, TypeTraits& t) {
  switch (type) {
    case kGgmlF32:
      t = {1, 4};
      return true;
    case kGgmlF16:
    case kGgmlBF16:
      t = {1, 2};
      return true;
    case kGgmlQ8_0:
      t = {kBlock, 34};
      return true;
    case kGgmlQ4_0:
      t = {kBlock, 18};
      return true;
    case kGgmlQ4_1:
      t = {kBlock, 20};
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* gguf_type_name(GgufType type) noexcept {
  switch (type) {
    case GgufType::kUint8:
      return "UINT8";
    case GgufType::kInt8:
      return "INT8";
    case GgufType::kUint16:
      return "UINT16";
    case GgufType::kInt16:
      return "INT16";
    case GgufType::kUint32:
      return "UINT32";
    case GgufType::kInt32:
      return "INT32";
    case GgufType::kFloat32:
      return "FLOAT32";
    case GgufType::kBool:
      return "BOOL";
    case GgufType::kString:
      return "STRING";
    case GgufType::kArray:
      return "ARRAY";
    case GgufType::kUint64:
      return "UINT64";
    case GgufType::kInt64:
      return "INT64";
    case GgufType::kFloat64:
      return "FLOAT64";
  }
  return "unknown";
}

const char* ggml_type_name(uint32_t type) noexcept {
  // Index = ggml type number; nullptr marks numbers ggml retired (4, 5, 31-33, 36-38).
  static const char* const kNames[kGgmlTypeCount] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  nullptr,  nullptr, "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M", "BF16",  nullptr,
      nullptr,   nullptr,  "TQ1_0",   "TQ2_0", nullptr,  nullptr, nullptr, "MXFP4"};
  if (type >= kGgmlTypeCount || kNames[type] == nullptr) return "unknown";
  return kNames[type];
}

bool gguf_tensor_type_supported(uint32_t type) noexcept {
  TypeTraits t{};
  return traits_of(type, t);
}

Result<uint64_t> gguf_type_bytes(uint32_t type, uint64_t n) {
  TypeTraits t{};
  if (!traits_of(type, t)) {
    return bad_input("GGUF tensor type not supported",
                     std::string("ggml type ") + ggml_type_name(type) + " (" +
                         std::to_string(type) +
                         ") cannot be dequantized; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1",
                     "re-export the model from llama.cpp with one of the supported types");
  }
  if (n % t.block != 0) {
    return bad_input("GGUF element count not a whole number of blocks",
                     std::to_string(n) + " elements of " + ggml_type_name(type) + " (block size " +
                         std::to_string(t.block) + ")",
                     "the file is corrupt");
  }
  const uint64_t blocks = n / t.block;
  if (blocks > std::numeric_limits<uint64_t>::max() / t.bytes) {
    return bad_input(
        "GGUF tensor byte size overflows",
        std::to_string(n) + " elements of " + ggml_type_name(type) + " take more than 2^64 bytes",
        "the file is corrupt");
  }
  return blocks * t.bytes;
}

Status gguf_dequantize(uint32_t type, const uint8_t* src, size_t src_bytes, uint64_t n,
                       float* dst) {
  auto need = gguf_type_bytes(type, n);
  if (!need.ok()) return need.error();
  if (need.value() != src_bytes) {
    return bad_input("GGUF tensor data size mismatch",
                     std::to_string(n) + " elements of " + ggml_type_name(type) + " take " +
                         std::to_string(need.value()) + " bytes, got " + std::to_string(src_bytes),
                     "the file is corrupt");
  }
  switch (type) {
    case kGgmlF32:
      std::memcpy(dst, src, n * 4);
      return ok_status();
    case kGgmlF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
      return ok_status();
    case kGgmlBF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src + 2 * i));
      return ok_status();
    case kGgmlQ8_0:
      for (uint64_t b = 0; b < n / kBlock; ++b) {
        const uint8_t* block = src + b * 34;
        const float d = half_to_float(load_u16(block));
        float* out = dst + b * kBlock;
        for (uint64_t j = 0; j < kBlock; ++j) {
          out[j] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * d;
        }
      }
      return ok_status();
    case kGgmlQ4_0:
      for (uint64_t b = 0; b < n / kBlock; ++b) {
        const uint8_t* block = src + b * 18;
        const float d = half_to_float(load_u16(block));
        float* out = dst + b * kBlock;
        for (uint64_t j = 0; j < kBlock / 2; ++j) {
          const uint8_t q = block[2 + j];
          out[j] = static_cast<float>(static_cast<int>(q & 15) - 8) * d;
          out[j + 16] = static_cast<float>(static_cast<int>(q >> 4) - 8) * d;
        }
      }
      return ok_status();
    case kGgmlQ4_1:
      for (uint64_t b = 0; b < n / kBlock; ++b) {
        const uint8_t* block = src + b * 20;
        const float d = half_to_float(load_u16(block));
        const float m = half_to_float(load_u16(block + 2));
        float* out = dst + b * kBlock;
        for (uint64_t j = 0; j < kBlock / 2; ++j) {
          const uint8_t q = block[4 + j];
          // Separate multiply and add (no fma) so the result matches ggml's reference loop.
          const float lo = static_cast<float>(q & 15) * d;
          const float hi = static_cast<float>(q >> 4) * d;
          out[j] = lo + m;
          out[j + 16] = hi + m;
        }
      }
      return ok_status();
    default:
      break;
  }
  return internal_error("gguf_dequantize", "unhandled supported type");
}

}  // namespace qforge
