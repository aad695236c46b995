"""numba Elman RNN: forward and full BPTT, float32 (fastmath) and float64 (exact).

    h_t = tanh(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)

Same contract as `numpy_cells.rnn_forward/rnn_backward`. x is (B, T, I) floats or
(B, T) integer token ids (one-hot rows of size I: a row gather forward and a
scatter-add backward, never a matmul). Only W_hh h stays in the time loop; the input
projection and every weight gradient are single large BLAS calls per batch chunk.
Large batches run as one chunk per thread (one fork/join per call, per-chunk gradient
buffers); small ones run the serial kernel. Each variant compiles on first use only.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from rnnviewer.engine.kernels import head
from rnnviewer.engine.kernels._common import (JIT_F32, JIT_F64, JIT_PAR, act_tanh, chunk_count,
                                              gemm, ids_in_range, input_grads, mm_nt,
                                              project_input, transpose, carve)
from rnnviewer.errors import ConfigError

PARALLEL_MIN_ROWS = 8  # batch rows per chunk below which splitting does not pay


# ---------------------------------------------------------------- row-range bodies
@njit(inline="always")
def _fwd_rows(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
    """h[b0:b1] (B, T, H) from x[b0:b1]: input projection, then the time loop."""
    B, T, H = h.shape
    m = b1 - b0
    project_input(x, W_xh, W_xh_T, h, b0, b1)
    hf, h0f = h.reshape(h.size), h0.reshape(h0.size)
    for t in range(T):  # h[:, t] += h[:, t-1] @ W_hh.T (h0 at t = 0)
        if t == 0:
            src, off, ld = h0f, b0 * H, H
        else:
            src, off, ld = hf, (b0 * T + t - 1) * H, T * H
        mm_nt(m, src, off, ld, W_hh, hf, (b0 * T + t) * H, T * H, 1.0)
        for b in range(b0, b1):
            hb = h[b, t]
            for j in range(H):
                hb[j] = act_tanh(hb[j] + bias[j])


@njit(inline="always")
def _bwd_rows(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
    """BPTT over rows b0:b1; writes dh (total dL/dh_t), dx, dh0 rows and this chunk's
    weight gradients gW_xh (H, I) (or (I, H) for token ids), gW_hh (H, H), gb (H,)."""
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
        mm_nt(m, daf, (b0 * T + t) * H, T * H, W_hh_T, dst, off, ld, 0.0)
    # bias: sum of da over the chunk's rows
    gb[:] = 0.0
    for b in range(b0, b1):
        for t in range(T):
            dab = da[b, t]
            for j in range(H):
                gb[j] += dab[j]
    # W_hh: pairs (da[b, t], h[b, t-1]) are flat rows (r, r-1) of the chunk, except at
    # t = 0 where h0[b] replaces h[b-1, T-1]: one big product plus two small fixes.
    gemm(True, False, H, H, m * T - 1, 1.0, da, (b0 * T + 1) * H, H, h, b0 * T * H, H,
         0.0, gW_hh, 0, H)
    gemm(True, False, H, H, m - 1, -1.0, da, (b0 + 1) * T * H, T * H, h, (b0 * T + T - 1) * H,
         T * H, 1.0, gW_hh, 0, H)
    gemm(True, False, H, H, m, 1.0, da, b0 * T * H, T * H, h0, b0 * H, H, 1.0, gW_hh, 0, H)
    input_grads(x, W_xh, da, gW_xh, dx, b0, b1)


# ---------------------------------------------------------------- jitted variants
# Per dtype: a row-range kernel (the serial kernel, rows 0:B) with the dtype's flags,
# and a parallel driver that runs one chunk of rows per thread through it. Each
# compiles on first use and has its own cache entry.
@njit(**JIT_F32)
def _fwd_f32(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
    _fwd_rows(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1)


@njit(**JIT_F64)
def _fwd_f64(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
    _fwd_rows(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1)


@njit(**JIT_F32)
def _bwd_f32(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
    _bwd_rows(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1)


@njit(**JIT_F64)
def _bwd_f64(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
    _bwd_rows(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1)


@njit(**JIT_PAR)
def _fwd_par_f32(x, W_xh, W_xh_T, W_hh, bias, h0, h, n):
    for c in prange(n):
        _fwd_f32(x, W_xh, W_xh_T, W_hh, bias, h0, h, c * h.shape[0] // n, (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _fwd_par_f64(x, W_xh, W_xh_T, W_hh, bias, h0, h, n):
    for c in prange(n):
        _fwd_f64(x, W_xh, W_xh_T, W_hh, bias, h0, h, c * h.shape[0] // n, (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _bwd_par_f32(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb):
    n = gb.shape[0]
    for c in prange(n):
        _bwd_f32(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh[c], gW_hh[c], gb[c],
                 c * h.shape[0] // n, (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _bwd_par_f64(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb):
    n = gb.shape[0]
    for c in prange(n):
        _bwd_f64(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh[c], gW_hh[c], gb[c],
                 c * h.shape[0] // n, (c + 1) * h.shape[0] // n)


# ---------------------------------------------------------------- fused training pass
# Each batch chunk runs forward, readout + loss, readout backward and BPTT back to back:
# one fork/join per training step, and a chunk's activations stay in its core's cache.
def _cell_fwd(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
    """_fwd_f32 or _fwd_f64, chosen by dtype at typing."""


@overload(_cell_fwd, inline="always")
def _cell_fwd_ol(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
    fn = _fwd_f32 if h.dtype == types.float32 else _fwd_f64

    def impl(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1):
        fn(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1)
    return impl


def _cell_bwd(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
    """_bwd_f32 or _bwd_f64, chosen by dtype at typing."""


@overload(_cell_bwd, inline="always")
def _cell_bwd_ol(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
    fn = _bwd_f32 if h.dtype == types.float32 else _bwd_f64

    def impl(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1):
        fn(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb, b0, b1)
    return impl


@njit(**JIT_F64)  # no arithmetic of its own: every dtype and input kind specialises it
def _train_rows(x, W_xh, W_xh_T, W_hh, W_hh_T, bias, h0, W_hy, b_y, target, w,
                scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb,
                no_dh, c, b0, b1):
    """Rows b0:b1 through forward, readout + loss (mse for a (B, T, O) float target,
    xent for (B, T) ids), readout backward and BPTT."""
    _cell_fwd(x, W_xh, W_xh_T, W_hh, bias, h0, h, b0, b1)
    head.loss_rows(h, W_hy, b_y, target, w, scale, y, dy, part, c, b0, b1)
    head.back_rows(h, dy, W_hy, no_dh, dh_out, gW_hy[c], gb_y[c], b0, b1)
    _cell_bwd(x, W_xh, W_hh_T, h0, h, dh_out, dh, da, dx, dh0, gW_xh[c], gW_hh[c], gb[c],
              b0, b1)


@njit(**JIT_F64)
def _train(x, W_xh, W_xh_T, W_hh, W_hh_T, bias, h0, W_hy, b_y, target, w, scale,
           h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb, no_dh):
    _train_rows(x, W_xh, W_xh_T, W_hh, W_hh_T, bias, h0, W_hy, b_y, target, w,
                scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh,
                gb, no_dh, np.int64(0), np.int64(0), h.shape[0])  # int64, as in _train_par


@njit(**JIT_PAR)
def _train_par(x, W_xh, W_xh_T, W_hh, W_hh_T, bias, h0, W_hy, b_y, target, w,
               scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh, gb,
               no_dh):
    n, B = part.shape[0], h.shape[0]
    for i in prange(n):
        c = np.int64(i)  # the prange index may be unsigned: keep one int64 specialisation
        _train_rows(x, W_xh, W_xh_T, W_hh, W_hh_T, bias, h0, W_hy, b_y, target, w,
                    scale, h, y, dy, dh_out, dh, da, dx, dh0, part, gW_hy, gb_y, gW_xh, gW_hh,
                    gb, no_dh, c, c * B // n, (c + 1) * B // n)


_FWD = {4: (_fwd_f32, _fwd_par_f32), 8: (_fwd_f64, _fwd_par_f64)}
_BWD = {4: (_bwd_f32, _bwd_par_f32), 8: (_bwd_f64, _bwd_par_f64)}


# ---------------------------------------------------------------- public wrappers
def _arrays(p, dtype):
    c = np.ascontiguousarray
    return (c(p["W_xh"], dtype), c(p["W_hh"], dtype), c(p["b_xh"], dtype), c(p["b_hh"], dtype))


def _input(x, dtype, I):
    """Contiguous x: (B, T) integer token ids checked against I, or (B, T, I) floats."""
    x = np.asarray(x)
    if x.ndim == 2:
        if x.dtype.kind not in "iu":
            raise ConfigError(f"(B, T) inputs must be integer token ids, got {x.dtype}")
        x = np.ascontiguousarray(x, np.int64)
        if not ids_in_range(x, I):
            raise ConfigError(f"token ids must lie in [0, {I})")
        return x
    if x.ndim != 3 or x.shape[2] != I:
        raise ConfigError(f"x must have shape (B, T, {I}) or be (B, T) token ids, got {x.shape}")
    return np.ascontiguousarray(x, dtype)


def forward(p, x, h0, c0=None):
    """x (B, T, I) or (B, T) ids, h0 (B, H) -> dict(h (B, T, H), c None, gates {}, cache)."""
    W_xh, W_hh, b_xh, b_hh = _arrays(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    H, I = W_xh.shape
    x = _input(x, dtype, I)
    B, T = x.shape[:2]
    h0 = np.ascontiguousarray(h0, dtype)
    h = np.empty((B, T, H), dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    W_xh_T = transpose(W_xh) if x.ndim == 2 else W_xh  # rows to gather for token ids
    args = (x, W_xh, W_xh_T, W_hh, b_xh + b_hh, h0, h)
    rows, par = _FWD[dtype.itemsize]
    if n > 1:
        par(*args, n)
    else:
        rows(*args, 0, B)
    return {"h": h, "c": None, "gates": {}, "cache": {"h0": h0}}


forward.accepts_token_ids = True


def backward(p, x, out, dh_out):
    """Full BPTT from dh_out (B, T, H) = dL/dh_t from outside the recurrence.

    Returns W_xh, W_hh, b_xh, b_hh, "x" (B, T, I), "h" (B, T, H) total dL/dh_t, "h0" (B, H).
    """
    W_xh, W_hh, _, _ = _arrays(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    H, I = W_xh.shape
    h = out["h"]
    h0 = out["cache"]["h0"]
    x = _input(x, dtype, I)
    B, T = h.shape[:2]
    dh_out = np.ascontiguousarray(dh_out, dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    ids = x.ndim == 2
    dh = np.empty((B, T, H), dtype)
    da = np.empty((B, T, H), dtype)
    dx = np.empty((B, T, I), dtype)
    dh0 = np.empty((B, H), dtype)
    gW_xh = np.empty((n, I, H) if ids else (n, H, I), dtype)
    gW_hh = np.empty((n, H, H), dtype)
    gb = np.empty((n, H), dtype)
    args = (x, W_xh, transpose(W_hh), h0, h, dh_out, dh, da, dx, dh0, gW_xh, gW_hh, gb)
    rows, par = _BWD[dtype.itemsize]
    if n > 1:
        par(*args)
        for c in range(1, n):  # sum the per-chunk weight gradients
            gW_xh[0] += gW_xh[c]
            gW_hh[0] += gW_hh[c]
            gb[0] += gb[c]
    else:
        rows(*args[:-3], gW_xh[0], gW_hh[0], gb[0], 0, B)
    dW_xh = np.ascontiguousarray(gW_xh[0].T) if ids else gW_xh[0]
    return {"W_xh": dW_xh, "W_hh": gW_hh[0], "b_xh": gb[0], "b_hh": gb[0].copy(),
            "x": dx, "h": dh, "h0": dh0}


def loss_and_grads(p, x, h0, c0, loss, target, weights, count):
    """Forward, readout, loss and full BPTT in one pass per batch chunk (c0 unused).

    p holds every parameter (with the readout); x (B, T, I) or (B, T) ids; target and
    weights (B, T) as checked by `engine.losses` (count = their sum). Returns
    (loss, grads) exactly as `Model.loss_and_grads`: the readout's, the cell's, "x",
    "h" (total dL/dh_t) and "h0".
    """
    W_xh, W_hh, b_xh, b_hh = _arrays(p, p["W_hh"].dtype)
    dtype = W_hh.dtype
    W_hy, b_y = np.ascontiguousarray(p["W_hy"], dtype), np.ascontiguousarray(p["b_y"], dtype)
    H, I = W_xh.shape
    O = W_hy.shape[0]
    x = _input(x, dtype, I)
    B, T = x.shape[:2]
    h0 = np.ascontiguousarray(h0, dtype)
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    ids = x.ndim == 2
    denom = max(float(count), 1.0) * (O if loss == "mse" else 1)
    scale = (2.0 if loss == "mse" else 1.0) / denom
    # one allocation for every buffer of the step (returned grads are views into it)
    h, dh, da, dh_out, y, dy, dx, dh0, gW_hy, gb_y, gW_xh, gW_hh, gb = carve(dtype, (
        (B, T, H), (B, T, H), (B, T, H), (B, T, H), (B, T, O), (B, T, O), (B, T, I), (B, H),
        (n, O, H), (n, O), (n, I, H) if ids else (n, H, I), (n, H, H), (n, H)))
    part = np.zeros(n)
    args = (x, W_xh, transpose(W_xh) if ids else W_xh, W_hh, transpose(W_hh), b_xh + b_hh,
            h0, W_hy, b_y, target, weights, scale, h, y, dy, dh_out, dh, da, dx, dh0,
            part, gW_hy, gb_y, gW_xh, gW_hh, gb, head.NO_DH[dtype.itemsize])
    if n > 1:
        _train_par(*args)
        for c in range(1, n):  # sum the per-chunk weight gradients
            for g in (gW_hy, gb_y, gW_xh, gW_hh, gb):
                g[0] += g[c]
    else:
        _train(*args)
    return float(part.sum() / denom), {
        "W_hy": gW_hy[0], "b_y": gb_y[0],
        "W_xh": np.ascontiguousarray(gW_xh[0].T) if ids else gW_xh[0], "W_hh": gW_hh[0],
        "b_xh": gb[0], "b_hh": gb[0].copy(), "x": dx, "h": dh, "h0": dh0}
