"""Python-side helpers of the GRU and LSTM kernel wrappers (`gru.py`, `lstm.py`).

- `packed_weight`: the recurrent weight packed in the column panels of `packed.py` for
  the per-step products of batch chunks of more than SMALL_M rows (`packed.mm_packed`);
  packed here with numpy slices (0.05-0.1 ms for H = 128; nothing to compile).
- `row_scale`: a per-sequence scale of token-id inputs (row b's inputs are scale[b]
  times its one-hot rows: the points on an integrated-gradients path from 0).
- `dx_weights`: W_xh.T for a backward pass that takes dL/dx in its time loop: only at
  each token's own one-hot position (what integrated gradients of one-hot inputs
  need), or the single column of 1-feature inputs.
"""

import numpy as np

from rnnviewer.engine.kernels._gated_common import SMALL_M
from rnnviewer.errors import ConfigError


def packed_weight(w, trans, B, nch):
    """B = w.T (trans) or w, (K, N), packed for `mm_packed` (flat (K * N,)) when a chunk
    of the B rows split in nch chunks has more than SMALL_M rows; else an empty array
    (those chunks run dot products). The layout of `packed.pack`: panels 3L wide, then
    2L, L and the rest (L = 32 bytes of lanes), element (k, l) of the panel starting at
    column j at K * j + k * width + l."""
    if -(-B // nch) <= SMALL_M:
        return np.empty(0, w.dtype)
    b = w.T if trans else w
    K, N = b.shape
    L = 32 // w.itemsize
    out = np.empty(K * N, w.dtype)
    nf = N // (3 * L) * (3 * L)  # full 3L panels in one copy
    out[:K * nf].reshape(nf // (3 * L), K, 3 * L)[:] = \
        b[:, :nf].reshape(K, nf // (3 * L), 3 * L).transpose(1, 0, 2)
    j = nf
    while j < N:
        wd = 2 * L if N - j >= 2 * L else L if N - j >= L else N - j
        out[K * j:K * (j + wd)].reshape(K, wd)[:] = b[:, j:j + wd]
        j += wd
    return out


def row_scale(scale, x, B, dtype):
    """The kernels' per-row scale: (B,) in dtype, or an empty array for scale=None."""
    if scale is None:
        return np.empty(0, dtype)
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ConfigError("scale= applies to (B, T) integer token ids only")
    sc = np.ascontiguousarray(scale, dtype=dtype)
    if sc.shape != (B,):
        raise ConfigError(f"scale must have shape ({B},) (one per sequence), got {sc.shape}")
    return sc


def dx_weights(W_xh, hot_only, oh):
    """W_xh.T (I, G) when the backward pass takes dL/dx in its time loop, one dot
    product per row: hot_only (the gradient at each token's own position only; token
    ids or one-hot rows) or I = 1 (the whole gradient); else an empty (0, 0) array."""
    if hot_only and not oh.size:
        raise ConfigError("hot_only needs token ids or one-hot inputs")
    if not hot_only and W_xh.shape[1] != 1:
        return np.empty((0, 0), W_xh.dtype)
    return np.ascontiguousarray(W_xh.T)
