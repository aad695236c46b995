"""Generated tasks: sine, adding, copy, flipflop, parity.

Every task draws its sequences from a generator and splits them by a hash of the
input sequence (base.draw_split), so train and validation never share a sequence.
"""

from __future__ import annotations

import numpy as np

from rnnviewer.engine.tasks.base import Batch, Task, check_float, check_int, draw_split
from rnnviewer.errors import ConfigError


class GeneratedTask(Task):
    """A task whose sequences come from `_generate(n, rng) -> Batch` (float64 x)."""

    def _generate(self, n, rng) -> Batch:
        raise NotImplementedError

    def batch(self, split, batch_size, rng=None) -> Batch:
        batch_size, rng = self._check_batch_args(split, batch_size, rng)
        b = draw_split(self._generate, split, batch_size, rng)
        t = b.target if b.target.dtype.kind == "i" else b.target.astype(self.dtype)
        m = None if b.mask is None else b.mask.astype(self.dtype)
        return Batch(b.x.astype(self.dtype), t, m)


class SineTask(GeneratedTask):
    name = "sine"
    loss, metric = "mse", "r2"
    description = (
        "Forecast the next value of a sum of sine waves. Each sequence mixes `waves` sines "
        "with random frequencies (periods between min_period and max_period steps) and random "
        "phases, so the network must infer the frequencies from what it has seen so far and "
        "extrapolate one step. The input is the current value (plus optional noise), the "
        "target the next clean value; loss is mean squared error, the metric R^2.")

    def __init__(self, seq_len=None, seed=0, dtype="float32", waves=3, min_period=8.0,
                 max_period=40.0, noise=0.0):
        super().__init__(seq_len, seed, dtype)
        self.waves = check_int("waves", waves, 1, 64)
        self.min_period = check_float("min_period", min_period, 2.0, 1e6)
        self.max_period = check_float("max_period", max_period, self.min_period, 1e6)
        self.noise = check_float("noise", noise, 0.0, 10.0)

    def options(self):
        return {"waves": self.waves, "min_period": self.min_period,
                "max_period": self.max_period, "noise": self.noise}

    def _generate(self, n, rng):
        T, K = self.seq_len, self.waves
        w = 2 * np.pi / rng.uniform(self.min_period, self.max_period, (n, K, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, K, 1))
        t = np.arange(T + 1)[None, None, :]
        s = np.sin(w * t + phase).sum(1) / K  # (n, T+1)
        x = s[:, :T, None]
        if self.noise:
            x = x + self.noise * rng.standard_normal(x.shape)
        return Batch(x, s[:, 1:, None], None)


class AddingTask(GeneratedTask):
    name = "adding"
    loss, metric = "mse", "r2"
    description = (
        "The adding problem (Hochreiter & Schmidhuber 1997). Channel 0 carries random numbers "
        "in [0, 1]; channel 1 marks two of them, one in the first half of the sequence and "
        "one in the second. At the last step the network must output the sum of the two marked "
        "numbers, so it has to hold the first one in memory across the whole sequence. Only the "
        "last step counts (MSE); always answering 1 scores about 0.167. Lengthen the sequence "
        "to see a plain RNN fail where an LSTM or GRU still learns.")

    def __init__(self, seq_len=None, seed=0, dtype="float32"):
        super().__init__(seq_len, seed, dtype)
        if self.seq_len < 2:
            raise ConfigError("adding: seq_len must be at least 2")
        self.n_in, self.n_out = 2, 1

    def _generate(self, n, rng):
        T = self.seq_len
        x = np.zeros((n, T, 2))
        x[:, :, 0] = rng.uniform(0, 1, (n, T))
        half = T // 2
        i = rng.integers(0, half, n)
        j = rng.integers(half, T, n)
        rows = np.arange(n)
        x[rows, i, 1] = 1.0
        x[rows, j, 1] = 1.0
        target = np.zeros((n, T, 1))
        target[:, -1, 0] = x[rows, i, 0] + x[rows, j, 0]
        mask = np.zeros((n, T))
        mask[:, -1] = 1.0
        return Batch(x, target, mask)

    def render_inputs(self, x_seq):
        x_seq = np.asarray(x_seq)
        return [f"[{v:.2f}]" if m > 0.5 else f"{v:.2f}" for v, m in x_seq]


class CopyTask(GeneratedTask):
    name = "copy"
    loss, metric = "xent", "accuracy"
    default_seq_len = None
    description = (
        "Memorise a string of `length` symbols, wait `delay` blank steps, and after the go "
        "marker (>) write the string back, one symbol per step. Input: one channel per symbol "
        "plus one for the marker, blanks are all zero. Only the recall steps count "
        "(cross-entropy, accuracy); chance accuracy is 1/symbols. Long delays separate "
        "gated cells from the plain RNN.")

    def __init__(self, seq_len=None, seed=0, dtype="float32", length=5, symbols=8, delay=None):
        k = check_int("length", length, 1, 1000)
        self.length = k
        self.symbols = check_int("symbols", symbols, 2, 26)
        if delay is None:
            delay = 10 if seq_len is None else seq_len - 2 * k - 1
            if delay < 0:
                raise ConfigError(f"copy: seq_len must be at least 2*length+1 = {2 * k + 1}, "
                                  f"got {seq_len}")
        self.delay = check_int("delay", delay, 0, 100_000)
        T = 2 * k + self.delay + 1
        if seq_len is not None and seq_len != T:
            raise ConfigError(f"copy: seq_len {seq_len} does not match length {k} and delay "
                              f"{self.delay} (seq_len = 2*length + delay + 1 = {T}); "
                              "give only one of seq_len and delay")
        super().__init__(T, seed, dtype)
        self.n_in, self.n_out = self.symbols + 1, self.symbols

    def options(self):
        return {"length": self.length, "symbols": self.symbols, "delay": self.delay}

    def _generate(self, n, rng):
        k, S, T = self.length, self.symbols, self.seq_len
        sym = rng.integers(0, S, (n, k))
        x = np.zeros((n, T, S + 1))
        rows = np.arange(n)[:, None]
        x[rows, np.arange(k)[None, :], sym] = 1.0
        go = k + self.delay
        x[:, go, S] = 1.0
        target = np.zeros((n, T), np.int64)
        target[:, go + 1:] = sym
        mask = np.zeros((n, T))
        mask[:, go + 1:] = 1.0
        return Batch(x, target, mask)

    def render_inputs(self, x_seq):
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        out = []
        for row in np.asarray(x_seq):
            if row.max() < 0.5:
                out.append("·")
            elif row.argmax() == self.symbols:
                out.append(">")
            else:
                out.append(letters[row.argmax()])
        return out


class FlipFlopTask(GeneratedTask):
    name = "flipflop"
    loss, metric = "mse", "r2"
    description = (
        "The n-bit flip-flop (Sussillo & Barak 2013). Each of `bits` input channels is mostly "
        "0 with occasional +1 or -1 pulses (probability p per step); each output channel must "
        "hold the sign of the last pulse on its channel (0 before the first one). A trained "
        "network stores the 2^bits memories as stable fixed points: the classic task for "
        "fixed-point analysis. Loss is mean squared error.")

    def __init__(self, seq_len=None, seed=0, dtype="float32", bits=3, p=0.05):
        super().__init__(seq_len, seed, dtype)
        self.bits = check_int("bits", bits, 1, 64)
        self.p = check_float("p", p, 1e-6, 1.0)
        self.n_in = self.n_out = self.bits

    def options(self):
        return {"bits": self.bits, "p": self.p}

    def _generate(self, n, rng):
        T, K = self.seq_len, self.bits
        pulse = rng.random((n, T, K)) < self.p
        sign = np.where(rng.random((n, T, K)) < 0.5, -1.0, 1.0)
        x = pulse * sign  # (n, T, K)
        return Batch(x, flipflop_targets(x), None)

    def render_inputs(self, x_seq):
        return ["".join("+" if v > 0 else "-" if v < 0 else "·" for v in row)
                for row in np.asarray(x_seq)]


def flipflop_targets(x) -> np.ndarray:
    """(n, T, K): per channel, the last nonzero value of x up to each step (0 before)."""
    T = x.shape[1]
    idx = np.where(x != 0, np.arange(T)[None, :, None], -1)
    last = np.maximum.accumulate(idx, axis=1)  # (n, T, K)
    held = np.take_along_axis(x, np.maximum(last, 0), axis=1)
    return np.where(last >= 0, held, 0.0)


class ParityTask(GeneratedTask):
    name = "parity"
    loss, metric = "xent", "accuracy"
    description = (
        "Running parity of a bit stream: at every step output whether the number of ones seen "
        "so far is even or odd. With modulus k > 2 the task becomes the running count of ones "
        "modulo k. Every input bit flips the answer, so the network must track a discrete "
        "state exactly over the whole sequence (cross-entropy, accuracy; chance is 1/k).")

    def __init__(self, seq_len=None, seed=0, dtype="float32", modulus=2):
        super().__init__(seq_len, seed, dtype)
        self.modulus = check_int("modulus", modulus, 2, 1000)
        self.n_in, self.n_out = 1, self.modulus

    def options(self):
        return {"modulus": self.modulus}

    def _generate(self, n, rng):
        bits = rng.integers(0, 2, (n, self.seq_len))
        target = (np.cumsum(bits, axis=1) % self.modulus).astype(np.int64)
        return Batch(bits[:, :, None].astype(np.float64), target, None)

    def render_inputs(self, x_seq):
        return ["1" if v > 0.5 else "0" for v in np.asarray(x_seq)[:, 0]]
