#!/usr/bin/python3
"""Pixel checks of diffscope-view screenshots against the dump's data (run by test_viewer.sh).

    viewer_check.py VIEWER DUMP.h5 LLAMA.h5 F16.h5 TMPDIR TAG

DUMP is a DiffLlama dump, LLAMA a Llama dump of the same tokens, F16 a DiffLlama dump with
float16 maps; TAG names the set in the case names (viewer_TAG_...). Which layer and head are
looked at is chosen from the data (the head whose difference has the most negative cell).

The expected values come from the dump read with h5py, never from the viewer. The viewer
says where it drew each panel (--print-layout); each cell's colour is compared with the
colour bar drawn beside it at the height the data value maps to, so the check covers the
value-to-colour mapping as well as the position of every cell. Screenshots are written as
BMP (the viewer writes BMP when the name ends in .bmp) so that no image library is needed;
one PNG is decoded with zlib to check the PNG path too. Prints "ok NAME" / "FAIL NAME: why".
"""
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np

from common import exit_status, report as report_problems

VIEWER, DUMP, LLAMA, F16, TMP, TAG = sys.argv[1:7]
MASKED = (0x24, 0x26, 0x2E)


def report(name, ok, why=""):
    """One check of this set of dumps, named with its tag (real or sample)."""
    report_problems(name.replace("viewer_", f"viewer_{TAG}_", 1), [] if ok else [why or "failed"])


def read_bmp(path):
    b = open(path, "rb").read()
    off, = struct.unpack_from("<I", b, 10)
    w, h = struct.unpack_from("<ii", b, 18)
    bpp, = struct.unpack_from("<H", b, 28)
    assert bpp == 24, bpp
    stride = (w * 3 + 3) & ~3
    rows = np.frombuffer(b, np.uint8, stride * abs(h), off).reshape(abs(h), stride)[:, : w * 3]
    img = rows.reshape(abs(h), w, 3)[:, :, ::-1]  # BGR -> RGB
    return img[::-1] if h > 0 else img  # bottom-up rows


def read_png(path):
    """A small PNG decoder (8-bit RGB/RGBA, not interlaced): chunks, zlib, the 5 filters."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat = 8, b""
    while pos < len(b):
        n, kind = struct.unpack_from(">I4s", b, pos)
        data = b[pos + 8: pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f == 1:
            cur = (np.cumsum(line.reshape(w, bpp), axis=0) & 255).reshape(-1)
        else:
            cur = line.copy()
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                up = prev[x]
                if f == 3:
                    cur[x] = (cur[x] + ((a + up) >> 1)) & 255
                else:
                    c = prev[x - bpp] if x >= bpp else 0
                    p = a + up - c
                    pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                    cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)[:, :, :3].astype(np.uint8)


def shoot(name, *args, size="1280x800"):
    """Runs the viewer headless; returns (image, layout dict) or raises with its stderr."""
    path = f"{TMP}/{TAG}-{name}.bmp"
    r = subprocess.run([VIEWER, *args, "--size", size, "--screenshot", path, "--print-layout"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"viewer exit {r.returncode}: {r.stderr.strip()}")
    lay = {"panels": {}}
    for line in r.stdout.splitlines():
        f = line.split()
        kv = {k: float(v) for k, v in (x.split("=") for x in f[1:] if "=" in x)}
        if f[0] == "view":
            lay["view"] = kv
        elif f[0] == "panel":
            lay["panels"][f[1]] = kv
    return read_bmp(path), lay


def cell_xy(lay, panel, q, k):
    p, v = lay["panels"][panel], lay["view"]
    s = p["size"] / v["span"]
    return int(p["x"] + (k - v["k0"] + 0.5) * s), int(p["y"] + (q - v["q0"] + 0.5) * s)


def bar_color(img, lay, panel, t):
    p = lay["panels"][panel]
    y = int(round(p["bar_y"] + (1 - t) * (p["bar_h"] - 1)))
    return img[y, int(p["bar_x"] + p["bar_w"] // 2)].astype(int)


def check_panel(img, lay, panel, values, position, tol=14):
    """Every cell of PANEL (T×T VALUES, NaN above the diagonal) against the colour bar.
    Returns a failure message or ''. The selected row (the last one by default) has white
    markers 4 px wide at both edges of the map: cells whose centre falls under them are
    skipped."""
    t_count = values.shape[0]
    v, p = lay["view"], lay["panels"][panel]
    bad = []
    for q in range(int(v["q0"]), int(v["q0"] + v["span"])):
        for k in range(int(v["k0"]), int(v["k0"] + v["span"])):
            x, y = cell_xy(lay, panel, q, k)
            if q == t_count - 1 and (x < p["x"] + 4 or x >= p["x"] + p["size"] - 4):
                continue
            got = img[y, x].astype(int)
            if k > q:
                want = np.array(MASKED)
            else:
                want = bar_color(img, lay, panel, position(values[q, k]))
            if np.abs(got - want).max() > tol:
                bad.append(f"cell ({q},{k}) value {values[q, k]:.4g} is {tuple(got)}, bar says {tuple(want)}")
    return f"{len(bad)} of {t_count * t_count} cells wrong, e.g. {bad[0]}" if bad else ""


def lin(vmax):
    return lambda x: min(max(x / vmax, 0.0), 1.0)


def div(vmax):
    return lambda x: min(max(0.5 + 0.5 * x / vmax, 0.0), 1.0)


def main():
    f = h5py.File(DUMP, "r")
    T = int(f.attrs["num_tokens"])
    masked = np.triu(np.ones((T, T), bool), 1)
    # The head with the most negative difference cell.
    layer, hi = min(((int(l), h) for l in f.attrs["layers"] for h in range(f[f"layers/{l}/attn/diff"].shape[0])),
                    key=lambda lh: f[f"layers/{lh[0]}/attn/diff"][lh[1]].min())
    g = f[f"layers/{layer}/attn"]
    heads = list(g.attrs["heads"]) if "heads" in g.attrs else list(g["softmax1"].attrs["heads"])
    head = int(heads[hi])
    s1, s2, dd = (g[n][hi].astype(np.float64) for n in ("softmax1", "softmax2", "diff"))
    lam = float(g.attrs["lambda_full"])
    common = ["--layer", str(layer), "--head", str(head)]
    img, lay = shoot("base", DUMP, *common)
    vmax_soft = max(s1.max(), s2.max())

    # Colour scales come from the data: shared [0, max] for the softmax maps, ±max|diff|.
    pv = lay["panels"]
    report("viewer_scale_from_data",
           abs(pv["softmax1"]["vmax"] - vmax_soft) < 1e-5 and
           abs(pv["diff"]["vmax"] - np.abs(np.where(masked, 0, dd)).max()) < 1e-5,
           f"vmax {pv['softmax1']['vmax']} / {pv['diff']['vmax']}")

    # The cell of the largest softmax1 value has the hottest colour: the top of the colour bar,
    # and no cell of the panel is brighter.
    q, k = np.unravel_index(np.argmax(np.where(masked, -1, s1)), s1.shape)
    x, y = cell_xy(lay, "softmax1", q, k)
    hot = bar_color(img, lay, "softmax1", 1.0)
    lum = lambda c: 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    brightest = max(lum(img[cell_xy(lay, "softmax1", a, b)[::-1]].astype(int))
                    for a in range(T) for b in range(a + 1))
    got = img[y, x].astype(int)
    report("viewer_hottest_cell",
           np.abs(got - hot).max() <= 6 and lum(got) >= brightest - 1e-9,
           f"cell ({q},{k}) = {tuple(got)}, hottest {tuple(hot)}")

    # Every cell of every panel matches the data through its colour bar.
    for name, vals, pos in (("softmax1", s1, lin(vmax_soft)), ("softmax2", s2, lin(vmax_soft)),
                            ("lambda_softmax2", lam * s2, lin(vmax_soft)),
                            ("diff", dd, div(pv["diff"]["vmax"]))):
        why = check_panel(img, lay, name, np.where(masked, np.nan, vals), pos)
        report(f"viewer_cells_{name}", not why, why)

    # A negative cell of the difference has the negative (blue) colour, a positive one the
    # positive colour.
    qn, kn = np.unravel_index(np.argmin(np.where(masked, 1, dd)), dd.shape)
    qp, kp = np.unravel_index(np.argmax(np.where(masked, -1, dd)), dd.shape)
    cn = img[cell_xy(lay, "diff", qn, kn)[::-1]].astype(int)
    cp = img[cell_xy(lay, "diff", qp, kp)[::-1]].astype(int)
    report("viewer_negative_colour", dd[qn, kn] < 0 and cn[2] > cn[0] + 60 and cp[0] > cp[2] + 60,
           f"most negative {dd[qn, kn]:.3g} at ({qn},{kn}) is {tuple(cn)}; most positive is {tuple(cp)}")

    # A counterfactual λ changes the difference panel (and λ·softmax2) and leaves softmax1
    # and softmax2 untouched.
    lam2 = 0.15 if abs(lam - 0.15) > 0.1 else 0.6
    img2, lay2 = shoot("lambda", DUMP, *common, "--lambda", str(lam2))
    def region(im, l, name):
        p = l["panels"][name]
        return im[int(p["y"]): int(p["y"] + p["size"]), int(p["x"]): int(p["bar_x"] + p["bar_w"])]
    same = all(np.array_equal(region(img, lay, n), region(img2, lay2, n)) for n in ("softmax1", "softmax2"))
    changed = not np.array_equal(region(img, lay, "diff"), region(img2, lay2, "diff"))
    d2 = s1 - lam2 * s2
    vmax2 = np.abs(np.where(masked, 0, d2)).max()
    why = check_panel(img2, lay2, "diff", np.where(masked, np.nan, d2), div(vmax2))
    report("viewer_lambda_changes_only_difference", same and changed and not why and
           abs(lay2["panels"]["diff"]["vmax"] - vmax2) < 1e-5,
           f"softmax panels same: {same}, difference changed: {changed}; {why}")
    # Only the λ-dependent parts of the window differ: rows above the heatmaps other than
    # the λ line and the slider are unchanged, and so are the softmax1/softmax2 columns.
    top = int(lay["panels"]["softmax1"]["y"])
    diff_rows = np.where((img[:top] != img2[:top]).any(axis=(1, 2)))[0]
    report("viewer_lambda_top_bar", len(diff_rows) > 0 and diff_rows.min() >= 28,
           f"rows changed above the maps: {diff_rows[:5]}")

    # Another head (or, with one head, another layer) gives another picture.
    other = (["--layer", str(layer), "--head", str(int(heads[(hi + 1) % len(heads)]))] if len(heads) > 1 else
             ["--layer", str(int([l for l in f.attrs["layers"] if l != layer][0]))])
    img3, lay3 = shoot("head", DUMP, *other)
    report("viewer_head_changes_image",
           not np.array_equal(region(img, lay, "softmax1"), region(img3, lay3, "softmax1")), "same pixels")

    # Log scale: the softmax1 cells follow log10 over 4 decades below the maximum.
    img4, lay4 = shoot("log", DUMP, *common, "--log")
    logpos = lambda x: 0.0 if x <= 0 else min(max((np.log10(x) - (np.log10(vmax_soft) - 4)) / 4, 0), 1)
    why = check_panel(img4, lay4, "softmax1", np.where(masked, np.nan, s1), logpos)
    report("viewer_log_scale", not why, why)

    # Zoomed view (--range): cells are bigger, still match the data, and the colour scale runs to
    # the largest value in view (softmax1 and softmax2 over the cells shown), not the head's.
    a, b = T // 4, T // 4 + max(4, T // 2)
    img5, lay5 = shoot("range", DUMP, *common, "--range", f"{a}:{b}")
    view = np.zeros_like(masked)
    view[a:b, a:b] = True
    view &= ~masked
    vmax_view = max(s1[view].max(), s2[view].max())
    why = check_panel(img5, lay5, "softmax1", np.where(masked, np.nan, s1), lin(vmax_view))
    scale_ok = abs(lay5["panels"]["softmax1"]["vmax"] - vmax_view) < 1e-5 * max(vmax_view, 1e-30)
    report("viewer_range_zoom", not why and scale_ok and lay5["view"]["span"] == b - a,
           why or f"scale {lay5['panels']['softmax1']['vmax']} != {vmax_view} (the cells in view)")

    # float16 dump: same checks on the converted values.
    h16 = h5py.File(F16, "r")
    l16 = int(h16.attrs["layers"][0])
    h = h16[f"layers/{l16}/attn"]
    report("viewer_float16_is_float16", h["softmax1"].dtype == np.float16, str(h["softmax1"].dtype))
    f1 = h["softmax1"][0].astype(np.float64)
    f2 = h["softmax2"][0].astype(np.float64)
    img6, lay6 = shoot("f16", F16, "--layer", str(l16))
    why = check_panel(img6, lay6, "softmax1", np.where(masked, np.nan, f1), lin(max(f1.max(), f2.max())))
    report("viewer_float16_dump", not why, why)

    # Llama dump: one panel per head; and --vs shows the Llama head beside the DiffLlama maps.
    lf = h5py.File(LLAMA, "r")
    ll = int(lf.attrs["layers"][-1])
    lg = lf[f"layers/{ll}/attn"]
    lh = lg["softmax"].shape[0] - 1
    lheads = list(lg.attrs["heads"]) if "heads" in lg.attrs else list(lg["softmax"].attrs["heads"])
    ls = lg["softmax"][lh].astype(np.float64)
    # The last head is selected: the window shows the last min(4, Hs) heads, on one scale.
    img7, lay7 = shoot("llama", LLAMA, "--layer", str(ll), "--head", str(int(lheads[lh])))
    shown = list(range(max(0, lh + 1 - 4), lh + 1))
    vmax_l = max(lg["softmax"][i].max() for i in shown)
    names = [f"softmax_h{int(lheads[i])}" for i in shown]
    why = "" if list(lay7["panels"]) == names else f"panels {list(lay7['panels'])}, expected {names}"
    for i, name in zip(shown, names):
        why = why or check_panel(img7, lay7, name, np.where(masked, np.nan, lg["softmax"][i].astype(np.float64)),
                                 lin(vmax_l))
    report("viewer_llama_dump", not why, why)
    lv = lf[f"layers/{layer}/attn/softmax"][lh].astype(np.float64)
    img8, lay8 = shoot("vs", DUMP, *common, "--vs", LLAMA, "--vs-head", str(int(lheads[lh])))
    why = check_panel(img8, lay8, "vs", np.where(masked, np.nan, lv), lin(lv.max()))
    report("viewer_vs_panel", not why and len(lay8["panels"]) == 5, why)

    # The PNG path: a PNG screenshot decodes to the same pixels as the BMP one.
    png = f"{TMP}/{TAG}-small.png"
    r = subprocess.run([VIEWER, DUMP, *common, "--size", "640x480", "--screenshot", png], capture_output=True, text=True)
    img9, _ = shoot("small", DUMP, *common, size="640x480")
    ok = r.returncode == 0
    report("viewer_png_output", ok and np.array_equal(read_png(png), img9),
           r.stderr.strip() or "PNG pixels differ from the BMP ones")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
