"""Session files: a model checkpoint plus everything needed to go on training exactly.

One uncompressed .npz, read without pickle, written atomically (temp file + os.replace).
The model is stored with the engine's checkpoint keys ("rnnviewer/...", "param/...")
so `rnnviewer.engine.load(path)` opens a session file as a model. Session keys:

    session/format     "rnnviewer-session"      session/version  1
    session/task       JSON task config         session/step     int64
    session/extra      JSON (session config, data RNG state, ...)
    session/history/<name>     float64 (n,)  step, train_loss, grad_norm, lr, val_step, val_loss
    session/optimizer/name     "adam" | "sgd" (absent without an optimizer)
    session/optimizer/<key>    the optimizer's state_dict arrays (m/W_hh, t, lr, ...)
"""

from dataclasses import dataclass, field

import numpy as np

from rnnviewer.engine.checkpoint import model_arrays, model_from_arrays
from rnnviewer.engine.npzio import json_array, read_json, read_npz, scalar_int, write_npz
from rnnviewer.engine.optim import OPTIMIZERS
from rnnviewer.errors import CheckpointError, ConfigError
from rnnviewer.training.snapshot import HISTORY_KEYS, VAL_HISTORY_KEYS

FORMAT = "rnnviewer-session"
VERSION = 1
_OPT = "session/optimizer/"
_HIST = "session/history/"


@dataclass
class SessionData:
    """What load_session returns."""

    model: object                       # rnnviewer.engine.Model
    task_config: dict
    step: int
    history: dict                       # name -> float64 (n,)
    optimizer_name: str | None = None
    optimizer_state: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def lr(self):
        v = self.optimizer_state.get("lr")
        return None if v is None else float(v)

    def make_optimizer(self):
        """A fresh optimizer over this model's params with the saved state loaded."""
        if self.optimizer_name is None:
            return None
        opt = OPTIMIZERS[self.optimizer_name](self.model.params, self.lr or 1e-3)
        opt.load_state_dict(self.optimizer_state)
        return opt


def save_session(path, model, optimizer, task_config, step, history, extra=None):
    """Atomically write one session file at `path`.

    optimizer: an engine optimizer (or None); task_config: JSON-able dict; history: dict of
    1-D arrays (missing names are stored empty); extra: JSON-able dict.
    """
    arrays = model_arrays(model)
    arrays["session/format"] = np.asarray(FORMAT)
    arrays["session/version"] = np.asarray(VERSION)
    arrays["session/task"] = json_array(dict(task_config or {}))
    arrays["session/step"] = np.asarray(int(step), dtype=np.int64)
    arrays["session/extra"] = json_array(dict(extra or {}))
    history = history or {}
    for k in HISTORY_KEYS + VAL_HISTORY_KEYS:
        arrays[_HIST + k] = np.asarray(history.get(k, ()), dtype=np.float64).ravel()
    if optimizer is not None:
        arrays[_OPT + "name"] = np.asarray(optimizer.name)
        for k, v in optimizer.state_dict().items():
            arrays[_OPT + k] = np.asarray(v)
    write_npz(path, arrays)


def _history(arrays, path):
    hist = {}
    for k in HISTORY_KEYS + VAL_HISTORY_KEYS:
        a = arrays.get(_HIST + k)
        if a is None:
            raise CheckpointError(f"{path}: history entry {k!r} is missing")
        if a.ndim != 1 or a.dtype.kind not in "fiu":
            raise CheckpointError(f"{path}: history entry {k!r} is not a 1-D numeric array")
        hist[k] = a.astype(np.float64)
    for group in (HISTORY_KEYS, VAL_HISTORY_KEYS):
        if len({len(hist[k]) for k in group}) != 1:
            raise CheckpointError(f"{path}: history entries {', '.join(group)} differ in length")
    return hist


def _optimizer(arrays, model, path):
    name_arr = arrays.get(_OPT + "name")
    if name_arr is None:
        return None, {}
    name = str(name_arr[()]) if name_arr.dtype.kind == "U" and name_arr.ndim == 0 else None
    if name not in OPTIMIZERS:
        raise CheckpointError(f"{path}: unknown optimizer {name!r}")
    state = {k[len(_OPT):]: v for k, v in arrays.items() if k.startswith(_OPT) and k != _OPT + "name"}
    shapes = model.param_shapes()
    for k, v in state.items():
        if v.dtype.kind not in "fiub":
            raise CheckpointError(f"{path}: optimizer entry {k!r} is not numeric")
        pname = k.rsplit("/", 1)[-1]
        if "/" in k:
            if pname not in shapes:
                raise CheckpointError(f"{path}: optimizer entry {k!r} names no parameter")
            if v.shape != shapes[pname]:
                raise CheckpointError(f"{path}: optimizer entry {k!r} has shape {v.shape}, "
                                      f"expected {shapes[pname]}")
        elif v.size > 16:
            raise CheckpointError(f"{path}: optimizer entry {k!r} has shape {v.shape}")
    try:
        probe = OPTIMIZERS[name](dict(model.params), 1e-3)
        probe.load_state_dict(state)
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{path}: bad {name} optimizer state ({type(e).__name__}: {e})") \
            from None
    if not (np.isfinite(probe.lr) and probe.lr > 0 and probe.t >= 0):
        raise CheckpointError(f"{path}: bad optimizer learning rate or step count")
    return name, state


def load_session(path):
    """The SessionData in `path`; CheckpointError naming the file and the problem otherwise."""
    arrays = read_npz(path)
    fmt = arrays.get("session/format")
    if fmt is None:
        if "rnnviewer/format" in arrays:
            raise CheckpointError(f"{path}: a model checkpoint, not a session "
                                  "(it has no optimizer state or history)")
        raise CheckpointError(f"{path}: not an rnnviewer session file")
    if fmt.dtype.kind != "U" or fmt.ndim != 0 or str(fmt[()]) != FORMAT:
        raise CheckpointError(f"{path}: not an rnnviewer session file")
    version = scalar_int(arrays, "session/version")
    if version is None:
        raise CheckpointError(f"{path}: missing or bad session format version")
    if version > VERSION:
        raise CheckpointError(f"{path}: written by a newer rnnviewer (session format {version})")
    model = model_from_arrays(arrays, path)
    task = read_json(arrays, "session/task", path)
    extra = read_json(arrays, "session/extra", path)
    if not isinstance(task, dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{path}: task config or extra data is not a JSON object")
    step_arr = arrays.get("session/step")
    if step_arr is None or step_arr.ndim != 0 or step_arr.dtype.kind not in "iu" or step_arr < 0:
        raise CheckpointError(f"{path}: missing or bad step count")
    name, state = _optimizer(arrays, model, path)
    return SessionData(model=model, task_config=task, step=int(step_arr), history=_history(
        arrays, path), optimizer_name=name, optimizer_state=state, extra=extra)
