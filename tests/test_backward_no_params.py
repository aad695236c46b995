"""Model.backward(params=False): the input and state gradients of the full pass, exactly.

float64, every cell and backend, dense floats, one-hot floats (the gated cells' row
lookup) and token ids, serial and per-thread chunks; and the per-row losses that the
attributions use, against the model's own loss.
"""

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.engine import attribution as A
from rnnviewer.engine.kernels import head

CELLS = ("rnn", "gru", "lstm")
B, T, I, H, O = 5, 4, 5, 4, 3  # I >= 4: the gated cells look one-hot rows up


def force_parallel(monkeypatch, cell):
    """Make the numba kernels split even this small batch into per-thread chunks."""
    import importlib

    for module in (cell, "head"):
        mod = importlib.import_module(f"rnnviewer.engine.kernels.{module}")
        for name in ("PARALLEL_MIN_ROWS", "MIN_CHUNK_ROWS"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, 1)


def inputs(kind, rng):
    ids = rng.integers(0, I, (B, T))
    if kind == "ids":
        return ids
    if kind == "onehot":
        return np.eye(I)[ids]
    return rng.normal(size=(B, T, I))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend,parallel", [("numba", False), ("numba", True),
                                              ("numpy", False)])
@pytest.mark.parametrize("kind", ["dense", "onehot", "ids"])
def test_dx_without_params_equals_full_backward(cell, backend, kind, parallel, monkeypatch):
    if parallel:
        force_parallel(monkeypatch, cell)
    rng = np.random.default_rng(0)
    m = Model(cell, n_in=I, n_hidden=H, n_out=O, seed=1, dtype="float64", backend=backend)
    for k in m.params:
        m.params[k] *= 2.0
    x = inputs(kind, rng)
    h0 = rng.normal(size=(B, H))
    tr = m.forward(x, h0=(h0, h0[::-1].copy()) if cell == "lstm" else h0)
    if backend == "numba" and cell != "rnn":       # one-hot floats and ids: the row lookup
        assert (tr._out["cache"]["onehot"].size > 0) == (kind != "dense")
    dy, dh = rng.normal(size=(B, T, O)), rng.normal(size=(B, T, H))
    dy_copy, dh_copy = dy.copy(), dh.copy()
    state = {"x", "h", "h0"} | ({"c0"} if cell == "lstm" else set())
    for seeds in ({"dy": dy}, {"dh": dh}, {"dy": dy, "dh": dh}):
        full = m.backward(tr, **seeds)
        part = m.backward(tr, **seeds, params=False)
        assert set(full) == state | set(m.params)
        assert set(part) == state, seeds
        for k in state:
            assert part[k].dtype == np.float64 and part[k].shape == full[k].shape, k
            assert np.array_equal(part[k], full[k]), (k, seeds)
        assert np.abs(part["x"]).max() > 1e-3
    assert np.array_equal(dy, dy_copy) and np.array_equal(dh, dh_copy)  # seeds only read


def test_readout_backward_without_params():
    rng = np.random.default_rng(1)
    h, dy = rng.normal(size=(B, T, H)), rng.normal(size=(B, T, O))
    W, extra = rng.normal(size=(O, H)), rng.normal(size=(B, T, H))
    gW, gb, dh = head.readout_backward(h, dy, W, extra)
    none_W, none_b, dh2 = head.readout_backward(h, dy, W, extra, params=False)
    assert none_W is None and none_b is None
    assert np.array_equal(dh, dh2)
    np.testing.assert_allclose(dh, dy @ W + extra, rtol=1e-13)
    np.testing.assert_allclose(gW, dy.reshape(-1, O).T @ h.reshape(-1, H), rtol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_row_losses_equal_the_model_loss_of_each_row(loss):
    """numba and numpy per-row losses: each row's value is model.loss of that row alone
    (fractional mask weights included) and dy its gradient."""
    rng = np.random.default_rng(2)
    m = Model("gru", n_in=I, n_hidden=H, n_out=O, seed=0, dtype="float64")
    h = rng.normal(size=(B, T, H))
    y = h @ m.params["W_hy"].T + m.params["b_y"]
    target = rng.normal(size=(B, T, O)) if loss == "mse" else rng.integers(0, O, (B, T))
    w = rng.uniform(0.0, 2.0, (B, T))
    w[0] = 0.0                                   # a row with nothing to count: denominator 1
    count = w.sum(1)
    ref_v = np.array([m.loss(y[b:b + 1], target[b:b + 1], loss, w[b:b + 1])[0]
                      for b in range(B)])
    ref_dy = np.concatenate([m.loss(y[b:b + 1], target[b:b + 1], loss, w[b:b + 1])[1]
                             for b in range(B)])
    v1, y1, dy1 = head.row_losses(h, m.params["W_hy"], m.params["b_y"], loss, target, w, count)
    v2, dy2 = A._row_losses(h, m.params["W_hy"], m.params["b_y"], loss, target, w, count)
    np.testing.assert_allclose(y1, y, rtol=1e-13, atol=1e-14)
    for v, d in ((v1, dy1), (v2, dy2)):
        np.testing.assert_allclose(v, ref_v, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(d, ref_dy, rtol=1e-10, atol=1e-15)
    assert v1[0] == 0.0 and np.all(dy1[0] == 0.0)


@pytest.mark.parametrize("cell", CELLS)
def test_attributions_agree_across_backends(cell):
    """The numba path (per-row loss kernel, no readout in the forward pass) and the numpy
    path give the same attributions, including a fractional mask."""
    rng = np.random.default_rng(3)
    ms = [Model(cell, n_in=I, n_hidden=H, n_out=O, seed=2, dtype="float64", backend=b)
          for b in ("numba", "numpy")]
    x = rng.normal(size=(2, T, I))
    target = rng.integers(0, O, (2, T))
    mask = rng.uniform(0.2, 1.0, (2, T))
    runs = [(A.saliency(m, x, -1, 1),
             A.saliency(m, x, 1, "loss", target=target, loss="xent", mask=mask),
             *A.integrated_gradients(m, x, None, "loss", steps=8, target=target, loss="xent",
                                     mask=mask))
            for m in ms]
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_gradient_norm_through_time_equals_loss_and_grads(cell, backend, loss):
    """The norms come from dL/dh_t without parameter gradients: the same as
    loss_and_grads' grads["h"], for token ids and a fractional mask too."""
    rng = np.random.default_rng(4)
    m = Model(cell, n_in=I, n_hidden=H, n_out=O, seed=3, dtype="float64", backend=backend)
    ids = rng.integers(0, I, (B, T))
    target = rng.normal(size=(B, T, O)) if loss == "mse" else rng.integers(0, O, (B, T))
    mask = rng.uniform(0.0, 1.0, (B, T))
    for x in (ids, np.eye(I)[ids], rng.normal(size=(B, T, I))):
        ref = m.loss_and_grads(x, target, loss, mask=mask)[1]["h"]
        got = A.gradient_norm_through_time(m, x, target, loss, mask=mask)
        np.testing.assert_allclose(got, np.linalg.norm(ref, axis=2), rtol=1e-12)
        assert got.min() > 0
