"""Plain-numpy RNN, GRU and LSTM cells: forward and full BPTT.

The benchmark's numpy baseline and the engine's fallback when numba is unavailable.
Only the recurrent product stays inside the time loop; the input projection for all
timesteps and every weight gradient are single large matrix multiplies.

Layout (torch-compatible): W_xh (G*H, I), W_hh (G*H, H), b_xh (G*H,), b_hh (G*H,).
forward(p, x, h0, c0) -> dict(h, c, gates, cache); backward(p, x, out, dh_out) -> grads
with W_xh, W_hh, b_xh, b_hh, "x" (B,T,I), "h" (B,T,H) total dL/dh_t, "h0" (and "c0").
backward(..., params=False) skips the parameter gradients (the weight products and bias
sums) and returns only "x", "h", "h0" (and "c0"), with the same values.
"""

import numpy as np


def _sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def _weight_grads(p, x, da_in, da_hh, h_prev, params=True):
    """dW_xh, db_xh from the input pre-activations; dW_hh, db_hh from the recurrent ones
    (params=False: only "x" = dL/dx)."""
    if not params:
        return {"x": da_in @ p["W_xh"]}
    B, T, I = x.shape
    G = da_in.shape[-1]
    flat_in = da_in.reshape(B * T, G)
    flat_hh = da_hh.reshape(B * T, G)
    return {
        "W_xh": flat_in.T @ x.reshape(B * T, I),
        "b_xh": flat_in.sum(0),
        "W_hh": flat_hh.T @ h_prev.reshape(B * T, -1),
        "b_hh": flat_hh.sum(0),
        "x": da_in @ p["W_xh"],
    }


def _shifted(h, h0):
    """h_{t-1} for every t: (B, T, H) with h0 in front."""
    return np.concatenate([h0[:, None, :], h[:, :-1, :]], axis=1)


# ---------------------------------------------------------------- Elman RNN
def rnn_forward(p, x, h0, c0=None):
    B, T, _ = x.shape
    H = p["W_hh"].shape[1]
    xp = x @ p["W_xh"].T + (p["b_xh"] + p["b_hh"])  # (B, T, H)
    h = np.empty((B, T, H), dtype=x.dtype)
    prev = h0
    W_hh_T = p["W_hh"].T
    for t in range(T):
        prev = np.tanh(xp[:, t] + prev @ W_hh_T)
        h[:, t] = prev
    return {"h": h, "c": None, "gates": {}, "cache": {"h0": h0}}


def rnn_backward(p, x, out, dh_out, params=True):
    h, h0 = out["h"], out["cache"]["h0"]
    B, T, H = h.shape
    da = np.empty_like(h)  # (B, T, H) gradient at the pre-activation
    dh_total = np.empty_like(h)
    dnext = np.zeros((B, H), dtype=h.dtype)
    W_hh = p["W_hh"]
    for t in range(T - 1, -1, -1):
        dh = dh_out[:, t] + dnext
        dh_total[:, t] = dh
        a = dh * (1.0 - h[:, t] * h[:, t])
        da[:, t] = a
        dnext = a @ W_hh
    g = _weight_grads(p, x, da, da, _shifted(h, h0) if params else None, params)
    g["h"] = dh_total
    g["h0"] = dnext
    return g


def rnn_step(p, state, x):
    return np.tanh(x @ p["W_xh"].T + p["b_xh"] + p["b_hh"] + state @ p["W_hh"].T)


# ---------------------------------------------------------------- GRU (r, z, n)
def gru_forward(p, x, h0, c0=None):
    B, T, _ = x.shape
    H = p["W_hh"].shape[1]
    xp = x @ p["W_xh"].T + p["b_xh"]  # (B, T, 3H)
    h = np.empty((B, T, H), dtype=x.dtype)
    r = np.empty_like(h)
    z = np.empty_like(h)
    n = np.empty_like(h)
    hn = np.empty_like(h)  # W_hn h_{t-1} + b_hn, needed by backward
    prev = h0
    W_hh_T, b_hh = p["W_hh"].T, p["b_hh"]
    for t in range(T):
        hp = prev @ W_hh_T + b_hh  # (B, 3H)
        xt = xp[:, t]
        r[:, t] = _sigmoid(xt[:, :H] + hp[:, :H])
        z[:, t] = _sigmoid(xt[:, H:2 * H] + hp[:, H:2 * H])
        hn[:, t] = hp[:, 2 * H:]
        n[:, t] = np.tanh(xt[:, 2 * H:] + r[:, t] * hn[:, t])
        prev = (1.0 - z[:, t]) * n[:, t] + z[:, t] * prev
        h[:, t] = prev
    return {"h": h, "c": None, "gates": {"r": r, "z": z, "n": n},
            "cache": {"h0": h0, "hn": hn}}


def gru_backward(p, x, out, dh_out, params=True):
    h = out["h"]
    r, z, n = out["gates"]["r"], out["gates"]["z"], out["gates"]["n"]
    hn, h0 = out["cache"]["hn"], out["cache"]["h0"]
    B, T, H = h.shape
    h_prev = _shifted(h, h0)
    da_in = np.empty((B, T, 3 * H), dtype=h.dtype)
    da_hh = np.empty_like(da_in)
    dh_total = np.empty_like(h)
    dnext = np.zeros((B, H), dtype=h.dtype)
    W_hh = p["W_hh"]
    for t in range(T - 1, -1, -1):
        dh = dh_out[:, t] + dnext
        dh_total[:, t] = dh
        zt, nt, rt = z[:, t], n[:, t], r[:, t]
        dan = dh * (1.0 - zt) * (1.0 - nt * nt)
        daz = dh * (h_prev[:, t] - nt) * zt * (1.0 - zt)
        dar = dan * hn[:, t] * rt * (1.0 - rt)
        da_in[:, t, :H], da_in[:, t, H:2 * H], da_in[:, t, 2 * H:] = dar, daz, dan
        da_hh[:, t, :H], da_hh[:, t, H:2 * H], da_hh[:, t, 2 * H:] = dar, daz, dan * rt
        dnext = dh * zt + da_hh[:, t] @ W_hh
    g = _weight_grads(p, x, da_in, da_hh, h_prev, params)
    g["h"] = dh_total
    g["h0"] = dnext
    return g


def gru_step(p, state, x):
    H = state.shape[-1]
    xp = x @ p["W_xh"].T + p["b_xh"]
    hp = state @ p["W_hh"].T + p["b_hh"]
    r = _sigmoid(xp[..., :H] + hp[..., :H])
    z = _sigmoid(xp[..., H:2 * H] + hp[..., H:2 * H])
    n = np.tanh(xp[..., 2 * H:] + r * hp[..., 2 * H:])
    return (1.0 - z) * n + z * state


# ---------------------------------------------------------------- LSTM (i, f, g, o)
def lstm_forward(p, x, h0, c0):
    B, T, _ = x.shape
    H = p["W_hh"].shape[1]
    xp = x @ p["W_xh"].T + (p["b_xh"] + p["b_hh"])  # (B, T, 4H)
    h = np.empty((B, T, H), dtype=x.dtype)
    c = np.empty_like(h)
    gi, gf, gg, go = (np.empty_like(h) for _ in range(4))
    hp, cp = h0, c0
    W_hh_T = p["W_hh"].T
    for t in range(T):
        a = xp[:, t] + hp @ W_hh_T
        gi[:, t] = _sigmoid(a[:, :H])
        gf[:, t] = _sigmoid(a[:, H:2 * H])
        gg[:, t] = np.tanh(a[:, 2 * H:3 * H])
        go[:, t] = _sigmoid(a[:, 3 * H:])
        cp = gf[:, t] * cp + gi[:, t] * gg[:, t]
        hp = go[:, t] * np.tanh(cp)
        c[:, t], h[:, t] = cp, hp
    return {"h": h, "c": c, "gates": {"i": gi, "f": gf, "g": gg, "o": go},
            "cache": {"h0": h0, "c0": c0}}


def lstm_backward(p, x, out, dh_out, dc_out=None, params=True):
    h, c = out["h"], out["c"]
    gi, gf, gg, go = (out["gates"][k] for k in "ifgo")
    h0, c0 = out["cache"]["h0"], out["cache"]["c0"]
    B, T, H = h.shape
    c_prev = _shifted(c, c0)
    da = np.empty((B, T, 4 * H), dtype=h.dtype)
    dh_total = np.empty_like(h)
    dh_next = np.zeros((B, H), dtype=h.dtype)
    dc_next = np.zeros((B, H), dtype=h.dtype)
    W_hh = p["W_hh"]
    for t in range(T - 1, -1, -1):
        dh = dh_out[:, t] + dh_next
        dh_total[:, t] = dh
        tc = np.tanh(c[:, t])
        dc = dc_next + dh * go[:, t] * (1.0 - tc * tc)
        if dc_out is not None:
            dc = dc + dc_out[:, t]
        i, f, g, o = gi[:, t], gf[:, t], gg[:, t], go[:, t]
        da[:, t, :H] = dc * g * i * (1.0 - i)
        da[:, t, H:2 * H] = dc * c_prev[:, t] * f * (1.0 - f)
        da[:, t, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        da[:, t, 3 * H:] = dh * tc * o * (1.0 - o)
        dc_next = dc * f
        dh_next = da[:, t] @ W_hh
    g = _weight_grads(p, x, da, da, _shifted(h, h0) if params else None, params)
    g["h"] = dh_total
    g["h0"] = dh_next
    g["c0"] = dc_next
    return g


def lstm_step(p, state, x):
    """state (N, 2H) = [h, c] -> next [h, c]."""
    H = state.shape[-1] // 2
    hp, cp = state[..., :H], state[..., H:]
    a = x @ p["W_xh"].T + p["b_xh"] + p["b_hh"] + hp @ p["W_hh"].T
    i, f = _sigmoid(a[..., :H]), _sigmoid(a[..., H:2 * H])
    g, o = np.tanh(a[..., 2 * H:3 * H]), _sigmoid(a[..., 3 * H:])
    c = f * cp + i * g
    return np.concatenate([o * np.tanh(c), c], axis=-1)


CELLS = {
    "rnn": (rnn_forward, rnn_backward, rnn_step),
    "gru": (gru_forward, gru_backward, gru_step),
    "lstm": (lstm_forward, lstm_backward, lstm_step),
}
