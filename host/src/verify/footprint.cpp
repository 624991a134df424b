// (a) memory footprint: tensor bytes of QUANT over ORIG's. It fails only when QUANT is not
// smaller (or above a user's --threshold footprint=RATIO).
#include "verify/verify_internal.hpp"

namespace qforge::verify {

void check_footprint(const Checkpoint& original, const Checkpoint& quantized,
                     const std::map<std::string, double>& thresholds, VerifyCheck& check) {
  const uint64_t before = original.total_tensor_bytes();
  const uint64_t after = quantized.total_tensor_bytes();
  if (before == 0) {
    fail(check, "ORIG holds no tensor bytes");
    return;
  }
  const double ratio = static_cast<double>(after) / static_cast<double>(before);
  judge(check, ratio, thresholds);
  check.detail =
      std::to_string(before) + " -> " + std::to_string(after) + " bytes (" +
      format_figure(after ? static_cast<double>(before) / static_cast<double>(after) : 0) +
      "x smaller)";
}

}  // namespace qforge::verify
