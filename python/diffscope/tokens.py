"""Checking token ids given from Python before they reach C."""
import numbers

import numpy as np


def as_ids(ids, allow_empty=False):
    """IDS (a sequence or 1-D array of integers) as a contiguous int32 array; TypeError or
    ValueError with a clear message otherwise (the library checks the vocabulary range)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("token ids must be integers, not text (tokenize it first)")
    if isinstance(ids, numbers.Integral):
        ids = [ids]
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError("token ids must be one sequence (1-D), got shape %s" % (arr.shape,))
    if arr.size == 0:
        if allow_empty:
            return np.zeros(0, np.int32)
        raise ValueError("no token ids to run")
    if arr.dtype.kind not in "iub":
        raise TypeError("token ids must be integers, got %s" % arr.dtype)
    if arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max:
        raise ValueError("token id %d does not fit a 32-bit integer" % (arr.max() if arr.max() > 0 else arr.min()))
    return np.ascontiguousarray(arr, dtype=np.int32)
