"""numba readout and losses, common to all cells (the numba backend's `Model` uses them).

    y = h W_hy^T + b_y            mse / xent (softmax cross-entropy) with dL/dy
    dW_hy = dy^T h, db_y = sum dy, dL/dh = dy W_hy (+ an extra dL/dh)

Same arithmetic as `engine/losses.py` and the numpy readout in `model.py` (tests compare
them); one BLAS call (`blas.gemm`, numpy's OpenBLAS) per batch chunk for each product,
the loss fused into the pass that computes y. Large batches run one chunk per thread,
like the cell kernels; the loss is summed per chunk in float64, so results do not depend
on thread timing.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from rnnviewer.engine.kernels._common import (JIT_DRIVER, JIT_F32, JIT_F64, JIT_PAR, NO_IDS,
                                              NO_X, act_exp, chunk_count)
from rnnviewer.engine.kernels.blas import gemm

PARALLEL_MIN_ROWS = 8  # batch rows per chunk below which the serial kernel runs


# ---------------------------------------------------------------- row-range bodies
@njit(inline="always")
def _readout_rows(h, W, b, y, b0, b1):
    """y[b0:b1] (B, T, O) = h[b0:b1] @ W.T + b."""
    T, H = h.shape[1], h.shape[2]
    O = W.shape[0]
    gemm(False, True, (b1 - b0) * T, O, H, 1.0, h, b0 * T * H, H, W, 0, H, 0.0, y, b0 * T * O, O)
    for i in range(b0, b1):
        for t in range(T):
            yr = y[i, t]
            for o in range(O):
                yr[o] += b[o]


@njit(inline="always")
def _mse_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    """y and dy = scale * w * (y - target) (scale = 2 / denominator); part[c] = sum w d^2."""
    _readout_rows(h, W, b, y, b0, b1)
    T, O = y.shape[1], y.shape[2]
    sc = y.dtype.type(scale)
    total = 0.0
    for i in range(b0, b1):
        for t in range(T):
            wt, yr, tr, dr = w[i, t], y[i, t], target[i, t], dy[i, t]
            s = 0.0
            for o in range(O):
                d = yr[o] - tr[o]
                wd = wt * d
                s += wd * d
                dr[o] = sc * wd
            total += s
    part[c] = total


@njit(inline="always")
def _xent_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    """y and dy = scale * w * (softmax(y) - onehot(target)) (scale = 1 / denominator);
    part[c] = sum w * (logsumexp(y) - y[target])."""
    _readout_rows(h, W, b, y, b0, b1)
    T, O = y.shape[1], y.shape[2]
    zero, sc = y.dtype.type(0.0), y.dtype.type(scale)
    total = 0.0
    for i in range(b0, b1):
        for t in range(T):
            wt, yr, dr = w[i, t], y[i, t], dy[i, t]
            k = target[i, t]
            top = yr[0]
            for o in range(1, O):
                top = max(top, yr[o])
            z = zero
            for o in range(O):
                e = act_exp(yr[o] - top)
                dr[o] = e
                z += e
            total += wt * (np.log(z) - (yr[k] - top))
            f = sc * wt / z
            for o in range(O):
                dr[o] *= f
            dr[k] -= sc * wt
    part[c] = total


@njit(inline="always")
def _back_rows(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
    """dh[b0:b1] = dy @ W (+ dh_extra), this chunk's gW = dy^T h (O, H) and gb = sum dy
    (an empty gW skips gW and gb)."""
    T, H = h.shape[1], h.shape[2]
    O = W.shape[0]
    m = b1 - b0
    beta = 0.0
    if dh_extra.size:  # copied row by row: a slice assignment compiles shape checks
        for i in range(b0, b1):
            for t in range(T):
                d, e = dh[i, t], dh_extra[i, t]
                for j in range(H):
                    d[j] = e[j]
        beta = 1.0
    gemm(False, False, m * T, H, O, 1.0, dy, b0 * T * O, O, W, 0, H, beta, dh, b0 * T * H, H)
    if not gW.size:
        return
    gemm(True, False, O, H, m * T, 1.0, dy, b0 * T * O, O, h, b0 * T * H, H, 0.0, gW, 0, H)
    gb[:] = 0.0
    for i in range(b0, b1):
        for t in range(T):
            dr = dy[i, t]
            for o in range(O):
                gb[o] += dr[o]


# ---------------------------------------------------------------- jitted variants
@njit(**JIT_F32)
def _readout_f32(h, W, b, y, b0, b1):
    _readout_rows(h, W, b, y, b0, b1)


@njit(**JIT_F64)
def _readout_f64(h, W, b, y, b0, b1):
    _readout_rows(h, W, b, y, b0, b1)


@njit(**JIT_F32)
def _mse_f32(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    _mse_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1)


@njit(**JIT_F64)
def _mse_f64(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    _mse_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1)


@njit(**JIT_F32)
def _xent_f32(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    _xent_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1)


@njit(**JIT_F64)
def _xent_f64(h, W, b, target, w, scale, y, dy, part, c, b0, b1):
    _xent_rows(h, W, b, target, w, scale, y, dy, part, c, b0, b1)


@njit(**JIT_F32)
def _back_f32(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
    _back_rows(h, dy, W, dh_extra, dh, gW, gb, b0, b1)


@njit(**JIT_F64)
def _back_f64(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
    _back_rows(h, dy, W, dh_extra, dh, gW, gb, b0, b1)


@njit(**JIT_PAR)
def _mse_par_f32(h, W, b, target, w, scale, y, dy, part):
    n = part.shape[0]
    for c in prange(n):
        _mse_f32(h, W, b, target, w, scale, y, dy, part, c, c * h.shape[0] // n,
                 (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _mse_par_f64(h, W, b, target, w, scale, y, dy, part):
    n = part.shape[0]
    for c in prange(n):
        _mse_f64(h, W, b, target, w, scale, y, dy, part, c, c * h.shape[0] // n,
                 (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _xent_par_f32(h, W, b, target, w, scale, y, dy, part):
    n = part.shape[0]
    for c in prange(n):
        _xent_f32(h, W, b, target, w, scale, y, dy, part, c, c * h.shape[0] // n,
                  (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _xent_par_f64(h, W, b, target, w, scale, y, dy, part):
    n = part.shape[0]
    for c in prange(n):
        _xent_f64(h, W, b, target, w, scale, y, dy, part, c, c * h.shape[0] // n,
                  (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _back_par_f32(h, dy, W, dh_extra, dh, gW, gb):
    n = gb.shape[0]
    for c in prange(n):
        _back_f32(h, dy, W, dh_extra, dh, gW[c], gb[c], c * h.shape[0] // n,
                  (c + 1) * h.shape[0] // n)


@njit(**JIT_PAR)
def _back_par_f64(h, dy, W, dh_extra, dh, gW, gb):
    n = gb.shape[0]
    for c in prange(n):
        _back_f64(h, dy, W, dh_extra, dh, gW[c], gb[c], c * h.shape[0] // n,
                  (c + 1) * h.shape[0] // n)


_READOUT = {4: _readout_f32, 8: _readout_f64}


# ---------------------------------------------------------------- for cells' fused passes
def loss_rows(h, W, b, tgt, ids_tgt, w, scale, y, dy, part, c, b0, b1):
    """Rows b0:b1 of the loss pass for the model's dtype: mse against tgt (B, T, O), or
    xent against the class ids ids_tgt (B, T) when tgt is empty."""


@overload(loss_rows, inline="always")
def _loss_rows_ol(h, W, b, tgt, ids_tgt, w, scale, y, dy, part, c, b0, b1):
    f32 = h.dtype == types.float32
    f_mse, f_xent = (_mse_f32, _xent_f32) if f32 else (_mse_f64, _xent_f64)

    def impl(h, W, b, tgt, ids_tgt, w, scale, y, dy, part, c, b0, b1):
        if tgt.size:
            f_mse(h, W, b, tgt, w, scale, y, dy, part, c, b0, b1)
        else:
            f_xent(h, W, b, ids_tgt, w, scale, y, dy, part, c, b0, b1)
    return impl


def back_rows(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
    """Rows b0:b1 of the readout's backward, for the model's dtype."""


@overload(back_rows, inline="always")
def _back_rows_ol(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
    fn = _back_f32 if h.dtype == types.float32 else _back_f64

    def impl(h, dy, W, dh_extra, dh, gW, gb, b0, b1):
        fn(h, dy, W, dh_extra, dh, gW, gb, b0, b1)
    return impl
_LOSS = {("mse", 4): (_mse_f32, _mse_par_f32), ("mse", 8): (_mse_f64, _mse_par_f64),
         ("xent", 4): (_xent_f32, _xent_par_f32), ("xent", 8): (_xent_f64, _xent_par_f64)}
_BACK = {4: (_back_f32, _back_par_f32), 8: (_back_f64, _back_par_f64)}


# ---------------------------------------------------------------- public wrappers
def _c(a, dtype=None):
    return np.ascontiguousarray(a, dtype)


def readout(h, W, b):
    """y (B, T, O) = h (B, T, H) @ W.T + b, serial (one BLAS call)."""
    h, W, b = _c(h), _c(W, h.dtype), _c(b, h.dtype)
    y = np.empty(h.shape[:2] + (W.shape[0],), h.dtype)
    _READOUT[h.itemsize](h, W, b, y, 0, h.shape[0])
    return y


def readout_loss(h, W, b, loss, target, weights, count):
    """(loss value, y, dy) for target and per-position weights (B, T) already checked.

    mse: target (B, T, O) floats, mean over count * O; xent: target (B, T) class ids,
    mean over count. `count` is the sum of the weights (B * T without a mask).
    """
    h, W, b = _c(h), _c(W, h.dtype), _c(b, h.dtype)
    B, T, _ = h.shape
    O = W.shape[0]
    y = np.empty((B, T, O), h.dtype)
    dy = np.empty((B, T, O), h.dtype)
    denom = max(float(count), 1.0) * (O if loss == "mse" else 1)
    scale = (2.0 if loss == "mse" else 1.0) / denom
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    part = np.zeros(n)
    serial, par = _LOSS[loss, h.itemsize]
    if n > 1:
        par(h, W, b, target, weights, scale, y, dy, part)
    else:
        serial(h, W, b, target, weights, scale, y, dy, part, 0, 0, B)
    return float(part.sum() / denom), y, dy


@njit(**JIT_DRIVER)
def _row_losses(h, W, b, tgt, ids_tgt, w, scale, y, dy, part):
    """Every row r alone (its own scale[r]): part[r] = its weighted loss sum."""
    for r in range(h.shape[0]):
        loss_rows(h, W, b, tgt, ids_tgt, w, scale[r], y, dy, part, r, r, r + 1)


def row_losses(h, W, b, loss, target, weights, count):
    """Each row's own loss, as `readout_loss` gives it for that row alone (serial).

    h (R, T, H); target (R, T, O) floats (mse) or (R, T) int64 class ids (xent);
    weights (R, T) in h's dtype; count (R,) each row's denominator (the sum of its
    weights, floored at 1 here). Returns (values (R,) float64, y (R, T, O),
    dy (R, T, O) = d values[r] / d y[r]).
    """
    h, W, b = _c(h), _c(W, h.dtype), _c(b, h.dtype)
    R, T, _ = h.shape
    O = W.shape[0]
    mse = loss == "mse"
    denom = np.maximum(np.asarray(count, np.float64), 1.0) * (O if mse else 1)   # (R,)
    scale = (2.0 if mse else 1.0) / denom
    tgt, ids = (_c(target, h.dtype), NO_IDS) if mse else (NO_X[h.itemsize], _c(target, np.int64))
    y = np.empty((R, T, O), h.dtype)
    dy = np.empty((R, T, O), h.dtype)
    part = np.zeros(R)
    _row_losses(h, W, b, tgt, ids, _c(weights, h.dtype), scale, y, dy, part)
    return part / denom, y, dy


NO_DH = {4: np.zeros((0, 0, 0), np.float32), 8: np.zeros((0, 0, 0), np.float64)}


def readout_backward(h, dy, W, dh_extra=None, params=True):
    """(dW (O, H), db (O,), dh (B, T, H) = dy @ W + dh_extra) for the readout;
    params=False skips dW and db ((None, None, dh); the same compiled kernel)."""
    h = _c(h)
    dy, W = _c(dy, h.dtype), _c(W, h.dtype)
    B, T, H = h.shape
    O = W.shape[0]
    n = chunk_count(B, PARALLEL_MIN_ROWS)
    dh = np.empty((B, T, H), h.dtype)
    gW = np.empty((n, O, H) if params else (n, 0, 0), h.dtype)
    gb = np.empty((n, O) if params else (n, 0), h.dtype)
    extra = NO_DH[h.itemsize] if dh_extra is None else _c(dh_extra, h.dtype)
    serial, par = _BACK[h.itemsize]
    if n > 1:
        par(h, dy, W, extra, dh, gW, gb)
        for c in range(1, n if params else 1):
            gW[0] += gW[c]
            gb[0] += gb[c]
    else:
        serial(h, dy, W, extra, dh, gW[0], gb[0], 0, B)
    if not params:
        return None, None, dh
    return gW[0], gb[0], dh
