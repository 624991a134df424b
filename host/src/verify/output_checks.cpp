// (f) output quality: ORIG and QUANT run on the same inputs through the OutputModel seam, and
// the figures (figures.hpp) judged against the thresholds. Causal LMs get logit cosine, KL,
// top-1, perplexity delta and greedy-generation agreement; encoders the embedding cosine.
#include <algorithm>
#include <cmath>

#include "verify/figures.hpp"
#include "verify/verify_internal.hpp"

namespace qforge::verify {
namespace {

constexpr int64_t kDefaultSequences = 4;
constexpr int64_t kDefaultLength = 64;
constexpr size_t kPromptLength = 16;
constexpr int64_t kSeedPromptLength = 4;

const std::vector<std::string>& lm_ids() {
  static const std::vector<std::string> ids = {"logit_cosine", "kl", "top1", "ppl_delta",
                                               "generation"};
  return ids;
}

std::vector<VerifyCheck> all(const std::vector<std::string>& ids, CheckOutcome outcome,
                             const std::string& why) {
  std::vector<VerifyCheck> out;
  for (const auto& id : ids) {
    VerifyCheck c = make_check(id);
    c.outcome = outcome;
    c.detail = why;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> every_id() {
  std::vector<std::string> ids = lm_ids();
  ids.emplace_back("embedding_cosine");
  return ids;
}

// Uniformly random ids are not language: a trained LM's next-token distributions on them are
// nearly flat (perplexity in the millions), so small weight errors move argmaxes and KL a lot.
// A causal LM's default inputs are therefore its own text: a short seeded random prompt, then
// ORIG's greedy continuation (data-free, as calibration does when no file is given).
Result<runtime::TokenBatch> self_generated_inputs(OutputModel& orig) {
  runtime::TokenBatch batch =
      default_token_batch(orig.vocab_size(), kDefaultSequences, kSeedPromptLength);
  for (auto& sequence : batch) {
    auto continuation = orig.generate(sequence, kDefaultLength - kSeedPromptLength);
    if (!continuation.ok()) return continuation.error();
    sequence.insert(sequence.end(), continuation.value().begin(), continuation.value().end());
  }
  return batch;
}

Result<std::vector<VerifyCheck>> causal_lm_checks(OutputModel& orig, OutputModel& quant,
                                                  const runtime::TokenBatch& inputs,
                                                  const VerifyOptions& options,
                                                  const std::map<std::string, double>& t) {
  double cos_sum = 0, kl_sum = 0, top1_sum = 0, nll_o = 0, nll_q = 0;
  int64_t positions = 0, predicted = 0;
  // One sequence at a time: user inputs may differ in length, and a batch needs equal lengths.
  for (const auto& sequence : inputs) {
    const runtime::TokenBatch one = {sequence};
    auto lo = orig.forward(one);
    if (!lo.ok()) return lo.error();
    auto lq = quant.forward(one);
    if (!lq.ok()) {
      return all(lm_ids(), CheckOutcome::kFail, "QUANT fails to run: " + lq.error().to_string());
    }
    auto f = compare_logits(lo.value(), lq.value(), one);
    if (!f.ok()) return f.error();
    const auto n = static_cast<double>(f.value().positions);
    cos_sum += f.value().mean_cosine * n;
    kl_sum += f.value().mean_kl * n;
    top1_sum += f.value().top1 * n;
    positions += f.value().positions;
    if (f.value().predicted > 0) {
      const auto m = static_cast<double>(f.value().predicted);
      nll_o += std::log(f.value().ppl_original) * m;
      nll_q += std::log(f.value().ppl_quantized) * m;
      predicted += f.value().predicted;
    }
  }
  std::vector<VerifyCheck> out;
  const std::string over =
      std::to_string(positions) + " positions of " + std::to_string(inputs.size()) + " sequences";
  VerifyCheck cosine = make_check("logit_cosine");
  judge(cosine, positions ? cos_sum / static_cast<double>(positions) : NAN, t);
  cosine.detail = over;
  VerifyCheck kl = make_check("kl");
  judge(kl, positions ? kl_sum / static_cast<double>(positions) : NAN, t);
  kl.detail = over;
  VerifyCheck top1 = make_check("top1");
  judge(top1, positions ? top1_sum / static_cast<double>(positions) : NAN, t);
  top1.detail = over;
  VerifyCheck ppl = make_check("ppl_delta");
  if (predicted > 0) {
    const double po = std::exp(nll_o / static_cast<double>(predicted));
    const double pq = std::exp(nll_q / static_cast<double>(predicted));
    judge(ppl, (pq - po) / po, t);
    ppl.detail = "perplexity " + format_figure(po) + " -> " + format_figure(pq) + " over " +
                 std::to_string(predicted) + " predicted tokens";
  } else {
    skip(ppl, "no sequence has 2 or more ids");
  }
  out.push_back(std::move(cosine));
  out.push_back(std::move(kl));
  out.push_back(std::move(top1));
  out.push_back(std::move(ppl));

  VerifyCheck gen = make_check("generation");
  const auto n = static_cast<size_t>(std::max<int64_t>(options.generate_tokens, 0));
  double agreement = 0;
  int prompts = 0;
  for (const auto& sequence : inputs) {
    if (sequence.empty() || n == 0) continue;
    const std::vector<int64_t> prompt(
        sequence.begin(),
        sequence.begin() + static_cast<std::ptrdiff_t>(std::min(kPromptLength, sequence.size())));
    auto go = orig.generate(prompt, static_cast<int64_t>(n));
    if (!go.ok()) return go.error();
    auto gq = quant.generate(prompt, static_cast<int64_t>(n));
    if (!gq.ok()) {
      fail(gen, "QUANT fails to generate: " + gq.error().to_string());
      out.push_back(std::move(gen));
      return out;
    }
    agreement += prefix_agreement(go.value(), gq.value(), n);
    ++prompts;
  }
  if (prompts == 0) {
    skip(gen, "no prompt or no tokens to generate");
  } else {
    judge(gen, agreement / prompts, t);
    gen.detail = std::to_string(prompts) + " prompts of <= " + std::to_string(kPromptLength) +
                 " ids, " + std::to_string(n) + " new tokens each";
  }
  out.push_back(std::move(gen));
  return out;
}

Result<std::vector<VerifyCheck>> encoder_checks(OutputModel& orig, OutputModel& quant,
                                                const runtime::TokenBatch& inputs,
                                                const std::map<std::string, double>& t) {
  VerifyCheck check = make_check("embedding_cosine");
  double sum = 0;
  for (const auto& sequence : inputs) {
    const runtime::TokenBatch one = {sequence};
    auto eo = orig.forward(one);
    if (!eo.ok()) return eo.error();
    auto eq = quant.forward(one);
    if (!eq.ok()) {
      fail(check, "QUANT fails to run: " + eq.error().to_string());
      return std::vector<VerifyCheck>{check};
    }
    auto c = mean_row_cosine(eo.value(), eq.value());
    if (!c.ok()) return c.error();
    sum += c.value();
  }
  judge(check, inputs.empty() ? NAN : sum / static_cast<double>(inputs.size()), t);
  check.detail = std::to_string(inputs.size()) + " sequences, mean-pooled";
  return std::vector<VerifyCheck>{check};
}

}  // namespace

Result<std::vector<VerifyCheck>> check_outputs(Host& host, const Checkpoint& original,
                                               const Checkpoint& quantized,
                                               const VerifyOptions& options,
                                               const std::map<std::string, double>& thresholds,
                                               const std::string& skip_reason) {
  if (!skip_reason.empty()) return all(every_id(), CheckOutcome::kSkipped, skip_reason);
  if (!options.outputs) {
    return all(every_id(), CheckOutcome::kSkipped, "not requested (static checks only)");
  }
  if (!options.load_model) {
    return all(every_id(), CheckOutcome::kSkipped,
               "runtime unavailable: no model runtime was given, the outputs were not compared");
  }
  auto orig = options.load_model(host, original);
  if (!orig.ok()) {
    return all(every_id(), CheckOutcome::kSkipped,
               "the runtime cannot run ORIG: " + orig.error().to_string());
  }
  OutputModel& o = *orig.value();
  const std::vector<std::string> ids =
      o.causal_lm() ? lm_ids() : std::vector<std::string>{"embedding_cosine"};
  auto quant = options.load_model(host, quantized);
  if (!quant.ok()) {
    return all(ids, CheckOutcome::kFail, "QUANT cannot be loaded: " + quant.error().to_string());
  }
  runtime::TokenBatch inputs = options.inputs;
  if (inputs.empty() && o.causal_lm()) {
    auto sampled = self_generated_inputs(o);
    if (!sampled.ok()) return sampled.error();
    inputs = std::move(sampled).value();
  } else if (inputs.empty()) {
    inputs = default_token_batch(o.vocab_size(), kDefaultSequences, kDefaultLength);
  }
  if (o.causal_lm()) return causal_lm_checks(o, *quant.value(), inputs, options, thresholds);
  return encoder_checks(o, *quant.value(), inputs, thresholds);
}

}  // namespace qforge::verify
