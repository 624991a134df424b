// Names and strings from a GGUF file quoted in error messages: arbitrary bytes, so they are
// escaped (\xNN for anything but printable ASCII) and shortened, keeping every message valid
// UTF-8 and of bounded size (JSON output, logs).
#pragma once

#include <cstdio>
#include <string>

namespace qforge {

inline std::string printable(const std::string& s, size_t max_chars = 120) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "...(" + std::to_string(s.size()) + " bytes)";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace qforge
