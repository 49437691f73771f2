"""Checks `diffscope sweep` with h5py + NumPy:

* every per-prompt figure equals `diffscope compare` on the same tokens (bit for bit), and the
  GroupNorm summaries equal NumPy's over `diffscope dump`'s GroupNorm datasets;
* the aggregates equal NumPy's (nanmean, nanstd ddof=1, 1.96 std/sqrt(n), nanmedian) over the
  per-prompt datasets read through the master's virtual datasets;
* 1, 2 and 3 MPI ranks (mpirun --oversubscribe) and --shard I/N + --merge give identical files,
  and so do --merge on 1 and 2 threads;
  MPI ranks that take prompts from each other's ranges run every prompt once;
* the maps kept with --dump-layers/--dump-heads, read through the master, have the bits of
  `diffscope dump` on the same ids; 1, 2 and 3 ranks keep the same maps; a selection outside
  either model is one message, exit 2, nothing written;
* a rank killed by SIGKILL mid-sweep, plus a torn journal record, then a rerun: the same
  datasets (maps included) as an uninterrupted run, and no prompt run twice;
* the kv grid: the prompts, top-1 tokens, accuracy and masses of `diffscope needle`;
* bad input: bad JSONL lines (one line naming the line, exit 2, nothing written), a missing
  model, an output folder that cannot be created, another sweep's results.

Models: the golden tiny DiffLlama and Llama (vocab 96, token ids) and the trained demo pair
(notebooks-data/models) when present. MPI checks skip when mpirun is missing.
Run by tests/cli/test_sweep.sh with Debian's python3. Prints ok/FAIL/skip lines.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import h5py
import numpy as np

from common import DS, GOLDEN, exit_status, report, run

GOLD = f"{GOLDEN}/models"
DIFF = f"{GOLD}/diff-sharded-deep-f32"
LLAMA = f"{GOLD}/llama-mha-bias-f32"
DEMO = "notebooks-data/models"
TMP = tempfile.mkdtemp(prefix="ds-sweep-test-")
MPIRUN = shutil.which("mpirun")
# Root in a container or CI: Open MPI refuses to start without these.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
# Under mpirun, the sanitizer build's leak check would report Open MPI's start-up allocations,
# which it keeps until exit (in plugins it has unloaded by then, so no suppression can name
# them). The same sweep code runs without MPI, leak-checked, in the other checks.
MPI_ENV = dict(ENV, ASAN_OPTIONS=":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"])))
HEADER = 24  # journal header bytes (src/cli/sweep_journal.c)


def sweep(*args, ranks=0):
    cmd = [DS, "sweep", *args]
    if ranks:
        cmd = [MPIRUN, "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV if ranks else ENV)


def write_jsonl(name, rows):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def datasets(path):
    """Every dataset of an HDF5 file (virtual ones read through), by name, and the maps of every
    prompt through the master's external links /{model}/maps/{i} (h5py's visit does not follow
    them)."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        for mod in ("A", "B"):
            for i in f[mod].get("maps", {}) if mod in f else ():
                def keep(name, obj, at=f"{mod}/maps/{i}/"):
                    if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
                        out[at + name] = obj[()]
                f[f"{mod}/maps/{i}"].visititems(keep)
    return out


def same_files(a, b):
    da, db = datasets(a), datasets(b)
    problems = [f"{k}: only in one file" for k in set(da) ^ set(db)]
    for k in set(da) & set(db):
        x, y = da[k], db[k]
        eq = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
        if not eq:
            problems.append(f"{k} differs")
    return problems


def golden_prompts():
    """Token-id prompts of several lengths, with and without spans and query positions."""
    rng = np.random.default_rng(19)
    rows = []
    for i in range(9):
        n = int(rng.integers(4, 40))
        row = {"ids": [int(x) for x in rng.integers(0, 96, n)], "id": f"p{i}", "group": i % 3}
        q = n - 1 if i % 3 else int(rng.integers(2, n))
        if i % 3 == 0:
            row["query"] = q - n if i % 2 else q
        if i % 4 != 1:
            b = int(rng.integers(1, q))
            row["span"] = [b, int(rng.integers(b + 1, q + 2))]
        rows.append(row)
    return rows


# ---- per prompt: compare, dump ----

def check_vs_compare(out, rows):
    problems = []
    with h5py.File(out, "r") as m:
        for i, row in enumerate(rows):
            args = ["compare", DIFF, "--vs", LLAMA, "--ids", ",".join(map(str, row["ids"])), "-o",
                    os.path.join(TMP, "c.h5"), "--force"]
            if "span" in row:
                args += ["--span-tokens", "%d:%d" % tuple(row["span"])]
            if "query" in row:
                args += ["--query-pos", str(row["query"])]
            r = run(*args)
            if r.returncode:
                return [f"compare prompt {i}: {r.stderr.strip()}"]
            with h5py.File(os.path.join(TMP, "c.h5"), "r") as c:
                for mod in ("A", "B"):
                    g = c[f"models/{mod}"]
                    for mp in [k for k in g if k in ("diff", "softmax1", "softmax")]:
                        for met in g[f"{mp}/per_head"]:
                            if not np.array_equal(m[f"{mod}/{mp}/{met}"][i], g[f"{mp}/per_head/{met}"][:], equal_nan=True):
                                problems.append(f"prompt {i} {mod}/{mp}/{met}")
                    for k, ck in (("lambda_full", "lambda_full"), ("cancelled_share", "cancelled_share_per_head")):
                        if ck in g and not np.array_equal(m[f"{mod}/{k}"][i], g[ck][:]):
                            problems.append(f"prompt {i} {mod}/{k}")
                    for which in ("scores", "resid"):
                        ref = [g[f"outliers/{which}"].attrs[k] for k in ("top1", "top2", "top3", "top10", "top100", "median")]
                        if not np.array_equal(m[f"{mod}/outliers/{which}"][i], ref):
                            problems.append(f"prompt {i} {mod}/outliers/{which}")
            if m["prompts/tokens"][i] != len(row["ids"]):
                problems.append(f"prompt {i}: /prompts/tokens")
            meta = json.loads(m["prompts/meta"][i])
            if meta.get("id") != row["id"] or meta.get("group") != row["group"]:
                problems.append(f"prompt {i}: metadata {meta}")
    return problems


def check_groupnorm_vs_dump(out, rows):
    problems = []
    with h5py.File(out, "r") as m:
        for i in (0, 4):
            ids, n = rows[i]["ids"], len(rows[i]["ids"])
            q = m["prompts/query"][i]
            path = os.path.join(TMP, "d.h5")
            r = run("dump", DIFF, "--ids", ",".join(map(str, ids)), "-o", path, "--force", "--what", "groupnorm,softmax")
            if r.returncode:
                return [f"dump: {r.stderr.strip()}"]
            with h5py.File(path, "r") as d:
                for l in range(m["A/lambda_full"].shape[1]):
                    rms = d[f"layers/{l}/groupnorm/rms"][:].astype(np.float64)  # [heads, T] float32
                    scale = d[f"layers/{l}/groupnorm/scale"][:].astype(np.float64)
                    refs = {"rms_query": rms[:, q], "scale_query": scale[:, q], "rms_mean": rms.mean(axis=1),
                            "scale_mean": scale.mean(axis=1)}
                    for k, ref in refs.items():
                        got = m[f"A/groupnorm/{k}"][i, l]
                        if not np.allclose(got, ref, rtol=2e-6, atol=0):
                            problems.append(f"prompt {i} layer {l} {k}: {got} vs {ref}")
                    # the cancelled share of row q (docs/compare.md) from softmax1, softmax2 and lambda
                    s1 = d[f"layers/{l}/attn/softmax1"][:, q, :q + 1].astype(np.float64)
                    s2 = d[f"layers/{l}/attn/softmax2"][:, q, :q + 1].astype(np.float64)
                    lam = float(d[f"layers/{l}/attn"].attrs["lambda_full"])
                    want = np.maximum(np.minimum(s1, lam * s2).sum(axis=1), 0) / s1.sum(axis=1)
                    got = m["A/cancelled_share"][i, l]
                    if not np.allclose(got, want, rtol=1e-6, atol=1e-7):
                        problems.append(f"prompt {i} layer {l} cancelled_share: {got} vs {want}")
    return problems


# ---- kept maps (--dump-layers / --dump-heads) ----

MAPS = ["--dump-layers", "0,1", "--dump-heads", "1,3"]  # in both golden models (Llama: 2 layers, 4 heads)


def map_datasets(group):
    """NAME -> dataset of every map under a dump file's (or a link's) /layers group."""
    out = {}
    group.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def check_maps_vs_dump(out, rows):
    """Every kept map, read through the master's link, has the bits of `diffscope dump` on the
    same ids with the same --layers/--heads (float32), and its heads attribute."""
    problems = []
    with h5py.File(out, "r") as m:
        for mod, model, names in (("A", DIFF, ("diff", "softmax1", "softmax2")), ("B", LLAMA, ("softmax",))):
            g = m[f"{mod}/maps"]
            if sorted(g, key=int) != [str(i) for i in range(len(rows))]:
                problems.append(f"{mod}/maps holds {sorted(g)}")
            if list(g.attrs["layers"]) != [0, 1] or list(g.attrs["heads"]) != [1, 3]:
                problems.append(f"{mod}/maps attributes {dict(g.attrs)}")
            for i in (0, 4, 7):
                path = os.path.join(TMP, "d.h5")
                r = run("dump", model, "--ids", ",".join(map(str, rows[i]["ids"])), "--layers", "0,1", "--heads", "1,3",
                        "--what", "softmax,diff" if mod == "A" else "softmax", "-o", path, "--force")
                if r.returncode:
                    return [f"dump {mod} prompt {i}: {r.stderr.strip()}"]
                with h5py.File(path, "r") as d:
                    ref, got = map_datasets(d["layers"]), map_datasets(m[f"{mod}/maps/{i}/layers"])
                    want = sorted(f"{l}/attn/{n}" for l in (0, 1) for n in names)
                    if sorted(ref) != want or sorted(got) != want:
                        problems.append(f"{mod} prompt {i}: maps {sorted(got)}, dump {sorted(ref)}, expected {want}")
                        continue
                    for k in want:
                        a, b = got[k], ref[k]
                        if a.dtype != np.float32 or a.shape != (2, len(rows[i]["ids"]), len(rows[i]["ids"])) or \
                                not np.array_equal(a[()].view(np.uint32), b[()].view(np.uint32)) or \
                                list(a.attrs["heads"]) != list(b.attrs["heads"]):
                            problems.append(f"{mod} prompt {i} {k}: differs from dump")
    return problems


def sweep_ranks(args, out, n):
    """ARGS on N MPI ranks, or as N --shard jobs and --merge without mpirun; problems."""
    if MPIRUN:
        r = sweep(*args, "-o", out, ranks=n)
        return [f"{n} ranks: exit {r.returncode}: {r.stderr.strip()[-300:]}"] if r.returncode else []
    for i in range(n):
        r = sweep(*args, "-o", out, "--shard", f"{i}/{n}")
        if r.returncode:
            return [f"--shard {i}/{n}: exit {r.returncode}: {r.stderr.strip()[-300:]}"]
    r = sweep(*args, "-o", out, "--merge")
    return [f"{n} shards, --merge: exit {r.returncode}: {r.stderr.strip()[-300:]}"] if r.returncode else []


def check_maps(base, rows):
    args = base + MAPS
    one = os.path.join(TMP, "maps1.h5")
    r = sweep(*args, "-o", one)
    if r.returncode:
        report("sweep_maps_equal_dump", [f"exit {r.returncode}: {r.stderr.strip()}"])
        return
    report("sweep_maps_equal_dump", check_maps_vs_dump(one, rows))

    problems = []
    if not any(k.startswith("B/maps/8/layers/1/attn/softmax") for k in datasets(one)):
        problems.append("the maps are not among the compared datasets")
    for n in (2, 3):
        o = os.path.join(TMP, f"maps{n}.h5")
        p = sweep_ranks(args, o, n)
        problems += p or [f"{n} ranks: {q}" for q in same_files(one, o)]
    report("sweep_maps_1_2_3_ranks_identical", problems)
    check_queue(args, one, len(rows))

    problems = []
    for sel, culprit in ((["--dump-layers", "4"], DIFF), (["--dump-layers", "3"], LLAMA), (["--dump-heads", "0,4"], DIFF),
                         (["--dump-heads", "1", "--dump-layers", "0,2-5"], DIFF)):
        out = os.path.join(TMP, "badmaps.h5")
        r = sweep(*base, *sel, "-o", out)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 2 or len(lines) != 1 or culprit not in lines[0] or sel[-2] not in lines[0] or \
                "out of range" not in lines[0]:
            problems.append(f"{sel}: exit {r.returncode}, {r.stderr.strip()!r}")
        if os.path.exists(out) or os.path.exists(out + ".shards"):
            problems.append(f"{sel}: wrote output")
    sh = os.path.join(TMP, "maps-merge.h5")
    r = sweep(*args, "-o", sh, "--shard", "0/1")
    m = sweep(*base, "-o", sh, "--merge")
    if r.returncode or m.returncode != 2 or "--dump-layers" not in m.stderr or os.path.exists(sh):
        problems.append(f"--merge without the maps options: exit {m.returncode}, {m.stderr.strip()!r}")
    report("sweep_maps_bad_selection", problems)


def journal_records(folder, rec):
    """Records per journal of FOLDER, by file name."""
    return {j: (os.path.getsize(os.path.join(folder, j)) - HEADER) / rec for j in os.listdir(folder)
            if j.startswith("journal-")}


def check_queue(args, one, n):
    """MPI ranks share prompts: with rank 0's range already done by a --shard 0/2 job, two ranks
    finish the sweep; whoever ran what, every prompt is run exactly once (the journals hold n
    records), the claims are removed, and the file equals one process's."""
    if not MPIRUN:
        print("skip sweep_queue_runs_each_prompt_once: no mpirun")
        return
    rec = sum(journal_records(one + ".shards", 1).values()) / n
    out = os.path.join(TMP, "queue.h5")
    r = sweep(*args, "-o", out, "--shard", "0/2")
    q = r.returncode and [f"--shard 0/2: {r.stderr.strip()}"] or sweep_ranks(args, out, 2)
    if not q:
        per = journal_records(out + ".shards", rec)
        q += same_files(one, out)
        if sum(per.values()) != n:
            q.append(f"journals hold {per} records for {n} prompts")
        if os.path.exists(os.path.join(out + ".shards", "claims")):
            q.append("the claims folder is left")
        with h5py.File(out, "r") as f:
            first = list(f.attrs["shard_first_prompt"])
        print(f"# sweep_queue: rank 0 ran {per.get('journal-00000-of-00002.bin', 0) - first[1]:.0f} of rank 1's "
              f"{first[2] - first[1]} prompts")
    report("sweep_queue_runs_each_prompt_once", q)


# ---- aggregates ----

def check_aggregates(out):
    problems = []
    with h5py.File(out, "r") as m:
        for mod in [k for k in ("A", "B") if k in m]:
            names = []
            m[mod].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n not in ("top1",) else None)
            for name in names:
                x = m[f"{mod}/{name}"][:].astype(np.float64)
                if name == "correct":
                    x = np.where(x < 0, np.nan, x)[:, None]
                agg = m[f"aggregates/{mod}/{name}"]
                problems += compare_agg(f"{mod}/{name}", x, agg)
                if x.ndim == 3:
                    problems += compare_agg(f"{mod}/{name}/over_heads", x.mean(axis=2), agg["over_heads"])
    return problems


def compare_agg(label, x, agg):
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            count = np.sum(~np.isnan(x), axis=0)
            mean = np.nanmean(x, axis=0)
            std = np.where(count > 1, np.nanstd(x, axis=0, ddof=1), np.nan)
            ref = {"mean": mean, "std": std, "ci95": 1.96 * std / np.sqrt(count), "median": np.nanmedian(x, axis=0)}
    problems = []
    if not np.array_equal(agg["count"][:].reshape(count.shape), count):
        problems.append(f"{label}/count")
    for k, v in ref.items():
        got = agg[k][:].reshape(v.shape)
        if not np.allclose(got, v, rtol=1e-12, atol=1e-15, equal_nan=True):
            problems.append(f"{label}/{k}: {got.ravel()[:3]} vs {v.ravel()[:3]}")
    return problems


# ---- ranks, shards, resume ----

def rank_pid(mpirun_pid, rank):
    """The pid of MPI rank RANK among mpirun's children (its environment says which)."""
    for pid in subprocess.run(["ps", "-o", "pid=", "--ppid", str(mpirun_pid)], capture_output=True, text=True).stdout.split():
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(pid)
    return None


def kill_mid_sweep(args, out, rec_size):
    """Starts the sweep (2 ranks when mpirun exists), SIGKILLs rank 1 (or the process) once it
    has journaled a prompt; returns what happened."""
    folder = out + ".shards"
    ranks = 2 if MPIRUN else 0
    cmd = [DS, "sweep", *args, "-o", out]
    if ranks:
        cmd = [MPIRUN, "-np", "2", "--oversubscribe", "--bind-to", "none", *cmd]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=MPI_ENV if ranks else ENV)
    journal = os.path.join(folder, "journal-00001-of-00002.bin" if ranks else "journal-00000-of-00001.bin")
    killed = False
    while p.poll() is None:
        if os.path.exists(journal) and os.path.getsize(journal) >= HEADER + rec_size:
            pid = rank_pid(p.pid, 1) if ranks else p.pid
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed = True
            break
        time.sleep(0.002)
    p.communicate()
    return killed, p.returncode


def main():
    rows = golden_prompts()
    prompts = write_jsonl("golden.jsonl", rows)
    one = os.path.join(TMP, "one.h5")
    r = sweep("--model", DIFF, "--vs", LLAMA, "--prompts", prompts, "-o", one, "--json")
    if r.returncode:
        report("sweep_golden_runs", [f"exit {r.returncode}: {r.stderr.strip()}"])
        return
    report("sweep_golden_runs", [] if json.loads(r.stdout)["prompts"] == len(rows) else ["JSON prompt count"])
    report("sweep_per_prompt_equals_compare", check_vs_compare(one, rows))
    report("sweep_groupnorm_and_cancelled_share_equal_dump", check_groupnorm_vs_dump(one, rows))
    report("sweep_aggregates_equal_numpy", check_aggregates(one))
    table = sweep("--model", DIFF, "--vs", LLAMA, "--prompts", prompts, "-o", os.path.join(TMP, "t.h5"))
    report("sweep_table", [] if table.returncode == 0 and "A diff" in table.stdout and "B softmax" in table.stdout
           else [table.stderr.strip() or "missing sections"])

    base = ["--model", DIFF, "--vs", LLAMA, "--prompts", prompts]
    if MPIRUN:
        problems = []
        for n in (2, 3):
            o = os.path.join(TMP, f"ranks{n}.h5")
            r = sweep(*base, "-o", o, "--json", ranks=n)
            if r.returncode:
                problems.append(f"{n} ranks: exit {r.returncode}: {r.stderr.strip()[-300:]}")
                continue
            problems += [f"{n} ranks: {p}" for p in same_files(one, o)]
            if os.path.exists(os.path.join(o + ".shards", "claims")):
                problems.append(f"{n} ranks: the claims folder is left")
            with h5py.File(o, "r") as f:
                if f.attrs["shards"] != n or len(os.listdir(o + ".shards")) < n:
                    problems.append(f"{n} ranks: {f.attrs['shards']} shards")
        report("sweep_1_2_3_ranks_identical", problems)
    else:
        print("skip sweep_1_2_3_ranks_identical: no mpirun (apt-get install openmpi-bin)")

    sh = os.path.join(TMP, "sharded.h5")
    problems = []
    for i in (1, 0):
        r = sweep(*base, "-o", sh, "--shard", f"{i}/2")
        if r.returncode or os.path.exists(sh):
            problems.append(f"--shard {i}/2: exit {r.returncode} {r.stderr.strip()}")
    r = sweep(*base, "-o", sh, "--merge")
    problems += [f"--merge: {r.stderr.strip()}"] if r.returncode else same_files(one, sh)
    report("sweep_shards_then_merge", problems)
    check_merge_threads(base, one, sh)
    r = sweep(*base, "-o", os.path.join(TMP, "nomerge.h5"), "--merge")
    report("sweep_merge_without_shards", [] if r.returncode == 2 and "--shard" in r.stderr else [r.stderr.strip()])

    check_times(base, len(rows))
    check_damaged_record(base, one)
    check_maps(base, rows)
    check_resume(base, one)
    check_grid()
    check_claim_buckets()
    check_bad_inputs(rows)


def check_merge_threads(base, one, sharded):
    """--merge on 1 and 2 threads (the aggregates' columns are spread over the threads) gives
    one process's file; a shard whose dataset has another shape is refused, naming both."""
    problems = []
    for t in (1, 2):
        out = os.path.join(TMP, f"merge-threads{t}.h5")
        shutil.copytree(sharded + ".shards", out + ".shards")
        r = sweep(*base, "-o", out, "--merge", "--threads", str(t), "--times")
        lines = [json.loads(x[len("diffscope: times "):]) for x in r.stderr.splitlines() if x.startswith("diffscope: times ")]
        if r.returncode:
            problems.append(f"--threads {t}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
            continue
        problems += [f"--threads {t}: {p}" for p in same_files(one, out)]
        if len(lines) != 1 or lines[0]["prompts_run"] != 0 or not lines[0]["master_s"] > 0:
            problems.append(f"--threads {t}: --times lines {lines}")
    report("sweep_merge_threads_identical", problems)
    bad = os.path.join(TMP, "bad-shard.h5")
    shutil.copytree(sharded + ".shards", bad + ".shards")
    with h5py.File(os.path.join(bad + ".shards", "shard-00001-of-00002.h5"), "r+") as f:
        x = f["A/diff/entropy"][:-1]
        del f["A/diff/entropy"]
        f["A/diff/entropy"] = x
    r = sweep(*base, "-o", bad, "--merge")
    ok = r.returncode == 2 and "shard-00001-of-00002.h5" in r.stderr and "/A/diff/entropy" in r.stderr
    report("sweep_merge_refuses_a_bad_shard", [] if ok and not os.path.exists(bad) else
           [f"exit {r.returncode}: {r.stderr.strip()!r}, master written: {os.path.exists(bad)}"])


def check_times(base, n):
    """--times: one JSON line per rank on stderr, with the rank's range, prompts and steps."""
    out = os.path.join(TMP, "times.h5")
    ranks = 2 if MPIRUN else 1
    r = sweep(*base, "-o", out, "--times", ranks=ranks) if MPIRUN else sweep(*base, "-o", out, "--times")
    if r.returncode:
        report("sweep_times_report", [f"exit {r.returncode}: {r.stderr.strip()[-300:]}"])
        return
    tag = "diffscope: times "
    try:
        lines = [json.loads(x[len(tag):]) for x in r.stderr.splitlines() if x.startswith(tag)]
    except ValueError:
        report("sweep_times_report", [f"not JSON: {r.stderr!r}"])
        return
    with h5py.File(out, "r") as f:
        first = list(f.attrs["shard_first_prompt"]) + [n]
    problems = [] if sorted(t["rank"] for t in lines) == list(range(ranks)) else [f"{len(lines)} lines: {r.stderr!r}"]
    if sum(t["prompts_run"] for t in lines) != n:
        problems.append(f"prompts_run add up to {sum(t['prompts_run'] for t in lines)}, not {n}")
    for t in lines:
        if [t["first"], t["last"] + 1] != first[t["rank"]:t["rank"] + 2] or t["ranks"] != ranks:
            problems.append(f"rank {t['rank']}: range {t['first']}..{t['last']} of {t['ranks']}")
        steps = [t[k] for k in ("setup_s", "load_s", "wait_s", "run_s", "gather_s", "shard_s", "end_wait_s", "run_cpu_s")]
        if min(steps) < 0 or not np.isclose(t["run_end"] - t["run_start"], t["run_s"], atol=1e-3):
            problems.append(f"rank {t['rank']}: times {t}")
        if ("master_s" in t) != (t["rank"] == 0) or t.get("master_s", 1) <= 0:
            problems.append(f"rank {t['rank']}: master_s (rank 0 writes the master) in {t}")
    report("sweep_times_report", problems)


def check_damaged_record(base, one):
    """A whole journal record whose checksum fails is skipped: a rerun runs that prompt again
    (and only it) and gives the same file."""
    out = os.path.join(TMP, "damaged.h5")
    shutil.copytree(one + ".shards", out + ".shards")
    journal = os.path.join(out + ".shards", "journal-00000-of-00001.bin")
    for name in os.listdir(out + ".shards"):
        if name.startswith("shard-"):
            os.remove(os.path.join(out + ".shards", name))
    size = os.path.getsize(journal)
    with h5py.File(one, "r") as f:
        n = len(f["prompts/tokens"])
    rec = (size - HEADER) // n
    with open(journal, "r+b") as f:
        f.seek(HEADER + rec + rec // 2)  # the middle of the second record
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    r = sweep(*base, "-o", out)
    problems = [f"rerun: exit {r.returncode}: {r.stderr.strip()[-300:]}"] if r.returncode else same_files(one, out)
    if os.path.getsize(journal) != size + rec:
        problems.append(f"the journal grew by {(os.path.getsize(journal) - size) / rec:.2f} records, not 1")
    report("sweep_damaged_record_is_run_again", problems)


def check_resume(base, one):
    """SIGKILL a rank once it has finished a prompt, tear the other journal's tail, rerun."""
    rows = golden_prompts() * 6
    prompts = write_jsonl("many.jsonl", rows)
    args = ["--model", DIFF, "--vs", LLAMA, "--prompts", prompts, *MAPS]
    ref = os.path.join(TMP, "uninterrupted.h5")
    r = sweep(*args, "-o", ref)
    if r.returncode:
        report("sweep_resume_after_kill", [f"uninterrupted: {r.stderr.strip()}"])
        return
    # Every prompt six times: the medians are taken among many equal values.
    report("sweep_aggregates_equal_numpy_repeated_prompts", check_aggregates(ref))
    folder = ref + ".shards"
    size = os.path.getsize(os.path.join(folder, "journal-00000-of-00001.bin"))
    rec = (size - HEADER) // len(rows)
    out = os.path.join(TMP, "killed.h5")
    killed, rc = kill_mid_sweep(args, out, rec)
    problems = []
    if killed and (rc == 0 or os.path.exists(out)):
        problems.append(f"killed run: exit {rc}, master {'written' if os.path.exists(out) else 'absent'}")
    journals = [j for j in os.listdir(out + ".shards") if j.startswith("journal-")]
    with open(os.path.join(out + ".shards", journals[0]), "ab") as f:
        f.write(b"\x01" * (rec // 2))  # a record torn by the kill
    r = sweep(*args, "-o", out, ranks=2 if MPIRUN else 0)
    if r.returncode:
        problems.append(f"rerun: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    else:
        problems += same_files(ref, out)
        total = sum((os.path.getsize(os.path.join(out + ".shards", j)) - HEADER) for j in os.listdir(out + ".shards")
                    if j.startswith("journal-"))
        if total != rec * len(rows):
            problems.append(f"journals hold {total / rec:.2f} records for {len(rows)} prompts (a prompt run twice?)")
    if not killed:
        print("# sweep_resume_after_kill: the sweep ended before the kill; checked the torn record only")
    report("sweep_resume_after_kill", problems)


def check_grid():
    if not os.path.isdir(f"{DEMO}/diffllama"):
        print("skip sweep_kv_grid_equals_needle: no demo models")
        return
    out = os.path.join(TMP, "grid.h5")
    r = sweep("--model", f"{DEMO}/diffllama", "--vs", f"{DEMO}/llama", "--task", "kv", "--lengths", "24,40",
              "--depths", "0:100:50", "--trials", "2", "-o", out, "--json")
    if r.returncode:
        report("sweep_kv_grid_equals_needle", [f"exit {r.returncode}: {r.stderr.strip()}"])
        return
    grid = json.loads(r.stdout)["grid"]
    problems = []
    with h5py.File(out, "r") as f:
        offs, ids = f["prompts/token_offsets"][:], f["prompts/token_ids"][:]
        for li, n in enumerate((24, 40)):
            for mi, model in enumerate(("diffllama", "llama")):
                nd = run("needle", f"{DEMO}/{model}", "--task", "kv", "--context-tokens", str(n), "--depths", "0,50,100",
                         "--trials", "2", "--json")
                j = json.loads(nd.stdout)
                name = "AB"[mi]
                for pi, p in enumerate(j["prompts"]):
                    i = li * 6 + pi
                    if list(ids[offs[i]:offs[i + 1]]) != p["ids"] or f["prompts/answer_id"][i] != p["answer_id"]:
                        problems.append(f"length {n} prompt {pi}: tokens differ from needle's")
                for d, dep in enumerate(j["models"][0]["depths"]):
                    tops = [t["id"] for t in dep["top1"]]
                    if list(f[f"{name}/top1"][li * 6 + 2 * d: li * 6 + 2 * d + 2]) != tops:
                        problems.append(f"{name} length {n} depth {dep['depth']}: top-1")
                    if not np.isclose(grid[name]["acc"][li][d], dep["accuracy"], rtol=0, atol=1e-12):
                        problems.append(f"{name} length {n} depth {dep['depth']}: accuracy")
                    for mp in ("diff", "softmax1", "softmax"):
                        if mp in dep and not np.isclose(grid[name][mp]["answer_mass"][li][d], dep[mp]["answer_mass"],
                                                        rtol=1e-12, atol=1e-14):
                            problems.append(f"{name} length {n} depth {dep['depth']}: {mp} answer_mass")
    report("sweep_kv_grid_equals_needle", problems)


def check_claim_buckets():
    """Two ranks over 1,100 short kv prompts, whose claims fill two of the claims' folders (1,024
    prompts each): every prompt runs once, the file equals one process's, and no claim is left.
    A killed run's stale claims, in the folders and loose in claims/ as an earlier version made
    them, are removed before the ranks start: one left would keep its prompt from running."""
    if not MPIRUN or not os.path.isdir(f"{DEMO}/diffllama"):
        print("skip sweep_queue_spans_claim_folders: no mpirun or no demo models")
        return
    args = ["--model", f"{DEMO}/diffllama", "--task", "kv", "--lengths", "40", "--depths", "0:100:10",
            "--trials", "100", "--threads", "1"]
    one, two = os.path.join(TMP, "buckets1.h5"), os.path.join(TMP, "buckets2.h5")
    r = sweep(*args, "-o", one)
    problems = [f"one process: exit {r.returncode}: {r.stderr.strip()[-300:]}"] if r.returncode else []
    claims = os.path.join(two + ".shards", "claims")
    os.makedirs(os.path.join(claims, "00001"))
    os.symlink("0", os.path.join(claims, "00001", "00001050"))
    os.symlink("1", os.path.join(claims, "00000123"))
    problems = problems or sweep_ranks(args, two, 2)
    if not problems:
        problems += same_files(one, two)
        with h5py.File(two, "r") as f:
            n = int(f.attrs["prompts"])
        rec = sum(journal_records(one + ".shards", 1).values()) / n
        per = journal_records(two + ".shards", rec)
        if n != 1100 or sum(per.values()) != n:
            problems.append(f"journals hold {per} records for {n} prompts")
        if os.path.exists(claims):
            problems.append("the claims folder is left")
    report("sweep_queue_spans_claim_folders", problems)


def check_bad_inputs(rows):
    good = json.dumps(rows[0])
    cases = {
        "not_json": "{\"ids\": [1, 2",
        "not_object": "[1, 2, 3]",
        "text_and_ids": {"ids": [1, 2], "text": "a"},
        "neither": {"id": "x"},
        "id_outside_vocab": {"ids": [1, 96]},
        "ids_not_list": {"ids": "1,2"},
        "empty_ids": {"ids": []},
        "span_includes_sink": {"ids": [1, 2, 3], "span": [0, 2]},
        "span_after_query": {"ids": [1, 2, 3, 4], "span": [2, 4], "query": 2},
        "span_not_pair": {"ids": [1, 2, 3], "span": [1]},
        "query_out_of_range": {"ids": [1, 2, 3], "query": 3},
        "text_without_tokenizer": {"text": "hello"},
        "too_long": {"ids": [1] * 65},
    }
    problems = []
    for name, line in cases.items():
        path = write_jsonl(f"bad-{name}.jsonl", [good, "", line])
        out = os.path.join(TMP, f"bad-{name}.h5")
        r = sweep("--model", DIFF, "--vs", LLAMA, "--prompts", path, "-o", out)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 2 or len(lines) != 1 or f"{path}:3:" not in lines[0]:
            problems.append(f"{name}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
        if os.path.exists(out) or os.path.exists(out + ".shards"):
            problems.append(f"{name}: wrote output")
    report("sweep_bad_jsonl_lines", problems)

    prompts = write_jsonl("ok.jsonl", rows[:2])
    problems = []
    no_weights = os.path.join(TMP, "config-only")
    os.makedirs(no_weights, exist_ok=True)
    shutil.copy(f"{LLAMA}/config.json", no_weights)
    for model, ranks in ((os.path.join(TMP, "absent"), 0), (no_weights, 0), (no_weights, 2 if MPIRUN else 0)):
        out = os.path.join(TMP, "missing.h5")
        r = sweep("--model", DIFF, "--vs", model, "--prompts", prompts, "-o", out, ranks=ranks)
        if (r.returncode != 2 if not ranks else r.returncode == 0) or model not in r.stderr or os.path.exists(out):
            problems.append(f"{model} ({ranks} ranks): exit {r.returncode}, {r.stderr.strip()!r}")
    report("sweep_missing_model", problems)

    problems = []
    for out in ("/dev/null/sweep.h5", os.path.join(TMP, "no-such-dir", "x.h5")):
        r = sweep("--model", DIFF, "--prompts", prompts, "-o", out)
        if r.returncode != 2 or "cannot create" not in r.stderr or len(r.stderr.strip().splitlines()) != 1:
            problems.append(f"{out}: exit {r.returncode}, {r.stderr.strip()!r}")
    report("sweep_unwritable_output", problems)

    problems = []
    other = os.path.join(TMP, "other.h5")
    open(other, "w").write("not a sweep")
    r = sweep("--model", DIFF, "--prompts", prompts, "-o", other)
    if r.returncode != 2 or "already exists" not in r.stderr or open(other).read() != "not a sweep":
        problems.append(f"existing file: exit {r.returncode}, {r.stderr.strip()!r}")
    one = os.path.join(TMP, "one.h5")
    r = sweep("--model", DIFF, "--prompts", prompts, "-o", one)
    if r.returncode != 2 or "another sweep" not in r.stderr:
        problems.append(f"another sweep's journals: exit {r.returncode}, {r.stderr.strip()!r}")
    r = sweep("--model", DIFF, "--prompts", prompts, "-o", one, "--force")
    if r.returncode or datasets(one)["A/diff/answer_mass"].shape[0] != 2:
        problems.append(f"--force: exit {r.returncode}, {r.stderr.strip()!r}")
    report("sweep_refuses_other_outputs", problems)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    raise SystemExit(exit_status())
