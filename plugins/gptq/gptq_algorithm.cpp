// GPTQ on one Linear (see gptq_algorithm.hpp). Every output row is quantized independently given
// Hinv (the group parameters are per row too), so the work splits over slabs of output rows, each
// held input-major ([I, rows]: one column of W is one contiguous row of the slab) so that both
// the per-column update and the lazy block update run along contiguous memory.
#include "gptq_algorithm.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <string>

#include "gptq_linalg.hpp"
#include "gptq_rtn.hpp"

namespace qforge::plugins::gptq {
namespace {

using sdk::Error;

constexpr int64_t kSlabRows = 64;  // output rows per slab: a 128-column block is 32 KiB

void check_finite(const float* w, int64_t out, int64_t in, const std::vector<double>& h) {
  for (int64_t n = 0; n < out * in; ++n) {
    if (!std::isfinite(w[n])) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "weight has a non-finite value (" +
                      std::string(std::isnan(w[n]) ? "NaN" : "Inf") + ") at [" +
                      std::to_string(n / in) + ", " + std::to_string(n % in) + "]",
                  "a GPTQ group's scale spans its min and max, which NaN or Inf make meaningless",
                  "fix or re-export the source checkpoint; the weights are corrupt");
    }
  }
  for (int64_t n = 0; n < in * in; ++n) {
    const double v = h[static_cast<size_t>(n)];
    if (!std::isfinite(v)) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "hessian has a non-finite value (" + std::string(std::isnan(v) ? "NaN" : "Inf") +
                      ") at [" + std::to_string(n / in) + ", " + std::to_string(n % in) + "]",
                  "H = 2/N·XᵀX of the calibration inputs must be finite for its Cholesky "
                  "factorization",
                  "check the calibration activations for NaN/Inf (an overflowing float16 "
                  "layer upstream is the usual cause); accumulate H in float32 or float64");
    }
  }
}

// One slab of output rows [o0, o0 + rows) through fasterquant's column loop.
struct SlabJob {
  const GptqConfig& config;
  int64_t in, out, block;
  bool grouped;
  int64_t group_size;
  bool natural_groups;  // a processing group is one natural group (act_group_aware)
  const std::vector<int64_t>& perm;
  const std::vector<int64_t>& group_end;          // at a processing group's first column: its end
  const std::vector<float>& hinv_t;               // [in, in]: hinv_t[j*in + i] = Hinv[i][j]
  const std::vector<float>& w;                    // [out, in], dead columns zeroed
  const std::vector<GroupParams>& row_params;     // [out] when !grouped
  const std::vector<GroupParams>& static_params;  // [G, out] when static_groups
  Unpacked& u;
  std::vector<float>* fake;
  std::atomic<int64_t>& clamped;

  void fix_zero(GroupParams& p, int64_t& count) const {
    if (!config.v2() && p.zero == 0.0f) {
      p.zero = 1.0f;
      ++count;
    }
  }

  void run(int64_t o0, int64_t rows) const {
    const int64_t nr = rows;
    const int maxq = config.maxq();
    std::vector<float> slab(static_cast<size_t>(in * nr));
    for (int64_t j = 0; j < in; ++j) {
      const int64_t col = perm[static_cast<size_t>(j)];
      for (int64_t r = 0; r < nr; ++r) {
        slab[static_cast<size_t>(j * nr + r)] = w[static_cast<size_t>((o0 + r) * in + col)];
      }
    }
    std::vector<float> snapshot(static_cast<size_t>(block * nr));
    std::vector<float> err(static_cast<size_t>(block * nr));
    std::vector<float> xmin(static_cast<size_t>(nr)), xmax(static_cast<size_t>(nr));
    std::vector<float> acc(static_cast<size_t>(nr));
    std::vector<GroupParams> cur(static_cast<size_t>(nr));
    if (!grouped) {
      for (int64_t r = 0; r < nr; ++r)
        cur[static_cast<size_t>(r)] = row_params[static_cast<size_t>(o0 + r)];
    }
    int64_t local_clamped = 0;
    for (int64_t i1 = 0; i1 < in; i1 += block) {
      const int64_t i2 = std::min(in, i1 + block);
      // AutoGPTQ's group parameters come from W, which inside a block has not yet seen the
      // block's own updates (those go to the copy W1): keep W as it was at the block start.
      std::copy(slab.begin() + i1 * nr, slab.begin() + i2 * nr, snapshot.begin());
      for (int64_t c = i1; c < i2; ++c) {
        if (grouped && !config.static_groups && group_end[static_cast<size_t>(c)] != 0) {
          const int64_t g =
              natural_groups ? perm[static_cast<size_t>(c)] / group_size : c / group_size;
          const int64_t c_end = group_end[static_cast<size_t>(c)];
          std::fill(xmin.begin(), xmin.end(), 0.0f);
          std::fill(xmax.begin(), xmax.end(), 0.0f);
          for (int64_t col = c; col < c_end; ++col) {
            const float* v = col < i2 ? snapshot.data() + (col - i1) * nr : slab.data() + col * nr;
            for (int64_t r = 0; r < nr; ++r) {
              xmin[static_cast<size_t>(r)] = std::min(xmin[static_cast<size_t>(r)], v[r]);
              xmax[static_cast<size_t>(r)] = std::max(xmax[static_cast<size_t>(r)], v[r]);
            }
          }
          for (int64_t r = 0; r < nr; ++r) {
            GroupParams p =
                params_from_range(xmin[static_cast<size_t>(r)], xmax[static_cast<size_t>(r)],
                                  config.bits, config.sym);
            fix_zero(p, local_clamped);
            cur[static_cast<size_t>(r)] = p;
            u.scales[static_cast<size_t>(g * out + o0 + r)] = p.scale;
            u.zeros[static_cast<size_t>(g * out + o0 + r)] = static_cast<int32_t>(p.zero);
          }
        } else if (grouped && config.static_groups) {
          const int64_t g = perm[static_cast<size_t>(c)] / group_size;
          for (int64_t r = 0; r < nr; ++r) {
            cur[static_cast<size_t>(r)] = static_params[static_cast<size_t>(g * out + o0 + r)];
          }
        }
        const float d = hinv_t[static_cast<size_t>(c * in + c)];
        const int64_t col = perm[static_cast<size_t>(c)];
        float* x = slab.data() + c * nr;
        float* e = err.data() + (c - i1) * nr;
        uint8_t* codes = u.codes.data() + col * out + o0;
        for (int64_t r = 0; r < nr; ++r) {
          const GroupParams& p = cur[static_cast<size_t>(r)];
          const uint8_t code = quantize_code(x[r], p, maxq);
          const float q = p.scale * (static_cast<float>(code) - p.zero);
          codes[r] = code;
          e[r] = (x[r] - q) / d;
          if (fake != nullptr) (*fake)[static_cast<size_t>((o0 + r) * in + col)] = q;
        }
        for (int64_t j = c + 1; j < i2; ++j) {
          const float hcj = hinv_t[static_cast<size_t>(j * in + c)];
          float* row = slab.data() + j * nr;
          for (int64_t r = 0; r < nr; ++r) row[r] -= e[r] * hcj;
        }
      }
      // W[:, i2:] -= Err1 · Hinv[i1:i2, i2:], one sum per element, then one subtraction.
      const int64_t count = i2 - i1;
      for (int64_t j = i2; j < in; ++j) {
        const float* hrow = hinv_t.data() + j * in + i1;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t k = 0; k < count; ++k) {
          const float hk = hrow[k];
          const float* ek = err.data() + k * nr;
          for (int64_t r = 0; r < nr; ++r) acc[static_cast<size_t>(r)] += ek[r] * hk;
        }
        float* row = slab.data() + j * nr;
        for (int64_t r = 0; r < nr; ++r) row[r] -= acc[static_cast<size_t>(r)];
      }
    }
    clamped += local_clamped;
  }
};

// The order fasterquant visits the input columns in (ties keep ascending order; torch.argsort
// is not stable, docs/gptq.md):
// - desc_act: by decreasing diag(H); a group is then any group_size consecutive columns of that
//   order, so g_idx is a real mapping;
// - act_group_aware (GPTQModel's default, "GAR", Gafni et al. CVPRW 2025): the natural groups
//   by decreasing max diag(H), and inside each group its columns by decreasing diag(H). Most
//   of act-order's gain, while every group stays the natural one: g_idx is i // group_size and
//   the checkpoint is an ordinary desc_act=false one. A short last group (in_features not a
//   multiple of group_size) is a group like the others;
// - else the natural order.
std::vector<int64_t> processing_order(const GptqConfig& config, const std::vector<double>& h,
                                      int64_t in, int64_t group_size) {
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  auto diag = [&](int64_t i) { return h[static_cast<size_t>(i * in + i)]; };
  auto by_decreasing_diag = [&](int64_t a, int64_t b) { return diag(a) > diag(b); };
  if (config.desc_act) {
    std::stable_sort(perm.begin(), perm.end(), by_decreasing_diag);
    return perm;
  }
  if (config.group_size <= 0 || !config.act_group_aware || in == 0) return perm;
  const int64_t groups = (in + group_size - 1) / group_size;
  auto group_begin = [&](int64_t g) { return g * group_size; };
  auto group_stop = [&](int64_t g) { return std::min(in, (g + 1) * group_size); };
  std::vector<double> group_max(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    double m = diag(group_begin(g));
    for (int64_t i = group_begin(g) + 1; i < group_stop(g); ++i) m = std::max(m, diag(i));
    group_max[static_cast<size_t>(g)] = m;
  }
  std::vector<int64_t> group_order(static_cast<size_t>(groups));
  std::iota(group_order.begin(), group_order.end(), int64_t{0});
  std::stable_sort(group_order.begin(), group_order.end(), [&](int64_t a, int64_t b) {
    return group_max[static_cast<size_t>(a)] > group_max[static_cast<size_t>(b)];
  });
  auto next = perm.begin();
  for (int64_t g : group_order) {
    const auto first = next;
    for (int64_t i = group_begin(g); i < group_stop(g); ++i) *next++ = i;
    std::stable_sort(first, next, by_decreasing_diag);
  }
  return perm;
}

// group_end[c] != 0 marks the first column c (in processing order) of a group whose parameters
// the loop computes there, and holds the end of that group's columns. With natural groups
// (act_group_aware) a group starts where the natural group changes, else every group_size.
std::vector<int64_t> processing_group_ends(const std::vector<int64_t>& perm, int64_t in,
                                           int64_t group_size, bool natural_groups) {
  std::vector<int64_t> end(static_cast<size_t>(in), 0);
  for (int64_t c = 0; c < in; ++c) {
    if (!natural_groups) {
      if (c % group_size == 0) end[static_cast<size_t>(c)] = std::min(in, c + group_size);
      continue;
    }
    const int64_t g = perm[static_cast<size_t>(c)] / group_size;
    if (c > 0 && perm[static_cast<size_t>(c - 1)] / group_size == g) continue;
    end[static_cast<size_t>(c)] = c + std::min(in, (g + 1) * group_size) - g * group_size;
  }
  return end;
}

}  // namespace

GptqOutcome quantize_gptq(const sdk::Call& call, const float* w, int64_t out, int64_t in,
                          std::vector<double> h, const GptqConfig& config,
                          std::vector<float>* fake_quantized, int64_t block_size) {
  if (out < 0 || in < 0 || static_cast<int64_t>(h.size()) != in * in || block_size <= 0) {
    throw Error(
        QF_CODE_INTERNAL, "quantize_gptq: inconsistent sizes",
        "H has " + std::to_string(h.size()) + " elements for in_features " + std::to_string(in),
        "report this: the caller checks the hessian's shape");
  }
  check_finite(w, out, in, h);
  GptqOutcome outcome;
  Unpacked& u = outcome.layer;
  u.shapes = make_shapes(config, in, out);
  const Shapes& s = u.shapes;
  const bool grouped = config.group_size > 0;
  const int64_t gs = s.group_size;
  u.codes.assign(static_cast<size_t>(in * out), 0);
  u.zeros.assign(static_cast<size_t>(s.groups * out), 0);
  u.scales.assign(static_cast<size_t>(s.groups * out), 0.0f);
  u.g_idx.assign(static_cast<size_t>(in), 0);
  if (fake_quantized != nullptr) fake_quantized->assign(static_cast<size_t>(out * in), 0.0f);
  if (in == 0 || out == 0) return outcome;

  int64_t clamped = 0;
  auto fix_zero = [&](GroupParams& p) {
    if (!config.v2() && p.zero == 0.0f) {
      p.zero = 1.0f;
      ++clamped;
    }
  };
  // group_size -1: fasterquant's first find_params, on W before dead columns are zeroed.
  std::vector<GroupParams> row_params;
  if (!grouped) {
    row_params.resize(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      GroupParams p = find_params(w + o * in, in, 1, config.bits, config.sym);
      fix_zero(p);
      row_params[static_cast<size_t>(o)] = p;
      u.scales[static_cast<size_t>(o)] = p.scale;
      u.zeros[static_cast<size_t>(o)] = static_cast<int32_t>(p.zero);
    }
  }
  // Dead inputs (never active): H[i,i] = 1 keeps H invertible, their weights go to 0.
  std::vector<float> wd(w, w + out * in);
  for (int64_t i = 0; i < in; ++i) {
    double& hii = h[static_cast<size_t>(i * in + i)];
    if (hii == 0.0) {
      hii = 1.0;
      ++outcome.dead_columns;
      for (int64_t o = 0; o < out; ++o) wd[static_cast<size_t>(o * in + i)] = 0.0f;
    }
  }
  // static_groups: every group's parameters up front, from the un-permuted W (dead zeroed).
  std::vector<GroupParams> static_params;
  if (grouped && config.static_groups) {
    static_params.resize(static_cast<size_t>(s.groups * out));
    for (int64_t g = 0; g < s.groups; ++g) {
      const int64_t n = std::min(gs, in - g * gs);
      for (int64_t o = 0; o < out; ++o) {
        GroupParams p = find_params(wd.data() + o * in + g * gs, n, 1, config.bits, config.sym);
        fix_zero(p);
        static_params[static_cast<size_t>(g * out + o)] = p;
        u.scales[static_cast<size_t>(g * out + o)] = p.scale;
        u.zeros[static_cast<size_t>(g * out + o)] = static_cast<int32_t>(p.zero);
      }
    }
  }
  const std::vector<int64_t> perm = processing_order(config, h, in, gs);
  const bool group_aware = grouped && config.act_group_aware && !config.desc_act;
  const std::vector<int64_t> group_end =
      grouped ? processing_group_ends(perm, in, gs, group_aware) : std::vector<int64_t>{};
  const bool permuted = config.desc_act || group_aware;
  double trace = 0.0;
  for (int64_t i = 0; i < in; ++i) trace += h[static_cast<size_t>(i * in + i)];
  outcome.damp = config.damp_percent * (trace / static_cast<double>(in));
  std::vector<double> hp;
  if (permuted) {
    // H[perm][:, perm], lower triangle (the part the factorization reads).
    hp.assign(static_cast<size_t>(in * in), 0.0);
    for (int64_t a = 0; a < in; ++a) {
      const int64_t pa = perm[static_cast<size_t>(a)];
      for (int64_t b = 0; b <= a; ++b) {
        hp[static_cast<size_t>(a * in + b)] =
            h[static_cast<size_t>(pa * in + perm[static_cast<size_t>(b)])];
      }
    }
    std::vector<double>().swap(h);
  } else {
    hp.swap(h);
  }
  for (int64_t i = 0; i < in; ++i) hp[static_cast<size_t>(i * in + i)] += outcome.damp;
  std::vector<float> hinv_t;
  const int64_t failed = upper_cholesky_of_inverse(call, hp, in, hinv_t);
  if (failed >= 0) {
    throw Error(QF_CODE_FAILED_PRECONDITION,
                "the Hessian is not positive definite (Cholesky failed at input " +
                    std::to_string(perm[static_cast<size_t>(failed)]) + ")",
                "GPTQ needs the Cholesky factor of H + damp·I (damp = damp_percent · mean "
                "diag(H) = " +
                    std::to_string(outcome.damp) +
                    "); a negative diagonal, or too few or degenerate calibration tokens, break "
                    "it (AutoGPTQ raises here too)",
                "raise damp_percent (e.g. 0.1 -> 0.2), or calibrate on more tokens");
  }
  std::atomic<int64_t> slab_clamped{0};
  const SlabJob job{
      config,    in,     out, block_size, grouped,       gs, group_aware,    perm,
      group_end, hinv_t, wd,  row_params, static_params, u,  fake_quantized, slab_clamped};
  call.parallel_for(out, kSlabRows, [&](int64_t o_begin, int64_t o_end) {
    for (int64_t o0 = o_begin; o0 < o_end; o0 += kSlabRows) {
      call.throw_if_cancelled();
      job.run(o0, std::min(kSlabRows, o_end - o0));
    }
  });
  outcome.zero_clamped = clamped + slab_clamped.load();
  // g_idx: a column's group is its rank in the processing order // group_size; static groups
  // keep the natural groups (AutoGPTQ's perm[i] // group_size, un-permuted, is i // group_size),
  // and so does act_group_aware, whose processing groups are the natural ones reordered.
  for (int64_t j = 0; j < in; ++j) {
    const int64_t col =
        grouped && (config.static_groups || group_aware) ? j : perm[static_cast<size_t>(j)];
    u.g_idx[static_cast<size_t>(col)] = grouped ? static_cast<int32_t>(j / gs) : 0;
  }
  return outcome;
}

}  // namespace qforge::plugins::gptq
