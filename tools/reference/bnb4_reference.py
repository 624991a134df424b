#!/usr/bin/env python3
"""Reference numbers for bitsandbytes 4-bit and 8-bit (LLM.int8), made once with the Python
stack (tools only).

Loads a checkpoint written by `qforge-make-model` with transformers + bitsandbytes on CPU
(load_in_4bit with the given quant type, or load_in_8bit for `int8`), saves it with
`save_pretrained`, and writes what
transformers wrote: every tensor's name, dtype, shape and the sha256 of its bytes, and the
`quantization_config` of config.json. tests/integration/bnb4_reference_test.cpp quantizes the
same generated model with qforge and compares against the committed JSON, so CI checks
byte-identity with transformers without Python.

    python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install torch transformers accelerate \
        safetensors bitsandbytes
    build/bin/qforge-make-model --out /tmp/ref-model --hidden 64 --intermediate 160 \
        --layers 2 --heads 4 --kv-heads 2 --vocab 96
    /tmp/pyref/bin/python tools/reference/bnb4_reference.py /tmp/ref-model nf4 \
        --make-model-args "--hidden 64 --intermediate 160 --layers 2 --heads 4 --kv-heads 2 \\
        --vocab 96" > tests/reference/bnb4/nf4-bf16.json

Optionally `--compare QFORGE_OUT` prints the differences against a qforge output folder.
"""

import argparse
import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path


def read_header(path: Path):
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            data = f.read(end - begin)
            out[name] = {
                "dtype": info["dtype"],
                "shape": info["shape"],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        return out, header.get("__metadata__")


def read_checkpoint(folder: Path):
    tensors = {}
    metadata = None
    for shard in sorted(folder.glob("*.safetensors")):
        part, metadata = read_header(shard)
        tensors.update(part)
    config = json.loads((folder / "config.json").read_text())
    return tensors, metadata, config


def quantize_with_transformers(model_dir: Path, quant_type: str, double_quant: bool, out: Path):
    import torch
    import transformers
    import bitsandbytes
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if quant_type == "int8":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=double_quant,
        )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=config, device_map="cpu", torch_dtype="auto"
    )
    model.save_pretrained(out)
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitsandbytes": bitsandbytes.__version__,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("quant_type", choices=["nf4", "fp4", "int8"])
    parser.add_argument("--double-quant", action="store_true")
    parser.add_argument("--compare", type=Path, help="a qforge output folder to diff against")
    parser.add_argument(
        "--make-model-args",
        default="",
        help="the qforge-make-model flags that made model_dir, recorded for the C++ test",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        versions = quantize_with_transformers(
            args.model_dir, args.quant_type, args.double_quant, Path(tmp)
        )
        tensors, metadata, config = read_checkpoint(Path(tmp))
    source, _, _ = read_checkpoint(args.model_dir)
    reference = {
        "made_by": "tools/reference/bnb4_reference.py",
        "make_model_args": args.make_model_args.split(),
        "versions": versions,
        "model": {name: t["sha256"] for name, t in sorted(source.items())},
        "quant_type": args.quant_type,
        "double_quant": args.double_quant,
        "metadata": metadata,
        "quantization_config": config.get("quantization_config"),
        "tensors": dict(sorted(tensors.items())),
    }
    if args.compare is None:
        json.dump(reference, sys.stdout, indent=1, sort_keys=False)
        sys.stdout.write("\n")
        return 0

    ours, our_metadata, our_config = read_checkpoint(args.compare)
    problems = []
    for name in sorted(set(tensors) | set(ours)):
        if name not in ours:
            problems.append(f"missing in qforge output: {name}")
        elif name not in tensors:
            problems.append(f"not written by transformers: {name}")
        else:
            for key in ("dtype", "shape", "sha256"):
                if tensors[name][key] != ours[name][key]:
                    problems.append(f"{name}: {key} {ours[name][key]} != {tensors[name][key]}")
    if our_config.get("quantization_config") != config.get("quantization_config"):
        problems.append(
            "quantization_config differs:\n  qforge:       "
            + json.dumps(our_config.get("quantization_config"), sort_keys=True)
            + "\n  transformers: "
            + json.dumps(config.get("quantization_config"), sort_keys=True)
        )
    if our_metadata != metadata:
        problems.append(f"__metadata__ {our_metadata} != {metadata}")
    print(json.dumps(versions))
    print(f"{len(tensors)} tensors from transformers, {len(ours)} from qforge")
    for p in problems:
        print(p)
    print("identical" if not problems else f"{len(problems)} differences")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
