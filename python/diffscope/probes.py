"""Python callbacks at libdiffscope's probe points (include/diffscope/probe.h).

A _Probes holds one C probe set for one call of run / run_with_cache / generate: first the
interventions, then the user's hooks, then the cache readers, so that hooks see the intervened
values and the cache sees what the hooks wrote. Each callback gets a NumPy view of the live
buffer (no copy); a hook may change it in place, or return an array that is written into it.

Threads: ds_forward fires every probe event from the thread that called it, outside its OpenMP
regions (probe.h's contract; tests/unit/test_probe_thread.c checks it), and ctypes takes the GIL
for each callback, so hooks run as ordinary Python on the caller's thread. A callback that finds
itself on another thread aborts the run instead of touching Python state concurrently."""
import fnmatch
import threading

import numpy as np

from . import _lib
from .errors import Error


class Hook:
    """What a hook learns about the event besides the data: the probe NAME
    ("blocks.2.attn.hook_diff"), LAYER (-1 for model-level points), POS0 (KV-cache length before
    this forward call), OFFSET (where this block starts in the full tensor: attention maps
    arrive in blocks of query rows, OFFSET[1] the first row) and FULL (the full tensor's shape)."""
    __slots__ = ("name", "layer", "pos0", "offset", "full")

    def __init__(self, ev):
        nd = ev.ndim
        self.name = ev.name.decode()
        self.layer = ev.layer
        self.pos0 = ev.pos0
        self.offset = tuple(ev.offset[:nd])
        self.full = tuple(ev.full[:nd])

    def __repr__(self):
        return "Hook(%r, offset=%s, full=%s)" % (self.name, self.offset, self.full)


def event_view(ev):
    """The event's block as a writable float32 NumPy view of the library's buffer, valid only
    while the callback runs."""
    nd = ev.ndim
    shape = tuple(ev.shape[:nd])
    strides = tuple(ev.strides[:nd])
    if any(n == 0 for n in shape):
        return np.zeros(shape, np.float32)
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
    base = np.ctypeslib.as_array(ev.data, shape=(extent,))
    return np.lib.stride_tricks.as_strided(base, shape, tuple(4 * s for s in strides), writeable=True)


def lambda_override(layer, value):
    """Intervention: use λ = VALUE in DiffLlama layer LAYER (the CLI's --lambda-override L=V)."""
    return ("lambda", int(layer), float(value))


def ablate_head(layer, head):
    """Intervention: zero head HEAD of layer LAYER at the input of o_proj (a differential head
    for DiffLlama; the CLI's --ablate-head L.H)."""
    return ("ablate", int(layer), int(head))


def _hook_pairs(hooks):
    if hooks is None:
        return []
    items = hooks.items() if isinstance(hooks, dict) else hooks
    pairs = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and callable(item[1])):
            raise TypeError("hooks must be (name or glob, function) pairs or a {glob: function} dict, got %r" % (item,))
        pairs.append((item[0], item[1]))
    return pairs


class _Probes:
    def __init__(self, model, interventions=(), hooks=None, cache_names=()):
        L = _lib.lib()
        self._ptr = L.ds_probes_new()
        if not self._ptr:
            raise Error("out of memory")
        self._callbacks = []   # the C function pointers must live as long as the probe set
        self._thread = threading.get_ident()
        self.error = None
        self.cache = {}
        self._names, self._model_path = model.probe_names, model.path
        try:
            for iv in interventions or ():
                self._intervene(model, iv)
            for pattern, fn in _hook_pairs(hooks):
                self._add(pattern, self._user_hook(fn))
            if isinstance(cache_names, str):
                cache_names = [cache_names]
            for pattern in cache_names:
                self._add(pattern, self._store)
        except BaseException:
            self.close()
            raise

    @property
    def ptr(self):
        return self._ptr

    def close(self):
        if self._ptr:
            _lib.lib().ds_probes_free(self._ptr)
            self._ptr = None

    def _intervene(self, model, iv):
        L = _lib.lib()
        if not (isinstance(iv, tuple) and len(iv) == 3 and iv[0] in ("lambda", "ablate")):
            raise TypeError("interventions are made by diffscope.lambda_override(layer, value) or "
                            "diffscope.ablate_head(layer, head), got %r" % (iv,))
        kind, layer, arg = iv
        rc = (L.ds_intervene_lambda(self._ptr, model._handle(), layer, arg) if kind == "lambda"
              else L.ds_intervene_ablate(self._ptr, model._handle(), layer, arg))
        if rc:
            raise _lib.fail(model.path)

    def _add(self, pattern, fn):
        if not isinstance(pattern, str):
            raise TypeError("probe names are strings (names or globs), got %r" % (pattern,))
        if not any(fnmatch.fnmatchcase(n, pattern) for n in self._names):
            raise ValueError("no probe point of %s matches %r (names look like blocks.0.hook_resid_pre, "
                             "blocks.0.attn.hook_pattern; Model.probe_names lists them)" % (self._model_path, pattern))
        def trampoline(evp, _user):
            if self.error is not None:
                return 1
            try:
                if threading.get_ident() != self._thread:
                    raise RuntimeError("probe event on a thread other than the caller's")
                fn(evp.contents)
                return 0
            except BaseException as e:  # re-raised by raise_pending once the C call returns
                self.error = e
                return 1
        cb = _lib.HOOK_FN(trampoline)
        self._callbacks.append(cb)
        if _lib.lib().ds_probes_add(self._ptr, pattern.encode(), cb, None):
            raise _lib.fail()

    @staticmethod
    def _user_hook(fn):
        def call(ev):
            x = event_view(ev)
            out = fn(x, Hook(ev))
            if out is not None and out is not x:
                out = np.asarray(out, dtype=np.float32)
                if out.shape != x.shape:
                    raise ValueError("hook %s returned shape %s for a block of shape %s"
                                     % (ev.name.decode(), out.shape, x.shape))
                x[...] = out
        return call

    def _store(self, ev):
        nd = ev.ndim
        name = ev.name.decode()
        arr = self.cache.get(name)
        if arr is None:
            arr = self.cache[name] = np.zeros(tuple(ev.full[:nd]), np.float32)
        block = tuple(slice(o, o + n) for o, n in zip(ev.offset[:nd], ev.shape[:nd]))
        arr[block] = event_view(ev)

    def raise_pending(self):
        """Re-raises a hook's exception that aborted the C call."""
        if self.error is not None:
            e, self.error = self.error, None
            raise e


__all__ = ["Hook", "event_view", "lambda_override", "ablate_head"]
