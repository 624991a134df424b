// Data-free calibration input: sequences sampled autoregressively from the unquantized model.
//
// The draw is done here, not by LibTorch's samplers, so that it is the same on every platform
// and LibTorch version: one std::mt19937_64 per sequence (its output sequence is fixed by the
// C++ standard), a uniform double from the top 53 bits, and the inverse CDF of the softmax
// computed in double in vocabulary order. What can still differ between machines are the
// logits themselves (BLAS rounding), which moves a draw only when it lands within rounding of
// a CDF boundary.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "runtime/calibration_internal.hpp"

namespace qforge::runtime {
namespace detail {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::optional<int64_t> config_token(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key)) return std::nullopt;
  const nlohmann::json& v = config[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  // Some configs list several ids (e.g. eos_token_id: [1, 2]); the first is the canonical one.
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
  return std::nullopt;
}

int64_t start_token(const nlohmann::json& config, const DataFreeOptions& options, int64_t vocab) {
  std::string from = "start_token";
  std::optional<int64_t> token = options.start_token;
  if (!token) {
    from = "config.json bos_token_id";
    token = config_token(config, "bos_token_id");
  }
  if (!token) {
    from = "config.json eos_token_id";
    token = config_token(config, "eos_token_id");
  }
  if (!token) return 0;  // documented fallback: neither id is known
  if (*token < 0 || *token >= vocab) {
    throw bad_input("the data-free start token " + std::to_string(*token) + " is out of range",
                    "it comes from " + from + "; ids must lie in [0, " + std::to_string(vocab) +
                        ") (vocab_size)",
                    "set DataFreeOptions::start_token to a valid id");
  }
  return *token;
}

void check_options(const DataFreeOptions& o) {
  if (o.num_sequences < 1) {
    throw bad_input("data-free calibration needs at least one sequence",
                    "num_sequences is " + std::to_string(o.num_sequences),
                    "set num_sequences to 1 or more");
  }
  if (o.seq_len < 2) {
    throw bad_input("data-free calibration sequences must have at least two tokens",
                    "seq_len is " + std::to_string(o.seq_len) + " (the start token included)",
                    "set seq_len to 2 or more");
  }
  if (!(o.temperature > 0.0) || !std::isfinite(o.temperature)) {
    throw bad_input("data-free sampling temperature must be positive and finite",
                    "temperature is " + std::to_string(o.temperature), "use e.g. 1.0");
  }
  if (o.top_k < 0) {
    throw bad_input("data-free sampling top_k is negative", "top_k is " + std::to_string(o.top_k),
                    "use 0 (whole vocabulary) or a positive k");
  }
}

// One draw from softmax(logits / temperature), restricted to the top_k largest logits (ties:
// the lower id) when top_k is set.
int64_t draw(const float* logits, int64_t vocab, const DataFreeOptions& o, std::mt19937_64& gen,
             std::vector<double>& p, std::vector<int64_t>& order) {
  p.assign(static_cast<size_t>(vocab), 0.0);
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < vocab; ++j) top = std::max(top, static_cast<double>(logits[j]));
  if (!std::isfinite(top)) {
    throw internal_error("data-free sampling met non-finite logits",
                         "the model's largest logit is " + std::to_string(top));
  }
  const bool restricted = o.top_k > 0 && o.top_k < vocab;
  if (restricted) {
    order.resize(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::partial_sort(order.begin(), order.begin() + o.top_k, order.end(),
                      [logits](int64_t a, int64_t b) {
                        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                      });
    for (int64_t r = 0; r < o.top_k; ++r) {
      const int64_t j = order[static_cast<size_t>(r)];
      p[static_cast<size_t>(j)] = std::exp((logits[j] - top) / o.temperature);
    }
  } else {
    for (int64_t j = 0; j < vocab; ++j) {
      p[static_cast<size_t>(j)] = std::exp((logits[j] - top) / o.temperature);
    }
  }
  double total = 0.0;
  for (double v : p) total += v;
  const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;  // [0, 1)
  const double target = u * total;
  double cumulative = 0.0;
  int64_t last = 0;
  for (int64_t j = 0; j < vocab; ++j) {
    const double v = p[static_cast<size_t>(j)];
    if (v <= 0.0) continue;
    cumulative += v;
    last = j;
    if (cumulative > target) return j;
  }
  return last;  // rounding left target at the very end of the CDF
}

}  // namespace

TokenBatch sample_tokens(const LlamaNetwork& net, const nlohmann::json& config,
                         const DataFreeOptions& options) {
  check_options(options);
  const int64_t vocab = net.vocab_size();
  const int64_t n = options.num_sequences;
  const int64_t first = start_token(config, options, vocab);
  std::vector<std::mt19937_64> gens;
  for (int64_t s = 0; s < n; ++s) {
    gens.emplace_back(splitmix64(options.seed + splitmix64(static_cast<uint64_t>(s))));
  }
  TokenBatch out(static_cast<size_t>(n), std::vector<int64_t>{first});
  KvCache cache;
  at::Tensor ids = at::full({n, 1}, first, at::TensorOptions(at::kLong));
  std::vector<double> p;
  std::vector<int64_t> order;
  for (int64_t pos = 1; pos < options.seq_len; ++pos) {
    const at::Tensor logits = net.forward(ids, &cache).select(1, 0).contiguous();  // [n, vocab]
    const float* data = logits.data_ptr<float>();
    auto acc = ids.accessor<int64_t, 2>();
    for (int64_t s = 0; s < n; ++s) {
      const int64_t next =
          draw(data + s * vocab, vocab, options, gens[static_cast<size_t>(s)], p, order);
      out[static_cast<size_t>(s)].push_back(next);
      acc[s][0] = next;
    }
  }
  return out;
}

}  // namespace detail

Result<TokenBatch> sample_calibration_tokens(const Checkpoint& checkpoint,
                                             const DataFreeOptions& options,
                                             const RuntimeOptions& runtime) {
  return detail::guarded<TokenBatch>(
      "data-free sampling", detail::kCalibrationOomFix, [&]() -> Result<TokenBatch> {
        const auto net = detail::load_calibration_network(checkpoint, runtime);
        return detail::sample_tokens(*net, checkpoint.config(), options);
      });
}

}  // namespace qforge::runtime
