#include "bench_stats.hpp"

#include <algorithm>
#include <chrono>

namespace qforge::cli::bench {
namespace {

double time_once(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Spread spread_of(std::vector<double> values) {
  Spread s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.min = values.front();
  s.max = values.back();
  s.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return s;
}

nlohmann::json spread_json(const Spread& s) {
  return {{"min", s.min}, {"median", s.median}, {"max", s.max}};
}

Interleaved run_interleaved(int reps, const std::function<void()>& reference,
                            const std::function<void()>& candidate) {
  // Candidate first: when its hook is missing the run stops before the reference spends time.
  candidate();
  reference();
  Interleaved out;
  for (int i = 0; i < reps; ++i) {
    out.reference_s.push_back(time_once(reference));
    out.candidate_s.push_back(time_once(candidate));
  }
  return out;
}

}  // namespace qforge::cli::bench
