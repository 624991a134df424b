// The property the safetensors fuzzer checks, shared by the libFuzzer target
// (safetensors_fuzz.cpp) and the corpus replay test (fuzz_replay_test.cpp): for any
// bytes, parse_safetensors_header returns a header or a bad-input error, never throws, and an
// accepted header is self-consistent (tensors tile the data section exactly, sizes agree).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/checkpoint.hpp"

namespace qforge::fuzz {

// Returns nullptr when the property holds, else what broke it.
inline const char* check_safetensors_input(const uint8_t* data, std::size_t size) {
  try {
    SafetensorsLimits limits;
    limits.max_tensors = 4096;  // keeps each run fast; the limit path is itself exercised
    auto result = parse_safetensors_header(data, size, size, limits);
    if (!result.ok()) {
      const Error& e = result.error();
      if (e.exit_code() != ExitCode::kBadInput) return "error is not bad input (exit code 4)";
      if (e.summary().compare(0, 18, "safetensors header") != 0)
        return "error does not name the header";
      if (e.why().empty() || e.fix().empty()) return "error lacks why or fix";
      (void)nlohmann::json({e.summary(), e.why(), e.fix()}).dump();  // valid UTF-8
      return nullptr;
    }
    const SafetensorsHeader& h = result.value();
    if (h.header_bytes + 8 > size) return "header length beyond the input";
    uint64_t expected = 8 + h.header_bytes;
    for (const TensorInfo& t : h.tensors) {
      if (t.file_offset != expected) return "tensors do not tile the data section";
      const size_t elem = dtype_size(t.dtype);
      if (elem == 0) return "accepted an unknown dtype";
      auto numel = checked_numel(t.shape);
      if (!numel.ok()) return "accepted an overflowing shape";
      if (static_cast<uint64_t>(numel.value()) * elem != t.nbytes)
        return "nbytes disagrees with shape";
      if (t.nbytes != 0 && t.file_offset + t.nbytes > size) return "tensor beyond the input";
      if (t.nbytes == 0 && t.file_offset != size) return "zero-size tensor inside the data";
      expected += t.nbytes;
    }
    if (expected != size) return "accepted trailing bytes";
    return nullptr;
  } catch (const std::exception&) {
    return "exception escaped parse_safetensors_header";
  } catch (...) {
    return "unknown exception escaped parse_safetensors_header";
  }
}

}  // namespace qforge::fuzz
