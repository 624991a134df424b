#!/usr/bin/env python3
"""Reference numbers for the awq plugin's tests (tests/reference/awq/awq_reference.json).

An independent re-statement, in NumPy, of AutoAWQ's formats and quantizer (FORMATS.md §2.5,
docs/awq.md): WQLinear_GEMM packing (qweight [I, O/8] along the outputs, order
[0,2,4,6,1,3,5,7], qzeros the same, zeros stored as they are), WQLinear_GEMV packing (qweight
[O, I/8] along the inputs in natural order, qzeros [O, calculate_zeros_width(I, g)], scales
[O, 8 * width] padded with zeros), the dequantized weight (q - z) * s, and AWQ's pseudo-quantizer
round-to-nearest (zero_point and symmetric) with the scale rounded to float16 before the codes
are formed (docs/awq.md says why). Everything is computed in float32 as the C++ side does;
np.round rounds half to even like torch.round. The inputs are seeded random numbers (no model
weights).

    python3 -m venv /tmp/awq-pyref && /tmp/awq-pyref/bin/pip install numpy
    /tmp/awq-pyref/bin/python tools/reference/awq_reference.py tests/reference/awq
"""
import json
import sys
from pathlib import Path

import numpy as np

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
OUT, IN, GROUP, TOKENS = 16, 64, 32, 3


def zeros_width(in_features, group_size):
    """AutoAWQ gemv.py calculate_zeros_width (None where it raises NotImplementedError)."""
    if group_size >= 128:
        mult = 1
    elif group_size == 64:
        mult = 2
    elif group_size == 32:
        mult = 4
    else:
        return None
    base = -(-(in_features // group_size) // 8)
    return -(-base // mult) * mult


def words(a):
    """uint32 words as the int32 values a safetensors file holds."""
    return a.astype(np.uint32).view(np.int32).ravel().tolist()


def pack_gemm(values):
    """values [rows, cols] -> [rows, cols/8], slot k of word c holding column 8c + AWQ_ORDER[k]."""
    rows, cols = values.shape
    out = np.zeros((rows, cols // 8), dtype=np.uint32)
    for c in range(cols // 8):
        for k in range(8):
            out[:, c] |= values[:, 8 * c + AWQ_ORDER[k]].astype(np.uint32) << (4 * k)
    return out


def pack_gemv_qweight(codes):
    """codes [I, O] -> [O, I/8], slot k of word c holding input 8c + k."""
    t = codes.T
    out = np.zeros((t.shape[0], t.shape[1] // 8), dtype=np.uint32)
    for c in range(t.shape[1] // 8):
        for k in range(8):
            out[:, c] |= t[:, 8 * c + k].astype(np.uint32) << (4 * k)
    return out


def pack_gemv_qzeros(zeros, width):
    """zeros [G, O] -> [O, width], slot k of word c holding group 8c + k (absent groups 0)."""
    t = zeros.T
    out = np.zeros((t.shape[0], width), dtype=np.uint32)
    for c in range(width):
        for k in range(8):
            g = 8 * c + k
            if g < t.shape[1]:
                out[:, c] |= t[:, g].astype(np.uint32) << (4 * k)
    return out


def gemv_scales(scales, width):
    out = np.zeros((scales.shape[1], width * 8), dtype=np.float32)
    out[:, : scales.shape[0]] = scales.T
    return out


def dequantize(codes, zeros, scales, group):
    """codes [I, O], zeros / scales [G, O] -> weight [O, I] in float32 (exact: 4-bit x fp16)."""
    g = np.arange(codes.shape[0]) // group
    w = (codes.astype(np.float32) - zeros[g].astype(np.float32)) * scales[g]
    return w.T.astype(np.float32)


def layout_case(rng):
    codes = rng.integers(0, 16, size=(IN, OUT), dtype=np.int64)
    groups = IN // GROUP
    zeros = rng.integers(0, 16, size=(groups, OUT), dtype=np.int64)
    scales = rng.uniform(1e-3, 5e-2, size=(groups, OUT)).astype(np.float16).astype(np.float32)
    width = zeros_width(IN, GROUP)
    dense = dequantize(codes, zeros, scales, GROUP)
    x = rng.standard_normal((TOKENS, IN)).astype(np.float32)
    y = (x.astype(np.float64) @ dense.astype(np.float64).T)
    return {
        "in_features": IN, "out_features": OUT, "group_size": GROUP,
        "codes": codes.ravel().tolist(), "zeros": zeros.ravel().tolist(),
        "scales": scales.ravel().tolist(),
        "gemm": {"qweight": words(pack_gemm(codes)), "qzeros": words(pack_gemm(zeros)),
                 "scales": scales.ravel().tolist()},
        "gemv": {"zeros_width": width, "qweight": words(pack_gemv_qweight(codes)),
                 "qzeros": words(pack_gemv_qzeros(zeros, width)),
                 "scales": gemv_scales(scales, width).ravel().tolist()},
        "weight": dense.ravel().tolist(),
        "x": x.ravel().tolist(), "y": y.ravel().tolist(),
    }


def pseudo_quantize(w, group, zero_point):
    """AWQ's pseudo_quantize_tensor on w [O, I] in float32, scales rounded to float16."""
    out_f, in_f = w.shape
    g = w.reshape(out_f, in_f // group, group)
    if zero_point:
        mx, mn = g.max(axis=2), g.min(axis=2)
        scale = (np.maximum(mx - mn, np.float32(1e-5)) / np.float32(15)).astype(np.float32)
        scale = scale.astype(np.float16).astype(np.float32)
        zero = np.clip(-np.round(mn / scale), 0, 15).astype(np.float32)
        q = np.clip(np.round(g / scale[..., None]) + zero[..., None], 0, 15)
    else:
        amax = np.maximum(np.abs(g).max(axis=2), np.float32(1e-5))
        scale = (amax / np.float32(7)).astype(np.float16).astype(np.float32)
        zero = np.full_like(scale, 8)
        q = np.clip(np.round(g / scale[..., None]), -8, 7) + 8
    codes = q.reshape(out_f, in_f).T.astype(np.int64)  # [I, O]
    return codes, zero.T.astype(np.int64), scale.T.astype(np.float32)  # zeros / scales [G, O]


def rtn_case(rng, zero_point):
    w = (rng.standard_normal((OUT, IN)) * 0.05).astype(np.float32)
    w[3, :GROUP] = 0.0  # an all-zero group: the 1e-5 clamp decides its scale
    w[5, GROUP:] = np.abs(w[5, GROUP:]) + 0.01  # an all-positive group: zero point 0
    codes, zeros, scales = pseudo_quantize(w, GROUP, zero_point)
    return {
        "zero_point": zero_point, "group_size": GROUP, "in_features": IN, "out_features": OUT,
        "w": w.ravel().tolist(), "codes": codes.ravel().tolist(),
        "zeros": zeros.ravel().tolist(), "scales": scales.ravel().tolist(),
        "gemm_qweight": words(pack_gemm(codes)),
    }


def main():
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/awq")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(9)
    ref = {
        "generator": "tools/reference/awq_reference.py",
        "layout": layout_case(rng),
        "rtn_zero_point": rtn_case(rng, True),
        "rtn_symmetric": rtn_case(rng, False),
        "zeros_width": [[i, g, zeros_width(i, g)] for i, g in
                        [(4096, 128), (4096, 64), (4096, 32), (11008, 128), (11008, 64),
                         (11008, 32), (64, 32), (4096, 256), (4096, 4096)]],
    }
    path = out_dir / "awq_reference.json"
    path.write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
