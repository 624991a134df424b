#include "verify/check_table.hpp"

#include <string>
#include <vector>

#include "qforge/verify.hpp"

namespace qforge {

// Report order.
const std::vector<CheckSpec>& check_table() {
  static const std::vector<CheckSpec> table = {
      {"footprint", "<", "tensor bytes of QUANT / ORIG"},
      {"layer_types", "", "targeted modules carry the method's tensors; others untouched"},
      {"dtypes", "", "stored dtypes and shapes as the method declares"},
      {"config", "", "quantization_config present, valid, stable under a JSON round trip"},
      {"round_trip", "", "QUANT saved again has identical tensors"},
      {"reconstruction", "<=", "largest per-module weight error ||W - dequant(Q)|| / ||W||"},
      {"logit_cosine", ">=", "mean cosine similarity of the logits"},
      {"kl", "<=", "mean KL(ORIG || QUANT) of the next-token distributions (nats)"},
      {"top1", ">=", "share of positions whose top-1 token agrees"},
      {"ppl_delta", "<=", "relative perplexity change (QUANT - ORIG) / ORIG"},
      {"generation", ">=", "greedy-generation agreement (common prefix / tokens)"},
      {"embedding_cosine", ">=", "mean cosine similarity of the pooled embeddings"},
  };
  return table;
}

const std::vector<std::string>& threshold_check_ids() {
  static const std::vector<std::string> ids = [] {
    std::vector<std::string> out;
    for (const auto& spec : check_table()) {
      if (*spec.comparison != '\0') out.emplace_back(spec.id);
    }
    return out;
  }();
  return ids;
}

}  // namespace qforge
