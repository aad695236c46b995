"""GRU/LSTM kernel paths used by integrated gradients and the packed recurrent products:
scaled token ids, hot-position and 1-feature input gradients in the time loop, step
buffers without parameter gradients, packed panels with every remainder width."""

import numpy as np
import pytest

from rnnviewer.engine.kernels import gru, lstm, numpy_cells
from rnnviewer.engine.kernels._gated_wrap import packed_weight
from rnnviewer.engine.kernels.packed import panel_width
from rnnviewer.errors import ConfigError

KERNELS = {"gru": gru, "lstm": lstm}
GATES = {"gru": 3, "lstm": 4}


def make(cell, B, T, I, H, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell] * H
    p = {"W_xh": rng.normal(0, .5, (G, I)), "W_hh": rng.normal(0, .5, (G, H)),
         "b_xh": rng.normal(0, .5, G), "b_hh": rng.normal(0, .5, G)}
    p = {k: v.astype(dtype) for k, v in p.items()}
    h0 = rng.normal(0, .5, (B, H)).astype(dtype)
    c0 = rng.normal(0, .5, (B, H)).astype(dtype) if cell == "lstm" else None
    dh = rng.normal(size=(B, T, H)).astype(dtype)
    return rng, p, h0, c0, dh


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("B", [1, 2, 5, 12])   # dot products, packed serial, parallel
def test_scaled_token_ids_match_dense_scaled_onehot(cell, B):
    T, I, H = 5, 6, 13
    rng, p, h0, c0, dh = make(cell, B, T, I, H, seed=B)
    k = KERNELS[cell]
    ids = rng.integers(0, I, (B, T))
    sc = rng.uniform(-1, 2, B)
    xd = np.eye(I)[ids] * sc[:, None, None]            # (B, T, I), not one-hot
    fwd, bwd = numpy_cells.CELLS[cell][:2]
    want = fwd(p, xd, h0, c0)
    g_want = bwd(p, xd, want, dh)
    assert k.forward.accepts_row_scale
    out = k.forward(p, ids, h0, c0, scale=sc)
    assert rel(out["h"], want["h"]) < 1e-12
    g = k.backward(p, ids, out, dh)                   # parameter gradients scale too
    for name in g_want:
        assert rel(g[name], g_want[name]) < 1e-10, name
    hot = np.take_along_axis(g_want["x"], ids[..., None], -1)[..., 0]   # (B, T)
    for params in (False, True):
        g = k.backward(p, ids, out, dh, params=params, hot_only=True)
        assert g["x"].shape == (B, T)
        assert rel(g["x"], hot) < 1e-12
        for name in ("h", "h0") + (("c0",) if cell == "lstm" else ()):
            assert rel(g[name], g_want[name]) < 1e-10, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("B", [1, 4, 11])
def test_one_feature_input_gradient_in_the_time_loop(cell, B):
    T, I, H = 6, 1, 7
    rng, p, h0, c0, dh = make(cell, B, T, I, H, seed=10 + B)
    x = rng.normal(size=(B, T, I))
    k = KERNELS[cell]
    fwd, bwd = numpy_cells.CELLS[cell][:2]
    want = fwd(p, x, h0, c0)
    g_want = bwd(p, x, want, dh)
    out = k.forward(p, x, h0, c0)
    assert rel(out["h"], want["h"]) < 1e-12
    for params in (True, False):                      # False: step buffers
        g = k.backward(p, x, out, dh, params=params)
        assert set(g) >= {"x", "h", "h0"}
        for name in g:
            assert rel(g[name], g_want[name]) < 1e-10, (name, params)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("H", [1, 5, 13, 20, 30])  # every panel width and remainder
def test_packed_products_match_numpy(cell, dtype, tol, H):
    B, T, I = 7, 4, 3                                  # 7 rows: packed, 1 or 2 chunks
    rng, p, h0, c0, dh = make(cell, B, T, I, H, dtype=dtype, seed=H)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    k = KERNELS[cell]
    p64 = {n: v.astype(np.float64) for n, v in p.items()}
    f64 = (lambda a: None if a is None else a.astype(np.float64))
    fwd, bwd = numpy_cells.CELLS[cell][:2]
    want = fwd(p64, f64(x), f64(h0), f64(c0))
    g_want = bwd(p64, f64(x), want, f64(dh))
    out = k.forward(p, x, h0, c0)
    assert rel(out["h"], want["h"]) < tol
    g = k.backward(p, x, out, dh)
    for name in g_want:
        assert rel(g[name], g_want[name]) < tol * 10, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(36, 9), (9, 36), (40, 13), (13, 40), (3, 1), (60, 20)])
def test_packed_weight_layout(dtype, shape):
    w = np.random.default_rng(0).normal(size=shape).astype(dtype)
    assert packed_weight(w, True, 2, 1).size == 0      # chunks of <= 2 rows: not packed
    for trans in (True, False):
        b = w.T if trans else w
        K, N = b.shape
        L = 32 // w.itemsize
        want = np.empty(K * N, dtype)
        j = 0
        while j < N:   # element (k, l) of the panel at column j: K * j + k * width + l
            wd = panel_width.py_func(j, N, L)
            want[K * j:K * (j + wd)] = b[:, j:j + wd].ravel()
            j += wd
        assert np.array_equal(packed_weight(w, trans, 3, 1), want)


def test_scale_and_hot_only_refusals():
    rng, p, h0, c0, dh = make("gru", 2, 3, 4, 5)
    x = rng.normal(size=(2, 3, 4))
    with pytest.raises(ConfigError, match="token ids"):
        gru.forward(p, x, h0, scale=np.ones(2))
    with pytest.raises(ConfigError, match="shape"):
        gru.forward(p, np.zeros((2, 3), np.int64), h0, scale=np.ones(3))
    out = gru.forward(p, x, h0)
    with pytest.raises(ConfigError, match="hot_only"):
        gru.backward(p, x, out, dh, hot_only=True)
