"""GRU numba kernels: forward and full BPTT with the meanings of `numpy_cells.gru_*`.

    r = sig(W_ir x + b_ir + W_hr h + b_hr)     z = sig(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     h' = (1 - z) * n + z * h

Only the recurrent product stays in the time loop; the input projection (a row lookup
for one-hot inputs), every weight gradient and dL/dx are one BLAS call each per batch
chunk. Large batches run one chunk per numba thread (one fork/join per pass).
"""

import numpy as np
from numba import njit, prange

from rnnviewer.engine.kernels._gated_common import (
    JIT, JIT_PARALLEL, blas_single_thread, chunks, gemm, gemv, onehot_rows, sigmoid, tanh)

MIN_CHUNK_ROWS = 4  # batch rows per thread below which the serial kernel is used
ONEHOT_MIN_INPUTS = 4


@njit(**JIT)
def _fwd_chunk(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur, b0, b1):
    """Rows b0..b1 of the batch. xp (B,T,3H) scratch; hp (Bc,3H), hcur (Bc,H) per chunk."""
    B, T, I = x.shape
    H = h.shape[2]
    G = 3 * H
    Bc = b1 - b0
    R0 = b0 * T
    xp2 = xp.reshape(B * T, G)
    if oh.size:  # one-hot input: xp row = column oh[row] of W_xh
        for row in range(R0, R0 + Bc * T):
            k = oh[row]
            for g in range(G):
                xp2[row, g] = W_xh[g, k]
    else:
        gemm(False, True, Bc * T, G, I, 1.0, x, R0 * I, I, W_xh, 0, I, 0.0, xp, R0 * G, G)
    for bb in range(Bc):
        for j in range(H):
            hcur[bb, j] = h0[b0 + bb, j]
    one = h.dtype.type(1.0)
    for t in range(T):
        if Bc == 1:
            gemv(False, G, H, 1.0, W_hh, 0, H, hcur, 0, 0.0, hp, 0)
        else:
            gemm(False, True, Bc, G, H, 1.0, hcur, 0, H, W_hh, 0, H, 0.0, hp, 0, G)
        for bb in range(Bc):
            b = b0 + bb
            xt = xp[b, t]
            hpb = hp[bb]
            hc = hcur[bb]
            for j in range(H):
                rj = sigmoid(xt[j] + hpb[j] + bsum[j])
                zj = sigmoid(xt[H + j] + hpb[H + j] + bsum[H + j])
                hnj = hpb[2 * H + j] + b_hn[j]
                nj = tanh(xt[2 * H + j] + bsum[2 * H + j] + rj * hnj)
                hj = (one - zj) * nj + zj * hc[j]
                r[b, t, j] = rj
                z[b, t, j] = zj
                n[b, t, j] = nj
                hn[b, t, j] = hnj
                h[b, t, j] = hj
                hc[j] = hj


@njit(**JIT)
def _fwd_serial(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp):
    B, H = h0.shape
    hp = np.empty((B, 3 * H), h.dtype)
    hcur = np.empty((B, H), h.dtype)
    _fwd_chunk(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur, 0, B)


@njit(**JIT_PARALLEL)
def _fwd_parallel(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp, nch):
    B, H = h0.shape
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        hp = np.empty((b1 - b0, 3 * H), h.dtype)
        hcur = np.empty((b1 - b0, H), h.dtype)
        _fwd_chunk(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur, b0, b1)


@njit(**JIT)
def _bwd_chunk(x, oh, W_xh, W_hh, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
               gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0, carry, gacc, b0, b1):
    """BPTT for rows b0..b1. dhh (B,T,3H) holds dL/d(recurrent pre-activations)
    [dr, dz, dn * r]; dan (B,T,H) dL/d(input pre-activation of n). Gradients of this chunk
    go to gW_xh (3H,I) (gWxT (I,3H) for one-hot input), gW_hh, gb_xh, gb_hh (zeroed)."""
    B, T, I = x.shape
    H = h.shape[2]
    G = 3 * H
    Bc = b1 - b0
    one = h.dtype.type(1.0)
    carry[:] = 0.0
    gacc[:] = 0.0
    for t in range(T - 1, -1, -1):
        for bb in range(Bc):
            b = b0 + bb
            prev = h[b, t - 1] if t > 0 else h0[b]
            cb = carry[bb]
            gb = gacc[bb]
            dhb = dhh[b, t]
            for j in range(H):
                d = dh_out[b, t, j] + cb[j] + gb[j]
                dht[b, t, j] = d
                zj = z[b, t, j]
                nj = n[b, t, j]
                rj = r[b, t, j]
                dn = d * (one - zj) * (one - nj * nj)
                dhb[j] = dn * hn[b, t, j] * rj * (one - rj)
                dhb[H + j] = d * (prev[j] - nj) * zj * (one - zj)
                dhb[2 * H + j] = dn * rj
                dan[b, t, j] = dn
                cb[j] = d * zj
        if Bc == 1:
            gemv(True, G, H, 1.0, W_hh, 0, H, dhh, (b0 * T + t) * G, 0.0, gacc, 0)
        else:
            gemm(False, False, Bc, H, G, 1.0, dhh, (b0 * T + t) * G, T * G, W_hh, 0, H,
                 0.0, gacc, 0, H)
    for bb in range(Bc):
        for j in range(H):
            dh0[b0 + bb, j] = carry[bb, j] + gacc[bb, j]
    R0 = b0 * T
    rows = Bc * T
    # dW_hh = sum_bt dhh[b,t] h[b,t-1]^T: the flat rows shifted by one pair every (b, t>0);
    # the rows with t=0 then get h0[b] - h[b-1,T-1] (carry in gacc as scratch)
    gemm(True, False, G, H, rows - 1, 1.0, dhh, (R0 + 1) * G, G, h, R0 * H, H, 1.0, gW_hh, 0, H)
    for bb in range(Bc):
        b = b0 + bb
        for j in range(H):
            gacc[bb, j] = h0[b, j] - (h[b - 1, T - 1, j] if bb > 0 else 0.0)
    gemm(True, False, G, H, Bc, 1.0, dhh, R0 * G, T * G, gacc, 0, H, 1.0, gW_hh, 0, H)
    dhh2 = dhh.reshape(B * T, G)
    dan2 = dan.reshape(B * T, H)
    for row in range(R0, R0 + rows):
        for g in range(G):
            gb_hh[g] += dhh2[row, g]
        for j in range(H):
            gb_xh[2 * H + j] += dan2[row, j]
    for g in range(2 * H):
        gb_xh[g] = gb_hh[g]
    if oh.size:  # scatter-add into the transposed gradient
        for row in range(R0, R0 + rows):
            k = oh[row]
            for g in range(2 * H):
                gWxT[k, g] += dhh2[row, g]
            for j in range(H):
                gWxT[k, 2 * H + j] += dan2[row, j]
    else:
        gemm(True, False, 2 * H, I, rows, 1.0, dhh, R0 * G, G, x, R0 * I, I, 1.0, gW_xh, 0, I)
        gemm(True, False, H, I, rows, 1.0, dan, R0 * H, H, x, R0 * I, I, 1.0, gW_xh, 2 * H * I, I)
    gemm(False, False, rows, I, 2 * H, 1.0, dhh, R0 * G, G, W_xh, 0, I, 0.0, dx, R0 * I, I)
    gemm(False, False, rows, I, H, 1.0, dan, R0 * H, H, W_xh, 2 * H * I, I, 1.0, dx, R0 * I, I)


@njit(**JIT)
def _bwd_serial(x, oh, W_xh, W_hh, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
                gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    carry = np.empty((B, H), h.dtype)
    gacc = np.empty((B, H), h.dtype)
    _bwd_chunk(x, oh, W_xh, W_hh, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
               gW_xh[0], gWxT[0], gW_hh[0], gb_xh[0], gb_hh[0], dh0, carry, gacc, 0, B)


@njit(**JIT_PARALLEL)
def _bwd_parallel(x, oh, W_xh, W_hh, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
                  gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    nch = gW_hh.shape[0]
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        carry = np.empty((b1 - b0, H), h.dtype)
        gacc = np.empty((b1 - b0, H), h.dtype)
        _bwd_chunk(x, oh, W_xh, W_hh, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
                   gW_xh[c], gWxT[c], gW_hh[c], gb_xh[c], gb_hh[c], dh0, carry, gacc, b0, b1)


# ------------------------------------------------------------------ public wrappers
def _weights(p, dtype):
    return [np.ascontiguousarray(p[k], dtype=dtype) for k in ("W_xh", "W_hh", "b_xh", "b_hh")]


def _onehot(x):
    B, T, I = x.shape
    if I < ONEHOT_MIN_INPUTS:
        return np.empty(0, np.int32)
    return onehot_rows(x.reshape(B * T, I))


def forward(p, x, h0, c0=None):
    """x (B,T,I), h0 (B,H) -> dict(h, c=None, gates {r,z,n} (B,T,H), cache)."""
    blas_single_thread()
    x = np.ascontiguousarray(x)
    dt = x.dtype
    W_xh, W_hh, b_xh, b_hh = _weights(p, dt)
    h0 = np.ascontiguousarray(h0, dtype=dt)
    B, T, _ = x.shape
    H = W_hh.shape[1]
    bsum = b_xh.copy()
    bsum[:2 * H] += b_hh[:2 * H]
    b_hn = np.ascontiguousarray(b_hh[2 * H:])
    h, r, z, n, hn = (np.empty((B, T, H), dt) for _ in range(5))
    xp = np.empty((B, T, 3 * H), dt)
    oh = _onehot(x)
    nch = chunks(B, MIN_CHUNK_ROWS)
    if nch > 1:
        _fwd_parallel(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp, nch)
    else:
        _fwd_serial(x, oh, W_xh, W_hh, bsum, b_hn, h0, h, r, z, n, hn, xp)
    return {"h": h, "c": None, "gates": {"r": r, "z": z, "n": n},
            "cache": {"h0": h0, "hn": hn, "onehot": oh}}


def backward(p, x, out, dh_out):
    """Full BPTT from dh_out (B,T,H) = dL/dh_t from outside the recurrence.

    Returns W_xh, W_hh, b_xh, b_hh, "x" (B,T,I), "h" (B,T,H) total dL/dh_t, "h0" (B,H).
    """
    blas_single_thread()
    x = np.ascontiguousarray(x)
    dt = x.dtype
    W_xh, W_hh, _, _ = _weights(p, dt)
    h = out["h"]
    g = out["gates"]
    cache = out["cache"]
    h0 = cache["h0"]
    oh = cache["onehot"] if "onehot" in cache else _onehot(x)
    B, T, I = x.shape
    H = W_hh.shape[1]
    dh_out = np.ascontiguousarray(dh_out, dtype=dt)
    nch = chunks(B, MIN_CHUNK_ROWS)
    dht = np.empty((B, T, H), dt)
    dhh = np.empty((B, T, 3 * H), dt)
    dan = np.empty((B, T, H), dt)
    dx = np.empty((B, T, I), dt)
    dh0 = np.empty((B, H), dt)
    gW_xh = np.zeros((nch, 3 * H, I) if not oh.size else (nch, 0, 0), dt)
    gWxT = np.zeros((nch, I, 3 * H) if oh.size else (nch, 0, 0), dt)
    gW_hh = np.zeros((nch, 3 * H, H), dt)
    gb_xh = np.zeros((nch, 3 * H), dt)
    gb_hh = np.zeros((nch, 3 * H), dt)
    args = (x, oh, W_xh, W_hh, h0, h, g["r"], g["z"], g["n"], cache["hn"], dh_out, dht, dhh,
            dan, dx, gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0)
    (_bwd_parallel if nch > 1 else _bwd_serial)(*args)
    if oh.size:
        dW_xh = np.ascontiguousarray((gWxT[0] if nch == 1 else gWxT.sum(0)).T)
    else:
        dW_xh = gW_xh[0] if nch == 1 else gW_xh.sum(0)
    red = (lambda a: a[0]) if nch == 1 else (lambda a: a.sum(0))
    return {"W_xh": dW_xh, "W_hh": red(gW_hh), "b_xh": red(gb_xh), "b_hh": red(gb_hh),
            "x": dx, "h": dht, "h0": dh0}
