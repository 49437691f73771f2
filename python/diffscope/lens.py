"""The logit lens and direct logit attribution (docs/lens.md): lens(model, ids, ...) runs them
through the library, read_lens(path) reads a `diffscope lens -o` file; both give labelled
arrays."""
import ctypes

import numpy as np

from . import _lib
from .errors import Error
from .labelled import Labelled
from .probes import _Probes
from .readers import _File

DLA_SCALARS = ("logit", "scale", "embed", "total", "remainder")


class Lens(_File):
    """read_lens(PATH). position, target, vs (None without --vs-token), target_text, ids; streams
    (the probe point of each lens row: hook_embed, then blocks.{l}.hook_resid_post); lens(field)
    and dla(field) give the arrays; logit, scale, embed, total, remainder the DLA's numbers."""

    LENS_FIELDS = ("top_ids", "top_logit", "top_prob", "target_rank", "target_logit", "target_prob", "vs_logit")
    DLA_FIELDS = ("heads", "softmax1_path", "softmax2_path", "attn_bias", "mlp")

    def __init__(self, path):
        super().__init__(path, "diffscope-lens")
        self.ids = self._get("input_ids")[:]
        self.position, self.target = int(self.attrs["position"]), int(self.attrs["target"])
        self.vs = int(self.attrs["vs"]) if int(self.attrs["vs"]) >= 0 else None
        self.target_text = self.attrs.get("target_text")
        rows = self._get("lens/target_logit").shape[0]
        self.streams = ["hook_embed"] + ["blocks.%d.hook_resid_post" % l for l in range(rows - 1)]
        d = self._get("dla").attrs
        self.logit, self.scale, self.embed = float(d["logit"]), float(d["scale"]), float(d["embed"])
        self.total, self.remainder = float(d["total"]), float(d["remainder"])

    def __repr__(self):
        return "<diffscope.Lens %s: position %d, target %d%s, %d streams>" % (
            self.path, self.position, self.target, "" if self.vs is None else " vs %d" % self.vs, len(self.streams))

    def lens(self, field):
        """FIELD of the logit lens: top_ids, top_logit, top_prob [stream, rank]; target_rank,
        target_logit, target_prob, vs_logit [stream]. The stream axis is labelled with the probe
        points."""
        if field not in self.LENS_FIELDS:
            raise Error("%s: no lens field %r (fields: %s)" % (self.path, field, ", ".join(self.LENS_FIELDS)))
        ds = self._get("lens/" + field)
        dims = ("stream", "rank")[:ds.ndim]
        return Labelled(ds[:], dims, labels={"stream": self.streams}, name=field)

    def dla(self, field="heads"):
        """FIELD of the attribution: heads, softmax1_path, softmax2_path [layer, head] (the paths
        for DiffLlama only); attn_bias, mlp [layer]."""
        if field not in self.DLA_FIELDS:
            raise Error("%s: no DLA field %r (fields: %s)" % (self.path, field, ", ".join(self.DLA_FIELDS)))
        ds = self._get("dla/" + field)
        return Labelled(ds[:], ("layer", "head")[:ds.ndim], name=field)


def read_lens(path):
    return Lens(path)


class LensRun:
    """lens()'s result: position, target, vs (None without vs_token), logits (the model's at the
    position, [vocab]), streams (the probe point of each lens row), lens_logits [stream, vocab]
    (float64), dla(field) as Lens.dla, and DLA's logit, scale, embed, total, remainder."""

    def __init__(self, model, position, target, vs, logits, lens_logits, flat):
        L, heads = model.num_layers, model.heads
        self.position, self.target, self.vs, self.logits = position, target, vs, logits
        self.streams = ["hook_embed"] + ["blocks.%d.hook_resid_post" % l for l in range(L)]
        self.lens_logits = Labelled(lens_logits, ("stream", "vocab"), labels={"stream": self.streams},
                                    name="lens logits")
        for name, v in zip(DLA_SCALARS, flat[:5]):
            setattr(self, name, float(v))
        per, rest = L * heads, flat[5:]
        self._dla = {"heads": rest[:per].reshape(L, heads), "attn_bias": rest[3 * per:3 * per + L],
                     "mlp": rest[3 * per + L:]}
        if model.is_diff:
            self._dla["softmax1_path"] = rest[per:2 * per].reshape(L, heads)
            self._dla["softmax2_path"] = rest[2 * per:3 * per].reshape(L, heads)

    def __repr__(self):
        return "<diffscope.LensRun: position %d, target %d%s, logit %.6g>" % (
            self.position, self.target, "" if self.vs is None else " vs %d" % self.vs, self.logit)

    def dla(self, field="heads"):
        if field not in self._dla:
            raise Error("no DLA field %r here (fields: %s)" % (field, ", ".join(self._dla)))
        v = self._dla[field]
        return Labelled(v, ("layer", "head")[:v.ndim], name=field)


def _token(model, t, what):
    if isinstance(t, str):
        ids = model.tokenize(t, special=False)
        if len(ids) != 1:
            raise Error("%s: %r is %d tokens of %s's tokenizer, not one" % (what, t, len(ids), model.path))
        t = ids[0]
    if not 0 <= int(t) < model.vocab_size:
        raise Error("%s: token id %s outside the vocabulary (0..%d)" % (what, t, model.vocab_size - 1))
    return int(t)


def lens(model, ids, position=-1, token=None, vs_token=None, interventions=(), hooks=None):
    """The logit lens and DLA of MODEL (a diffscope.Model) at POSITION (negative: from the end) of
    IDS (token ids, or text tokenized with BOS), as `diffscope lens`: TOKEN (an id or the text of
    one token; default the model's top-1) and VS_TOKEN as --token and --vs-token; INTERVENTIONS
    and HOOKS as Model.run. Only the tokens up to POSITION run."""
    ids = model._ids(ids)
    P = position + len(ids) if position < 0 else position
    if not 0 <= P < len(ids):
        raise Error("position %d out of range for %d tokens (%d..%d)" % (position, len(ids), -len(ids), len(ids) - 1))
    target = None if token is None else _token(model, token, "token")
    vs = None if vs_token is None else _token(model, vs_token, "vs_token")
    L, R, V = _lib.lib(), model.num_layers + 1, model.vocab_size
    probes = _Probes(model, interventions, hooks)
    x = L.ds_lens_begin(probes.ptr, model._handle(), P)
    try:
        if not x:
            raise _lib.fail(model.path)
        logits = model._forward(ids[:P + 1], probes, True, False)
        if L.ds_lens_finish(x):
            raise _lib.fail(model.path)
        lens_logits = np.ctypeslib.as_array(L.ds_lens_logits(x), shape=(R * V,)).reshape(R, V).copy()
        target = int(np.argmax(logits)) if target is None else target
        flat = np.zeros(5 + 3 * model.num_layers * model.heads + 2 * model.num_layers)
        if L.ds_lens_dla_flat(x, target, -1 if vs is None else vs, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_double))):
            raise _lib.fail(model.path)
    finally:
        L.ds_lens_free(x)
        probes.close()
    return LensRun(model, P, target, vs, logits, lens_logits, flat)
