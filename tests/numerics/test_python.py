"""The Python package (python/diffscope) against transformers, the CLI and NumPy:

* run_with_cache's maps, λ, GroupNorm input, residual stream and logits against transformers'
  golden references (tests/data/golden/refs; the tolerances of test_dump.py) and against the
  maps of `diffscope dump` on the same ids;
* patching: Python hooks that set λ or zero a head reproduce transformers' weight-surgery logits
  (lambda_override_logits, head_ablation_logits), as do the interventions; hooks that edit the
  residual stream or the attention output give the logits NumPy recomputes from the weights;
  patching the whole residual stream from a clean run gives the clean logits exactly;
* generate against transformers' greedy ids, tokenize against `diffscope tokenize`;
* the readers return what h5py reads from dump and compare files, and needle's JSON;
* bad input raises a Python exception that names the problem (never a crash).

Run by tests/cli/test_python.sh with Debian's python3 (h5py, NumPy), PYTHONPATH=python."""
import glob
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from common import DS, GOLDEN, exit_status, report

import diffscope as ds

TMP = tempfile.mkdtemp(prefix="ds-python-test-")
# test_python.sh preloads the sanitizer runtimes into this interpreter in the ASan pass; the
# diffscope binaries run from here do not need them.
os.environ.pop("LD_PRELOAD", None)
MAP_TOL, LOGIT_TOL, LAMBDA_TOL, RMS_REL_TOL = 1e-5, 1e-4, 1e-6, 1e-4
DEMO = "notebooks-data/models/diffllama"


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def safetensors(path):
    """{name: float32 array} of a float32 safetensors file, read with NumPy alone."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", "%s: %s" % (name, t["dtype"])
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], np.float32).reshape(t["shape"]).astype(np.float64)
    return out


def rmsnorm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def check_against_reference(label, model, ref):
    """Every probe the references cover, for each prompt length of one golden model."""
    p = []
    with ds.load(model) as m:
        L, diff = m.num_layers, m.is_diff
        for group in ref:
            g = ref[group]
            ids = g["input_ids"][:]
            logits, c = m.run_with_cache(ids)
            where = "%s:" % group
            if list(c) != m.probe_names:
                p.append("%s the cache of '*' holds %d points, probe_names lists %d (or another order)"
                         % (where, len(c), len(m.probe_names)))
            if maxdiff(logits, g["logits"]) > LOGIT_TOL:
                p.append("%s logits error %.2e" % (where, maxdiff(logits, g["logits"])))
            if maxdiff(c["hook_logits"], logits) != 0:
                p.append("%s hook_logits differs from the returned logits" % where)
            hs = g["hidden_states"][:]
            resid = [c["hook_embed"]] + [c["blocks.%d.hook_resid_post" % l] for l in range(L - 1)]
            resid.append(c["ln_final.hook_normalized"])
            e = max(maxdiff(a, b) for a, b in zip(resid, hs))
            if e > LOGIT_TOL:
                p.append("%s residual stream error %.2e" % (where, e))
            att = g["attentions"][:]
            if (m.is_diff, m.heads) != ("diff_maps" in g, att.shape[1] // 2 if "diff_maps" in g else att.shape[1]):
                p.append("is_diff %s, heads %d for maps of %d heads" % (m.is_diff, m.heads, att.shape[1]))
            for l in range(L):
                e = maxdiff(c["blocks.%d.attn.hook_pattern" % l], att[l])
                sm = np.exp(c["blocks.%d.attn.hook_scores" % l].astype(np.float64))
                e_sc = maxdiff(sm / sm.sum(-1, keepdims=True), att[l])
                if max(e, e_sc) > MAP_TOL:
                    p.append("%s layer %d pattern error %.2e, softmax(scores) %.2e" % (where, l, e, e_sc))
                if not diff:
                    continue
                Hd = att.shape[1] // 2
                e1 = maxdiff(c["blocks.%d.attn.hook_pattern1" % l], att[l, :Hd])
                e2 = maxdiff(c["blocks.%d.attn.hook_pattern2" % l], att[l, Hd:])
                ed = maxdiff(c["blocks.%d.attn.hook_diff" % l], g["diff_maps"][l])
                if max(e1, e2, ed) > MAP_TOL:
                    p.append("%s layer %d pattern1/2/diff errors %.2e %.2e %.2e" % (where, l, e1, e2, ed))
                el = maxdiff(c["blocks.%d.attn.hook_lambda" % l], g["lambda"][l])
                if el > LAMBDA_TOL * 4:  # the event carries float32 values
                    p.append("%s layer %d lambda error %.2e" % (where, l, el))
                gn = c["blocks.%d.attn.hook_groupnorm_in" % l].astype(np.float64)  # [H/2, T, 2hd]
                rms = np.sqrt((gn ** 2).mean(-1)).T                                 # [T, H/2]
                want = g["groupnorm_input_rms"][l]
                rel = float((np.abs(rms - want) / np.maximum(np.abs(want), 1e-12)).max())
                if rel > RMS_REL_TOL:
                    p.append("%s layer %d GroupNorm input RMS relative error %.2e" % (where, l, rel))
    report("run_with_cache_vs_transformers[%s]" % label, p)


def check_cache_vs_dump(model, ids):
    """run_with_cache's maps are the dump's maps (float32 dump, same ids)."""
    out = os.path.join(TMP, "cache-vs-dump.h5")
    r = subprocess.run([DS, "dump", model, "--ids", ",".join(map(str, ids)), "-o", out, "--force", "--what",
                        "all", "--logits", "--hidden"], capture_output=True, text=True)
    if r.returncode:
        report("run_with_cache_vs_dump[%s]" % os.path.basename(model), ["dump exit %d: %s" % (r.returncode, r.stderr.strip())])
        return
    p = []
    with ds.load(model) as m, h5py.File(out, "r") as f:
        names = ["blocks.*.attn.hook_pattern*", "blocks.*.attn.hook_scores", "blocks.*.attn.hook_pattern"]
        names += ["blocks.*.attn.hook_diff"] if m.is_diff else []
        logits, c = m.run_with_cache(ids, names=names)
        if set(c) != {"blocks.%d.attn.hook_%s" % (l, k) for l in range(m.num_layers)
                      for k in (("pattern", "pattern1", "pattern2", "diff", "scores") if m.is_diff else
                                ("pattern", "scores"))}:
            p.append("names %s selected %s" % (names, sorted(c)))
        for l in range(m.num_layers):
            a = f["layers/%d/attn" % l]
            pairs = ([("softmax1", "pattern1"), ("softmax2", "pattern2"), ("diff", "diff")] if m.is_diff
                     else [("softmax", "pattern")])
            for dname, hook in pairs:
                if not np.array_equal(a[dname][:], c["blocks.%d.attn.hook_%s" % (l, hook)]):
                    p.append("layer %d: cache %s differs from dump %s" % (l, hook, dname))
            sc, dsc = c["blocks.%d.attn.hook_scores" % l], a["scores"][:]
            if not np.array_equal(np.isinf(sc), np.isinf(dsc)) or maxdiff(sc[np.isfinite(sc)], dsc[np.isfinite(dsc)]):
                p.append("layer %d: cache scores differ from the dump's" % l)
        if not np.array_equal(logits, f["logits"][:]):
            p.append("logits differ from the dump's --logits")
    report("run_with_cache_vs_dump[%s]" % os.path.basename(model), p)


def zero_head1_layer0(x, hook):
    if hook.layer == 0:
        x[:, 1, :] = 0


def check_interventions(label, model, ref):
    """Hooks and interventions against transformers' weight surgery (tools/gen_reference.py)."""
    p = []
    lam = float(ref.attrs["lambda_override"])

    def set_lambda(x, hook):
        if hook.layer == 0:
            x[3] = lam
    with ds.load(model) as m:
        for group in ref:
            g = ref[group]
            ids = g["input_ids"][:]
            plain = m.run(ids)
            runs = {"hook lambda": (m.run(ids, hooks=[("blocks.*.attn.hook_lambda", set_lambda)]), "lambda_override_logits"),
                    "lambda_override": (m.run(ids, interventions=[ds.lambda_override(0, lam)]), "lambda_override_logits"),
                    "hook head ablation": (m.run(ids, hooks={"blocks.0.attn.hook_z": zero_head1_layer0}),
                                           "head_ablation_logits"),
                    "ablate_head": (m.run(ids, interventions=[ds.ablate_head(0, 1)]), "head_ablation_logits")}
            for what, (got, refname) in runs.items():
                e = maxdiff(got, g[refname])
                if e > LOGIT_TOL:
                    p.append("%s %s: error %.2e against %s" % (group, what, e, refname))
                # With one token both maps are 1 and GroupNorm cancels any λ (as test_golden.c).
                if (len(ids) > 1 or "lambda" not in what) and maxdiff(got, plain) < 1e-3:
                    p.append("%s %s did not change the logits" % (group, what))
    report("patching_vs_transformers[%s]" % label, p)


def check_patch_resid_and_attn_out(model):
    """Hooks that write the residual stream and the attention output of the last layer give
    the logits NumPy computes from the weights and the cached activations."""
    p = []
    w = safetensors(os.path.join(model, "model.safetensors"))
    with ds.load(model) as m:
        cfg, L = m.config, m.num_layers
        eps = cfg.get("rms_norm_eps", 1e-6)
        unembed = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        head = lambda x: rmsnorm(x, w["model.norm.weight"], eps) @ unembed.T
        ids = [3, 17, 5, 60, 2, 9, 44, 81]
        rng = np.random.default_rng(5)
        delta = rng.normal(0, 1, m.d_model).astype(np.float32)
        last = L - 1

        def add_delta(x, hook):
            return x + np.where(np.arange(len(x))[:, None] == 4, delta, 0)
        logits, c = m.run_with_cache(ids, names=["blocks.%d.hook_resid_post" % last],
                                     hooks=[("blocks.%d.hook_resid_post" % last, add_delta)])
        want = head(c["blocks.%d.hook_resid_post" % last].astype(np.float64))
        moved = maxdiff(logits, m.run(ids))
        if maxdiff(logits, want) > LOGIT_TOL or moved < 1e-3:
            p.append("resid_post patch: error %.2e against NumPy, moved %.2e" % (maxdiff(logits, want), moved))
        if maxdiff(c["blocks.%d.hook_resid_post" % last][4] - delta, m.run_with_cache(
                ids, names=["blocks.%d.hook_resid_post" % last])[1]["blocks.%d.hook_resid_post" % last][4]) > 1e-5:
            p.append("the cache does not hold the patched residual stream")

        def scale_attn(x, hook):
            x *= 0.5  # in place
        logits, c = m.run_with_cache(ids, names=["blocks.%d.hook_resid_pre" % last, "blocks.%d.hook_attn_out" % last],
                                     hooks=[("blocks.%d.hook_attn_out" % last, scale_attn)])
        pre = "model.layers.%d." % last
        x = c["blocks.%d.hook_resid_pre" % last].astype(np.float64) + c["blocks.%d.hook_attn_out" % last]
        y = rmsnorm(x, w[pre + "post_attention_layernorm.weight"], eps)
        gate, up = y @ w[pre + "mlp.gate_proj.weight"].T, y @ w[pre + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[pre + "mlp.down_proj.weight"].T
        e, moved = maxdiff(logits, head(x)), maxdiff(logits, m.run(ids))
        if e > LOGIT_TOL or moved < 1e-3:
            p.append("attn_out patch: error %.2e against NumPy, moved %.2e" % (e, moved))
    report("patch_resid_and_attn_out_vs_numpy", p)


def check_activation_patching(model):
    """Clean and corrupted prompts of the same length: patching the corrupted run's whole
    residual stream before layer 0 with the clean one reproduces the clean logits bit for bit;
    patching one position moves them; the cache of the clean run is not changed by patching."""
    p = []
    with ds.load(model) as m:
        clean, corrupt = [1, 132, 4, 110, 3, 4], [1, 132, 5, 110, 3, 4]
        clean_logits, cache = m.run_with_cache(clean, names=["blocks.0.hook_resid_pre"])
        src = cache["blocks.0.hook_resid_pre"]
        patched = m.run(corrupt, hooks=[("blocks.0.hook_resid_pre", lambda x, hook: src)])
        if not np.array_equal(patched, clean_logits):
            p.append("full patch differs from the clean run by %.2e" % maxdiff(patched, clean_logits))

        def one_position(x, hook):
            x[2] = src[2]
        one = m.run(corrupt, hooks=[("blocks.0.hook_resid_pre", one_position)])
        if maxdiff(one, m.run(corrupt)) < 1e-3:
            p.append("patching position 2 did not move the corrupted logits")
        if not np.array_equal(one[:2], m.run(corrupt)[:2]):
            p.append("patching position 2 changed the logits of earlier positions (causality)")
    report("activation_patching_invariants", p)


def check_generate_and_tokens(label, model, ref):
    p = []
    with ds.load(model) as m:
        for group in ref:
            ids = ref[group]["input_ids"][:]
            want = ref[group]["greedy"][len(ids):]
            got = m.generate(ids, max_new=len(want), ignore_eos=True)
            if got != list(want):
                p.append("%s: greedy %s, transformers %s" % (group, got, list(want)))
            seen = []
            m.generate(ids, max_new=len(want), ignore_eos=True, on_token=lambda i: seen.append(i) or len(seen) == 2)
            if seen != list(want[:2]):
                p.append("%s: on_token saw %s, stopping after 2" % (group, seen))
    report("generate_vs_transformers[%s]" % label, p)


def check_tokenizer():
    p = []
    text = "the k_apple v_42 of so ? k_apple"
    with ds.load(DEMO) as m:
        ids = m.tokenize(text)
        cli = subprocess.run([DS, "tokenize", DEMO, text], capture_output=True, text=True).stdout.strip()
        if ",".join(map(str, ids)) != cli:
            p.append("tokenize %s, diffscope tokenize %s" % (ids, cli))
        if m.detokenize(ids, skip_special=True).strip() != text:
            p.append("detokenize(tokenize(text)) = %r" % m.detokenize(ids, skip_special=True))
        if m.tokenize(text, special=False) != ids[1:]:
            p.append("special=False kept the BOS")
        if not np.array_equal(m.run(text), m.run(ids)):
            p.append("run(text) differs from run(tokenize(text))")
    report("tokenizer_matches_cli", p)


def check_readers(model, ids):
    """The readers against h5py on a dump with everything, a compare file and needle JSON."""
    p = []
    out = os.path.join(TMP, "reader.h5")
    subprocess.run([DS, "dump", model, "--ids", ",".join(map(str, ids)), "-o", out, "--force", "--what",
                    "all", "--logits", "--hidden", "--heads", "2,0",
                    "--dtype", "f16"], check=True, capture_output=True)
    with ds.read_dump(out) as d, h5py.File(out, "r") as f:
        if list(d.ids) != list(ids) or d.layers != list(f.attrs["layers"]) or d.arch != f.attrs["arch"]:
            p.append("ids, layers or arch differ")
        for name in f["layers/0/attn"]:
            full = d.attn(name)
            want = np.stack([f["layers/%d/attn/%s" % (l, name)][:] for l in d.layers])
            if full.dims != ("layer", "head", "query", "key") or full.dtype != want.dtype or not np.array_equal(full, want):
                p.append("attn(%r) differs from h5py" % name)
            heads = list(f["layers/1/attn/%s" % name].attrs["heads"])
            if list(full.coords["head"]) != heads:
                p.append("attn(%r) head coordinates %s, heads attribute %s" % (name, list(full.coords["head"]), heads))
            one = d.attn(name, layer=1, head=heads[-1])
            if one.dims != ("query", "key") or not np.array_equal(one, f["layers/1/attn/%s" % name][len(heads) - 1]):
                p.append("attn(%r, layer=1, head=%d) differs from h5py" % (name, heads[-1]))
            if not np.array_equal(full.sel(layer=1, head=heads[0]), f["layers/1/attn/%s" % name][0]):
                p.append("sel(layer=1, head=%d) of %r differs from h5py" % (heads[0], name))
        lam = d.lambdas()
        for i, k in enumerate(ds.readers.LAMBDA_PARAMS):
            if list(lam.values[:, i]) != [f["layers/%d/attn" % l].attrs[k] for l in d.layers]:
                p.append("lambdas()[:, %s] differs" % k)
        for kind in ("rms", "scale"):
            if not np.array_equal(d.groupnorm(kind), np.stack([f["layers/%d/groupnorm/%s" % (l, kind)][:] for l in d.layers])):
                p.append("groupnorm(%s) differs" % kind)
        cs = d.cancelled_share()
        if cs.dims != ("layer", "head", "query") or list(cs.coords["head"]) != [2, 0] or \
                not np.array_equal(cs, np.stack([f["layers/%d/cancelled_share" % l][:] for l in d.layers])):
            p.append("cancelled_share() differs from h5py")
        o = d.outliers("scores", 1)
        g = f["layers/1/outliers/scores"]
        if not np.array_equal(o["values"], g["values"][:]) or not np.array_equal(o["index"], g["index"][:]) or \
                o["median"] != g.attrs["median"]:
            p.append("outliers('scores', 1) differ")
        if not np.array_equal(d.logits, f["logits"][:]) or not np.array_equal(d.hidden_states, f["hidden_states"][:]):
            p.append("logits or hidden_states differ")
        if d.tokens != [t.decode() if isinstance(t, bytes) else t for t in f["tokens/text"][:]]:
            p.append("token texts differ")
        pv = d.provenance
        if shlex.split(pv.get("command", ""))[1:3] != ["dump", model] or pv != ds.read_provenance(out) or \
                pv.get("model_path") != [model] or not isinstance(pv.get("threads"), int):
            p.append("dump provenance %s" % pv)

    cmp_out = os.path.join(TMP, "compare.h5")
    subprocess.run([DS, "compare", DEMO, "--vs", "notebooks-data/models/llama", "--ids", "1,132,4,110,5,111,3,4",
                    "--span-tokens", "2:4", "-o", cmp_out, "--force"], check=True, capture_output=True)
    with ds.read_compare(cmp_out) as c, h5py.File(cmp_out, "r") as f:
        if c.query_pos != f.attrs["query_pos"] or c.span != (2, 4) or sorted(c.models) != ["A", "B"]:
            p.append("compare query, span or models differ")
        for name, mod in c.models.items():
            for mp in mod.maps:
                for field in ("answer_mass", "noise_mass", "sink_mass", "entropy", "sparsity"):
                    a, b = c.stat(field, mp, name), f["models/%s/%s/%s" % (name, mp, field)][:]
                    ph = c.stat(field, mp, name, per_head=True)
                    if not np.array_equal(a, b, equal_nan=True) or \
                            not np.array_equal(ph, f["models/%s/%s/per_head/%s" % (name, mp, field)][:], equal_nan=True):
                        p.append("compare %s %s %s differs" % (name, mp, field))
            if mod.outliers["scores"]["top1"] != f["models/%s/outliers/scores" % name].attrs["top1"]:
                p.append("compare %s outliers differ" % name)
        if not np.array_equal(c.models["A"].lambda_full, f["models/A/lambda_full"][:]):
            p.append("compare lambda_full differs")
        if c.provenance.get("model_path") != [DEMO, "notebooks-data/models/llama"]:
            p.append("compare provenance %s" % c.provenance)
        if not np.array_equal(c.models["A"].cancelled_share(), f["models/A/cancelled_share"][:]) or \
                not np.array_equal(c.models["A"].cancelled_share(per_head=True), f["models/A/cancelled_share_per_head"][:]):
            p.append("compare cancelled_share differs")

    nd_out = os.path.join(TMP, "needle.json")
    r = subprocess.run([DS, "needle", DEMO, "--task", "kv", "--trials", "2", "--depths", "0,50,100", "--json"],
                       capture_output=True, text=True, check=True)
    open(nd_out, "w").write(r.stdout)
    raw = json.loads(r.stdout)
    n = ds.read_needle(nd_out)
    if not n.provenance or n.provenance != raw["provenance"] or ds.read_provenance(nd_out) != raw["provenance"]:
        p.append("needle provenance %s" % n.provenance)
    a = n.models["A"]
    if n.depths != [0, 50, 100] or list(a.accuracy) != [x["accuracy"] for x in raw["models"][0]["depths"]]:
        p.append("needle depths or accuracy differ")
    if list(a.mass("noise_mass", "diff")) != [x["diff"]["noise_mass"] for x in raw["models"][0]["depths"]]:
        p.append("needle noise mass differs")
    if a.mass_per_layer("answer_mass", "softmax1").shape != (3, 4):
        p.append("needle mass_per_layer shape %s" % (a.mass_per_layer("answer_mass", "softmax1").shape,))
    if list(a.correct) != [x["correct"] for x in raw["models"][0]["depths"]] or \
            list(a.spread("noise_mass", "diff", "std")) != [x["diff"]["noise_mass_std"] for x in raw["models"][0]["depths"]]:
        p.append("needle correct or spread differs")
    # the same run written with -o reads back as the JSON does
    nd_h5 = os.path.join(TMP, "needle.h5")
    subprocess.run([DS, "needle", DEMO, "--task", "kv", "--trials", "2", "--depths", "0,50,100", "-o", nd_h5, "--force"],
                   capture_output=True, check=True)
    h = ds.read_needle(nd_h5).models["A"]
    if list(h.accuracy) != list(a.accuracy) or list(h.correct) != list(a.correct) or \
            not np.allclose(h.per_trial("answer_mass", "diff"), a.per_trial("answer_mass", "diff"), rtol=1e-14, atol=0) or \
            not np.allclose(h.mass_per_layer("noise_mass", "softmax1"), a.mass_per_layer("noise_mass", "softmax1"),
                            rtol=1e-14, atol=0):
        p.append("read_needle of the -o file differs from its JSON")
    report("readers_match_h5py", p)


def check_sweep_reader():
    """read_sweep against h5py on a small grid sweep of the demo pair."""
    if subprocess.run([DS, "sweep", "--help"], capture_output=True).returncode != 0:
        print("skip sweep_reader_matches_h5py: %s has no sweep command" % DS)
        return
    out = os.path.join(TMP, "sweep.h5")
    r = subprocess.run([DS, "sweep", "--model", DEMO, "--vs", "notebooks-data/models/llama", "--task", "kv",
                        "--lengths", "64", "--depths", "0:100:50", "--trials", "2", "-o", out, "--force",
                        "--dump-layers", "1,3", "--dump-heads", "0"],
                       capture_output=True, text=True)
    if r.returncode:
        report("sweep_reader_matches_h5py", ["sweep exit %d: %s" % (r.returncode, r.stderr.strip()[-300:])])
        return
    p = []
    with ds.read_sweep(out) as s, h5py.File(out, "r") as f:
        if sorted(s.models) != sorted(k for k in ("A", "B") if k in f) or len(s) != len(f["prompts/token_offsets"]) - 1:
            p.append("models or prompt count differ")
        for name, mod in s.models.items():
            def each(g, prefix=""):
                for k, v in g.items():
                    if not prefix and k == "maps":  # the kept maps: links to dump files, below
                        continue
                    if isinstance(v, h5py.Group):
                        each(v, prefix + k + "/")
                        continue
                    got = mod.get(prefix + k)
                    if not np.array_equal(got, v[:], equal_nan=True) or got.dims[0] != "prompt":
                        p.append("%s %s%s differs from h5py" % (name, prefix, k))
                    agg = "aggregates/%s/%s%s/mean" % (name, prefix, k)
                    if agg in f and not np.array_equal(mod.aggregate(prefix + k), f[agg][:], equal_nan=True):
                        p.append("aggregate %s differs from h5py" % agg)
            each(f[name])
            first = mod.maps[0]
            over = "aggregates/%s/%s/answer_mass/over_heads/median" % (name, first)
            if not np.array_equal(mod.aggregate(first + "/answer_mass", "median", over_heads=True), f[over][:],
                                  equal_nan=True):
                p.append("%s differs from h5py" % over)
            if mod.stat("answer_mass").dims != ("prompt", "layer", "head"):
                p.append("%s stat dims %s" % (name, mod.stat("answer_mass").dims))
        for name, mod in s.models.items():
            first = mod.maps[0] if name == "A" else "softmax"
            if mod.kept_layers != [1, 3] or mod.kept_heads != [0]:
                p.append("%s kept layers %s heads %s" % (name, mod.kept_layers, mod.kept_heads))
            with mod.dump(5) as d:
                x = d.attn(first, layer=3, head=0)
                if d.layers != [1, 3] or not np.array_equal(x, f["%s/maps/5/layers/3/attn/%s" % (name, first)][0]) or \
                        x.dims != ("query", "key") or x.shape[0] != f["prompts/tokens"][5]:
                    p.append("%s dump(5) differs from h5py through the link" % name)
        try:
            s.models["A"].dump(6)
            p.append("dump(6) of 6 prompts did not raise")
        except IndexError:
            pass
        acc = s.grid("acc", "A")
        if not np.array_equal(acc, f["aggregates/grid/A/acc"][:]) or list(acc.coords["depth"]) != [0, 50, 100]:
            p.append("grid acc or its depths differ")
        o = f["prompts/token_offsets"][:]
        if not np.array_equal(s.prompt_ids(1), f["prompts/token_ids"][o[1]:o[2]]):
            p.append("prompt_ids(1) differs")
        if s.meta(0) != json.loads(f["prompts/meta"][0]):
            p.append("meta(0) differs")
    report("sweep_reader_matches_h5py", p)


def check_plots(model, ids):
    """One-line plots: a map (2 axes) and a λ column (1 axis) draw without error."""
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        print("skip readers_plot: no matplotlib")
        return
    out = os.path.join(TMP, "plot.h5")
    subprocess.run([DS, "dump", model, "--ids", ",".join(map(str, ids)), "-o", out, "--force"], check=True,
                   capture_output=True)
    p = []
    with ds.read_dump(out) as d:
        ax = d.attn("diff", layer=1, head=0).plot()
        if len(ax.images) != 1 or ax.images[0].get_array().shape != (len(ids), len(ids)):
            p.append("map plot has no image of T x T")
        ax = d.lambdas().sel(param="lambda_full").plot()
        if len(ax.lines) != 1 or list(ax.lines[0].get_ydata()) != list(d.lambdas().values[:, 3]):
            p.append("lambda plot does not show lambda_full")
        try:
            d.attn("diff").plot()
            p.append("plotting 4 axes did not raise")
        except ValueError:
            pass
    report("readers_plot", p)


def raises(p, what, exc, fn, needle=None):
    try:
        fn()
    except exc as e:
        if needle and needle not in str(e):
            p.append("%s: message %r lacks %r" % (what, str(e), needle))
        return
    except BaseException as e:
        p.append("%s raised %s: %s, want %s" % (what, type(e).__name__, e, exc.__name__))
        return
    p.append("%s did not raise %s" % (what, exc.__name__))


def check_bad_inputs(model):
    p = []
    raises(p, "missing folder", ds.Error, lambda: ds.load("tests/no-such-model"), "tests/no-such-model")
    raises(p, "config not JSON", ds.Error, lambda: ds.load("tests/bad/config-not-json/model"), "config.json")
    raises(p, "missing tensor", ds.Error, lambda: ds.load("tests/bad/missing-tensor/model"))
    with ds.load(model) as m:
        raises(p, "id outside vocab", ds.Error, lambda: m.run([1, 2, 99999]), "99999")
        raises(p, "negative id", ds.Error, lambda: m.run([1, -4]), "-4")
        raises(p, "2-D ids", ValueError, lambda: m.run([[1, 2], [3, 4]]), "1-D")
        raises(p, "no ids", ValueError, lambda: m.run([]))
        raises(p, "float ids", TypeError, lambda: m.run([1.5, 2.0]))
        raises(p, "huge id", ValueError, lambda: m.run([1, 2 ** 40]))
        raises(p, "too long", ds.Error, lambda: m.run(list(range(1, 60)) * 2), "max_position_embeddings")
        raises(p, "no tokenizer", ds.Error, lambda: m.tokenize("hello"), "tokenizer.json")
        raises(p, "lambda layer", ds.Error, lambda: m.run([1, 2], interventions=[ds.lambda_override(7, 0.5)]), "layer 7")
        raises(p, "ablate head", ds.Error, lambda: m.run([1, 2], interventions=[ds.ablate_head(0, 9)]), "head 9")
        raises(p, "bad intervention", TypeError, lambda: m.run([1, 2], interventions=[("scale", 0, 1)]))
        raises(p, "bad hooks", TypeError, lambda: m.run([1, 2], hooks=["blocks.0.hook_resid_pre"]))
        raises(p, "misspelt name", ValueError, lambda: m.run_with_cache([1, 2], names=["blocks.0.hook_resid_psot"]),
               "blocks.0.hook_resid_psot")
        raises(p, "layer past the last", ValueError, lambda: m.run([1, 2], hooks={"blocks.9.hook_z": print}), "blocks.9")

        class Boom(Exception):
            pass

        def boom(x, hook):
            raise Boom("from the hook")
        raises(p, "raising hook", Boom, lambda: m.run([1, 2, 3], hooks=[("blocks.1.hook_resid_pre", boom)]), "from the hook")
        raises(p, "hook shape", ValueError, lambda: m.run([1, 2, 3], hooks=[("hook_embed", lambda x, h: np.zeros(3))]),
               "shape")
        if m.run([1, 2, 3]).shape != (3, m.vocab_size):
            p.append("the model does not run after a hook raised")
        raises(p, "max_new", ValueError, lambda: m.generate([1, 2], max_new=0))
        m.close()
        raises(p, "closed model", ds.Error, lambda: m.run([1, 2]), "closed")
    with ds.load("notebooks-data/models/llama") as llama:
        raises(p, "a Llama's hook_diff", ValueError, lambda: llama.run_with_cache([1, 2], names="blocks.*.attn.hook_diff"),
               "hook_diff")
        raises(p, "lambda of a llama", ds.Error, lambda: llama.run([1, 2], interventions=[ds.lambda_override(0, 0.5)]),
               "lambda")
    raises(p, "missing dump", ds.Error, lambda: ds.read_dump(os.path.join(TMP, "none.h5")), "none.h5")
    notdump = os.path.join(TMP, "notdump.h5")
    h5py.File(notdump, "w").attrs["format"] = "something-else"
    raises(p, "not a dump", ds.Error, lambda: ds.read_dump(notdump), "diffscope-dump")
    raises(p, "not a compare", ds.Error, lambda: ds.read_compare(notdump), "diffscope-compare")
    text = os.path.join(TMP, "text.h5")
    open(text, "w").write("not hdf5")
    raises(p, "not HDF5", ds.Error, lambda: ds.read_dump(text), "text.h5")
    raises(p, "needle not JSON", ds.Error, lambda: ds.read_needle(text), "text.h5")
    raises(p, "not a sweep", ds.Error, lambda: ds.read_sweep(notdump), "diffscope-sweep")
    with ds.read_dump("notebooks-data/dumps/llama.h5") as d:
        raises(p, "no such map", ds.Error, lambda: d.attn("diff"), "softmax")
        raises(p, "no such layer", ds.Error, lambda: d.attn("softmax", layer=9), "layer 9")
        raises(p, "no lambda", ds.Error, lambda: d.lambdas())
        raises(p, "no logits", ds.Error, lambda: d.logits, "logits")
    r = subprocess.run([sys.executable, "-c", "import diffscope; diffscope.load('x')"], capture_output=True, text=True,
                       env=dict(os.environ, DIFFSCOPE_LIB=os.path.join(TMP, "missing.so")))
    if r.returncode != 1 or "diffscope.Error: cannot load libdiffscope.so" not in r.stderr or "DIFFSCOPE_LIB" not in r.stderr:
        p.append("a missing library: exit %d, %s" % (r.returncode, r.stderr.strip().splitlines()[-1:]))
    report("bad_input_raises", p)


def main():
    for path in sorted(glob.glob(GOLDEN + "/refs/*.h5")):
        label = os.path.basename(path)[:-3]
        with h5py.File(path, "r") as ref:
            model = GOLDEN + "/models/" + label
            check_against_reference(label, model, ref)
            if "lambda_override_logits" in ref[next(iter(ref))]:
                check_interventions(label, model, ref)
            check_generate_and_tokens(label, model, ref)
    ids = [3, 17, 5, 60, 2, 9, 44, 81, 7, 30, 12, 55]
    check_cache_vs_dump(GOLDEN + "/models/diff-sharded-deep-f32", ids)
    check_cache_vs_dump(GOLDEN + "/models/llama-mha-bias-f32", ids)
    check_patch_resid_and_attn_out(GOLDEN + "/models/diff-mha-f32")
    check_activation_patching(DEMO)
    check_tokenizer()
    check_readers(GOLDEN + "/models/diff-sharded-deep-f32", ids)
    check_sweep_reader()
    check_plots(GOLDEN + "/models/diff-mha-f32", ids)
    check_bad_inputs(GOLDEN + "/models/diff-mha-f32")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
