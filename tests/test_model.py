"""Model forward/backward: finite differences, the naive reference, token ids, determinism.

float64 and small shapes; every test runs for all cells and both backends (the numba
backend falls back to numpy for a cell without a kernel module).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive
from rnnviewer.engine import SGD, Model
from rnnviewer.engine.kernels import get_cell
from rnnviewer.errors import ConfigError

CELLS = ("rnn", "gru", "lstm")
BACKENDS = ("numba", "numpy")
LOSSES = ("mse", "xent")
PARAM_KEYS = ("W_xh", "W_hh", "b_xh", "b_hh", "W_hy", "b_y")
SHAPES = [  # B, T, I, H, O
    (1, 1, 1, 1, 1),
    (2, 3, 1, 3, 2),
    (1, 4, 3, 2, 3),
    (3, 1, 2, 4, 1),
    (2, 5, 4, 3, 4),
]


def make_model(cell, backend, I, H, O, seed=0, scale=1.7, dtype="float64"):
    """Weights scaled past torch's init so the nonlinearities are exercised."""
    m = Model(cell, n_in=I, n_hidden=H, n_out=O, seed=seed, dtype=dtype, backend=backend)
    for k in m.params:
        m.params[k] *= m.dtype.type(scale)
    return m


def problem(cell, B, T, I, H, O, loss, masked, seed=1, ids=False):
    """x (or token ids), target, mask, h0 argument, and (h0, c0) arrays for naive."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, I, (B, T)) if ids else rng.normal(size=(B, T, I))
    target = rng.integers(0, O, (B, T)) if loss == "xent" else rng.normal(size=(B, T, O))
    mask = None
    if masked:
        mask = rng.random((B, T)) < 0.6
        mask[0, 0] = True
    h0 = rng.normal(scale=0.5, size=(B, H))
    c0 = rng.normal(scale=0.5, size=(B, H)) if cell == "lstm" else None
    return x, target, mask, ((h0, c0) if cell == "lstm" else h0), h0, c0


# Central differences with eps = 1e-6 on a loss of order 1 carry about 1e-10 of rounding
# noise per entry, so a gradient whose norm is under ~1e-3 (a saturated tanh, a state far
# from the loss) cannot be checked relatively to 1e-6: below this floor the check is
# absolute (|error| <= 1e-9), still far below any real bug.
FD_NORM_FLOOR = 1e-3


def rel_err(a, b):
    """Norm-wise relative error, with the absolute floor FD_NORM_FLOOR for tiny gradients."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b),
                                             FD_NORM_FLOOR))


def assert_close(got, ref, tol=1e-10, what=""):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = np.max(np.abs(got - ref), initial=0.0)
    assert err <= tol * max(1.0, np.max(np.abs(ref), initial=0.0)), (what, err)


def force_parallel(monkeypatch, cell):
    """Make the numba kernels split even tiny batches into per-thread chunks."""
    import importlib

    for module in (cell, "head"):
        try:
            mod = importlib.import_module(f"rnnviewer.engine.kernels.{module}")
        except ImportError:
            continue
        for name in ("PARALLEL_MIN_ROWS", "MIN_CHUNK_ROWS"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, 1)


# ---------------------------------------------------------------- naive reference
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("masked", [False, True])
def test_matches_naive_reference(cell, backend, loss, masked):
    B, T, I, H, O = 3, 4, 3, 5, 4
    m = make_model(cell, backend, I, H, O)
    x, target, mask, h0arg, h0, c0 = problem(cell, B, T, I, H, O, loss, masked)
    value, grads = m.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
    ref_value, ref, fwd = naive.loss_and_grads(cell, m.params, x, target, loss, h0, c0, mask)
    assert abs(value - ref_value) <= 1e-10 * max(1.0, abs(ref_value))
    tr = m.forward(x, h0=h0arg)
    assert_close(tr.h, fwd["h"], what="h")
    assert_close(tr.y, fwd["y"], what="y")
    if cell == "lstm":
        assert_close(tr.c, fwd["c"], what="c")
    assert set(tr.gates) == set(fwd["gates"])
    for k, v in fwd["gates"].items():
        assert_close(tr.gates[k], v, what=f"gate {k}")
    expected = set(PARAM_KEYS) | {"x", "h", "h0"} | ({"c0"} if cell == "lstm" else set())
    assert expected <= set(grads)
    for k in expected:
        assert_close(grads[k], ref[k], what=k)
        assert grads[k].dtype == np.float64, k


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parallel", [False, True])
def test_serial_and_parallel_chunks_match_naive(cell, backend, parallel, monkeypatch):
    """Both losses and Model.backward(dy, dh); batches split over threads (forced even
    for a small batch) give the same numbers as the serial kernels."""
    if parallel:
        force_parallel(monkeypatch, cell)
    B, T, I, H, O = 5, 3, 2, 4, 3
    m = make_model(cell, backend, I, H, O)
    for loss in LOSSES:
        x, target, mask, h0arg, h0, c0 = problem(cell, B, T, I, H, O, loss, True)
        value, grads = m.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        ref_value, ref, fwd = naive.loss_and_grads(cell, m.params, x, target, loss, h0, c0, mask)
        assert abs(value - ref_value) <= 1e-10 * max(1.0, abs(ref_value))
        for k in ref:
            assert_close(grads[k], ref[k], what=k)
        assert_close(m.forward(x, h0=h0arg).y, fwd["y"], what="y")
        dy = naive.loss_grad(fwd["y"], target, loss, mask)
        g = m.backward(m.forward(x, h0=h0arg), dy=dy, dh=np.ones((B, T, H)))
        ref = naive.backward(cell, m.params, x, h0, c0, fwd, dy=dy, dh_extra=np.ones((B, T, H)))
        for k in ref:
            assert_close(g[k], ref[k], what=k)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_general_backward_with_dh_and_no_readout(cell, backend):
    """Model.backward from an extra dL/dh (B, T, H) on a model without readout."""
    B, T, I, H = 2, 4, 3, 3
    m = make_model(cell, backend, I, H, 0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, T, I))
    dh = rng.normal(size=(B, T, H))
    tr = m.forward(x)
    assert tr.y is None
    g = m.backward(tr, dh=dh)
    fwd = naive.forward(cell, m.params, x)
    ref = naive.backward(cell, m.params, x, None, None, fwd, dh_extra=dh)
    for k in ("W_xh", "W_hh", "b_xh", "b_hh", "x", "h", "h0"):
        assert_close(g[k], ref[k], what=k)
    assert "W_hy" not in g
    with pytest.raises(ConfigError):
        m.loss_and_grads(x, rng.normal(size=(B, T, 1)))


# ---------------------------------------------------------------- finite differences
def _fd(f, arr, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of arr (in place)."""
    out = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        keep = arr[idx]
        arr[idx] = keep + eps
        up = f()
        arr[idx] = keep - eps
        down = f()
        arr[idx] = keep
        out[idx] = (up - down) / (2 * eps)
    return out


def check_finite_differences(cell, backend, loss, masked, B, T, I, H, O, seed=0):
    m = make_model(cell, backend, I, H, O, seed=seed)
    x, target, mask, h0arg, h0, c0 = problem(cell, B, T, I, H, O, loss, masked, seed=seed + 1)
    value, grads = m.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)

    def engine_loss():
        return m.loss(m.forward(x, h0=h0arg).y, target, loss, mask)[0]

    assert value == pytest.approx(engine_loss(), rel=1e-12, abs=1e-15)
    for k in PARAM_KEYS:
        fd = _fd(engine_loss, m.params[k])
        assert rel_err(grads[k], fd) <= 1e-6, (k, rel_err(grads[k], fd))
    fd = _fd(engine_loss, x)
    assert rel_err(grads["x"], fd) <= 1e-6, ("x", rel_err(grads["x"], fd))
    # total dL/dh_t and dL/dh0: shift h_t (and h0) in the reference forward
    offset = np.zeros((B, T, H))
    h0v = h0.copy()

    def shifted_loss():
        y = naive.forward(cell, m.params, x, h0v, c0, dh_offset=offset)["y"]
        return naive.loss_value(y, target, loss, mask)

    fd = _fd(shifted_loss, offset)
    assert rel_err(grads["h"], fd) <= 1e-6, ("h", rel_err(grads["h"], fd))
    fd = _fd(shifted_loss, h0v)
    assert rel_err(grads["h0"], fd) <= 1e-6, ("h0", rel_err(grads["h0"], fd))
    if cell == "lstm":
        c0v = c0.copy()

        def c_loss():
            y = naive.forward(cell, m.params, x, h0, c0v)["y"]
            return naive.loss_value(y, target, loss, mask)

        fd = _fd(c_loss, c0v)
        assert rel_err(grads["c0"], fd) <= 1e-6, ("c0", rel_err(grads["c0"], fd))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "B{}T{}I{}H{}O{}".format(*s))
def test_gradients_match_finite_differences(cell, backend, loss, masked, shape):
    check_finite_differences(cell, backend, loss, masked, *shape)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell=st.sampled_from(CELLS), backend=st.sampled_from(BACKENDS),
       loss=st.sampled_from(LOSSES), masked=st.booleans(),
       B=st.integers(1, 3), T=st.integers(1, 4), I=st.integers(1, 3), H=st.integers(1, 4),
       O=st.integers(1, 3), seed=st.integers(0, 1000))
def test_gradients_match_finite_differences_random_shapes(cell, backend, loss, masked,
                                                          B, T, I, H, O, seed):
    check_finite_differences(cell, backend, loss, masked, B, T, I, H, O, seed=seed)


@pytest.mark.parametrize("loss", LOSSES)
def test_fractional_mask_weights_are_consistent(loss):
    """A mask of weights (not just 0/1) still gives the gradient of the reported loss."""
    B, T, I, H, O = 2, 3, 2, 3, 2
    m = make_model("rnn", "numpy", I, H, O)
    x, target, _, _, _, _ = problem("rnn", B, T, I, H, O, loss, False)
    w = np.random.default_rng(5).random((B, T))
    value, grads = m.loss_and_grads(x, target, loss, mask=w)

    def f():
        return m.loss(m.forward(x).y, target, loss, w)[0]

    assert value == pytest.approx(naive.loss_value(m.forward(x).y, target, loss, w), rel=1e-12)
    for k in PARAM_KEYS:
        assert rel_err(grads[k], _fd(f, m.params[k])) <= 1e-6, k


# ---------------------------------------------------------------- token ids
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_token_ids_equal_one_hot(cell, backend, loss):
    B, T, I, H, O = 3, 5, 4, 3, 4
    m = make_model(cell, backend, I, H, O)
    ids, target, mask, h0arg, h0, c0 = problem(cell, B, T, I, H, O, loss, True, ids=True)
    dense = naive.one_hot(ids, I)
    v_ids, g_ids = m.loss_and_grads(ids, target, loss, h0=h0arg, mask=mask)
    v_dense, g_dense = m.loss_and_grads(dense, target, loss, h0=h0arg, mask=mask)
    assert v_ids == pytest.approx(v_dense, rel=1e-12, abs=1e-15)
    assert set(g_ids) == set(g_dense)
    for k in g_dense:
        assert_close(g_ids[k], g_dense[k], tol=1e-12, what=k)
    ref_value, ref, _ = naive.loss_and_grads(cell, m.params, dense, target, loss, h0, c0, mask)
    assert v_ids == pytest.approx(ref_value, rel=1e-10)
    for k in ref:
        assert_close(g_ids[k], ref[k], what=k)
    tr = m.forward(ids.astype(np.int32))
    assert tr.x.shape == (B, T) and tr.x.dtype.kind == "i"
    assert_close(tr.h, m.forward(dense).h, tol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_ids_are_validated(backend):
    m = make_model("rnn", backend, 4, 3, 2)
    for bad in (np.array([[0, 4]]), np.array([[-1, 0]]), np.zeros((0, 3), int)):
        with pytest.raises(ConfigError):
            m.forward(bad)
    with pytest.raises(ConfigError):
        m.forward(np.zeros((2, 3)))  # floats of shape (B, T) are not ids


# ---------------------------------------------------------------- float32 and numba paths
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ids", [False, True])
def test_float32_close_to_float64(cell, backend, ids):
    """float32 (fastmath, rational tanh in the numba kernels) tracks float64 closely."""
    B, T, I, H, O = 3, 6, 5, 8, 5
    m64 = make_model(cell, backend, I, H, O, scale=1.0)
    m32 = Model(cell, I, H, O, dtype="float32", backend=backend,
                params={k: v.astype(np.float32) for k, v in m64.params.items()})
    x, target, _, _, _, _ = problem(cell, B, T, I, H, O, "xent", False, ids=ids)
    v64, g64 = m64.loss_and_grads(x, target, "xent")
    v32, g32 = m32.loss_and_grads(x, target, "xent")
    assert v32 == pytest.approx(v64, rel=1e-5)
    for k in g64:
        assert g32[k].dtype == np.float32, k
        assert rel_err(g32[k], g64[k]) < 1e-4, (k, rel_err(g32[k], g64[k]))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("ids", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_float32_kernels_match_the_numpy_backend(cell, ids, parallel, monkeypatch):
    """float32 numba kernels (fastmath, rational tanh, numpy's OpenBLAS) against the
    float32 numpy backend, for token ids and dense x, serial and per-thread chunks."""
    if parallel:
        force_parallel(monkeypatch, cell)
    B, T, I, H, O = 5, 6, 5, 8, 4
    fast = make_model(cell, "numba", I, H, O, scale=1.0, dtype="float32")
    slow = Model(cell, I, H, O, dtype="float32", backend="numpy",
                 params={k: v.copy() for k, v in fast.params.items()})
    for loss in LOSSES:
        x, target, mask, h0arg, _, _ = problem(cell, B, T, I, H, O, loss, True, ids=ids)
        v1, g1 = fast.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        v2, g2 = slow.loss_and_grads(x, target, loss, h0=h0arg, mask=mask)
        assert v1 == pytest.approx(v2, rel=1e-5)
        assert set(g1) == set(g2)
        for k in g2:
            assert g1[k].dtype == np.float32, k
            assert rel_err(g1[k], g2[k]) < 1e-4, (loss, k, rel_err(g1[k], g2[k]))


@pytest.mark.parametrize("cell", CELLS)
def test_nan_propagates_in_float32(cell):
    """fastmath must not hide a divergence: NaN in the weights gives NaN outputs."""
    m = Model(cell, 3, 4, 2, dtype="float32")
    m.params["W_hh"][0, 0] = np.nan
    y = m.forward(np.ones((2, 3, 3), np.float32)).y
    assert np.isnan(y).any()


def test_numba_backend_has_rnn_kernel():
    from rnnviewer.engine.kernels import numpy_cells, rnn

    fwd, bwd, _ = get_cell("rnn", "numba")
    assert fwd is rnn.forward and bwd is rnn.backward
    assert get_cell("rnn", "numpy")[0] is numpy_cells.rnn_forward


# ---------------------------------------------------------------- init and determinism
@pytest.mark.parametrize("cell", CELLS)
def test_init_is_torch_like_and_seeded(cell):
    a = Model(cell, 3, 16, 2, seed=7)
    b = Model(cell, 3, 16, 2, seed=7)
    c = Model(cell, 3, 16, 2, seed=8)
    bound = 1.0 / np.sqrt(16)
    for k, v in a.params.items():
        assert v.dtype == np.float32
        assert np.all(np.abs(v) <= bound)
        if v.size >= 32:
            assert 0.4 * bound < v.std() < 0.75 * bound  # uniform: std = bound / sqrt(3)
        assert np.array_equal(v, b.params[k])
        assert not np.array_equal(v, c.params[k])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_is_deterministic_bit_for_bit(cell, backend):
    """Same seed, same data: the same parameters after several float32 SGD steps."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, (4, 7))
    target = rng.integers(0, 6, (4, 7))

    def train():
        m = Model(cell, 6, 8, 6, seed=3, backend=backend)
        opt = SGD(m.params, 0.5, momentum=0.9)
        losses = []
        for _ in range(5):
            value, grads = m.loss_and_grads(ids, target, "xent")
            opt.step(grads)
            losses.append(value)
        return m.params, losses

    p1, l1 = train()
    p2, l2 = train()
    assert l1 == l2
    assert l1[-1] < l1[0]
    for k in p1:
        assert np.array_equal(p1[k], p2[k]), k


# ---------------------------------------------------------------- torch layout
@pytest.mark.parametrize("cell", CELLS)
def test_torch_layout_round_trip(cell):
    m = Model(cell, 3, 4, 2, seed=1)
    rnn_state, head_state = m.to_torch()
    assert rnn_state["weight_ih_l0"].shape == m.params["W_xh"].shape
    other = Model(cell, 3, 4, 2, seed=2).load_torch(rnn_state, head_state)
    for k in m.params:
        assert np.array_equal(other.params[k], m.params[k])
    _, grads = m.loss_and_grads(np.ones((1, 2, 3)), np.zeros((1, 2, 2)))
    g_rnn, g_head = m.to_torch(grads)
    assert g_rnn["bias_hh_l0"] is grads["b_hh"] and g_head["weight"] is grads["W_hy"]
