"""Worker-side analyses of the hidden-state panels.

"top_contexts" (LSTMVis, Strobelt et al. 2018; Karpathy et al. 2015): run the model over a
few fixed validation batches and find, for every unit, the k places where it fires most
(and least), each with its context window aligned on the peak. All units at once, so the
neuron view switches units without waiting for the worker.
"""

import numpy as np

from rnnviewer.errors import ConfigError
from rnnviewer.training.analyses import register_analysis

MODES = ("max", "min")
DEFAULTS = {"k": 8, "before": 24, "after": 8, "batches": 2, "batch_size": 32, "state": "h"}


def contexts_all_units(acts, labels, k=8, before=24, after=8, modes=MODES):
    """Top-k contexts of every unit.

    acts (N, T, H) activations; labels (N, T) str, the input shown at each position.
    Returns a dict, per mode m in `modes` ("max": highest values, "min": lowest):
        m_positions (H, k, 2) int (sequence, t), -1 where a unit has fewer than k peaks
        m_values    (H, k)    activation at the peak, NaN if missing
        m_windows   (H, k, W) activations from t - before to t + after, NaN outside
        m_labels    (H, k, W) input labels of the window, "" outside
    with W = before + after + 1, plus "before", "after", "n_sequences", "seq_len".

    The same greedy search as engine.analysis.top_k_contexts (strongest first, a peak
    whose window overlaps a chosen one's is skipped, ties to the first position), done
    for all units at once: k rounds of one argmax over (H, N*T) and a masking of the
    chosen windows. About 10x faster than a search per unit at H=128 (150 ms against
    13 ms): it runs in the training thread, so its cost is training time.
    """
    acts = np.asarray(acts, dtype=np.float64)
    labels = np.asarray(labels, dtype=str)
    if acts.ndim != 3:
        raise ConfigError(f"acts must have shape (N, T, H), got {acts.shape}")
    N, T, H = acts.shape
    if labels.shape != (N, T):
        raise ConfigError(f"labels must have shape {(N, T)}, got {labels.shape}")
    W = before + after + 1
    span = before + after
    flat_labels = np.append(labels.ravel(), "")                # index -1 -> ""
    vals = np.ascontiguousarray(acts.transpose(2, 0, 1))       # (H, N, T)
    # every window as indices into (N, T) positions: -1 outside the sequence
    offs = np.arange(W) - before                               # (W,)
    out = {"before": int(before), "after": int(after), "n_sequences": int(N),
           "seq_len": int(T)}
    units = np.arange(H)
    for mode in modes:
        score = np.where(np.isfinite(vals), vals if mode == "max" else -vals, -np.inf)
        score = score.reshape(H, N * T)                        # (H, N*T), a copy
        pos = np.full((H, k, 2), -1, dtype=np.int64)
        for j in range(k):
            best = np.argmax(score, axis=1)                    # (H,) first of the ties
            ok = score[units, best] > -np.inf
            if not ok.any():
                break
            n, t = np.divmod(best, T)
            pos[ok, j, 0], pos[ok, j, 1] = n[ok], t[ok]
            # no later peak within `span` of this one in the same sequence
            lo = np.maximum(t - span, 0)
            cols = lo[:, None] + np.arange(2 * span + 1)[None]  # (H, 2*span+1)
            inside = cols <= np.minimum(t + span, T - 1)[:, None]
            rows = np.broadcast_to(units[:, None], cols.shape)[inside & ok[:, None]]
            flat = (n[:, None] * T + cols)[inside & ok[:, None]]
            score[rows, flat] = -np.inf
        have = pos[:, :, 0] >= 0                               # (H, k)
        ts = pos[:, :, 1:2] + offs                             # (H, k, W)
        inw = have[:, :, None] & (ts >= 0) & (ts < T)
        seq = np.broadcast_to(pos[:, :, :1], ts.shape)
        idx = np.where(inw, seq * T + ts, -1)                  # into (N*T), -1 outside
        flat_vals = vals.reshape(H, N * T)
        win = np.where(inw, flat_vals[units[:, None, None], np.maximum(idx, 0)], np.nan)
        val = np.where(have, win[:, :, before], np.nan)
        out.update({f"{mode}_positions": pos, f"{mode}_values": val,
                    f"{mode}_windows": win, f"{mode}_labels": flat_labels[idx]})
    return out


def _option(options, name, low, high):
    v = options.get(name, DEFAULTS[name])
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high:
        raise ConfigError(f"top_contexts: {name} must be an integer in [{low}, {high}], "
                          f"got {v!r}")
    return int(v)


@register_analysis("top_contexts", min_interval=3.0)
def top_contexts(ctx, options):
    """Options: k, before, after, batches, batch_size, state ("h", or "c" for an LSTM)."""
    k = _option(options, "k", 1, 100)
    before = _option(options, "before", 0, 200)
    after = _option(options, "after", 0, 200)
    n_batches = _option(options, "batches", 1, 64)
    batch_size = _option(options, "batch_size", 1, 1024)
    state = options.get("state", "h")
    if state not in ("h", "c"):
        raise ConfigError(f"top_contexts: state must be 'h' or 'c', got {state!r}")
    xs, acts = [], []
    for b in ctx.task.val_batches(n_batches, batch_size):
        tr = ctx.model.forward(b.x)
        if state == "c" and tr.c is None:
            raise ConfigError("top_contexts: only an LSTM has a cell state c")
        xs.append(b.x)
        acts.append(tr.c if state == "c" else tr.h)
    x = np.concatenate(xs)                                     # (N, T, I)
    acts = np.concatenate(acts)                                # (N, T, H)
    labels = np.array([ctx.task.render_inputs(seq) for seq in x], dtype=str)   # (N, T)
    out = contexts_all_units(acts, labels, k, before, after)
    out["state"] = state
    return out
