#!/usr/bin/env python3
"""An independent float64 numpy re-implementation of all-MiniLM-L6-v2's forward pass
(BERT encoder, then mean pooling over the attention mask), the reference of the Rust
port's embedding check (tests/minilm.rs). PyTorch is not installed on the build
machines; this follows the BERT paper / Hugging Face BertModel equations directly and
shares no code with the Rust side except the tokenizer definition (tokenizer.json, read
with the `tokenizers` Python package; the token ids are written out too, so the Rust
test checks its tokenization against them).

usage: minilm_reference.py MODEL_DIR OUT.json
Needs numpy, safetensors and tokenizers (pip install numpy safetensors tokenizers).
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

# Fixed sentences: plain English, a kaomoji, mixed scripts, and different lengths so
# that padding and the attention mask matter.
SENTENCES = [
    "A man is playing a guitar on the street.",
    "Happy face",
    "(◕‿◕) waving hello ヽ(・∀・)ﾉ",
    "The quick brown fox jumps over the lazy dog, then sleeps for a very long time.",
]


def layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu(x):
    # BERT's exact (erf) GELU; numpy has no erf, so through math.erf elementwise.
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    # Some exports prefix every name with "bert."; strip it.
    w = {k[5:] if k.startswith("bert.") else k: v for k, v in w.items()}
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    heads = cfg["num_attention_heads"]
    hidden = cfg["hidden_size"]
    dh = hidden // heads
    result = []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def lin(name, v):
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin("attention.self.query", x).reshape(n, heads, dh).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, heads, dh).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, heads, dh).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
            scores -= scores.max(-1, keepdims=True)
            prob = np.exp(scores)
            prob /= prob.sum(-1, keepdims=True)
            ctx = (prob @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = layer_norm(
                lin("attention.output.dense", ctx) + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = gelu(lin("intermediate.dense", x))
            x = layer_norm(
                lin("output.dense", h) + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        # One sentence at a time, so mean pooling is the plain mean over its tokens.
        result.append({"text": s, "ids": ids, "embedding": x.mean(0).tolist()})
    json.dump({"model_dir": model_dir, "sentences": result}, open(out, "w"))
    print(f"wrote {len(result)} reference embeddings to {out}")


if __name__ == "__main__":
    main()
