"""The RNN's packed-panel recurrent products (`kernels/packed.py`, used from H = 128).

`mm_packed` against numpy for every panel width and row remainder (float32 and float64);
then the RNN kernels with the packed path forced on small shapes (PACKED_MIN_H and
PACKED_MIN_ROWS patched to 1) against the naive reference, finite differences (float64),
the numpy backend (float32), serial and per-thread chunks, and backward(params=False);
and the real thresholds at H = 128 against the naive reference.
"""

import numpy as np
import pytest
from numba import njit

import naive
from rnnviewer.engine import Model
from rnnviewer.engine.kernels import rnn
from rnnviewer.engine.kernels.packed import mm_packed, pack, panel_width
from test_model import (LOSSES, PARAM_KEYS, assert_close, check_finite_differences,
                        force_parallel, make_model, problem, rel_err)


@pytest.fixture
def packed_everywhere(monkeypatch):
    """Take the packed path for any H and any number of rows."""
    monkeypatch.setattr(rnn, "PACKED_MIN_H", 1)
    monkeypatch.setattr(rnn, "PACKED_MIN_ROWS", 1)


@njit
def _mm(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta):
    mm_packed(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mm_packed_matches_numpy(dtype):
    """Every panel width (3L, 2L, L, < L columns), 1-9 rows, strided A and C, beta 0/1."""
    rng = np.random.default_rng(0)
    L = 32 // np.dtype(dtype).itemsize
    for N in (1, L - 1, L, L + 3, 2 * L, 3 * L, 3 * L + 2 * L + L + 5, 7 * L):
        for K in (1, 5, 2 * L + 1):
            w = rng.normal(size=(N, K)).astype(dtype)  # B = w.T
            bp = np.full(K * N, np.nan, dtype)
            pack(w, True, bp)
            bp2 = np.full(K * N, np.nan, dtype)
            pack(np.ascontiguousarray(w.T), False, bp2)
            assert np.array_equal(bp, bp2)
            for m in range(1, 10):
                lda, ldc = K + 3, N + 2
                a = rng.normal(size=(m + 1) * lda).astype(dtype)
                c0 = rng.normal(size=(m + 1) * ldc).astype(dtype)
                A = a[lda:lda + m * lda].reshape(m, lda)[:, :K].astype(np.float64)
                C = c0[ldc:ldc + m * ldc].reshape(m, ldc)[:, :N].astype(np.float64)
                ref = A @ w.T.astype(np.float64)
                tol = 1e-4 if dtype == np.float32 else 1e-12
                for beta in (0.0, 1.0):
                    c = c0.copy()
                    _mm(m, a, lda, lda, bp, K, N, c, ldc, ldc, beta)
                    got = c[ldc:ldc + m * ldc].reshape(m, ldc)
                    assert np.allclose(got[:, :N], ref + beta * C, rtol=tol, atol=tol * K), \
                        (N, K, m, beta)
                    assert np.array_equal(got[:, N:], c0[ldc:ldc + m * ldc].reshape(m, ldc)[:, N:])
                    assert np.array_equal(c[:ldc], c0[:ldc])  # rows around C untouched
                    assert np.array_equal(c[ldc + m * ldc:], c0[ldc + m * ldc:])


def test_panel_widths_cover_every_column():
    for L in (4, 8):
        for N in range(0, 60):
            j, widths = 0, []
            while j < N:
                widths.append(panel_width(j, N, L))
                j += widths[-1]
            assert j == N and all(w in (3 * L, 2 * L, L) for w in widths[:-1])
            assert widths == sorted(widths, reverse=True)


def test_rec_weights_chooses_by_size():
    small = np.ones((rnn.PACKED_MIN_H - 1,) * 2)
    big = np.arange(rnn.PACKED_MIN_H ** 2, dtype=np.float64).reshape((rnn.PACKED_MIN_H,) * 2)
    W_T, P = rnn.rec_weights(small, 8)
    assert W_T.shape == small.shape and P.size == 0
    W_T, P = rnn.rec_weights(big, rnn.PACKED_MIN_ROWS - 1)
    assert W_T.shape == big.shape and P.size == 0
    W_T, P = rnn.rec_weights(big, rnn.PACKED_MIN_ROWS)
    assert W_T.size == 0 and P.size == 2 * big.size
    assert sorted(P[:big.size]) == sorted(big.ravel()) == sorted(P[big.size:])


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("H", [5, 13, 30])
def test_packed_rnn_matches_naive(packed_everywhere, monkeypatch, parallel, H):
    """Both losses, masked, and Model.backward(dy, dh), float64 (panel widths 12, 8, 4
    and the columns left over; chunks of 2-3 rows when parallel)."""
    if parallel:
        force_parallel(monkeypatch, "rnn")
    B, T, I, O = 5, 4, 3, 2
    m = make_model("rnn", "numba", I, H, O)
    for loss in LOSSES:
        x, target, mask, h0arg, h0, c0 = problem("rnn", B, T, I, H, O, loss, True)
        value, grads = m.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        ref_value, ref, fwd = naive.loss_and_grads("rnn", m.params, x, target, loss, h0, c0,
                                                   mask)
        assert abs(value - ref_value) <= 1e-10 * max(1.0, abs(ref_value))
        for k in ref:
            assert_close(grads[k], ref[k], what=k)
        tr = m.forward(x, h0=h0arg)
        assert_close(tr.h, fwd["h"], what="h")
        dy = naive.loss_grad(fwd["y"], target, loss, mask)
        dh = np.random.default_rng(2).normal(size=(B, T, H))
        g = m.backward(tr, dy=dy, dh=dh)
        ref = naive.backward("rnn", m.params, x, h0, c0, fwd, dy=dy, dh_extra=dh)
        for k in ref:
            assert_close(g[k], ref[k], what=k)
        part = m.backward(tr, dy=dy, dh=dh, params=False)
        for k in part:
            assert np.array_equal(part[k], g[k]), k


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 2), (3, 4, 2, 5, 2)],
                         ids=lambda s: "B{}T{}I{}H{}O{}".format(*s))
def test_packed_rnn_gradients_match_finite_differences(packed_everywhere, loss, shape):
    check_finite_differences("rnn", "numba", loss, True, *shape)


@pytest.mark.parametrize("ids", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_packed_float32_matches_numpy_backend(packed_everywhere, monkeypatch, ids, parallel):
    """float32 kernels (tiles of 24 columns, fastmath) against the numpy backend."""
    if parallel:
        force_parallel(monkeypatch, "rnn")
    B, T, I, H, O = 6, 5, 5, 37, 4
    fast = make_model("rnn", "numba", I, H, O, scale=1.0, dtype="float32")
    slow = Model("rnn", I, H, O, dtype="float32", backend="numpy",
                 params={k: v.copy() for k, v in fast.params.items()})
    for loss in LOSSES:
        x, target, mask, h0arg, _, _ = problem("rnn", B, T, I, H, O, loss, True, ids=ids)
        v1, g1 = fast.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        v2, g2 = slow.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        assert v1 == pytest.approx(v2, rel=1e-5)
        for k in g2:
            assert g1[k].dtype == np.float32, k
            assert rel_err(g1[k], g2[k]) < 1e-4, (loss, k, rel_err(g1[k], g2[k]))


@pytest.mark.parametrize("parallel", [False, True])
def test_default_thresholds_at_h128_match_naive(monkeypatch, parallel):
    """The real switch (H = 128, no patching) takes the packed path and stays exact."""
    if parallel:
        force_parallel(monkeypatch, "rnn")
    B, T, I, H, O = 4, 3, 3, rnn.PACKED_MIN_H, 2
    assert rnn.rec_weights(np.zeros((H, H)), 2)[1].size
    m = make_model("rnn", "numba", I, H, O, scale=1.0)
    x, target, mask, h0arg, h0, c0 = problem("rnn", B, T, I, H, O, "xent", True)
    value, grads = m.loss_and_grads(x, target, "xent", h0=h0arg, mask=mask)
    ref_value, ref, _ = naive.loss_and_grads("rnn", m.params, x, target, "xent", h0, c0, mask)
    assert abs(value - ref_value) <= 1e-10 * max(1.0, abs(ref_value))
    for k in set(PARAM_KEYS) | {"x", "h", "h0"}:
        assert_close(grads[k], ref[k], what=k)
