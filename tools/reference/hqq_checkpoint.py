#!/usr/bin/env python3
"""Writes an HQQ checkpoint of a dense safetensors model with hqq's own HQQLinear (CPU), the
way transformers saves one: every linear weight `X.weight` of the decoder layers becomes
hqq's encoded state_dict under `X.` (W_q, scale, zero, meta fields), config.json gets
`quantization_config = {"quant_config": ..., "quant_method": "hqq", "skip_modules": [...]}`.
Used to check that qforge reads checkpoints hqq wrote (docs/hqq.md); nothing it writes is
committed.

    PYTHONPATH=/work/pyref-hqq/site /work/pyref/bin/python tools/reference/hqq_checkpoint.py \
        MODEL_DIR OUT_DIR [nbits] [group_size] [axis]
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from hqq.core.quantize import BaseQuantizeConfig, HQQLinear
from safetensors.torch import load_file, save_file

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main(src, dst, nbits=4, group_size=64, axis=1):
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    cfg = BaseQuantizeConfig(nbits=nbits, group_size=group_size, axis=axis)
    out = {}
    for shard in sorted(src.glob("*.safetensors")):
        for name, t in load_file(shard).items():
            module = name[: -len(".weight")]
            if name.endswith(".weight") and module.split(".")[-1] in LINEAR and t.dim() == 2:
                linear = torch.nn.Linear(t.shape[1], t.shape[0], bias=False, dtype=t.dtype)
                with torch.no_grad():
                    linear.weight.copy_(t)
                layer = HQQLinear(linear, quant_config=cfg, compute_dtype=t.dtype, device="cpu")
                for k, v in layer.state_dict().items():
                    out[f"{module}.{k}"] = v.contiguous()
            else:
                out[name] = t
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = {"quant_config": cfg, "quant_method": "hqq",
                                     "skip_modules": ["lm_head"]}
    (dst / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for extra in src.iterdir():
        if extra.suffix not in (".safetensors", ".json") or extra.name.endswith(".index.json"):
            continue
        if extra.name != "config.json" and not (dst / extra.name).exists():
            shutil.copy(extra, dst / extra.name)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], *(float(a) if "." in a else int(a) for a in args[2:]))
