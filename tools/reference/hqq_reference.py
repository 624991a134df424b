#!/usr/bin/env python3
"""Reference numbers for the hqq plugin's tests (tests/reference/hqq/*.json).

Runs hqq's own HQQLinear (pip package `hqq`, CPU) on small seeded weights and writes, per case,
the input weight, the encoded state_dict hqq saves (every tensor: dtype, shape, values) and
HQQLinear.dequantize(). Only these numbers are committed; the library is not.

    python3 -m venv /work/pyref-hqq && /work/pyref-hqq/bin/pip install torch hqq
    PYTHONPATH=... python3 tools/reference/hqq_reference.py tests/reference/hqq
"""
import json
import sys
from pathlib import Path

import torch
from hqq.core.quantize import BaseQuantizeConfig, HQQLinear
import hqq

# (name, nbits, group_size, axis, dtype, out_features, in_features)
CASES = [
    ("nbits4_g64_axis1_f32", 4, 64, 1, torch.float32, 32, 64),
    ("nbits4_g16_axis0_bf16", 4, 16, 0, torch.bfloat16, 24, 48),
    ("nbits3_g32_axis1_bf16", 3, 32, 1, torch.bfloat16, 20, 64),
    ("nbits3_g16_axis0_f16", 3, 16, 0, torch.float16, 16, 40),
    ("nbits2_g32_axis1_f16", 2, 32, 1, torch.float16, 16, 64),
    ("nbits1_g8_axis0_f32", 1, 8, 0, torch.float32, 16, 32),
    ("nbits8_g64_axis1_bf16", 8, 64, 1, torch.bfloat16, 8, 128),
]


def tensor_json(t):
    dtype = str(t.dtype).replace("torch.", "")
    values = t.detach().to(torch.float64 if t.is_floating_point() else torch.int64).flatten()
    return {"dtype": dtype, "shape": list(t.shape), "values": values.tolist()}


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, nbits, group, axis, dtype, o, i in CASES:
        torch.manual_seed(1234)
        linear = torch.nn.Linear(i, o, bias=False)
        with torch.no_grad():
            w = torch.randn(o, i) * 0.05
            w[0, :8] = 0.0  # a flat run: min == max inside some groups
            linear.weight.copy_(w.to(dtype).float())
        linear = linear.to(dtype)
        weight = linear.weight.detach().clone()
        cfg = BaseQuantizeConfig(nbits=nbits, group_size=group, axis=axis)
        layer = HQQLinear(linear, quant_config=cfg, compute_dtype=dtype, device="cpu")
        state = {k: tensor_json(v) for k, v in layer.state_dict().items()}
        deq = layer.dequantize()
        doc = {
            "hqq_version": getattr(hqq, "__version__", "unknown"),
            "torch_version": torch.__version__,
            "nbits": nbits, "group_size": group, "axis": axis,
            "dtype": str(dtype).replace("torch.", ""),
            "out_features": o, "in_features": i,
            "weight": tensor_json(weight),
            "state_dict": state,
            "dequantized": tensor_json(deq),
        }
        (out / f"{name}.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(name, {k: (v["dtype"], v["shape"]) for k, v in state.items() if k in ("W_q", "scale")})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/hqq")
