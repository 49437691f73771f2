"""`diffscope lens` against NumPy and transformers:

* NumPy recomputes, in float64, from a `diffscope dump` of the same ids (hidden states, the
  softmax maps of row P, λ) and the safetensors weights, each layer's attention output at P head
  by head (both paths of a differential head), the MLP output and the final residual; from
  them the logit lens of every stream and the direct logit attribution (DLA) with the final
  norm's scale frozen. Every figure of `lens --json` must match (LENS_TOL, DLA_TOL);
* exact invariants: the contributions plus the remainder are the model's logit; the softmax1 and
  λ·softmax2 paths add up to the head; the lens of the last stream is the model's logits
  (`diffscope logits`, and transformers' golden references within their tolerance); the
  recomputed residual stream matches the dumped hidden states;
* the HDF5 file holds the JSON's numbers with labelled axes and provenance attributes;
* bad input (position out of range, unknown token, too many tokens) is one line, exit 2.

Golden models (DiffLlama and Llama, with and without biases, GQA and odd KV), and the real
trained stories260K of ../shared when present."""
import json
import os
import shutil
import struct
import tempfile

import sys

import h5py
import numpy as np

from common import DS, GOLDEN, SHARED, exit_status, report, run

sys.path.insert(0, "python")
import diffscope  # noqa: E402  (the readers need h5py and NumPy only)

TMP = tempfile.mkdtemp(prefix="ds-lens-test-")
# float32 forward pass against a float64 recomputation from float32 dumped states
LENS_TOL, DLA_TOL, RESID_TOL, REF_TOL = 1e-4, 1e-4, 1e-4, 1e-4
# what float32 rounding of the forward pass leaves between exact sums
SUM_TOL = 1e-5
measured = {"lens": 0.0, "dla": 0.0, "remainder": 0.0, "paths": 0.0}


def read_safetensors(model):
    """{name: float64 array} of a model folder, F32/BF16/F16, one file or shards."""
    index = os.path.join(model, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for fn in files:
        raw = open(os.path.join(model, fn), "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        for name, t in json.loads(raw[8:8 + n]).items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            buf = raw[8 + n + b:8 + n + e]
            if t["dtype"] == "BF16":
                a = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                a = np.frombuffer(buf, {"F32": np.float32, "F16": np.float16}[t["dtype"]])
            out[name] = a.reshape(t["shape"]).astype(np.float64)
    return out


def rmsnorm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


class Model:
    def __init__(self, path):
        self.cfg = json.load(open(os.path.join(path, "config.json")))
        self.W = read_safetensors(path)
        c = self.cfg
        self.L, self.H, self.D = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"]
        self.KV = c.get("num_key_value_heads", self.H)
        self.hd = c.get("head_dim") or self.D // self.H
        self.eps = c["rms_norm_eps"]
        self.diff = c["model_type"] == "diffllama"
        self.Hm = self.H // 2 if self.diff else self.H
        self.U = self.W.get("lm_head.weight", self.W["model.embed_tokens.weight"])

    def w(self, l, name):
        return self.W.get("model.layers.%d.%s" % (l, name))

    def linear(self, x, l, name):
        b = self.w(l, name + ".bias")
        y = x @ self.w(l, name + ".weight").T
        return y if b is None else y + b


def recompute(m, dump, P, ablate=()):
    """Per layer at position P, from the dump: head outputs [Hm, D] (and the two paths), o_proj's
    bias, the MLP output; and the residual streams (embeddings, after each layer)."""
    hs = dump["hidden_states"][:].astype(np.float64)
    nrep, x = m.H // m.KV, hs[0][:P + 1]
    streams, layers = [x[P]], []
    for l in range(m.L):
        attn = dump["layers/%d/attn" % l]
        v = m.linear(rmsnorm(x, m.w(l, "input_layernorm.weight"), m.eps), l, "self_attn.v_proj").reshape(P + 1, m.KV, m.hd)
        Wo = m.w(l, "self_attn.o_proj.weight")
        zw = m.H * m.hd // m.Hm
        heads, p1, p2 = [], [], []
        for h in range(m.Hm):
            if m.diff:
                lam, lam_init = attn.attrs["lambda_full"], 0.8 - 0.6 * np.exp(-0.3 * l)
                V = np.concatenate([v[:, h // nrep], v[:, (h + m.Hm) // nrep]], axis=1)
                a1 = attn["softmax1"][h, P, :P + 1] @ V
                a2 = attn["softmax2"][h, P, :P + 1] @ V
                g = (1 - lam_init) / np.sqrt(((a1 - lam * a2) ** 2).mean() + m.eps)
                z, z1, z2 = g * (a1 - lam * a2), g * a1, -g * lam * a2
            else:
                z = attn["softmax"][h, P, :P + 1] @ v[:, h // nrep]
            if (l, h) in ablate:
                z = z1 = z2 = np.zeros(zw)
            heads.append(Wo[:, h * zw:(h + 1) * zw] @ z)
            if m.diff:
                p1.append(Wo[:, h * zw:(h + 1) * zw] @ z1)
                p2.append(Wo[:, h * zw:(h + 1) * zw] @ z2)
        bo = m.w(l, "self_attn.o_proj.bias")
        bias = np.zeros(m.D) if bo is None else bo
        mid = x[P] + sum(heads) + bias
        y = rmsnorm(mid, m.w(l, "post_attention_layernorm.weight"), m.eps)
        gate, up = m.linear(y, l, "mlp.gate_proj"), m.linear(y, l, "mlp.up_proj")
        mlp = m.linear(gate / (1 + np.exp(-gate)) * up, l, "mlp.down_proj")
        streams.append(mid + mlp)
        layers.append({"heads": heads, "p1": p1, "p2": p2, "bias": bias, "mlp": mlp})
        if l + 1 < m.L:
            x = hs[l + 1][:P + 1]
    return streams, layers


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def check_lens(m, js, streams, problems):
    wn = m.W["model.norm.weight"]
    for r, s in enumerate(streams):
        logits = m.U @ rmsnorm(s, wn, m.eps)
        e = logits - logits.max()
        prob = np.exp(e) / np.exp(e).sum()
        row, t = js["lens"][r], js["target"]["id"]
        ids = [x["id"] for x in row["top"]]
        err = max(maxerr([x["logit"] for x in row["top"]], logits[ids]), maxerr([x["prob"] for x in row["top"]], prob[ids]),
                  abs(row["target_logit"] - logits[t]), abs(row["target_prob"] - prob[t]))
        measured["lens"] = max(measured["lens"], err)
        if err > LENS_TOL:
            problems.append("lens row %d: error %.2e" % (r, err))
        order = np.argsort(-logits, kind="stable")[:len(ids)]
        if list(order) != ids and maxerr(logits[order], logits[ids]) > LENS_TOL:
            problems.append("lens row %d: top ids %s, NumPy %s" % (r, ids, list(order)))
        rank = 1 + int((logits > logits[t] + LENS_TOL).sum())
        if not rank <= row["target_rank"] <= 1 + int((logits > logits[t] - LENS_TOL).sum()):
            problems.append("lens row %d: target rank %d, NumPy %d" % (r, row["target_rank"], rank))
        if js["vs"] and abs(row["vs_logit"] - logits[js["vs"]["id"]]) > LENS_TOL:
            problems.append("lens row %d: vs logit error" % r)


def check_dla(m, js, streams, layers, problems):
    d, t = js["dla"], js["target"]["id"]
    direction = m.U[t] - (m.U[js["vs"]["id"]] if js["vs"] else 0)
    final = streams[-1]
    u = direction * m.W["model.norm.weight"] / np.sqrt((final * final).mean() + m.eps)
    want = {"embed": u @ streams[0], "heads": [[u @ c for c in ly["heads"]] for ly in layers],
            "attn_bias": [u @ ly["bias"] for ly in layers], "mlp": [u @ ly["mlp"] for ly in layers],
            "scale": 1 / np.sqrt((final * final).mean() + m.eps), "logit": u @ final}
    if m.diff:
        want["softmax1_path"] = [[u @ c for c in ly["p1"]] for ly in layers]
        want["softmax2_path"] = [[u @ c for c in ly["p2"]] for ly in layers]
    for k, v in want.items():
        e = maxerr(d[k], v)
        measured["dla"] = max(measured["dla"], e)
        if e > DLA_TOL * max(1.0, float(np.max(np.abs(v)))):
            problems.append("dla %s: error %.2e" % (k, e))
    parts = d["embed"] + np.sum(d["heads"]) + np.sum(d["attn_bias"]) + np.sum(d["mlp"])
    if abs(parts - d["total"]) > 1e-9 * max(1, abs(parts)) or abs(d["total"] + d["remainder"] - d["logit"]) > 1e-9:
        problems.append("dla: total %.9g / remainder %.3g do not add up to logit %.9g" % (d["total"], d["remainder"], d["logit"]))
    scale = max(1.0, np.abs(d["heads"]).max(), abs(d["embed"]), np.abs(d["mlp"]).max())
    measured["remainder"] = max(measured["remainder"], abs(d["remainder"]))
    if abs(d["remainder"]) > SUM_TOL * scale:
        problems.append("dla: remainder %.3g past %.1e" % (d["remainder"], SUM_TOL * scale))
    if m.diff:
        e = maxerr(np.add(d["softmax1_path"], d["softmax2_path"]), d["heads"])
        measured["paths"] = max(measured["paths"], e)
        if e > SUM_TOL * scale:
            problems.append("dla: softmax1 + softmax2 paths differ from the head by %.2e" % e)


def check_model_logits(model, ids, P, js, ref_logits, problems, extra=()):
    """Lens of the last stream = the model's logits (diffscope logits; transformers' reference)."""
    out = os.path.join(TMP, "logits.h5")
    r = run("logits", model, "--ids", ",".join(map(str, ids[:P + 1])), "-o", out, "--force", *extra)
    if r.returncode:
        return problems.append("logits: " + r.stderr.strip())
    with h5py.File(out) as f:
        logits = f["logits"][P]
    last, t = js["lens"][-1], js["target"]["id"]
    checks = [(logits, "diffscope logits", LENS_TOL)]
    if ref_logits is not None:
        checks.append((ref_logits, "transformers", REF_TOL))
    for want, what, tol in checks:
        e = max(abs(last["target_logit"] - want[t]), maxerr([x["logit"] for x in last["top"]], want[[x["id"] for x in last["top"]]]))
        if e > tol:
            problems.append("last lens row against %s: error %.2e" % (what, e))
    vs = js["vs"]["id"] if js["vs"] else None
    model_logit = logits[t] - (logits[vs] if vs is not None else 0)
    if abs(js["dla"]["logit"] - model_logit) > SUM_TOL * max(1, abs(model_logit)):
        problems.append("dla logit %.7g, diffscope logits %.7g" % (js["dla"]["logit"], model_logit))


def check_h5(path, js, problems):
    with h5py.File(path) as f:
        for k in ("format", "format_version", "arch", "config", "prompt"):
            if k not in f.attrs:
                problems.append("h5: no root attribute %s" % k)
        if "provenance" not in f:  # its fields: tests/numerics/test_provenance.py
            problems.append("h5: no /provenance")
        if f.attrs.get("format") != "diffscope-lens" or f.attrs["position"] != js["position"]:
            problems.append("h5: format or position")
        lens, dla = f["lens"], f["dla"]
        if maxerr(lens["target_logit"][:], [r["target_logit"] for r in js["lens"]]) > 1e-12 or \
                lens["top_ids"][:].tolist() != [[x["id"] for x in r["top"]] for r in js["lens"]]:
            problems.append("h5: lens differs from the JSON")
        if lens["top_ids"].dims[0].label != "stream" or dla["heads"].dims[1].label != "head":
            problems.append("h5: axes not labelled")
        for k in ("heads", "mlp", "attn_bias") + (("softmax1_path", "softmax2_path") if "softmax1_path" in js["dla"] else ()):
            if maxerr(dla[k][:], js["dla"][k]) > 1e-12:
                problems.append("h5: dla/%s differs from the JSON" % k)
        if abs(dla.attrs["remainder"] - js["dla"]["remainder"]) > 1e-15:
            problems.append("h5: dla remainder")
    with diffscope.read_lens(path) as x:
        if x.position != js["position"] or x.target != js["target"]["id"] or maxerr(x.dla("heads"), js["dla"]["heads"]) > 1e-12 or \
                x.lens("top_ids").labels["stream"][-1] != js["lens"][-1]["stream"] or abs(x.remainder - js["dla"]["remainder"]) > 1e-15:
            problems.append("read_lens differs from the JSON")


def check_model(label, model, ids, P, token=None, vs=None, ref_logits=None, h5=False, ablate=(), extra=()):
    """EXTRA: interventions given to every command; ABLATE: the (layer, head) they zero."""
    p = []
    m = Model(model)
    ids_s = ",".join(map(str, ids))
    dump = os.path.join(TMP, "dump.h5")
    r = run("dump", model, "--ids", ",".join(map(str, ids[:P + 1])), "--hidden", "--what", "softmax", "-o", dump, "--force", *extra)
    if r.returncode:
        return report(label, ["dump: " + r.stderr.strip()])
    args = ["lens", model, "--ids", ids_s, "--position", str(P), "--json", "--top-k", "4", *extra]
    args += ["--token", str(token)] if token is not None else []
    args += ["--vs-token", str(vs)] if vs is not None else []
    out = os.path.join(TMP, "lens.h5")
    if h5:
        args += ["-o", out, "--force"]
    r = run(*args)
    if r.returncode:
        return report(label, ["lens: " + r.stderr.strip()])
    js = json.loads(r.stdout)
    with h5py.File(dump) as f:
        streams, layers = recompute(m, f, P, ablate)
        hs = f["hidden_states"][:]
        for l in range(1, m.L):
            e = maxerr(streams[l], hs[l][P])
            if e > RESID_TOL * max(1, np.abs(hs[l][P]).max()):
                p.append("NumPy's residual after layer %d differs from the dump by %.2e" % (l - 1, e))
    if token is not None and js["target"]["id"] != token:
        p.append("target %s, asked for %s" % (js["target"]["id"], token))
    check_lens(m, js, streams, p)
    check_dla(m, js, streams, layers, p)
    check_model_logits(model, ids, P, js, ref_logits, p, extra)
    if h5:
        check_h5(out, js, p)
    report(label, p)
    return js


def golden():
    cases = [("diff-gqa-tied-bf16", {}), ("diff-headdim-bias-llama3-f16", {"vs": 3, "h5": True}),
             ("diff-oddkv-f32", {"token": 7}), ("diff-mha-f32", {}), ("diff-sharded-deep-f32", {"h5": True}),
             ("llama-mha-bias-f32", {"vs": 5}), ("llama-gqa-headdim-tied-bf16", {"h5": True}), ("qwen3-gqa-bias-bf16", {})]
    for name, kw in cases:
        with h5py.File("%s/refs/%s.h5" % (GOLDEN, name)) as ref:
            g = ref["T17"] if "T17" in ref else ref[sorted(ref, key=lambda k: int(k[1:]))[-1]]
            ids, logits = g["input_ids"][:].tolist(), g["logits"][:]
        for P in (len(ids) - 1, len(ids) // 2):
            check_model("lens_golden_%s_P%d" % (name, P), "%s/models/%s" % (GOLDEN, name), ids, P,
                        ref_logits=logits[P], **kw)
        if name.startswith("diff-gqa") or name.startswith("llama-mha"):
            # interventions: the dump records the overridden λ, NumPy zeroes the ablated head
            extra = ("--ablate-head", "1.1") + (("--lambda-override", "0=0.3") if name.startswith("diff") else ())
            check_model("lens_golden_%s_interventions" % name, "%s/models/%s" % (GOLDEN, name), ids, len(ids) - 1,
                        ablate={(1, 1)}, extra=extra)


def stories():
    model = os.path.join(SHARED, "reference/real/stories260K")
    if not os.path.isdir(model):
        return print("skip lens_stories260K: %s absent" % model)
    upstream = json.load(open(os.path.join(model, "greedy_upstream.json")))
    ids = [upstream["bos"]] + upstream["greedy_ids"][:39]
    js = check_model("lens_stories260K", model, ids, len(ids) - 1, h5=True)
    # the default target is the model's top-1: llama2.c's next greedy token
    want = upstream["greedy_ids"][39]
    report("lens_stories260K_top1_is_llama2c_greedy",
           [] if js and js["target"]["id"] == want and js["lens"][-1]["top"][0]["id"] == want else
           ["target %s, llama2.c's next token %d" % (js and js["target"]["id"], want)])
    check_model("lens_stories260K_vs", model, ids, 20, token=ids[21], vs=ids[21] + 1)


def bad_inputs():
    model, p = "%s/models/diff-gqa-tied-bf16" % GOLDEN, []
    cases = [(["--position", "5"], "--position 5 out of range for 3 tokens"), (["--position", "-4"], "out of range"),
             (["--token", "96"], "--token: token id 96 outside the vocabulary"),
             (["--vs-token", "123456789012"], "--vs-token: token id"),
             (["--token", "abc"], "--token: "), (["--top-k", "97"], "--top-k 97 exceeds the vocabulary")]
    for extra, text in cases:
        r = run("lens", model, "--ids", "1,2,3", *extra)
        lines = r.stderr.strip().split("\n")
        if r.returncode != 2 or len(lines) != 1 or text not in lines[0] or r.stdout:
            p.append("%s: status %d, stderr %r" % (" ".join(extra), r.returncode, r.stderr))
    demo = "notebooks-data/models/diffllama"
    r = run("lens", demo, "--prompt", "the k_apple", "--token", "k_apple v_42")
    if r.returncode != 2 or "is 2 tokens" not in r.stderr:
        p.append("a two-token --token: status %d, %r" % (r.returncode, r.stderr))
    report("lens_bad_inputs", p)


def python_api():
    """diffscope.lens (ctypes over the library) gives the CLI's numbers, on a golden DiffLlama with
    an intervention and on the demo DiffLlama with text tokens."""
    cases = [("%s/models/diff-headdim-bias-llama3-f16" % GOLDEN, [1, 9, 4, 77, 30, 2, 51], 4, None, 3,
              [diffscope.ablate_head(1, 0)], ["--ablate-head", "1.0"]),
             ("notebooks-data/models/diffllama", "the k_apple v_42 of so k_river v_7 which a ? k_river", -1, "v_7", "v_42",
              [], [])]
    for model, ids, pos, token, vs, ivs, cli_ivs in cases:
        p = []
        with diffscope.load(model) as m:
            x = diffscope.lens(m, ids, position=pos, token=token, vs_token=vs, interventions=ivs)
            try:
                diffscope.lens(m, [1, 2], position=2)
                p.append("position 2 of 2 tokens accepted")
            except diffscope.Error as e:
                if "out of range" not in str(e):
                    p.append("bad position: %s" % e)
        args = ["--prompt", ids] if isinstance(ids, str) else ["--ids", ",".join(map(str, ids))]
        args += ["--position", str(pos), "--vs-token", str(vs), "--json"] + (["--token", token] if token else []) + cli_ivs
        r = run("lens", model, *args)
        if r.returncode:
            report("lens_python_%s" % os.path.basename(model), ["lens: " + r.stderr.strip()])
            continue
        js = json.loads(r.stdout)
        if x.target != js["target"]["id"] or x.vs != js["vs"]["id"] or x.position != js["position"]:
            p.append("target/vs/position %s/%s/%s, the CLI's %s" % (x.target, x.vs, x.position, js["target"]))
        e = max(maxerr(x.lens_logits.values[:, x.target], [row["target_logit"] for row in js["lens"]]),
                maxerr(x.dla("heads"), js["dla"]["heads"]), abs(x.remainder - js["dla"]["remainder"]),
                maxerr(x.dla("softmax2_path"), js["dla"]["softmax2_path"]))
        if e > 1e-12:
            p.append("differs from the CLI by %.2e" % e)
        report("lens_python_%s" % os.path.basename(model), p)


def main():
    try:
        if "--python" in sys.argv:
            # the CLI runs without the sanitizer runtimes test_lens.sh preloads for the library
            os.environ.pop("LD_PRELOAD", None)
            python_api()
        else:
            golden()
            stories()
            bad_inputs()
            print("# lens: max error against NumPy: lens %(lens).2e, dla %(dla).2e; largest |remainder| %(remainder).2e, "
                  "|path1 + path2 - head| %(paths).2e" % measured)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    raise SystemExit(exit_status())


main()
