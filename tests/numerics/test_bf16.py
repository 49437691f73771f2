"""The bf16 compute mode against transformers' own bf16 forward (docs/numerics.md, "bf16 compute").

For every golden case (tests/data/golden) and every ../shared case, and every prompt of its
float64 reference, `diffscope --compute bf16` and transformers in bf16 (tests/data/golden/bf16,
written by tools/gen_bf16_reference.py) are both measured against the float64 truth:

  * logits, every softmax map of every layer, the differential maps, and the GroupNorm input
    RMS (DiffLlama): the RMS of the error over all elements of all the case's prompts.

Each check prints both errors (and both maxima, for information) and fails when diffscope's RMS
error exceeds transformers' by more than 10 % (plus FLOOR, far below bf16's resolution, so
that two exact zeros pass: a one-token prompt's map is exactly 1). The RMS, not the maximum:
both runs round the weights the same way, so most of each error is shared, and the maximum
over a few hundred elements of a tiny model is one coin toss of that shared part (so is the
RMS of the 4 GroupNorm values of a one-token prompt: hence pooled over the prompts). Greedy decoding: diffscope's 12 new ids equal transformers-bf16's
up to the first step where transformers' top two logits are closer than twice its own maximum
logits error on that prompt (a tie within bf16 rounding: either id is right).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from common import DS, GOLDEN, SHARED, exit_status, report

TMP = tempfile.mkdtemp(prefix="ds-bf16-test-")
MARGIN = 1.10
FLOOR = 1e-6


def ds(*args):
    return subprocess.run([DS, *args, "--compute", "bf16"], capture_output=True, text=True)


def err(got, want):
    """(sum of squares, count, max) of the error of GOT against WANT: pooled over a case's prompts."""
    e = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    return np.array([np.sum(e * e), e.size, e.max()])


def pooled(e):
    """(RMS, max) of pooled errors."""
    return np.sqrt(e[0] / e[1]), e[2]


def errors(model, ids, truth, label):
    """diffscope's errors on one prompt: {name: value}, or a string on failure."""
    ids_arg = ",".join(map(str, ids))
    lp, dp = os.path.join(TMP, label + "-logits.h5"), os.path.join(TMP, label + "-dump.h5")
    r = ds("logits", model, "--ids", ids_arg, "-o", lp, "--force")
    if r.returncode:
        return f"logits: exit {r.returncode}: {r.stderr.strip()}"
    r = ds("dump", model, "--ids", ids_arg, "-o", dp, "--force", "--what", "all")
    if r.returncode:
        return f"dump: exit {r.returncode}: {r.stderr.strip()}"
    out = {}
    with h5py.File(lp, "r") as f:
        out["logits"] = err(f["logits"][:], truth["logits"][:])
    att = truth["attentions"][:]
    with h5py.File(dp, "r") as f:
        mode = f["provenance"].attrs.get("compute") if "provenance" in f else None
        if mode != "bf16":
            return f"the dump's provenance records compute {mode!r}, not 'bf16'"
        diff = f.attrs["arch"] == "diffllama"
        maps, dmaps, rms = [], [], []
        for l in range(att.shape[0]):
            a = f[f"layers/{l}/attn"]
            maps.append(np.concatenate([a["softmax1"][:], a["softmax2"][:]]) if diff else a["softmax"][:])
            if diff:
                dmaps.append(a["diff"][:])
                rms.append(f[f"layers/{l}/groupnorm/rms"][:].T)
    out["maps"] = err(np.stack(maps), att)
    if diff:
        out["diff_maps"] = err(np.stack(dmaps), truth["diff_maps"][:])
        out["groupnorm_rms"] = err(np.stack(rms), truth["groupnorm_input_rms"][:])
    os.remove(lp)
    os.remove(dp)
    return out


def hf_errors(hf, truth):
    out = {"logits": err(hf["logits"][:], truth["logits"][:]), "maps": err(hf["attentions"][:], truth["attentions"][:])}
    if "diff_maps" in hf:
        out["diff_maps"] = err(hf["diff_maps"][:], truth["diff_maps"][:])
        out["groupnorm_rms"] = err(hf["groupnorm_input_rms"][:], truth["groupnorm_input_rms"][:])
    return out


def greedy_problem(model, hf, hf_logits_err):
    """None when diffscope's greedy ids agree with transformers-bf16's as the docstring says."""
    ids = hf["greedy"][:]
    T = len(ids) - len(hf["greedy_gap"])
    r = ds("generate", model, "--ids", ",".join(map(str, ids[:T])), "-n", str(len(ids) - T), "--ignore-eos", "--json")
    if r.returncode:
        return f"generate: exit {r.returncode}: {r.stderr.strip()}"
    mine = json.loads(r.stdout)["output_ids"]
    mine = mine[T:] if len(mine) == len(ids) else mine
    for i, (a, b) in enumerate(zip(mine, ids[T:])):
        if a != b:
            gap = hf["greedy_gap"][i]
            if gap <= 2 * hf_logits_err:
                return None
            return f"greedy step {i}: id {a}, transformers-bf16 {b} (its top-2 gap {gap:.3g} > 2 x {hf_logits_err:.3g})"
    return None


def describe(mine, theirs):
    return ", ".join(f"{k} {pooled(mine[k])[0]:.2e} vs {pooled(theirs[k])[0]:.2e} (max {mine[k][2]:.2e} vs "
                     f"{theirs[k][2]:.2e})" for k in mine)


def check_case(label, model, ref_path, sub, hf_path):
    ref, hf_file = h5py.File(ref_path, "r"), h5py.File(hf_path, "r")
    name = f"bf16_vs_transformers_bf16[{label}]"
    p, mine_all, theirs_all = [], {}, {}
    for group in ref:
        truth, hf = ref[group + sub], hf_file[group]
        mine = errors(model, ref[group]["input_ids"][:], truth, f"{label}-{group}")
        if isinstance(mine, str):
            report(name, [f"{group}: {mine}"])
            return
        theirs = hf_errors(hf, truth)
        print(f"# {label}/{group}: RMS error vs float64, diffscope bf16 vs transformers bf16: " + describe(mine, theirs))
        for k in mine:
            mine_all[k] = mine_all[k] + mine[k] if k in mine_all else mine[k]
            theirs_all[k] = theirs_all[k] + theirs[k] if k in theirs_all else theirs[k]
            mine_all[k][2], theirs_all[k][2] = max(mine_all[k][2], mine[k][2]), max(theirs_all[k][2], theirs[k][2])
        g = greedy_problem(model, hf, theirs["logits"][2])
        if g:
            p.append(f"{group}: {g}")
    print(f"# {label}, all prompts: " + describe(mine_all, theirs_all))
    for k in mine_all:
        a, b = pooled(mine_all[k])[0], pooled(theirs_all[k])[0]
        if a > MARGIN * b + FLOOR:
            p.append(f"{k}: diffscope RMS error {a:.3g} > 1.1 x transformers-bf16's {b:.3g}")
    report(name, p)


def check_python_api():
    """diffscope.load(..., compute="bf16") runs the same products as `--compute bf16`."""
    sys.path.insert(0, "python")
    import diffscope
    model = f"{GOLDEN}/models/diff-gqa-tied-bf16"
    ids = [3, 17, 5, 60, 2, 9, 44, 81]
    p, got = [], {}
    for mode in ("f32", "bf16"):
        out = os.path.join(TMP, f"py-{mode}.h5")
        r = subprocess.run([DS, "logits", model, "--ids", ",".join(map(str, ids)), "-o", out, "--force", "--compute",
                            mode], capture_output=True, text=True)
        if r.returncode:
            return report("python_load_compute_bf16", [f"logits --compute {mode}: {r.stderr.strip()}"])
        with h5py.File(out, "r") as f:
            got[mode] = f["logits"][:]
    with diffscope.load(model, compute="bf16") as m:
        logits, _ = m.run_with_cache(ids)
        if m.compute != "bf16":
            p.append(f"Model.compute is {m.compute!r}")
    logits = np.asarray(logits)
    scale = np.abs(got["bf16"]).max()
    if np.abs(logits - got["bf16"]).max() > 1e-5 * scale:
        p.append(f"Python bf16 logits differ from the CLI's by {np.abs(logits - got['bf16']).max():.2e}")
    if np.abs(got["bf16"] - got["f32"]).max() < 1e-4 * scale:
        p.append("--compute bf16 gave the f32 logits: the mode did not apply")
    try:
        diffscope.load(model, compute="fp8")
        p.append("compute='fp8' was accepted")
    except ValueError:
        pass
    report("python_load_compute_bf16", p)


def main():
    check_python_api()
    bf16 = os.path.join(GOLDEN, "bf16")
    found = sorted(glob.glob(f"{bf16}/*.h5"))
    if len(found) < len(glob.glob(f"{GOLDEN}/refs/*.h5")):
        report("bf16_references_present", [f"{bf16} lacks transformers-bf16 files of some golden cases"])
    for hf_path in found:
        label = os.path.basename(hf_path)[:-3]
        if label.startswith("shared-"):
            case = label[len("shared-"):]
            base = os.path.join(SHARED, "reference/transformers")
            if not os.path.isdir(base):
                print(f"skip bf16_vs_transformers_bf16[{label}]: ../shared not present")
                continue
            check_case(label, f"{base}/models/{case}", f"{base}/refs/{case}.h5", "/fp64", hf_path)
        else:
            check_case(label, f"{GOLDEN}/models/{label}", f"{GOLDEN}/refs/{label}.h5", "", hf_path)
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
