"""The numba GRU and LSTM kernels: against numpy_cells, finite differences and torch."""

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.engine.kernels import gru, lstm, numpy_cells

KERNELS = {"gru": gru, "lstm": lstm}
GATES = {"gru": 3, "lstm": 4}
SHAPES = [(1, 1, 1, 1), (1, 6, 3, 5), (3, 4, 1, 2), (10, 3, 5, 7)]  # B, T, I, H; B=10 runs parallel


def make(cell, B, T, I, H, dtype=np.float64, seed=0, onehot=False):
    rng = np.random.default_rng(seed)
    G = GATES[cell] * H
    p = {"W_xh": rng.normal(0, .5, (G, I)), "W_hh": rng.normal(0, .5, (G, H)),
         "b_xh": rng.normal(0, .5, G), "b_hh": rng.normal(0, .5, G)}
    p = {k: v.astype(dtype) for k, v in p.items()}
    if onehot:
        x = np.eye(I, dtype=dtype)[rng.integers(0, I, (B, T))]
    else:
        x = rng.normal(size=(B, T, I)).astype(dtype)
    h0 = rng.normal(0, .5, (B, H)).astype(dtype)
    c0 = rng.normal(0, .5, (B, H)).astype(dtype) if cell == "lstm" else None
    dh = rng.normal(size=(B, T, H)).astype(dtype)
    return p, x, h0, c0, dh


def ref(cell):
    return numpy_cells.CELLS[cell][:2]


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_reference_float64(cell, shape):
    p, x, h0, c0, dh = make(cell, *shape)
    fwd, bwd = ref(cell)
    want = fwd(p, x, h0, c0)
    got = KERNELS[cell].forward(p, x, h0, c0)
    assert rel(got["h"], want["h"]) < 1e-12
    assert set(got["gates"]) == set(want["gates"])
    for k in want["gates"]:
        assert got["gates"][k].shape == shape[:2] + shape[3:]
        assert rel(got["gates"][k], want["gates"][k]) < 1e-12, k
    if cell == "lstm":
        assert rel(got["c"], want["c"]) < 1e-12
    g_want = bwd(p, x, want, dh)
    g_got = KERNELS[cell].backward(p, x, got, dh)
    assert set(g_got) == set(g_want)
    for k in g_want:
        assert g_got[k].shape == g_want[k].shape, k
        assert rel(g_got[k], g_want[k]) < 1e-10, k


def loss_of(cell, p, x, h0, c0, w):
    """L = sum(w * h): its dL/dh from outside the recurrence is w."""
    return float(np.sum(w * KERNELS[cell].forward(p, x, h0, c0)["h"]))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 4, 3, 3), (5, 3, 2, 2)])
def test_gradients_against_finite_differences(cell, shape):
    p, x, h0, c0, w = make(cell, *shape, seed=1)
    k = KERNELS[cell]
    g = k.backward(p, x, k.forward(p, x, h0, c0), w)
    eps = 1e-6

    def fd(arr, f):
        out = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = f()
            arr[i] = old - eps
            down = f()
            arr[i] = old
            out[i] = (up - down) / (2 * eps)
        return out

    f = lambda: loss_of(cell, p, x, h0, c0, w)  # noqa: E731
    for name in ("W_xh", "W_hh", "b_xh", "b_hh"):
        assert rel(g[name], fd(p[name], f)) < 1e-6, name
    assert rel(g["x"], fd(x, f)) < 1e-6
    assert rel(g["h0"], fd(h0, f)) < 1e-6
    if cell == "lstm":
        assert rel(g["c0"], fd(c0, f)) < 1e-6
    # "h": total dL/dh_t = w_t + what flows back from the steps after t (state h_t split off)
    B, T, _, H = shape
    for t in range(T):
        first = k.forward(p, x[:, :t + 1], h0, c0)
        c_t = first["c"][:, t].copy() if cell == "lstm" else None
        h_t = first["h"][:, t].copy()

        def rest():
            head = np.sum(w[:, :t + 1] * first["h"]) - np.sum(w[:, t] * first["h"][:, t])
            total = head + np.sum(w[:, t] * h_t)
            if t + 1 < T:
                total += loss_of(cell, p, x[:, t + 1:], h_t, c_t, w[:, t + 1:])
            return total
        assert rel(g["h"][:, t], fd(h_t, rest)) < 1e-6, t


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_onehot_rows_and_token_ids_take_the_lookup_path(cell):
    B, T, I, H = 9, 5, 6, 4
    p, x, h0, c0, dh = make(cell, B, T, I, H, onehot=True, seed=2)
    ids = x.argmax(-1)
    k = KERNELS[cell]
    fwd, bwd = ref(cell)
    want = fwd(p, x, h0, c0)
    g_want = bwd(p, x, want, dh)
    dense = k.forward(p, x, h0, c0)
    assert dense["cache"]["onehot"].size == B * T  # detected as one-hot
    tok = k.forward(p, ids, h0, c0)
    assert k.forward.accepts_token_ids
    for out in (dense, tok):
        assert rel(out["h"], want["h"]) < 1e-12
        g = k.backward(p, x, out, dh)
        for name in g_want:
            assert rel(g[name], g_want[name]) < 1e-10, name
    x[0, 0, 0] = 0.5  # no longer one-hot: the dense path, same answer
    assert k.forward(p, x, h0, c0)["cache"]["onehot"].size == 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_uneven_chunks_match_serial(cell, monkeypatch):
    p, x, h0, c0, dh = make(cell, 11, 4, 3, 5, seed=3)
    k = KERNELS[cell]
    out1 = k.forward(p, x, h0, c0)
    g1 = k.backward(p, x, out1, dh)
    monkeypatch.setattr(k, "chunks", lambda B, m: 3)  # 3 chunks of 3, 4, 4 rows
    out3 = k.forward(p, x, h0, c0)
    g3 = k.backward(p, x, out3, dh)
    monkeypatch.setattr(k, "chunks", lambda B, m: 1)
    g_serial = k.backward(p, x, k.forward(p, x, h0, c0), dh)
    assert rel(out3["h"], out1["h"]) < 1e-13
    for name in g1:
        assert rel(g3[name], g1[name]) < 1e-12, name
        assert rel(g_serial[name], g1[name]) < 1e-12, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("B", [1, 12])
def test_float32_close_to_float64(cell, B):
    p, x, h0, c0, dh = make(cell, B, 20, 3, 16, seed=4)
    k = KERNELS[cell]
    out64 = k.forward(p, x, h0, c0)
    g64 = k.backward(p, x, out64, dh)
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    p32 = {n: f32(v) for n, v in p.items()}
    out32 = k.forward(p32, f32(x), f32(h0), f32(c0))
    assert out32["h"].dtype == np.float32
    assert rel(out32["h"], out64["h"]) < 2e-6
    g32 = k.backward(p32, f32(x), out32, f32(dh))
    for name in g64:
        assert g32[name].dtype == np.float32
        assert rel(g32[name], g64[name]) < 1e-4, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_nan_weights_propagate_in_float32(cell):
    p, x, h0, c0, dh = make(cell, 2, 3, 2, 8, dtype=np.float32)
    p["W_hh"][0, 0] = np.nan
    out = KERNELS[cell].forward(p, x, h0, c0)
    assert np.isnan(out["h"]).any()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_model_uses_the_numba_kernels(cell):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 7, 2))
    target = rng.integers(0, 4, (3, 7))
    fast = Model(cell, 2, 6, 4, seed=1, dtype="float64")
    slow = Model(cell, 2, 6, 4, seed=1, dtype="float64", backend="numpy")
    assert fast._fwd is KERNELS[cell].forward
    l1, g1 = fast.loss_and_grads(x, target, "xent")
    l2, g2 = slow.loss_and_grads(x, target, "xent")
    assert abs(l1 - l2) < 1e-13
    for name in g2:
        assert rel(g1[name], g2[name]) < 1e-10, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradients_match_torch_autograd(cell):
    torch = pytest.importorskip("torch")
    B, T, I, H, O = 4, 6, 3, 5, 2
    m = Model(cell, I, H, O, seed=2, dtype="float64")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(B, T, I))
    y = rng.normal(size=(B, T, O))
    loss, g = m.loss_and_grads(x, y, "mse")
    net = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](I, H, batch_first=True).double()
    head = torch.nn.Linear(H, O).double()
    rnn_state, head_state = m.to_torch()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in rnn_state.items()})
    head.load_state_dict({k: torch.from_numpy(v) for k, v in head_state.items()})
    xt = torch.from_numpy(x).requires_grad_()
    tl = torch.nn.functional.mse_loss(head(net(xt)[0]), torch.from_numpy(y))
    tl.backward()
    assert abs(tl.item() - loss) < 1e-12
    want = {"W_xh": net.weight_ih_l0.grad, "W_hh": net.weight_hh_l0.grad,
            "b_xh": net.bias_ih_l0.grad, "b_hh": net.bias_hh_l0.grad,
            "W_hy": head.weight.grad, "b_y": head.bias.grad, "x": xt.grad}
    for name, v in want.items():
        assert rel(g[name], v.numpy()) < 1e-10, name
