"""read_patch(PATH): a `diffscope patch -o` file (docs/patch.md) as labelled arrays."""
from .errors import Error
from .labelled import Labelled
from .readers import _File


class Patch(_File):
    """The tables of an activation-patching run. attrs: the root attributes (metric, answer_id,
    clean, corrupted, command, ...); tables: the names present; table(NAME) a Labelled array."""

    def __init__(self, path):
        super().__init__(path, "diffscope-patch")
        self.clean_ids = self._get("tokens/clean_ids")[:]
        self.corrupted_ids = self._get("tokens/corrupted_ids")[:]
        self.tables = sorted(k for k in self._f if k != "tokens")

    def __repr__(self):
        return "<diffscope.Patch %s: %s, %d tokens, tables %s>" % (
            self.path, self.attrs.get("metric"), len(self.clean_ids), ", ".join(self.tables))

    def table(self, name, normalized=True):
        """Table NAME (resid_pre, resid_pre_all, head_out, softmax1, softmax2, lambda) as
        [layer, position], [layer, head] or [layer]: normalized (0 = corrupted, 1 = clean) or
        the raw metric."""
        if name not in self.tables:
            raise Error("%s: no table %r (this file has %s)" % (self.path, name, ", ".join(self.tables)))
        d = self._get("%s/%s" % (name, "normalized" if normalized else "raw"))
        dims = tuple(dim.label or "axis%d" % i for i, dim in enumerate(d.dims))
        return Labelled(d[:], dims, name="%s (%s)" % (name, "normalized" if normalized else "raw"))


def read_patch(path):
    return Patch(path)
