// Progress of a long run on stderr: a bar redrawn in place on a terminal, plain lines at every
// tenth of the work otherwise (logs and CI output stay readable).
#pragma once

#include <chrono>

#include "qforge/pipeline.hpp"

namespace qforge::cli {

class ProgressReporter {
 public:
  explicit ProgressReporter(bool terminal);
  void update(const Progress& progress);
  void finish();  // ends the bar's line

 private:
  bool terminal_;
  bool drawn_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qforge::cli
