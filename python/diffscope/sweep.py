"""Reader for `diffscope sweep` files (docs/sweep.md): per prompt, layer and head figures of
each model, their aggregates over prompts, the needle-style grid, and the prompts."""
import json
import os

import numpy as np

from .errors import Error
from .labelled import Labelled
from .readers import Dump, _File, _text

OUTLIER_STATS = ("top1", "top2", "top3", "top10", "top100", "median")


def _dims(member, ndim):
    """Axis names of a per-prompt dataset of a model group, from its place and rank."""
    if member.startswith("outliers/"):
        return ("prompt", "stat")[:ndim]
    return ("prompt", "layer", "head")[:ndim]


class SweepModel:
    """One model of a sweep: name (A or B), path, arch, heads, num_layers, maps (the maps the
    statistics cover); kept_layers and kept_heads: the maps kept of every prompt (sweep
    --dump-layers/--dump-heads; empty when none), read with dump(i)."""

    def __init__(self, sweep, name):
        self._sweep, self.name = sweep, name
        g = sweep._get(name)
        self._g = g
        self.path, self.arch = _text(g.attrs.get("path", "")), _text(g.attrs.get("arch", ""))
        self.heads, self.num_layers = int(g.attrs.get("heads", 0)), int(g.attrs.get("layers", 0))
        self.maps = [m for m in ("diff", "softmax1", "softmax") if m in g]
        kept = g.get("maps")
        self.kept_layers = [int(l) for l in kept.attrs["layers"]] if kept is not None else []
        self.kept_heads = [int(h) for h in kept.attrs["heads"]] if kept is not None else []

    def dump(self, i):
        """Prompt I's kept maps as a diffscope.Dump (an ordinary dump file, the target of the
        master's link /{model}/maps/{i}): .attn("diff", layer, head) and the rest of read_dump."""
        i = self._sweep._prompt(i)
        kept = self._g.get("maps")
        if kept is None:
            raise Error("%s: model %s kept no maps (sweep --dump-layers/--dump-heads)" % (self._sweep.path, self.name))
        link = kept.get(str(i), getlink=True)
        if link is None:
            raise Error("%s: no maps of prompt %d for model %s" % (self._sweep.path, i, self.name))
        return Dump(os.path.join(os.path.dirname(self._sweep.path), _text(link.filename)))

    def __repr__(self):
        return "<SweepModel %s: %s (%s), maps %s>" % (self.name, self.path, self.arch, ", ".join(self.maps))

    def _labelled(self, member, values, dims, name):
        coords = {"stat": list(OUTLIER_STATS)} if "stat" in dims and values.shape[dims.index("stat")] == 6 else {}
        return Labelled(values, dims, coords, name="%s %s" % (self.name, name))

    def get(self, member):
        """The per-prompt dataset MEMBER of this model ("diff/answer_mass", "cancelled_share",
        "groupnorm/scale_query",
        "lambda_full", "outliers/scores", "top1", "correct"): [prompt, layer, head], [prompt,
        layer], [prompt, stat] or [prompt]."""
        ds = self._sweep._get("%s/%s" % (self.name, member))
        return self._labelled(member, ds[:], _dims(member, ds.ndim), member)

    def stat(self, field, map_name=None):
        """FIELD (answer_mass, noise_mass, sink_mass, entropy, sparsity) of MAP_NAME (default the
        model's first map) as [prompt, layer, head]."""
        m = map_name or (self.maps[0] if self.maps else "")
        if m not in self.maps:
            raise Error("%s: model %s has no map %r (it has %s)" % (self._sweep.path, self.name, m, ", ".join(self.maps)))
        return self.get("%s/%s" % (m, field))

    def aggregate(self, member, stat="mean", over_heads=False):
        """MEMBER's STAT (mean, std, ci95, median, count) over the prompts: the per-prompt axes less
        the prompt ([layer, head], ...); OVER_HEADS: of each prompt's mean over heads, [layer]."""
        path = "aggregates/%s/%s%s/%s" % (self.name, member, "/over_heads" if over_heads else "", stat)
        ds = self._sweep._get(path)
        per_prompt = self._sweep._f.get("%s/%s" % (self.name, member))
        dims = ("layer",) if over_heads else _dims(member, per_prompt.ndim if per_prompt is not None else 1)[1:]
        if len(dims) != ds.ndim:
            dims = ("value",) * ds.ndim if ds.ndim == 1 else tuple("axis%d" % i for i in range(ds.ndim))
        return self._labelled(member, ds[:], dims, "%s %s" % (member, stat))


class Sweep(_File):
    """read_sweep(PATH): a `diffscope sweep` master file. models {"A": SweepModel, "B": ...};
    prompts {name: array} (/prompts: query, span, answer_id, length, depth, trial, tokens);
    prompt_ids(i) and meta(i) give prompt i's token ids and its JSON fields; grid(...) the
    [length, depth] tables of a grid run."""

    def __init__(self, path):
        super().__init__(path, "diffscope-sweep")
        self.models = {n: SweepModel(self, n) for n in ("A", "B") if n in self._f}
        p = self._get("prompts")
        self.prompts = {k: p[k][:] for k in p if k not in ("token_ids", "token_offsets", "meta")}
        self._ids, self._offsets = p["token_ids"][:], p["token_offsets"][:]
        self._meta = p["meta"][:] if "meta" in p else None

    def __len__(self):
        return len(self._offsets) - 1

    def __repr__(self):
        return "<diffscope.Sweep %s: %d prompts, models %s>" % (self.path, len(self), ", ".join(self.models))

    def _prompt(self, i):
        if not 0 <= i < len(self):
            raise IndexError("prompt %d of %d" % (i, len(self)))
        return i

    def prompt_ids(self, i):
        i = self._prompt(i)
        return self._ids[self._offsets[i]:self._offsets[i + 1]]

    def meta(self, i):
        return json.loads(_text(self._meta[self._prompt(i)])) if self._meta is not None else {}

    def grid(self, what="acc", model="A"):
        """A grid run's WHAT ("acc", "diff/answer_mass", "softmax/noise_mass", ...) of MODEL as
        [length, depth], coordinates the context lengths and depths (percent)."""
        g = self._get("aggregates/grid")
        v = self._get("aggregates/grid/%s/%s" % (model, what))[:]
        return Labelled(v, ("length", "depth"), {"length": g["lengths"][:], "depth": g["depths"][:]},
                        name="%s %s" % (model, what))


def read_sweep(path):
    return Sweep(path)
