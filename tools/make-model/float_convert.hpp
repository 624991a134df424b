// float32 -> bfloat16 / float16 bit patterns, rounding to nearest, ties to even (what torch's
// .to(torch.bfloat16) / .to(torch.float16) do), with float16 subnormals and overflow to inf.
#pragma once

#include <cstdint>

namespace qforge::make_model {

uint16_t float_to_bf16_bits(float value) noexcept;
uint16_t float_to_fp16_bits(float value) noexcept;

}  // namespace qforge::make_model
