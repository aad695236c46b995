"""Model checkpoints: one .npz with the config (JSON) and the parameters.

Keys: "rnnviewer/format" = "rnnviewer-model", "rnnviewer/version", "rnnviewer/config"
(JSON), "param/<name>". Session files add their own keys beside these, so
`load` opens a session file too.
"""

import numpy as np

from rnnviewer.engine.model import Model
from rnnviewer.engine.npzio import json_array, read_json, read_npz, write_npz
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
    """Rebuild the Model stored in `arrays` (as read by read_npz); CheckpointError if wrong."""
    fmt = arrays.get("rnnviewer/format")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt[()]) != FORMAT:
        raise CheckpointError(f"{path}: not an rnnviewer checkpoint")
    try:
        version = int(arrays["rnnviewer/version"][()])
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path}: missing or bad format version") from None
    if version > VERSION:
        raise CheckpointError(f"{path}: written by a newer rnnviewer (format {version})")
    cfg = read_json(arrays, "rnnviewer/config", path)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: config is not a JSON object")
    try:
        model = Model(**{k: cfg[k] for k in ("cell", "n_in", "n_hidden", "n_out", "seed", "dtype")})
    except KeyError as e:
        raise CheckpointError(f"{path}: config lacks {e.args[0]!r}") from None
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad config ({e})") from None
    for name, shape in model.param_shapes().items():
        arr = arrays.get(f"param/{name}")
        if arr is None:
            raise CheckpointError(f"{path}: parameter {name!r} is missing")
        if arr.shape != shape:
            raise CheckpointError(f"{path}: parameter {name!r} has shape {arr.shape}, "
                                  f"expected {shape}")
        if arr.dtype != model.dtype:
            raise CheckpointError(f"{path}: parameter {name!r} has dtype {arr.dtype}, "
                                  f"expected {model.dtype}")
        model.params[name] = np.ascontiguousarray(arr)
    return model


def load(path):
    """The Model saved at `path`; CheckpointError naming the file and the problem otherwise."""
    return model_from_arrays(read_npz(path), path)
