#include "deterministic_normal.hpp"

#include <cmath>

namespace qforge::make_model {

uint64_t SplitMix64::next() noexcept {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double SplitMix64::uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double portable_log(double x) noexcept {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <
  // 0.172, so the odd series to s^29 is exact to well below double precision. frexp and ldexp
  // only move exponent bits: exact everywhere.
  int e = 0;
  double m = std::frexp(x, &e);  // m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double term = s;
  double sum = 0.0;
  for (int k = 1; k <= 29; k += 2) {
    sum += term / k;
    term *= s2;
  }
  constexpr double kLn2 = 0.69314718055994530942;
  return 2.0 * sum + static_cast<double>(e) * kLn2;
}

double NormalStream::next() noexcept {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u = 0.0, v = 0.0, r = 0.0;
  do {
    u = 2.0 * rng_.uniform() - 1.0;
    v = 2.0 * rng_.uniform() - 1.0;
    r = u * u + v * v;
  } while (r >= 1.0 || r == 0.0);
  const double f = std::sqrt(-2.0 * portable_log(r) / r);
  spare_ = v * f;
  has_spare_ = true;
  return u * f;
}

uint64_t tensor_seed(uint64_t seed, std::string_view tensor_name) noexcept {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const char c : tensor_name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  // One splitmix64 step decorrelates nearby seeds (0, 1, 2, ...).
  SplitMix64 mix(seed ^ h);
  return mix.next();
}

}  // namespace qforge::make_model
