#!/usr/bin/env python3
"""Reference numbers for the gptq plugin's algorithm test (tests/reference/gptq/algorithm.json).

An independent re-statement, in NumPy (LAPACK), of AutoGPTQ's GPTQ.fasterquant semantics
(FORMATS.md §2.4; docs/gptq.md "Algorithm facts") on small seeded synthetic data: Cholesky,
inverse and upper Cholesky of the inverse in the order fasterquant chains torch's (the C++ side
uses a cheaper identity, so this checks it), the column loop on a block copy with group
parameters taken from W outside the block copy, the lazy block product, act-order and static
groups, and GPTQModel's act_group_aware (GAR: natural groups by decreasing max diag(H), the
columns inside each group by decreasing diag(H); the groups themselves do not change). NumPy rather than torch because the CPU torch wheel index is not reachable here and
PyPI's torch drags in gigabytes of CUDA; np.round and torch.round both round half to even.
The inverse Hessian is factorized in float64 and rounded to float32, then the column loop runs
in float32 like AutoGPTQ's (torch float32 W, Hinv, quantizer): with symmetric groups the
extreme weight of each group lands exactly on a rounding tie (x/scale = ±(maxq+1)/2 − ½), so
only the same float32 operations decide those ties the same way. The inputs are random numbers (no model weights). Blocks of 32
columns (not 128) so that the small layer still crosses block boundaries and has group
boundaries inside a block.

    python3 -m venv /work/pyref && /work/pyref/bin/pip install numpy
    /work/pyref/bin/python tools/reference/gptq_reference.py tests/reference/gptq
"""
import json
import sys
from pathlib import Path

import numpy as np

OUT, IN, TOKENS, BLOCK = 16, 96, 384, 32

# (name, bits, group_size, sym, desc_act, static_groups, damp_percent, act_group_aware)
CASES = [
    ("b4_g16_sym", 4, 16, True, False, False, 0.01, False),
    ("b4_g16_asym_actorder", 4, 16, False, True, False, 0.01, False),
    ("b3_g48_sym_actorder_static", 3, 48, True, True, True, 0.1, False),
    ("b2_g32_asym_static", 2, 32, False, False, True, 0.05, False),
    ("b8_gall_asym_actorder", 8, -1, False, True, False, 0.01, False),
    ("b4_gall_sym", 4, -1, True, False, False, 0.1, False),
    ("b4_g16_sym_groupaware", 4, 16, True, False, False, 0.1, True),
    ("b3_g32_asym_groupaware_static", 3, 32, False, False, True, 0.05, True),
    ("b4_gall_asym_groupaware", 4, -1, False, False, False, 0.1, True),  # no groups: no effect
    ("b4_g64_asym_groupaware_ragged", 4, 64, False, False, False, 0.1, True),  # 64 + 32 columns
    ("b4_g64_asym_ragged", 4, 64, False, False, False, 0.1, False),
]


def group_aware_order(diag, group):
    """GAR's column order: natural groups by decreasing max diag, inside by decreasing diag.
    A short last group is ordered like the others."""
    starts = range(0, len(diag), group)
    order = np.argsort([-diag[s:s + group].max() for s in starts], kind="stable")
    return np.concatenate([g * group + np.argsort(-diag[g * group:(g + 1) * group], kind="stable")
                           for g in order])


def find_params(x, bits, sym):
    """Per-row scale and zero of x [rows, n] as GPTQ's Quantizer.find_params (weight=True)."""
    maxq = 2**bits - 1
    xmin = np.minimum(x.min(axis=1), np.float32(0))
    xmax = np.maximum(x.max(axis=1), np.float32(0))
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both = (xmin == 0) & (xmax == 0)
    xmin = np.where(both, np.float32(-1), xmin)
    xmax = np.where(both, np.float32(1), xmax)
    scale = (xmax - xmin) / np.float32(maxq)
    zero = np.full_like(scale, (maxq + 1) / 2) if sym else np.round(-xmin / scale)
    return scale.astype(np.float32), zero.astype(np.float32)


def quantize(x, scale, zero, bits):
    code = np.clip(np.round(x / scale) + zero, np.float32(0), np.float32(2**bits - 1))
    return code, scale * (code - zero)


def gptq(w, h, bits, group, sym, desc_act, static, damp_percent, group_aware):
    w = w.copy()
    h = h.copy()
    rows, cols = w.shape
    whole = find_params(w.astype(np.float32), bits, sym)  # before dead columns are zeroed
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    static_params = []
    if static and group != -1:
        for g0 in range(0, cols, group):
            static_params.append(find_params(w[:, g0:g0 + group].astype(np.float32), bits, sym))
    perm = np.arange(cols)
    group_aware = group_aware and not desc_act and group != -1
    if desc_act or group_aware:
        perm = (np.argsort(-np.diag(h), kind="stable") if desc_act
                else group_aware_order(np.diag(h), group))
        w = w[:, perm]
        h = h[perm][:, perm]
    h = h + damp_percent * np.mean(np.diag(h)) * np.eye(cols)
    lower = np.linalg.cholesky(h)
    h_inverse = np.linalg.inv(lower @ lower.T)  # cholesky_inverse(L) = (L Lᵀ)⁻¹
    hinv = np.linalg.cholesky(h_inverse).T.astype(np.float32)  # upper factor: Uᵀ U = H⁻¹
    w = w.astype(np.float32)
    codes = np.zeros_like(w)
    scales, zeros = [], []
    scale, zero = whole
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            c = i1 + i
            if group != -1:
                if static:
                    scale, zero = static_params[int(perm[c]) // group]
                elif group_aware and (c == 0 or perm[c] // group != perm[c - 1] // group):
                    g = int(perm[c]) // group
                    size = min(cols, (g + 1) * group) - g * group
                    scale, zero = find_params(w[:, c:c + size], bits, sym)
                    # GAR visits the natural groups out of order; they are stored in order
                    scales.append((g, scale))
                    zeros.append((g, zero))
                elif not group_aware and c % group == 0:
                    scale, zero = find_params(w[:, c:c + group], bits, sym)
                    scales.append((c // group, scale))
                    zeros.append((c // group, zero))
            col = w1[:, i].copy()
            code, q = quantize(col, scale, zero, bits)
            codes[:, c] = code
            e = (col - q) / hinv[c, c]
            w1[:, i:] -= np.outer(e, hinv[c, c:i2])
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    if group == -1:
        scales, zeros = [whole[0]], [whole[1]]
    elif not static:
        scales = [v for _, v in sorted(scales, key=lambda t: t[0])]
        zeros = [v for _, v in sorted(zeros, key=lambda t: t[0])]
    elif static:
        scales = [p[0] for p in static_params]
        zeros = [p[1] for p in static_params]
    gsize = group if group != -1 else cols
    natural = (static and desc_act) or group_aware  # groups kept, only visited out of order
    g_idx = perm // gsize if natural else np.arange(cols) // gsize
    invperm = np.argsort(perm)
    return codes[:, invperm], np.stack(scales), np.stack(zeros), g_idx[invperm]


def main(out_dir):
    rng = np.random.default_rng(8)
    mix = rng.standard_normal((IN, IN)) / IN**0.5
    gain = np.exp(0.7 * rng.standard_normal(IN))
    x = (rng.standard_normal((TOKENS, IN)) @ mix) * gain
    x[:, 7] = 0  # a dead input
    # float32-representable inputs, so the C++ side reads exactly what was used here
    w = (0.05 * rng.standard_normal((OUT, IN))).astype(np.float32).astype(np.float64)
    h = (2.0 / TOKENS * x.T @ x).astype(np.float32).astype(np.float64)
    cases = []
    for name, bits, group, sym, desc_act, static, damp, gar in CASES:
        codes, scales, zeros, g_idx = gptq(w, h, bits, group, sym, desc_act, static, damp, gar)
        cases.append({
            "name": name, "bits": bits, "group_size": group, "sym": sym, "desc_act": desc_act,
            "static_groups": static, "damp_percent": damp, "act_group_aware": gar,
            "codes": codes.T.astype(np.int64).flatten().tolist(),  # [in, out], as Unpacked
            "scales": scales.flatten().tolist(),  # [groups, out]
            "zeros": zeros.astype(np.int64).flatten().tolist(),
            "g_idx": g_idx.astype(np.int64).tolist(),
        })
    doc = {
        "source": "tools/reference/gptq_reference.py (numpy " + np.__version__ + ")",
        "out_features": OUT, "in_features": IN, "block_size": BLOCK,
        "weight": w.flatten().tolist(), "hessian": h.flatten().tolist(), "cases": cases,
    }
    path = Path(out_dir) / "algorithm.json"
    path.write_text(json.dumps(doc) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/gptq")
