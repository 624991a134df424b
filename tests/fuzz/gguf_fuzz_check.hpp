// The property the GGUF fuzzer checks, shared by the libFuzzer target (gguf_fuzz.cpp) and the
// corpus replay test (fuzz_replay_test.cpp): for any bytes, parse_gguf_header returns a
// header or a bad-input error, never throws, and an accepted header is self-consistent (aligned
// data section inside the input, supported tensors inside it and disjoint, sizes agreeing with
// their shapes), and small accepted tensors dequantize to exactly n_elements values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/convert.hpp"

namespace qforge::fuzz {

// Returns nullptr when the property holds, else what broke it.
inline const char* check_gguf_input(const uint8_t* data, std::size_t size) {
  try {
    GgufLimits limits;
    limits.max_tensors = 4096;  // keeps each run fast; the limit path is itself exercised
    limits.max_kv = 4096;
    limits.max_array_elements = 1 << 16;
    auto result = parse_gguf_header(data, size, size, limits);
    if (!result.ok()) {
      const Error& e = result.error();
      if (e.exit_code() != ExitCode::kBadInput) return "error is not bad input (exit code 4)";
      if (e.summary().find("GGUF") == std::string::npos) return "error does not name GGUF";
      if (e.why().empty() || e.fix().empty()) return "error lacks why or fix";
      (void)nlohmann::json({e.summary(), e.why(), e.fix()}).dump();  // valid UTF-8
      return nullptr;
    }
    const GgufHeader& h = result.value();
    if (h.version != 2 && h.version != 3) return "accepted an unsupported version";
    if (h.alignment == 0 || (h.alignment & (h.alignment - 1)) != 0) return "bad alignment accepted";
    if (h.data_offset % h.alignment != 0) return "data section unaligned";
    if (h.data_offset > size) return "data section beyond the input";
    const uint64_t data_bytes = size - h.data_offset;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const GgufTensorInfo& t : h.tensors) {
      if (t.name.empty()) return "accepted an empty tensor name";
      if (t.ne.size() > 4) return "accepted more than 4 dimensions";
      uint64_t n = 1;
      for (uint64_t d : t.ne) {
        if (d == 0) return "accepted a zero dimension";
        n *= d;
      }
      if (n != t.n_elements) return "n_elements disagrees with ne";
      if (t.offset % h.alignment != 0) return "accepted an unaligned offset";
      if (!gguf_tensor_type_supported(t.type)) continue;
      auto bytes = gguf_type_bytes(t.type, t.n_elements);
      if (!bytes.ok() || bytes.value() != t.nbytes) return "nbytes disagrees with type and shape";
      if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset)
        return "tensor beyond the input";
      ranges.emplace_back(t.offset, t.offset + t.nbytes);
      if (t.n_elements <= (1u << 16)) {
        std::vector<float> out(static_cast<size_t>(t.n_elements));
        if (!gguf_dequantize(t.type, data + h.data_offset + t.offset, static_cast<size_t>(t.nbytes),
                             t.n_elements, out.data())
                 .ok()) {
          return "accepted tensor does not dequantize";
        }
      }
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) {
      if (ranges[i - 1].second > ranges[i].first) return "accepted overlapping tensors";
    }
    return nullptr;
  } catch (const std::exception&) {
    return "exception escaped parse_gguf_header";
  } catch (...) {
    return "unknown exception escaped parse_gguf_header";
  }
}

}  // namespace qforge::fuzz
