// AutoGPTQ's int32 packing (qlinear_cuda_old.py, FORMATS.md §2.4) as plain functions on raw
// arrays. Both qweight and qzeros are bit streams, LSB first, `bits` bits per value, 32 bits per
// word: value k of a stream sits at stream bit k*bits, i.e. word k*bits/32, shift k*bits%32. For
// 2/4/8 bits no value crosses a word; for 3 bits values 10 and 21 of every 32 straddle two words
// (AutoGPTQ's "bit 30-31 then bit 0" splits), which the one stream rule covers without a special
// case. qweight streams run down the input dimension (one stream per output column, words a row
// apart); qzeros streams run along the output dimension (one per group, words adjacent).
#pragma once

#include <cstdint>

namespace qforge::plugins::gptq {

// Whether n values of `bits` bits fill whole int32 words, which both AutoGPTQ's shapes need
// (in_features for qweight, out_features for qzeros).
inline bool packs_whole_words(int64_t n, int bits) noexcept { return (n * bits) % 32 == 0; }

// codes: [in, out] row-major (code of input i, output o at i*out + o), each < 2^bits.
// qweight: [in*bits/32, out]. in must satisfy packs_whole_words.
void pack_qweight(const uint8_t* codes, int64_t in, int64_t out, int bits, int32_t* qweight);
void unpack_qweight(const int32_t* qweight, int64_t in, int64_t out, int bits, uint8_t* codes);
// One code of qweight without unpacking all: input i, output o.
uint32_t qweight_code(const int32_t* qweight, int64_t out, int bits, int64_t i, int64_t o) noexcept;

// zeros: [groups, out] true zero points in [0, 2^bits - 1]. v1 ("gptq") stores zero - 1 masked
// to `bits` bits (AutoGPTQ's reader adds the 1 back); v2 ("gptq_v2") stores zero.
void pack_qzeros(const int32_t* zeros, int64_t groups, int64_t out, int bits, bool v2,
                 int32_t* qzeros);
// The true zero points back: v1 reads (stored & maxq) + 1, so a stored maxq means 2^bits (what
// AutoGPTQ's kernels compute too); v2 reads the stored value.
void unpack_qzeros(const int32_t* qzeros, int64_t groups, int64_t out, int bits, bool v2,
                   int32_t* zeros);

}  // namespace qforge::plugins::gptq
