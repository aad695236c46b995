"""numba Elman RNN: forward and full BPTT, float32 (fastmath) and float64 (exact).

    h_t = tanh(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)

Same contract as `numpy_cells.rnn_forward/rnn_backward`, plus `loss_and_grads`, the
whole training step fused with the readout and loss of `kernels/head.py`. x is
(B, T, I) floats or (B, T) integer token ids (one-hot rows of size I: a row gather
forward and a scatter-add backward, never a matmul). Only W_hh h stays in the time loop
(from H = 128: `packed.mm_packed`, register tiles over W_hh packed once per call; below
it `rec_mm`: vector register tiles, or dot products for one or two rows); the input
projection and every weight gradient are single BLAS calls per batch chunk. Large
batches run one chunk of rows per thread (one fork/join per call, per-chunk gradient
buffers); small ones run the serial kernel.
Each variant compiles on first use only and is cached.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from rnnviewer.engine.kernels import head
from rnnviewer.engine.kernels._common import (JIT_DRIVER, JIT_F32, JIT_F64, JIT_PAR, NO_IDS, NO_X,
                                              act_tanh, carve, chunk_count, ids_in_range,
                                              input_grads, project_input, rec_mm, transpose)
from rnnviewer.engine.kernels.blas import gemm
from rnnviewer.engine.kernels.packed import mm_packed, pack
from rnnviewer.errors import ConfigError

# Batch rows per chunk below which the serial kernel runs (as the gated cells'
# MIN_CHUNK_ROWS). Two chunks of 4 rows against one of 8, forward + backward, 2 cores:
# H = 32 0.16 -> 0.16 ms, H = 128 0.98 -> 0.77 ms, H = 256 3.97 -> 2.72 ms; a whole
# training step at H = 32, B = 8: 0.50 -> 0.49 ms. (The window's probe batch is 8.)
PARALLEL_MIN_ROWS = 4
# Packed-panel recurrent products (`mm_packed`) from this H and this many rows per chunk
# on; below, `rec_mm`. Per-step product, float32, one core, GFLOP/s rec_mm -> packed:
# H = 32, 16 rows 69 -> 59; H = 128, 16 rows 62 -> 86; H = 512, 8 rows 59 -> 86.
PACKED_MIN_H = 128
PACKED_MIN_ROWS = 2


# ---------------------------------------------------------------- row-range bodies
@njit(inline="always")
def _fwd_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
    """h[b0:b1] (B, T, H): input projection, then the time loop: `mm_packed` over
    P_hh (`rec_weights`) when it is not empty, else `rec_mm` with W_hh_T = W_hh.T."""
    B, T, H = h.shape
    m = b1 - b0
    project_input(x, ids, W_xh, W_xh_T, h, b0, b1)
    hf, h0f = h.reshape(h.size), h0.reshape(h0.size)
    for t in range(T):  # h[:, t] += h[:, t-1] @ W_hh.T (h0 at t = 0), then tanh
        if t == 0:
            src, off, ld = h0f, b0 * H, H
        else:
            src, off, ld = hf, (b0 * T + t - 1) * H, T * H
        if P_hh.size:  # packed W_hh.T panels (`rec_weights`)
            mm_packed(m, src, off, ld, P_hh, H, H, hf, (b0 * T + t) * H, T * H, 1.0)
        else:
            rec_mm(m, src, off, ld, W_hh, W_hh_T, hf, (b0 * T + t) * H, T * H, 1.0)
        for b in range(b0, b1):
            hb = h[b, t]
            for j in range(H):
                hb[j] = act_tanh(hb[j] + bias[j])


@njit(inline="always")
def _bwd_rows(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh,
              gb, b0, b1):
    """BPTT over rows b0:b1 from dh_out (dL/dh_t from outside the recurrence): writes
    dh (total dL/dh_t), da (scratch), dx, dh0 rows and this chunk's weight gradients
    gW_xh (H, I) ((I, H) for token ids), gW_hh (H, H), gb (H,). Empty gradient buffers
    (size 0: a run-time flag, no other compiled variant) skip the parameter gradients."""
    B, T, H = h.shape
    m = b1 - b0
    dhf, dh0f, daf = dh.reshape(dh.size), dh0.reshape(dh0.size), da.reshape(da.size)
    one = h.dtype.type(1.0)  # typed: a float literal would compute float32 in float64
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            hb, gb_, dhb, dab = h[b, t], dh_out[b, t], dh[b, t], da[b, t]
            if t == T - 1:
                for j in range(H):
                    g = gb_[j]
                    dhb[j] = g
                    dab[j] = g * (one - hb[j] * hb[j])
            else:  # dh[:, t] already holds da_{t+1} @ W_hh
                for j in range(H):
                    g = gb_[j] + dhb[j]
                    dhb[j] = g
                    dab[j] = g * (one - hb[j] * hb[j])
        if t > 0:  # dh[:, t-1] = da[:, t] @ W_hh (dh0 at t = 0)
            dst, off, ld = dhf, (b0 * T + t - 1) * H, T * H
        else:
            dst, off, ld = dh0f, b0 * H, H
        if P_hh.size:  # W_hh's packed panels (the second half)
            mm_packed(m, daf, (b0 * T + t) * H, T * H, P_hh[H * H:], H, H, dst, off, ld, 0.0)
        else:
            rec_mm(m, daf, (b0 * T + t) * H, T * H, W_hh_T, W_hh, dst, off, ld, 0.0)
    if gb.size:
        gb[:] = 0.0  # bias: sum of da over the chunk's rows
        for b in range(b0, b1):
            for t in range(T):
                dab = da[b, t]
                for j in range(H):
                    gb[j] += dab[j]
        # W_hh: pairs (da[b, t], h[b, t-1]) are flat rows (r, r-1) of the chunk, except at
        # t = 0 where h0[b] replaces h[b-1, T-1]: one big product plus two small fixes.
        gemm(True, False, H, H, m * T - 1, 1.0, da, (b0 * T + 1) * H, H, h, b0 * T * H, H,
             0.0, gW_hh, 0, H)
        gemm(True, False, H, H, m - 1, -1.0, da, (b0 + 1) * T * H, T * H, h,
             (b0 * T + T - 1) * H, T * H, 1.0, gW_hh, 0, H)
        gemm(True, False, H, H, m, 1.0, da, b0 * T * H, T * H, h0, b0 * H, H, 1.0, gW_hh, 0, H)
    input_grads(x, ids, W_xh, da, gW_xh, dx, b0, b1)  # (gW_xh empty: dx only)


# ---------------------------------------------------------------- compiled kernels
# The arithmetic compiles once per dtype with that dtype's flags; the drivers below do
# no arithmetic, so one generic function serves both dtypes (specialised by type).
@njit(**JIT_F32)
def _fwd_f32(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
    _fwd_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1)


@njit(**JIT_F64)
def _fwd_f64(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
    _fwd_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1)


@njit(**JIT_F32)
def _bwd_f32(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb,
             b0, b1):
    _bwd_rows(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb,
              b0, b1)


@njit(**JIT_F64)
def _bwd_f64(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb,
             b0, b1):
    _bwd_rows(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb,
              b0, b1)


def _fwd(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
    """_fwd_f32 or _fwd_f64 by dtype (resolved at typing)."""


@overload(_fwd, inline="always")
def _fwd_ol(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
    fn = _fwd_f32 if h.dtype == types.float32 else _fwd_f64

    def impl(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1):
        fn(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1)
    return impl


def _bwd(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0,
         b1):
    """_bwd_f32 or _bwd_f64 by dtype (resolved at typing)."""


@overload(_bwd, inline="always")
def _bwd_ol(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0,
            b1):
    fn = _bwd_f32 if h.dtype == types.float32 else _bwd_f64

    def impl(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0,
             b1):
        fn(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0,
           b1)
    return impl


@njit(inline="always")
def _rows(c, n, B):
    """Rows of chunk c of n (int64, so every caller shares one specialisation)."""
    c = np.int64(c)
    return c, c * B // n, (c + 1) * B // n


@njit(**JIT_PAR)
def _fwd_par(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, n):
    for i in prange(n):
        _, b0, b1 = _rows(i, n, h.shape[0])
        _fwd(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1)


@njit(**JIT_PAR)
def _bwd_par(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb):
    n = gb.shape[0]
    for i in prange(n):
        c, b0, b1 = _rows(i, n, h.shape[0])
        _bwd(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh[c], gW_hh[c],
             gb[c], b0, b1)


# ---------------------------------------------------------------- fused training pass
# Each batch chunk runs forward, readout + loss, readout backward and BPTT back to back:
# one fork/join per training step, and a chunk's activations stay in its core's cache.
@njit(**JIT_DRIVER)
def _train_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, W_hy, b_y, tgt, ids_tgt, w,
                scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb,
                c, b0, b1):
    """Rows b0:b1 of one training step: mse against tgt (B, T, O), or xent against the
    class ids ids_tgt (B, T) when tgt is empty."""
    _fwd(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, h, b0, b1)
    head.loss_rows(h, W_hy, b_y, tgt, ids_tgt, w, scale, y, dy, part, c, b0, b1)
    head.back_rows(h, dy, W_hy, h[:0], dh_out, gW_hy[c], gb_y[c], b0, b1)  # no extra dL/dh
    _bwd(x, ids, W_xh, W_hh, W_hh_T, P_hh, h0, h, dh_out, dh, da, dx, dh0, gW_xh[c], gW_hh[c],
         gb[c], b0, b1)


@njit(**JIT_DRIVER)
def _train(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, W_hy, b_y, tgt, ids_tgt, w, scale,
           h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb):
    c, b0, b1 = _rows(0, 1, h.shape[0])
    _train_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, W_hy, b_y, tgt, ids_tgt, w,
                scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb,
                c, b0, b1)


@njit(**JIT_PAR)
def _train_par(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, W_hy, b_y, tgt, ids_tgt, w,
               scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb):
    n = part.shape[0]
    for i in prange(n):
        c, b0, b1 = _rows(i, n, h.shape[0])
        _train_rows(x, ids, W_xh, W_xh_T, W_hh, W_hh_T, P_hh, bias, h0, W_hy, b_y, tgt, ids_tgt,
                    w, scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh,
                    gW_hh, gb, c, b0, b1)


# ---------------------------------------------------------------- public wrappers
_NO_W = {4: np.zeros((0, 0), np.float32), 8: np.zeros((0, 0), np.float64)}
_NO_P = {4: np.zeros(0, np.float32), 8: np.zeros(0, np.float64)}


def rec_weights(W_hh, rows):
    """(W_hh_T, P_hh) for the recurrent products of chunks of at least `rows` rows:
    from H = PACKED_MIN_H and PACKED_MIN_ROWS rows on, an empty W_hh_T and P_hh (2 H H,)
    = W_hh.T packed (the forward's B) then W_hh packed (BPTT's; `kernels/packed.py`);
    else W_hh.T for `rec_mm` and an empty P_hh."""
    H = W_hh.shape[0]
    if H >= PACKED_MIN_H and rows >= PACKED_MIN_ROWS:
        P_hh = np.empty(2 * H * H, W_hh.dtype)
        pack(W_hh, True, P_hh[:H * H])  # (from Python: the same call inside an njit
        pack(W_hh, False, P_hh[H * H:])  # function ran 3x slower, measured)
        return _NO_W[W_hh.itemsize], P_hh
    return transpose(W_hh), _NO_P[W_hh.itemsize]


def _weights(p, dtype):
    c = np.ascontiguousarray
    return (c(p["W_xh"], dtype), c(p["W_hh"], dtype), c(p["b_xh"], dtype), c(p["b_hh"], dtype))


def _input(x, dtype, I):
    """(x (B, T, I) contiguous floats, NO_IDS) or (NO_X, token ids (B, T) int64)."""
    x = np.asarray(x)
    if x.ndim == 2:
        if x.dtype.kind not in "iu":
            raise ConfigError(f"(B, T) inputs must be integer token ids, got {x.dtype}")
        ids = np.ascontiguousarray(x, np.int64)
        if not ids_in_range(ids, I):
            raise ConfigError(f"token ids must lie in [0, {I})")
        return NO_X[np.dtype(dtype).itemsize], ids
    if x.ndim != 3 or x.shape[2] != I:
        raise ConfigError(f"x must have shape (B, T, {I}) or be (B, T) token ids, got {x.shape}")
    return np.ascontiguousarray(x, dtype), NO_IDS


def _sum_chunks(*parts):
    """Add every chunk's gradient into chunk 0."""
    for g in parts:
        for c in range(1, g.shape[0]):
            g[0] += g[c]


def forward(p, x, h0, c0=None):
    """x (B, T, I) or (B, T) ids, h0 (B, H) -> dict(h (B, T, H), c None, gates {}, cache)."""
    W_xh, W_hh, b_xh, b_hh = _weights(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    H, I = W_xh.shape
    x, ids = _input(x, dtype, I)
    B, T = (ids if ids.size else x).shape[:2]
    h0 = np.ascontiguousarray(h0, dtype)
    h = np.empty((B, T, H), dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    W_xh_T = transpose(W_xh) if ids.size else W_xh  # rows to gather for token ids
    args = (x, ids, W_xh, W_xh_T, W_hh, *rec_weights(W_hh, B // n), b_xh + b_hh, h0, h)
    if n > 1:
        _fwd_par(*args, n)
    else:
        (_fwd_f32 if dtype == np.float32 else _fwd_f64)(*args, 0, B)
    return {"h": h, "c": None, "gates": {}, "cache": {"h0": h0}}


forward.accepts_token_ids = True


def backward(p, x, out, dh_out, params=True):
    """Full BPTT from dh_out (B, T, H) = dL/dh_t from outside the recurrence.

    Returns W_xh, W_hh, b_xh, b_hh, "x" (B, T, I), "h" (B, T, H) total dL/dh_t, "h0" (B, H);
    params=False skips the parameter gradients (the same compiled kernel, given empty
    gradient buffers) and returns only "x", "h" and "h0", with the same values.
    """
    W_xh, W_hh, _, _ = _weights(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    H, I = W_xh.shape
    h, h0 = out["h"], out["cache"]["h0"]
    x, ids = _input(x, dtype, I)
    B, T = h.shape[:2]
    dh_out = np.ascontiguousarray(dh_out, dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    if params:
        shapes = ((n, I, H) if ids.size else (n, H, I), (n, H, H), (n, H))
    else:  # empty buffers: the kernel skips every parameter gradient
        shapes = ((n, 0, 0), (n, 0, 0), (n, 0))
    dh, da, dx, dh0, gW_xh, gW_hh, gb = carve(dtype, ((B, T, H), (B, T, H), (B, T, I), (B, H))
                                              + shapes)
    args = (x, ids, W_xh, W_hh, *rec_weights(W_hh, B // n), h0, h, dh_out, dh, da, dx, dh0)
    if n > 1:
        _bwd_par(*args, gW_xh, gW_hh, gb)
        if params:
            _sum_chunks(gW_xh, gW_hh, gb)
    else:
        (_bwd_f32 if dtype == np.float32 else _bwd_f64)(*args, gW_xh[0], gW_hh[0], gb[0], 0, B)
    if not params:
        return {"x": dx, "h": dh, "h0": dh0}
    dW_xh = transpose(gW_xh[0]) if ids.size else gW_xh[0]
    return {"W_xh": dW_xh, "W_hh": gW_hh[0], "b_xh": gb[0], "b_hh": gb[0].copy(),
            "x": dx, "h": dh, "h0": dh0}


def loss_and_grads(p, x, h0, c0, loss, target, weights, count):
    """Forward, readout, loss and full BPTT in one pass per batch chunk (c0 unused).

    p holds every parameter (with the readout); x (B, T, I) or (B, T) ids; target and
    weights (B, T) as checked by `engine.losses` (count = the weights' sum). Returns
    (loss, grads) exactly as `Model.loss_and_grads`: the readout's and the cell's
    parameter gradients, "x", "h" (total dL/dh_t) and "h0".
    """
    W_xh, W_hh, b_xh, b_hh = _weights(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    W_hy, b_y = np.ascontiguousarray(p["W_hy"], dtype), np.ascontiguousarray(p["b_y"], dtype)
    H, I = W_xh.shape
    O = W_hy.shape[0]
    x, ids = _input(x, dtype, I)
    B, T = (ids if ids.size else x).shape[:2]
    h0 = np.ascontiguousarray(h0, dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    mse = loss == "mse"
    denom = max(float(count), 1.0) * (O if mse else 1)
    scale = (2.0 if mse else 1.0) / denom
    tgt, ids_tgt = (target, NO_IDS) if mse else (NO_X[dtype.itemsize], target)
    # one allocation for every buffer of the step (the grads returned are views into it)
    h, dh, da, dh_out, y, dy, dx, dh0, gW_hy, gb_y, gW_xh, gW_hh, gb = carve(dtype, (
        (B, T, H), (B, T, H), (B, T, H), (B, T, H), (B, T, O), (B, T, O), (B, T, I), (B, H),
        (n, O, H), (n, O), (n, I, H) if ids.size else (n, H, I), (n, H, H), (n, H)))
    part = np.zeros(n)
    args = (x, ids, W_xh, transpose(W_xh) if ids.size else W_xh, W_hh,
            *rec_weights(W_hh, B // n), b_xh + b_hh, h0, W_hy, b_y, tgt, ids_tgt, weights, scale,
            h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb)
    if n > 1:
        _train_par(*args)
        _sum_chunks(gW_hy, gb_y, gW_xh, gW_hh, gb)
    else:
        _train(*args)
    return float(part.sum() / denom), {
        "W_hy": gW_hy[0], "b_y": gb_y[0],
        "W_xh": transpose(gW_xh[0]) if ids.size else gW_xh[0], "W_hh": gW_hh[0],
        "b_xh": gb[0], "b_hh": gb[0].copy(), "x": dx, "h": dh, "h0": dh0}
