"""The Task protocol: seeded batches with a disjoint train/validation split, a loss, a metric.

A task hands out `Batch(x, target, mask)`:
    x       (B, T, I) float     network input
    target  (B, T) int64 class ids ("xent") or (B, T, O) float ("mse")
    mask    (B, T) float 0/1 of the positions that count, or None for all of them
`probe(n)` is a fixed validation batch for the panels; `evaluate(model)` scores a model
(contract of docs/developer-guide.md) on fixed validation batches.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np

from rnnviewer.engine import losses
from rnnviewer.errors import ConfigError

SPLITS = ("train", "val")
MAX_BATCH_ELEMENTS = 1 << 27   # B * T * max(I, O): 512 MB of float32
_STREAM = {"train": 0, "val": 1, "probe": 2}  # seed streams: default_rng([seed, stream])


class Batch(NamedTuple):
    x: np.ndarray                 # (B, T, I) float
    target: np.ndarray            # (B, T) int64 or (B, T, O) float
    mask: np.ndarray | None       # (B, T) float or None


def check_int(name, value, low, high=None):
    """`value` as an int in [low, high]; ConfigError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {rng}, got {value}")
    return int(value)


def check_float(name, value, low, high):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not low <= v <= high:
        raise ConfigError(f"{name} must lie in [{low}, {high}], got {v}")
    return v


class Task:
    """Base class. Subclasses set the class attributes, n_in/n_out, and implement `batch`."""

    name = ""
    description = ""
    loss = "mse"            # "mse" or "xent"
    metric = None           # "accuracy", "r2" or None
    default_seq_len = 50

    def __init__(self, seq_len=None, seed=0, dtype="float32"):
        self.seq_len = check_int("seq_len", self.default_seq_len if seq_len is None else seq_len,
                                 1, 100_000)
        self.seed = check_int("seed", seed, 0)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.n_in = 1
        self.n_out = 1
        self._train_rng = self.stream("train")
        self._val_cache = {}
        self._probe_cache = {}

    # ------------------------------------------------------------------ identity
    def options(self) -> dict:
        """Task-specific options (JSON-serialisable), as accepted by the constructor."""
        return {}

    @property
    def config(self) -> dict:
        """Everything make_task needs to rebuild this task: name, seq_len, seed, dtype, options."""
        return {"name": self.name, "seq_len": self.seq_len, "seed": self.seed,
                "dtype": self.dtype.name, **self.options()}

    def stream(self, which) -> np.random.Generator:
        """A fresh generator of seed stream `which` ("train", "val" or "probe")."""
        return np.random.default_rng([self.seed, _STREAM[which]])

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "name")
        return f"{type(self).__name__}({opts})"

    # ------------------------------------------------------------------ batches
    def batch(self, split, batch_size, rng=None) -> Batch:
        """A batch of `batch_size` sequences of `split` ("train"/"val") drawn with `rng`.

        Without `rng`, train batches come from the task's own (advancing) train stream
        and val batches from the start of the fixed val stream (the same batch each call).
        """
        raise NotImplementedError

    def _check_batch_args(self, split, batch_size, rng):
        if split not in SPLITS:
            raise ConfigError(f"split must be 'train' or 'val', got {split!r}")
        batch_size = check_int("batch_size", batch_size, 1, 1_000_000)
        width = max(self.n_in, self.n_out, 1)
        if batch_size * self.seq_len * width > MAX_BATCH_ELEMENTS:
            gb = batch_size * self.seq_len * width * self.dtype.itemsize / 2**30
            raise ConfigError(f"a batch of {batch_size} sequences of {self.seq_len} steps with "
                              f"{width} values each would take {gb:.1f} GB; use a smaller "
                              "batch or a shorter sequence length")
        if rng is None:
            rng = self._train_rng if split == "train" else self.stream("val")
        return batch_size, rng

    def val_batches(self, n_batches=4, batch_size=32) -> list[Batch]:
        """Fixed validation batches (the same on every call), drawn from the val stream."""
        key = (n_batches, batch_size)
        if key not in self._val_cache:
            rng = self.stream("val")
            self._val_cache[key] = [self.batch("val", batch_size, rng) for _ in range(n_batches)]
        return self._val_cache[key]

    def probe(self, n=8) -> Batch:
        """A fixed, deterministic validation batch of `n` sequences for the panels."""
        if n not in self._probe_cache:
            self._probe_cache[n] = self.batch("val", n, self.stream("probe"))
        return self._probe_cache[n]

    # ------------------------------------------------------------------ display
    def render_inputs(self, x_seq) -> list[str]:
        """One short label per timestep of one input sequence x_seq (T, I)."""
        x_seq = np.asarray(x_seq)
        if x_seq.shape[-1] == 1:
            return [f"{v:.2g}" for v in x_seq[:, 0]]
        return [" ".join(f"{v:.2g}" for v in row) for row in x_seq]

    # ------------------------------------------------------------------ scoring
    def evaluate(self, model, n_batches=4, batch_size=32) -> dict:
        """Validation loss and metric of `model`: {"loss": ..., metric: ...}."""
        return evaluate_batches(model, self.val_batches(n_batches, batch_size),
                                self.loss, self.metric)


def evaluate_batches(model, batches, loss, metric=None) -> dict:
    """Mean loss over `batches` (weighted by counted positions) and the metric.

    accuracy: share of counted positions whose argmax output is the target;
    r2: 1 - SSE / SST over counted target elements.
    """
    fn = losses.LOSSES[loss]
    tot, weight = 0.0, 0.0
    correct = 0.0
    sse, s1, s2, n = 0.0, 0.0, 0.0, 0.0
    for b in batches:
        y = model.forward(b.x).y  # (B, T, O)
        value, _ = fn(y, b.target, b.mask)
        w = float(b.mask.sum()) if b.mask is not None else float(b.x.shape[0] * b.x.shape[1])
        tot += value * w
        weight += w
        m = np.ones(b.x.shape[:2]) if b.mask is None else np.asarray(b.mask, np.float64)
        if metric == "accuracy":
            correct += float(((y.argmax(-1) == b.target) * m).sum())
        elif metric == "r2":
            t = np.asarray(b.target, np.float64)
            mm = m[:, :, None]
            sse += float((((y - t) ** 2) * mm).sum())
            s1 += float((t * mm).sum())
            s2 += float((t * t * mm).sum())
            n += float(mm.sum()) * t.shape[-1]
    out = {"loss": tot / max(weight, 1.0)}
    if metric == "accuracy":
        out["accuracy"] = correct / max(weight, 1.0)
    elif metric == "r2":
        sst = s2 - s1 * s1 / max(n, 1.0)
        out["r2"] = 1.0 - sse / sst if sst > 0 else float("nan")
    return out


def split_mask(x, val_every=8) -> np.ndarray:
    """(B,) True where sequence x[i] belongs to the validation split.

    Membership is a hash of the sequence's float32 bytes, so no input sequence can
    be in both splits, whatever generator or seed produced it.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    return np.array([zlib.crc32(row.tobytes()) % val_every == 0 for row in x32], bool)


def draw_split(generate, split, batch_size, rng, max_rounds=200) -> Batch:
    """Draw from `generate(n, rng) -> Batch` and keep only sequences of `split`."""
    want_val = split == "val"
    chunk = batch_size * 10 if want_val else batch_size + batch_size // 4 + 2
    parts, have = [], 0
    for _ in range(max_rounds):
        b = generate(chunk, rng)
        keep = split_mask(b.x) == want_val
        if keep.any():
            parts.append(Batch(b.x[keep], b.target[keep],
                               None if b.mask is None else b.mask[keep]))
            have += int(keep.sum())
        if have >= batch_size:
            break
    else:
        raise ConfigError(f"too few distinct sequences for a disjoint {split} split: "
                          "make the sequences longer or richer")
    x = np.concatenate([p.x for p in parts])[:batch_size]
    t = np.concatenate([p.target for p in parts])[:batch_size]
    m = None if parts[0].mask is None else np.concatenate([p.mask for p in parts])[:batch_size]
    return Batch(x, t, m)
