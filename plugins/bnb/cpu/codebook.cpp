// The dynamic 8-bit map of double quantization (see codebook.hpp).
//
// Note [torch linspace]: bitsandbytes builds the map from torch.linspace(0.1, 1, k) in float32,
// and the values land in every checkpoint's nested_quant_map, so we reproduce ATen's CPU
// linspace_kernel exactly: step = (end - start) / (steps - 1) in float; the first steps / 2
// values are fma(step, i, start), the rest fma(-step, steps - 1 - i, end), each ONE rounding
// (the vectorized kernel uses fused multiply-add; torch built without AVX2 would round twice).
// The fma is explicit (std::fmaf); the file is compiled with -ffp-contract=off so nothing else
// gets fused behind our back.
#include "cpu/codebook.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qforge::plugins::bnb::cpu {
namespace {

std::array<float, 256> build_dynamic_map() {
  // signed=True, max_exponent_bits=7, total_bits=8: non_sign_bits 7, no additional items.
  // Python's 10 ** (i - 6) as a double, then torch multiplies in float32 (the scalar is cast
  // to the tensor's dtype first).
  static constexpr double kScale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::vector<float> data;
  data.reserve(256);
  for (int i = 0; i < 7; ++i) {
    const int64_t items = (int64_t{1} << i) + 1;
    std::vector<float> boundaries(static_cast<size_t>(items));
    torch_linspace_f32(0.1f, 1.0f, items, boundaries.data());
    const float scale = static_cast<float>(kScale[i]);
    std::vector<float> means;
    for (int64_t k = 0; k + 1 < items; ++k) {
      const float sum = boundaries[static_cast<size_t>(k)] + boundaries[static_cast<size_t>(k + 1)];
      means.push_back(sum / 2.0f);
    }
    for (float m : means) data.push_back(scale * m);
    for (float m : means) data.push_back(-scale * m);
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

std::array<float, 255> build_midpoints() {
  const auto& map = dynamic_map();
  std::array<float, 255> mid{};
  for (size_t i = 0; i < mid.size(); ++i) mid[i] = (map[i] + map[i + 1]) / 2.0f;
  return mid;
}

}  // namespace

void torch_linspace_f32(float start, float end, int64_t steps, float* out) noexcept {
  if (steps <= 0) return;
  if (steps == 1) {
    out[0] = start;
    return;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  // torch's CPU linspace kernel (AVX2 and AVX-512 builds, scalar tail included) evaluates each
  // half with one fused multiply-add; two roundings differ in the last bit for some entries,
  // which changes the stored nested_quant_map (checked against bitsandbytes 0.50.2 / torch
  // 2.15 by tools/reference/bnb4_reference.py).
  for (int64_t i = 0; i < steps; ++i) {
    out[i] = i < halfway ? std::fmaf(step, static_cast<float>(i), start)
                         : std::fmaf(-step, static_cast<float>(steps - i - 1), end);
  }
}

const std::array<float, 256>& dynamic_map() noexcept {
  static const std::array<float, 256> map = build_dynamic_map();
  return map;
}

const std::array<float, 255>& dynamic_map_midpoints() noexcept {
  static const std::array<float, 255> mid = build_midpoints();
  return mid;
}

uint8_t encode_dynamic(float y) noexcept {
  const auto& mid = dynamic_map_midpoints();
  return static_cast<uint8_t>(std::lower_bound(mid.begin(), mid.end(), y) - mid.begin());
}

}  // namespace qforge::plugins::bnb::cpu
