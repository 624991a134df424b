// Token-id files: one sequence per line, ids separated by spaces or commas, '#' to end of line
// a comment, blank lines ignored. Errors name the file, line and the offending text.
#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "qforge/runtime.hpp"

namespace qforge::runtime {

Result<TokenBatch> read_token_file(const std::filesystem::path& path) {
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::is_directory(path, ec)) {
    return bad_input("cannot read the token file '" + path.string() + "'",
                     "it does not exist or is not readable", "check the path");
  }
  TokenBatch out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::vector<int64_t> ids;
    size_t i = 0;
    while (i < line.size()) {
      const char c = line[i];
      if (c == ' ' || c == '\t' || c == ',' || c == '\r') {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != ',' &&
             line[end] != '\r') {
        ++end;
      }
      const std::string token = line.substr(i, end - i);
      const bool digits = token.find_first_not_of("0123456789") == std::string::npos;
      errno = 0;
      const long long value = digits ? std::strtoll(token.c_str(), nullptr, 10) : -1;
      if (!digits || errno == ERANGE) {
        return bad_input("bad token id '" + token + "' in '" + path.string() + "' line " +
                             std::to_string(line_no),
                         "ids are non-negative decimal integers separated by spaces or commas",
                         "fix that line ('#' starts a comment)");
      }
      ids.push_back(static_cast<int64_t>(value));
      i = end;
    }
    if (!ids.empty()) out.push_back(std::move(ids));
  }
  if (in.bad()) {
    return bad_input("cannot read the token file '" + path.string() + "'", "a read failed",
                     "check the file");
  }
  return out;
}

}  // namespace qforge::runtime
