// parse_shard_size: transformers' convert_file_size_to_int, plus plain byte counts and TB/TiB.
#include <cctype>
#include <cstdint>
#include <limits>
#include <string>

#include "qforge/checkpoint.hpp"

namespace qforge {
namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool iends_with(const std::string& s, const std::string& upper_suffix) {
  if (s.size() < upper_suffix.size()) return false;
  for (size_t i = 0; i < upper_suffix.size(); ++i) {
    const char c = s[s.size() - upper_suffix.size() + i];
    if (std::toupper(static_cast<unsigned char>(c)) != upper_suffix[i]) return false;
  }
  return true;
}

Error size_error(const std::string& text, std::string why) {
  return usage_error("invalid shard size '" + text + "'", std::move(why),
                     "use an integer followed by a unit, e.g. 5GB, 500MB or 2GiB");
}

}  // namespace

Result<uint64_t> parse_shard_size(const std::string& text) {
  struct Unit {
    const char* suffix;  // upper case
    uint64_t factor;
    bool decimal;  // a trailing lower-case 'b' means bits, as in transformers
  };
  static constexpr Unit kUnits[] = {
      {"TIB", uint64_t{1} << 40, false},  {"GIB", uint64_t{1} << 30, false},
      {"MIB", uint64_t{1} << 20, false},  {"KIB", uint64_t{1} << 10, false},
      {"TB", 1'000'000'000'000ULL, true}, {"GB", 1'000'000'000ULL, true},
      {"MB", 1'000'000ULL, true},         {"KB", 1'000ULL, true},
  };
  const std::string s = trim(text);
  std::string digits = s;
  uint64_t factor = 1;
  bool bits = false;
  for (const Unit& unit : kUnits) {
    if (iends_with(s, unit.suffix)) {
      const size_t len = std::char_traits<char>::length(unit.suffix);
      digits = trim(s.substr(0, s.size() - len));
      factor = unit.factor;
      bits = unit.decimal && s.back() == 'b';
      break;
    }
  }
  if (digits.empty()) return size_error(text, "there is no number");
  uint64_t value = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return size_error(
          text, c == '-' ? "sizes cannot be negative" : "'" + digits + "' is not a whole number");
    }
    const auto d = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      return size_error(text, "the number does not fit in 64 bits");
    }
    value = value * 10 + d;
  }
  if (value > std::numeric_limits<uint64_t>::max() / factor) {
    return size_error(text, "the size does not fit in 64 bits");
  }
  value *= factor;
  if (bits) value /= 8;  // "5Gb" is gigabits in transformers: 625,000,000 bytes
  if (value == 0) return size_error(text, "a shard must hold at least one byte");
  return value;
}

}  // namespace qforge
