"""Deliberately simple reference: one example, one timestep at a time, plain numpy.

Written from the equations, independently of the engine (stumpy's tests/naive.py
style): slow and obvious. Parameters use the engine's (torch's) layout and gate order:

    rnn   h = tanh(W_xh x + b_xh + W_hh h + b_hh)
    gru   r, z = sig(W_i* x + b_i* + W_h* h + b_h*);  n = tanh(W_in x + b_in + r (W_hn h + b_hn))
          h = (1 - z) n + z h
    lstm  i, f, o = sig(.), g = tanh(.) of W_x* x + b_x* + W_h* h + b_h*
          c = f c + i g;  h = o tanh(c)
    y = W_hy h + b_y

`forward(..., dh_offset=d)` adds d[b, t] to h_t right after it is computed (the next
step sees the shifted value): d loss / d offset is the total gradient reaching h_t,
which is what the engine reports as grads["h"].
"""

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def one_hot(ids, n):
    out = np.zeros(np.shape(ids) + (n,))
    for idx in np.ndindex(np.shape(ids)):
        out[idx + (ids[idx],)] = 1.0
    return out


def _blocks(v, H):
    return [v[k * H:(k + 1) * H] for k in range(len(v) // H)]


def forward(cell, p, x, h0=None, c0=None, dh_offset=None):
    """x (B, T, I) -> dict h (B,T,H), c (B,T,H) or None, gates name -> (B,T,H), y or None."""
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    H = p["W_hh"].shape[1]
    h_all = np.zeros((B, T, H))
    c_all = np.zeros((B, T, H))
    names = {"rnn": "", "gru": "rzn", "lstm": "ifgo"}[cell]
    gates = {k: np.zeros((B, T, H)) for k in names}
    for b in range(B):
        h = np.zeros(H) if h0 is None else np.array(h0[b], np.float64)
        c = np.zeros(H) if c0 is None else np.array(c0[b], np.float64)
        for t in range(T):
            ax = p["W_xh"] @ x[b, t] + p["b_xh"]
            ah = p["W_hh"] @ h + p["b_hh"]
            if cell == "rnn":
                h = np.tanh(ax + ah)
            elif cell == "gru":
                xr, xz, xn = _blocks(ax, H)
                hr, hz, hn = _blocks(ah, H)
                r = sigmoid(xr + hr)
                z = sigmoid(xz + hz)
                n = np.tanh(xn + r * hn)
                h = (1.0 - z) * n + z * h
                gates["r"][b, t], gates["z"][b, t], gates["n"][b, t] = r, z, n
            else:
                ai, af, ag, ao = _blocks(ax + ah, H)
                i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
                c = f * c + i * g
                h = o * np.tanh(c)
                for k, v in zip("ifgo", (i, f, g, o)):
                    gates[k][b, t] = v
                c_all[b, t] = c
            if dh_offset is not None:
                h = h + dh_offset[b, t]
            h_all[b, t] = h
    y = None
    if "W_hy" in p:
        y = np.zeros((B, T, p["W_hy"].shape[0]))
        for b in range(B):
            for t in range(T):
                y[b, t] = p["W_hy"] @ h_all[b, t] + p["b_y"]
    return {"h": h_all, "c": c_all if cell == "lstm" else None, "gates": gates, "y": y}


def loss_value(y, target, loss, mask=None):
    """torch's mean reduction; mask (B, T) weights positions (dropped where 0)."""
    B, T, O = y.shape
    w = np.ones((B, T)) if mask is None else np.asarray(mask, np.float64)
    count = max(w.sum(), 1.0)
    total = 0.0
    for b in range(B):
        for t in range(T):
            if loss == "mse":
                total += w[b, t] * np.sum((y[b, t] - target[b, t]) ** 2)
            else:
                z = y[b, t] - y[b, t].max()
                logp = z - np.log(np.sum(np.exp(z)))
                total -= w[b, t] * logp[target[b, t]]
    return total / (count * O) if loss == "mse" else total / count


def loss_grad(y, target, loss, mask=None):
    """dL/dy (B, T, O) of `loss_value`."""
    B, T, O = y.shape
    w = np.ones((B, T)) if mask is None else np.asarray(mask, np.float64)
    count = max(w.sum(), 1.0)
    dy = np.zeros_like(y)
    for b in range(B):
        for t in range(T):
            if loss == "mse":
                dy[b, t] = w[b, t] * 2.0 * (y[b, t] - target[b, t]) / (count * O)
            else:
                e = np.exp(y[b, t] - y[b, t].max())
                q = e / e.sum()
                q[target[b, t]] -= 1.0
                dy[b, t] = w[b, t] * q / count
    return dy


def backward(cell, p, x, h0, c0, fwd, dy=None, dh_extra=None):
    """Manual BPTT, example by example, step by step, from dL/dy and an extra dL/dh_t.

    Returns grads for every parameter in p plus "x", "h" (total dL/dh_t), "h0" ("c0").
    """
    x = np.asarray(x, np.float64)
    B, T, I = x.shape
    H = p["W_hh"].shape[1]
    G = GATES[cell] * H
    g = {k: np.zeros_like(v, dtype=np.float64) for k, v in p.items()}
    g.update(x=np.zeros((B, T, I)), h=np.zeros((B, T, H)), h0=np.zeros((B, H)))
    if cell == "lstm":
        g["c0"] = np.zeros((B, H))
    h_all, c_all, gates = fwd["h"], fwd["c"], fwd["gates"]
    for b in range(B):
        dh_next = np.zeros(H)
        dc_next = np.zeros(H)
        for t in range(T - 1, -1, -1):
            dh = dh_next.copy()
            if dy is not None:
                g["W_hy"] += np.outer(dy[b, t], h_all[b, t])
                g["b_y"] += dy[b, t]
                dh += p["W_hy"].T @ dy[b, t]
            if dh_extra is not None:
                dh += dh_extra[b, t]
            g["h"][b, t] = dh
            h_prev = (np.zeros(H) if h0 is None else h0[b]) if t == 0 else h_all[b, t - 1]
            da_x = np.zeros(G)  # grad at W_xh x + b_xh
            da_h = np.zeros(G)  # grad at W_hh h + b_hh
            if cell == "rnn":
                da = dh * (1.0 - h_all[b, t] ** 2)
                da_x[:], da_h[:] = da, da
            elif cell == "gru":
                r, z, n = gates["r"][b, t], gates["z"][b, t], gates["n"][b, t]
                hn = p["W_hh"][2 * H:] @ h_prev + p["b_hh"][2 * H:]
                dn = dh * (1.0 - z)
                dz = dh * (h_prev - n)
                dan = dn * (1.0 - n ** 2)
                dar = dan * hn * r * (1.0 - r)
                daz = dz * z * (1.0 - z)
                da_x[:] = np.concatenate([dar, daz, dan])
                da_h[:] = np.concatenate([dar, daz, dan * r])
                dh_prev_direct = dh * z
            else:
                i, f, gg, o = (gates[k][b, t] for k in "ifgo")
                c = c_all[b, t]
                c_prev = (np.zeros(H) if c0 is None else c0[b]) if t == 0 else c_all[b, t - 1]
                tc = np.tanh(c)
                do = dh * tc
                dc = dc_next + dh * o * (1.0 - tc ** 2)
                di, df, dg = dc * gg, dc * c_prev, dc * i
                da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - gg ** 2),
                                     do * o * (1 - o)])
                da_x[:], da_h[:] = da, da
                dc_next = dc * f
            g["W_xh"] += np.outer(da_x, x[b, t])
            g["b_xh"] += da_x
            g["W_hh"] += np.outer(da_h, h_prev)
            g["b_hh"] += da_h
            g["x"][b, t] = p["W_xh"].T @ da_x
            dh_next = p["W_hh"].T @ da_h
            if cell == "gru":
                dh_next = dh_next + dh_prev_direct
        g["h0"][b] = dh_next
        if cell == "lstm":
            g["c0"][b] = dc_next
    return g


def loss_and_grads(cell, p, x, target, loss, h0=None, c0=None, mask=None):
    """(loss, grads, fwd) of the model with readout p["W_hy"], p["b_y"]."""
    fwd = forward(cell, p, x, h0, c0)
    value = loss_value(fwd["y"], target, loss, mask)
    dy = loss_grad(fwd["y"], target, loss, mask)
    return value, backward(cell, p, x, h0, c0, fwd, dy=dy), fwd
