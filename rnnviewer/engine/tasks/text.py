"""Character-level language modelling (Karpathy 2015) on a bundled corpus or a user's text."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnviewer.engine.tasks.base import Batch, Task, check_float, check_int
from rnnviewer.engine.tasks.textio import read_text
from rnnviewer.errors import ConfigError, DataError

MAX_VOCAB = 10_000   # one-hot inputs: a batch is B*T*V numbers
CORPORA = {"python": "python_stdlib.py.txt", "prose": "prose.txt"}
_VISIBLE = {"\n": "↵", "\t": "⇥", " ": "␣"}


def corpus_path(name) -> Path:
    """The path of a bundled corpus ("python" or "prose")."""
    from rnnviewer.resources import resource_path

    if name not in CORPORA:
        raise ConfigError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    return resource_path("corpora", CORPORA[name])


class TextTask(Task):
    name = "text"
    loss, metric = "xent", "accuracy"
    default_seq_len = 50
    description = (
        "Character-level language model (Karpathy 2015): read a text one character at a time "
        "and predict the next one. Inputs are one-hot characters, the output a distribution "
        "over the vocabulary (cross-entropy, also shown in bits per character). The bundled "
        "Python corpus has quotes, brackets and indentation for units to track; any UTF-8 text "
        "file works too. The last part of the text is held out for validation. While it trains, "
        "sample from the model to read what it has learned.")

    def __init__(self, seq_len=None, seed=0, dtype="float32", path=None, corpus="python",
                 val_fraction=0.1, max_chars=None, vocab=None):
        super().__init__(seq_len, seed, dtype)
        self.path = None if path is None else str(path)
        self.corpus = None if path is not None else corpus
        self.val_fraction = check_float("val_fraction", val_fraction, 0.01, 0.5)
        self.max_chars = None if max_chars is None else check_int("max_chars", max_chars, 2)
        src = Path(self.path) if self.path is not None else corpus_path(corpus)
        text = read_text(src)
        if self.max_chars is not None:
            text = text[:self.max_chars]
        self.source = src
        self.vocab = "".join(sorted(set(text))) if vocab is None else str(vocab)
        if not self.vocab or len(set(self.vocab)) != len(self.vocab):
            raise ConfigError("text: vocab must be a string of distinct characters")
        if len(self.vocab) > MAX_VOCAB:
            raise DataError(f"{src}: {len(self.vocab)} distinct characters; the text task "
                            f"takes at most {MAX_VOCAB} (each is one input and one output "
                            "unit). Is it a text file?")
        self.char_to_id = {c: i for i, c in enumerate(self.vocab)}
        self.ids = self._encode(text, src)  # (N,) int64
        T, n = self.seq_len, len(self.ids)
        n_val = max(int(n * self.val_fraction), T + 1)
        if n - n_val < T + 1:
            raise DataError(f"{src}: too short: {n} characters, but seq_len {T} needs at least "
                            f"{2 * (T + 1)} ({T + 1} to train on, {T + 1} held out for "
                            "validation); use a shorter --seq-len or a longer text")
        self.n_train = n - n_val
        self.n_in = self.n_out = len(self.vocab)

    def _encode(self, text, src):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        vocab = np.frombuffer(self.vocab.encode("utf-32-le"), dtype=np.uint32)
        order = np.argsort(vocab)
        pos = np.clip(np.searchsorted(vocab[order], codes), 0, len(vocab) - 1)
        ids = order[pos]
        bad = vocab[ids] != codes
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{src}: character {text[i]!r} at offset {i} is not in the "
                            "model's vocabulary")
        return ids.astype(np.int64)

    def options(self):
        path = None if self.path is None else str(Path(self.path).resolve())
        return {"path": path, "corpus": self.corpus, "val_fraction": self.val_fraction,
                "max_chars": self.max_chars, "vocab": self.vocab}

    # ------------------------------------------------------------------ data
    def one_hot(self, ids) -> np.ndarray:
        """ids (B, T) -> (B, T, V) one-hot in the task dtype."""
        ids = np.asarray(ids)
        x = np.zeros(ids.shape + (len(self.vocab),), self.dtype)
        np.put_along_axis(x, ids[..., None], 1.0, axis=-1)
        return x

    def split_ids(self, split) -> np.ndarray:
        """The character ids of a split: the head of the text for train, the tail for val."""
        return self.ids[:self.n_train] if split == "train" else self.ids[self.n_train:]

    def batch(self, split, batch_size, rng=None) -> Batch:
        batch_size, rng = self._check_batch_args(split, batch_size, rng)
        ids, T = self.split_ids(split), self.seq_len
        starts = rng.integers(0, len(ids) - T, batch_size)
        win = ids[starts[:, None] + np.arange(T + 1)[None, :]]  # (B, T+1)
        return Batch(self.one_hot(win[:, :T]), win[:, 1:], None)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in np.ravel(ids))

    def render_inputs(self, x_seq):
        return [_VISIBLE.get(c, c) for c in self.decode(np.asarray(x_seq).argmax(-1))]

    # ------------------------------------------------------------------ scores
    def unigram_entropy(self) -> float:
        """Entropy (nats) of the training text's character frequencies: the no-context loss."""
        p = np.bincount(self.split_ids("train"), minlength=len(self.vocab)) / self.n_train
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def evaluate(self, model, n_batches=4, batch_size=32):
        out = super().evaluate(model, n_batches, batch_size)
        out["bpc"] = bits_per_char(out["loss"])
        return out

    def sample(self, model, prime="", n=200, temperature=1.0, rng=None) -> str:
        """Generate `n` characters after `prime` (characters outside the vocabulary dropped).

        temperature 0 picks the most likely character; higher values give more variety.
        """
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0, 100.0)
        rng = np.random.default_rng() if rng is None else rng
        ids = [self.char_to_id[c] for c in prime if c in self.char_to_id]
        if not ids:
            ids = [self.char_to_id.get("\n", int(np.bincount(self.ids).argmax()))]
        tr = model.forward(self.one_hot(np.array([ids])))
        out = []
        for k in range(n):
            logits = np.asarray(tr.y[0, -1], np.float64)  # (V,)
            i = _pick(logits, temperature, rng)
            out.append(i)
            if k == n - 1:
                break
            h0 = tr.h[:, -1] if tr.c is None else (tr.h[:, -1], tr.c[:, -1])
            tr = model.forward(self.one_hot(np.array([[i]])), h0)
        return self.decode(out)


def _pick(logits, temperature, rng) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def bits_per_char(loss_nats) -> float:
    return loss_nats / math.log(2)
