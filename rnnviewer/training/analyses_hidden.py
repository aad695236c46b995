"""Worker-side analyses of the hidden-state panels.

"top_contexts" (LSTMVis, Strobelt et al. 2018; Karpathy et al. 2015): run the model over a
few fixed validation batches and find, for every unit, the k places where it fires most
(and least), each with its context window aligned on the peak. All units at once, so the
neuron view switches units without waiting for the worker.
"""

import numpy as np

from rnnviewer.engine.analysis import top_k_contexts
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
    """
    acts = np.asarray(acts, dtype=np.float64)
    labels = np.asarray(labels, dtype=str)
    if acts.ndim != 3:
        raise ConfigError(f"acts must have shape (N, T, H), got {acts.shape}")
    N, T, H = acts.shape
    if labels.shape != (N, T):
        raise ConfigError(f"labels must have shape {(N, T)}, got {labels.shape}")
    W = before + after + 1
    flat_labels = np.append(labels.ravel(), "")                # index -1 -> ""
    where = np.arange(N * T).reshape(N, T)                     # position ids into labels
    out = {"before": int(before), "after": int(after), "n_sequences": int(N),
           "seq_len": int(T)}
    for mode in modes:
        pos = np.full((H, k, 2), -1, dtype=np.int64)
        val = np.full((H, k), np.nan)
        win = np.full((H, k, W), np.nan)
        lab = np.full((H, k, W), "", dtype=flat_labels.dtype)
        score = np.where(np.isfinite(acts), acts if mode == "max" else -acts, -np.inf)
        seq_best = score.max(axis=1)                           # (N, H)
        kth = -np.sort(-seq_best, axis=0)[min(k, N) - 1]       # (H,) k-th best sequence peak
        for u in range(H):
            # Only sequences whose peak reaches the k-th best sequence peak can hold one of
            # the k contexts (each of the k best sequences gives one at least as high), so
            # the search runs on those alone: the same contexts, about N / k times faster.
            rows = np.flatnonzero(seq_best[:, u] >= kth[u])
            c = top_k_contexts(acts[rows, :, u:u + 1], 0, k=k, before=before, after=after,
                               inputs=where[rows], mode=mode)
            n = len(c.values)
            pos[u, :n] = np.c_[rows[c.positions[:, 0]], c.positions[:, 1]]
            val[u, :n] = c.values
            win[u, :n] = c.windows
            lab[u, :n] = flat_labels[c.inputs]
        out.update({f"{mode}_positions": pos, f"{mode}_values": val,
                    f"{mode}_windows": win, f"{mode}_labels": lab})
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
