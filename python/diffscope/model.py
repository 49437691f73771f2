"""A loaded checkpoint and what runs it: run, run_with_cache, generate (docs/python.md)."""
import ctypes
import json
import os

import numpy as np

from . import _lib
from .errors import Error
from .probes import _Probes
from .tokenizer import Tokenizer
from .tokens import as_ids

_INT_P = ctypes.POINTER(ctypes.c_int)
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def set_threads(n):
    """Threads for OpenBLAS and the library's loops (0: the default, every core allowed)."""
    _lib.lib().ds_set_threads(int(n))


def get_threads():
    return _lib.lib().ds_get_threads()


class Cache(dict):
    """run_with_cache's activations: {probe name: float32 array of the full tensor}."""

    def __repr__(self):
        return "Cache(%s)" % ", ".join("%s %s" % (k, list(v.shape)) for k, v in self.items())


class Model(_lib.Owned):
    """A checkpoint loaded by libdiffscope: load(MODEL_DIR). Attributes: path, config (config.json
    as a dict), arch, vocab_size, d_model, num_layers, num_heads, num_kv_heads, head_dim,
    max_positions, is_diff (differential attention), heads (per attention map: H/2 differential
    heads, or H), probe_names (every probe point this model fires, in the forward pass's order),
    compute ("f32" or "bf16": how its matrix products run, docs/numerics.md)."""

    def __init__(self, model_dir, compute="f32"):
        self.path = os.fspath(model_dir)
        L = _lib.lib()
        mode = ctypes.c_int()
        if L.ds_compute_parse(str(compute).encode(), ctypes.byref(mode)):
            raise ValueError("compute must be 'f32' or 'bf16', not %r" % (compute,))
        self.compute = str(compute)
        L.ds_set_compute(mode.value)
        self._ptr = L.ds_model_load(self.path.encode())
        if not self._ptr:
            raise _lib.fail()
        self.config = json.loads(L.ds_model_config_json(self._ptr).decode("utf-8"))
        self.arch = L.ds_model_arch(self._ptr).decode()
        dim = lambda name: L.ds_model_dim(self._ptr, name.encode())
        self.vocab_size = dim("vocab_size")
        self.d_model = dim("hidden_size")
        self.num_layers = dim("num_hidden_layers")
        self.num_heads = dim("num_attention_heads")
        self.num_kv_heads = dim("num_key_value_heads")
        self.head_dim = dim("head_dim")
        self.max_positions = dim("max_position_embeddings")
        self.is_diff = bool(dim("differential"))
        self.heads = dim("map_heads")
        buf = ctypes.create_string_buffer(96)
        self.probe_names = []
        while L.ds_model_probe_name(self._ptr, len(self.probe_names), buf, len(buf)):
            self.probe_names.append(buf.value.decode())
        self._tokenizer = None

    # -- life cycle
    def _handle(self):
        if not self._ptr:
            raise Error("%s: the model is closed" % self.path)
        return self._ptr

    def close(self):
        """Frees the weights; the Model cannot run afterwards."""
        if getattr(self, "_tokenizer", None) is not None:
            self._tokenizer.close()
        if getattr(self, "_ptr", None):
            _lib.lib().ds_model_free(self._ptr)
            self._ptr = None

    def __repr__(self):
        return "<diffscope.Model %s: %s, %d layers, %d heads%s>" % (
            self.path, self.arch, self.num_layers, self.num_heads,
            " (%d differential)" % self.heads if self.is_diff else "")

    def lambdas(self):
        """[num_layers, 4] float64: lambda_1, lambda_2, lambda_init, lambda_full (DiffLlama)."""
        if not self.is_diff:
            raise Error("%s: a %s model has no lambda" % (self.path, self.arch))
        out = np.zeros((self.num_layers, 4))
        buf = (ctypes.c_double * 4)()
        for l in range(self.num_layers):
            _lib.lib().ds_model_lambda(self._handle(), l, buf)
            out[l] = list(buf)
        return out

    # -- tokens
    @property
    def tokenizer(self):
        """The model folder's tokenizer.json (loaded on first use)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self.path)
        return self._tokenizer

    def tokenize(self, text, special=True):
        return self.tokenizer.encode(text, special)

    def detokenize(self, ids, skip_special=False):
        return self.tokenizer.decode(ids, skip_special)

    def to_str_tokens(self, ids):
        """Printable pieces of IDS (axis labels)."""
        return self.tokenizer.pieces(ids)

    def _ids(self, ids):
        return as_ids(self.tokenize(ids) if isinstance(ids, str) else ids)

    # -- running
    def _forward(self, ids, probes, last_only, allow_long):
        L = _lib.lib()
        n = len(ids)
        sess = L.ds_session_new(self._handle(), n, int(bool(allow_long)))
        if not sess:
            raise _lib.fail(self.path)
        logits = np.empty((1 if last_only else n, self.vocab_size), np.float32)
        try:
            rc = L.ds_forward(sess, ids.ctypes.data_as(_INT_P), n, logits.ctypes.data_as(_FLOAT_P),
                              int(bool(last_only)), probes.ptr if probes else None)
            if probes:
                probes.raise_pending()
            if rc:
                raise _lib.fail(self.path)
        finally:
            L.ds_session_free(sess)
        return logits[0] if last_only else logits

    def run(self, ids, hooks=None, interventions=(), last_only=False, allow_long=False):
        """Logits [T, V] float32 of IDS (token ids, or text tokenized with BOS), or [V] of the last
        token with LAST_ONLY. HOOKS: (glob, fn) pairs or {glob: fn}; fn(x, hook) gets a writable
        view of the block and may edit it in place or return a replacement (docs/python.md).
        INTERVENTIONS: lambda_override(layer, value), ablate_head(layer, head)."""
        ids = self._ids(ids)
        probes = _Probes(self, interventions, hooks) if (hooks or interventions) else None
        try:
            return self._forward(ids, probes, last_only, allow_long)
        finally:
            if probes:
                probes.close()

    def run_with_cache(self, ids, names=("*",), hooks=None, interventions=(), allow_long=False):
        """(logits [T, V], Cache): the activations at every probe point matching a glob of NAMES,
        e.g. ["blocks.*.attn.hook_pattern", "blocks.1.hook_resid_post"], as full float32 arrays
        keyed by probe name (shapes in docs/python.md), after the hooks and interventions."""
        ids = self._ids(ids)
        probes = _Probes(self, interventions, hooks, names)
        try:
            logits = self._forward(ids, probes, False, allow_long)
            order = {name: i for i, name in enumerate(self.probe_names)}
            return logits, Cache(sorted(probes.cache.items(), key=lambda kv: order.get(kv[0], len(order))))
        finally:
            probes.close()

    def generate(self, ids, max_new=16, temperature=0.0, top_p=1.0, seed=0, ignore_eos=False, hooks=None,
                 interventions=(), on_token=None, allow_long=False):
        """New token ids after IDS (ids or text): greedy by default, else sampled with TEMPERATURE
        and TOP_P from SEED, through the KV cache, stopping at the config's EOS unless IGNORE_EOS.
        Hooks and interventions hold for every step; ON_TOKEN(id) is called with each new token
        and stops the generation by returning True."""
        ids = self._ids(ids)
        if max_new < 1:
            raise ValueError("max_new must be at least 1, got %r" % (max_new,))
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1], got %r and %r" % (temperature, top_p))
        L = _lib.lib()
        opts = _lib.GenOpts(max_new=int(max_new), temperature=float(temperature), top_p=float(top_p),
                            seed=int(seed), ignore_eos=int(bool(ignore_eos)))
        out = np.zeros(max_new, np.int32)
        n_out = ctypes.c_int(0)
        errors = []

        def token(i, _user):
            try:
                return int(bool(on_token(i))) if on_token else 0
            except BaseException as e:
                errors.append(e)
                return 1
        token_cb = _lib.TOKEN_FN(token)
        probes = _Probes(self, interventions, hooks) if (hooks or interventions) else None
        sess = L.ds_session_new(self._handle(), len(ids) + max_new, int(bool(allow_long)))
        try:
            if not sess:
                raise _lib.fail(self.path)
            rc = L.ds_generate(sess, ids.ctypes.data_as(_INT_P), len(ids), ctypes.byref(opts),
                               out.ctypes.data_as(_INT_P), ctypes.byref(n_out), probes.ptr if probes else None,
                               token_cb, None)
            if probes:
                probes.raise_pending()
            if errors:
                raise errors[0]
            if rc:
                raise _lib.fail(self.path)
        finally:
            if sess:
                L.ds_session_free(sess)
            if probes:
                probes.close()
        return [int(i) for i in out[:n_out.value]]


def load(model_dir, compute="f32"):
    """Loads MODEL_DIR (config.json + safetensors) as a Model; diffscope.Error when it cannot.
    COMPUTE "bf16" keeps the weight matrices in bfloat16 and runs the products with bf16 operands
    and float32 sums (docs/numerics.md, "bf16 compute"); "f32" (the default) is exact."""
    return Model(model_dir, compute)
