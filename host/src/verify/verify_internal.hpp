// What the verify files share: the check table (ids, titles, how a figure is held against its
// threshold), threshold resolution, and the per-concern passes verify_checkpoints runs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qforge/pipeline.hpp"
#include "qforge/verify.hpp"

namespace qforge::verify {

// A check not yet run: id, title and comparison from the table, outcome skipped.
VerifyCheck make_check(const std::string& id);
// Sets figure, threshold and pass/fail by the check's comparison ("<", "<=", ">="). A figure
// that is NaN fails. `detail` is kept.
void judge(VerifyCheck& check, double figure, const std::map<std::string, double>& thresholds);
void skip(VerifyCheck& check, const std::string& why);
void fail(VerifyCheck& check, const std::string& why);

// Host defaults for the method, then the manifest's `verify:` block of `plugin_id`, then the
// user's. A user id that takes no threshold is a usage error naming the valid ids.
Result<std::map<std::string, double>> resolve_thresholds(Host& host, const std::string& plugin_id,
                                                         const std::string& quant_method,
                                                         const std::map<std::string, double>& user);

// Collects a check's problems: the first few go into the detail, with the total count.
class Problems {
 public:
  void add(std::string problem) {
    if (list_.size() < kShown) list_.push_back(std::move(problem));
    ++count_;
  }
  bool empty() const { return count_ == 0; }
  size_t count() const { return count_; }
  std::string text() const;

 private:
  static constexpr size_t kShown = 5;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

// (d): QUANT's quantization_config. Returns the plan of ORIG under that config when the config
// is usable (the (b)/(c) passes need it); the check says why when it is not. An Error only
// when the comparison cannot start (no plugin serves the method: exit code 3).
Result<std::optional<Plan>> check_config(Host& host, const Checkpoint& original,
                                         const Checkpoint& quantized, const VerifyOptions& options,
                                         VerifyCheck& check);

// (b), (c) and the reconstruction error, over the plan's modules; fills report.modules.
Status check_modules(const Plan& plan, const Checkpoint& original, const Checkpoint& quantized,
                     const std::map<std::string, double>& thresholds, VerifyCheck& layer_types,
                     VerifyCheck& dtypes, VerifyCheck& reconstruction,
                     std::vector<ModuleFigures>& modules);

// (a)
void check_footprint(const Checkpoint& original, const Checkpoint& quantized,
                     const std::map<std::string, double>& thresholds, VerifyCheck& check);

// (e): writes QUANT again into a temporary folder (removed afterwards) and compares.
void check_round_trip(const Checkpoint& quantized, VerifyCheck& check);

// (f): the checks, in report order, for a causal LM or an encoder; all of them skipped with
// `skip_reason` when it is not empty. An Error when ORIG itself fails on the inputs (bad ids).
Result<std::vector<VerifyCheck>> check_outputs(Host& host, const Checkpoint& original,
                                               const Checkpoint& quantized,
                                               const VerifyOptions& options,
                                               const std::map<std::string, double>& thresholds,
                                               const std::string& skip_reason);

// "1.234", "0.0012", "3.1e-07": figures as people read them.
std::string format_figure(double value);

}  // namespace qforge::verify
