"""A model folder's tokenizer.json, encoded and decoded by libdiffscope exactly as Hugging Face
`tokenizers` does (docs/tokenizer.md)."""
import ctypes

from . import _lib
from .errors import Error
from .tokens import as_ids


class Tokenizer(_lib.Owned):
    """Tokenizer(PATH): PATH is a model folder (its tokenizer.json) or a tokenizer.json file."""

    def __init__(self, path):
        self.path = str(path)
        self._ptr = _lib.lib().ds_tokenizer_load(self.path.encode())
        if not self._ptr:
            raise _lib.fail()

    def _handle(self):
        if not self._ptr:
            raise Error("%s: the tokenizer is closed" % self.path)
        return self._ptr

    def close(self):
        if self._ptr:
            _lib.lib().ds_tokenizer_free(self._ptr)
            self._ptr = None


    def encode(self, text, special=True):
        """Token ids of TEXT (str, or bytes taken as they are); SPECIAL adds the post-processor's
        tokens (the BOS of Llama), as `diffscope tokenize` does without --no-special."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids, n = ctypes.POINTER(ctypes.c_int)(), ctypes.c_int()
        if _lib.lib().ds_tokenizer_encode(self._handle(), data, len(data), int(bool(special)),
                                          ctypes.byref(ids), ctypes.byref(n)):
            raise _lib.fail(self.path)
        try:
            return [ids[i] for i in range(n.value)]
        finally:
            _lib.lib().ds_free(ids)

    def decode(self, ids, skip_special=False):
        """The text of IDS (HF `decode`); ids outside the vocabulary are skipped, as HF does."""
        arr = as_ids(ids, allow_empty=True)
        size = ctypes.c_size_t(0)
        ptr = _lib.lib().ds_tokenizer_decode(self._handle(), arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                                             len(arr), int(bool(skip_special)), ctypes.byref(size))
        if not ptr:
            raise _lib.fail(self.path)
        return _lib.take_string(ptr, size.value)  # NULs in the text included, as HF decodes them

    def piece(self, token_id):
        """A printable label of one id (byte-level characters as their bytes, '▁' as a space)."""
        ptr = _lib.lib().ds_tokenizer_piece(self._handle(), int(token_id))
        if not ptr:
            raise Error("%s: token id %d is not in the vocabulary" % (self.path, token_id))
        return _lib.take_string(ptr)

    def pieces(self, ids):
        return [self.piece(i) for i in as_ids(ids, allow_empty=True)]

    def token_id(self, token):
        """The id of the token spelled TOKEN (an added token or a vocabulary entry), else None."""
        i = _lib.lib().ds_tokenizer_token_id(self._handle(), token.encode("utf-8"))
        return None if i < 0 else i

    @property
    def vocab_size(self):
        return _lib.lib().ds_tokenizer_vocab_size(self._handle())
