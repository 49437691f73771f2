#!/usr/bin/env python3
"""Reference results of `diffscope patch`, computed by Hugging Face transformers in float64.

For golden checkpoints (tests/data/golden/models, made by tools/gen_reference.py; they are read,
never changed) this runs activation patching with PyTorch hooks on transformers' own forward pass
and writes OUT/<case>.h5 (committed in tests/data/golden/patch):

    attrs  transformers_version, torch_version, case, answer_id, wrong_id,
           corrupt_lambda_layer, corrupt_lambda_value (-1 and 0: none)
    clean_ids, corrupted_ids          [T] int32
    logit_diff/, logprob/             one group per metric, each with
        clean, corrupted              scalars: the unpatched runs
        resid_pre      [L, T]         hidden_states entering layer l at one position, clean into corrupted
        resid_pre_all  [L]            the same at every position
        head_out       [L, heads]     one head's columns of o_proj's input (DiffLlama: a differential
                                      head's 2*head_dim columns, after GroupNorm)
        softmax1, softmax2 [L, H/2]   DiffLlama: the softmax map of sub-head i (first map) or i + H/2
                                      (second map) of differential head i, clean into corrupted
        lambda         [L]            DiffLlama: the lambda parameters of layer l taken from the clean
                                      model (the corrupted model has layer corrupt_lambda_layer's lambda
                                      set to corrupt_lambda_value by weight surgery)

How each patch is made, without diffscope:
  * resid_pre: a forward pre-hook on decoder layer l replaces its hidden_states input;
  * head_out: a forward pre-hook on self_attn.o_proj replaces the head's input columns;
  * softmax maps: transformers' eager attention passes the softmax output through
    nn.functional.dropout before multiplying by V; that call is intercepted and the map replaced.
    The script checks the interception first: one call per layer, maps equal to
    output_attentions, and a patch of the clean run with itself gives the clean logits;
  * lambda: weight surgery (lambda_q1 = [ln(v - lambda_init + 1), 0, ...], lambda_k1 = [1, 0, ...],
    lambda_q2 = lambda_k2 = 0), as tools/gen_reference.py does.

The clean prompt is random ids; the corrupted one changes positions 2 and T-2. The answer is the
clean run's top-1 next token, the wrong answer the corrupted run's (its second when they agree).

Usage (torch, transformers 5.x, h5py):  python3 tools/gen_patch_reference.py MODELS_DIR OUT_DIR
"""
import copy
import math
import os
import sys

import h5py
import numpy as np

CASES = ["diff-mha-f32", "diff-gqa-tied-bf16", "diff-sharded-deep-f32", "diff-headdim-bias-llama3-f16",
         "llama-mha-bias-f32", "llama-gqa-headdim-tied-bf16"]
T = 7
CORRUPT_LAMBDA = (0, -0.5)  # DiffLlama: layer, value of the corrupted run
SEED = 5


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_patch_reference.py MODELS_DIR OUT_DIR")
    import torch
    import transformers
    torch.set_num_threads(8)
    models, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    failed = 0
    for name in CASES:
        try:
            run_case(torch, transformers, os.path.join(models, name), name, os.path.join(out, name + ".h5"))
        except Exception as e:  # one case's failure must not cost the others' results
            import traceback
            traceback.print_exc()
            print(f"{name}: FAILED {e}", flush=True)
            failed += 1
    sys.exit(1 if failed else 0)


class Interceptor:
    """Wraps torch.nn.functional.FNAME while active ("dropout", which transformers' eager
    attention applies to the softmax maps before multiplying by V; or "softmax" itself when a
    version does not). LAYER is set by a pre-hook on each attention module; PATCH maps a layer
    to (sub-head, clean map [T, T]); CAPTURE collects every layer's maps."""

    def __init__(self, torch):
        self.torch = torch
        self.fname = "dropout"
        self.layer = None
        self.patch = {}
        self.capture = None
        self.calls = 0

    def __call__(self, x, *args, **kwargs):
        y = self.orig(x, *args, **kwargs)
        if self.layer is None or y.dim() != 4:
            return y
        self.calls += 1
        if self.capture is not None:
            self.capture[self.layer] = y[0].detach().clone()
        if self.layer in self.patch:
            h, m = self.patch[self.layer]
            y = y.clone()
            y[0, h] = m.to(y.dtype)
        return y

    def __enter__(self):
        self.orig = getattr(self.torch.nn.functional, self.fname)
        setattr(self.torch.nn.functional, self.fname, self)
        self.calls = 0
        return self

    def __exit__(self, *exc):
        setattr(self.torch.nn.functional, self.fname, self.orig)


def load(torch, cdir, diff):
    from transformers import DiffLlamaForCausalLM, LlamaForCausalLM
    Model = DiffLlamaForCausalLM if diff else LlamaForCausalLM
    m32 = Model.from_pretrained(cdir, dtype=torch.float32, attn_implementation="eager").eval()
    return copy.deepcopy(m32).to(torch.float64).eval()


def set_lambda(torch, attn, value):
    with torch.no_grad():
        for p in (attn.lambda_q1, attn.lambda_k1, attn.lambda_q2, attn.lambda_k2):
            p.zero_()
        attn.lambda_q1[0] = math.log(value - float(attn.lambda_init) + 1.0)
        attn.lambda_k1[0] = 1.0


def run_case(torch, transformers, cdir, name, path):
    import json
    cfg = json.load(open(os.path.join(cdir, "config.json")))
    diff = cfg["model_type"] == "diffllama"
    clean_model = load(torch, cdir, diff)
    V, L, H = cfg["vocab_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    heads = H // 2 if diff else H
    width = H * hd // heads
    corrupt_model = copy.deepcopy(clean_model)
    if diff:
        set_lambda(torch, corrupt_model.model.layers[CORRUPT_LAMBDA[0]].self_attn, CORRUPT_LAMBDA[1])
    icp = Interceptor(torch)
    for model in (clean_model, corrupt_model):
        for li, layer in enumerate(model.model.layers):
            layer.self_attn.register_forward_pre_hook(lambda mod, a, li=li: setattr(icp, "layer", li))

    g = torch.Generator().manual_seed(SEED + sum(map(ord, name)))
    clean = torch.randint(0, V, (1, T), generator=g)
    corrupted = clean.clone()
    for pos in (2, T - 2):
        while corrupted[0, pos] == clean[0, pos]:
            corrupted[0, pos] = int(torch.randint(0, V, (1,), generator=g))

    def logits(model, ids, pre_hooks=()):
        handles = [mod.register_forward_pre_hook(fn, with_kwargs=True) for mod, fn in pre_hooks]
        try:
            with torch.no_grad(), icp:
                out = model(ids, use_cache=False, output_attentions=False).logits[0, -1].double().numpy()
        finally:
            for h in handles:
                h.remove()
        icp.layer = None
        return out

    # Clean activations: layer inputs, o_proj inputs, softmax maps.
    resid, zin = {}, {}

    def grab(store, li):
        def fn(mod, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            store[li] = x[0].detach().clone()
        return fn

    hooks = []
    for li, layer in enumerate(clean_model.model.layers):
        hooks += [(layer, grab(resid, li)), (layer.self_attn.o_proj, grab(zin, li))]
    for fname in ("dropout", "softmax"):
        icp.fname, icp.capture = fname, {}
        clean_logits = logits(clean_model, clean, hooks)
        maps, icp.capture = icp.capture, None
        try:
            check_interception(torch, icp, clean_model, clean, clean_logits, maps, L, diff, logits)
            break
        except RuntimeError as e:
            print(f"{name}: intercepting {fname}: {e}", flush=True)
    else:
        raise RuntimeError("no way found to patch the softmax maps")
    print(f"{name}: softmax maps patched through torch.nn.functional.{icp.fname}", flush=True)
    corrupted_logits = logits(corrupt_model, corrupted)

    answer = int(np.argmax(clean_logits))
    order = np.argsort(-corrupted_logits, kind="stable")
    wrong = int(order[0]) if int(order[0]) != answer else int(order[1])

    def replace(fn_new):
        """A pre-hook that changes the first input (the hidden states) with FN_NEW(x)."""
        def fn(mod, args, kwargs):
            if args:
                return (fn_new(args[0]),) + tuple(args[1:]), kwargs
            kwargs = dict(kwargs)
            kwargs["hidden_states"] = fn_new(kwargs["hidden_states"])
            return args, kwargs
        return fn

    def set_rows(src, pos):
        def f(x):
            x = x.clone()
            if pos is None:
                x[0] = src
            else:
                x[0, pos] = src[pos]
            return x
        return f

    def set_cols(src, h):
        def f(x):
            x = x.clone()
            x[0, :, h * width:(h + 1) * width] = src[:, h * width:(h + 1) * width]
            return x
        return f

    tables = {"resid_pre": np.zeros((L, T, V)), "resid_pre_all": np.zeros((L, 1, V)),
              "head_out": np.zeros((L, heads, V))}
    layers = corrupt_model.model.layers
    for l in range(L):
        for p in range(T):
            tables["resid_pre"][l, p] = logits(corrupt_model, corrupted, [(layers[l], replace(set_rows(resid[l], p)))])
        tables["resid_pre_all"][l, 0] = logits(corrupt_model, corrupted, [(layers[l], replace(set_rows(resid[l], None)))])
        for h in range(heads):
            tables["head_out"][l, h] = logits(corrupt_model, corrupted,
                                              [(layers[l].self_attn.o_proj, replace(set_cols(zin[l], h)))])
    if diff:
        for which, off in (("softmax1", 0), ("softmax2", heads)):
            tables[which] = np.zeros((L, heads, V))
            for l in range(L):
                for h in range(heads):
                    icp.patch = {l: (h + off, maps[l][h + off])}
                    tables[which][l, h] = logits(corrupt_model, corrupted)
                    icp.patch = {}
        tables["lambda"] = np.zeros((L, 1, V))
        for l in range(L):
            m = copy.deepcopy(corrupt_model)
            src = clean_model.model.layers[l].self_attn
            dst = m.model.layers[l].self_attn
            with torch.no_grad():
                for n in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                    getattr(dst, n).copy_(getattr(src, n))
            for li, layer in enumerate(m.model.layers):
                layer.self_attn.register_forward_pre_hook(lambda mod, a, li=li: setattr(icp, "layer", li))
            tables["lambda"][l, 0] = logits(m, corrupted)

    metrics = {"logit_diff": lambda lg: lg[..., answer] - lg[..., wrong],
               "logprob": lambda lg: lg[..., answer] - logsumexp(lg)}
    with h5py.File(path, "w") as f:
        f.attrs["transformers_version"] = str(transformers.__version__)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["case"] = name
        f.attrs["answer_id"] = answer
        f.attrs["wrong_id"] = wrong
        f.attrs["corrupt_lambda_layer"] = CORRUPT_LAMBDA[0] if diff else -1
        f.attrs["corrupt_lambda_value"] = CORRUPT_LAMBDA[1] if diff else 0.0
        f["clean_ids"] = clean[0].numpy().astype(np.int32)
        f["corrupted_ids"] = corrupted[0].numpy().astype(np.int32)
        for mname, fn in metrics.items():
            g = f.create_group(mname)
            g["clean"] = fn(clean_logits)
            g["corrupted"] = fn(corrupted_logits)
            for tname, lg in tables.items():
                v = fn(lg)
                g[tname] = v[:, 0] if tname in ("resid_pre_all", "lambda") else v
    cl, co = metrics["logit_diff"](clean_logits), metrics["logit_diff"](corrupted_logits)
    print(f"{name}: answer {answer} wrong {wrong}, logit_diff clean {cl:.4f} corrupted {co:.4f}", flush=True)


def logsumexp(lg):
    m = lg.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(lg - m).sum(axis=-1, keepdims=True)))[..., 0]


def check_interception(torch, icp, model, ids, clean_logits, maps, L, diff, logits):
    """The softmax maps must pass through the intercepted call once per layer, equal to
    output_attentions, and patching a clean map into the clean run must change nothing."""
    if not diff:
        return
    if sorted(maps) != list(range(L)):
        raise RuntimeError(f"intercepted the maps of layers {sorted(maps)}, expected 0..{L - 1}")
    with torch.no_grad():
        att = model(ids, use_cache=False, output_attentions=True).attentions
    icp.layer = None
    for l in range(L):
        err = float((att[l][0].double() - maps[l].double()).abs().max())
        if err > 0:
            raise RuntimeError(f"layer {l}: intercepted maps differ from output_attentions by {err}")
    icp.patch = {L - 1: (0, maps[L - 1][0])}
    same = logits(model, ids)
    icp.patch = {}
    if np.abs(same - clean_logits).max() != 0:
        raise RuntimeError("patching a clean map into the clean run changed the logits")
    # and a different map must change them: the interception acts on the forward pass
    icp.patch = {L - 1: (0, torch.roll(maps[L - 1][0], 1, dims=0))}
    moved = logits(model, ids)
    icp.patch = {}
    if np.abs(moved - clean_logits).max() == 0:
        raise RuntimeError("a changed map did not change the logits: the interception misses the forward pass")


if __name__ == "__main__":
    main()
