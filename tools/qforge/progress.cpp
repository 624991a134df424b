#include "progress.hpp"

#include <cstdio>
#include <string>

#include "output.hpp"

namespace qforge::cli {

ProgressReporter::ProgressReporter(bool terminal)
    : terminal_(terminal), start_(std::chrono::steady_clock::now()) {}

void ProgressReporter::update(const Progress& p) {
  const double fraction =
      p.bytes_total > 0 ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total)
      : p.modules_total > 0
          ? static_cast<double>(p.modules_done) / static_cast<double>(p.modules_total)
          : 1.0;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth + 0.5);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::string current = p.current;
    if (current.size() > 40) current = "..." + current.substr(current.size() - 37);
    std::fprintf(stderr, "\r[%s] %3d%%  %zu/%zu modules  %s  %.1fs  %-40s", bar.c_str(),
                 static_cast<int>(fraction * 100), p.modules_done, p.modules_total,
                 format_bytes(p.bytes_done).c_str(), seconds, current.c_str());
    std::fflush(stderr);
    drawn_ = true;
    return;
  }
  const int decile = static_cast<int>(fraction * 10);
  if (decile == last_decile_) return;
  last_decile_ = decile;
  std::fprintf(stderr, "quantize: %3d%% (%zu/%zu modules, %s, %.1f s)\n", decile * 10,
               p.modules_done, p.modules_total, format_bytes(p.bytes_done).c_str(), seconds);
}

void ProgressReporter::finish() {
  if (terminal_ && drawn_) std::fprintf(stderr, "\n");
}

}  // namespace qforge::cli
