"""Fixed points on networks whose answer is known by construction; analytic Jacobians
against finite differences."""

import itertools

import numpy as np
import pytest
from scipy.optimize import brentq

from rnnviewer.engine import Model, fixed_points
from rnnviewer.engine import dynamics
from rnnviewer.engine.fixedpoints import classify, trajectory_states
from rnnviewer.errors import ConfigError


def numeric_jacobian(model, s, x, eps=1e-6):
    """dF/dstate of Model.step_state (float64 model) by central differences: (S, S)."""
    S = s.shape[0]
    J = np.zeros((S, S))
    for j in range(S):
        e = np.zeros(S)
        e[j] = eps
        J[:, j] = (model.step_state((s + e)[None], x[None])[0]
                   - model.step_state((s - e)[None], x[None])[0]) / (2 * eps)
    return J


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_analytic_jacobian_matches_finite_differences(cell):
    m = Model(cell, n_in=3, n_hidden=4, n_out=2, seed=3, dtype="float64")
    for k in m.params:
        m.params[k] *= 3.0
    rng = np.random.default_rng(0)
    s = rng.normal(size=(6, m.state_size))
    x = rng.normal(size=(6, 3))
    F, J = dynamics.step_and_jacobian(m, s, x)
    np.testing.assert_allclose(F, m.step_state(s, x), atol=1e-14)
    np.testing.assert_allclose(dynamics.step(m, s, x), F, atol=1e-14)
    for n in range(6):
        np.testing.assert_allclose(J[n], numeric_jacobian(m, s[n], x[n]), atol=1e-8)
    # a float32 model: the Jacobian is still computed in float64 from its parameters
    m32 = Model(cell, n_in=3, n_hidden=4, n_out=2, seed=3)
    J32 = dynamics.jacobian(m32, s[:1], x[0])
    assert J32.dtype == np.float64 and J32.shape == (1, m.state_size, m.state_size)


def constructed(cell, H, a):
    """Zero input weights and biases, the candidate block of W_hh = a I. Per unit:
    rnn h = tanh(a h); gru (r = z = 1/2) h = tanh(a h / 2); lstm (i = f = o = 1/2)
    c = tanh(a h), h = tanh(c) / 2."""
    m = Model(cell, n_in=2, n_hidden=H, n_out=0, seed=0, dtype="float64")
    for k in m.params:
        m.params[k][:] = 0.0
    block = {"rnn": 0, "gru": 2, "lstm": 2}[cell]
    m.params["W_hh"][block * H:(block + 1) * H] = a * np.eye(H)
    return m


def expected_points(cell, H, a):
    """Every fixed point's state (3^H of them), from a scalar root per unit."""
    g = {"rnn": lambda h: np.tanh(a * h) - h,
         "gru": lambda h: np.tanh(a * h / 2) - h,
         "lstm": lambda h: 0.5 * np.tanh(np.tanh(a * h)) - h}[cell]
    hs = brentq(g, 1e-3, 1.0)
    pts = []
    for combo in itertools.product((-hs, 0.0, hs), repeat=H):
        h = np.array(combo)
        pts.append(np.concatenate([h, np.tanh(a * h)]) if cell == "lstm" else h)
    return np.array(pts)


@pytest.mark.parametrize("cell,H,a", [("rnn", 3, 1.5), ("rnn", 2, 2.0), ("gru", 2, 4.0),
                                      ("lstm", 2, 6.0)])
def test_finds_every_constructed_fixed_point(cell, H, a):
    m = constructed(cell, H, a)
    pts = fixed_points(m, n_box=400, seed=0)
    want = expected_points(cell, H, a)
    assert len(pts) == 3 ** H and pts.slow == []
    x = np.zeros(2)
    for p in pts:
        assert p.q < 1e-12 and not p.is_slow
        np.testing.assert_allclose(m.step_state(p.h[None], x[None])[0], p.h, atol=1e-9)
        J = numeric_jacobian(m, p.h, x)
        ev = np.linalg.eigvals(J)
        np.testing.assert_allclose(np.sort(np.abs(p.eigenvalues)), np.sort(np.abs(ev)),
                                   atol=1e-7)
        assert p.kind == classify(ev)
        n_out = np.sum(np.abs(ev) > 1)
        assert p.unstable_directions.shape == (n_out, m.state_size)
        for v, lam in zip(p.unstable_directions, p.eigenvalues[np.abs(p.eigenvalues) > 1]):
            np.testing.assert_allclose(J @ v, lam.real * v, atol=1e-6)
    found = np.array([p.h for p in pts])
    for w in want:                                   # every expected point, once
        assert np.sum(np.linalg.norm(found - w, axis=1) < 1e-7) == 1
    # kind by construction: a unit at 0 is an expanding direction, at +-h* a contracting one
    n_zero = {tuple(np.round(w, 6)): int(np.sum(w[:H] == 0)) for w in want}
    kinds = pts.kinds()
    assert kinds["stable"] == 2 ** H                 # no unit at zero
    for p in pts:
        z = n_zero[tuple(np.round(p.h, 6))]
        if cell != "lstm":       # one expanding direction per unit sitting at zero
            assert np.sum(np.abs(p.eigenvalues) > 1) == z
            assert len(p.unstable_directions) == z
        if z == 0:
            assert p.kind == "stable"
        elif cell != "lstm":
            assert p.kind == ("unstable" if z == H else "saddle")
        else:                                        # the LSTM's (h, c) block also has eig 0
            assert p.kind == "saddle"
    assert kinds == {"stable": 2 ** H, "unstable": 1 if cell != "lstm" else 0,
                     "saddle": 3 ** H - 2 ** H - (1 if cell != "lstm" else 0)}


def test_slow_point_at_a_ghost():
    """h = tanh(2 h + b), b past the saddle-node (0.533): one fixed point remains, and
    q has a nonzero local minimum where 2 sech^2(2h + b) = 1."""
    b = 0.6
    m = Model("rnn", n_in=1, n_hidden=1, n_out=0, seed=0, dtype="float64")
    m.params["W_hh"][:] = 2.0
    m.params["W_xh"][:] = 0.0
    m.params["b_xh"][:] = b
    m.params["b_hh"][:] = 0.0
    pts = fixed_points(m, n_box=64, slow_tol=1e-2, slow_dedup_tol=1e-3, max_iter=300)
    h_fixed = brentq(lambda h: np.tanh(2 * h + b) - h, 0.0, 1.0)
    assert len(pts) == 1 and pts[0].kind == "stable"
    assert pts[0].h[0] == pytest.approx(h_fixed, abs=1e-9)
    assert len(pts.slow) == 1
    slow = pts.slow[0]
    h_slow = (-np.arccosh(np.sqrt(2.0)) - b) / 2
    assert slow.is_slow and slow.h[0] == pytest.approx(h_slow, abs=1e-4)
    assert slow.q == pytest.approx(0.5 * (np.tanh(2 * h_slow + b) - h_slow) ** 2, rel=1e-4)
    assert 1e-12 < slow.q < 1e-2
    assert fixed_points(m, n_box=64, max_iter=300).slow == []      # q above the default


def test_constant_input_and_trajectory_starts():
    m = Model("lstm", n_in=2, n_hidden=3, n_out=0, seed=1, dtype="float64")
    for k in m.params:
        m.params[k] *= 2.0
    x_star = np.array([0.5, -1.0])
    rng = np.random.default_rng(0)
    tr = m.forward(rng.normal(size=(4, 30, 2)))
    starts = trajectory_states(tr, max_states=50, rng=0)
    assert starts.shape == (50, 6)
    np.testing.assert_array_equal(trajectory_states(tr)[31], np.r_[tr.h[1, 1], tr.c[1, 1]])
    pts = fixed_points(m, x_star=x_star, initial_states=starts, noise=0.01)
    assert len(pts) >= 1 and pts.n_candidates == 50
    for p in pts:
        np.testing.assert_allclose(m.step_state(p.h[None], x_star[None])[0], p.h, atol=1e-9)
    hs = np.array([p.h for p in pts])
    if len(hs) > 1:
        d = np.linalg.norm(hs[:, None] - hs[None], axis=-1) + np.eye(len(hs))
        assert d.min() > 1e-4                       # deduplicated
    assert sum(p.count for p in pts) <= 50


def test_progress_and_stop():
    m = constructed("rnn", 3, 1.5)
    seen = []
    pts = fixed_points(m, n_box=64, progress=lambda f, n: seen.append((f, n)))
    assert seen[-1] == (1.0, len(pts)) and all(0 < f <= 1 for f, _ in seen)
    polls = []
    stopped = fixed_points(m, n_box=64, should_stop=lambda: len(polls.append(1) or polls) > 2)
    assert stopped.stopped and len(polls) == 3


def test_bad_arguments():
    m = constructed("lstm", 2, 6.0)
    with pytest.raises(ConfigError):
        fixed_points(m, initial_states=np.zeros((3, 2)))     # LSTM states are (h, c)
    with pytest.raises(ConfigError):
        fixed_points(m, x_star=np.zeros(3))
    with pytest.raises(ConfigError):
        fixed_points(m, n_box=0)                              # no starts at all
    with pytest.raises(ConfigError):
        fixed_points(m, box=(1.0, 1.0))


def test_complex_pair_gives_one_direction():
    """W_hh a rotation by 60 degrees scaled by 1.5: the origin spirals out."""
    th = np.pi / 3
    m = Model("rnn", n_in=1, n_hidden=2, n_out=0, seed=0, dtype="float64")
    for k in m.params:
        m.params[k][:] = 0.0
    m.params["W_hh"][:] = 1.5 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    pts = fixed_points(m, initial_states=np.array([[0.01, -0.02], [0.0, 0.003]]))
    assert len(pts) == 1
    origin = pts[0]
    np.testing.assert_allclose(origin.h, 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(origin.eigenvalues),
                               np.sort_complex(1.5 * np.exp([-1j * th, 1j * th])))
    assert origin.kind == "unstable" and origin.unstable_directions.shape == (1, 2)
    assert origin.count == 2
