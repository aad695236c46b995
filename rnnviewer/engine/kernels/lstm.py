"""LSTM numba kernels: forward and full BPTT with the meanings of `numpy_cells.lstm_*`.

    [i, f, g, o] = [sig, sig, tanh, sig](W_xh x + b_xh + W_hh h + b_hh)
    c' = f * c + i * g        h' = o * tanh(c')

x is (B, T, I) floats or (B, T) integer token ids. Only the recurrent product stays in
the time loop; the input projection (a row lookup for one-hot inputs and token ids),
every weight gradient and dL/dx are one BLAS call each per batch chunk. Large batches
run one chunk per numba thread (one fork/join per pass, per-chunk gradient buffers);
float32 uses a rational tanh with fastmath, float64 is exact.
"""

import numpy as np
from numba import njit, prange

from rnnviewer.engine.kernels._gated_common import (
    JIT_F32, JIT_F32_PAR, JIT_F64, JIT_F64_PAR, chunks, gemm, matmul_rows,
    jit_variants, matmul_rows_t, prepare_input, sigmoid, sum_chunks, tanh, transpose)

MIN_CHUNK_ROWS = 4  # batch rows per thread below which the serial kernel runs


# ------------------------------------------------------------------ row-range bodies
# Plain functions jitted once per dtype below (jit_variants); b0..b1 is a batch chunk.
def _fwd_rows(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, hp, hcur, ccur,
              b0, b1):
    """Batch rows b0..b1. W_in is W_xh (4H,I), or W_xh.T (I,4H) when oh holds row ids.
    xp (B,T,4H) scratch; hp (Bc,4H), hcur, ccur (Bc,H) this chunk's."""
    B, T, H = h.shape
    G = 4 * H
    Bc = b1 - b0
    R0 = b0 * T
    if oh.size:  # one-hot rows / token ids: W_in is W_xh.T, xp rows are its rows
        xp2 = xp.reshape(B * T, G)
        for row in range(R0, R0 + Bc * T):
            wk = W_in[oh[row]]
            for q in range(G):
                xp2[row, q] = wk[q]
    else:
        I = x.shape[2]
        gemm(False, True, Bc * T, G, I, 1.0, x, R0 * I, I, W_in, 0, I, 0.0, xp, R0 * G, G)
    for bb in range(Bc):
        for j in range(H):
            hcur[bb, j] = h0[b0 + bb, j]
            ccur[bb, j] = c0[b0 + bb, j]
    hcur3 = hcur.reshape(Bc, 1, H)
    for t in range(T):
        matmul_rows_t(Bc, hcur3, 0, 0, W_hh, W_hh_T, hp)  # (Bc, G) = h_{t-1} @ W_hh.T
        for bb in range(Bc):
            b = b0 + bb
            xt = xp[b, t]
            hpb = hp[bb]
            hc = hcur[bb]
            cc = ccur[bb]
            for j in range(H):
                ij = sigmoid(xt[j] + hpb[j] + bsum[j])
                fj = sigmoid(xt[H + j] + hpb[H + j] + bsum[H + j])
                gj = tanh(xt[2 * H + j] + hpb[2 * H + j] + bsum[2 * H + j])
                oj = sigmoid(xt[3 * H + j] + hpb[3 * H + j] + bsum[3 * H + j])
                cj = fj * cc[j] + ij * gj
                hj = oj * tanh(cj)
                gi[b, t, j] = ij
                gf[b, t, j] = fj
                gg[b, t, j] = gj
                go[b, t, j] = oj
                c[b, t, j] = cj
                h[b, t, j] = hj
                cc[j] = cj
                hc[j] = hj


def _bwd_rows(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
              gW_xh, gWxT, gW_hh, gb, dh0, dc0, gacc, dcn, b0, b1):
    """BPTT for rows b0..b1. da (B,T,4H) holds dL/d(pre-activations) [di, df, dg, do].
    Gradients of this chunk go to gW_xh (4H,I) (gWxT (I,4H) for one-hot input), gW_hh,
    gb (4H) (the same for b_xh and b_hh), all overwritten; an empty gW_hh (size 0, a
    run-time flag) skips every parameter gradient."""
    B, T, H = h.shape
    G = 4 * H
    I = W_xh.shape[1]
    Bc = b1 - b0
    one = h.dtype.type(1.0)
    gacc[:] = 0.0
    dcn[:] = 0.0
    for t in range(T - 1, -1, -1):
        for bb in range(Bc):
            b = b0 + bb
            cprev = c[b, t - 1] if t > 0 else c0[b]
            gab = gacc[bb]
            dcb = dcn[bb]
            dab = da[b, t]
            for j in range(H):
                d = dh_out[b, t, j] + gab[j]
                dht[b, t, j] = d
                ij = gi[b, t, j]
                fj = gf[b, t, j]
                gj = gg[b, t, j]
                oj = go[b, t, j]
                tc = tanh(c[b, t, j])
                dc = dcb[j] + d * oj * (one - tc * tc)
                dab[j] = dc * gj * ij * (one - ij)
                dab[H + j] = dc * cprev[j] * fj * (one - fj)
                dab[2 * H + j] = dc * ij * (one - gj * gj)
                dab[3 * H + j] = d * tc * oj * (one - oj)
                dcb[j] = dc * fj
        matmul_rows(Bc, da, b0, t, W_hh, gacc)  # (Bc, H) = d(pre-act) @ W_hh
    for bb in range(Bc):
        for j in range(H):
            dh0[b0 + bb, j] = gacc[bb, j]
            dc0[b0 + bb, j] = dcn[bb, j]
    R0 = b0 * T
    rows = Bc * T
    if gW_hh.size:  # parameter gradients
        # dW_hh = sum_bt da[b,t] h[b,t-1]^T: the flat rows shifted by one pair every (b, t>0);
        # the rows with t=0 then get h0[b] - h[b-1,T-1] (built in gacc, now free)
        gemm(True, False, G, H, rows - 1, 1.0, da, (R0 + 1) * G, G, h, R0 * H, H, 0.0, gW_hh, 0, H)
        for bb in range(Bc):
            b = b0 + bb
            if bb > 0:
                for j in range(H):
                    gacc[bb, j] = h0[b, j] - h[b - 1, T - 1, j]
            else:
                for j in range(H):
                    gacc[bb, j] = h0[b, j]
        gemm(True, False, G, H, Bc, 1.0, da, R0 * G, T * G, gacc, 0, H, 1.0, gW_hh, 0, H)
        da2 = da.reshape(B * T, G)
        gb[:] = 0.0
        for row in range(R0, R0 + rows):
            for q in range(G):
                gb[q] += da2[row, q]
        if oh.size:  # one-hot rows: scatter-add into the transposed gradient
            gWxT[:] = 0.0
            for row in range(R0, R0 + rows):
                k = oh[row]
                for q in range(G):
                    gWxT[k, q] += da2[row, q]
        else:
            gemm(True, False, G, I, rows, 1.0, da, R0 * G, G, x, R0 * I, I, 0.0, gW_xh, 0, I)
    gemm(False, False, rows, I, G, 1.0, da, R0 * G, G, W_xh, 0, I, 0.0, dx, R0 * I, I)


_fwd_rows_f32, _fwd_rows_f64 = jit_variants(_fwd_rows)
_bwd_rows_f32, _bwd_rows_f64 = jit_variants(_bwd_rows)


# ------------------------------------------------------------------ jitted variants
# One driver per (dtype, serial/parallel), compiled on first use: serial drivers run one
# chunk, parallel ones one chunk per thread with per-chunk gradient buffers.
@njit(**JIT_F32)
def _fwd_f32(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    hp = np.empty((B, 4 * H), h.dtype)
    hcur = np.empty((B, H), h.dtype)
    ccur = np.empty((B, H), h.dtype)
    _fwd_rows_f32(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, hp, hcur,
                  ccur, start, B)


@njit(**JIT_F32_PAR)
def _fwd_f32_par(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, nch):
    B, H = h0.shape
    for k in prange(nch):
        b0 = k * B // nch
        b1 = (k + 1) * B // nch
        hp = np.empty((b1 - b0, 4 * H), h.dtype)
        hcur = np.empty((b1 - b0, H), h.dtype)
        ccur = np.empty((b1 - b0, H), h.dtype)
        _fwd_rows_f32(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, hp,
                      hcur, ccur, b0, b1)


@njit(**JIT_F32)
def _bwd_f32(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
             gW_xh, gWxT, gW_hh, gb, dh0, dc0):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    gacc = np.empty((B, H), h.dtype)
    dcn = np.empty((B, H), h.dtype)
    _bwd_rows_f32(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
              gW_xh[0], gWxT[0], gW_hh[0], gb[0], dh0, dc0, gacc, dcn, start, B)


@njit(**JIT_F32_PAR)
def _bwd_f32_par(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
                 gW_xh, gWxT, gW_hh, gb, dh0, dc0):
    B, H = h0.shape
    nch = gW_hh.shape[0]
    for k in prange(nch):
        b0 = k * B // nch
        b1 = (k + 1) * B // nch
        gacc = np.empty((b1 - b0, H), h.dtype)
        dcn = np.empty((b1 - b0, H), h.dtype)
        _bwd_rows_f32(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
                  gW_xh[k], gWxT[k], gW_hh[k], gb[k], dh0, dc0, gacc, dcn, b0, b1)
    sum_chunks(gW_xh)
    sum_chunks(gWxT)
    sum_chunks(gW_hh)
    sum_chunks(gb)


@njit(**JIT_F64)
def _fwd_f64(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    hp = np.empty((B, 4 * H), h.dtype)
    hcur = np.empty((B, H), h.dtype)
    ccur = np.empty((B, H), h.dtype)
    _fwd_rows_f64(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, hp, hcur,
                  ccur, start, B)


@njit(**JIT_F64_PAR)
def _fwd_f64_par(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, nch):
    B, H = h0.shape
    for k in prange(nch):
        b0 = k * B // nch
        b1 = (k + 1) * B // nch
        hp = np.empty((b1 - b0, 4 * H), h.dtype)
        hcur = np.empty((b1 - b0, H), h.dtype)
        ccur = np.empty((b1 - b0, H), h.dtype)
        _fwd_rows_f64(x, oh, W_in, W_hh, W_hh_T, bsum, h0, c0, h, c, gi, gf, gg, go, xp, hp,
                      hcur, ccur, b0, b1)


@njit(**JIT_F64)
def _bwd_f64(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
             gW_xh, gWxT, gW_hh, gb, dh0, dc0):
    B, H = h0.shape
    start = B - B  # a run-time 0 (a literal would compile the body again)
    gacc = np.empty((B, H), h.dtype)
    dcn = np.empty((B, H), h.dtype)
    _bwd_rows_f64(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
              gW_xh[0], gWxT[0], gW_hh[0], gb[0], dh0, dc0, gacc, dcn, start, B)


@njit(**JIT_F64_PAR)
def _bwd_f64_par(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
                 gW_xh, gWxT, gW_hh, gb, dh0, dc0):
    B, H = h0.shape
    nch = gW_hh.shape[0]
    for k in prange(nch):
        b0 = k * B // nch
        b1 = (k + 1) * B // nch
        gacc = np.empty((b1 - b0, H), h.dtype)
        dcn = np.empty((b1 - b0, H), h.dtype)
        _bwd_rows_f64(x, oh, W_xh, W_hh, h0, c0, h, c, gi, gf, gg, go, dh_out, dht, da, dx,
                  gW_xh[k], gWxT[k], gW_hh[k], gb[k], dh0, dc0, gacc, dcn, b0, b1)
    sum_chunks(gW_xh)
    sum_chunks(gWxT)
    sum_chunks(gW_hh)
    sum_chunks(gb)


_FWD = {(4, False): _fwd_f32, (8, False): _fwd_f64, (4, True): _fwd_f32_par, (8, True): _fwd_f64_par}
_BWD = {(4, False): _bwd_f32, (8, False): _bwd_f64, (4, True): _bwd_f32_par, (8, True): _bwd_f64_par}


# ------------------------------------------------------------------ public wrappers
def _weights(p):
    dt = np.dtype(p["W_hh"].dtype)
    return [np.ascontiguousarray(p[k], dtype=dt) for k in ("W_xh", "W_hh", "b_xh", "b_hh")]


def forward(p, x, h0, c0):
    """x (B,T,I) or (B,T) ids, h0, c0 (B,H) -> dict(h, c (B,T,H), gates {i,f,g,o}, cache)."""
    W_xh, W_hh, b_xh, b_hh = _weights(p)
    dt = W_hh.dtype
    G, I = W_xh.shape
    H = G // 4
    x3, oh = prepare_input(x, dt, I)
    B, T = np.shape(x)[:2]
    h0 = np.ascontiguousarray(h0, dtype=dt)
    c0 = np.ascontiguousarray(c0, dtype=dt)
    h, c, gi, gf, gg, go = (np.empty((B, T, H), dt) for _ in range(6))
    xp = np.empty((B, T, G), dt)
    nch = chunks(B, MIN_CHUNK_ROWS)
    W_in = np.ascontiguousarray(W_xh.T) if oh.size else W_xh  # one-hot: rows to look up
    args = (x3, oh, W_in, W_hh, transpose(W_hh), b_xh + b_hh, h0, c0, h, c, gi, gf, gg, go,
            xp)
    if nch > 1:
        _FWD[dt.itemsize, True](*args, nch)
    else:
        _FWD[dt.itemsize, False](*args)
    return {"h": h, "c": c, "gates": {"i": gi, "f": gf, "g": gg, "o": go},
            "cache": {"h0": h0, "c0": c0, "x3": x3, "onehot": oh}}


forward.accepts_token_ids = True


def backward(p, x, out, dh_out, params=True):
    """Full BPTT from dh_out (B,T,H) = dL/dh_t from outside the recurrence.

    Returns W_xh, W_hh, b_xh, b_hh, "x" (B,T,I), "h" (B,T,H) total dL/dh_t, "h0", "c0" (B,H);
    params=False skips the parameter gradients (the same compiled kernel, given empty
    gradient buffers) and returns only "x", "h", "h0" and "c0", with the same values.
    """
    W_xh, W_hh, _, _ = _weights(p)
    dt = W_hh.dtype
    G, I = W_xh.shape
    H = G // 4
    g = out["gates"]
    cache = out["cache"]
    if "onehot" in cache:
        x3, oh = cache["x3"], cache["onehot"]
    else:
        x3, oh = prepare_input(x, dt, I)
    B, T = out["h"].shape[:2]
    dh_out = np.ascontiguousarray(dh_out, dtype=dt)
    nch = chunks(B, MIN_CHUNK_ROWS)
    dht = np.empty((B, T, H), dt)
    da = np.empty((B, T, G), dt)
    dx = np.empty((B, T, I), dt)
    dh0 = np.empty((B, H), dt)
    dc0 = np.empty((B, H), dt)
    if params:  # per-chunk gradients
        gW_xh = np.empty((nch, 0, 0) if oh.size else (nch, G, I), dt)
        gWxT = np.empty((nch, I, G) if oh.size else (nch, 0, 0), dt)
        gW_hh = np.empty((nch, G, H), dt)
        gb = np.empty((nch, G), dt)
    else:  # empty buffers: the kernel skips every parameter gradient
        gW_xh, gWxT, gW_hh = (np.empty((nch, 0, 0), dt) for _ in range(3))
        gb = np.empty((nch, 0), dt)
    _BWD[dt.itemsize, nch > 1](x3, oh, W_xh, W_hh, cache["h0"], cache["c0"], out["h"],
                                out["c"], g["i"], g["f"], g["g"], g["o"], dh_out, dht, da, dx,
                                gW_xh, gWxT, gW_hh, gb, dh0, dc0)
    if not params:
        return {"x": dx, "h": dht, "h0": dh0, "c0": dc0}
    dW_xh = np.ascontiguousarray(gWxT[0].T) if oh.size else gW_xh[0]
    return {"W_xh": dW_xh, "W_hh": gW_hh[0], "b_xh": gb[0], "b_hh": gb[0].copy(),
            "x": dx, "h": dht, "h0": dh0, "c0": dc0}
