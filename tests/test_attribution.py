"""Attributions against finite differences and their definitions, float64, all cells."""

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.engine import attribution as A
from rnnviewer.errors import ConfigError

CELLS = ("rnn", "gru", "lstm")
B, T, I, H, O = 2, 5, 3, 4, 3


def make(cell, n_out=O, scale=2.0, seed=0):
    """A float64 model with weights large enough to be well inside the nonlinearity."""
    m = Model(cell, n_in=I, n_hidden=H, n_out=n_out, seed=seed, dtype="float64")
    for k in m.params:
        m.params[k] *= scale
    return m


def data(seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, T, I))


def out_value(m, x, t, k, layer="output"):
    tr = m.forward(x)
    return (tr.y if layer == "output" else tr.h)[:, t, k]   # (B,)


def seq_loss(m, x, target, loss, mask, t):
    """Per-sequence loss from the model's own loss, one sequence at a time."""
    tr = m.forward(x)
    vals = []
    for b in range(x.shape[0]):
        if t is None:
            vals.append(m.loss(tr.y[b:b + 1], target[b:b + 1], loss, mask[b:b + 1])[0])
        else:
            t = t % x.shape[1]
            w = mask[b, t]
            one = m.loss(tr.y[b:b + 1, t:t + 1], target[b:b + 1, t:t + 1], loss)[0]
            vals.append(w * one)
    return np.array(vals)


def numeric_grad(f, x, eps=1e-6):
    """d f(x)[b] / d x[b] by central differences: (B, T, I)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[1:]):
        e = np.zeros_like(x)
        e[(slice(None),) + idx] = eps
        g[(slice(None),) + idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layer,t,k", [("output", -1, 2), ("output", 2, 0), ("hidden", -2, 3)])
def test_saliency_matches_finite_differences(cell, layer, t, k):
    m, x = make(cell), data()
    s = A.saliency(m, x, t, k, layer=layer)
    num = numeric_grad(lambda z: out_value(m, z, t, k, layer), x)
    assert s.shape == (B, T, I)
    np.testing.assert_allclose(s, num, atol=1e-8, rtol=1e-6)
    assert np.abs(s).max() > 1e-3
    assert np.all(s[:, t % T + 1:] == 0)          # causal: later inputs do not matter
    np.testing.assert_allclose(A.input_x_gradient(m, x, t, k, layer=layer), x * s)


def test_hidden_is_default_without_readout():
    m, x = make("gru", n_out=0), data()
    num = numeric_grad(lambda z: out_value(m, z, -1, 1, "hidden"), x)
    np.testing.assert_allclose(A.saliency(m, x, -1, 1), num, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,t", [("mse", None), ("xent", None), ("mse", 3), ("xent", -1)])
def test_loss_saliency_matches_finite_differences(cell, loss, t):
    m, x = make(cell), data()
    rng = np.random.default_rng(2)
    target = rng.normal(size=(B, T, O)) if loss == "mse" else rng.integers(0, O, (B, T))
    mask = np.ones((B, T))
    mask[0, 1] = mask[1, 3] = 0.0
    kw = dict(target=target, loss=loss, mask=mask)
    obj = A._Objective(m, x.shape, t, "loss", None, target, loss, mask)
    np.testing.assert_allclose(obj(m.forward(x), np.arange(B), seeds=False)[0],
                               seq_loss(m, x, target, loss, mask, t), rtol=1e-12)
    s = A.saliency(m, x, t, "loss", **kw)
    num = numeric_grad(lambda z: seq_loss(m, z, target, loss, mask, t), x)
    np.testing.assert_allclose(s, num, atol=1e-8, rtol=1e-6)
    assert np.abs(s).max() > 1e-4


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,t", [("mse", None), ("xent", None), ("mse", 2)])
def test_loss_saliency_with_fractional_mask_weights(cell, loss, t):
    """Mask weights act linearly, as in the model's loss (mse: w * (y - target)^2)."""
    m, x = make(cell), data()
    rng = np.random.default_rng(7)
    target = rng.normal(size=(B, T, O)) if loss == "mse" else rng.integers(0, O, (B, T))
    mask = rng.uniform(0.1, 1.5, (B, T))
    kw = dict(target=target, loss=loss, mask=mask)
    obj = A._Objective(m, x.shape, t, "loss", None, target, loss, mask)
    np.testing.assert_allclose(obj(m.forward(x), np.arange(B), seeds=False)[0],
                               seq_loss(m, x, target, loss, mask, t), rtol=1e-12)
    s = A.saliency(m, x, t, "loss", **kw)
    num = numeric_grad(lambda z: seq_loss(m, z, target, loss, mask, t), x)
    np.testing.assert_allclose(s, num, atol=1e-8, rtol=1e-6)


def _ig_reference(m, x, base, t, k, n=4000):
    """Midpoint rule with many points: the saliency at every point, averaged."""
    a = (np.arange(n) + 0.5) / n
    pts = base[None] + a[:, None, None, None] * (x - base)[None]      # (n, B, T, I)
    s = A.saliency(m, pts.reshape(-1, *x.shape[1:]), t, k).reshape(pts.shape)
    return s.mean(0) * (x - base)


@pytest.mark.parametrize("cell", CELLS)
def test_integrated_gradients_converges(cell):
    m, x = make(cell), data()
    base = np.full_like(x, 0.3)
    f_x, f_b = out_value(m, x, -1, 1), out_value(m, base, -1, 1)
    gap = np.abs(f_x - f_b)
    assert gap.min() > 1e-2
    deltas = []
    for steps in (4, 16, 64, 256):
        attr, delta = A.integrated_gradients(m, x, -1, 1, baseline=base, steps=steps,
                                             method="riemann_right")
        assert attr.shape == (B, T, I) and delta.shape == (B,)
        np.testing.assert_allclose(delta, attr.sum((1, 2)) - (f_x - f_b), atol=1e-12)
        deltas.append(np.abs(delta))
    deltas = np.array(deltas)
    assert np.all(np.diff(deltas, axis=0) < 0)                # shrinks as steps grow
    np.testing.assert_allclose(deltas[-1] / deltas[-2], 0.25, rtol=0.1)  # first order
    for method in ("gausslegendre", "riemann_middle", "riemann_trapezoid"):  # second order+
        _, delta = A.integrated_gradients(m, x, -1, 1, baseline=base, steps=256, method=method)
        assert np.all(np.abs(delta) < 0.01 * gap), method
    attr, delta = A.integrated_gradients(m, x, -1, 1, baseline=base)   # gausslegendre, 50
    assert np.all(np.abs(delta) < 1e-6 * gap)
    np.testing.assert_allclose(attr, _ig_reference(m, x, base, -1, 1), atol=1e-6)


def test_integrated_gradients_chunked_loss_and_default_baseline():
    m, x = make("lstm"), data()
    target = np.random.default_rng(3).integers(0, O, (B, T))
    kw = dict(target=target, loss="xent")
    a1, d1 = A.integrated_gradients(m, x, None, "loss", steps=20, **kw)
    a2, d2 = A.integrated_gradients(m, x, None, "loss", steps=20, batch_size=7, **kw)
    np.testing.assert_allclose(a1, a2, atol=1e-13)
    np.testing.assert_allclose(d1, d2, atol=1e-13)
    gap = seq_loss(m, x, target, "xent", np.ones((B, T)), None) - \
        seq_loss(m, np.zeros_like(x), target, "xent", np.ones((B, T)), None)
    np.testing.assert_allclose(a1.sum((1, 2)) - gap, d1, atol=1e-12)
    assert np.all(np.abs(d1) < 1e-6 * np.abs(gap))


def test_ig_weights_integrate_exactly():
    for method in A.IG_METHODS:
        a, w = A.ig_weights(10, method)
        assert a.shape == w.shape == (10,) and np.all((a >= 0) & (a <= 1))
        assert w.sum() == pytest.approx(1.0)
    a, w = A.ig_weights(5, "gausslegendre")
    assert np.dot(w, a ** 7) == pytest.approx(1 / 8)            # exact up to degree 2n-1
    with pytest.raises(ConfigError):
        A.ig_weights(5, "simpson")


@pytest.mark.parametrize("cell", CELLS)
def test_occlusion_equals_direct_difference(cell):
    m, x = make(cell), data()
    rng = np.random.default_rng(4)
    base = rng.normal(size=(T, I))
    for t in (-1, 2):
        occ = A.occlusion(m, x, t, 0, baseline=base)
        ref = np.zeros((B, T))
        for tau in range(T):
            xo = x.copy()
            xo[:, tau] = base[tau]
            ref[:, tau] = out_value(m, x, t, 0) - out_value(m, xo, t, 0)
        np.testing.assert_allclose(occ, ref, atol=1e-13)
        assert np.all(occ[:, t % T + 1:] == 0) and np.abs(occ).max() > 1e-3
        np.testing.assert_allclose(A.occlusion(m, x, t, 0, baseline=base, batch_size=3), occ,
                                   atol=1e-13)
    target = rng.normal(size=(B, T, O))
    mask = np.ones((B, T))
    occ = A.occlusion(m, x, None, "loss", target=target, loss="mse")
    for tau in (0, T - 1):
        xo = x.copy()
        xo[:, tau] = 0.0
        ref = (seq_loss(m, x, target, "mse", mask, None)
               - seq_loss(m, xo, target, "mse", mask, None))
        np.testing.assert_allclose(occ[:, tau], ref, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_norm_through_time_matches_finite_differences(cell):
    """dL/dh_t numerically: perturb h_t, recompute y_t and restart the network from it."""
    m, x = make(cell), data()
    target = np.random.default_rng(5).normal(size=(B, T, O))
    norms = A.gradient_norm_through_time(m, x, target, "mse")
    total = A.gradient_norm_through_time(m, x, target, "mse", per_sequence=False)
    assert norms.shape == (B, T) and total.shape == (T,)
    np.testing.assert_allclose(total, np.sqrt((norms ** 2).sum(0)))
    tr = m.forward(x)
    W, bias = m.params["W_hy"], m.params["b_y"]

    def loss_from(t, h_t):
        y = tr.y.copy()
        y[:, t] = h_t @ W.T + bias
        if t + 1 < T:
            h0 = (h_t, tr.c[:, t]) if cell == "lstm" else h_t
            y[:, t + 1:] = m.forward(x[:, t + 1:], h0=h0).y
        return m.loss(y, target, "mse")[0]

    eps = 1e-6
    for t in (0, 2, T - 1):
        g = np.zeros((B, H))
        for b, j in np.ndindex(B, H):
            e = np.zeros((B, H))
            e[b, j] = eps
            g[b, j] = (loss_from(t, tr.h[:, t] + e) - loss_from(t, tr.h[:, t] - e)) / (2 * eps)
        np.testing.assert_allclose(norms[:, t], np.linalg.norm(g, axis=1), rtol=1e-6)


def test_h0_is_used_for_every_row():
    m, x = make("lstm"), data()
    rng = np.random.default_rng(6)
    h0 = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    s = A.saliency(m, x, -1, 0, h0=h0)
    num = numeric_grad(lambda z: m.forward(z, h0=h0).y[:, -1, 0], x)
    np.testing.assert_allclose(s, num, atol=1e-8, rtol=1e-6)
    _, delta = A.integrated_gradients(m, x, -1, 0, h0=h0)
    assert np.all(np.abs(delta) < 1e-6)


def test_bad_requests_raise_config_errors():
    m, x = make("rnn"), data()
    for call in (lambda: A.saliency(m, x, T, 0),
                 lambda: A.saliency(m, x, 0, O),
                 lambda: A.saliency(m, x, None, 0),
                 lambda: A.saliency(m, x, 0, "lost"),
                 lambda: A.saliency(m, x, 0, "loss", loss="mse"),
                 lambda: A.saliency(m, x, 0, "loss", target=np.zeros((B, T)), loss="mse"),
                 lambda: A.saliency(m, x[0], 0, 0),
                 lambda: A.occlusion(m, x, 0, 0, baseline=np.zeros(I + 1)),
                 lambda: A.saliency(make("rnn", n_out=0), x, 0, 0, layer="output")):
        with pytest.raises(ConfigError):
            call()
