"""Helpers shared by the GRU and LSTM numba kernels.

What both cells' kernels do. x is (B, T, I) floats or (B, T) integer token ids,
optionally scaled per sequence (`forward(..., scale=)`: integrated gradients' points on
the path from 0). The recurrent product of each step runs register tiles over W_hh
packed in column panels (`packed.mm_packed`) for chunks of more than SMALL_M rows, dot
products for one or two. Token ids, one-hot rows and 1-feature inputs are read row by
row in the time loop (rows of W_xh.T, no (B, T, G) projection), and their dL/dx is a dot
product per row there too (`backward(..., hot_only=True)`: only at each token's own
position); other inputs take one BLAS call each for the projection and dL/dx. Weight
gradients are one BLAS call each per batch chunk. Large batches run one chunk per numba
thread (one fork/join per pass, per-chunk gradient buffers); float32 uses a rational
tanh with fastmath, float64 is exact.

The helpers:
- `tanh` / `sigmoid`: a rational tanh (max abs error 2.6e-7) for float32, exact `np.tanh`
  for float64 (the checks run in float64).
- `gemm`: row-major BLAS on strided blocks of the kernels' (B, T, ...) arrays, in place,
  from `blas.py` (the one BLAS binding of every cell: numpy's OpenBLAS, else SciPy's).
- `matmul_rows` / `matmul_rows_t`: the recurrent product of one step (hand loops for
  one or two rows, which BLAS handles badly; vector register tiles from `_common` for
  more rows of a small W; else one BLAS call).
- `jit_variants`, `sum_chunks`: per-dtype kernel bodies, per-chunk gradient reduction.
- `prepare_input` / `onehot_rows`: token ids and one-hot rows become a row lookup.
- `chunks`: coarse batch parallelism, one chunk per numba thread.

numba's cache checks only the contents of a kernel's own file: after editing this one,
clear NUMBA_CACHE_DIR (the packaged app keys its cache by a hash of the sources).
"""

import types as pytypes

import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from rnnviewer.engine.kernels._common import (JIT_F32, JIT_F64, MM_TILE_MAX_K, mm_tiled,
                                              transpose)
from rnnviewer.engine.kernels.blas import gemm  # (gru.py and lstm.py import it from here)
from rnnviewer.errors import ConfigError

# the per-dtype flags of `_common` (float32 fastmath without nnan/ninf, float64 exact)
JIT_F32_PAR = dict(JIT_F32, parallel=True)
JIT_F64_PAR = dict(JIT_F64, parallel=True)


def jit_variants(fn):
    """(float32, float64) jitted copies of a kernel body, each with its dtype's flags and its
    own cache entry (a copy of the function under another name). The serial and parallel
    drivers call them, so numba types and lowers a body once per dtype instead of once per
    driver (LLVM still optimises it again where a driver links it)."""
    out = []
    for suffix, flags in (("_f32", JIT_F32), ("_f64", JIT_F64)):
        f = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                                 fn.__defaults__, fn.__closure__)
        f.__qualname__ = fn.__qualname__ + suffix
        f.__doc__ = fn.__doc__
        out.append(njit(**flags)(f))
    return tuple(out)


# ------------------------------------------------------------------ activations
_A = [np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                              5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                              -2.76076847742355e-16)]
_B = [np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                              1.19825839466702e-06)]
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = _A
_B0, _B2, _B4, _B6 = _B
_CLAMP = np.float32(7.90531110763549805)


@njit(inline="always")
def _tanh32(v):
    """Eigen's rational tanh for float32 (13/6), clamped; NaN propagates."""
    v = min(max(v, -_CLAMP), _CLAMP)
    v2 = v * v
    p = v2 * _A13 + _A11
    p = p * v2 + _A9
    p = p * v2 + _A7
    p = p * v2 + _A5
    p = p * v2 + _A3
    p = p * v2 + _A1
    q = v2 * _B6 + _B4
    q = q * v2 + _B2
    q = q * v2 + _B0
    return v * p / q


def tanh(v):
    """tanh for scalars inside kernels: rational for float32, exact for float64."""
    return np.tanh(v)


def sigmoid(v):
    return 0.5 * (np.tanh(0.5 * v) + 1.0)


@overload(tanh, inline="always")
def _ol_tanh(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return lambda v: _tanh32(v)
    return lambda v: np.tanh(v)


@overload(sigmoid, inline="always")
def _ol_sigmoid(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        half = np.float32(0.5)
        return lambda v: half * (_tanh32(half * v) + np.float32(1.0))
    return lambda v: 0.5 * (np.tanh(0.5 * v) + 1.0)


# ------------------------------------------------------------------ step products
SMALL_M = 2  # rows of a step product done by hand, not BLAS


@njit(inline="always")
def _axpy_rows(m, a3, b0, t, w, c):
    """c[i] = a3[b0 + i, t] @ w for i < m: each row of W read once, used by every row of c.

    Written on 1-D row views: LLVM vectorises the inner loop (flat offsets with a run-time
    stride made it 8x slower)."""
    N = w.shape[1]
    for i in range(m):
        ci = c[i]
        for j in range(N):
            ci[j] = 0.0
    for k in range(w.shape[0]):
        wk = w[k]
        for i in range(m):
            s = a3[b0 + i, t, k]
            ci = c[i]
            for j in range(N):
                ci[j] += s * wk[j]


@njit(inline="always")
def matmul_rows(m, a3, b0, t, w, c):
    """The recurrent product of one step: c (m, N) = rows a3[b0:b0+m, t] (K,) @ w (K, N).

    a3 is (B, T, K) (use a (B, 1, K) view and t=0 for a plain (B, K) matrix); w and c are
    C-contiguous. Up to SMALL_M rows (a batch chunk of one or two) skip BLAS, which packs
    W again on every call (40 us for one row of 128 x 384 against 4 us by hand); more
    rows take vector register tiles (`mm_tiled`) while K <= MM_TILE_MAX_K, else BLAS."""
    K, N = w.shape
    T = a3.shape[1]
    if m <= SMALL_M:
        _axpy_rows(m, a3, b0, t, w, c)
    elif K <= MM_TILE_MAX_K:
        mm_tiled(m, a3, (b0 * T + t) * K, T * K, w, c, 0, N, 0.0)
    else:
        gemm(False, False, m, N, K, 1.0, a3, (b0 * T + t) * K, T * K, w, 0, N, 0.0, c, 0, N)


@njit(inline="always")
def _dot_rows(m, a3, b0, t, w, c):
    """c[i, g] = a3[b0 + i, t] . w[g] for i < m (one or two rows)."""
    G, K = w.shape
    zero = c.dtype.type(0.0)
    for i in range(m):
        ai = a3[b0 + i, t]
        ci = c[i]
        for g in range(G):
            wg = w[g]
            s = zero  # (starting from ai[0] * wg[0] stopped the loop vectorising)
            for k in range(K):
                s += ai[k] * wg[k]
            ci[g] = s


@njit(inline="always")
def matmul_rows_t(m, a3, b0, t, w, w_t, c):
    """c (m, G) = rows a3[b0:b0+m, t] (K,) @ w.T for w (G, K), w_t its (K, G) copy: the
    forward recurrent product. Up to SMALL_M rows: dot products straight from w
    (vectorised by fastmath's reassociation in float32); more: register tiles over w_t
    while K <= MM_TILE_MAX_K, else one BLAS call."""
    G, K = w.shape
    T = a3.shape[1]
    if m <= SMALL_M:
        _dot_rows(m, a3, b0, t, w, c)
    elif K <= MM_TILE_MAX_K:
        mm_tiled(m, a3, (b0 * T + t) * K, T * K, w_t, c, 0, G, 0.0)
    else:
        gemm(False, True, m, G, K, 1.0, a3, (b0 * T + t) * K, T * K, w, 0, K, 0.0, c, 0, G)


# ------------------------------------------------------------------ small kernels
@njit(**JIT_F64)
def onehot_rows(x2):
    """Column of the single 1 in each row of x2 (R, I), or an empty array if x2 is not one-hot."""
    R, I = x2.shape
    idx = np.empty(R, np.int32)
    for r in range(R):
        hot = -1
        for i in range(I):
            v = x2[r, i]
            if v != 0.0:
                if v != 1.0 or hot >= 0:
                    return np.empty(0, np.int32)
                hot = i
        if hot < 0:
            return np.empty(0, np.int32)
        idx[r] = hot
    return idx


def prepare_input(x, dtype, I, min_onehot=4):
    """(x3, ids) for the kernels: x (B,T,I) floats -> (x C-contiguous, one-hot row ids or an
    empty array); x (B,T) integer token ids -> (a (1,1,1) placeholder, the ids as int32).
    One-hot inputs then take a row lookup forward and a scatter-add backward."""
    x = np.asarray(x)
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.integer):
            raise ConfigError(f"(B, T) inputs must be integer token ids, got {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= I):
            raise ConfigError(f"token ids must lie in [0, {I})")
        return np.zeros((1, 1, 1), dtype), np.ascontiguousarray(x, np.int32).reshape(-1)
    x = np.ascontiguousarray(x, dtype)
    if I < min_onehot:
        return x, np.empty(0, np.int32)
    return x, onehot_rows(x.reshape(-1, I))


@njit
def sum_chunks(a):
    """a[0] += a[1] + a[2] + ... for per-chunk buffers a (n, ...): a plain loop (array
    expressions in a parallel driver become extra parallel loops that compile slowly)."""
    n = a.shape[0]
    if n < 2 or a.size == 0:
        return
    flat = a.reshape(n, a.size // n)
    for k in range(1, n):
        for i in range(flat.shape[1]):
            flat[0, i] += flat[k, i]


def chunks(B, min_rows):
    """Number of batch chunks: one per numba thread, each at least `min_rows` rows."""
    n = min(numba.get_num_threads(), B // max(1, min_rows))
    return max(1, n)
