#include "checkpoint/temp_names.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>

namespace qforge::checkpoint {

std::string make_temp_name(const std::string& target_name, const std::string& kind) {
  static std::atomic<unsigned long> counter{0};
  return "." + target_name + ".qforge-" + kind + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

long temp_name_pid(const std::string& entry_name, const std::string& target_name) {
  for (const char* kind : {"tmp", "old"}) {
    const std::string prefix = "." + target_name + ".qforge-" + kind + "-";
    if (entry_name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t i = prefix.size();
    long pid = 0;
    size_t digits = 0;
    while (i < entry_name.size() && std::isdigit(static_cast<unsigned char>(entry_name[i]))) {
      if (pid > 100'000'000) return -1;  // far above any pid_max
      pid = pid * 10 + (entry_name[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || i >= entry_name.size() || entry_name[i] != '-') return -1;
    size_t rest = 0;
    for (++i; i < entry_name.size(); ++i, ++rest) {
      if (!std::isdigit(static_cast<unsigned char>(entry_name[i]))) return -1;
    }
    return rest == 0 ? -1 : pid;
  }
  return -1;
}

}  // namespace qforge::checkpoint
