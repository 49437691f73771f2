#!/usr/bin/env python3
"""Golden files for diffscope's tests, computed by Hugging Face transformers.

Creates tiny random-weight DiffLlama, Llama, Qwen2 and Qwen3 checkpoints covering every loader
and config variant diffscope supports, and records what transformers computes on them:

    OUT/models/<case>/        config.json + model.safetensors (or shards + index)
    OUT/refs/<case>.h5        per prompt length T:
        T{T}/input_ids            [T] int32
        T{T}/logits               [T, V]       float64 forward (the truth), stored float32
        T{T}/logits_fp32          [T, V]       transformers' float32 forward
        T{T}/hidden_states        [L+1, T, D]  float64 forward
        T{T}/attentions           [L, H, T, T] output_attentions (DiffLlama: first maps are heads
                                               [0, H/2), second maps [H/2, H))
        T{T}/diff_maps            [L, H/2, T, T]  A1 - lambda * A2        (DiffLlama)
        T{T}/lambda               [L, 4]  lambda_1, lambda_2, lambda_init, lambda_full
        T{T}/groupnorm_input_rms  [L, T, H/2]   RMS of the GroupNorm input (forward hook on
                                               transformers' [T, H/2, 2hd] GroupNorm input)
        T{T}/greedy               [T + 12]  greedy decoding with the KV cache (float32)
        T{T}/lambda_override_logits, head_ablation_logits (DiffLlama, see below)

Interventions are computed by weight surgery on the transformers model, never by diffscope:
  * lambda override of layer 0 to LAMBDA_OVERRIDE: lambda_q2 = lambda_k2 = 0 and
    lambda_q1 = [ln(v - lambda_init + 1), 0, ...], lambda_k1 = [1, 0, ...];
  * ablating differential head 1 of layer 0: zero its 2*hd input columns of o_proj.

Odd num_key_value_heads for DiffLlama: transformers 5 refuses it, 4.48-4.5x computed it with
repeat_kv and a split of the value heads into halves. That rule on a GQA checkpoint equals
the same rule on its MHA expansion (k/v rows repeated n_rep times), which transformers 5
accepts: the reference is computed on the expansion and the checkpoint saved with odd KV.

Pitfalls handled (see ../shared/README.md): weights are rounded to the storage dtype on a
copy, and the checkpoint is reloaded with from_pretrained(dtype=float32); generate() gets an
all-ones attention_mask.

A case's `strip` keys are deleted from the saved config.json before transformers reloads it,
so that the reference follows transformers' own defaults for them (e.g. Qwen2's RoPE theta).

Usage (needs torch, transformers 5.x, safetensors, h5py):
    python3 tools/gen_reference.py OUT                   every case
    python3 tools/gen_reference.py --only A,B OUT        the named cases only (the others' files
                                                        stay as they are when OUT is elsewhere)
"""
import copy
import json
import math
import os
import shutil
import sys

import h5py
import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (DiffLlamaConfig, DiffLlamaForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ARCHS = {"diff": (DiffLlamaConfig, DiffLlamaForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM),
         "qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}

ONLY = None
if len(sys.argv) == 4 and sys.argv[1] == "--only":
    ONLY = set(sys.argv[2].split(","))
elif len(sys.argv) != 2:
    sys.exit("usage: gen_reference.py [--only CASE,CASE] OUT")
OUT = sys.argv[-1]
LENS = [1, 6, 31]
NEW_TOKENS = 12
LAMBDA_OVERRIDE = 0.9
torch.set_num_threads(8)

BASE = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)


def case(name, arch, dtype, seed, theta=10000.0, llama3=False, legacy_rope=False, shard=False,
         expand_kv=None, strip=(), **cfg):
    c = dict(BASE)
    c.update(cfg)
    return dict(name=name, arch=arch, dtype=dtype, seed=seed, theta=theta, llama3=llama3,
                legacy_rope=legacy_rope, shard=shard, expand_kv=expand_kv, strip=strip, cfg=c)


CASES = [
    case("diff-mha-f32", "diff", "float32", 11),
    case("diff-gqa-tied-bf16", "diff", "bfloat16", 12, num_key_value_heads=2, tie_word_embeddings=True,
         rms_norm_eps=1e-6),
    case("diff-headdim-bias-llama3-f16", "diff", "float16", 13, head_dim=16, attention_bias=True,
         theta=500000.0, llama3=True, num_key_value_heads=2),
    case("diff-oddkv-f32", "diff", "float32", 14, num_attention_heads=6, num_key_value_heads=6,
         hidden_size=48, expand_kv=3),
    case("diff-legacy-rope-f32", "diff", "float32", 15, theta=50000.0, llama3=True, legacy_rope=True,
         num_key_value_heads=2),
    case("diff-sharded-deep-f32", "diff", "float32", 16, num_hidden_layers=4, num_attention_heads=8,
         num_key_value_heads=4, hidden_size=64, shard=True),
    case("llama-mha-bias-f32", "llama", "float32", 21, attention_bias=True, mlp_bias=True),
    case("llama-gqa-headdim-tied-bf16", "llama", "bfloat16", 22, num_key_value_heads=2, head_dim=12,
         tie_word_embeddings=True),
    case("llama-llama3-f16", "llama", "float16", 23, theta=500000.0, llama3=True, num_key_value_heads=1),
    # Qwen2: q/k/v bias, no o bias. The f32 case leaves RoPE and eps to transformers' defaults.
    case("qwen2-tied-f32", "qwen2", "float32", 31, tie_word_embeddings=True,
         strip=("rope_parameters", "rope_theta", "rms_norm_eps")),
    case("qwen2-gqa-bf16", "qwen2", "bfloat16", 32, theta=1000000.0, num_key_value_heads=2),
    # Qwen3: RMSNorm on each q and k head before RoPE, head_dim apart from D / H.
    case("qwen3-tied-f32", "qwen3", "float32", 33, head_dim=16, tie_word_embeddings=True),
    case("qwen3-gqa-bias-bf16", "qwen3", "bfloat16", 34, head_dim=8, num_key_value_heads=2,
         attention_bias=True, theta=1000000.0),
]


def rope_parameters(c):
    p = {"rope_type": "default", "rope_theta": c["theta"]}
    if c["llama3"]:
        p = {"rope_type": "llama3", "rope_theta": c["theta"], "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    return p


def build(c):
    torch.manual_seed(c["seed"])
    Cfg, Model = ARCHS[c["arch"]]
    kw = dict(c["cfg"], initializer_range=0.15, rope_parameters=rope_parameters(c))
    cfg = Cfg(**kw)
    model = Model._from_config(cfg, attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(c["seed"] + 1000)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lambda_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif "norm" in n and p.dim() == 1:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        if c["expand_kv"]:
            # Make the MHA model a GQA one in disguise: k/v rows of head h copy those of h // n_rep.
            H = cfg.num_attention_heads
            rep = H // c["expand_kv"]
            hd = cfg.head_dim
            for layer in model.model.layers:
                for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
                    w = proj.weight.view(H, hd, -1)
                    w.copy_(w[::rep].repeat_interleave(rep, dim=0))
        dt = getattr(torch, c["dtype"])
        for p in model.parameters():
            p.copy_(p.to(dt).to(torch.float32))
    return model, dt


def save_checkpoint(model, dt, c, cdir):
    if os.path.exists(cdir):
        shutil.rmtree(cdir)
    m = copy.deepcopy(model).to(dt)
    m.save_pretrained(cdir, safe_serialization=True, max_shard_size="40KB" if c["shard"] else "5GB")
    cfg_path = os.path.join(cdir, "config.json")
    cfg = json.load(open(cfg_path))
    if c["expand_kv"]:
        # Save the GQA checkpoint the MHA model stands for: every n_rep-th k/v head.
        H, hd = cfg["num_attention_heads"], cfg["head_dim"]
        rep = H // c["expand_kv"]
        sd = {k: v.contiguous() for k, v in m.state_dict().items()}
        for k in list(sd):
            if k.endswith(("k_proj.weight", "v_proj.weight")):
                sd[k] = sd[k].view(H, hd, -1)[::rep].reshape(c["expand_kv"] * hd, -1).contiguous()
        if cfg.get("tie_word_embeddings"):
            sd.pop("lm_head.weight", None)
        for f in os.listdir(cdir):
            if f.endswith(".safetensors"):
                os.remove(os.path.join(cdir, f))
        save_file(sd, os.path.join(cdir, "model.safetensors"), metadata={"format": "pt"})
        cfg["num_key_value_heads"] = c["expand_kv"]
    if c["legacy_rope"]:
        # The pre-transformers-5 spelling: rope_theta at the top level plus rope_scaling.
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        rp["type"] = rp.pop("rope_type")
        cfg["rope_scaling"] = rp
    for k in c["strip"]:
        cfg.pop(k, None)
    json.dump(cfg, open(cfg_path, "w"), indent=2)


def lambdas(model):
    out = []
    for layer in model.model.layers:
        a = layer.self_attn
        l1 = math.exp(float(torch.sum(a.lambda_q1.double() * a.lambda_k1.double())))
        l2 = math.exp(float(torch.sum(a.lambda_q2.double() * a.lambda_k2.double())))
        out.append([l1, l2, float(a.lambda_init), l1 - l2 + float(a.lambda_init)])
    return np.array(out)


def forward(model, ids, diff):
    rms = {}
    hooks = []
    if diff:
        for li, layer in enumerate(model.model.layers):
            def hk(mod, inp, out, li=li):
                rms[li] = torch.sqrt((inp[0][0].double() ** 2).mean(-1))
            hooks.append(layer.self_attn.groupnorm.register_forward_hook(hk))
    with torch.no_grad():
        o = model(ids, output_attentions=True, output_hidden_states=True, use_cache=False)
    for h in hooks:
        h.remove()
    res = dict(logits=o.logits[0].double().numpy(),
               hidden_states=torch.stack([h[0] for h in o.hidden_states]).double().numpy(),
               attentions=torch.stack([a[0] for a in o.attentions]).double().numpy())
    if diff:
        res["groupnorm_input_rms"] = torch.stack([rms[i] for i in range(len(rms))]).numpy()
    return res


def intervened_logits(model, ids, surgery):
    m = copy.deepcopy(model)
    with torch.no_grad():
        surgery(m)
        return m(ids, use_cache=False).logits[0].double().numpy()


def override_lambda(m):
    a = m.model.layers[0].self_attn
    for p in (a.lambda_q1, a.lambda_k1, a.lambda_q2, a.lambda_k2):
        p.zero_()
    a.lambda_q1[0] = math.log(LAMBDA_OVERRIDE - float(a.lambda_init) + 1.0)
    a.lambda_k1[0] = 1.0


def ablate_head1(m):
    hd = m.config.head_dim
    m.model.layers[0].self_attn.o_proj.weight[:, 2 * hd:4 * hd] = 0


def f32(x):
    return np.asarray(x, dtype=np.float32)


def run_case(c):
    model, dt = build(c)
    cdir = os.path.join(OUT, "models", c["name"])
    save_checkpoint(model, dt, c, cdir)
    Model = type(model)
    if c["expand_kv"]:
        # transformers 5 cannot load odd KV: the reference runs on the MHA expansion in memory.
        model32 = model
    else:
        model32 = Model.from_pretrained(cdir, dtype=torch.float32, attn_implementation="eager").eval()
    model64 = copy.deepcopy(model32).to(torch.float64)
    diff = c["arch"] == "diff"
    V = model32.config.vocab_size
    h5 = h5py.File(os.path.join(OUT, "refs", c["name"] + ".h5"), "w")
    h5.attrs["transformers_version"] = str(transformers.__version__)
    h5.attrs["torch_version"] = str(torch.__version__)
    h5.attrs["storage_dtype"] = c["dtype"]
    h5.attrs["lambda_override"] = LAMBDA_OVERRIDE
    gen = torch.Generator().manual_seed(c["seed"] + 7)
    z = dict(compression="gzip", compression_opts=9, shuffle=True)
    for T in LENS:
        ids = torch.randint(0, V, (1, T), generator=gen)
        g = h5.create_group(f"T{T}")
        g["input_ids"] = ids[0].numpy().astype(np.int32)
        r64 = forward(model64, ids, diff)
        r32 = forward(model32, ids, diff)
        g.create_dataset("logits", data=f32(r64["logits"]), **z)
        g.create_dataset("logits_fp32", data=f32(r32["logits"]), **z)
        g.create_dataset("hidden_states", data=f32(r64["hidden_states"]), **z)
        g.create_dataset("attentions", data=f32(r64["attentions"]), **z)
        if diff:
            lam = lambdas(model64)
            att = r64["attentions"]
            Hh = att.shape[1] // 2
            g["lambda"] = lam
            g.create_dataset("diff_maps", data=f32(att[:, :Hh] - lam[:, 3, None, None, None] * att[:, Hh:]), **z)
            g.create_dataset("groupnorm_input_rms", data=f32(r64["groupnorm_input_rms"]), **z)
            g.create_dataset("lambda_override_logits", data=f32(intervened_logits(model64, ids, override_lambda)), **z)
            g.create_dataset("head_ablation_logits", data=f32(intervened_logits(model64, ids, ablate_head1)), **z)
        with torch.no_grad():
            out = model32.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                   do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
        g["greedy"] = out[0].numpy().astype(np.int32)
        fp32_err = float(np.abs(r32["logits"] - r64["logits"]).max())
        print(f"{c['name']} T={T}: transformers fp32 vs fp64 logits max abs {fp32_err:.2e}", flush=True)
    h5.close()


unknown = (ONLY or set()) - {c["name"] for c in CASES}
if unknown:
    sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
os.makedirs(os.path.join(OUT, "models"), exist_ok=True)
os.makedirs(os.path.join(OUT, "refs"), exist_ok=True)
for c in CASES:
    if ONLY is None or c["name"] in ONLY:
        run_case(c)
with open(os.path.join(OUT, "VERSIONS.txt"), "w") as f:
    f.write(f"transformers {transformers.__version__}\ntorch {torch.__version__}\nh5py {h5py.__version__}\n")
print("done", flush=True)
