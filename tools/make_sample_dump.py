#!/usr/bin/python3
"""Writes a small synthetic diffscope dump (docs/dump-format.md, format_version 1).

It stands in for `diffscope dump` when developing or testing the viewer. The maps are built
the way differential attention behaves: both softmax maps of a head share common-mode
"noise" logits (an attention sink on the first token, a recency bias, random clutter), and
only softmax1 also has a signal (each query attends to an earlier occurrence of its token, or
to a fixed relevant key), so softmax1 - lambda*softmax2 cancels the noise and keeps the signal.

    /usr/bin/python3 tools/make_sample_dump.py OUT.h5 [--arch diffllama|llama] [--tokens N]
        [--layers N] [--heads H] [--dtype f32|f16] [--compress N] [--seed S] [--omit PATH]

--heads is num_attention_heads (a DiffLlama dump then has H/2 differential heads).
--omit deletes one dataset or group after writing (for bad-input tests).
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np

WORDS = ("<s> The cat sat on the mat . The dog sat on the rug . Where did the cat sit ?"
         " It sat on the mat").split()


def token_texts(n):
    """Printable token pieces: "<s>" and a short story, repeated (with "and") up to length n."""
    out = ["<s>"]
    i = 1
    while len(out) < n:
        w = WORDS[i % len(WORDS)]
        w = "and" if w == "<s>" else w
        out.append(w if w in ".?" else "\u2581" + w)
        i += 1
    return out[:n]


def softmax_rows(logits):
    """Causal softmax over the last axis: row q sees keys 0..q; masked entries are 0."""
    t = logits.shape[-1]
    mask = np.triu(np.ones((t, t), dtype=bool), 1)
    x = np.where(mask, -np.inf, logits)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def head_maps(rng, texts, layer, head):
    """softmax1, softmax2 of one differential head: shared noise plus a signal in map 1."""
    t = len(texts)
    q = np.arange(t)[:, None]
    k = np.arange(t)[None, :]
    sink = np.where(k == 0, 2.5 + 0.5 * head, 0.0)
    recency = -0.15 * (1 + layer) * np.maximum(q - k, 0) ** 0.7
    clutter = rng.normal(0.0, 0.8, (t, t))
    noise = sink + recency + clutter
    signal = np.zeros((t, t))
    last = {}
    for i in range(t):
        # Signal: the token after an earlier occurrence of this token (induction-like), else
        # a key that depends on the head, so that heads differ.
        j = last[texts[i]] + 1 if texts[i] in last else (i * (head + 1)) // (head + 3)
        last[texts[i]] = i
        signal[i, j] = 2.2 + 0.4 * layer + 0.3 * head
    s1 = softmax_rows(noise + signal + rng.normal(0.0, 0.15, (t, t)))
    s2 = softmax_rows(noise + rng.normal(0.0, 0.15, (t, t)))
    return s1, s2


def lambda_init(layer):
    return 0.8 - 0.6 * math.exp(-0.3 * layer)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", choices=("diffllama", "llama"), default="diffllama")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--compress", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--omit", default=None)
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    T, L, H = a.tokens, a.layers, a.heads
    hd, kv = 16, max(1, H // 2)
    diff = a.arch == "diffllama"
    hs = H // 2 if diff else H
    dtype = np.float16 if a.dtype == "f16" else np.float32
    texts = token_texts(T)
    vocab = sorted(set(texts))
    ids = np.array([1] + [100 + vocab.index(w) for w in texts[1:]], dtype=np.int32)
    config = {"architectures": ["DiffLlamaForCausalLM" if diff else "LlamaForCausalLM"],
              "model_type": a.arch, "hidden_size": H * hd, "num_hidden_layers": L,
              "num_attention_heads": H, "num_key_value_heads": kv, "head_dim": hd,
              "vocab_size": 512, "rms_norm_eps": 1e-5}
    rows = max(1, min(T, 65536 // T))
    chunk = (1, rows, T)
    comp = dict(compression="gzip", compression_opts=a.compress, shuffle=True) if a.compress else {}

    tmp = a.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        s = h5py.string_dtype("utf-8")
        f.attrs["format"] = "diffscope-dump"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["arch"] = a.arch
        for name, v in (("num_layers", L), ("num_heads", H), ("num_kv_heads", kv),
                        ("head_dim", hd), ("num_tokens", T)):
            f.attrs[name] = np.int32(v)
        f.attrs["config"] = json.dumps(config)
        f.attrs["prompt"] = "".join(w.replace("\u2581", " ") for w in texts[1:])
        f.create_group("provenance").attrs["command"] = "tools/make_sample_dump.py"
        f.attrs["layers"] = np.arange(L, dtype=np.int32)
        f.attrs["what"] = "softmax,diff,groupnorm" if diff else "softmax"
        f.create_dataset("tokens/ids", data=ids)
        f.create_dataset("tokens/text", data=np.array(texts, dtype=object), dtype=s)
        for l in range(L):
            g = f.create_group(f"layers/{l}/attn")
            g.attrs["heads"] = np.arange(hs, dtype=np.int32)
            maps = [head_maps(rng, texts, l, h) for h in range(hs)]
            if diff:
                l1, l2, li = 1.0 + 0.1 * l, 0.8, lambda_init(l)
                lam = l1 - l2 + li
                g.attrs["lambda_1"] = l1
                g.attrs["lambda_2"] = l2
                g.attrs["lambda_init"] = li
                g.attrs["lambda_full"] = np.float64(lam)
                g.attrs["lambda_overridden"] = np.int32(0)
                s1 = np.stack([m[0] for m in maps])
                s2 = np.stack([m[1] for m in maps])
                g.create_dataset("softmax1", data=s1.astype(dtype), chunks=chunk, **comp)
                g.create_dataset("softmax2", data=s2.astype(dtype), chunks=chunk, **comp)
                g.create_dataset("diff", data=(s1 - lam * s2).astype(dtype), chunks=chunk, **comp)
                rms = rng.uniform(0.3, 2.0, (hs, T)).astype(np.float32)
                gn = f.create_group(f"layers/{l}/groupnorm")
                gn.create_dataset("rms", data=rms)
                gn.create_dataset("scale", data=((1 - li) / np.sqrt(rms ** 2 + 1e-5)).astype(np.float32))
            else:
                sm = np.stack([m[0] for m in maps])
                g.create_dataset("softmax", data=sm.astype(dtype), chunks=chunk, **comp)
        if a.omit:
            del f[a.omit]
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
