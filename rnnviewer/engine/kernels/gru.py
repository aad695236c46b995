"""GRU numba kernels: forward and full BPTT with the meanings of `numpy_cells.gru_*`.

    r = sig(W_ir x + b_ir + W_hr h + b_hr)     z = sig(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     h' = (1 - z) * n + z * h

Inputs, the recurrent products, threading and precision: as every gated cell
(`_gated_common`, module docstring).
"""

import numpy as np
from numba import njit, prange

from rnnviewer.engine.kernels._gated_common import (
    JIT_F32, JIT_F32_PAR, JIT_F64, JIT_F64_PAR, SMALL_M, _axpy_rows, _dot_rows, chunks, gemm,
    jit_variants, prepare_input, sigmoid, sum_chunks, tanh)
from rnnviewer.engine.kernels._gated_wrap import dx_weights, packed_weight, row_scale
from rnnviewer.engine.kernels.packed import mm_packed

MIN_CHUNK_ROWS = 4  # batch rows per thread below which the serial kernel runs


# ------------------------------------------------------------------ row-range bodies
# Plain functions jitted once per dtype below (jit_variants); b0..b1 is a batch chunk.
def _fwd_rows(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur,
              b0, b1):
    """Batch rows b0..b1. W_in is W_xh.T (I,3H) when oh holds row ids or I = 1: the time
    loop then reads input rows directly (sc (B,) scales row b's one-hot rows; empty: 1);
    else W_in is W_xh (3H,I) and xp (B,T,3H) their projection, one gemm first. W_hh_P is
    W_hh.T packed (`_gated_wrap.packed_weight`) for chunks of more than SMALL_M rows; hp
    (Bc,3H), hcur (Bc,H) this chunk's."""
    B, T, H = h.shape
    G = 3 * H
    Bc = b1 - b0
    R0 = b0 * T
    direct = oh.size > 0 or x.shape[2] == 1  # input rows read in the time loop, no xp
    if not direct:
        I = x.shape[2]
        gemm(False, True, Bc * T, G, I, 1.0, x, R0 * I, I, W_in, 0, I, 0.0, xp, R0 * G, G)
    for bb in range(Bc):
        for j in range(H):
            hcur[bb, j] = h0[b0 + bb, j]
    one = h.dtype.type(1.0)
    hcur3 = hcur.reshape(Bc, 1, H)
    for t in range(T):  # (Bc, G) = h_{t-1} @ W_hh.T
        if Bc <= SMALL_M:
            _dot_rows(Bc, hcur3, 0, 0, W_hh, hp)
        else:
            mm_packed(Bc, hcur, 0, H, W_hh_P, H, G, hp, 0, G, 0.0)
        for bb in range(Bc):
            b = b0 + bb
            if oh.size:  # the input term is s * xt[q]: a (scaled) row of W_xh.T ...
                xt = W_in[oh[b * T + t]]
                s = sc[b] if sc.size else one
            elif direct:  # ... x times its one column ...
                xt = W_in[0]
                s = x[b, t, 0]
            else:  # ... or the projection done before the loop
                xt = xp[b, t]
                s = one
            hpb = hp[bb]
            hc = hcur[bb]
            for j in range(H):
                rj = sigmoid(s * xt[j] + hpb[j] + bsum[j])
                zj = sigmoid(s * xt[H + j] + hpb[H + j] + bsum[H + j])
                hnj = hpb[2 * H + j] + b_hn[j]
                nj = tanh(s * xt[2 * H + j] + bsum[2 * H + j] + rj * hnj)
                hj = (one - zj) * nj + zj * hc[j]
                r[b, t, j] = rj
                z[b, t, j] = zj
                n[b, t, j] = nj
                hn[b, t, j] = hnj
                h[b, t, j] = hj
                hc[j] = hj


def _bwd_rows(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh, dan,
              dx, gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0, carry, gacc, b0, b1):
    """BPTT for batch rows b0..b1. dhh (B,T,3H) holds dL/d(recurrent pre-activations)
    [dr, dz, dn * r], dan (B,T,H) dL/d(input pre-activation of n). This chunk's gradients
    go to gW_xh (3H,I) (gWxT (I,3H) for one-hot rows, scaled by sc), gW_hh, gb_xh, gb_hh
    (overwritten); an empty gW_hh (size 0, a run-time flag) skips every parameter
    gradient. W_hh_P is W_hh packed (`_gated_wrap.packed_weight`) for chunks of more
    than SMALL_M rows. A non-empty W_in (W_xh.T; for one-hot rows or I = 1): dx (B,T,1)
    gets dL/dx at each row's hot position (its only column for I = 1) in the time loop,
    a dot product per row; else dx (B,T,I) is the whole gradient, one gemm after the
    loop. dhh and dan may then be (B,1,.) step buffers (without parameter gradients
    nothing reads them after the step)."""
    B, T, H = h.shape
    G = 3 * H
    I = W_xh.shape[1]
    Bc = b1 - b0
    Td = dhh.shape[1]  # T, or 1 for step buffers
    one = h.dtype.type(1.0)
    zero = h.dtype.type(0.0)
    dx2 = dx.reshape(dx.size)
    carry[:] = 0.0
    gacc[:] = 0.0
    for t in range(T - 1, -1, -1):
        tt = t if Td > 1 else 0
        for bb in range(Bc):
            b = b0 + bb
            prev = h[b, t - 1] if t > 0 else h0[b]
            cb = carry[bb]
            ga = gacc[bb]
            dhb = dhh[b, tt]
            danb = dan[b, tt]
            for j in range(H):
                d = dh_out[b, t, j] + cb[j] + ga[j]
                dht[b, t, j] = d
                zj = z[b, t, j]
                nj = n[b, t, j]
                rj = r[b, t, j]
                dn = d * (one - zj) * (one - nj * nj)
                dhb[j] = dn * hn[b, t, j] * rj * (one - rj)
                dhb[H + j] = d * (prev[j] - nj) * zj * (one - zj)
                dhb[2 * H + j] = dn * rj
                danb[j] = dn
                cb[j] = d * zj
            if W_in.size:  # dL/dx at the hot position (the only column for I = 1)
                wk = W_in[oh[b * T + t] if oh.size else 0]
                acc = zero
                for g in range(2 * H):
                    acc += dhb[g] * wk[g]
                for j in range(H):
                    acc += danb[j] * wk[2 * H + j]
                dx2[b * T + t] = acc
        if Bc <= SMALL_M:  # (Bc, H) = d(pre-act) @ W_hh
            _axpy_rows(Bc, dhh, b0, tt, W_hh, gacc)
        else:
            mm_packed(Bc, dhh, (b0 * Td + tt) * G, Td * G, W_hh_P, G, H, gacc, 0, H, 0.0)
    for bb in range(Bc):
        for j in range(H):
            dh0[b0 + bb, j] = carry[bb, j] + gacc[bb, j]
    R0 = b0 * T
    rows = Bc * T
    if gW_hh.size:  # parameter gradients
        # dW_hh = sum_bt dhh[b,t] h[b,t-1]^T: flat rows (row, row - 1) pair every (b, t > 0);
        # the t = 0 rows then take h0[b] - h[b-1, T-1] (built in gacc, now free)
        gemm(True, False, G, H, rows - 1, 1.0, dhh, (R0 + 1) * G, G, h, R0 * H, H, 0.0, gW_hh, 0, H)
        for bb in range(Bc):
            b = b0 + bb
            if bb > 0:
                for j in range(H):
                    gacc[bb, j] = h0[b, j] - h[b - 1, T - 1, j]
            else:
                for j in range(H):
                    gacc[bb, j] = h0[b, j]
        gemm(True, False, G, H, Bc, 1.0, dhh, R0 * G, T * G, gacc, 0, H, 1.0, gW_hh, 0, H)
        dhh2 = dhh.reshape(B * T, G)
        dan2 = dan.reshape(B * T, H)
        gb_hh[:] = 0.0
        gb_xh[:] = 0.0
        for row in range(R0, R0 + rows):
            for g in range(G):
                gb_hh[g] += dhh2[row, g]
            for j in range(H):
                gb_xh[2 * H + j] += dan2[row, j]
        for g in range(2 * H):
            gb_xh[g] = gb_hh[g]
        if oh.size:  # scatter-add into the transposed gradient
            gWxT[:] = 0.0
            for row in range(R0, R0 + rows):
                k = oh[row]
                s = sc[row // T] if sc.size else one
                for g in range(2 * H):
                    gWxT[k, g] += s * dhh2[row, g]
                for j in range(H):
                    gWxT[k, 2 * H + j] += s * dan2[row, j]
        else:
            gemm(True, False, 2 * H, I, rows, 1.0, dhh, R0 * G, G, x, R0 * I, I, 0.0, gW_xh, 0, I)
            gemm(True, False, H, I, rows, 1.0, dan, R0 * H, H, x, R0 * I, I, 0.0, gW_xh,
                 2 * H * I, I)
    if not W_in.size:
        gemm(False, False, rows, I, 2 * H, 1.0, dhh, R0 * G, G, W_xh, 0, I, 0.0, dx, R0 * I, I)
        gemm(False, False, rows, I, H, 1.0, dan, R0 * H, H, W_xh, 2 * H * I, I, 1.0, dx, R0 * I,
             I)


_fwd_rows_f32, _fwd_rows_f64 = jit_variants(_fwd_rows)
_bwd_rows_f32, _bwd_rows_f64 = jit_variants(_bwd_rows)


# ------------------------------------------------------------------ jitted variants
# One driver per (dtype, serial/parallel), compiled on first use: serial drivers run one
# chunk, parallel ones one chunk per thread with per-chunk gradient buffers.
@njit(**JIT_F32)
def _fwd_f32(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    hp = np.empty((B, 3 * H), h.dtype)
    hcur = np.empty((B, H), h.dtype)
    _fwd_rows_f32(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur,
                  start, B)


@njit(**JIT_F64)
def _fwd_f64(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    hp = np.empty((B, 3 * H), h.dtype)
    hcur = np.empty((B, H), h.dtype)
    _fwd_rows_f64(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, hp, hcur,
                  start, B)


@njit(**JIT_F32_PAR)
def _fwd_f32_par(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, nch):
    B, H = h0.shape
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        hp = np.empty((b1 - b0, 3 * H), h.dtype)
        hcur = np.empty((b1 - b0, H), h.dtype)
        _fwd_rows_f32(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, hp,
                      hcur, b0, b1)


@njit(**JIT_F64_PAR)
def _fwd_f64_par(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, nch):
    B, H = h0.shape
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        hp = np.empty((b1 - b0, 3 * H), h.dtype)
        hcur = np.empty((b1 - b0, H), h.dtype)
        _fwd_rows_f64(x, oh, sc, W_in, W_hh, W_hh_P, bsum, b_hn, h0, h, r, z, n, hn, xp, hp,
                      hcur, b0, b1)


@njit(**JIT_F32)
def _bwd_f32(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
             gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    carry = np.empty((B, H), h.dtype)
    gacc = np.empty((B, H), h.dtype)
    _bwd_rows_f32(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh,
                  dan, dx, gW_xh[0], gWxT[0], gW_hh[0], gb_xh[0], gb_hh[0], dh0, carry, gacc,
                  start, B)


@njit(**JIT_F64)
def _bwd_f64(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh, dan, dx,
             gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    carry = np.empty((B, H), h.dtype)
    gacc = np.empty((B, H), h.dtype)
    _bwd_rows_f64(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh,
                  dan, dx, gW_xh[0], gWxT[0], gW_hh[0], gb_xh[0], gb_hh[0], dh0, carry, gacc,
                  start, B)


@njit(**JIT_F32_PAR)
def _bwd_f32_par(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh, dan,
                 dx, gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    nch = gW_hh.shape[0]
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        carry = np.empty((b1 - b0, H), h.dtype)
        gacc = np.empty((b1 - b0, H), h.dtype)
        _bwd_rows_f32(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh,
                      dan, dx, gW_xh[c], gWxT[c], gW_hh[c], gb_xh[c], gb_hh[c], dh0, carry,
                      gacc, b0, b1)
    sum_chunks(gW_xh)
    sum_chunks(gWxT)
    sum_chunks(gW_hh)
    sum_chunks(gb_xh)
    sum_chunks(gb_hh)


@njit(**JIT_F64_PAR)
def _bwd_f64_par(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh, dan,
                 dx, gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0):
    B, H = h0.shape
    nch = gW_hh.shape[0]
    for c in prange(nch):
        b0 = c * B // nch
        b1 = (c + 1) * B // nch
        carry = np.empty((b1 - b0, H), h.dtype)
        gacc = np.empty((b1 - b0, H), h.dtype)
        _bwd_rows_f64(x, oh, sc, W_xh, W_in, W_hh, W_hh_P, h0, h, r, z, n, hn, dh_out, dht, dhh,
                      dan, dx, gW_xh[c], gWxT[c], gW_hh[c], gb_xh[c], gb_hh[c], dh0, carry,
                      gacc, b0, b1)
    sum_chunks(gW_xh)
    sum_chunks(gWxT)
    sum_chunks(gW_hh)
    sum_chunks(gb_xh)
    sum_chunks(gb_hh)


_FWD = {(4, False): _fwd_f32, (8, False): _fwd_f64, (4, True): _fwd_f32_par, (8, True): _fwd_f64_par}
_BWD = {(4, False): _bwd_f32, (8, False): _bwd_f64, (4, True): _bwd_f32_par, (8, True): _bwd_f64_par}


# ------------------------------------------------------------------ public wrappers
def _weights(p):
    dt = np.dtype(p["W_hh"].dtype)
    return [np.ascontiguousarray(p[k], dtype=dt) for k in ("W_xh", "W_hh", "b_xh", "b_hh")]


def forward(p, x, h0, c0=None, scale=None):
    """x (B,T,I) or (B,T) ids, h0 (B,H) -> dict(h, c=None, gates {r,z,n} (B,T,H), cache).

    scale (B,), with token ids only: row b's inputs are scale[b] times its one-hot rows
    (the same as x = scale[:, None, None] * one-hot, without the dense product).
    """
    W_xh, W_hh, b_xh, b_hh = _weights(p)
    dt = W_hh.dtype
    G, I = W_xh.shape
    H = G // 3
    x3, oh = prepare_input(x, dt, I)
    B, T = np.shape(x)[:2]
    sc = row_scale(scale, x, B, dt)
    h0 = np.ascontiguousarray(h0, dtype=dt)
    bsum = b_xh.copy()
    bsum[:2 * H] += b_hh[:2 * H]
    b_hn = np.ascontiguousarray(b_hh[2 * H:])
    h, r, z, n, hn = (np.empty((B, T, H), dt) for _ in range(5))
    direct = oh.size > 0 or I == 1  # rows of W_xh.T read in the time loop, no projection
    xp = np.empty((0, 0, 0) if direct else (B, T, G), dt)
    nch = chunks(B, MIN_CHUNK_ROWS)
    W_in = np.ascontiguousarray(W_xh.T) if direct else W_xh
    args = (x3, oh, sc, W_in, W_hh, packed_weight(W_hh, True, B, nch), bsum, b_hn, h0, h, r,
            z, n, hn, xp)
    if nch > 1:
        _FWD[dt.itemsize, True](*args, nch)
    else:
        _FWD[dt.itemsize, False](*args)
    return {"h": h, "c": None, "gates": {"r": r, "z": z, "n": n},
            "cache": {"h0": h0, "hn": hn, "x3": x3, "onehot": oh, "scale": sc}}


forward.accepts_token_ids = True
forward.accepts_row_scale = True


def backward(p, x, out, dh_out, params=True, hot_only=False):
    """Full BPTT from dh_out (B,T,H) = dL/dh_t from outside the recurrence.

    Returns W_xh, W_hh, b_xh, b_hh, "x" (B,T,I), "h" (B,T,H) total dL/dh_t, "h0" (B,H);
    params=False skips the parameter gradients (the same compiled kernel, given empty
    gradient buffers) and returns only "x", "h" and "h0", with the same values.
    hot_only (token ids or one-hot rows): "x" is (B,T), dL/dx at each row's hot position
    only (dot products instead of the (B,T,I) product).
    """
    W_xh, W_hh, _, _ = _weights(p)
    dt = W_hh.dtype
    G, I = W_xh.shape
    H = G // 3
    h = out["h"]
    g = out["gates"]
    cache = out["cache"]
    if "onehot" in cache:
        x3, oh = cache["x3"], cache["onehot"]
    else:
        x3, oh = prepare_input(x, dt, I)
    sc = cache.get("scale", np.empty(0, dt))
    W_in = dx_weights(W_xh, hot_only, oh)  # non-empty: dL/dx in the time loop
    B, T = h.shape[:2]
    Td = 1 if W_in.size and not params else T  # then (B, 1, .) step buffers
    dh_out = np.ascontiguousarray(dh_out, dtype=dt)
    nch = chunks(B, MIN_CHUNK_ROWS)
    dht = np.empty((B, T, H), dt)
    dhh = np.empty((B, Td, G), dt)
    dan = np.empty((B, Td, H), dt)
    dx = np.empty((B, T, 1 if W_in.size else I), dt)
    dh0 = np.empty((B, H), dt)
    if params:  # per-chunk gradients
        gW_xh = np.empty((nch, 0, 0) if oh.size else (nch, G, I), dt)
        gWxT = np.empty((nch, I, G) if oh.size else (nch, 0, 0), dt)
        gW_hh = np.empty((nch, G, H), dt)
        gb_xh = np.empty((nch, G), dt)
        gb_hh = np.empty((nch, G), dt)
    else:  # empty buffers: the kernel skips every parameter gradient
        gW_xh, gWxT, gW_hh = (np.empty((nch, 0, 0), dt) for _ in range(3))
        gb_xh, gb_hh = np.empty((nch, 0), dt), np.empty((nch, 0), dt)
    W_hh_P = packed_weight(W_hh, False, B, nch)
    _BWD[dt.itemsize, nch > 1](x3, oh, sc, W_xh, W_in, W_hh, W_hh_P,
                                cache["h0"], h, g["r"], g["z"], g["n"], cache["hn"], dh_out,
                                dht, dhh, dan, dx, gW_xh, gWxT, gW_hh, gb_xh, gb_hh, dh0)
    if hot_only:
        dx = dx.reshape(B, T)
    if not params:
        return {"x": dx, "h": dht, "h0": dh0}
    dW_xh = np.ascontiguousarray(gWxT[0].T) if oh.size else gW_xh[0]
    return {"W_xh": dW_xh, "W_hh": gW_hh[0], "b_xh": gb_xh[0], "b_hh": gb_hh[0],
            "x": dx, "h": dht, "h0": dh0}
