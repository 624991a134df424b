// Seeded normal samples that are the same bits on every machine and compiler.
//
// std::normal_distribution's algorithm is implementation-defined and libm's log is not
// guaranteed correctly rounded, so neither may feed a generator whose output bytes are compared
// across machines. This one uses only splitmix64 (integers), IEEE + - * / and sqrt (correctly
// rounded by IEEE 754), and a log of its own built from those; the file is compiled with
// -ffp-contract=off so no FMA can change a rounding.
#pragma once

#include <cstdint>
#include <string_view>

namespace qforge::make_model {

// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, a full-period Weyl sequence.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() noexcept;
  // Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept;

 private:
  uint64_t state_;
};

// Standard normal samples by Marsaglia's polar method (pairs; the second one is cached).
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : rng_(seed) {}
  double next() noexcept;

 private:
  SplitMix64 rng_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Natural log for x in (0, 1], from + - * / only (relative error < 1e-15 there).
double portable_log(double x) noexcept;

// A stream seed for one tensor: the user's seed mixed with the tensor name (FNV-1a), so a
// tensor's values do not depend on which other tensors exist or in which order they are made.
uint64_t tensor_seed(uint64_t seed, std::string_view tensor_name) noexcept;

}  // namespace qforge::make_model
