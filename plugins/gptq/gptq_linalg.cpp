// Cholesky and triangular inverse for GPTQ's Hinv (see gptq_linalg.hpp). Both are blocked so a
// large layer (I in the thousands: L alone is I²·8 bytes) streams L from memory O(I/block)
// times rather than once per row or column. The inner loops run across a small fixed set of
// independent sums (the columns of a block), never reassociating one sum, so -O3 vectorizes them
// and the result does not depend on the vector width or the thread split.
#include "gptq_linalg.hpp"

#include <algorithm>
#include <cmath>

namespace qforge::plugins::gptq {
namespace {

constexpr int64_t kPanel = 4;     // columns factored per Cholesky block
constexpr int64_t kRowGroup = 4;  // rows updated together (each panel value used 4 times)
constexpr int64_t kInvCols = 32;  // columns of L^-1 solved together (each L row used 32 times)
constexpr int64_t kSlices = 24;   // tasks of the inverse: 24 = 2·3·4 divides common thread counts

// A[i][k0..k0+bw) -= Σ_{m<k0} L[i][m]·L[k0+c][m] for rows i in [i0, i0+R), with pt the panel
// transposed and zero-padded to kPanel columns (pt[m*kPanel + c] = L[k0+c][m]). R and kPanel are
// compile-time so the R×kPanel sums stay in registers. Entries right of the diagonal are not
// written.
template <int64_t R>
void update_group(double* a, int64_t n, int64_t k0, int64_t bw, const double* pt,
                  int64_t i0) noexcept {
  double acc[R][kPanel] = {};
  const double* rows[R];
  for (int64_t r = 0; r < R; ++r) rows[r] = a + (i0 + r) * n;
  for (int64_t m = 0; m < k0; ++m) {
    const double* p = pt + m * kPanel;
    for (int64_t r = 0; r < R; ++r) {
      const double l = rows[r][m];
      for (int64_t c = 0; c < kPanel; ++c) acc[r][c] += l * p[c];
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    double* row = a + (i0 + r) * n + k0;
    const int64_t last = std::min(bw, i0 + r - k0 + 1);  // stay on or left of the diagonal
    for (int64_t c = 0; c < last; ++c) row[c] -= acc[r][c];
  }
}

void update_rows(double* a, int64_t n, int64_t k0, int64_t bw, const double* pt, int64_t r0,
                 int64_t r1) noexcept {
  int64_t i0 = r0;
  for (; i0 + kRowGroup <= r1; i0 += kRowGroup) update_group<kRowGroup>(a, n, k0, bw, pt, i0);
  for (; i0 < r1; ++i0) update_group<1>(a, n, k0, bw, pt, i0);
}

// Row i's entries in the panel's columns once the update is done: forward substitution against
// the factored diagonal block.
void solve_row(double* a, int64_t n, int64_t k0, int64_t k1, int64_t i) noexcept {
  double* row = a + i * n;
  for (int64_t c = k0; c < k1; ++c) {
    const double* rc = a + c * n;
    double s = row[c];
    for (int64_t m = k0; m < c; ++m) s -= row[m] * rc[m];
    row[c] = s / rc[c];
  }
}

int64_t cholesky_blocked(const sdk::Call* call, double* a, int64_t n) {
  std::vector<double> pt;
  for (int64_t k0 = 0; k0 < n; k0 += kPanel) {
    const int64_t k1 = std::min(n, k0 + kPanel);
    const int64_t bw = k1 - k0;
    pt.assign(static_cast<size_t>(k0 * kPanel), 0.0);
    for (int64_t c = 0; c < bw; ++c) {
      const double* lc = a + (k0 + c) * n;
      for (int64_t m = 0; m < k0; ++m) pt[static_cast<size_t>(m * kPanel + c)] = lc[m];
    }
    update_rows(a, n, k0, bw, pt.data(), k0, k1);
    for (int64_t i = k0; i < k1; ++i) {
      double* row = a + i * n;
      for (int64_t c = k0; c < i; ++c) {
        const double* rc = a + c * n;
        double s = row[c];
        for (int64_t m = k0; m < c; ++m) s -= row[m] * rc[m];
        row[c] = s / rc[c];
      }
      double d = row[i];
      for (int64_t m = k0; m < i; ++m) d -= row[m] * row[m];
      if (!(d > 0.0) || !std::isfinite(d)) return i;
      row[i] = std::sqrt(d);
    }
    auto below = [&](int64_t b, int64_t e) {
      update_rows(a, n, k0, bw, pt.data(), k1 + b, k1 + e);
      for (int64_t i = k1 + b; i < k1 + e; ++i) solve_row(a, n, k0, k1, i);
    };
    if (call != nullptr) {
      call->parallel_for(n - k1, 64, below);
    } else {
      below(0, n - k1);
    }
  }
  return -1;
}

}  // namespace

int64_t cholesky_lower_in_place(double* a, int64_t n) noexcept {
  return cholesky_blocked(nullptr, a, n);
}

int64_t upper_cholesky_of_inverse(const sdk::Call& call, std::vector<double>& h, int64_t n,
                                  std::vector<float>& result) {
  // r = J·H·J, reading H's lower triangle: r[a][b] (b <= a) = H[n-1-b][n-1-a].
  std::vector<double> r(static_cast<size_t>(n * n), 0.0);
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b <= a; ++b) {
      r[static_cast<size_t>(a * n + b)] = h[static_cast<size_t>((n - 1 - b) * n + (n - 1 - a))];
    }
  }
  std::vector<double>().swap(h);
  const int64_t failed = cholesky_blocked(&call, r.data(), n);
  if (failed >= 0) return n - 1 - failed;
  // X = L^-1, kInvCols columns at a time (forward substitution L x = e_c, x[k] = 0 for k < c);
  // column c of X is row n-1-c of the result reversed: U[i][j] = X[n-1-i][n-1-j].
  result.assign(static_cast<size_t>(n * n), 0.0f);
  const int64_t groups = (n + kInvCols - 1) / kInvCols;
  // Group g costs ~(n - g·kInvCols)²: the host's parallel_for hands each thread one contiguous
  // range of tasks, so tasks of consecutive groups left the first thread most of the work
  // (7/8 with two). Each task is instead a slice of every kSlices-th group, which gives every
  // thread about the same share for any thread count dividing kSlices.
  const int64_t slices = std::min(groups, kSlices);
  call.parallel_for(slices, 1, [&](int64_t s0, int64_t s1) {
    std::vector<double> x;  // x[(k - c0)*kInvCols + j] = X[k][c0 + j]
    for (int64_t slice = s0; slice < s1; ++slice) {
      for (int64_t g = slice; g < groups; g += slices) {
        const int64_t c0 = g * kInvCols;
        const int64_t cw = std::min(kInvCols, n - c0);
        x.assign(static_cast<size_t>((n - c0) * kInvCols), 0.0);
        for (int64_t k = c0; k < n; ++k) {
          const double* lk = r.data() + k * n;
          double acc[kInvCols] = {};
          for (int64_t m = c0; m < k; ++m) {
            const double l = lk[m];
            const double* xm = x.data() + (m - c0) * kInvCols;
            for (int64_t j = 0; j < kInvCols; ++j) acc[j] += l * xm[j];
          }
          double* xk = x.data() + (k - c0) * kInvCols;
          for (int64_t j = 0; j < cw; ++j) {
            const int64_t c = c0 + j;
            xk[j] = k < c ? 0.0 : k == c ? 1.0 / lk[k] : -acc[j] / lk[k];
          }
        }
        for (int64_t j = 0; j < cw; ++j) {
          const int64_t c = c0 + j;
          float* out = result.data() + (n - 1 - c) * n;
          for (int64_t k = c; k < n; ++k) {
            out[n - 1 - k] = static_cast<float>(x[static_cast<size_t>((k - c0) * kInvCols + j)]);
          }
        }
      }
    }
  });
  return -1;
}

}  // namespace qforge::plugins::gptq
