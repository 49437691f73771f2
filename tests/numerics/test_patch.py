"""Checks `diffscope patch` against transformers, exact invariants, its HDF5 output and bad inputs.

References: tests/data/golden/patch/<case>.h5, made by tools/gen_patch_reference.py with
PyTorch hooks and weight surgery on transformers' float64 forward pass of the golden models
(DiffLlama: resid_pre, resid_pre_all, head_out, softmax1, softmax2 and lambda tables with a
corrupted lambda in layer 0; Llama: resid_pre, resid_pre_all, head_out). Every raw table value
and the unpatched metrics must be within ATOL of transformers (measured: 4e-6 at most), both for
the logit difference and for the log-probability metric.

Invariants that hold bit for bit: patching every position of resid_pre at any layer gives the
clean run's metric (normalized exactly 1); patching a position whose clean and corrupted tokens
agree at layer 0 gives the corrupted metric; without --corrupt-lambda the lambda table is the
corrupted metric (the clean and corrupted lambda are the same weights).

Run by tests/cli/test_patch.sh with Debian's python3 (h5py, numpy). Prints ok/FAIL/skip lines.
"""
import json
import os
import shutil
import tempfile

import h5py
import numpy as np

from common import GOLDEN, exit_status, report, run

ATOL = 2e-5  # raw metric against transformers' float64 forward
# normalized = (raw - corrupted) / (clean - corrupted), from diffscope's own metrics: exact up to
# double rounding. Against transformers the raw tolerance carries through that division, which
# magnifies it where clean and corrupted are close (0.021 apart for llama-mha-bias-f32's
# log-probability, with normalized values up to 38).
NORM_RTOL = 1e-12
CASES = ["diff-mha-f32", "diff-gqa-tied-bf16", "diff-sharded-deep-f32", "diff-headdim-bias-llama3-f16",
         "llama-mha-bias-f32", "llama-gqa-headdim-tied-bf16"]
TMP = tempfile.mkdtemp(prefix="ds-patch-test-")


def ids_arg(a):
    return ",".join(str(int(x)) for x in a)


def patch_args(case, ref, metric, corrupt=True, extra=()):
    """The command of REF's case; CORRUPT: with the reference's --corrupt-lambda."""
    a = dict(ref.attrs)
    args = ["patch", f"{GOLDEN}/models/{case}", "--clean-ids", ids_arg(ref["clean_ids"][:]), "--corrupted-ids",
            ids_arg(ref["corrupted_ids"][:]), "--answer-id", str(a["answer_id"]), "--threads", "1"]
    if metric == "logit_diff":
        args += ["--wrong-id", str(a["wrong_id"])]
    if corrupt and a["corrupt_lambda_layer"] >= 0:
        args += ["--corrupt-lambda", "%d=%r" % (a["corrupt_lambda_layer"], float(a["corrupt_lambda_value"]))]
    return args + list(extra)


def run_json(args):
    r = run(*args, "--json")
    if r.returncode:
        return None, f"exit {r.returncode}: {r.stderr.strip()}"
    return json.loads(r.stdout), None


def check_reference(case, ref, metric):
    out, err = run_json(patch_args(case, ref, metric))
    if err:
        return [err], 0.0
    g = ref[metric]
    problems, worst = [], 0.0
    clean, corrupted = g["clean"][()], g["corrupted"][()]
    for name, got, want in (("clean", out["clean"], clean), ("corrupted", out["corrupted"], corrupted)):
        worst = max(worst, abs(got - want))
        if abs(got - want) > ATOL:
            problems.append(f"{name} {got} vs transformers {want}")
    want_tables = sorted(k for k in g if k not in ("clean", "corrupted"))
    if sorted(out["tables"]) != want_tables:
        problems.append(f"tables {sorted(out['tables'])}, expected {want_tables}")
    for t in want_tables:
        if t not in out["tables"]:
            continue
        want = g[t][:]
        raw = np.array(out["tables"][t]["raw"], dtype=np.float64)
        norm = np.array(out["tables"][t]["normalized"], dtype=np.float64)
        if raw.shape != want.shape:
            problems.append(f"{t}: shape {raw.shape}, transformers {want.shape}")
            continue
        if np.ptp(want) < 1e-3 and t not in ("resid_pre_all",):
            problems.append(f"{t}: the reference does not vary, the check would be weak")
        err = float(np.abs(raw - want).max())
        worst = max(worst, err)
        if err > ATOL:
            i = np.unravel_index(np.argmax(np.abs(raw - want)), want.shape)
            problems.append(f"{t}{list(i)}: {raw[i]} vs transformers {want[i]} (|d| {err:.2e})")
        own = (raw - out["corrupted"]) / (out["clean"] - out["corrupted"])
        oerr = float((np.abs(norm - own) / np.maximum(1.0, np.abs(own))).max())
        if oerr > NORM_RTOL:
            problems.append(f"{t}: normalized is not (raw - corrupted) / (clean - corrupted): off by {oerr:.2e}")
        want_norm = (want - corrupted) / (clean - corrupted)
        bound = ATOL * 2 * (1 + np.abs(want_norm)) / abs(clean - corrupted)
        if np.any(np.abs(norm - want_norm) > bound):
            nerr = float(np.abs(norm - want_norm).max())
            problems.append(f"{t}: normalized off by {nerr:.2e}, beyond the raw tolerance carried through")
    return problems, worst


def check_invariants(case, ref):
    """Exact equalities, with and without the lambda corruption."""
    problems = []
    diff = ref.attrs["corrupt_lambda_layer"] >= 0
    clean_ids, corrupted_ids = ref["clean_ids"][:], ref["corrupted_ids"][:]
    same = [p for p in range(len(clean_ids)) if clean_ids[p] == corrupted_ids[p]]
    for corrupt in ((True, False) if diff else (False,)):
        out, err = run_json(patch_args(case, ref, "logit_diff", corrupt))
        if err:
            return [err]
        tag = "corrupted lambda" if corrupt else "tokens only"
        tables = out["tables"]
        # layers after every corrupted lambda: their input determines the rest of the run
        first = ref.attrs["corrupt_lambda_layer"] + 1 if corrupt else 0
        for l, (v, n) in enumerate(zip(tables["resid_pre_all"]["raw"], tables["resid_pre_all"]["normalized"])):
            if l >= first and (v != out["clean"] or n != 1.0):
                problems.append(f"{tag}: resid_pre_all layer {l} = {v!r} (normalized {n!r}), clean {out['clean']!r}")
        for p in same:
            if tables["resid_pre"]["raw"][0][p] != out["corrupted"]:
                problems.append(f"{tag}: resid_pre[0][{p}] (same token) = {tables['resid_pre']['raw'][0][p]!r}, "
                                f"corrupted {out['corrupted']!r}")
        if diff and not corrupt:
            for l, v in enumerate(tables["lambda"]["raw"]):
                if v != out["corrupted"]:
                    problems.append(f"lambda[{l}] = {v!r} without a lambda corruption, corrupted {out['corrupted']!r}")
        if diff and corrupt and tables["lambda"]["raw"][0] == out["corrupted"]:
            problems.append("patching the corrupted layer's lambda back changed nothing")
    if not same:
        problems.append("no position with equal tokens: the invariant is not exercised")
    # --ablate-head acts on every run: the ablated head is zero in the clean run too, so
    # patching it changes nothing; likewise a --lambda-override of every run for the lambda table
    extra = ["--ablate-head", "1.0"] + (["--lambda-override", "1=0.25"] if diff else [])
    out, err = run_json(patch_args(case, ref, "logit_diff", False, extra))
    if err:
        return problems + [err]
    if out["tables"]["head_out"]["raw"][1][0] != out["corrupted"]:
        problems.append(f"ablated head 1.0 patched: {out['tables']['head_out']['raw'][1][0]!r}, corrupted "
                        f"{out['corrupted']!r}")
    if diff and out["tables"]["lambda"]["raw"][1] != out["corrupted"]:
        problems.append(f"lambda[1] under --lambda-override: {out['tables']['lambda']['raw'][1]!r}")
    return problems


def check_h5(case, ref):
    """-o holds the JSON's numbers, labelled axes, provenance; the output contract's --force rule."""
    path = os.path.join(TMP, case + ".h5")
    args = patch_args(case, ref, "logit_diff")
    out, err = run_json(args + ["-o", path])
    if err:
        return [err]
    problems = []
    with h5py.File(path, "r") as f:
        a = f.attrs
        for key in ("format", "format_version", "config", "metric", "answer_id", "wrong_id", "clean", "corrupted"):
            if key not in a:
                problems.append(f"attribute {key} missing")
        pv = f["provenance"].attrs if "provenance" in f else {}  # every field: test_provenance.py
        if problems:
            return problems
        if a["format"] != "diffscope-patch" or a["metric"] != "logit_diff":
            problems.append(f"format {a['format']!r}, metric {a['metric']!r}")
        if "--corrupted-ids" not in pv.get("command", "") or list(pv.get("model_path", [])) != [f"{GOLDEN}/models/{case}"]:
            problems.append(f"provenance command {pv.get('command')!r}, model_path {pv.get('model_path')!r}")
        if not np.allclose([a["clean"], a["corrupted"]], [out["clean"], out["corrupted"]], rtol=1e-14, atol=0):
            problems.append("clean/corrupted attributes differ from --json")
        # the invariant again, in the file's exact doubles (no lambda corruption after layer 0)
        if not np.all(f["resid_pre_all/raw"][1:] == a["clean"]) or not np.all(f["resid_pre_all/normalized"][1:] == 1.0):
            problems.append(f"resid_pre_all/raw {f['resid_pre_all/raw'][:]} is not clean {a['clean']!r}")
        if list(f["tokens/clean_ids"][:]) != list(ref["clean_ids"][:]):
            problems.append("tokens/clean_ids")
        for t, tj in out["tables"].items():
            for kind in ("raw", "normalized"):
                d = f[f"{t}/{kind}"]
                # cJSON prints 15 significant digits when they read back within its epsilon
                if not np.allclose(d[:], np.array(tj[kind], dtype=np.float64), rtol=1e-14, atol=0):
                    problems.append(f"{t}/{kind} differs from --json")
                labels = [dim.label for dim in d.dims]
                if labels != tj["dims"]:
                    problems.append(f"{t}/{kind} axes {labels}, expected {tj['dims']}")
    import sys
    sys.path.insert(0, "python")
    import diffscope
    with diffscope.read_patch(path) as rp:
        t = rp.table("head_out")
        if t.dims != ("layer", "head") or not np.allclose(t.values, out["tables"]["head_out"]["normalized"], rtol=1e-14):
            problems.append(f"read_patch: head_out {t!r} differs from --json")
        if rp.table("resid_pre", normalized=False).dims != ("layer", "position"):
            problems.append("read_patch: resid_pre axes")
    before = open(path, "rb").read()
    r = run(*args, "-o", path)
    if r.returncode != 2 or len(r.stderr.strip().splitlines()) != 1 or open(path, "rb").read() != before:
        problems.append(f"an existing -o file without --force: exit {r.returncode}, {r.stderr.strip()!r}")
    r = run(*args, "-o", path, "--force")
    if r.returncode != 0:
        problems.append(f"--force: exit {r.returncode}, {r.stderr.strip()!r}")
    return problems


def main():
    worst = {}
    for case in CASES:
        with h5py.File(f"{GOLDEN}/patch/{case}.h5", "r") as ref:
            for metric in ("logit_diff", "logprob"):
                problems, w = check_reference(case, ref, metric)
                worst[case] = max(worst.get(case, 0.0), w)
                report(f"patch_vs_transformers_{case}_{metric}", problems)
            report(f"patch_invariants_{case}", check_invariants(case, ref))
            if case in ("diff-mha-f32", "llama-mha-bias-f32"):
                report(f"patch_h5_{case}", check_h5(case, ref))
    print("# patch: max |diffscope - transformers float64| of the metric: " +
          ", ".join(f"{c} {w:.1e}" for c, w in worst.items()))
    shutil.rmtree(TMP, ignore_errors=True)


main()
raise SystemExit(exit_status())
