"""Integrated gradients' token path (one-hot x, zero baseline) against the dense path and
the numpy backend, float64, all cells; other inputs fall back to the dense path."""

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.engine import attribution as A

CELLS = ("rnn", "gru", "lstm")
B, T, I, H, O = 3, 7, 6, 9, 4   # (S + 2) * B rows: parallel chunks of more than 2 rows


def make(cell, backend="numba", seed=0):
    m = Model(cell, n_in=I, n_hidden=H, n_out=O, seed=seed, dtype="float64", backend=backend)
    for k in m.params:
        m.params[k] *= 2.0   # well inside the nonlinearity
    return m


def twin(m):
    """The same model on the plain-numpy backend (an independent implementation)."""
    return Model(**m.config, backend="numpy", params=m.params)


def onehot(seed=1):
    return np.eye(I)[np.random.default_rng(seed).integers(0, I, (B, T))]


def dense(monkeypatch, fn, *args, **kw):
    """fn with the token path switched off."""
    with monkeypatch.context() as mp:
        mp.setattr(A, "_token_ids", lambda *a: None)
        return fn(*args, **kw)


def close(got, want, tol=1e-10):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=tol * max(1.0, np.abs(w).max()))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", ["output", "hidden", "loss", "h0_chunked"])
def test_token_path_equals_dense_path(cell, case, monkeypatch):
    m, x = make(cell), onehot()
    ids = A._token_ids(m, x, None, np.zeros_like(x))
    assert (ids is not None) == bool(getattr(m._fwd, "accepts_row_scale", False))
    if cell != "rnn":
        assert ids is not None and np.array_equal(ids, x.argmax(-1))
    rng = np.random.default_rng(2)
    kw = dict(steps=12)
    if case == "output":
        args = (-1, 2)
    elif case == "hidden":
        args, kw["layer"] = (3, 5), "hidden"   # t = 3: only the first 4 steps run
    elif case == "loss":
        args = (None, "loss")
        kw.update(target=rng.integers(0, O, (B, T)), loss="xent", mask=rng.uniform(size=(B, T)))
    else:
        h0 = rng.normal(size=(B, H))
        args = (-2, 1)
        kw.update(h0=(h0, -h0) if cell == "lstm" else h0, batch_size=8)
    got = A.integrated_gradients(m, x, *args, **kw)
    want = dense(monkeypatch, A.integrated_gradients, m, x, *args, **kw)
    close(got, want)
    close(got, A.integrated_gradients(twin(m), x, *args, **kw))   # numpy cells
    attr = got[0]
    assert np.all(attr[x == 0] == 0)   # (x - 0) * gradient: nothing off the hot positions


@pytest.mark.parametrize("cell", CELLS)
def test_nonzero_baseline_and_non_onehot_x_fall_back(cell, monkeypatch):
    m, x = make(cell, seed=3), onehot(seed=4)
    calls = []
    real = A._token_ids
    monkeypatch.setattr(A, "_token_ids", lambda *a: calls.append(real(*a)) or calls[-1])
    base = np.full_like(x, 1.0 / I)                  # uniform: not the zero baseline
    got = A.integrated_gradients(m, x, -1, 0, baseline=base, steps=10)
    assert calls[-1] is None
    close(got, A.integrated_gradients(twin(m), x, -1, 0, baseline=base, steps=10))
    base0 = np.zeros((T, I))                         # an explicit zero baseline takes it
    got0 = A.integrated_gradients(m, x, -1, 0, baseline=base0, steps=10)
    assert (calls[-1] is not None) == (cell != "rnn")
    close(got0, A.integrated_gradients(twin(m), x, -1, 0, steps=10))
    x2 = x.copy()
    x2[1, 2] *= 0.5                                  # no longer one-hot
    got2 = A.integrated_gradients(m, x2, -1, 0, steps=10)
    assert calls[-1] is None
    close(got2, A.integrated_gradients(twin(m), x2, -1, 0, steps=10))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_token_path_float32_close_to_float64(cell):
    m64, x = make(cell, seed=5), onehot(seed=6)
    m32 = Model(**{**m64.config, "dtype": "float32"}, params=m64.params)
    a64, d64 = A.integrated_gradients(m64, x, -1, 1)
    a32, d32 = A.integrated_gradients(m32, x.astype(np.float32), -1, 1)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a64, atol=2e-5 * np.abs(a64).max())
    np.testing.assert_allclose(d32, d64, atol=1e-4)
