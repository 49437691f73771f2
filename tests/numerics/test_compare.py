"""Checks `diffscope compare` and `diffscope needle` against NumPy over `diffscope dump` files.

Every number compare reports (answer/noise/sink mass, entropy, sparsity per layer and head,
lambda_full, Table-5 top-k and median of |scores| and |residual stream|) is recomputed here
from the maps, scores and outlier values that `diffscope dump` wrote for the same tokens; the
HDF5 output (-o) must hold the same numbers as --json, and the table prints them. needle's
prompts (given in its JSON) are checked for their format, dumped one by one, and its
accuracy and masses recomputed. Then the bad inputs: one-line errors, exit status 2.

Models: the golden tiny DiffLlama, Llama, Qwen2 and Qwen3 (tests/data/golden/models, vocab 96,
--ids), and the trained demo pair (notebooks-data/models, with a tokenizer: --prompt, --span-text, the kv
task and a text haystack) when present.

Run by tests/cli/test_compare.sh with Debian's python3 (h5py, numpy). Prints ok/FAIL/skip lines.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from common import DS, GOLDEN, exit_status, report, run

GOLD = f"{GOLDEN}/models"
DIFF = f"{GOLD}/diff-sharded-deep-f32"
LLAMA = f"{GOLD}/llama-mha-bias-f32"
QWEN2 = f"{GOLD}/qwen2-gqa-bf16"
QWEN3 = f"{GOLD}/qwen3-tied-f32"
DEMO = "notebooks-data/models"
TMP = tempfile.mkdtemp(prefix="ds-compare-test-")
MEDIAN_RTOL = 1.3e-4  # the documented histogram precision of the median


def close(a, b, rtol=1e-5, atol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= atol + rtol * abs(b)


def dump(model, out, ids=None, prompt=None):
    src = ["--ids", ",".join(map(str, ids))] if ids is not None else ["--prompt", prompt]
    r = run("dump", model, *src, "-o", out, "--force", "--what", "all", "--hidden",
            "--logits", "--topk", "1000000")
    if r.returncode:
        raise RuntimeError(f"dump {model}: {r.stderr.strip()}")
    return h5py.File(out, "r")


# ---- the reference computation over a dump ----

def row_stats(row, q, span, softmax):
    """The five statistics of one map row (float64 over the dump's float32 values)."""
    row = row[: q + 1].astype(np.float64)
    inside = np.zeros(q + 1, bool)
    if span:
        inside[span[0]:span[1]] = True
    rest = ~inside
    rest[0] = False
    p = row[row > 0]
    mx = np.abs(row).max()
    return {
        "answer_mass": row[inside].sum() if span else None,
        "noise_mass": row[rest].sum(),
        "sink_mass": row[0],
        "entropy": float(-(p * np.log(p)).sum()) if softmax else None,
        "sparsity": float((np.abs(row) < 1e-3 * mx).mean()),
    }


def cancelled_share(s1, s2, lam):
    """docs/compare.md: max(0, sum_k min(s1, lam*s2)) / sum_k s1 over one row's keys 0..q."""
    s1, s2 = s1.astype(np.float64), s2.astype(np.float64)
    total = s1.sum()
    return max(np.minimum(s1, lam * s2).sum(), 0.0) / total if total > 0 else 0.0


def check_dump_cancelled_share(f):
    """The dump's /layers/{l}/cancelled_share at every head and query row against NumPy over
    its softmax1, softmax2 and lambda_full."""
    p = []
    T = int(f.attrs["num_tokens"])
    for l in range(int(f.attrs["num_layers"])):
        a = f[f"layers/{l}/attn"]
        s1, s2, lam = a["softmax1"][:], a["softmax2"][:], float(a.attrs["lambda_full"])
        got = f[f"layers/{l}/cancelled_share"][:]
        want = np.array([[cancelled_share(s1[h, q, :q + 1], s2[h, q, :q + 1], lam) for q in range(T)]
                         for h in range(s1.shape[0])])
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-7):
            p.append(f"layer {l}: cancelled_share differs from NumPy by {np.abs(got - want).max():.2e}")
    return p


def reference(f, q, span):
    """{'layers': [{map: {'mean': stats, 'heads': [stats]}, 'lambda_full': x}], 'scores': vals, 'resid': vals}"""
    L = int(f.attrs["num_layers"])
    is_diff = f.attrs["arch"] == "diffllama"
    layers, scores, resid = [], [], []
    for l in range(L):
        a = f[f"layers/{l}/attn"]
        entry = {}
        for name in (["diff", "softmax1"] if is_diff else ["softmax"]):
            m = a[name][:]
            heads = [row_stats(m[h, q], q, span, name != "diff") for h in range(m.shape[0])]
            mean = {k: (None if heads[0][k] is None else float(np.mean([h[k] for h in heads]))) for k in heads[0]}
            entry[name] = {"mean": mean, "heads": heads}
        if is_diff:
            entry["lambda_full"] = float(a.attrs["lambda_full"])
            s1, s2 = a["softmax1"][:], a["softmax2"][:]
            heads = [cancelled_share(s1[h, q, :q + 1], s2[h, q, :q + 1], entry["lambda_full"]) for h in range(s1.shape[0])]
            entry["cancelled_share"] = {"mean": float(np.mean(heads)), "heads": heads}
        layers.append(entry)
        s = a["scores"][:]
        scores.append(np.abs(s[np.isfinite(s)]))
        rv = f[f"layers/{l}/outliers/resid"]
        vals = rv["values"][:]
        if len(vals) != rv.attrs["count"]:
            raise RuntimeError("dump --topk did not keep every residual value")
        resid.append(vals.astype(np.float64))
    # Cross-check the residual values of the dump's outlier groups with its hidden states.
    hs = f["hidden_states"][:]
    for l in range(L - 1):
        if not np.array_equal(np.sort(np.abs(hs[l + 1]).ravel())[::-1], resid[l].astype(np.float32)):
            raise RuntimeError(f"layer {l}: outlier values differ from hidden_states")
    return {"layers": layers, "scores": np.concatenate(scores), "resid": np.concatenate(resid)}


def table5(vals):
    s = np.sort(vals)[::-1]
    out = {f"top{k}": (float(s[k - 1]) if len(s) >= k else None) for k in (1, 2, 3, 10, 100)}
    out["median"] = float(np.median(vals))
    out["count"] = len(vals)
    return out


def check_model_json(label, mj, ref, per_head):
    p = []
    for l, (lj, lr) in enumerate(zip(mj["layers"], ref["layers"])):
        if "lambda_full" in lr and not close(lj.get("lambda_full"), lr["lambda_full"], 1e-6):
            p.append(f"{label} layer {l} lambda_full {lj.get('lambda_full')} != {lr['lambda_full']}")
        if "cancelled_share" in lr:
            cs = lr["cancelled_share"]
            if not close(lj.get("cancelled_share"), cs["mean"]):
                p.append(f"{label} layer {l} cancelled_share {lj.get('cancelled_share')} != {cs['mean']}")
            if per_head and not all(close(g, w) for g, w in zip(lj.get("cancelled_share_per_head", []), cs["heads"])):
                p.append(f"{label} layer {l} cancelled_share_per_head {lj.get('cancelled_share_per_head')} != {cs['heads']}")
        for name, r in lr.items():
            if name in ("lambda_full", "cancelled_share"):
                continue
            if name not in lj:
                p.append(f"{label} layer {l}: no map {name}")
                continue
            for k, v in r["mean"].items():
                if not close(lj[name][k], v):
                    p.append(f"{label} layer {l} {name} {k} {lj[name][k]} != {v}")
            if per_head:
                for h, hr in enumerate(r["heads"]):
                    for k, v in hr.items():
                        if not close(lj[name]["heads"][h][k], v):
                            p.append(f"{label} layer {l} head {h} {name} {k} {lj[name]['heads'][h][k]} != {v}")
    if len(mj["layers"]) != len(ref["layers"]):
        p.append(f"{label}: {len(mj['layers'])} layers, dump has {len(ref['layers'])}")
    for which in ("scores", "resid"):
        want, got = table5(ref[which]), mj["outliers"][which]
        if got["count"] != want["count"]:
            p.append(f"{label} {which} count {got['count']} != {want['count']}")
        for k in ("top1", "top2", "top3", "top10", "top100"):
            if not close(got[k], want[k], 1e-7, 0):
                p.append(f"{label} {which} {k} {got[k]} != {want[k]}")
        if not close(got["median"], want["median"], MEDIAN_RTOL, 0):
            p.append(f"{label} {which} median {got['median']} != {want['median']}")
    return p


def check_h5_matches_json(path, js):
    p = []
    with h5py.File(path, "r") as f:
        if f.attrs["format"] != "diffscope-compare":
            p.append("format attribute")
        if int(f.attrs["query_pos"]) != js["query_pos"]:
            p.append("query_pos")
        if list(f["tokens/ids"][:]) != js["tokens"]:
            p.append("tokens/ids")
        for mj in js["models"]:
            g = f[f"models/{mj['name']}"]
            for l, lj in enumerate(mj["layers"]):
                for k in ("lambda_full", "cancelled_share"):
                    if k in lj and not close(g[k][l], lj[k], 1e-12, 0):
                        p.append(f"{mj['name']} {k}[{l}]")
                if "cancelled_share_per_head" in lj and not np.allclose(g["cancelled_share_per_head"][l],
                                                                         lj["cancelled_share_per_head"], 1e-12, 0):
                    p.append(f"{mj['name']} cancelled_share_per_head[{l}]")
                for name in ("diff", "softmax1", "softmax"):
                    if name not in lj:
                        continue
                    for k in ("answer_mass", "noise_mass", "sink_mass", "entropy", "sparsity"):
                        h5v = float(g[f"{name}/{k}"][l])
                        jv = lj[name][k]
                        if (jv is None) != np.isnan(h5v) or (jv is not None and not close(h5v, jv, 1e-12, 0)):
                            p.append(f"{mj['name']} {name}/{k}[{l}] {h5v} vs {jv}")
                        if "heads" in lj[name]:
                            for h, hj in enumerate(lj[name]["heads"]):
                                hv = float(g[f"{name}/per_head/{k}"][l, h])
                                if (hj[k] is None) != np.isnan(hv) or (hj[k] is not None and not close(hv, hj[k], 1e-12, 0)):
                                    p.append(f"{mj['name']} {name}/per_head/{k}[{l},{h}]")
            for which in ("scores", "resid"):
                a = g[f"outliers/{which}"].attrs
                for k, v in mj["outliers"][which].items():
                    if (v is None) != np.isnan(a[k]) or (v is not None and not close(float(a[k]), v, 1e-12, 0)):
                        p.append(f"{mj['name']} outliers/{which} {k}")
    return p


def check_table_prints(table, js):
    """The table shows the JSON's numbers (4 decimals)."""
    p = []
    for mj in js["models"]:
        for lj in mj["layers"]:
            for name in ("diff", "softmax1", "softmax"):
                if name in lj and lj[name]["noise_mass"] is not None:
                    s = f"{lj[name]['noise_mass']:.4f}"
                    if s not in table:
                        p.append(f"table lacks {mj['name']} {name} noise_mass {s}")
    for word in ("answer_mass", "noise_mass", "sink_mass", "entropy", "sparsity", "top-100", "median"):
        if word not in table:
            p.append(f"table lacks '{word}'")
    return p


# ---- compare on the golden models ----

def golden_compare():
    rng = np.random.default_rng(5)
    ids = [1] + list(rng.integers(3, 96, 23))
    T = len(ids)
    ida = ",".join(map(str, ids))
    out = os.path.join(TMP, "cmp.h5")
    cases = [("span 5:9, last query", ["--span-tokens", "5:9"], T - 1, (5, 9)),
             ("span 2:4, query 12", ["--span-tokens", "2:4", "--query-pos", "12"], 12, (2, 4)),
             ("no span, query -3", ["--query-pos", "-3"], T - 3, None)]
    fa = dump(DIFF, os.path.join(TMP, "a.h5"), ids=ids)
    fb = dump(LLAMA, os.path.join(TMP, "b.h5"), ids=ids)
    report("dump_cancelled_share_vs_numpy", check_dump_cancelled_share(fa))
    for label, extra, q, span in cases:
        r = run("compare", "--model", DIFF, "--vs", LLAMA, "--ids", ida, *extra, "--per-head", "--json",
                "-o", out, "--force")
        if r.returncode:
            report(f"compare_golden_vs_numpy[{label}]", [f"exit {r.returncode}: {r.stderr.strip()}"])
            continue
        js = json.loads(r.stdout)
        p = []
        if js["query_pos"] != q or (js["span"] and tuple(js["span"]) != span) or (js["span"] is None) != (span is None):
            p.append(f"query/span {js['query_pos']} {js['span']}")
        p += check_model_json("A", js["models"][0], reference(fa, q, span), True)
        p += check_model_json("B", js["models"][1], reference(fb, q, span), True)
        if span is None and any(l["diff"]["answer_mass"] is not None for l in js["models"][0]["layers"]):
            p.append("answer_mass without a span is not null")
        report(f"compare_golden_vs_numpy[{label}]", p)
        report(f"compare_h5_equals_json[{label}]", check_h5_matches_json(out, js))
    r = run("compare", DIFF, "--vs", LLAMA, "--ids", ida, "--span-tokens", "5:9")
    js = json.loads(run("compare", DIFF, "--vs", LLAMA, "--ids", ida, "--span-tokens", "5:9", "--json").stdout)
    report("compare_table_shows_json_numbers", [f"exit {r.returncode}"] if r.returncode else check_table_prints(r.stdout, js))
    # Without --vs: inside A only, the same numbers as A's part of the pair run.
    r = run("compare", DIFF, "--ids", ida, "--span-tokens", "5:9", "--json")
    p = [f"exit {r.returncode}: {r.stderr.strip()}"] if r.returncode else []
    if not p:
        solo = json.loads(r.stdout)
        if len(solo["models"]) != 1 or solo["models"][0]["layers"] != js["models"][0]["layers"]:
            p.append("A alone differs from A in the pair run")
    report("compare_without_vs_is_A_alone", p)


def qwen_compare():
    """compare --vs across families: a DiffLlama against a Qwen3 and a Qwen2 against a Qwen3
    (all vocab 96), every number against NumPy over the two models' dumps."""
    rng = np.random.default_rng(7)
    ids = [1] + list(rng.integers(3, 96, 15))
    ida = ",".join(map(str, ids))
    q, span = len(ids) - 1, (4, 7)
    for a, b in ((DIFF, QWEN3), (QWEN2, QWEN3)):
        label = f"{os.path.basename(a)} vs {os.path.basename(b)}"
        fa = dump(a, os.path.join(TMP, "qa.h5"), ids=ids)
        fb = dump(b, os.path.join(TMP, "qb.h5"), ids=ids)
        out = os.path.join(TMP, "qcmp.h5")
        r = run("compare", "--model", a, "--vs", b, "--ids", ida, "--span-tokens", "4:7", "--per-head", "--json",
                "-o", out, "--force")
        if r.returncode:
            report(f"compare_across_families_vs_numpy[{label}]", [f"exit {r.returncode}: {r.stderr.strip()}"])
            continue
        js = json.loads(r.stdout)
        p = check_model_json("A", js["models"][0], reference(fa, q, span), True)
        p += check_model_json("B", js["models"][1], reference(fb, q, span), True)
        if [m["arch"] for m in js["models"]] != [fa.attrs["arch"], fb.attrs["arch"]]:
            p.append(f"arch {[m['arch'] for m in js['models']]}")
        report(f"compare_across_families_vs_numpy[{label}]", p)
        report(f"compare_h5_equals_json[{label}]", check_h5_matches_json(out, js))
        fa.close(), fb.close()


# ---- compare on the demo models (tokenizer: --prompt, --span-text) ----

def demo_vocab():
    with open(f"{DEMO}/diffllama/tokenizer.json") as f:
        return json.load(f)["model"]["vocab"]


def demo_compare():
    if not all(os.path.isdir(f"{DEMO}/{m}") for m in ("diffllama", "llama")):
        print("skip compare_demo_vs_numpy: notebooks-data/models/{diffllama,llama} absent")
        return
    vocab = demo_vocab()
    words = "the k_apple v_42 of so k_river v_7 which a k_stone v_9 and it ? k_river".split()
    prompt = " ".join(words)
    ids = [1] + [vocab["\u2581" + w] for w in words]  # BOS + one token per word (the task's tokenizer)
    span = (words.index("k_river") + 1, words.index("k_river") + 3)
    r = run("compare", "--model", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--prompt", prompt,
            "--span-text", "k_river v_7", "--per-head", "--json")
    if r.returncode:
        report("compare_demo_vs_numpy", [f"exit {r.returncode}: {r.stderr.strip()}"])
        return
    js = json.loads(r.stdout)
    p = []
    if js["tokens"] != ids:
        p.append(f"tokens {js['tokens']} != {ids}")
    if tuple(js["span"]) != span:
        p.append(f"span {js['span']} != {span}")
    q = len(ids) - 1
    fa = dump(f"{DEMO}/diffllama", os.path.join(TMP, "da.h5"), ids=ids)
    fb = dump(f"{DEMO}/llama", os.path.join(TMP, "db.h5"), ids=ids)
    p += check_model_json("A", js["models"][0], reference(fa, q, span), True)
    p += check_model_json("B", js["models"][1], reference(fb, q, span), True)
    report("compare_demo_vs_numpy", p)
    # The same span found from " k_river v_7" (leading space) and given as tokens.
    r2 = run("compare", f"{DEMO}/diffllama", "--prompt", prompt, "--span-text", " k_river v_7", "--json")
    r3 = run("compare", f"{DEMO}/diffllama", "--prompt", prompt, "--span-tokens", f"{span[0]}:{span[1]}", "--json")
    p = []
    want = [l["diff"]["answer_mass"] for l in js["models"][0]["layers"]]
    for rr in (r2, r3):
        if rr.returncode:
            p.append(rr.stderr.strip())
            continue
        other = json.loads(rr.stdout)
        if tuple(other["span"]) != span or [l["diff"]["answer_mass"] for l in other["models"][0]["layers"]] != want:
            p.append(f"span {other['span']}: different numbers")
    report("compare_span_text_forms", p)


# ---- needle ----

def needle_reference(model, prompt, idx, layers_from):
    """answer/noise means over heads and layers >= layers_from, and the top-1 id, from a dump."""
    f = dump(model, os.path.join(TMP, f"n{idx}.h5"), ids=prompt["ids"])
    q = len(prompt["ids"]) - 1
    ref = reference_maps(f, q, tuple(prompt["span"]))
    top1 = int(np.argmax(f["logits"][q]))
    f.close()
    return ref, top1


def reference_maps(f, q, span):
    L = int(f.attrs["num_layers"])
    out = {}
    for l in range(L):
        a = f[f"layers/{l}/attn"]
        for name in (["diff", "softmax1"] if f.attrs["arch"] == "diffllama" else ["softmax"]):
            m = a[name][:]
            st = [row_stats(m[h, q], q, span, False) for h in range(m.shape[0])]
            out.setdefault(name, []).append((np.mean([s["answer_mass"] for s in st]),
                                              np.mean([s["noise_mass"] for s in st])))
    return out


def check_needle(label, js, models, check_prompt):
    p = []
    D, K = len(js["depths"]), js["trials"]
    if len(js["prompts"]) != D * K:
        return [f"{len(js['prompts'])} prompts for {D} depths x {K} trials"]
    for i, pr in enumerate(js["prompts"]):
        p += check_prompt(pr, js["depths"][i // K])
    for mi, model in enumerate(models):
        mj = js["models"][mi]
        b = mj["layers_averaged"][0]
        refs = [needle_reference(model, pr, i, b) for i, pr in enumerate(js["prompts"])]
        for d in range(D):
            rs = refs[d * K:(d + 1) * K]
            dj = mj["depths"][d]
            tops = [t["id"] for t in dj["top1"]]
            if tops != [t for _, t in rs]:
                p.append(f"{mj['name']} depth {js['depths'][d]} top1 {tops} != {[t for _, t in rs]}")
            if "answer_id" in js["prompts"][0]:
                right = [int(t == js["prompts"][d * K + k]["answer_id"]) for k, (_, t) in enumerate(rs)]
                if dj["correct"] != sum(right) or dj["accuracy_per_trial"] != right:
                    p.append(f"{mj['name']} depth {js['depths'][d]} correct {dj['correct']} != {sum(right)}")
            # accuracy: the count over the trials, one correctly rounded division
            if dj["accuracy"] != dj["correct"] / K or dj["correct"] != sum(dj["accuracy_per_trial"]):
                p.append(f"{mj['name']} depth {js['depths'][d]} accuracy {dj['accuracy']} != {dj['correct']}/{K}")
            p += check_spread(f"{mj['name']} depth {js['depths'][d]}", dj, "accuracy")
            for name in rs[0][0]:
                L = len(rs[0][0][name])
                per_layer = np.mean([[r[0][name][l] for l in range(L)] for r in rs], axis=0)  # [L, 2]
                want_a, want_n = per_layer[b:, 0].mean(), per_layer[b:, 1].mean()
                got = dj[name]
                if not close(got["answer_mass"], want_a) or not close(got["noise_mass"], want_n):
                    p.append(f"{mj['name']} depth {js['depths'][d]} {name} {got['answer_mass']:.6f}/"
                             f"{got['noise_mass']:.6f} != {want_a:.6f}/{want_n:.6f}")
                if not np.allclose(got["answer_mass_per_layer"], per_layer[:, 0], rtol=1e-5, atol=1e-6):
                    p.append(f"{mj['name']} depth {js['depths'][d]} {name} answer_mass_per_layer")
                for f, col in (("answer_mass", 0), ("noise_mass", 1)):
                    trials = [np.mean([r[0][name][l][col] for l in range(b, L)]) for r in rs]
                    if not np.allclose(got[f + "_per_trial"], trials, rtol=1e-5, atol=1e-6):
                        p.append(f"{mj['name']} depth {js['depths'][d]} {name} {f}_per_trial {got[f + '_per_trial']} "
                                 f"!= {trials}")
                    p += check_spread(f"{mj['name']} depth {js['depths'][d]} {name}", got, f)
    return p


def check_spread(label, o, name):
    """NAME's mean, std (n - 1) and ci95 (1.96 std / sqrt(n)) are NumPy's over NAME_per_trial."""
    x = np.array(o[name + "_per_trial"], np.float64)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else None
    ci95 = 1.96 * std / np.sqrt(len(x)) if std is not None else None
    if not close(o[name], float(np.mean(x)), 1e-12, 1e-15) or not close(o[name + "_std"], std, 1e-12, 1e-15) or \
            not close(o[name + "_ci95"], ci95, 1e-12, 1e-15):
        return [f"{label} {name} mean/std/ci95 {o[name]}/{o[name + '_std']}/{o[name + '_ci95']} != "
                f"{np.mean(x)}/{std}/{ci95}"]
    return []


def check_needle_h5(path, js):
    """needle -o: the JSON's numbers, each depth's accuracy the count of right prompts over the
    trials from the file's per-trial values, the spread NumPy's over them."""
    p = []
    K = js["trials"]
    with h5py.File(path, "r") as f:
        if f.attrs["format"] != "diffscope-needle" or int(f.attrs["trials"]) != K or \
                list(f["depths"][:]) != js["depths"]:
            p.append("root attributes or depths")
        for i, pr in enumerate(js["prompts"]):
            n = int(f["prompts/length"][i])
            if list(f["prompts/ids"][i, :n]) != pr["ids"] or list(f["prompts/span"][i]) != pr["span"]:
                p.append(f"prompt {i}")
        for mj in js["models"]:
            g = f["models/" + mj["name"]]
            right = g["accuracy_per_trial"][:]  # [depth, trial], 1 where the top-1 was the answer
            counts = right.sum(axis=1)
            if list(g["correct"][:]) != list(counts) or list(g["accuracy"][:]) != [c / K for c in counts]:
                p.append(f"{mj['name']} accuracy {list(g['accuracy'][:])} != {list(counts)}/{K}")
            if not np.allclose(g["accuracy_std"][:], np.std(right, axis=1, ddof=1), rtol=1e-12, atol=1e-15) or \
                    not np.allclose(g["accuracy_ci95"][:], 1.96 * np.std(right, axis=1, ddof=1) / np.sqrt(K),
                                    rtol=1e-12, atol=1e-15):
                p.append(f"{mj['name']} accuracy spread")
            for d, dj in enumerate(mj["depths"]):
                if list(g["top1"][d]) != [t["id"] for t in dj["top1"]] or g["accuracy"][d] != dj["accuracy"]:
                    p.append(f"{mj['name']} depth {d} top1 or accuracy differ from JSON")
                for m in ("diff", "softmax1", "softmax"):
                    for fld in ("answer_mass", "noise_mass"):
                        if m not in dj:
                            continue
                        x = g[f"{m}/{fld}_per_trial"][d]
                        # cJSON prints 15 digits when they read back within DBL_EPSILON
                        if not np.allclose(x, dj[m][fld + "_per_trial"], rtol=1e-14, atol=0) or \
                                not close(g[f"{m}/{fld}"][d], dj[m][fld], 1e-14, 0) or \
                                not np.allclose(g[f"{m}/{fld}_per_layer"][d], dj[m][fld + "_per_layer"], rtol=1e-14,
                                                atol=0):
                            p.append(f"{mj['name']} depth {d} {m}/{fld} differs from JSON")
                        if not close(g[f"{m}/{fld}_std"][d], float(np.std(x, ddof=1)), 1e-12, 1e-15):
                            p.append(f"{mj['name']} depth {d} {m}/{fld}_std != NumPy's")
    return p


def demo_needle():
    if not all(os.path.isdir(f"{DEMO}/{m}") for m in ("diffllama", "llama")):
        print("skip needle_kv_demo_vs_numpy: notebooks-data/models/{diffllama,llama} absent")
        print("skip needle_text_demo_vs_numpy: notebooks-data/models absent")
        return
    vocab = demo_vocab()
    inv = {i: w for w, i in vocab.items()}
    qmark = vocab["\u2581?"]
    N, P = 60, 4

    def kv_prompt(pr, depth):
        ids, (b, e) = pr["ids"], pr["span"]
        ctx = ids[1:1 + N]
        p = []
        if len(ids) != N + 3 or ids[0] != 1 or ids[-2] != qmark:
            return [f"prompt format {ids[:3]}...{ids[-3:]}"]
        keys = [t for t in ctx if inv[t].startswith("\u2581k_")]
        vals = [t for t in ctx if inv[t].startswith("\u2581v_")]
        if len(set(keys)) != P or len(set(vals)) != P:
            p.append(f"{len(set(keys))} keys, {len(set(vals))} values, want {P}")
        if ids[b] != ids[-1] or ids[b + 1] != pr["answer_id"] or e != b + 2 or keys.count(ids[-1]) != 1:
            p.append(f"span {b}:{e} is not the queried pair")
        if b - 1 != round(depth / 100 * (N - 2)):
            p.append(f"depth {depth}: pair at context position {b - 1}")
        return p

    r = run("needle", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--task", "kv", "--pairs", str(P),
            "--context-tokens", str(N), "--trials", "2", "--depths", "0,50,100", "--seed", "7", "--json")
    if r.returncode:
        report("needle_kv_demo_vs_numpy", [f"exit {r.returncode}: {r.stderr.strip()}"])
    else:
        report("needle_kv_demo_vs_numpy",
               check_needle("kv", json.loads(r.stdout), [f"{DEMO}/diffllama", f"{DEMO}/llama"], kv_prompt))
    # The table mirrors the JSON; -o holds the same numbers and every prompt's values.
    args = ["needle", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--task", "kv", "--pairs", str(P),
            "--context-tokens", str(N), "--trials", "12", "--depths", "0,50,100", "--seed", "7"]
    h5 = os.path.join(TMP, "needle.h5")
    t = run(*args, "-o", h5, "--force")
    js = json.loads(run(*args, "--json").stdout)
    p = [] if t.returncode == 0 else [t.stderr.strip()]
    for dj in js["models"][0]["depths"]:
        for s in (f"{dj['accuracy']:.4f} ({dj['correct']}/12)", f"{dj['diff']['answer_mass']:.4f} ± ",
                  f"{dj['softmax1']['noise_mass']:.4f} ± {dj['softmax1']['noise_mass_ci95']:.4f}"):
            if s not in t.stdout:
                p.append(f"table lacks {s}")
    report("needle_table_shows_json_numbers", p)
    report("needle_h5_per_trial_and_spread", [f"exit {t.returncode}"] if t.returncode else check_needle_h5(h5, js))
    r = run(*args, "-o", h5)
    report("needle_h5_exists_refused_before_running",
           [] if r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and h5 in r.stderr and not r.stdout
           else [f"exit {r.returncode}, stdout {r.stdout[:80]!r}, stderr {r.stderr!r}"])

    # Text mode: a filler haystack, the needle "k_apple v_42", the question "? k_apple".
    rng = np.random.default_rng(3)
    fillers = [w[1:] for w, i in vocab.items() if 132 <= i < 196]
    hay = os.path.join(TMP, "hay.txt")
    with open(hay, "w") as f:
        f.write(" ".join(rng.choice(fillers, 80)))
    needle = ["k_apple", "v_42"]
    r = run("needle", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--haystack", hay, "--needle", " ".join(needle),
            "--question", "? k_apple", "--answer", "v_42", "--context-tokens", "50", "--depths", "0,30,100",
            "--json")

    def text_prompt(pr, depth):
        ids, (b, e) = pr["ids"], pr["span"]
        hay_ids = [vocab["\u2581" + w] for w in open(hay).read().split()][:50]
        c = round(depth / 100 * 50)
        want = [1] + hay_ids[:c] + [vocab["\u2581k_apple"], vocab["\u2581v_42"]] + hay_ids[c:] + \
            [qmark, vocab["\u2581k_apple"]]
        p = [] if ids == want else [f"depth {depth}: prompt differs from the expected tokens"]
        if (b, e) != (1 + c, 3 + c):
            p.append(f"depth {depth}: span {b}:{e}")
        return p

    if r.returncode:
        report("needle_text_demo_vs_numpy", [f"exit {r.returncode}: {r.stderr.strip()}"])
    else:
        js = json.loads(r.stdout)
        p = check_needle("text", js, [f"{DEMO}/diffllama", f"{DEMO}/llama"], text_prompt)
        for mj in js["models"]:
            for d, dj in enumerate(mj["depths"]):
                hit = inv[dj["top1"][0]["id"]].lstrip("\u2581")
                want = 1.0 if hit and "v_42".startswith(hit) else 0.0
                if dj["accuracy"] != want:
                    p.append(f"{mj['name']} depth {js['depths'][d]}: top1 '{hit}' scored {dj['accuracy']}")
        report("needle_text_demo_vs_numpy", p)

        # The same probe as token ids (--haystack-ids and friends): the same prompts, so the same
        # numbers, bit for bit; and against NumPy, with the accuracy now "top-1 is the answer id".
        hay_ids = os.path.join(TMP, "hay_ids.txt")
        with open(hay_ids, "w") as f:
            f.write("\n".join(str(vocab["\u2581" + w]) for w in open(hay).read().split()))
        apple, v42 = vocab["\u2581k_apple"], vocab["\u2581v_42"]
        r2 = run("needle", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--haystack-ids", hay_ids,
                 "--needle-ids", f"{apple},{v42}", "--question-ids", f"{qmark} {apple}", "--answer-id", str(v42),
                 "--context-tokens", "50", "--depths", "0,30,100", "--json")
        if r2.returncode:
            report("needle_ids_demo_same_as_text", [f"exit {r2.returncode}: {r2.stderr.strip()}"])
        else:
            j2 = json.loads(r2.stdout)
            p = [f"prompt {i} differs" for i, (a, b) in enumerate(zip(js["prompts"], j2["prompts"]))
                 if a["ids"] != b["ids"] or a["span"] != b["span"]]
            for ma, mb in zip(js["models"], j2["models"]):
                for da, db in zip(ma["depths"], mb["depths"]):
                    for name in [k for k in da if isinstance(da[k], dict)]:
                        if da[name] != db[name]:
                            p.append(f"{ma['name']} {name}: masses differ between text and ids")
            report("needle_ids_demo_same_as_text", p)
            report("needle_ids_demo_vs_numpy", check_needle("ids", j2, [f"{DEMO}/diffllama", f"{DEMO}/llama"], text_prompt))


def needle_ids_without_tokenizer():
    """--haystack-ids on a checkpoint that has no tokenizer.json: the model's BOS (config
    bos_token_id 1) goes first unless --no-special, and the numbers match NumPy over dumps."""
    hay = os.path.join(TMP, "gold_hay_ids.txt")
    with open(hay, "w") as f:
        f.write(",".join(str(3 + (7 * i) % 90) for i in range(40)))
    model = f"{GOLD}/diff-mha-f32"
    args = ["needle", model, "--haystack-ids", hay, "--needle-ids", "93,94", "--question-ids", "95",
            "--answer-id", "94", "--context-tokens", "30", "--depths", "0,50,100", "--json"]
    hay_ids = [3 + (7 * i) % 90 for i in range(30)]

    def prompt_check(bos):
        def check(pr, depth):
            c = round(depth / 100 * 30)
            want = bos + hay_ids[:c] + [93, 94] + hay_ids[c:] + [95]
            return [] if pr["ids"] == want and pr["span"] == [len(bos) + c, len(bos) + c + 2] else \
                [f"depth {depth}: prompt {pr['ids']} span {pr['span']}"]
        return check

    # Without BOS a needle at depth 0 would sit on token 0, the attention sink: start at 25 %.
    for label, extra, bos in (("needle_ids_without_tokenizer", [], [1]),
                              ("needle_ids_no_special", ["--no-special", "--depths", "25,50,100"], [])):
        r = run(*args, *extra)
        if r.returncode:
            report(label, [f"exit {r.returncode}: {r.stderr.strip()}"])
        else:
            report(label, check_needle("ids", json.loads(r.stdout), [model], prompt_check(bos)))


# ---- bad input ----

def bad_inputs():
    ids = ",".join(map(str, [1, 5, 9, 5, 7, 11, 13, 17, 19, 23]))
    hay_ids, not_ids = os.path.join(TMP, "bad_hay_ids.txt"), os.path.join(TMP, "not_ids.txt")
    with open(hay_ids, "w") as f:
        f.write(" ".join(str(i) for i in range(3, 60)))
    with open(not_ids, "w") as f:
        f.write("the of and")
    demo = os.path.isdir(f"{DEMO}/diffllama")
    cases = [
        ("query_out_of_range", ["compare", DIFF, "--ids", ids, "--query-pos", "10"], "out of range"),
        ("query_negative_out_of_range", ["compare", DIFF, "--ids", ids, "--query-pos", "-11"], "out of range"),
        ("span_after_query", ["compare", DIFF, "--ids", ids, "--span-tokens", "5:9", "--query-pos", "6"], "after the query"),
        ("span_includes_sink", ["compare", DIFF, "--ids", ids, "--span-tokens", "0:3"], "attention sink"),
        ("span_past_prompt", ["compare", DIFF, "--ids", ids, "--span-tokens", "3:12"], "span"),
        ("span_reversed", ["compare", DIFF, "--ids", ids, "--span-tokens", "5:3"], "--span-tokens"),
        ("span_text_and_tokens", ["compare", DIFF, "--ids", ids, "--span-tokens", "1:3", "--span-text", "x"], "not both"),
        ("no_model", ["compare", "--ids", ids], "needs one model"),
        ("missing_model", ["compare", f"{TMP}/nope", "--ids", ids], "not found"),
        ("id_outside_vs_vocab", ["compare", DIFF, "--vs", LLAMA, "--ids", "1,2,95,96"], "outside the vocabulary"),
        ("needle_no_haystack", ["needle", DIFF, "--needle", "a", "--question", "b", "--answer", "c"], "--haystack"),
        ("needle_depth_over_100", ["needle", DIFF, "--task", "kv", "--depths", "0,150"], "outside 0..100"),
        ("needle_ids_and_text", ["needle", DIFF, "--haystack-ids", hay_ids, "--needle", "a", "--question-ids", "5",
                                 "--answer-id", "5", "--needle-ids", "5"], "not both"),
        ("needle_ids_incomplete", ["needle", DIFF, "--haystack-ids", hay_ids, "--needle-ids", "5,6"], "together"),
        ("needle_answer_id_outside_vocab", ["needle", DIFF, "--haystack-ids", hay_ids, "--needle-ids", "5",
                                            "--question-ids", "6", "--answer-id", "96"], "outside the vocabulary"),
        ("needle_haystack_ids_not_ids", ["needle", DIFF, "--haystack-ids", not_ids, "--needle-ids", "5",
                                         "--question-ids", "6", "--answer-id", "7"], "not a list of token ids"),
    ]
    if demo:
        prompt = "the k_apple v_42 of so k_apple v_7 ? k_river"
        hay = os.path.join(TMP, "short.txt")
        with open(hay, "w") as f:
            f.write("the of and to in is")
        cases += [
            ("span_text_absent", ["compare", f"{DEMO}/diffllama", "--prompt", prompt, "--span-text", "k_zebra"], "does not occur"),
            ("span_text_ambiguous", ["compare", f"{DEMO}/diffllama", "--prompt", prompt, "--span-text", "k_apple"], "ambiguous"),
            ("vocab_differs_with_prompt", ["compare", f"{DEMO}/diffllama", "--vs", LLAMA, "--prompt", prompt],
             "different vocabularies"),
            ("haystack_too_short", ["needle", f"{DEMO}/diffllama", "--haystack", hay, "--needle", "k_apple v_42",
                                    "--question", "? k_apple", "--answer", "v_42", "--context-tokens", "50"],
             "fewer than --context-tokens"),
            ("haystack_missing", ["needle", f"{DEMO}/diffllama", "--haystack", f"{TMP}/none.txt", "--needle", "k_apple",
                                  "--question", "?", "--answer", "v_1"], "cannot open"),
            ("needle_vocab_differs", ["needle", f"{DEMO}/diffllama", "--vs", LLAMA, "--task", "kv", "--trials", "1"],
             "different vocabularies"),
            ("kv_too_many_pairs", ["needle", f"{DEMO}/diffllama", "--task", "kv", "--pairs", "30", "--context-tokens", "40"],
             "too short"),
        ]
    else:
        print("skip bad_input[span_text, vocab, haystack]: notebooks-data/models/diffllama absent")
    p_all = []
    for name, args, needle in cases:
        r = run(*args)
        lines = r.stderr.strip().splitlines()
        p = []
        if r.returncode != 2:
            p.append(f"exit {r.returncode}")
        if len(lines) != 1 or needle not in r.stderr:
            p.append(f"stderr {r.stderr.strip()!r} (want one line with {needle!r})")
        if r.stdout:
            p.append("wrote to stdout")
        report(f"bad_input[{name}]", p)
        p_all += p
    # Different vocabularies are allowed with --ids (ids inside both).
    if demo:
        r = run("compare", f"{DEMO}/diffllama", "--vs", LLAMA, "--ids", "1,5,9,5,7", "--span-tokens", "1:2", "--json")
        report("vocab_differs_allowed_with_ids", [] if r.returncode == 0 else [r.stderr.strip()])
    # A failed run leaves no output file.
    out = os.path.join(TMP, "none.h5")
    run("compare", DIFF, "--ids", ids, "--query-pos", "99", "-o", out)
    report("no_output_on_failure", [] if not os.listdir(TMP) or not any(n.startswith("none.h5") for n in os.listdir(TMP))
           else [f"left {[n for n in os.listdir(TMP) if n.startswith('none.h5')]}"])
    exists = os.path.join(TMP, "exists.h5")
    open(exists, "w").close()
    r = run("compare", DIFF, "--ids", ids, "-o", exists)
    report("bad_input[output_exists]", [] if r.returncode == 2 and "already exists" in r.stderr else
           [f"exit {r.returncode}: {r.stderr.strip()}"])


def main():
    if not os.access(DS, os.X_OK):
        print(f"FAIL compare_binary: {DS} missing")
        return 1
    for fn in (golden_compare, qwen_compare, demo_compare, demo_needle, needle_ids_without_tokenizer, bad_inputs):
        try:
            fn()
        except Exception as e:  # a crash in one group is one failure, the others still run
            report(fn.__name__, [f"{type(e).__name__}: {e}"])
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
