"""rnnviewer: train small recurrent networks live and look inside them."""

import os

# Two-thread OpenBLAS stalls 10-100x on small matrices on these 2-core machines
# (NOTES.md); the engine parallelises over the batch itself. Must precede numpy's import.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
