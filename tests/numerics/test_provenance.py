"""The provenance record of every output kind (docs/dump-format.md#provenance), checked against
what was run: the command line splits back (shlex) into the argv given, the hashes are
recomputed with hashlib (the weights by the documented rule, whole files and sampled), the
thread count is --threads, the interventions are the ones asked for, the time lies within the
run; the HDF5 record and the JSON record of one run are the same; and `verify` names exactly
the fields in which two dumps' records differ while its numeric verdict ignores them."""
import datetime
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from common import DS, GOLDEN, exit_status, report

DEMO = "notebooks-data/models"
WHOLE_MAX = 16 << 20
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    with open(path, "rb") as f:
        return sha256(f.read())


def weight_files(model):
    index = os.path.join(model, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            names = set(json.load(f)["weight_map"].values())
        return [os.path.join(model, n) for n in sorted(names)]
    return [os.path.join(model, "model.safetensors")]


def weights_sha256(model):
    """The documented rule: the files whole up to 16 MiB in all, else headers and 64 blocks."""
    blobs = []
    for p in weight_files(model):
        with open(p, "rb") as f:
            blobs.append(f.read())
    h = hashlib.sha256()
    if sum(map(len, blobs)) <= WHOLE_MAX:
        for b in blobs:
            h.update(b)
        return h.hexdigest(), "files"
    for b in blobs:
        start = 8 + int.from_bytes(b[:8], "little")
        h.update(b[:start])
        data = len(b) - start
        if data <= SAMPLES * SAMPLE_BYTES:
            h.update(b[start:])
            continue
        for i in range(SAMPLES):
            off = start + (data - SAMPLE_BYTES) * i // (SAMPLES - 1)
            h.update(b[off:off + SAMPLE_BYTES])
    return h.hexdigest(), "sampled"


def expected_models(models):
    tok = [os.path.join(m, "tokenizer.json") for m in models]
    w = [weights_sha256(m) for m in models]
    return {"model_path": list(models),
            "config_sha256": [file_sha256(os.path.join(m, "config.json")) for m in models],
            "weights_sha256": [x[0] for x in w], "weights_hashed": [x[1] for x in w],
            "tokenizer_sha256": [file_sha256(t) if os.path.exists(t) else "" for t in tok]}


def git_commit():
    r = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def h5_record(path):
    with h5py.File(path, "r") as f:
        g = f["provenance"]
        out = {}
        for k, v in g.attrs.items():
            if isinstance(v, np.ndarray):
                out[k] = [x.decode() if isinstance(x, bytes) else x for x in v]
            elif isinstance(v, np.integer):
                out[k] = int(v)
            else:
                out[k] = v.decode() if isinstance(v, bytes) else v
        return out


def check_record(rec, argv, models, threads, interventions, t0, t1, compute="f32"):
    """Problems of record REC against the run of ARGV."""
    p = []
    want = {"cwd": os.getcwd(), "interventions": interventions, "threads": threads, "compute": compute,
            "host": socket.gethostname(), "tool_version": VERSION, **expected_models(models)}
    for k, v in want.items():
        if rec.get(k) != v:
            p.append(f"{k} = {rec.get(k)!r}, want {v!r}")
    try:
        if shlex.split(rec["command"]) != argv:
            p.append(f"command {rec['command']!r} splits into {shlex.split(rec['command'])}, ran {argv}")
    except (KeyError, ValueError) as e:
        p.append(f"command: {e!r}")
    try:
        created = datetime.datetime.strptime(rec["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        if not t0 <= created <= t1:
            p.append(f"created {rec['created']} outside the run ({t0} .. {t1})")
    except (KeyError, ValueError) as e:
        p.append(f"created: {e!r}")
    commit = git_commit()
    got = rec.get("git_commit", "")
    if commit is not None and got.removesuffix("-dirty") != commit.removesuffix("-dirty"):
        p.append(f"git_commit {got!r}, the tree is {commit!r}")
    if commit is None and not got:
        p.append("git_commit empty")
    return p


def run(name, argv, models, threads, interventions, h5=None, json_out=False, compute="f32"):
    """Runs ARGV and checks the record of its HDF5 output H5 and/or its JSON on stdout."""
    t0 = now()
    r = subprocess.run(argv, capture_output=True, text=True)
    t1 = now()
    if r.returncode != 0:
        report(name, [f"exit {r.returncode}: {r.stderr.strip()[-300:]}"])
        return None
    p, recs = [], []
    if h5:
        recs.append(("h5", h5_record(h5)))
    if json_out:
        recs.append(("json", json.loads(r.stdout).get("provenance", {})))
    for kind, rec in recs:
        p += [f"{kind}: {x}" for x in check_record(rec, argv, models, threads, interventions, t0, t1, compute)]
    if len(recs) == 2 and recs[0][1] != recs[1][1]:
        p.append(f"HDF5 and JSON records differ: {recs[0][1]} vs {recs[1][1]}")
    report(name, p)
    return recs[0][1] if recs else None


def small_sharded_init(T):
    """A model whose weights exceed 16 MiB, in several shards: the sampled rule."""
    cfg = {"model_type": "diffllama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32000, "max_position_embeddings": 64,
           "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    path = os.path.join(T, "big.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(T, "big")
    r = subprocess.run([DS, "init", out, "--like", path, "--shard-mb", "12"], capture_output=True, text=True)
    return out if r.returncode == 0 else None


def check_verify(T, model):
    """Two dumps that differ in --threads and a lambda override: verify names exactly the
    fields that differ, --provenance shows their values; the numeric verdict ignores them."""
    names = []
    base = [DS, "dump", model, "--ids", "1,5,9,13,17", "--what", "softmax,diff"]
    a, b, c = (os.path.join(T, x) for x in ("va.h5", "vb.h5", "vc.h5"))
    runs = [base + ["--threads", "1", "--lambda-override", "1=0.5", "-o", a], base + ["--threads", "2", "-o", b],
            base + ["--threads", "1", "-o", c]]
    for argv in runs:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            report("provenance_verify_diff", [f"{argv}: exit {r.returncode}: {r.stderr.strip()}"])
            return
    ra, rb = h5_record(a), h5_record(b)
    want = {"command", "interventions", "threads"} | ({"created"} if ra["created"] != rb["created"] else set())
    p = []
    differ = {k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)}
    if differ != want:
        p.append(f"the records differ in {sorted(differ)}, expected {sorted(want)}")
    r = subprocess.run([DS, "verify", a, b, "--provenance", "--json"], capture_output=True, text=True)
    if r.returncode:
        p.append(f"verify --provenance --json: exit {r.returncode}: {r.stderr.strip()}")
    else:
        js = json.loads(r.stdout)
        if set(js["differ"]) != want:
            p.append(f"verify --provenance --json differ = {js['differ']}, expected {sorted(want)}")
        if js["dump"] != ra or js["reference"] != rb:
            p.append("verify --provenance --json records are not the files' records")
    r = subprocess.run([DS, "verify", a, b, "--provenance"], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    for line in ("- threads: 1", "+ threads: 2", '- interventions: ["lambda-override 1=0.5"]', "+ interventions: []"):
        if line not in lines:
            p.append(f"verify --provenance has no line {line!r}: {lines}")
    shown = {l[2:].split(":")[0] for l in lines if l[:2] in ("- ", "+ ")}
    if r.returncode or shown != want:
        p.append(f"verify --provenance: exit {r.returncode}, fields shown {sorted(shown)}, expected {sorted(want)}")
    report("provenance_verify_diff", p)
    # Same numbers, other threads: the numeric check passes (exit 0), the note names the fields.
    r = subprocess.run([DS, "verify", c, b], capture_output=True, text=True)
    note = [l for l in r.stderr.splitlines() if "provenance differs" in l]
    p = [] if r.returncode == 0 else [f"exit {r.returncode}: {r.stderr.strip()[-300:]}"]
    if not note or "threads" not in note[0] or "interventions" in note[0]:
        p.append(f"stderr note {note}")
    # A lambda override changes the numbers: exit 1, as without provenance.
    r = subprocess.run([DS, "verify", a, b], capture_output=True, text=True)
    if r.returncode != 1:
        p.append(f"override vs none: exit {r.returncode}, want 1")
    report("provenance_verify_numeric_verdict_unchanged", p)


def main():
    global VERSION
    VERSION = subprocess.run([DS, "--version"], capture_output=True, text=True).stdout.split()[1]
    diff, llama = f"{DEMO}/diffllama", f"{DEMO}/llama"
    if not os.path.isdir(diff) or not os.path.isdir(llama):
        print(f"skip provenance_outputs: {DEMO}/{{diffllama,llama}} absent")
        return
    with tempfile.TemporaryDirectory() as T:
        spaced = os.path.join(T, "a model")  # a path that has to be quoted
        os.symlink(os.path.abspath(diff), spaced)
        out = os.path.join(T, "dump out.h5")
        ivs = ["lambda-override 1=0.5", "ablate-head 0.1"]
        run("provenance_dump", [DS, "dump", spaced, "--prompt", "it's a \"k_apple\" — ünï $HOME", "--threads", "1",
                                "--lambda-override", "1=0.5", "--ablate-head", "0.1", "-o", out, "--json"],
            [spaced], 1, ivs, h5=out, json_out=True)
        sharded = f"{GOLDEN}/models/diff-sharded-deep-f32"
        out = os.path.join(T, "logits.h5")
        run("provenance_logits_sharded_bf16", [DS, "logits", sharded, "--ids", "1,2,3", "--threads", "2", "--compute",
                                               "bf16", "-o", out], [sharded], 2, [], h5=out, compute="bf16")
        big = small_sharded_init(T)
        if big is None:
            report("provenance_weights_sampled", ["diffscope init of the 33 MB model failed"])
        else:
            out = os.path.join(T, "big.h5")
            rec = run("provenance_weights_sampled", [DS, "logits", big, "--ids", "1,2", "--threads", "1", "-o", out],
                      [big], 1, [], h5=out)
            if rec and rec["weights_hashed"] != ["sampled"]:
                report("provenance_weights_sampled_rule", [f"weights_hashed {rec['weights_hashed']}"])
        out = os.path.join(T, "compare.h5")
        run("provenance_compare", [DS, "compare", "--model", diff, "--vs", llama, "--ids", "1,5,9,13,17,21",
                                   "--span-tokens", "2:4", "--threads", "2", "--ablate-head", "0.1", "-o", out,
                                   "--json"], [diff, llama], 2, ["ablate-head 0.1"], h5=out, json_out=True)
        needle = [DS, "needle", diff, "--vs", llama, "--task", "kv", "--pairs", "2", "--context-tokens", "8", "--trials",
                  "1", "--depths", "0,100", "--threads", "1", "--json"]
        run("provenance_needle_json", needle, [diff, llama], 1, [], json_out=True)
        out = os.path.join(T, "needle.h5")
        run("provenance_needle_h5", needle + ["-o", out], [diff, llama], 1, [], h5=out, json_out=True)
        out = os.path.join(T, "lens.h5")
        run("provenance_lens", [DS, "lens", diff, "--ids", "1,5,9,13", "--threads", "1", "--ablate-head", "1.0",
                                "-o", out, "--json"], [diff], 1, ["ablate-head 1.0"], h5=out, json_out=True)
        out = os.path.join(T, "patch.h5")
        run("provenance_patch", [DS, "patch", diff, "--clean-ids", "1,5,9,13", "--corrupted-ids", "1,5,10,13",
                                 "--answer-id", "7", "--patch", "lambda,head_out", "--lambda-override", "1=0.5",
                                 "--corrupt-lambda", "0=0.25", "--threads", "2", "-o", out, "--json"], [diff], 2,
            ["lambda-override 1=0.5", "corrupt-lambda 0=0.25"], h5=out, json_out=True)
        prompts = os.path.join(T, "p.jsonl")
        with open(prompts, "w") as f:
            f.write('{"ids": [1, 5, 9, 13], "span": [1, 3]}\n{"ids": [1, 7, 8, 9, 10]}\n')
        out = os.path.join(T, "sweep.h5")
        argv = [DS, "sweep", "--model", diff, "--vs", llama, "--prompts", prompts, "--threads", "2",
                "--lambda-override", "0=0.25", "--dump-layers", "1", "-o", out, "--json"]
        t0 = now()
        if run("provenance_sweep", argv, [diff, llama], 2, ["lambda-override 0=0.25"], h5=out, json_out=True):
            # the maps kept per prompt and model: each model's own record, A's interventions
            maps = os.path.join(out + ".shards", "maps")
            p = []
            for name, model, ivs in (("A", diff, ["lambda-override 0=0.25"]), ("B", llama, [])):
                for i in range(2):
                    rec = h5_record(os.path.join(maps, "%s-%08d.h5" % (name, i)))
                    p += [f"{name}-{i}: {x}" for x in check_record(rec, argv, [model], 2, ivs, t0, now())]
            report("provenance_sweep_maps", p)
        check_verify(T, diff)


main()
sys.exit(exit_status())
