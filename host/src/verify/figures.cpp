#include "verify/figures.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace qforge::verify {
namespace {

double log_sum_exp(const float* v, size_t n, double max_value) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(v[i]) - max_value);
  return max_value + std::log(sum);
}

double max_of(const float* v, size_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(v[i]));
  return m;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  float value = 0;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal (or zero)
  } else if (exponent == 31) {
    value =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign ? -value : value;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::string shape3(const runtime::Activations& a) {
  return "[" + std::to_string(a.batch) + ", " + std::to_string(a.seq) + ", " +
         std::to_string(a.width) + "]";
}

Status check_activations(const runtime::Activations& a, const char* which) {
  const uint64_t expected = static_cast<uint64_t>(a.batch) * static_cast<uint64_t>(a.seq) *
                            static_cast<uint64_t>(a.width);
  if (a.batch < 0 || a.seq < 0 || a.width <= 0 || a.data.size() != expected) {
    return internal_error(
        std::string("the runtime returned malformed ") + which + " outputs",
        "shape " + shape3(a) + " but " + std::to_string(a.data.size()) + " values");
  }
  return ok_status();
}

}  // namespace

double cosine_similarity(const float* a, const float* b, size_t n) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 && nb == 0) return 1.0;
  if (na == 0 || nb == 0) return 0.0;
  return dot / (std::sqrt(na) * std::sqrt(nb));
}

double kl_divergence(const float* p_logits, const float* q_logits, size_t n) {
  const double lse_p = log_sum_exp(p_logits, n, max_of(p_logits, n));
  const double lse_q = log_sum_exp(q_logits, n, max_of(q_logits, n));
  double kl = 0;
  for (size_t i = 0; i < n; ++i) {
    const double log_p = static_cast<double>(p_logits[i]) - lse_p;
    const double log_q = static_cast<double>(q_logits[i]) - lse_q;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(kl, 0.0);
}

size_t argmax(const float* v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

double negative_log_likelihood(const float* logits, size_t n, size_t index) {
  return log_sum_exp(logits, n, max_of(logits, n)) - static_cast<double>(logits[index]);
}

Result<LogitFigures> compare_logits(const runtime::Activations& original,
                                    const runtime::Activations& quantized,
                                    const runtime::TokenBatch& ids) {
  QF_RETURN_IF_ERROR(check_activations(original, "ORIG"));
  QF_RETURN_IF_ERROR(check_activations(quantized, "QUANT"));
  if (original.batch != quantized.batch || original.seq != quantized.seq ||
      original.width != quantized.width) {
    return internal_error("ORIG and QUANT logits differ in shape",
                          "ORIG " + shape3(original) + ", QUANT " + shape3(quantized));
  }
  if (static_cast<int64_t>(ids.size()) != original.batch) {
    return internal_error("logits and inputs disagree",
                          std::to_string(ids.size()) + " sequences, logits " + shape3(original));
  }
  LogitFigures f;
  const auto v = static_cast<size_t>(original.width);
  double cos_sum = 0, kl_sum = 0, nll_o = 0, nll_q = 0;
  int64_t agree = 0;
  for (int64_t b = 0; b < original.batch; ++b) {
    if (static_cast<int64_t>(ids[b].size()) != original.seq) {
      return internal_error("logits and inputs disagree",
                            "sequence " + std::to_string(b) + " has " +
                                std::to_string(ids[b].size()) + " ids, logits " + shape3(original));
    }
    for (int64_t t = 0; t < original.seq; ++t) {
      const size_t offset = (static_cast<size_t>(b * original.seq + t)) * v;
      const float* o = original.data.data() + offset;
      const float* q = quantized.data.data() + offset;
      cos_sum += cosine_similarity(o, q, v);
      kl_sum += kl_divergence(o, q, v);
      if (argmax(o, v) == argmax(q, v)) ++agree;
      ++f.positions;
      if (t + 1 < original.seq) {
        const int64_t next = ids[b][t + 1];
        if (next < 0 || next >= original.width) {
          return bad_input("input id " + std::to_string(next) + " is outside the vocabulary",
                           "sequence " + std::to_string(b) + ", position " + std::to_string(t + 1) +
                               "; vocab size " + std::to_string(original.width),
                           "give ids in [0, vocab_size)");
        }
        nll_o += negative_log_likelihood(o, v, static_cast<size_t>(next));
        nll_q += negative_log_likelihood(q, v, static_cast<size_t>(next));
        ++f.predicted;
      }
    }
  }
  if (f.positions == 0) {
    return bad_input("no input positions to compare", "every input sequence is empty",
                     "give sequences of at least 2 ids");
  }
  const auto positions = static_cast<double>(f.positions);
  f.mean_cosine = cos_sum / positions;
  f.mean_kl = kl_sum / positions;
  f.top1 = static_cast<double>(agree) / positions;
  if (f.predicted > 0) {
    const auto predicted = static_cast<double>(f.predicted);
    f.ppl_original = std::exp(nll_o / predicted);
    f.ppl_quantized = std::exp(nll_q / predicted);
    f.ppl_delta = (f.ppl_quantized - f.ppl_original) / f.ppl_original;
  }
  return f;
}

Result<double> mean_row_cosine(const runtime::Activations& original,
                               const runtime::Activations& quantized) {
  QF_RETURN_IF_ERROR(check_activations(original, "ORIG"));
  QF_RETURN_IF_ERROR(check_activations(quantized, "QUANT"));
  if (original.batch != quantized.batch || original.seq != quantized.seq ||
      original.width != quantized.width) {
    return internal_error("ORIG and QUANT outputs differ in shape",
                          "ORIG " + shape3(original) + ", QUANT " + shape3(quantized));
  }
  const int64_t rows = original.batch * original.seq;
  if (rows == 0) {
    return bad_input("no outputs to compare", "the input batch is empty", "give input sequences");
  }
  const auto w = static_cast<size_t>(original.width);
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    sum += cosine_similarity(original.data.data() + static_cast<size_t>(r) * w,
                             quantized.data.data() + static_cast<size_t>(r) * w, w);
  }
  return sum / static_cast<double>(rows);
}

double prefix_agreement(const std::vector<int64_t>& a, const std::vector<int64_t>& b, size_t n) {
  if (n == 0) return 1.0;
  size_t common = 0;
  while (common < n && common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  return static_cast<double>(common) / static_cast<double>(n);
}

double relative_error(const std::vector<float>& reference,
                      const std::vector<float>& approximation) {
  double diff = 0, norm = 0;
  const size_t n = std::min(reference.size(), approximation.size());
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(reference[i]) - approximation[i];
    diff += d * d;
    norm += static_cast<double>(reference[i]) * reference[i];
  }
  // A length mismatch is an error in the caller; count the missing values as all error.
  for (size_t i = n; i < reference.size(); ++i) {
    diff += static_cast<double>(reference[i]) * reference[i];
    norm += static_cast<double>(reference[i]) * reference[i];
  }
  if (norm == 0) return diff == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / norm);
}

Result<std::vector<float>> to_float32(const TensorView& tensor, const std::string& name) {
  const DLDataType d = tensor.dtype();
  const auto n = static_cast<size_t>(tensor.numel());
  std::vector<float> out(n);
  if (d.code == kDLFloat && d.bits == 32) {
    if (n) std::memcpy(out.data(), tensor.data(), n * sizeof(float));
  } else if (d.code == kDLFloat && d.bits == 64) {
    const auto* p = tensor.data_as<double>();
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  } else if ((d.code == kDLFloat || d.code == kDLBfloat) && d.bits == 16) {
    const auto* p = tensor.data_as<uint16_t>();
    const bool bf16 = d.code == kDLBfloat;
    for (size_t i = 0; i < n; ++i) out[i] = bf16 ? bf16_to_float(p[i]) : half_to_float(p[i]);
  } else {
    return bad_input("tensor '" + name + "' is not a floating-point tensor",
                     "its dtype is " + dtype_to_string(d) + "; expected F32, F16, BF16 or F64",
                     "compare a dense floating-point weight");
  }
  return out;
}

runtime::TokenBatch default_token_batch(int64_t vocab, int64_t count, int64_t length,
                                        uint64_t seed) {
  runtime::TokenBatch batch(static_cast<size_t>(std::max<int64_t>(count, 0)));
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  for (auto& sequence : batch) {
    sequence.resize(static_cast<size_t>(std::max<int64_t>(length, 0)));
    for (auto& id : sequence) {
      id = vocab > 0 ? static_cast<int64_t>(next() % static_cast<uint64_t>(vocab)) : 0;
    }
  }
  return batch;
}

}  // namespace qforge::verify
