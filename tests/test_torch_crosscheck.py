"""The engine against PyTorch: forward, losses, every gradient, SGD and Adam steps.

torch.nn.RNN/GRU/LSTM(batch_first=True) + torch.nn.Linear with the same weights (through
`to_torch`/`load_torch`). Skipped when torch is not installed (`pip install .[bench]`).
"""

import numpy as np
import pytest

from rnnviewer.engine import SGD, Adam, Model

torch = pytest.importorskip("torch")

CELLS = ("rnn", "gru", "lstm")
BACKENDS = ("numba", "numpy")
B, T, I, H, O = 3, 5, 4, 6, 3


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torch_modules(model):
    """nn.<Cell> + nn.Linear (and the matching nn.<Cell>Cell) holding model's weights."""
    dt = torch.float64 if model.dtype == np.float64 else torch.float32
    rnn_cls, cell_cls = {"rnn": (torch.nn.RNN, torch.nn.RNNCell),
                         "gru": (torch.nn.GRU, torch.nn.GRUCell),
                         "lstm": (torch.nn.LSTM, torch.nn.LSTMCell)}[model.cell]
    rnn = rnn_cls(model.n_in, model.n_hidden, batch_first=True).to(dt)
    cell = cell_cls(model.n_in, model.n_hidden).to(dt)
    head = torch.nn.Linear(model.n_hidden, model.n_out).to(dt)
    rnn_state, head_state = model.to_torch()
    rnn.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in rnn_state.items()})
    cell.load_state_dict({k[:-3]: torch.from_numpy(v.copy()) for k, v in rnn_state.items()})
    head.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in head_state.items()})
    return rnn, cell, head


def torch_loss(y, target, loss, mask):
    """torch's MSELoss / CrossEntropyLoss means; a 0/1 mask drops positions from the mean."""
    w = torch.ones(y.shape[:2], dtype=y.dtype) if mask is None else \
        torch.from_numpy(mask.astype(np.float64)).to(y.dtype)
    if loss == "mse":
        if mask is None:
            return torch.nn.functional.mse_loss(y, target)
        return ((y - target) ** 2 * w[..., None]).sum() / (w.sum() * y.shape[-1])
    per = torch.nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]), target.reshape(-1),
                                            reduction="none").reshape(w.shape)
    if mask is None:
        return per.mean()
    return (per * w).sum() / w.sum()


def data(cell, loss, masked, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    target = rng.integers(0, O, (B, T)) if loss == "xent" else \
        rng.normal(size=(B, T, O)).astype(dtype)
    mask = None
    if masked:
        mask = rng.random((B, T)) < 0.7
        mask[0, 0] = True
    h0 = rng.normal(scale=0.5, size=(B, H)).astype(dtype)
    c0 = rng.normal(scale=0.5, size=(B, H)).astype(dtype)
    return x, target, mask, h0, c0


def torch_reference(model, x, target, loss, mask, h0, c0):
    """loss, y, h, grads (params, x, h = total dL/dh_t, h0, c0) computed by torch."""
    rnn, cell, head = torch_modules(model)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    tt = torch.from_numpy(target)
    h0t = torch.from_numpy(h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(c0.copy()).requires_grad_(True)
    state = (h0t[None], c0t[None]) if model.cell == "lstm" else h0t[None]
    out, _ = rnn(xt, state)
    y = head(out)
    value = torch_loss(y, tt, loss, mask)
    value.backward()
    rnn_grads = {k: p.grad.numpy().copy() for k, p in rnn.named_parameters()}
    head_grads = {k: p.grad.numpy().copy() for k, p in head.named_parameters()}
    grads = {"x": xt.grad.numpy(), "h0": h0t.grad.numpy()}
    if model.cell == "lstm":
        grads["c0"] = c0t.grad.numpy()
    # total dL/dh_t: unroll the same cell step by step and keep every h_t's gradient
    hs = []
    h, c = torch.from_numpy(h0.copy()), torch.from_numpy(c0.copy())
    xs = torch.from_numpy(x.copy())
    for t in range(x.shape[1]):
        if model.cell == "lstm":
            h, c = cell(xs[:, t], (h, c))
        else:
            h = cell(xs[:, t], h)
        h.retain_grad()
        hs.append(h)
    y2 = head(torch.stack(hs, dim=1))
    torch_loss(y2, tt, loss, mask).backward()
    grads["h"] = torch.stack([h.grad for h in hs], dim=1).numpy()
    return value.item(), y.detach().numpy(), out.detach().numpy(), rnn_grads, head_grads, grads


def compare(model, x, target, loss, mask, h0, c0, tol, inputs=None):
    h0arg = (h0, c0) if model.cell == "lstm" else h0
    feed = x if inputs is None else inputs
    tr = model.forward(feed, h0=h0arg)
    value, grads = model.loss_and_grads(feed, target, loss, h0=h0arg, mask=mask)
    ref_value, y, h, rnn_g, head_g, other = torch_reference(model, x, target, loss, mask, h0, c0)

    def close(a, b, what):
        scale = max(1.0, float(np.max(np.abs(b))))
        err = float(np.max(np.abs(np.asarray(a, np.float64) - b)))
        assert err <= tol * scale, (what, err)

    assert abs(value - ref_value) <= tol * max(1.0, abs(ref_value))
    close(tr.y, y, "y")
    close(tr.h, h, "h")
    g_rnn, g_head = model.to_torch(grads)
    for k, v in rnn_g.items():
        close(g_rnn[k], v, k)
    for k, v in head_g.items():
        close(g_head[k], v, k)
    for k, v in other.items():
        if k == "x" and inputs is not None:
            continue
        close(grads[k], v, k)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("masked", [False, True])
def test_float64_matches_torch_autograd(cell, backend, loss, masked):
    model = Model(cell, I, H, O, seed=4, dtype="float64", backend=backend)
    for k in model.params:
        model.params[k] *= 2.0
    x, target, mask, h0, c0 = data(cell, loss, masked, np.float64)
    compare(model, x, target, loss, mask, h0, c0, tol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_matches_torch_autograd(cell, backend):
    model = Model(cell, I, H, O, seed=5, dtype="float32", backend=backend)
    x, target, mask, h0, c0 = data(cell, "xent", True, np.float32, seed=2)
    compare(model, x, target, "xent", mask, h0, c0, tol=2e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_token_ids_match_torch_one_hot(cell):
    model = Model(cell, I, H, O, seed=6, dtype="float64")
    rng = np.random.default_rng(3)
    ids = rng.integers(0, I, (B, T))
    x = np.eye(I)[ids]
    _, target, mask, h0, c0 = data(cell, "xent", True, np.float64, seed=3)
    compare(model, x, target, "xent", mask, h0, c0, tol=1e-10, inputs=ids)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_training_steps_match_torch_optim(cell, opt_name):
    model = Model(cell, I, H, O, seed=7, dtype="float64")
    rnn, _, head = torch_modules(model)
    x, target, _, _, _ = data(cell, "xent", False, np.float64, seed=4)
    params = list(rnn.parameters()) + list(head.parameters())
    if opt_name == "sgd":
        ours, theirs = SGD(model.params, 0.3, momentum=0.9), torch.optim.SGD(params, 0.3,
                                                                                momentum=0.9)
    else:
        ours = Adam(model.params, 0.05, betas=(0.8, 0.99), eps=1e-7)
        theirs = torch.optim.Adam(params, 0.05, betas=(0.8, 0.99), eps=1e-7)
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)
    for _ in range(4):
        _, grads = model.loss_and_grads(x, target, "xent")
        ours.step(grads)
        theirs.zero_grad()
        out, _ = rnn(xt)
        torch_loss(head(out), tt, "xent", None).backward()
        theirs.step()
        rnn_state, head_state = model.to_torch()
        for k, v in rnn.state_dict().items():
            np.testing.assert_allclose(rnn_state[k], v.numpy(), rtol=1e-9, atol=1e-12)
        for k, v in head.state_dict().items():
            np.testing.assert_allclose(head_state[k], v.numpy(), rtol=1e-9, atol=1e-12)
