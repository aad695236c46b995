"""Model checkpoints: one .npz with the config (JSON) and the parameters.

Keys: "rnnviewer/format" = "rnnviewer-model", "rnnviewer/version", "rnnviewer/config"
(JSON), "param/<name>". Session files add their own keys beside these, so
`load` opens a session file too.
"""

import numpy as np

from rnnviewer.engine.model import Model, check_config, param_shapes
from rnnviewer.engine.npzio import json_array, read_json, read_npz, scalar_int, write_npz
from rnnviewer.errors import CheckpointError, ConfigError

FORMAT = "rnnviewer-model"
VERSION = 1


def model_arrays(model):
    """The arrays that describe `model` in a checkpoint (add more keys and write_npz)."""
    arrays = {"rnnviewer/format": np.asarray(FORMAT), "rnnviewer/version": np.asarray(VERSION),
              "rnnviewer/config": json_array(model.config)}
    arrays.update({f"param/{k}": v for k, v in model.params.items()})
    return arrays


def save(model, path):
    """Atomically write `model` to `path` (.npz)."""
    write_npz(path, model_arrays(model))


def model_from_arrays(arrays, path):
    """Rebuild the Model stored in `arrays` (as read by read_npz); CheckpointError if wrong.

    The config and every parameter's shape, dtype and values are checked before the
    model is built, so a hostile config cannot make it allocate gigabytes.
    """
    fmt = arrays.get("rnnviewer/format")
    if fmt is None or fmt.dtype.kind != "U" or fmt.ndim != 0 or str(fmt[()]) != FORMAT:
        raise CheckpointError(f"{path}: not an rnnviewer checkpoint")
    version = scalar_int(arrays, "rnnviewer/version")
    if version is None:
        raise CheckpointError(f"{path}: missing or bad format version")
    if version > VERSION:
        raise CheckpointError(f"{path}: written by a newer rnnviewer (format {version})")
    cfg = read_json(arrays, "rnnviewer/config", path)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: config is not a JSON object")
    try:
        cfg = {k: cfg[k] for k in ("cell", "n_in", "n_hidden", "n_out", "seed", "dtype")}
    except KeyError as e:
        raise CheckpointError(f"{path}: config lacks {e.args[0]!r}") from None
    try:
        cfg = check_config(**cfg)
    except ConfigError as e:
        raise CheckpointError(f"{path}: bad config ({e})") from None
    shapes = param_shapes(cfg["cell"], cfg["n_in"], cfg["n_hidden"], cfg["n_out"])
    dtype = np.dtype(cfg["dtype"])
    params = {}
    for name, shape in shapes.items():
        arr = arrays.get(f"param/{name}")
        if arr is None:
            raise CheckpointError(f"{path}: parameter {name!r} is missing")
        if arr.shape != shape:
            raise CheckpointError(f"{path}: parameter {name!r} has shape {arr.shape}, "
                                  f"expected {shape}")
        if arr.dtype != dtype:
            raise CheckpointError(f"{path}: parameter {name!r} has dtype {arr.dtype}, "
                                  f"expected {dtype}")
        if not np.isfinite(arr).all():
            raise CheckpointError(f"{path}: parameter {name!r} holds NaN or Inf values")
        params[name] = arr
    return Model(**cfg, params=params, lazy=True)      # kernels when first used


def load(path):
    """The Model saved at `path`; CheckpointError naming the file and the problem otherwise."""
    return model_from_arrays(read_npz(path), path)
