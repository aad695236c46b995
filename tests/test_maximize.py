"""Activation maximization on networks whose best input is known analytically."""

import numpy as np
import pytest
from scipy.optimize import brentq

from rnnviewer.engine import Model, maximize_activation
from rnnviewer.errors import ConfigError


def single_unit(w, a, n_out=0, cell="rnn"):
    """One tanh unit: h_t = tanh(w . x_t + a h_{t-1}), no biases (float64)."""
    w = np.asarray(w, dtype=float)
    m = Model(cell, n_in=len(w), n_hidden=1, n_out=n_out, seed=0, dtype="float64")
    m.params["W_xh"][:] = w[None, :]
    m.params["W_hh"][:] = a
    m.params["b_xh"][:] = m.params["b_hh"][:] = 0.0
    return m


def test_bounded_real_input_is_bang_bang():
    """With a < 0, maximizing h_T wants w.x_T = |w|_1 and the previous state as low as
    possible, so the optimum alternates between +sign(w) and -sign(w) at the bounds."""
    w = np.array([1.5, -2.0, 0.5])
    m = single_unit(w, -0.6)
    T = 6
    res = maximize_activation(m, 0, t=-1, length=T, l2=0.0, bounds=(-1.0, 1.0), seed=0)
    signs = np.array([(-1.0) ** (T - 1 - s) for s in range(T)])
    expect = signs[:, None] * np.sign(w)[None, :]
    np.testing.assert_allclose(res.x, expect, atol=1e-6)
    best = m.forward(expect[None]).h[0, :, 0]
    assert res.value == pytest.approx(best[-1], abs=1e-9)
    np.testing.assert_allclose(res.activation, best, atol=1e-6)
    assert res.x.shape == (T, 3) and res.activation.shape == (T,) and res.t == T - 1
    assert res.restart_values.shape == (8,)
    assert len(res.history) == 300 and res.history[-1] >= res.history[0]


@pytest.mark.parametrize("bounds", [(-5.0, 5.0), (2.0, 10.0), (-0.1, 0.1), (-3.0, 0.5)])
def test_any_bounds_are_reached(bounds):
    """W_hh = 0 and a weak unit: h_T = tanh(w . x_T) is largest at the corner of the box
    picked by sign(w), however wide the bounds or wherever they sit relative to 0."""
    w = np.array([0.1, -0.1])
    m = single_unit(w, 0.0)
    res = maximize_activation(m, 0, t=-1, length=3, l2=0.0, bounds=bounds, seed=0)
    corner = np.where(w > 0, bounds[1], bounds[0])
    np.testing.assert_allclose(res.x[-1], corner, rtol=1e-6, atol=1e-9)
    assert res.value == pytest.approx(np.tanh(w @ corner), abs=1e-9)
    assert np.all((res.x >= bounds[0]) & (res.x <= bounds[1]))


def test_restarts_start_apart_inside_any_bounds():
    """Bounds that exclude 0: the starts sit inside the box, not all on one corner."""
    m = single_unit([0.7, -0.4], 0.3)
    res = maximize_activation(m, 0, length=4, bounds=(2.0, 10.0), steps=0, restarts=6)
    assert len(np.unique(np.round(res.restart_values, 12))) == 6
    assert np.all((res.x > 2.0) & (res.x < 10.0))


def test_l2_regularised_optimum():
    """No bounds, W_hh = 0: only x_t matters, x_t = s w with 1 - tanh(s|w|^2)^2 = l2 s,
    and every other step shrinks to 0."""
    w = np.array([0.8, -0.4])
    m = single_unit(w, 0.0)
    l2 = 0.5
    res = maximize_activation(m, 0, t=2, length=4, l2=l2, bounds=None, steps=600,
                              restarts=4, seed=1)
    n2 = w @ w
    s = brentq(lambda s: 1 - np.tanh(s * n2) ** 2 - l2 * s, 0.0, 10.0)
    np.testing.assert_allclose(res.x[2], s * w, atol=1e-3)
    np.testing.assert_allclose(res.x[[0, 1, 3]], 0.0, atol=1e-3)
    assert res.value == pytest.approx(np.tanh(s * n2), abs=2e-4)


def test_onehot_finds_the_right_symbols():
    w = np.array([0.3, -1.2, 0.8, 2.0, -0.1])
    m = single_unit(w, -0.7)
    res = maximize_activation(m, 0, t=-1, length=4, onehot=True, vocab="abcde", seed=0)
    assert res.chars == "bdbd"                       # argmin, argmax, argmin, argmax
    np.testing.assert_array_equal(res.argmax, [1, 3, 1, 3])
    np.testing.assert_array_equal(res.x, np.eye(5)[[1, 3, 1, 3]])
    assert res.distribution.shape == (4, 5)
    np.testing.assert_allclose(res.distribution.sum(1), 1.0)
    assert np.all(res.distribution[np.arange(4), res.argmax] > 0.9)
    assert res.value == pytest.approx(m.forward(res.x[None]).h[0, -1, 0])


def test_output_unit_and_middle_timestep():
    """Output y = -h: maximizing it asks for the smallest w.x at t; t=1 of 3 steps."""
    w = np.array([0.3, -1.2, 0.8, 2.0, -0.1])
    m = single_unit(w, 0.0, n_out=1)
    m.params["W_hy"][:] = -1.0
    m.params["b_y"][:] = 0.0
    res = maximize_activation(m, 0, t=1, length=3, target="output", onehot=True,
                              vocab=list("abcde"), seed=3)
    assert res.chars[1] == "b"
    assert res.value == pytest.approx(-np.tanh(-1.2))
    with pytest.raises(ConfigError):
        maximize_activation(single_unit(w, 0.0), 0, target="output")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_beat_random_search(cell):
    m = Model(cell, n_in=2, n_hidden=4, n_out=0, seed=2, dtype="float64")
    for k in m.params:
        m.params[k] *= 3.0
    res = maximize_activation(m, 1, t=-1, length=5, steps=150, restarts=4, seed=0)
    rng = np.random.default_rng(0)
    rand = m.forward(rng.uniform(-1, 1, size=(500, 5, 2))).h[:, -1, 1]
    assert res.value >= rand.max() - 1e-9
    np.testing.assert_allclose(res.activation, m.forward(res.x[None]).h[0, :, 1])
    assert np.all(np.abs(res.x) <= 1.0)


def test_progress_stop_and_seed():
    m = single_unit([1.0, -1.0], 0.5)
    calls, polls = [], []

    def stop():
        polls.append(1)
        return len(polls) > 25

    res = maximize_activation(m, 0, steps=100, progress=lambda f, v: calls.append((f, v)),
                              should_stop=stop, report_every=10)
    assert res.stopped and len(res.history) == 25
    assert [c[0] for c in calls] == [0.1, 0.2]
    assert calls[-1][1] == res.history[19]
    a = maximize_activation(m, 0, steps=20, seed=7)
    b = maximize_activation(m, 0, steps=20, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.x, b.x)
    assert not a.stopped


def test_bad_arguments():
    m = single_unit([1.0, -1.0], 0.5)
    for kw in (dict(unit=1), dict(unit=0, t=5, length=5), dict(unit=0, target="cell"),
               dict(unit=0, bounds=(1, -1)), dict(unit=0, onehot=True, vocab="abc"),
               dict(unit=0, length=0)):
        with pytest.raises(ConfigError):
            maximize_activation(m, **kw)
