"""Engine properties (hypothesis) through the public Model API: random small shapes, dtypes
and cells never crash, outputs stay finite and bounded for bounded inputs (even with large
weights), both backends agree, and float64 gradients match central finite differences."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnviewer.engine import Model, load, save
from rnnviewer.engine.optim import SGD, Adam, clip_grad_norm

PROPS = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.function_scoped_fixture])
CELLS = ("rnn", "gru", "lstm")

configs = st.fixed_dictionaries({
    "cell": st.sampled_from(CELLS),
    "dtype": st.sampled_from(("float32", "float64")),
    "B": st.integers(1, 3), "T": st.integers(1, 5),
    "I": st.integers(1, 4), "H": st.integers(1, 5), "O": st.integers(0, 3),
    "seed": st.integers(0, 2**31 - 1),
})


def build(c, backend="numba", dtype=None):
    return Model(c["cell"], n_in=c["I"], n_hidden=c["H"], n_out=c["O"], seed=c["seed"] % 1000,
                 dtype=dtype or c["dtype"], backend=backend)


def initial_state(m, B, rng, scale=1.0):
    h0 = (rng.uniform(-scale, scale, (B, m.n_hidden))).astype(m.dtype)
    if m.cell == "lstm":
        return h0, rng.uniform(-scale, scale, (B, m.n_hidden)).astype(m.dtype)
    return h0


# ---------------------------------------------------------------- forward
@PROPS
@given(c=configs, x_bound=st.sampled_from([0.0, 1.0, 100.0, 1e4]),
       w_scale=st.sampled_from([1.0, 10.0, 300.0]))
def test_forward_is_finite_and_bounded(c, x_bound, w_scale):
    """Saturating inputs and weights must not give NaN (sigmoid/tanh of large values)."""
    m = build(c)
    for k in m.params:
        m.params[k] *= m.dtype.type(w_scale)
    rng = np.random.default_rng(c["seed"])
    B, T, H = c["B"], c["T"], c["H"]
    x = rng.uniform(-x_bound, x_bound, (B, T, c["I"]))
    tr = m.forward(x, initial_state(m, B, rng))
    assert tr.h.shape == (B, T, H) and tr.h.dtype == m.dtype
    assert np.isfinite(tr.h).all() and np.abs(tr.h).max() <= 1.0 + 1e-6
    if c["O"]:
        assert tr.y.shape == (B, T, c["O"]) and np.isfinite(tr.y).all()
    else:
        assert tr.y is None
    assert set(tr.gates) == set(m.gate_names)
    for name, g in tr.gates.items():
        assert g.shape == (B, T, H) and np.isfinite(g).all()
        lo = -1.0 if name in ("g", "n") else 0.0          # tanh gates vs sigmoid gates
        assert lo - 1e-6 <= g.min() and g.max() <= 1.0 + 1e-6, name
    if c["cell"] == "lstm":
        assert tr.c.shape == (B, T, H) and np.isfinite(tr.c).all()
        assert np.abs(tr.c).max() <= 1.0 + T + 1e-4      # |c_t| <= |c_0| + t
    else:
        assert tr.c is None


@PROPS
@given(c=configs)
def test_backends_agree(c):
    """The numba kernels and the plain numpy cells compute the same forward and gradients."""
    a, b = build(c, "numba"), build(c, "numpy")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    rng = np.random.default_rng(c["seed"])
    x = rng.uniform(-2, 2, (c["B"], c["T"], c["I"]))
    h0 = initial_state(a, c["B"], rng)
    ta, tb = a.forward(x, h0), b.forward(x, h0)
    tol = dict(rtol=1e-4, atol=1e-5) if c["dtype"] == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ta.h, tb.h, **tol)
    dh = rng.standard_normal(ta.h.shape)
    dy = rng.standard_normal(ta.y.shape) if c["O"] else None
    ga, gb = a.backward(ta, dy=dy, dh=dh), b.backward(tb, dy=dy, dh=dh)
    assert set(ga) == set(gb)
    scale = max(1.0, max(float(np.abs(v).max()) for v in gb.values()))
    for k in gb:
        np.testing.assert_allclose(ga[k], gb[k], rtol=tol["rtol"] * 10,
                                   atol=tol["atol"] * 10 * scale, err_msg=k)


@PROPS
@given(c=configs)
def test_step_state_is_one_forward_step(c):
    m = build(c)
    rng = np.random.default_rng(c["seed"])
    x = rng.uniform(-1, 1, (c["B"], 2, c["I"]))
    s0 = initial_state(m, c["B"], rng)
    tr = m.forward(x, s0)
    state = np.concatenate(s0, axis=1) if m.cell == "lstm" else s0   # (B, S)
    assert state.shape == (c["B"], m.state_size)
    for t in range(2):
        state = m.step_state(state, x[:, t])
        want = np.concatenate([tr.h[:, t], tr.c[:, t]], 1) if m.cell == "lstm" else tr.h[:, t]
        tol = 1e-5 if c["dtype"] == "float32" else 1e-12
        np.testing.assert_allclose(state, want, rtol=tol, atol=tol)


# ---------------------------------------------------------------- gradients
def _fd_check(f, arr, idx, analytic, eps=1e-6):
    """Central differences of scalar f() in arr[idx] against analytic[idx]."""
    for i in idx:
        old = arr[i]
        arr[i] = old + eps
        up = f()
        arr[i] = old - eps
        down = f()
        arr[i] = old
        num = (up - down) / (2 * eps)
        assert abs(num - analytic[i]) <= 1e-6 + 1e-5 * abs(num), (i, num, analytic[i])


def _some(shape, rng, n=3):
    flat = rng.choice(int(np.prod(shape)), size=min(n, int(np.prod(shape))), replace=False)
    return [np.unravel_index(int(k), shape) for k in flat]


@PROPS
@given(c=configs, loss=st.sampled_from(["mse", "xent"]), masked=st.booleans())
def test_loss_gradients_match_finite_differences(c, loss, masked):
    c = dict(c, O=max(c["O"], 2 if loss == "xent" else 1))
    m = build(c, dtype="float64")
    rng = np.random.default_rng(c["seed"])
    B, T = c["B"], c["T"]
    x = rng.uniform(-1.5, 1.5, (B, T, c["I"]))
    target = rng.integers(0, c["O"], (B, T)) if loss == "xent" else \
        rng.standard_normal((B, T, c["O"]))
    mask = (rng.random((B, T)) < 0.7).astype(np.float64) if masked else None
    s0 = initial_state(m, B, rng, 0.5)
    h0 = s0[0] if m.cell == "lstm" else s0
    value, grads = m.loss_and_grads(x, target, loss=loss, h0=s0, mask=mask)
    assert np.isfinite(value) and value >= 0

    def f():
        return m.loss_and_grads(x, target, loss=loss, h0=s0, mask=mask)[0]

    assert abs(f() - value) < 1e-12     # deterministic
    for k, p in m.params.items():
        assert grads[k].shape == p.shape and np.isfinite(grads[k]).all()
        _fd_check(f, p, _some(p.shape, rng), grads[k])
    assert grads["x"].shape == x.shape and grads["h"].shape == (B, T, c["H"])
    _fd_check(f, x, _some(x.shape, rng), grads["x"])
    _fd_check(f, h0, _some(h0.shape, rng), grads["h0"])
    if m.cell == "lstm":
        _fd_check(f, s0[1], _some(s0[1].shape, rng), grads["c0"])


@PROPS
@given(c=configs)
def test_backward_from_hidden_states_matches_finite_differences(c):
    """General BPTT: L = sum(R * h) for a readout-free model, dL/dh_t given as dh."""
    c = dict(c, O=0)
    m = build(c, dtype="float64")
    rng = np.random.default_rng(c["seed"])
    x = rng.uniform(-1.5, 1.5, (c["B"], c["T"], c["I"]))
    R = rng.standard_normal((c["B"], c["T"], c["H"]))

    def f():
        return float((m.forward(x).h * R).sum())

    g = m.backward(m.forward(x), dh=R)
    assert "W_hy" not in g
    for k, p in m.params.items():
        _fd_check(f, p, _some(p.shape, rng), g[k])
    _fd_check(f, x, _some(x.shape, rng), g["x"])


# ---------------------------------------------------------------- training and files
@PROPS
@given(c=configs, opt=st.sampled_from(["sgd", "adam"]), lr=st.sampled_from([1e-3, 0.1]))
def test_small_steps_decrease_the_loss_and_stay_finite(c, opt, lr):
    c = dict(c, O=max(c["O"], 1))
    m = build(c, dtype="float64")
    rng = np.random.default_rng(c["seed"])
    x = rng.uniform(-1, 1, (c["B"], c["T"], c["I"]))
    target = rng.uniform(-1, 1, (c["B"], c["T"], c["O"]))
    before, grads = m.loss_and_grads(x, target)
    o = SGD(m.params, lr=1e-4) if opt == "sgd" else Adam(m.params, lr=lr)
    norm = clip_grad_norm(grads, 1.0)
    assert np.isfinite(norm)
    o.step(grads)
    after, _ = m.loss_and_grads(x, target)
    assert np.isfinite(after)
    assert all(np.isfinite(v).all() for v in m.params.values())
    if opt == "sgd" and norm > 1e-8:
        assert after <= before + 1e-12   # a tiny step against the gradient


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=configs)
def test_save_load_roundtrip(tmp_path, c):
    m = build(c)
    save(m, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.config == m.config
    assert all(np.array_equal(back.params[k], m.params[k]) and back.params[k].dtype == m.dtype
               for k in m.params)
    x = np.random.default_rng(0).uniform(-1, 1, (c["B"], c["T"], c["I"]))
    np.testing.assert_array_equal(back.forward(x).h, m.forward(x).h)
    other = m.copy()
    for k in other.params:
        other.params[k] += 1
    assert all(np.array_equal(back.params[k], m.params[k]) for k in m.params)  # copies


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_propagates_and_never_crashes(cell, dtype):
    """NaN in the input gives NaN out (the session then reports divergence), never a crash
    and never a silently finite result."""
    m = Model(cell, n_in=2, n_hidden=3, n_out=1, dtype=dtype)
    x = np.zeros((1, 3, 2))
    x[0, 1, 0] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        tr = m.forward(x)
        loss, grads = m.loss_and_grads(x, np.zeros((1, 3, 1)))
    assert np.isfinite(tr.h[0, 0]).all()
    assert not np.isfinite(tr.h[0, 1]).any() and not np.isfinite(tr.h[0, 2]).any()
    assert not np.isfinite(loss)
    m.params["W_hh"][0, 0] = np.nan    # a damaged weight: visible, not masked
    with np.errstate(invalid="ignore", over="ignore"):
        assert not np.isfinite(m.forward(np.zeros((1, 3, 2))).h).all()
