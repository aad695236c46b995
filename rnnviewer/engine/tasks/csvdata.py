"""Time series from a user's CSV file: column choice, normalisation, windows, forecast horizon."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from rnnviewer.engine.tasks.base import Batch, Task, check_float, check_int
from rnnviewer.engine.tasks.textio import decode_text, read_bytes
from rnnviewer.errors import ConfigError, DataError

NORMALIZE = ("zscore", "minmax", "none")
_MISSING = {"", "na", "n/a", "nan", "null", "none", "-", "?"}


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


DELIMITERS = ",;\t|"


def sniff_delimiter(text, max_lines=50) -> str:
    """The delimiter (one of DELIMITERS) that splits the first lines most consistently.

    Linear in the text read, unlike csv.Sniffer, whose quote regex took seconds on 16 KB
    of a pathological file. Quotes are honoured within a line; "," if nothing fits.
    """
    lines = [ln for ln in text.split("\n", max_lines)[:max_lines] if ln.strip()]
    best, best_score = ",", (0.0, 0)
    for d in DELIMITERS:
        counts = []
        for ln in lines:
            try:
                counts.append(len(next(csv.reader([ln], delimiter=d), [])) - 1)
            except csv.Error:
                counts.append(0)
        if not counts:
            break
        mode = max(set(counts), key=lambda c: (counts.count(c), c))
        score = (counts.count(mode) / len(counts), mode) if mode > 0 else (0.0, 0)
        if score > best_score:
            best, best_score = d, score
    return best


class CsvTable:
    """A CSV file's header and rows as strings, with the file line of every row."""

    def __init__(self, path, header=None):
        self.path = Path(path)
        text = decode_text(read_bytes(self.path, "CSV"), self.path, "CSV")
        delim = sniff_delimiter(text)
        rows, lines = [], []
        reader = csv.reader(text.split("\n"), delimiter=delim)
        try:
            for row in reader:
                if any(f.strip() for f in row):
                    rows.append([f.strip() for f in row])
                    lines.append(reader.line_num)
        except csv.Error as e:
            raise DataError(f"{self.path}: malformed CSV at line {reader.line_num} ({e})") from None
        if not rows:
            raise DataError(f"{self.path}: the file is empty")
        if header is None:
            first = rows[0]
            second = rows[1] if len(rows) > 1 else []
            header = all(not _is_number(f) for f in first) or any(
                not _is_number(f) and j < len(second) and _is_number(second[j])
                for j, f in enumerate(first))
        if header:
            self.names = [f or f"column {j}" for j, f in enumerate(rows[0])]
            rows, lines = rows[1:], lines[1:]
        else:
            self.names = [str(j) for j in range(len(rows[0]))]
        if not rows:
            raise DataError(f"{self.path}: no data rows, only a header")
        width = len(self.names)
        for row, ln in zip(rows, lines):
            if len(row) != width:
                raise DataError(f"{self.path}: line {ln} has {len(row)} fields, expected "
                                f"{width} (delimiter {delim!r})")
        self.rows, self.lines, self.delimiter = rows, lines, delim

    def column_index(self, spec) -> int:
        """Index of a column given by header name or 0-based number; DataError if absent."""
        s = str(spec).strip()
        if s in self.names:
            return self.names.index(s)
        if s.lstrip("-").isdigit():
            j = int(s)
            if 0 <= j < len(self.names):
                return j
        raise DataError(f"{self.path}: no column {s!r}; the columns are "
                        + ", ".join(repr(n) for n in self.names))

    def numeric_columns(self) -> list[int]:
        """The columns whose first value is a number or missing (not text such as a date).

        The default inputs: every value of them is still checked when it is read.
        """
        first = self.rows[0]
        cols = [j for j, s in enumerate(first) if s.lower() in _MISSING or _is_number(s)]
        if not cols:
            raise DataError(f"{self.path}: no numeric column (line {self.lines[0]} holds "
                            + ", ".join(repr(s) for s in first[:6])
                            + (", ..." if len(first) > 6 else "") + ")")
        return cols

    def numeric(self, j) -> np.ndarray:
        """Column j as float64 (N,); DataError naming line and column for a bad value."""
        name = self.names[j]
        out = np.empty(len(self.rows))
        for i, (row, ln) in enumerate(zip(self.rows, self.lines)):
            s = row[j]
            if s.lower() in _MISSING:
                raise DataError(f"{self.path}: missing value at line {ln}, column {name!r}")
            try:
                v = float(s)
            except ValueError:
                raise DataError(f"{self.path}: line {ln}, column {name!r}: {s!r} is not a "
                                "number") from None
            if not math.isfinite(v):
                raise DataError(f"{self.path}: line {ln}, column {name!r}: {s!r} is not a "
                                "finite number")
            out[i] = v
        return out


def _columns(spec) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, (str, int)):
        spec = str(spec).split(",")
    out = [str(s).strip() for s in spec if str(s).strip()]
    return out


class CsvTask(Task):
    name = "csv"
    loss, metric = "mse", "r2"
    default_seq_len = 50
    description = (
        "Forecast a time series from a CSV file: the rows are timesteps, chosen input columns "
        "(by default every numeric one) feed the network and chosen target columns (by "
        "default the inputs), `horizon` rows ahead, are what it must predict at every step. "
        "Columns are normalised with statistics of the training part "
        "(the head of the file); the last rows are held out for validation. Loss is mean "
        "squared error on the normalised targets, the metric R^2.")

    def __init__(self, seq_len=None, seed=0, dtype="float32", path=None, inputs=None,
                 targets=None, normalize="zscore", horizon=1, val_fraction=0.2, header=None):
        super().__init__(seq_len, seed, dtype)
        if path is None:
            raise ConfigError("csv: a CSV file path is required")
        if normalize not in NORMALIZE:
            raise ConfigError(f"normalize must be one of {', '.join(NORMALIZE)}, "
                              f"got {normalize!r}")
        self.path = str(path)
        self.normalize = normalize
        self.horizon = check_int("horizon", horizon, 0, 100_000)
        self.val_fraction = check_float("val_fraction", val_fraction, 0.01, 0.9)
        self.header = header
        table = CsvTable(self.path, header)
        in_idx = [table.column_index(c) for c in _columns(inputs)] or table.numeric_columns()
        tg_idx = [table.column_index(c) for c in _columns(targets)] or list(in_idx)
        self.columns = table.names
        self.inputs = [table.names[j] for j in in_idx]
        self.targets = [table.names[j] for j in tg_idx]
        cols = {j: table.numeric(j) for j in dict.fromkeys(in_idx + tg_idx)}
        n, T, h = len(table.rows), self.seq_len, self.horizon
        need = T + h
        n_val = max(int(n * self.val_fraction), need)
        if n - n_val < need:
            raise DataError(f"{self.path}: too few rows: {n} data rows, but one window of "
                            f"seq_len {T} with horizon {h} needs {need} rows, for training and "
                            f"again for validation ({2 * need} in all); use a shorter "
                            "--seq-len")
        self.n_train = n - n_val
        self.stats = {j: self._stats(cols[j][:self.n_train]) for j in cols}  # (shift, scale)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = {j: (v - self.stats[j][0]) / self.stats[j][1] for j, v in cols.items()}
        limit = float(np.finfo(self.dtype).max)
        for j, v in norm.items():
            if not (np.isfinite(self.stats[j]).all() and np.all(np.abs(v) < limit)):
                big = float(np.max(np.abs(cols[j])))
                raise DataError(f"{self.path}: column {table.names[j]!r} has values too large to "
                                f"use (magnitude up to {big:.3g}; "
                                + (f"{normalize} scaling overflows)" if normalize != "none" else
                                   f"beyond {self.dtype.name})")
                                + "; rescale the column or choose another normalisation")
        self.x_all = np.stack([norm[j] for j in in_idx], axis=1)  # (N, I)
        self.y_all = np.stack([norm[j] for j in tg_idx], axis=1)  # (N, O)
        self._in_stats = np.array([self.stats[j] for j in in_idx])  # (I, 2)
        self.n_in, self.n_out = len(in_idx), len(tg_idx)

    def _stats(self, v):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._stats_of(v)

    def _stats_of(self, v):
        if self.normalize == "zscore":
            sd = float(v.std())
            return float(v.mean()), sd if sd > 0 else 1.0
        if self.normalize == "minmax":  # to [-1, 1]
            lo, hi = float(v.min()), float(v.max())
            return (lo + hi) / 2, (hi - lo) / 2 if hi > lo else 1.0
        return 0.0, 1.0

    def options(self):
        return {"path": str(Path(self.path).resolve()), "inputs": self.inputs,
                "targets": self.targets, "normalize": self.normalize, "horizon": self.horizon,
                "val_fraction": self.val_fraction, "header": self.header}

    def batch(self, split, batch_size, rng=None) -> Batch:
        batch_size, rng = self._check_batch_args(split, batch_size, rng)
        lo, hi = (0, self.n_train) if split == "train" else (self.n_train, len(self.x_all))
        T, h = self.seq_len, self.horizon
        starts = lo + rng.integers(0, hi - lo - T - h + 1, batch_size)
        steps = starts[:, None] + np.arange(T)[None, :]  # (B, T)
        return Batch(self.x_all[steps].astype(self.dtype),
                     self.y_all[steps + h].astype(self.dtype), None)

    def denormalize_inputs(self, x_seq) -> np.ndarray:
        """x (..., I) in the file's units."""
        return np.asarray(x_seq) * self._in_stats[:, 1] + self._in_stats[:, 0]

    def render_inputs(self, x_seq):
        return super().render_inputs(self.denormalize_inputs(x_seq))
