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


def check_mse_target(target, shape, dtype):
    """The mse target as a C-contiguous array of `dtype` with the shape of y."""
    try:
        target = np.ascontiguousarray(target, dtype=dtype)
    except (TypeError, ValueError):
        raise ConfigError("mse target must hold numbers") from None
    if target.shape != tuple(shape):
        raise ConfigError(f"mse target has shape {target.shape}, expected {tuple(shape)}")
    return target


def check_xent_target(target, shape):
    """The xent target (B, T) as C-contiguous int64 class ids in [0, O); shape is y's."""
    B, T, O = shape
    target = np.asarray(target)
    if target.shape != (B, T):
        raise ConfigError(f"xent target has shape {target.shape}, expected {(B, T)}")
    if not np.issubdtype(target.dtype, np.integer):
        raise ConfigError("xent target must hold integer class ids")
    if target.size and (target.min() < 0 or target.max() >= O):
        raise ConfigError(f"xent target ids must lie in [0, {O})")
    return np.ascontiguousarray(target, dtype=np.int64)


def check_target(loss, target, shape, dtype):
    return check_mse_target(target, shape, dtype) if loss == "mse" else \
        check_xent_target(target, shape)


def mse(y, target, mask=None):
    """Mean squared error over all B*T*O elements (masked positions dropped)."""
    B, T, O = y.shape
    target = check_mse_target(target, y.shape, y.dtype)
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
    target = check_xent_target(target, y.shape)
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
weights = _weights  # public name for the numba backend's fused readout + loss
