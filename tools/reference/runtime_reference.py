#!/usr/bin/env python3
"""Reference numbers for the qforge runtime, made once with transformers (tools only).

Llama cases: generates tiny checkpoints with `qforge-make-model` (the flags are in CASES and in
the JSON, so the C++ test regenerates the identical model), runs transformers'
LlamaForCausalLM in float32 (eager attention) on fixed ids and writes, per case,
tests/reference/runtime/<case>.json: the ids, every logit, the mean next-token NLL of each
sequence, and 16 greedily generated ids (a plain argmax loop over full forwards, no cache, no
eos, no logits processors).

BERT case: builds a seeded BertModel (hidden 32, 2 layers, vocab 50) with random LayerNorm
parameters, saves it with save_pretrained as float32 safetensors into tests/fixtures/tiny-bert/
(a committed fixture of < 100 KB), and writes tests/reference/runtime/tiny-bert.json: the ids,
the last hidden state and the mean-pooled embedding.

    /work/pyref/bin/python tools/reference/runtime_reference.py \
        --make-model build/bin/qforge-make-model --repo .
"""

import argparse
import json
import math
import subprocess
import tempfile
from pathlib import Path

import torch

SMALL = ["--hidden", "64", "--intermediate", "160", "--layers", "2", "--heads", "4",
         "--kv-heads", "2", "--vocab", "96"]
CASES = {
    "llama-fp32": SMALL + ["--dtype", "fp32", "--seed", "3"],
    "llama-bf16": SMALL + ["--dtype", "bf16", "--seed", "5"],
    "llama-bf16-tied": SMALL + ["--dtype", "bf16", "--seed", "7", "--tie-embeddings"],
}


def fixed_ids(batch, length, vocab, salt):
    """Deterministic ids covering the vocabulary (the C++ test reads them from the JSON)."""
    return [[(7 * i + 13 * b + salt) % vocab for i in range(length)] for b in range(batch)]


def rounded(values):
    return [float(f"{v:.7g}") for v in values]


def llama_case(make_model, name, flags, out_dir):
    from transformers import LlamaForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        subprocess.run([make_model, "--out", str(folder)] + flags, check=True,
                       stdout=subprocess.DEVNULL)
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                 attn_implementation="eager")
        model.eval()
        vocab = model.config.vocab_size
        ids = fixed_ids(2, 12, vocab, 1)
        with torch.no_grad():
            logits = model(torch.tensor(ids)).logits.float()
            logp = torch.log_softmax(logits, -1)
            nll = []
            for b in range(len(ids)):
                targets = torch.tensor(ids[b][1:])
                nll.append(-logp[b, :-1].gather(1, targets[:, None]).sum().item())
            prompt = [1, 5, 9, 14]
            seq = list(prompt)
            for _ in range(16):
                step = model(torch.tensor([seq])).logits[0, -1]
                seq.append(int(torch.argmax(step).item()))
    tokens = sum(len(s) - 1 for s in ids)
    mean_nll = sum(nll) / tokens
    doc = {
        "make_model_flags": flags,
        "ids": ids,
        "logits_shape": list(logits.shape),
        "logits": rounded(logits.flatten().tolist()),
        "mean_nll": mean_nll,
        "perplexity": math.exp(mean_nll),
        "tokens": tokens,
        "prompt": prompt,
        "greedy": seq[len(prompt):],
        "made_with": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    (out_dir / f"{name}.json").write_text(json.dumps(doc) + "\n")


def bert_case(fixture_dir, out_dir):
    from transformers import BertConfig, BertModel

    torch.manual_seed(1234)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, type_vocab_size=2,
                        hidden_act="gelu", layer_norm_eps=1e-12)
    model = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():
        # The default init leaves LayerNorm at (1, 0) and biases at 0; randomise them so the
        # test sees every parameter.
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    model.eval()
    fixture_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(fixture_dir, safe_serialization=True)
    reloaded = BertModel.from_pretrained(fixture_dir, dtype=torch.float32,
                                         attn_implementation="eager", add_pooling_layer=False)
    reloaded.eval()
    ids = fixed_ids(2, 10, config.vocab_size, 3)
    with torch.no_grad():
        hidden = reloaded(torch.tensor(ids)).last_hidden_state.float()
    embedding = hidden.mean(dim=1)
    doc = {
        "fixture": "tests/fixtures/tiny-bert",
        "ids": ids,
        "hidden_shape": list(hidden.shape),
        "hidden": rounded(hidden.flatten().tolist()),
        "embedding": rounded(embedding.flatten().tolist()),
        "made_with": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    (out_dir / "tiny-bert.json").write_text(json.dumps(doc) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-model", required=True, help="path to qforge-make-model")
    parser.add_argument("--repo", default=".", help="the qforge source tree")
    args = parser.parse_args()
    repo = Path(args.repo)
    out_dir = repo / "tests" / "reference" / "runtime"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name, flags in CASES.items():
        llama_case(args.make_model, name, flags, out_dir)
    bert_case(repo / "tests" / "fixtures" / "tiny-bert", out_dir)


if __name__ == "__main__":
    main()
