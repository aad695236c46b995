"""Cell kernels. Each backend gives, per cell, (forward, backward, step) with the
signatures of `numpy_cells`: forward(p, x, h0, c0) -> dict(h, c, gates, cache),
backward(p, x, out, dh_out, params=True) -> grads dict (params=False: only "x", "h",
"h0" and "c0", no parameter gradients), step(p, state, x) -> state.
"""

import importlib

from rnnviewer.engine.kernels import numpy_cells

BACKENDS = ("numba", "numpy")


def get_cell(cell, backend="numba"):
    """(forward, backward, step) for `cell`; the numba backend falls back to numpy
    for a cell that has no numba kernel module (`rnnviewer.engine.kernels.<cell>`)."""
    if backend == "numba":
        try:
            mod = importlib.import_module(f"rnnviewer.engine.kernels.{cell}")
        except ImportError:
            mod = None
        if mod is not None and hasattr(mod, "forward"):
            return mod.forward, mod.backward, numpy_cells.CELLS[cell][2]
    return numpy_cells.CELLS[cell]
