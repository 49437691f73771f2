#!/usr/bin/env python3
"""What transformers computes in bfloat16 on the existing golden checkpoints, for the bf16
compute mode's error budget (tests/numerics/test_bf16.py, docs/numerics.md "bf16 compute").

For each checkpoint of tests/data/golden/models (and of ../shared/reference/transformers/models
when present) and each prompt of its existing reference file (the same input_ids), the model
is loaded as a user runs it in bf16, from_pretrained(dtype=torch.bfloat16, eager attention),
and this script records:

    OUT/<label>.h5, per prompt group T{T}:
        logits               [T, V]        bf16 forward, stored float32
        attentions           [L, H, T, T]  output_attentions
        diff_maps            [L, H/2, T, T] A1 - lambda_full * A2 with transformers' bf16
                                            lambda_full (DiffLlama)
        groupnorm_input_rms  [L, T, H/2]   RMS of the GroupNorm input (DiffLlama)
        greedy               [T + 12]      greedy decoding with the KV cache, in bf16
        greedy_gap           [12]          top-1 minus top-2 logit at each generated step
        greedy_top           [12]          the top-1 logit at each step

The checkpoints and the float64 references are not touched; labels are the golden case names,
and "shared-<case>" for ../shared. A DiffLlama checkpoint with an odd key/value head count
(transformers 5 refuses it) runs on its MHA expansion, as tools/gen_reference.py does.

Usage (torch, transformers 5.x, h5py): python3 tools/gen_bf16_reference.py GOLDEN SHARED OUT
"""
import glob
import json
import os
import sys

import h5py
import numpy as np
import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

NEW_TOKENS = 12
torch.set_num_threads(8)


def load_bf16(mdir):
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if cfg["model_type"] != "diffllama" or KV % 2 == 0:
        return AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    # odd KV: repeat each k/v head H/KV times (what repeat_kv does), then load as MHA
    c = AutoConfig.from_pretrained(mdir)
    c.num_key_value_heads = H
    # built under bf16 as from_pretrained(dtype=bf16) builds it (RoPE's inv_freq stays float32)
    torch.set_default_dtype(torch.bfloat16)
    model = AutoModelForCausalLM.from_config(c, attn_implementation="eager").eval()
    torch.set_default_dtype(torch.float32)
    sd = {}
    for f in glob.glob(os.path.join(mdir, "*.safetensors")):
        sd.update(load_file(f))
    hd = c.head_dim
    for k in list(sd):
        if k.endswith(("k_proj.weight", "v_proj.weight")):
            sd[k] = sd[k].view(KV, hd, -1).repeat_interleave(H // KV, dim=0).reshape(H * hd, -1)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in sd.items()}, strict=False)
    if c.tie_word_embeddings:
        model.tie_weights()
    return model


def lambda_full_bf16(attn):
    """lambda_full as DiffLlamaAttention.forward computes it for bf16 activations."""
    l1 = torch.exp(torch.sum(attn.lambda_q1 * attn.lambda_k1, dim=-1, dtype=torch.float32)).to(torch.bfloat16)
    l2 = torch.exp(torch.sum(attn.lambda_q2 * attn.lambda_k2, dim=-1, dtype=torch.float32)).to(torch.bfloat16)
    return float(l1 - l2 + attn.lambda_init)


def run(model, ids):
    diff = model.config.model_type == "diffllama"
    captured = {}  # layer -> the GroupNorm's input [T, H/2, 2hd]
    hooks = [layer.self_attn.groupnorm.register_forward_hook(
        lambda mod, inp, out, li=li: captured.__setitem__(li, inp[0][0]))
        for li, layer in enumerate(model.model.layers)] if diff else []
    with torch.no_grad():
        o = model(ids, output_attentions=True, use_cache=False)
    for h in hooks:
        h.remove()
    rms = {li: torch.sqrt((x.double() ** 2).mean(-1)) for li, x in captured.items()}
    att = torch.stack([a[0] for a in o.attentions]).float().numpy()
    res = {"logits": o.logits[0].float().numpy(), "attentions": att}
    if diff:
        Hh = att.shape[1] // 2
        lam = np.array([lambda_full_bf16(layer.self_attn) for layer in model.model.layers], dtype=np.float32)
        res["diff_maps"] = att[:, :Hh] - lam[:, None, None, None] * att[:, Hh:]
        res["groupnorm_input_rms"] = torch.stack([rms[i] for i in range(len(rms))]).float().numpy()
    with torch.no_grad():
        g = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                           use_cache=True, pad_token_id=0, eos_token_id=None, output_scores=True,
                           return_dict_in_generate=True)
    top2 = torch.stack([s[0].float().topk(2).values for s in g.scores]).numpy()
    res["greedy"] = g.sequences[0].numpy().astype(np.int32)
    res["greedy_gap"] = (top2[:, 0] - top2[:, 1]).astype(np.float32)
    res["greedy_top"] = top2[:, 0].astype(np.float32)
    return res


def one(label, mdir, ref_path, out_dir):
    model = load_bf16(mdir)
    ref = h5py.File(ref_path, "r")
    with h5py.File(os.path.join(out_dir, label + ".h5"), "w") as h5:
        h5.attrs["transformers_version"] = str(transformers.__version__)
        h5.attrs["torch_version"] = str(torch.__version__)
        h5.attrs["how"] = "from_pretrained(dtype=torch.bfloat16, attn_implementation='eager'); tools/gen_bf16_reference.py"
        for group in ref:
            ids = torch.from_numpy(ref[group]["input_ids"][:].astype(np.int64))[None]
            r = run(model, ids)
            g = h5.create_group(group)
            for k, v in r.items():
                g.create_dataset(k, data=v, compression="gzip", compression_opts=9, shuffle=True)
            print(label, group, "done", flush=True)


golden, shared, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
for ref_path in sorted(glob.glob(os.path.join(golden, "refs", "*.h5"))):
    case = os.path.basename(ref_path)[:-3]
    one(case, os.path.join(golden, "models", case), ref_path, out)
for ref_path in sorted(glob.glob(os.path.join(shared, "reference/transformers/refs", "*.h5"))):
    case = os.path.basename(ref_path)[:-3]
    one("shared-" + case, os.path.join(shared, "reference/transformers/models", case), ref_path, out)
print("done", flush=True)
