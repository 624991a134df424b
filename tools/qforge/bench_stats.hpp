// Timing discipline for `qforge bench`: the reference (A) and the candidate (B) run interleaved,
// A B A B ..., after one untimed warm-up each, so drift on a shared machine (other jobs, clock
// changes) hits both sides alike; each repetition gives one ratio and the report is the median.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

namespace qforge::cli::bench {

struct Spread {
  double min = 0, median = 0, max = 0;
};
// Min / median / max of `values` (median of an even count: mean of the middle two).
Spread spread_of(std::vector<double> values);
nlohmann::json spread_json(const Spread& s);

// Seconds per repetition of each side.
struct Interleaved {
  std::vector<double> reference_s, candidate_s;
};
// Runs reference() and candidate() once each untimed, then `reps` times interleaved, timed.
// Exceptions from either side propagate (the warm-up is the first call, so a missing hook
// fails before any timing).
Interleaved run_interleaved(int reps, const std::function<void()>& reference,
                            const std::function<void()>& candidate);

}  // namespace qforge::cli::bench
