// The dense linear algebra GPTQ needs (FORMATS.md §2.4 item 5), in plain C++ so the plugin stays
// dependency-free: Hinv = cholesky(cholesky_inverse(cholesky(H)), upper=True), the upper
// Cholesky factor U of H^-1 (Uᵀ U = H^-1). Computed in float64 and handed back as float32, the
// precision GPTQ's column loop runs in.
#pragma once

#include <cstdint>
#include <qforge/qf_plugin.hpp>
#include <vector>

namespace qforge::plugins::gptq {

// In-place lower Cholesky factor of the symmetric n×n row-major `a` (only its lower triangle is
// read; the strict upper triangle is left as it was). Returns -1, or the first pivot whose
// square was not positive (or not finite): `a` is then not positive definite.
int64_t cholesky_lower_in_place(double* a, int64_t n) noexcept;

// The upper Cholesky factor U of H^-1, transposed: row j of the result holds U[0..j, j], i.e.
// result[j*n + i] = U[i][j] for i <= j (0 above). `h` is n×n row-major and symmetric (only its
// lower triangle is read, as torch.linalg.cholesky reads it); it is consumed (overwritten).
// Instead of the three factorizations it uses U = J·chol(J·H·J)^-1·J (J the reversal
// permutation), which is the same matrix (the Cholesky factor is unique) at half the work and
// fewer roundings. Returns -1, or the pivot (in H's order) where H stopped being positive
// definite. The Cholesky's row updates and the inverse's column groups run in parallel through
// `call`; the result does not depend on the split.
int64_t upper_cholesky_of_inverse(const sdk::Call& call, std::vector<double>& h, int64_t n,
                                  std::vector<float>& result);

}  // namespace qforge::plugins::gptq
