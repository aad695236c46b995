"""SGD, Adam and clip_grad_norm against steps computed by hand (torch.optim's arithmetic)."""

import math

import numpy as np
import pytest

from rnnviewer.engine import SGD, Adam, Model, clip_grad_norm
from rnnviewer.errors import ConfigError


def params(dtype=np.float64):
    return {"W_hh": np.array([[1.0, -2.0], [0.5, 3.0]], dtype), "b_y": np.array([0.25], dtype)}


def grads_at(step, dtype=np.float64):
    """A different gradient every step (plus entries the optimizers must ignore)."""
    return {"W_hh": np.array([[0.1, -0.2], [0.3, 0.4]], dtype) * (step + 1) - 0.05 * step,
            "b_y": np.array([-1.0 + 0.5 * step], dtype),
            "x": np.full((1, 1, 1), 7.0, dtype), "h": np.full((1, 1, 2), 9.0, dtype)}


def test_sgd_plain_step_by_hand():
    p = params()
    opt = SGD(p, lr=0.1)
    opt.step(grads_at(0))
    np.testing.assert_array_equal(p["W_hh"], [[1.0 - 0.01, -2.0 + 0.02], [0.5 - 0.03, 3.0 - 0.04]])
    np.testing.assert_array_equal(p["b_y"], [0.25 + 0.1])
    assert opt.t == 1


def test_sgd_momentum_steps_by_hand():
    p = params()
    opt = SGD(p, lr=0.1, momentum=0.9)
    w, buf = params()["W_hh"], np.zeros((2, 2))
    for step in range(3):
        g = grads_at(step)["W_hh"]
        buf = 0.9 * buf + g          # torch: buf = g on the first step, then m * buf + g
        w = w - 0.1 * buf
        opt.step(grads_at(step))
        np.testing.assert_allclose(p["W_hh"], w, rtol=0, atol=1e-15)
    # first step by hand with numbers: buf = g
    p2 = params()
    SGD(p2, lr=0.5, momentum=0.9).step(grads_at(0))
    np.testing.assert_allclose(p2["b_y"], [0.25 + 0.5], atol=1e-15)


def test_adam_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    p = params()
    opt = Adam(p, lr=lr, betas=(b1, b2), eps=eps)
    ref = params()
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(x) for k, x in ref.items()}
    for t in range(1, 5):
        g = grads_at(t - 1)
        for k in ref:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat = m[k] / (1 - b1 ** t)
            v_hat = v[k] / (1 - b2 ** t)
            ref[k] = ref[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
        opt.step(g)
        for k in ref:
            np.testing.assert_allclose(p[k], ref[k], rtol=1e-13, atol=1e-15)
    # the very first Adam step moves every entry by about lr * sign(g)
    q = params()
    Adam(q, lr=lr).step(grads_at(0))
    step = params()["W_hh"] - q["W_hh"]
    np.testing.assert_allclose(step, lr * np.sign(grads_at(0)["W_hh"]), rtol=1e-5)


@pytest.mark.parametrize("opt_cls, kw", [(SGD, {"momentum": 0.9}), (Adam, {})])
def test_float32_params_stay_float32(opt_cls, kw):
    p = params(np.float32)
    opt = opt_cls(p, lr=0.01, **kw)
    for step in range(3):
        opt.step(grads_at(step, np.float32))
    assert all(v.dtype == np.float32 for v in p.values())
    ref = params()
    opt64 = opt_cls(ref, lr=0.01, **kw)
    for step in range(3):
        opt64.step(grads_at(step))
    for k in ref:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-5)


@pytest.mark.parametrize("opt_cls, kw", [(SGD, {"momentum": 0.9}), (SGD, {}), (Adam, {})])
def test_state_dict_resumes_exactly(opt_cls, kw):
    p = params()
    opt = opt_cls(p, lr=0.01, **kw)
    for step in range(2):
        opt.step(grads_at(step))
    state = {k: np.array(v) for k, v in opt.state_dict().items()}
    q = {k: v.copy() for k, v in p.items()}
    resumed = opt_cls(q, lr=0.5, **kw)
    resumed.load_state_dict(state)
    for step in range(2, 4):
        opt.step(grads_at(step))
        resumed.step(grads_at(step))
    for k in p:
        np.testing.assert_array_equal(p[k], q[k])
    assert resumed.t == opt.t == 4


def test_optimizers_update_model_params_in_place():
    m = Model("rnn", 2, 3, 1, dtype="float64")
    before = {k: v.copy() for k, v in m.params.items()}
    ids = {k: id(v) for k, v in m.params.items()}
    _, g = m.loss_and_grads(np.ones((1, 2, 2)), np.zeros((1, 2, 1)))
    SGD(m.params, 0.1).step(g)
    for k, v in m.params.items():
        assert id(v) == ids[k]
        np.testing.assert_allclose(v, before[k] - 0.1 * g[k], atol=1e-15)


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(lr=float("nan")), dict(lr="x")])
def test_bad_settings_raise_config_error(bad):
    with pytest.raises(ConfigError):
        SGD(params(), **bad)
    with pytest.raises(ConfigError):
        Adam(params(), **bad)
    with pytest.raises(ConfigError):
        Adam(params(), lr=0.1, betas=(0.9, 1.0))


def test_clip_grad_norm_scales_in_place():
    g = grads_at(1)
    w, b = g["W_hh"].copy(), g["b_y"].copy()
    norm = math.sqrt(float(np.sum(w ** 2) + np.sum(b ** 2)))
    same = g["W_hh"]
    returned = clip_grad_norm(g, 0.5)
    assert returned == pytest.approx(norm, rel=1e-15)
    coef = 0.5 / (norm + 1e-6)  # torch's clip_grad_norm_ formula
    assert g["W_hh"] is same
    np.testing.assert_allclose(g["W_hh"], w * coef, rtol=1e-15)
    np.testing.assert_allclose(g["b_y"], b * coef, rtol=1e-15)
    total = math.sqrt(float(np.sum(g["W_hh"] ** 2) + np.sum(g["b_y"] ** 2)))
    assert total == pytest.approx(0.5, rel=1e-5)
    assert g["x"][0, 0, 0] == 7.0 and g["h"][0, 0, 0] == 9.0  # not parameters: untouched


@pytest.mark.parametrize("max_norm", [100.0, None, 0.0])
def test_clip_grad_norm_leaves_small_or_disabled(max_norm):
    g = grads_at(0)
    w = g["W_hh"].copy()
    norm = clip_grad_norm(g, max_norm)
    assert norm == pytest.approx(math.sqrt(float(np.sum(w ** 2)) + 1.0), rel=1e-15)
    np.testing.assert_array_equal(g["W_hh"], w)


def test_clip_grad_norm_float32():
    g = {"W_xh": np.full((3, 4), 2.0, np.float32), "b_xh": np.full(3, -2.0, np.float32)}
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(2.0 * math.sqrt(15), rel=1e-7)
    assert g["W_xh"].dtype == np.float32
    assert math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values())) \
        == pytest.approx(1.0, rel=1e-5)
