"""Checks `diffscope dump` files with h5py + NumPy, outside C:

* maps, diff maps, lambda and GroupNorm RMS against transformers' float64 golden files
  (tests/data/golden, and ../shared/reference/transformers when present);
* GroupNorm scale, scores and outlier statistics (scores, resid) against an independent
  NumPy computation on the same dump;
* --heads/--layers selection, --dtype f16, --compress, the maps' axis labels,
  `diffscope verify`, `h5dump -H`, and that failed runs leave no file behind.

Run by tests/cli/test_dump.sh with Debian's python3 (h5py, numpy). Prints ok/FAIL/skip lines.
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

TMP = tempfile.mkdtemp(prefix="ds-dump-test-")


def dump(model, ids, out, *extra):
    cmd = [DS, "dump", model, "--ids", ",".join(map(str, ids)), "-o", out, "--force", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r


def check_against_reference(label, model, ref, group, sub):
    """Maps, diff maps, lambda and GroupNorm RMS of one prompt against transformers."""
    ids = ref[group]["input_ids"][:]
    g = ref[group + sub]
    out = os.path.join(TMP, f"{label}-{group}.h5")
    r = dump(model, ids, out, "--what", "all")
    if r.returncode:
        report(f"dump_vs_transformers[{label}/{group}]", [f"exit {r.returncode}: {r.stderr.strip()}"])
        return
    p = []
    f = h5py.File(out, "r")
    att = g["attentions"][:]
    L, H = att.shape[0], att.shape[1]
    diff = f.attrs["arch"] == "diffllama"
    for l in range(L):
        a = f[f"layers/{l}/attn"]
        if diff:
            Hd = H // 2
            e1 = np.abs(a["softmax1"][:] - att[l, :Hd]).max()
            e2 = np.abs(a["softmax2"][:] - att[l, Hd:]).max()
            ed = np.abs(a["diff"][:] - g["diff_maps"][l]).max()
            if max(e1, e2, ed) > 1e-5:
                p.append(f"layer {l}: map errors {e1:.2e} {e2:.2e} {ed:.2e}")
            lam = g["lambda"][l]
            for i, k in enumerate(["lambda_1", "lambda_2", "lambda_init", "lambda_full"]):
                if abs(a.attrs[k] - lam[i]) > 1e-6:
                    p.append(f"layer {l}: {k} {a.attrs[k]} vs {lam[i]}")
            rms_ref = g["groupnorm_input_rms"][l].T  # transformers: [T, H/2]
            rms = f[f"layers/{l}/groupnorm/rms"][:]
            rel = np.abs(rms - rms_ref) / np.maximum(np.abs(rms_ref), 1e-12)
            if rel.max() > 1e-4:
                p.append(f"layer {l}: GroupNorm RMS relative error {rel.max():.2e}")
            eps = __import__("json").loads(f.attrs["config"]).get("rms_norm_eps", 1e-5)
            scale = (1 - a.attrs["lambda_init"]) / np.sqrt(rms.astype(np.float64) ** 2 + eps)
            if np.abs(f[f"layers/{l}/groupnorm/scale"][:] - scale).max() > 1e-5 * scale.max():
                p.append(f"layer {l}: GroupNorm scale disagrees with (1-lambda_init)/sqrt(rms^2+eps)")
        else:
            e = np.abs(a["softmax"][:] - att[l]).max()
            if e > 1e-5:
                p.append(f"layer {l}: softmax map error {e:.2e}")
        for name in a:
            labels = [dim.label for dim in a[name].dims]
            if labels != ["head", "query", "key"]:
                p.append(f"layer {l}: the axes of {name} are labelled {labels}")
        # Scores: softmax of the dumped scores must give the dumped maps.
        sc = a["scores"][:].astype(np.float64)
        ex = np.exp(sc - sc.max(-1, keepdims=True))
        sm = ex / ex.sum(-1, keepdims=True)
        if np.abs(sm - att[l]).max() > 1e-5:
            p.append(f"layer {l}: softmax(scores) differs from the reference maps")
    f.close()
    report(f"dump_vs_transformers[{label}/{group}]", p)


def outlier_check(name, grp, absvals, coords_of, ncoords):
    """Compares one outlier group with NumPy statistics of ABSVALS (flat, with coordinates)."""
    p = []
    v = np.sort(absvals)[::-1]
    k = grp["values"].shape[0]
    if k != min(len(v), k) or np.abs(grp["values"][:] - v[:k]).max() > 1e-6 * max(1, v[0]):
        p.append(f"{name}: top-{k} values differ")
    for (val, idx) in zip(grp["values"][:], grp["index"][:]):
        if abs(coords_of(tuple(idx)) - val) > 1e-6 * max(1, val):
            p.append(f"{name}: index {tuple(idx)} does not hold {val}")
            break
    x = absvals.astype(np.float64)
    m, s = x.mean(), x.std()
    stats = dict(median=np.median(x), mean=m, std=s, kurtosis=((x - m) ** 4).mean() / s ** 4, count=len(x))
    for key, want in stats.items():
        got = grp.attrs[key]
        if abs(got - want) > 1e-5 * max(1.0, abs(want)):
            p.append(f"{name}: {key} {got} vs NumPy {want}")
    return p


def check_outliers(model, ids):
    out = os.path.join(TMP, "outliers.h5")
    r = dump(model, ids, out, "--what", "scores,outliers", "--hidden", "--topk", "20")
    if r.returncode:
        report("outliers_vs_numpy", [r.stderr.strip()])
        return
    f = h5py.File(out, "r")
    p = []
    L = f.attrs["num_layers"]
    hs = f["hidden_states"][:]
    for l in range(L):
        sc = f[f"layers/{l}/attn/scores"][:]
        Hs, T, _ = sc.shape
        mask = np.tril(np.ones((T, T), bool))
        vals = np.abs(sc[:, mask])  # causal entries only
        p += outlier_check(f"layer {l} scores", f[f"layers/{l}/outliers/scores"], vals.ravel(),
                           lambda c: abs(sc[c[0], c[1], c[2]]), 3)
        if l < L - 1:  # hidden_states[l+1] is the residual after layer l (the last one is normed)
            res = hs[l + 1]
            p += outlier_check(f"layer {l} resid", f[f"layers/{l}/outliers/resid"], np.abs(res).ravel(),
                               lambda c: abs(res[c[0], c[1]]), 2)
    # Without the scores map no hook reads the masked scores, and the forward pass leaves them
    # unset: the statistics, which read the causal ones, must not change by a bit.
    alone = os.path.join(TMP, "outliers_alone.h5")
    r = dump(model, ids, alone, "--what", "outliers", "--hidden", "--topk", "20")
    if r.returncode:
        p.append(r.stderr.strip())
    else:
        g = h5py.File(alone, "r")
        for l in range(L):
            for name in ("scores", "resid", "mlp"):
                a, b = f[f"layers/{l}/outliers/{name}"], g[f"layers/{l}/outliers/{name}"]
                same = all(np.array_equal(a[k][:], b[k][:]) for k in ("values", "index"))
                same = same and all(np.array_equal(a.attrs[k], b.attrs[k]) for k in a.attrs)
                if not same:
                    p.append(f"layer {l} {name}: outliers without the scores map differ from those with it")
        g.close()
    f.close()
    report("outliers_vs_numpy", p)


def check_selection_f16_compress(model, ids):
    full = os.path.join(TMP, "full.h5")
    sel = os.path.join(TMP, "sel.h5")
    r1 = dump(model, ids, full)
    r2 = dump(model, ids, sel, "--layers", "1", "--heads", "1", "--dtype", "f16", "--compress", "6")
    p = []
    if r1.returncode or r2.returncode:
        report("dump_selection_f16_compress", [r1.stderr + r2.stderr])
        return
    a, b = h5py.File(full, "r"), h5py.File(sel, "r")
    if "0" in b["layers"]:
        p.append("--layers 1 still wrote layer 0")
    d = b["layers/1/attn/softmax1"]
    if d.dtype != np.float16:
        p.append(f"--dtype f16 stored {d.dtype}")
    if d.shape[0] != 1 or list(b["layers/1/attn"]["softmax1"].attrs["heads"]) != [1]:
        p.append("--heads 1 did not select head 1")
    if np.abs(d[0].astype(np.float32) - a["layers/1/attn/softmax1"][1]).max() > 1e-3:
        p.append("f16 map differs from the f32 map by more than half precision allows")
    if d.compression != "gzip" or d.chunks is None or d.chunks[0] != 1:
        p.append(f"expected gzip chunks of one head, got {d.compression} {d.chunks}")
    if [dim.label for dim in d.dims] != ["head", "query", "key"]:
        p.append(f"the compressed map's axes are labelled {[dim.label for dim in d.dims]}")
    a.close(), b.close()
    report("dump_selection_f16_compress", p)


def f16_differs(half, full):
    """1 when float16 map HALF is off float32 map FULL by more than half precision allows (1e-3
    of the larger of 1 and FULL's largest magnitude), or holds an infinity where FULL does not."""
    half, finite = half.astype(np.float32), np.isfinite(full)
    if np.any(np.isfinite(half) != finite):
        return True
    return np.abs(half[finite] - full[finite]).max() > 1e-3 * max(1.0, float(np.abs(full[finite]).max()))


def check_f16_heads(model, ids):
    """Uncompressed maps of a short prompt are contiguous datasets written by the background
    writer (src/io/raw_writer.c), in float32 or converted to float16 on the way; a head
    selection lands in the right rows."""
    full = os.path.join(TMP, "full.h5")
    half = os.path.join(TMP, "half.h5")
    r1 = dump(model, ids, full)
    r2 = dump(model, ids, half, "--heads", "1,0", "--dtype", "f16")
    if r1.returncode or r2.returncode:
        report("dump_f16_heads", [r1.stderr + r2.stderr])
        return
    p = []
    a, b = h5py.File(full, "r"), h5py.File(half, "r")
    for l in range(a.attrs["num_layers"]):
        for name in a[f"layers/{l}/attn"]:
            fa, fb = a[f"layers/{l}/attn/{name}"], b[f"layers/{l}/attn/{name}"]
            if fa.chunks is not None or fb.chunks is not None:
                p.append(f"layer {l} {name}: chunked ({fa.chunks}, {fb.chunks}), expected contiguous")
            if fb.dtype != np.float16:
                p.append(f"layer {l} {name}: --dtype f16 stored {fb.dtype}")
            want, got = fa[:], fb[:]
            for j, h in enumerate(fb.attrs["heads"]):
                src = list(fa.attrs["heads"]).index(h)
                if f16_differs(got[j], want[src]):
                    p.append(f"layer {l} {name}: output head {j} (head {h}) differs from float32 by more than f16 allows")
    a.close(), b.close()
    report("dump_f16_heads", p)


def file_system_has_holes():
    """1 when the file system under TMP keeps a never-written range of a file as a hole."""
    path = os.path.join(TMP, "holes")
    with open(path, "wb") as f:
        f.write(b"x")
        f.seek(1 << 20)
        f.write(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < 1 << 20
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def expected_chunks(name, T, R=128, C=128):
    """An uncompressed map's chunks by docs/dump-format.md, "Storage": softmax and difference
    maps in [1, R, C] when the chunks holding a causal key take fewer bytes than the map, else
    (and scores always) contiguous (None)."""
    R, C = min(R, T), min(C, T)
    written = sum((min((b + 1) * R, T) - 1) // C + 1 for b in range(-(-T // R)))
    return (1, R, C) if not name.endswith("scores") and written * R * C < T * T else None


def chunk_layout_problems(path, name, d, T, check_holes):
    """An uncompressed map's storage (docs/dump-format.md, "Storage"): contiguous, or chunks of
    [1, R, C] laid out one after the other in (head, row block, key chunk) order, the chunks
    right of the causal diagonal never written, so that where the file system keeps holes no
    block inside them is on disk."""
    want = expected_chunks(name, T)
    if d.chunks != want:
        return [f"{name}: chunks {d.chunks}, expected {want}"]
    if want is None:
        return []
    R, C = want[1], want[2]
    nb, nc = -(-T // R), -(-T // C)
    first = d.id.get_chunk_info_by_coord((0, 0, 0))
    p, zero = [], []
    for i in range(d.id.get_num_chunks()):
        s = d.id.get_chunk_info(i)
        h, r, k = s.chunk_offset
        at = first.byte_offset + ((h * nb + r // R) * nc + k // C) * first.size
        if s.byte_offset != at or s.size != first.size:
            p.append(f"{name}: chunk {s.chunk_offset} at {s.byte_offset} ({s.size} bytes), expected {at}")
            break
        if k > min(r + R, T) - 1:
            zero.append(s.byte_offset)
    if check_holes:
        fd = os.open(path, os.O_RDONLY)
        block = os.statvfs(path).f_bsize
        for off in zero:
            lo, hi = -(-off // block) * block, (off + first.size) // block * block
            if lo < hi:
                try:
                    data = os.lseek(fd, lo, os.SEEK_DATA)
                except OSError:
                    data = hi  # no data after LO
                if data < hi:
                    p.append(f"{name}: the chunk of zeros at {off} was written")
                    break
        os.close(fd)
    return p


def check_long_prompt_maps(model, label, what, T):
    """A prompt of several row blocks (T tokens, blocks of 128 rows): uncompressed maps, whose
    masked keys the forward pass leaves unset for the dump to fill with zeros (-inf in the
    scores), against compressed ones, which HDF5 takes whole from the forward pass (zeros
    written there), bit for bit, and against float16 ones within half precision; zeros above
    the diagonal, softmax rows summing to 1 and the difference map equal to softmax1 - lambda *
    softmax2 recomputed in NumPy; the uncompressed maps contiguous or chunked as the format
    says (300 tokens: contiguous; 600: softmax and diff chunked, the last row block and key
    chunk partial), the chunks where they should be, those of zeros never written. The write
    buffers are made small, so that each is reused for blocks of other rows."""
    ids = [(7 * i + 3) % 500 for i in range(T)]
    raw, packed, half = (os.path.join(TMP, f"long-{k}.h5") for k in ("raw", "gz", "f16"))
    os.environ["DIFFSCOPE_DUMP_BUFFER_MB"] = "1"
    r1 = dump(model, ids, raw, "--what", what, "--layers", "0,3", "--json")
    r3 = dump(model, ids, half, "--what", what, "--layers", "0,3", "--dtype", "f16")
    del os.environ["DIFFSCOPE_DUMP_BUFFER_MB"]
    r2 = dump(model, ids, packed, "--what", what, "--layers", "0,3", "--compress", "1")
    if r1.returncode or r2.returncode or r3.returncode:
        report(f"dump_long_prompt_maps[{label}/T{T}]", [r1.stderr + r2.stderr + r3.stderr])
        return
    p = []
    a, b, c = h5py.File(raw, "r"), h5py.File(packed, "r"), h5py.File(half, "r")
    j, st = json.loads(r1.stdout), os.stat(raw)
    if j["bytes"] != st.st_size or j["disk_bytes"] != st.st_blocks * 512:
        p.append(f"--json: bytes {j['bytes']}, disk_bytes {j['disk_bytes']}; the file: {st.st_size}, {st.st_blocks * 512}")
    holes = file_system_has_holes()
    above = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in (0, 3):
        g = a[f"layers/{l}/attn"]
        for name in g:
            m = g[name][:]
            if m.tobytes() != b[f"layers/{l}/attn/{name}"][:].tobytes():
                p.append(f"layer {l} {name}: uncompressed and compressed maps differ")
            if f16_differs(c[f"layers/{l}/attn/{name}"][:], m):
                p.append(f"layer {l} {name}: float16 map differs from float32 by more than half precision allows")
            masked = -np.inf if name == "scores" else 0.0
            if np.any(m[:, above] != masked) or (masked == 0 and np.any(np.signbit(m[:, above]))):
                p.append(f"layer {l} {name}: a key after the query is not {masked}")
            for f, path in ((a, raw), (c, half)):
                p += chunk_layout_problems(path, f"layer {l} {name}", f[f"layers/{l}/attn/{name}"], T, holes)
            if name.startswith("softmax") and np.abs(m.astype(np.float64).sum(-1) - 1).max() > 1e-5:
                p.append(f"layer {l} {name}: a row does not sum to 1")
        if "diff" in g:
            lam = np.float32(g.attrs["lambda_full"])
            want = g["softmax1"][:] - lam * g["softmax2"][:]
            if np.abs(g["diff"][:] - want).max() > 1e-6:
                p.append(f"layer {l}: diff differs from softmax1 - lambda*softmax2")
            cs = a[f"layers/{l}/cancelled_share"][:]
            if cs.tobytes() != b[f"layers/{l}/cancelled_share"][:].tobytes():
                p.append(f"layer {l}: cancelled share differs between the two dumps")
    a.close(), b.close(), c.close()
    if not holes:
        print(f"skip dump_long_prompt_holes[{label}/T{T}]: the file system under {TMP} keeps no holes")
    report(f"dump_long_prompt_maps[{label}/T{T}]", p)


def check_verify_and_h5dump(model, ids):
    a = os.path.join(TMP, "v1.h5")
    b = os.path.join(TMP, "v2.h5")
    dump(model, ids, a)
    dump(model, ids, b, "--lambda-override", "1=0.95")
    p = []
    same = subprocess.run([DS, "verify", a, a], capture_output=True, text=True)
    if same.returncode != 0:
        p.append(f"verify of a file against itself exited {same.returncode}")
    moved = subprocess.run([DS, "verify", b, a], capture_output=True, text=True)
    if moved.returncode != 1 or "FAIL" not in moved.stdout:
        p.append(f"verify did not flag a lambda override (exit {moved.returncode})")
    f = h5py.File(b, "r")
    if f["layers/1/attn"].attrs["lambda_overridden"] != 1 or abs(f["layers/1/attn"].attrs["lambda_full"] - 0.95) > 1e-6:
        p.append("lambda override not recorded in the dump")
    f.close()
    hd = subprocess.run(["h5dump", "-H", a], capture_output=True, text=True)
    if hd.returncode or "softmax1" not in hd.stdout:
        p.append("h5dump -H failed or shows no maps")
    report("verify_and_h5dump", p)


def check_no_partial_files(model, ids):
    p = []
    bad_dir = os.path.join(TMP, "no-such-dir", "out.h5")
    r = dump(model, ids, bad_dir)
    if r.returncode != 2 or len(r.stderr.strip().splitlines()) != 1 or "no-such-dir" not in r.stderr:
        p.append(f"unwritable path: exit {r.returncode}, stderr {r.stderr!r}")
    out = os.path.join(TMP, "exists.h5")
    open(out, "w").write("keep me")
    r = subprocess.run([DS, "dump", model, "--ids", "1,2", "-o", out], capture_output=True, text=True)
    if r.returncode != 2 or open(out).read() != "keep me" or "--force" not in r.stderr:
        p.append("an existing file was not protected without --force")
    r = subprocess.run([DS, "dump", model, "--ids", "1,99999", "-o", os.path.join(TMP, "bad.h5")],
                       capture_output=True, text=True)
    if r.returncode != 2 or glob.glob(os.path.join(TMP, "bad.h5*")):
        p.append("a failed dump left a file behind")
    report("dump_leaves_no_partial_file", p)


def check_what_items(model, ids):
    """--what: the items --help lists, the one-line refusal of an unknown item, the root
    attribute `what` in the items' order whatever the order given."""
    items = ["softmax", "diff", "scores", "groupnorm", "outliers", "cancelled_share", "all"]
    p = []
    h = subprocess.run([DS, "dump", "--help"], capture_output=True, text=True)
    listed = [line.split()[0] for line in h.stdout.split("--what items:\n")[-1].splitlines() if line.startswith("  ")]
    if h.returncode or listed != items:
        p.append(f"--help lists the --what items as {listed}")
    out = os.path.join(TMP, "what.h5")
    r = dump(model, ids, out, "--what", "softmax,bogus")
    known = "unknown item 'bogus' (" + ", ".join(items) + ")"
    if r.returncode != 2 or len(r.stderr.strip().splitlines()) != 1 or known not in r.stderr or os.path.exists(out):
        p.append(f"--what softmax,bogus: exit {r.returncode}, stderr {r.stderr!r}")
    r = dump(model, ids, out, "--what", "outliers,scores")
    if r.returncode:
        p.append(f"--what outliers,scores: exit {r.returncode}: {r.stderr.strip()}")
    else:
        with h5py.File(out, "r") as f:
            what = f.attrs["what"]
            what = what.decode() if isinstance(what, bytes) else what
            if what != "scores,outliers" or "softmax1" in f["layers/0/attn"] or "scores" not in f["layers/0/attn"]:
                p.append(f"--what outliers,scores wrote what={what!r}, maps {list(f['layers/0/attn'])}")
    report("dump_what_items", p)


def root_what(path):
    with h5py.File(path, "r") as f:
        what = f.attrs["what"]
        return (what.decode() if isinstance(what, bytes) else what), sorted(f["layers/0"]), sorted(f["layers/0/attn"])


def check_what_model_lacks(llama, ids):
    """A Llama model has no diff maps and no GroupNorm: asking for them is refused with one line
    naming them and the model, and no file; the default and `all` record only what was written."""
    p = []
    out = os.path.join(TMP, "what-llama.h5")
    for asked in ("diff,groupnorm", "softmax,diff"):
        r = dump(llama, ids, out, "--what", asked)
        lacking = asked.replace("softmax,", "")
        line = r.stderr.strip()
        if (r.returncode != 2 or len(line.splitlines()) != 1 or f"--what {lacking}:" not in line or llama not in line
                or os.path.exists(out)):
            p.append(f"--what {asked} on Llama: exit {r.returncode}, stderr {r.stderr!r}, file {os.path.exists(out)}")
    for extra, want, groups, maps in (([], "softmax,outliers", ["attn", "outliers"], ["softmax"]),
                                      (["--what", "all"], "softmax,scores,outliers", ["attn", "outliers"],
                                       ["scores", "softmax"])):
        r = dump(llama, ids, out, *extra)
        if r.returncode:
            p.append(f"{extra or 'default'} on Llama: exit {r.returncode}: {r.stderr.strip()}")
            continue
        got = root_what(out)
        if got != (want, groups, maps):
            p.append(f"{extra or 'default'} on Llama: what, groups, maps = {got}, want {(want, groups, maps)}")
    report("dump_what_model_lacks", p)


def main():
    refs = sorted(glob.glob(f"{GOLDEN}/refs/*.h5"))
    for ref_path in refs:
        label = os.path.basename(ref_path)[:-3]
        ref = h5py.File(ref_path, "r")
        for group in ref:
            check_against_reference(label, f"{GOLDEN}/models/{label}", ref, group, "")
    shared = os.path.join(SHARED, "reference/transformers")
    if os.path.isdir(shared):
        for ref_path in sorted(glob.glob(f"{shared}/refs/*.h5")):
            label = os.path.basename(ref_path)[:-3]
            ref = h5py.File(ref_path, "r")
            for group in ref:
                check_against_reference("shared-" + label, f"{shared}/models/{label}", ref, group, "/fp64")
    else:
        print("skip dump_vs_shared_references: ../shared not present")
    model = f"{GOLDEN}/models/diff-sharded-deep-f32"
    ids = [3, 17, 5, 60, 2, 9, 44, 81, 7, 30, 12, 55]
    check_outliers(model, ids)
    check_outliers(f"{GOLDEN}/models/llama-mha-bias-f32", ids)
    check_selection_f16_compress(model, ids)
    check_f16_heads(model, ids)
    check_what_items(model, ids)
    check_what_model_lacks(f"{GOLDEN}/models/llama-mha-bias-f32", ids)
    check_verify_and_h5dump(model, ids)
    check_no_partial_files(model, ids)
    for T in (300, 600):
        check_long_prompt_maps("notebooks-data/models/diffllama", "diffllama", "softmax,diff,scores,cancelled_share", T)
        check_long_prompt_maps("notebooks-data/models/llama", "llama", "softmax", T)
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
