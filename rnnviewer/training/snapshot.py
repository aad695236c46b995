"""Immutable snapshots of a training session: everything the panels draw from.

Every array in a Snapshot is read-only, and none is ever written again by the
session: parameters, gradients and probe traces are copies; the history arrays are
read-only views of the first n entries of append-only buffers (entries below n are
never rewritten, a reset allocates new buffers). Panels may keep a Snapshot as long
as they like and read it from any thread.
"""

import copyreg
import dataclasses
import logging
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np

log = logging.getLogger(__name__)

HISTORY_KEYS = ("step", "train_loss", "grad_norm", "lr")
VAL_HISTORY_KEYS = ("val_step", "val_loss")


def frozen(a, copy=True):
    """A read-only array: a copy of `a` (or a view of it with copy=False)."""
    if a is None:
        return None
    a = np.array(a, copy=True) if copy else np.asarray(a).view()
    a.flags.writeable = False
    return a


def frozen_map(d, copy=True):
    """A read-only mapping name -> read-only array."""
    return MappingProxyType({k: frozen(v, copy) for k, v in (d or {}).items()})


def frozen_config(d):
    """A read-only mapping of JSON-like settings (nested dicts frozen too)."""
    return MappingProxyType({k: frozen_config(v) if isinstance(v, dict) else v
                             for k, v in (d or {}).items()})


# Snapshots travel from the training process to the window's (training/process.py)
def _mappingproxy(d):
    return MappingProxyType(d)


copyreg.pickle(MappingProxyType, lambda m: (_mappingproxy, (dict(m),)))


def _readonly(v):
    """Make the arrays in `v` (nested mappings, tuples) read-only again; returns `v`."""
    if isinstance(v, np.ndarray):
        v.flags.writeable = False
    elif isinstance(v, MappingProxyType):
        for x in v.values():
            _readonly(x)
    elif isinstance(v, (tuple, list)):
        for x in v:
            _readonly(x)
    return v


def _unpickle(cls, values):
    """A ProbeTrace or Snapshot from pickled field values (unpickled arrays are writable
    copies: made read-only again)."""
    return cls(**{k: _readonly(v) for k, v in values.items()})


class _Picklable:
    def __reduce__(self):
        return _unpickle, (type(self), {f.name: getattr(self, f.name) for f in fields(self)})


class GrowableArray:
    """A 1-D float64 (or int) array that is appended to; `a` is the filled part. Growing
    allocates a new buffer, and entries below the filled length are never written again,
    so views taken of `a` earlier stay as they were."""

    def __init__(self, dtype=np.float64):
        self._buf = np.empty(1024, dtype)
        self.n = 0

    @property
    def a(self):
        return self._buf[:self.n]

    def extend(self, values):
        k = len(values)
        if self.n + k > len(self._buf):
            self._grow(self.n + k)
        self._buf[self.n:self.n + k] = values
        self.n += k

    def append(self, value):
        """extend((value,)), faster (a training step appends to the history)."""
        if self.n == len(self._buf):
            self._grow(self.n + 1)
        self._buf[self.n] = value
        self.n += 1

    def _grow(self, need):
        new = np.empty(max(2 * len(self._buf), need), self._buf.dtype)
        new[:self.n] = self._buf[:self.n]
        self._buf = new


class History:
    """Append-only per-step records: a GrowableArray per column."""

    def __init__(self, data=None):
        self._cols = {k: GrowableArray() for k in HISTORY_KEYS + VAL_HISTORY_KEYS}
        if data:
            self.extend(data)

    def _count(self, group):
        """Rows of the per-step (group 0) or validation (group 1) columns."""
        return self._cols["step" if group == 0 else "val_step"].n

    def __len__(self):
        return self._count(0)

    def append(self, step, train_loss, grad_norm, lr):
        for k, v in zip(HISTORY_KEYS, (step, train_loss, grad_norm, lr)):
            self._cols[k].append(v)

    def append_val(self, step, val_loss):
        for k, v in zip(VAL_HISTORY_KEYS, (step, val_loss)):
            self._cols[k].append(v)

    def arrays(self, copy=False):
        """name -> (n,) array; read-only views of the filled part unless copy=True."""
        return {k: frozen(col.a, copy=copy) for k, col in self._cols.items()}

    def extend(self, data):
        """Append saved history (a dict of the arrays returned by `arrays`)."""
        for keys in (HISTORY_KEYS, VAL_HISTORY_KEYS):
            cols = [np.asarray(data.get(k, ()), dtype=np.float64).ravel() for k in keys]
            add = min(len(c) for c in cols)        # a ragged group: its whole rows only
            for k, col in zip(keys, cols):
                self._cols[k].extend(col[:add])

    def extend_from(self, start, data):
        """Append the rows of `data` (as `extend`) that this history lacks, where `data`
        holds the rows from index `start` = (train, val) on. Returns False, appending
        nothing, if rows between this history's end and `start` are missing."""
        counts = (self._count(0), self._count(1))
        if start[0] > counts[0] or start[1] > counts[1]:
            return False
        self.extend({k: np.asarray(v)[counts[_group(k)] - start[_group(k)]:]
                     for k, v in data.items()})
        return True


def _group(key):
    """0 for a column of the per-step history, 1 for one of the validation history."""
    return 0 if key in HISTORY_KEYS else 1


def history_counts(history):
    """(train rows, validation rows) of a snapshot's history mapping."""
    return len(history["step"]), len(history["val_step"])


# ---------------------------------------------------------------- history over the pipe
# A snapshot's history holds every step of the run; sent whole 20-30 times a second it
# would grow without end (48 bytes a step: 2.4 MB per snapshot at 50,000 steps). The
# training process sends the rows the window has not had yet (HistoryTail); the window
# joins them into a history of its own (HistoryJoiner).

@dataclass(frozen=True)
class HistoryTail:
    """The rows of a run's history from index `start` = (train, validation) on."""

    run_id: int
    start: tuple
    rows: dict                   # name -> (k,) the history's columns from start on


def with_history_tail(snap, start):
    """`snap` with its history replaced by the HistoryTail of the rows from `start` on."""
    rows = {k: np.asarray(v)[start[_group(k)]:] for k, v in snap.history.items()}
    return dataclasses.replace(snap, history=HistoryTail(snap.run_id, tuple(start), rows))


class HistoryJoiner:
    """Whole histories again from the HistoryTails of a run's snapshots, received in order
    (each tail starts at or before the end of what came before it)."""

    def __init__(self):
        self.run_id = None
        self.history = History()

    def join(self, snap):
        """`snap` with its HistoryTail replaced by the whole history (read-only views of
        append-only buffers, as in the training process). Other snapshots pass as they are."""
        tail = snap.history
        if not isinstance(tail, HistoryTail):
            return snap
        if tail.run_id != self.run_id:
            self.run_id, self.history = tail.run_id, History()
        if not self.history.extend_from(tail.start, tail.rows):
            # cannot happen with Outbox's bookkeeping; keep what arrived rather than fail
            log.warning("history rows before %s missing in run %s; the curves restart there",
                        tail.start, tail.run_id)
            self.history = History()
            self.history.extend(tail.rows)
        return dataclasses.replace(snap, history=frozen_map(self.history.arrays(), copy=False))


@dataclass(frozen=True)
class ProbeTrace(_Picklable):
    """The model run on the task's fixed probe batch (P sequences)."""

    x: np.ndarray                 # (P, T, I) inputs
    target: np.ndarray            # (P, T, O) values or (P, T) class ids
    mask: np.ndarray | None       # (P, T) or None
    h: np.ndarray                 # (P, T, H) hidden states
    y: np.ndarray                 # (P, T, O) outputs
    c: np.ndarray | None          # (P, T, H) LSTM cell state
    gates: MappingProxyType       # gate name -> (P, T, H)
    dh: np.ndarray                # (P, T, H) total dL/dh_t of the probe loss
    loss: float                   # probe loss
    labels: tuple = ()            # per sequence, one label per timestep (task.render_inputs)


@dataclass(frozen=True)
class Snapshot(_Picklable):
    """The state of a run at one step, for drawing. Never mutated after creation."""

    run_id: int                   # changes on every reset or loaded session
    serial: int                   # counts the snapshots of a run
    step: int                     # training steps done
    loss: float                   # last training loss (nan before the first step)
    val_loss: float               # last validation loss (nan before the first)
    grad_norm: float              # global gradient norm of the last step, before clipping
    lr: float
    clip: float                   # clip norm, 0 = off
    steps_per_second: float
    history: MappingProxyType     # "step","train_loss","grad_norm","lr" (n,); "val_step","val_loss"
    params: MappingProxyType      # name -> copy of the parameter
    delta: MappingProxyType       # name -> params now minus params before the last step
    grads: MappingProxyType       # name -> gradient of the last training step (unclipped)
    probe: ProbeTrace
    model_config: MappingProxyType
    gate_names: tuple
    task_name: str
    task_config: MappingProxyType
    task_description: str = ""
    loss_name: str = "mse"        # "mse" or "xent"
    optimizer: str = "adam"
    time: float = 0.0             # time.monotonic() when made
    extra: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def cell(self):
        return self.model_config["cell"]

    @property
    def n_hidden(self):
        return int(self.model_config["n_hidden"])
