"""Labelled arrays: a NumPy array with a name per axis (layer, head, query, key, ...), the
coordinate of each index along it (the model's layer and head numbers, token positions), token
texts for axes that run over tokens, and a one-line matplotlib plot."""
import numpy as np


class Labelled:
    """VALUES (np.ndarray) with DIMS (axis names), COORDS ({dim: coordinate of each index}) and
    LABELS ({dim: tick text of each index}, for token axes). np.asarray(x) gives the values."""

    def __init__(self, values, dims, coords=None, labels=None, name=""):
        self.values = np.asarray(values)
        self.dims = tuple(dims)
        if self.values.ndim != len(self.dims):
            raise ValueError("%d axis names for an array of %d dimensions" % (len(self.dims), self.values.ndim))
        coords = coords or {}
        self.coords = {d: np.asarray(coords[d]) if d in coords else np.arange(n)
                       for d, n in zip(self.dims, self.values.shape)}
        self.labels = {d: list(v) for d, v in (labels or {}).items() if d in self.dims}
        self.name = name

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __getitem__(self, index):
        return self.values[index]

    def __len__(self):
        return len(self.values)

    @property
    def shape(self):
        return self.values.shape

    @property
    def dtype(self):
        return self.values.dtype

    def __repr__(self):
        axes = ", ".join("%s: %d" % (d, n) for d, n in zip(self.dims, self.shape))
        return "<Labelled %s[%s] %s>" % (self.name + " " if self.name else "", axes, self.dtype)

    def _index(self, dim, coord):
        hits = np.flatnonzero(self.coords[dim] == coord)
        if not len(hits):
            raise KeyError("%s %r is not in this array (it has %s)" % (dim, coord, list(self.coords[dim])))
        return int(hits[0])

    def sel(self, **by_coord):
        """The array at the given coordinates, e.g. x.sel(layer=3, head=1): those axes dropped."""
        return self.isel(**{d: self._index(d, c) for d, c in by_coord.items()})

    def isel(self, **by_index):
        """The same by position along each axis."""
        for d in by_index:
            if d not in self.dims:
                raise KeyError("no axis %r (axes: %s)" % (d, ", ".join(self.dims)))
        index = tuple(by_index.get(d, slice(None)) for d in self.dims)
        keep = [d for d in self.dims if d not in by_index]
        picked = ", ".join("%s %s" % (d, self.coords[d][i]) for d, i in by_index.items())
        name = "%s (%s)" % (self.name, picked) if self.name else picked
        return Labelled(self.values[index], keep, {d: self.coords[d] for d in keep},
                        {d: v for d, v in self.labels.items() if d in keep}, name)

    def _ticks(self, ax, dim, axis):
        if dim not in self.labels or len(self.labels[dim]) > 80:
            return
        pos = np.arange(len(self.labels[dim]))
        text = [t.strip() for t in self.labels[dim]]
        if axis == "x":
            ax.set_xticks(pos, text, rotation=90, fontsize=7)
        else:
            ax.set_yticks(pos, text, fontsize=7)

    def plot(self, ax=None, **kwargs):
        """A line (1 axis) or an image with a colour bar (2 axes; diverging colours centred on 0
        when there are negative values); returns the matplotlib Axes. Needs matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("Labelled.plot needs matplotlib (Debian: apt-get install python3-matplotlib)") from None
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 5) if self.values.ndim == 2 else (7, 3.5))
        v = self.values.astype(np.float64)
        if v.ndim == 1:
            d = self.dims[0]
            x = np.arange(len(v)) if d in self.labels else self.coords[d]
            ax.plot(x, v, **kwargs)
            ax.set_xlabel(d)
            self._ticks(ax, d, "x")
        elif v.ndim == 2:
            finite = v[np.isfinite(v)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            if lo < 0:
                m = max(abs(lo), abs(hi))
                kwargs.setdefault("cmap", "RdBu_r")
                kwargs.setdefault("vmin", -m)
                kwargs.setdefault("vmax", m)
            kwargs.setdefault("interpolation", "nearest")
            kwargs.setdefault("aspect", "auto")
            im = ax.imshow(v, **kwargs)
            ax.figure.colorbar(im, ax=ax)
            ax.set_ylabel(self.dims[0])
            ax.set_xlabel(self.dims[1])
            self._ticks(ax, self.dims[0], "y")
            self._ticks(ax, self.dims[1], "x")
        else:
            raise ValueError("plot takes 1 or 2 axes; select first, e.g. .sel(%s)"
                             % ", ".join("%s=..." % d for d in self.dims[:v.ndim - 2]))
        ax.set_title(self.name, fontsize=10)
        return ax
