"""One step of a model's dynamics, F(state, x), and its analytic Jacobian dF/dstate.

The state is h (N, H) for the RNN and GRU and [h, c] (N, 2H) for the LSTM, as in
`Model.step_state`. Everything here is computed in float64 from the model's
parameters (gate order and layout as in docs/developer-guide.md), whatever the
model's dtype: fixed points and eigenvalues need the precision.
"""

import numpy as np

from rnnviewer.errors import ConfigError


def _sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def params64(model):
    """The model's parameters as float64 arrays."""
    return {k: np.asarray(v, dtype=np.float64) for k, v in model.params.items()}


def as_states(model, state):
    """state (S,) or (N, S) -> float64 (N, S); S = model.state_size."""
    s = np.asarray(state, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != model.state_size:
        raise ConfigError(f"states must have shape (N, {model.state_size}) for this "
                          f"{model.cell} (state size {model.state_size}), got {np.shape(state)}")
    return s


def as_inputs(model, x, n):
    """x None (zeros), (I,) or (N, I) -> float64 (N, I)."""
    if x is None:
        return np.zeros((n, model.n_in))
    x = np.asarray(x, dtype=np.float64)
    if x.shape not in ((model.n_in,), (n, model.n_in)):
        raise ConfigError(f"input must have shape ({model.n_in},) or ({n}, {model.n_in}), "
                          f"got {x.shape}")
    return np.broadcast_to(x, (n, model.n_in))


def _diag_rows(v, W):
    """diag(v) @ W for a batch: v (N, H), W (H, K) -> (N, H, K)."""
    return v[:, :, None] * W[None, :, :]


def _rnn(p, s, x, jac=True):
    a = x @ p["W_xh"].T + p["b_xh"] + p["b_hh"] + s @ p["W_hh"].T  # (N, H)
    h = np.tanh(a)
    if not jac:
        return h, None
    return h, _diag_rows(1.0 - h * h, p["W_hh"])


def _gru(p, s, x, jac=True):
    H = s.shape[1]
    W = p["W_hh"]
    W_r, W_z, W_n = W[:H], W[H:2 * H], W[2 * H:]
    xp = x @ p["W_xh"].T + p["b_xh"]  # (N, 3H)
    hp = s @ W.T + p["b_hh"]          # (N, 3H)
    r = _sigmoid(xp[:, :H] + hp[:, :H])
    z = _sigmoid(xp[:, H:2 * H] + hp[:, H:2 * H])
    hn = hp[:, 2 * H:]
    n = np.tanh(xp[:, 2 * H:] + r * hn)
    h = (1.0 - z) * n + z * s
    if not jac:
        return h, None
    dr = _diag_rows(r * (1.0 - r), W_r)                            # (N, H, H)
    dz = _diag_rows(z * (1.0 - z), W_z)
    dn = (1.0 - n * n)[:, :, None] * (hn[:, :, None] * dr + _diag_rows(r, W_n))
    J = (1.0 - z)[:, :, None] * dn + (s - n)[:, :, None] * dz
    J[:, np.arange(H), np.arange(H)] += z
    return h, J


def _lstm(p, s, x, jac=True):
    H = s.shape[1] // 2
    hp, cp = s[:, :H], s[:, H:]
    W = p["W_hh"]
    a = x @ p["W_xh"].T + p["b_xh"] + p["b_hh"] + hp @ W.T  # (N, 4H)
    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    c = f * cp + i * g
    tc = np.tanh(c)
    h = o * tc
    if not jac:
        return np.concatenate([h, c], axis=1), None
    di = _diag_rows(i * (1.0 - i), W[:H])                          # (N, H, H)
    df = _diag_rows(f * (1.0 - f), W[H:2 * H])
    dg = _diag_rows(1.0 - g * g, W[2 * H:3 * H])
    do = _diag_rows(o * (1.0 - o), W[3 * H:])
    dc_dh = cp[:, :, None] * df + g[:, :, None] * di + i[:, :, None] * dg
    dh_dc_new = o * (1.0 - tc * tc)                                # (N, H)
    N = s.shape[0]
    J = np.zeros((N, 2 * H, 2 * H))
    J[:, :H, :H] = tc[:, :, None] * do + dh_dc_new[:, :, None] * dc_dh
    idx = np.arange(H)
    J[:, idx, H + idx] = dh_dc_new * f
    J[:, H:, :H] = dc_dh
    J[:, H + idx, H + idx] = f
    return np.concatenate([h, c], axis=1), J


_CELLS = {"rnn": _rnn, "gru": _gru, "lstm": _lstm}


def step_and_jacobian(model, state, x=None, params=None):
    """(F (N, S), J (N, S, S)) with J[n] = dF/dstate at state[n], input x (I,) or (N, I).

    `params` may pass precomputed `params64(model)` to save the conversion in loops.
    """
    s = as_states(model, state)
    x = as_inputs(model, x, s.shape[0])
    p = params64(model) if params is None else params
    return _CELLS[model.cell](p, s, x)


def jacobian(model, state, x=None, params=None):
    """dF/dstate (N, S, S) of one step at each state (N, S) with input x."""
    return step_and_jacobian(model, state, x, params)[1]


def step(model, state, x=None, params=None):
    """F(state, x) (N, S) in float64; the same map as `Model.step_state`."""
    s = as_states(model, state)
    x = as_inputs(model, x, s.shape[0])
    p = params64(model) if params is None else params
    return _CELLS[model.cell](p, s, x, jac=False)[0]
