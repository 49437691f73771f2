"""diffscope from Python: run Llama and DiffLlama checkpoints through libdiffscope (ctypes),
read activations at TransformerLens-style probe points, patch them with Python hooks, and read
diffscope's HDF5 outputs (dump, compare, sweep) and needle results as labelled NumPy arrays.

    import diffscope as ds
    with ds.load("notebooks-data/models/diffllama") as m:
        logits, cache = m.run_with_cache("the k_apple v_42 ? k_apple", names=["blocks.*.attn.hook_diff"])
    d = ds.read_dump("run.h5"); d.attn("diff", layer=3, head=1).plot()

docs/python.md is the manual."""
from .errors import Error
from .labelled import Labelled
from .lens import Lens, LensRun, lens, read_lens
from .model import Cache, Model, get_threads, load, set_threads
from .patch import Patch, read_patch
from .probes import Hook, ablate_head, lambda_override
from .readers import Compare, Dump, Needle, read_compare, read_dump, read_needle, read_provenance
from .sweep import Sweep, read_sweep
from .tokenizer import Tokenizer

__all__ = ["Error", "Labelled", "Cache", "Model", "load", "set_threads", "get_threads", "Hook", "ablate_head",
           "lambda_override", "Patch", "read_patch", "Compare", "Dump", "Needle", "read_compare", "read_dump", "read_needle",
           "read_provenance", "Lens", "LensRun", "lens", "read_lens", "Sweep", "read_sweep",
           "Tokenizer"]
