"""Losses with torch's mean reduction, returning (loss, dL/dy)."""

import numpy as np

from rnnviewer.errors import ConfigError


def _weights(mask, B, T, dtype):
    """Per-position weights (B, T) and their count; mask None means all positions."""
    if mask is None:
        return None, B * T
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ConfigError(f"mask has shape {mask.shape}, expected {(B, T)}")
    if mask.dtype.kind not in "fiub" or not np.isfinite(mask).all() or (mask < 0).any():
        raise ConfigError("mask must hold finite weights >= 0 (1 = counts, 0 = ignored)")
    w = mask.astype(dtype)
    return w, float(w.sum())


def mse(y, target, mask=None):
    """Mean squared error over all B*T*O elements (masked positions dropped)."""
    B, T, O = y.shape
    try:
        target = np.asarray(target, dtype=y.dtype)
    except (TypeError, ValueError):
        raise ConfigError("mse target must hold numbers") from None
    if target.shape != y.shape:
        raise ConfigError(f"mse target has shape {target.shape}, expected {y.shape}")
    w, count = _weights(mask, B, T, y.dtype)
    diff = y - target  # (B, T, O)
    wdiff = diff if w is None else diff * w[:, :, None]
    denom = max(count, 1.0) * O
    # sum of w * diff^2: weights act linearly (as in xent), so dy is the exact gradient
    loss = float(np.sum(wdiff.astype(np.float64) * diff) / denom)
    return loss, (2.0 / denom) * wdiff


def log_softmax(y):
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def xent(y, target, mask=None):
    """Softmax cross-entropy; target (B, T) class ids; mean over (masked) positions."""
    B, T, O = y.shape
    target = np.asarray(target)
    if target.shape != (B, T):
        raise ConfigError(f"xent target has shape {target.shape}, expected {(B, T)}")
    if not np.issubdtype(target.dtype, np.integer):
        raise ConfigError("xent target must hold integer class ids")
    if target.size and (target.min() < 0 or target.max() >= O):
        raise ConfigError(f"xent target ids must lie in [0, {O})")
    w, count = _weights(mask, B, T, y.dtype)
    logp = log_softmax(y)  # (B, T, O)
    picked = np.take_along_axis(logp, target[..., None], axis=-1)[..., 0]  # (B, T)
    denom = max(count, 1.0)
    dy = np.exp(logp)
    np.put_along_axis(dy, target[..., None],
                      np.take_along_axis(dy, target[..., None], axis=-1) - 1.0, axis=-1)
    if w is not None:
        picked = picked * w
        dy *= w[:, :, None]
    loss = float(-np.sum(picked, dtype=np.float64) / denom)
    return loss, (dy / denom).astype(y.dtype)


LOSSES = {"mse": mse, "xent": xent}
