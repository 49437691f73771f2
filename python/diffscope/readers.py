"""Readers for diffscope's outputs: `dump` files (docs/dump-format.md), `compare -o` files and
`needle --json` output or `needle -o` files (docs/compare.md), as labelled arrays. They need h5py and NumPy only,
not the library. Each file's layout is checked as it is read: a missing file, another format
or a missing member is a diffscope.Error that names the file and the problem."""
import json

import numpy as np

from .errors import Error
from .labelled import Labelled

LAMBDA_PARAMS = ("lambda_1", "lambda_2", "lambda_init", "lambda_full")


def _text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _open(path, fmt):
    import h5py
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise Error("%s: no such file" % path) from None
    except OSError as e:
        raise Error("%s: not a readable HDF5 file (%s)" % (path, e)) from None
    got = _text(f.attrs.get("format"))
    if got != fmt:
        f.close()
        raise Error("%s: not a %s file (its format attribute is %r)" % (path, fmt, got))
    return f


def _provenance(f):
    """The record of group /provenance of the open h5py file F as a dict, the same as the
    "provenance" object of the JSON outputs (docs/dump-format.md#provenance); {} without one."""
    g = f.get("provenance")
    if g is None:
        return {}
    out = {}
    for k, v in g.attrs.items():
        if isinstance(v, np.ndarray):
            out[k] = [_text(x) for x in v]
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = _text(v)
    return out


class _File:
    """An open HDF5 output: attrs (root attributes, strings decoded), provenance (how the file
    was made, a dict), close / context manager."""

    def __init__(self, path, fmt):
        self.path = str(path)
        self._f = _open(self.path, fmt)
        self.attrs = {k: _text(v) for k, v in self._f.attrs.items()}
        self.provenance = _provenance(self._f)

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _get(self, member):
        try:
            return self._f[member]
        except KeyError:
            raise Error("%s: no %s in this file" % (self.path, member)) from None


class Dump(_File):
    """read_dump(PATH): a `diffscope dump` file. Maps are read when asked for, one layer or one
    head at a time when selected, in the dtype they were stored in (float32 or float16)."""

    def __init__(self, path):
        super().__init__(path, "diffscope-dump")
        self.arch = self.attrs["arch"]
        self.layers = [int(l) for l in self.attrs["layers"]]
        self.ids = self._get("tokens/ids")[:]
        self.tokens = [_text(t) for t in self._get("tokens/text")[:]]
        self.prompt = self.attrs.get("prompt", "")
        self.config = json.loads(self.attrs["config"]) if "config" in self.attrs else {}

    def __repr__(self):
        return "<diffscope.Dump %s: %s, %d tokens, layers %s, maps %s>" % (
            self.path, self.arch, len(self.ids), self.layers, ", ".join(self.maps))

    @property
    def maps(self):
        """The map names this dump holds: softmax1, softmax2, diff, scores (DiffLlama), softmax."""
        return sorted(self._get("layers/%d/attn" % self.layers[0])) if self.layers else []

    def _layer(self, layer):
        if layer not in self.layers:
            raise Error("%s: layer %r is not in this dump (layers %s)" % (self.path, layer, self.layers))
        return layer

    def attn(self, name, layer=None, head=None):
        """Map NAME as [layer, head, query, key]; LAYER and HEAD (the model's numbers) select one
        and drop that axis. Coordinates: the dumped layers, the `heads` attribute (model heads;
        for DiffLlama's scores the sub-heads), token positions; labels: the token texts."""
        if name not in self.maps:
            raise Error("%s: no map %r (this dump has %s)" % (self.path, name, ", ".join(self.maps) or "none"))
        layers = self.layers if layer is None else [self._layer(layer)]
        sets = [self._f["layers/%d/attn/%s" % (l, name)] for l in layers]
        heads = [int(h) for h in sets[0].attrs["heads"]]
        if head is not None:
            if head not in heads:
                raise Error("%s: head %r of %s is not in this dump (heads %s)" % (self.path, head, name, heads))
            values = np.stack([s[heads.index(head)] for s in sets])
        else:
            values = np.stack([s[:] for s in sets])
        x = Labelled(values, ("layer", "head", "query", "key")[:1] + (("head",) if head is None else ()) + ("query", "key"),
                     {"layer": layers, "head": heads}, {"query": self.tokens, "key": self.tokens}, name)
        if layer is not None:
            x = x.isel(layer=0)
        if head is not None:
            x.name = "%s (%shead %d)" % (name, "layer %d, " % layer if layer is not None else "", head)
        return x

    def lambdas(self):
        """DiffLlama: [layer, param] float64, params lambda_1, lambda_2, lambda_init, lambda_full
        (the λ the run used: an override shows here)."""
        if not self.layers or "lambda_full" not in self._f["layers/%d/attn" % self.layers[0]].attrs:
            raise Error("%s: a %s dump has no lambda" % (self.path, self.arch))
        rows = [[self._f["layers/%d/attn" % l].attrs[p] for p in LAMBDA_PARAMS] for l in self.layers]
        return Labelled(np.array(rows, np.float64), ("layer", "param"),
                        {"layer": self.layers, "param": list(LAMBDA_PARAMS)}, name="lambda")

    def groupnorm(self, kind="scale", layer=None):
        """DiffLlama's GroupNorm "rms" or "scale" as [layer, head, token]."""
        if kind not in ("rms", "scale"):
            raise ValueError("groupnorm kind is 'rms' or 'scale', not %r" % (kind,))
        layers = self.layers if layer is None else [self._layer(layer)]
        sets = [self._get("layers/%d/groupnorm/%s" % (l, kind)) for l in layers]
        heads = [int(h) for h in self._f["layers/%d/attn" % layers[0]][self.maps[0]].attrs["heads"]]
        x = Labelled(np.stack([s[:] for s in sets]), ("layer", "head", "token"),
                     {"layer": layers, "head": heads}, {"token": self.tokens}, "groupnorm " + kind)
        return x.isel(layer=0) if layer is not None else x

    def cancelled_share(self, layer=None):
        """DiffLlama: the share of softmax1 that lambda*softmax2 cancels (docs/compare.md) as
        [layer, head, query]."""
        layers = self.layers if layer is None else [self._layer(layer)]
        sets = [self._get("layers/%d/cancelled_share" % l) for l in layers]
        x = Labelled(np.stack([s[:] for s in sets]), ("layer", "head", "query"),
                     {"layer": layers, "head": [int(h) for h in sets[0].attrs["heads"]]}, {"query": self.tokens},
                     "cancelled_share")
        return x.isel(layer=0) if layer is not None else x

    def outliers(self, kind, layer):
        """/layers/LAYER/outliers/KIND (scores, resid, mlp) as a dict: values, index, and the
        attributes median, mean, std, kurtosis, count, index_names."""
        g = self._get("layers/%d/outliers/%s" % (self._layer(layer), kind))
        out = {k: _text(v) for k, v in g.attrs.items()}
        out["values"], out["index"] = g["values"][:], g["index"][:]
        return out

    @property
    def logits(self):
        """[token, vocab] (a dump made with --logits)."""
        return Labelled(self._get("logits")[:], ("token", "vocab"), labels={"token": self.tokens}, name="logits")

    @property
    def hidden_states(self):
        """[layer, token, channel] in transformers' convention (a dump made with --hidden): entry 0
        the embeddings, entry i the output of layer i-1, the last one after the final norm."""
        return Labelled(self._get("hidden_states")[:], ("layer", "token", "channel"),
                        labels={"token": self.tokens}, name="hidden_states")


class CompareModel:
    """One model of a compare file: name (A or B), path, arch, heads, maps, lambda_full,
    cancelled_share()."""

    def __init__(self, cmp, name):
        self._cmp, self.name = cmp, name
        g = cmp._get("models/" + name)
        self._g = g
        self.path, self.arch, self.heads = _text(g.attrs["path"]), _text(g.attrs["arch"]), int(g.attrs["heads"])
        self.maps = [m for m in ("diff", "softmax1", "softmax") if m in g]
        self.layers = np.arange(len(g[self.maps[0]]["answer_mass"])) if self.maps else np.arange(0)

    def __repr__(self):
        return "<CompareModel %s: %s (%s), maps %s>" % (self.name, self.path, self.arch, ", ".join(self.maps))

    @property
    def lambda_full(self):
        """[layer]: the λ each DiffLlama layer used in the run."""
        if "lambda_full" not in self._g:
            raise Error("%s: model %s (%s) has no lambda_full" % (self._cmp.path, self.name, self.arch))
        return Labelled(self._g["lambda_full"][:], ("layer",), name="%s lambda_full" % self.name)

    def cancelled_share(self, per_head=False):
        """DiffLlama: [layer], the mean over heads, or [layer, head]: the share of softmax1's mass
        at row q that lambda*softmax2 cancels (docs/compare.md)."""
        name = "cancelled_share_per_head" if per_head else "cancelled_share"
        if name not in self._g:
            raise Error("%s: model %s (%s) has no cancelled_share" % (self._cmp.path, self.name, self.arch))
        return Labelled(self._g[name][:], ("layer", "head") if per_head else ("layer",),
                        name="%s cancelled_share" % self.name)

    def stat(self, field, map_name=None, per_head=False):
        """FIELD (answer_mass, noise_mass, sink_mass, entropy, sparsity) of map MAP_NAME (default:
        the model's first, diff or softmax) as [layer], the mean over heads, or [layer, head]."""
        m = map_name or self.maps[0]
        if m not in self.maps:
            raise Error("%s: model %s has no map %r (it has %s)" % (self._cmp.path, self.name, m, ", ".join(self.maps)))
        ds = self._cmp._get("models/%s/%s/%s%s" % (self.name, m, "per_head/" if per_head else "", field))
        dims = ("layer", "head") if per_head else ("layer",)
        return Labelled(ds[:], dims, name="%s %s %s" % (self.name, m, field))

    @property
    def outliers(self):
        """{"scores": {...}, "resid": {...}}: top1, top2, top3, top10, top100, median, count."""
        return {k: dict(g.attrs) for k, g in self._g["outliers"].items()} if "outliers" in self._g else {}


class Compare(_File):
    """read_compare(PATH): a `diffscope compare -o` file. models["A"] / models["B"] are
    CompareModel; query_pos and span ((begin, end) or None) say which row and keys were used."""

    def __init__(self, path):
        super().__init__(path, "diffscope-compare")
        self.ids = self._get("tokens/ids")[:]
        self.query_pos = int(self.attrs["query_pos"])
        b, e = int(self.attrs.get("span_begin", -1)), int(self.attrs.get("span_end", -1))
        self.span = (b, e) if b >= 0 else None
        self.models = {name: CompareModel(self, name) for name in sorted(self._get("models"))}

    def __repr__(self):
        return "<diffscope.Compare %s: %d tokens, query %d, span %s, models %s>" % (
            self.path, len(self.ids), self.query_pos, self.span, ", ".join(self.models))

    def stat(self, field, map_name=None, model="A", per_head=False):
        if model not in self.models:
            raise Error("%s: no model %r (models %s)" % (self.path, model, ", ".join(self.models)))
        return self.models[model].stat(field, map_name, per_head)


class NeedleModel:
    """One model of a needle result: name, path, arch, layers_averaged, maps, accuracy and
    correct ([depth]: the share and the count of right prompts)."""

    def __init__(self, path, m, depths):
        self._path, self._depths = path, depths
        self.name, self.path, self.arch = m["name"], m["path"], m["arch"]
        self.layers_averaged = m.get("layers_averaged", [])
        self._rows = m["depths"]
        self.maps = [k for k in ("diff", "softmax1", "softmax") if self._rows and k in self._rows[0]]
        self.accuracy = Labelled(np.array([r["accuracy"] for r in self._rows], np.float64), ("depth",),
                                 {"depth": depths}, name="%s accuracy" % self.name)
        self.correct = Labelled(np.array([r["correct"] for r in self._rows], np.int64), ("depth",),
                                {"depth": depths}, name="%s correct" % self.name)

    def __repr__(self):
        return "<NeedleModel %s: %s (%s), maps %s>" % (self.name, self.path, self.arch, ", ".join(self.maps))

    def _map(self, map_name):
        m = map_name or self.maps[0]
        if m not in self.maps:
            raise Error("%s: model %s has no map %r (it has %s)" % (self._path, self.name, m, ", ".join(self.maps)))
        return m

    def mass(self, field="answer_mass", map_name=None):
        """[depth]: FIELD (answer_mass, noise_mass) of MAP_NAME, mean over heads, the averaged
        layers and the depth's prompts."""
        m = self._map(map_name)
        return Labelled(np.array([np.nan if r[m][field] is None else r[m][field] for r in self._rows], np.float64),
                        ("depth",), {"depth": self._depths}, name="%s %s %s" % (self.name, m, field))

    def _values(self, field, map_name):
        return [r if field == "accuracy" else r[self._map(map_name)] for r in self._rows]

    def per_trial(self, field="answer_mass", map_name=None):
        """[depth, trial]: FIELD (accuracy: 1 or 0, answer_mass, noise_mass) of each prompt."""
        v = np.array([[np.nan if x is None else x for x in r[field + "_per_trial"]] for r in self._values(field, map_name)],
                     np.float64)
        return Labelled(v, ("depth", "trial"), {"depth": self._depths}, name="%s %s per trial" % (self.name, field))

    def spread(self, field="answer_mass", map_name=None, stat="ci95"):
        """[depth]: STAT (std, ci95) of FIELD (accuracy, answer_mass, noise_mass) over the depth's
        prompts."""
        v = np.array([np.nan if r[field + "_" + stat] is None else r[field + "_" + stat]
                      for r in self._values(field, map_name)], np.float64)
        return Labelled(v, ("depth",), {"depth": self._depths}, name="%s %s %s" % (self.name, field, stat))

    def mass_per_layer(self, field="answer_mass", map_name=None):
        """[depth, layer]: the same per layer."""
        m = self._map(map_name)
        v = np.array([[np.nan if x is None else x for x in r[m][field + "_per_layer"]] for r in self._rows],
                     np.float64)
        return Labelled(v, ("depth", "layer"), {"depth": self._depths}, name="%s %s %s" % (self.name, m, field))


def _needle_h5(path):
    """A `needle -o` file as the dict of its --json (docs/compare.md: the same names)."""
    f = _open(path, "diffscope-needle")
    try:
        d = {k: _text(v) for k, v in f.attrs.items()}
        d["depths"] = [int(x) for x in f["depths"][:]]
        d["models"] = []
        for name in sorted(f["models"]):
            g = f["models/" + name]
            m = {k: _text(v) for k, v in g.attrs.items()}
            m["name"], m["depths"] = name, []
            maps = [k for k in ("diff", "softmax1", "softmax") if k in g]
            for i, depth in enumerate(d["depths"]):
                row = {"depth": depth, "correct": int(g["correct"][i]),
                       "top1": [{"id": int(t)} for t in g["top1"][i]]}
                for k in ("accuracy", "accuracy_std", "accuracy_ci95"):
                    row[k] = float(g[k][i])
                row["accuracy_per_trial"] = [float(x) for x in g["accuracy_per_trial"][i]]
                for mp in maps:
                    row[mp] = {k: (g[mp][k][i].tolist()) for k in g[mp]}
                m["depths"].append(row)
            d["models"].append(m)
        return d
    except KeyError as e:
        raise Error("%s: no %s in this file" % (path, e)) from None
    finally:
        f.close()


class Needle:
    """read_needle(PATH): the JSON of `diffscope needle --json` saved to a file, or a
    `needle -o` HDF5 file. depths (percent), mode, models {"A": NeedleModel, "B": ...}."""

    def __init__(self, path):
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                is_h5 = f.read(8) == b"\x89HDF\r\n\x1a\n"
            if is_h5:
                d = _needle_h5(self.path)
            else:
                with open(self.path, encoding="utf-8") as f:
                    d = json.load(f)
        except FileNotFoundError:
            raise Error("%s: no such file" % self.path) from None
        except (OSError, ValueError) as e:
            raise Error("%s: not the JSON of `diffscope needle --json` (%s)" % (self.path, e)) from None
        if not isinstance(d, dict) or not isinstance(d.get("models"), list) or "depths" not in d:
            raise Error("%s: not the JSON of `diffscope needle --json` (no models or depths)" % self.path)
        self.raw = d
        self.provenance = d.get("provenance", {})
        self.mode = d.get("mode")
        self.depths = list(d["depths"])
        try:
            self.models = {m["name"]: NeedleModel(self.path, m, self.depths) for m in d["models"]}
        except (KeyError, TypeError) as e:
            raise Error("%s: a model entry lacks %s" % (self.path, e)) from None

    def __repr__(self):
        return "<diffscope.Needle %s: %s, depths %s, models %s>" % (self.path, self.mode, self.depths,
                                                                  ", ".join(self.models))


def read_provenance(path):
    """How the output file PATH was made, as a dict (docs/dump-format.md#provenance): the group
    /provenance of an HDF5 file of any kind, or the "provenance" object of a saved JSON output;
    {} when it has none."""
    import h5py
    path = str(path)
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                return _provenance(f)
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        raise Error("%s: no such file" % path) from None
    except (OSError, ValueError) as e:
        raise Error("%s: neither an HDF5 file nor JSON (%s)" % (path, e)) from None
    return d.get("provenance", {}) if isinstance(d, dict) else {}


def read_dump(path):
    return Dump(path)


def read_compare(path):
    return Compare(path)


def read_needle(path):
    return Needle(path)
