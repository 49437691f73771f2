#!/usr/bin/env python3
"""diffscope and Hugging Face transformers side by side, on one machine, with the same threads.

For a random checkpoint of a given shape (written by `diffscope init`, default the shape of
kajuma/DiffLlama-0.3B-handcut) and each architecture, measures in --rounds alternating rounds
(transformers, then diffscope, so that a slow spell of a shared host hits both; medians and
bests are reported):

  * prefill: transformers 5 eager float32 forward of T random tokens (no cache), with and
    without output_attentions, against `diffscope bench --tokens T` (same threads);
  * the whole "dump all maps to HDF5" job: transformers forward with output_attentions plus
    h5py writing every map (and, for DiffLlama, the lambda-weighted difference maps) against
    `diffscope dump --what softmax,diff` (Llama: softmax), the same maps of every layer (`bench --dump-what`);
  * diffscope's full default dump (maps, GroupNorm, outliers, cancelled share) against its own
    prefill, in the same rounds;
  * agreement of the last-token logits of both on the same prompt (max abs difference).

With --dtype bfloat16 transformers runs the checkpoint in bf16 (from_pretrained(dtype=
torch.bfloat16)) and diffscope with --compute bf16 (docs/numerics.md, "bf16 compute"); the
checkpoint is then written in bf16. --no-dump skips both dump jobs (and the output_attentions
forward), for long prompts whose maps would be gigabytes.

Before transformers reads a freshly written checkpoint, diffscope reads it once (a short
`bench`): the file then sits in the page cache in 2 MiB folios, as after `diffscope init` or any
cold read through diffscope, and both programs map the same pages. The first reader decides the
folio size; read first by transformers, diffscope's mapping gets 4 KiB pages, which cost its
GEMMs 5-8 % (docs/performance.md). Each diffscope run reports `rss_file_huge_gb`.

Usage: python3 tools/bench_vs_transformers.py DIFFSCOPE_CMD OUT.json [--like kajuma]
       [--tokens 512] [--threads 2] [--archs diffllama,llama] [--dtype bfloat16] [--no-dump]
DIFFSCOPE_CMD is how to run diffscope (it may be "ld.so --library-path L path/diffscope").
Needs torch, transformers, h5py, numpy.
"""
import argparse
import json
import os
import shlex
import subprocess
import tempfile
import time

import h5py
import numpy as np
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("diffscope")
ap.add_argument("out")
ap.add_argument("--like", default="kajuma")
ap.add_argument("--tokens", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--archs", default="diffllama,llama")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--workdir", default=tempfile.gettempdir())
ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
ap.add_argument("--no-dump", action="store_true")
args = ap.parse_args()
BF16 = args.dtype == "bfloat16"
COMPUTE = ["--compute", "bf16"] if BF16 else []
DS = shlex.split(args.diffscope)
torch.set_num_threads(args.threads)
results = {"threads": args.threads, "tokens": args.tokens, "like": args.like, "dtype": args.dtype, "torch": torch.__version__,
           "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")}


def run(cmd):
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{cmd}: {r.stderr}")
    return r.stdout, time.time() - t0


def timed(fn):
    t0 = time.time()
    out = fn()
    return time.time() - t0, out


def summary(values):
    return {"median": float(np.median(values)), "best": float(min(values)), "all": [float(v) for v in values]}


for arch in args.archs.split(","):
    mdir = os.path.join(args.workdir, f"bench-{args.like}-{arch}" + ("-bf16" if BF16 else ""))
    if not os.path.exists(os.path.join(mdir, "config.json")):
        run(DS + ["init", mdir, "--like", args.like, "--arch", arch] + (["--dtype", "bf16"] if BF16 else []))
    run(DS + ["bench", mdir, "--tokens", "16", "--rounds", "1", "--threads", str(args.threads), "--json"] + COMPUTE)
    r = {}
    g = torch.Generator().manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(mdir, dtype=getattr(torch, args.dtype),
                                                 attn_implementation="eager").eval()
    V = model.config.vocab_size
    ids = torch.randint(0, V, (1, args.tokens), generator=g)
    ids_arg = ",".join(map(str, ids[0].tolist()))
    def hf_dump():
        o = model(ids, use_cache=False, output_attentions=True, logits_to_keep=1)
        path = os.path.join(args.workdir, f"hf-{arch}.h5")
        with h5py.File(path, "w") as f:
            for l, a in enumerate(o.attentions):
                a = a[0].float().numpy()
                if arch == "diffllama":
                    at = model.model.layers[l].self_attn
                    lam = (torch.exp((at.lambda_q1 * at.lambda_k1).sum()) - torch.exp((at.lambda_q2 * at.lambda_k2).sum())
                           + at.lambda_init).item()
                    h = a.shape[0] // 2
                    f[f"layers/{l}/attn/softmax1"] = a[:h]
                    f[f"layers/{l}/attn/softmax2"] = a[h:]
                    f[f"layers/{l}/attn/diff"] = a[:h] - lam * a[h:]
                else:
                    f[f"layers/{l}/attn/softmax"] = a
        size = os.path.getsize(path)
        os.remove(path)
        return size

    hf_prefill, hf_attn, hf_dumps, ds_runs, ds_full = [], [], [], [], []
    with torch.no_grad():
        model(ids, use_cache=False, logits_to_keep=1)  # warm-up at full length
        for _ in range(args.rounds):
            t, out = timed(lambda: model(ids, use_cache=False, logits_to_keep=1))
            hf_prefill.append(t)
            hf_last = out.logits[0, -1].float().numpy()
            if not args.no_dump:
                hf_attn.append(timed(lambda: model(ids, use_cache=False, output_attentions=True, logits_to_keep=1))[0])
                t, r["hf_dump_bytes"] = timed(hf_dump)
                hf_dumps.append(t)
            # one diffscope round (after its own warm-up prefill): prefill, sustained sgemm, the maps'
            # dump; then, unless --no-dump, one more with the full default dump
            bench = DS + ["bench", mdir, "--tokens", str(args.tokens), "--threads", str(args.threads), "--rounds", "1",
                          "--json"] + COMPUTE
            maps = "softmax,diff" if arch == "diffllama" else "softmax"
            js, _ = run(bench + ([] if args.no_dump else ["--dump-what", maps]))
            ds_runs.append(json.loads(js))
            if not args.no_dump:
                ds_full.append(json.loads(run(bench + ["--dump"])[0]))
    del model
    r["hf_prefill_s"] = summary(hf_prefill)
    r["diffscope_runs"] = ds_runs
    r["ds_prefill_s"] = summary([d["prefill_s"] for d in ds_runs])
    if not args.no_dump:
        r["hf_prefill_attn_s"], r["hf_dump_s"] = summary(hf_attn), summary(hf_dumps)
        r["ds_dump_s"] = summary([d["dump_s"] for d in ds_runs])
        r["diffscope_full_dump_runs"] = ds_full
        r["ds_full_dump_s"] = summary([d["dump_s"] for d in ds_full])
        r["ds_full_dump_ratio"] = summary([d["dump_ratio"] for d in ds_full])
    r["ds_efficiency"] = summary([d["efficiency"] for d in ds_runs])
    js, _ = run(DS + ["bench", mdir, "--tokens", "64", "--threads", str(args.threads), "--decode", "8", "--rounds", "1",
                      "--json"] + COMPUTE)
    r["diffscope_decode"] = json.loads(js)
    lp = os.path.join(args.workdir, f"ds-logits-{arch}.h5")
    run(DS + ["logits", mdir, "--ids", ids_arg, "-o", lp, "--force", "--threads", str(args.threads)] + COMPUTE)
    with h5py.File(lp) as f:
        r["last_logits_max_abs_diff"] = float(np.abs(f["logits"][-1] - hf_last).max())
    os.remove(lp)
    for k in ("median", "best"):
        r[f"prefill_speedup_{k}"] = r["hf_prefill_s"][k] / r["ds_prefill_s"][k]
        if not args.no_dump:
            r[f"dump_speedup_{k}"] = r["hf_dump_s"][k] / r["ds_dump_s"][k]
    results[arch] = r
    print(arch, json.dumps(r, indent=1), flush=True)
    json.dump(results, open(args.out, "w"), indent=1)  # after each architecture: a cut run keeps what it has
