"""Loading libdiffscope.so and declaring the C functions the package calls (ctypes).

The library is looked up, in order: $DIFFSCOPE_LIB (a path to the .so), build/libdiffscope.so
of the checkout this package sits in, then the dynamic loader's search path (an installed
libdiffscope.so). It is loaded on first use, so the readers work without it."""
import ctypes
import os

from .errors import Error

_HERE = os.path.dirname(os.path.abspath(__file__))
_lib = None


class ProbeEvent(ctypes.Structure):
    """include/diffscope/probe.h's ds_probe_event (checked against the library at load)."""
    _fields_ = [("name", ctypes.c_char_p), ("point", ctypes.c_int), ("layer", ctypes.c_int),
                ("pos0", ctypes.c_int), ("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * 4),
                ("strides", ctypes.c_int64 * 4), ("offset", ctypes.c_int64 * 4),
                ("full", ctypes.c_int64 * 4), ("data", ctypes.POINTER(ctypes.c_float)),
                ("first_map", ctypes.POINTER(ctypes.c_float))]


class GenOpts(ctypes.Structure):
    """include/diffscope/generate.h's ds_gen_opts."""
    _fields_ = [("max_new", ctypes.c_int), ("temperature", ctypes.c_float), ("top_p", ctypes.c_float),
                ("seed", ctypes.c_uint64), ("ignore_eos", ctypes.c_int)]


HOOK_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ProbeEvent), ctypes.c_void_p)
TOKEN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
# name: (restype, argtypes)
_SIGNATURES = {
    "ds_errmsg": (_S, []),
    "ds_model_load": (_P, [_S]),
    "ds_model_free": (None, [_P]),
    "ds_model_dim": (ctypes.c_longlong, [_P, _S]),
    "ds_model_arch": (_S, [_P]),
    "ds_model_config_json": (_S, [_P]),
    "ds_model_lambda": (None, [_P, _I, ctypes.POINTER(ctypes.c_double)]),
    "ds_model_probe_name": (_S, [_P, _I, ctypes.c_char_p, _I]),
    "ds_struct_offset": (ctypes.c_longlong, [_S, _S]),
    "ds_free": (None, [_P]),
    "ds_session_new": (_P, [_P, _I, _I]),
    "ds_session_free": (None, [_P]),
    "ds_forward": (_I, [_P, ctypes.POINTER(_I), _I, ctypes.POINTER(ctypes.c_float), _I, _P]),
    "ds_generate": (_I, [_P, ctypes.POINTER(_I), _I, ctypes.POINTER(GenOpts), ctypes.POINTER(_I),
                         ctypes.POINTER(_I), _P, TOKEN_FN, _P]),
    "ds_set_compute": (None, [_I]),
    "ds_compute_parse": (_I, [_S, ctypes.POINTER(_I)]),
    "ds_set_threads": (None, [_I]),
    "ds_get_threads": (_I, []),
    "ds_probes_new": (_P, []),
    "ds_probes_free": (None, [_P]),
    "ds_probes_add": (_I, [_P, _S, HOOK_FN, _P]),
    "ds_intervene_lambda": (_I, [_P, _P, _I, ctypes.c_float]),
    "ds_intervene_ablate": (_I, [_P, _P, _I, _I]),
    "ds_lens_begin": (_P, [_P, _P, _I]),
    "ds_lens_finish": (_I, [_P]),
    "ds_lens_free": (None, [_P]),
    "ds_lens_logits": (ctypes.POINTER(ctypes.c_double), [_P]),
    "ds_lens_dla_flat": (_I, [_P, _I, _I, ctypes.POINTER(ctypes.c_double)]),
    "ds_tokenizer_load": (_P, [_S]),
    "ds_tokenizer_free": (None, [_P]),
    "ds_tokenizer_encode": (_I, [_P, _S, ctypes.c_size_t, _I, ctypes.POINTER(ctypes.POINTER(_I)),
                                 ctypes.POINTER(_I)]),
    "ds_tokenizer_decode": (_P, [_P, ctypes.POINTER(_I), _I, _I, ctypes.POINTER(ctypes.c_size_t)]),
    "ds_tokenizer_piece": (_P, [_P, _I]),
    "ds_tokenizer_vocab_size": (_I, [_P]),
    "ds_tokenizer_token_id": (_I, [_P, _S]),
}


def _candidates():
    env = os.environ.get("DIFFSCOPE_LIB")
    if env:
        return [env]
    return [os.path.join(_HERE, "..", "..", "build", "libdiffscope.so"), "libdiffscope.so"]


def _check_layout(lib):
    """Our copies of the C structs must match the library's, field by field."""
    for cls, cname in ((ProbeEvent, "ds_probe_event"), (GenOpts, "ds_gen_opts")):
        checks = [("sizeof", ctypes.sizeof(cls))] + [(f, getattr(cls, f).offset) for f, _ in cls._fields_]
        for field, ours in checks:
            theirs = lib.ds_struct_offset(cname.encode(), field.encode())
            if theirs != ours:
                raise Error("%s: %s.%s is at %d in the library, %d in python/diffscope/_lib.py: "
                            "the package and the library are from different versions"
                            % (lib._name, cname, field, theirs, ours))


class Owned:
    """An object holding a library handle: close() frees it; also at the end of a `with` block
    and when the object is collected."""

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit the library or the module may be gone already
            pass


def lib():
    """The loaded library (loaded and checked on the first call)."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        for name, (res, args) in _SIGNATURES.items():
            try:
                fn = getattr(handle, name)
            except AttributeError:
                raise Error("%s lacks %s: the package and the library are from different versions (run `make`)"
                            % (path, name)) from None
            fn.restype, fn.argtypes = res, args
        _check_layout(handle)
        _lib = handle
        return _lib
    raise Error("cannot load libdiffscope.so (build it with `make`, or set DIFFSCOPE_LIB to its path); tried: "
                + "; ".join(tried))


def fail(prefix=None):
    """An Error carrying the library's message of the last failure on this thread."""
    msg = lib().ds_errmsg().decode("utf-8", "replace")
    return Error((prefix + ": " if prefix else "") + (msg or "the library reported a failure"))


def take_string(ptr, size=-1):
    """A malloc'd C string returned by the library (SIZE bytes, NULs included, when given), as
    str; the memory is freed."""
    try:
        return ctypes.string_at(ptr, size).decode("utf-8", "replace")
    finally:
        lib().ds_free(ptr)
