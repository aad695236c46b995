"""Hidden-state and weight analysis for the panels (issue 6): PCA with stable signs,
W_hh spectra, top-k contexts per unit, gate saturation, histograms, per-gate blocks.
"""

from collections import namedtuple

import numpy as np

from rnnviewer.engine.model import GATES
from rnnviewer.errors import ConfigError

#: the block of W_hh whose spectrum `spectrum` shows by default: the candidate
#: (tanh) block; a vanilla RNN's single block is called "h".
DEFAULT_GATE = {"rnn": "h", "gru": "n", "lstm": "g"}
#: gates with sigmoid values in (0, 1), the ones whose saturation Karpathy et al. plot
SIGMOID_GATES = {"rnn": (), "gru": ("r", "z"), "lstm": ("i", "f", "o")}


# ------------------------------------------------------------------ PCA
class PCAProjector:
    """PCA on a pool of recent states, with component signs kept from fit to fit.

    `add(states)` puts states (..., H) into a ring buffer of the `pool_size` newest;
    `fit()` refits on the pool and flips each new component whose dot product with the
    previous fit's is negative (the first fit makes each component's largest-magnitude
    entry positive, sklearn's svd_flip rule), so the picture does not flip.
    """

    def __init__(self, n_components=2, pool_size=4096):
        if n_components < 1:
            raise ConfigError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.pool_size = int(pool_size)
        self._pool = None          # (pool_size, H) float64
        self._n = 0                # states held
        self._pos = 0              # next slot to write
        self.mean = None           # (H,)
        self.components = None     # (k, H) orthonormal rows
        self.explained_variance = None        # (k,)
        self.explained_variance_ratio = None  # (k,)

    def __len__(self):
        return self._n

    def reset(self):
        """Forget the pool and the basis (e.g. when the model is rebuilt)."""
        self.__init__(self.n_components, self.pool_size)

    def add(self, states):
        s = np.asarray(states, dtype=np.float64)
        s = s.reshape(-1, s.shape[-1])
        if self._pool is None:
            self._pool = np.zeros((self.pool_size, s.shape[1]))
        if s.shape[1] != self._pool.shape[1]:
            raise ConfigError(f"states have {s.shape[1]} units, the pool {self._pool.shape[1]}")
        s = s[np.all(np.isfinite(s), axis=1)][-self.pool_size:]
        idx = (self._pos + np.arange(len(s))) % self.pool_size
        self._pool[idx] = s
        self._pos = (self._pos + len(s)) % self.pool_size
        self._n = min(self.pool_size, self._n + len(s))
        return self

    def fit(self):
        if self._n < 2:
            raise ConfigError("PCA needs at least 2 states in the pool")
        X = self._pool[:self._n]
        mean = X.mean(0)
        _, sv, Vt = np.linalg.svd(X - mean, full_matrices=False)
        k = min(self.n_components, Vt.shape[0])
        comps = Vt[:k].copy()
        if self.components is not None and self.components.shape == comps.shape:
            signs = np.sign(np.sum(comps * self.components, axis=1))
        else:
            signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        comps *= np.where(signs == 0, 1.0, signs)[:, None]
        var = sv ** 2 / (self._n - 1)
        self.mean, self.components = mean, comps
        self.explained_variance = var[:k]
        total = var.sum()
        self.explained_variance_ratio = var[:k] / total if total > 0 else np.zeros(k)
        return self

    def update(self, states):
        """add(states) then fit(); returns self."""
        return self.add(states).fit()

    def project(self, h):
        """h (..., H) -> coordinates (..., k) on the current components."""
        if self.components is None:
            raise ConfigError("fit the PCA before projecting")
        return (np.asarray(h, dtype=np.float64) - self.mean) @ self.components.T


# ------------------------------------------------------------------ weights
def _cell(model_or_cell):
    cell = model_or_cell if isinstance(model_or_cell, str) else \
        getattr(model_or_cell, "cell", None)
    if cell not in GATES:
        raise ConfigError("expected a Model or a cell name (rnn, gru, lstm), "
                          f"got {model_or_cell!r}")
    return cell


def split_gates(model_or_cell, W):
    """Per-gate blocks of W_xh, W_hh, b_xh or b_hh (first axis G*H): dict gate -> block.

    Keys in torch's order: ("r", "z", "n") GRU, ("i", "f", "g", "o") LSTM, ("h",) RNN.
    Blocks are views of W. Given a Model, W must have G * n_hidden rows.
    """
    cell = _cell(model_or_cell)
    names = GATES[cell] or ("h",)
    W = np.asarray(W)
    rows = W.shape[0] if W.ndim else 0
    H = getattr(model_or_cell, "n_hidden", None)
    if rows == 0 or rows % len(names) or (H is not None and rows != len(names) * H):
        raise ConfigError(f"an array with {rows} rows does not split into the "
                          f"{len(names)} gates of this {cell}")
    H = W.shape[0] // len(names)
    return {g: W[i * H:(i + 1) * H] for i, g in enumerate(names)}


Spectrum = namedtuple("Spectrum", "eigenvalues spectral_radius max_singular_value gate")


def recurrent_block(model, gate=None):
    """The (H, H) block of W_hh for `gate` (default DEFAULT_GATE[cell]), as float64."""
    gate = DEFAULT_GATE[model.cell] if gate is None else gate
    blocks = split_gates(model, model.params["W_hh"])
    if gate not in blocks:
        raise ConfigError(f"a {model.cell} has no gate {gate!r}; choose one of {sorted(blocks)}")
    return np.asarray(blocks[gate], dtype=np.float64), gate


def spectral_radius(W):
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(W, dtype=np.float64)))))


def largest_singular_value(W):
    return float(np.linalg.norm(np.asarray(W, dtype=np.float64), 2))


def spectrum(model_or_W, gate=None):
    """Eigenvalues (H,) complex (sorted by decreasing modulus), spectral radius and
    largest singular value of W_hh's recurrent block for `gate`, or of a square matrix."""
    if isinstance(model_or_W, np.ndarray):
        W = np.asarray(model_or_W, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ConfigError(f"spectrum needs a square matrix, got shape {W.shape}")
    else:
        W, gate = recurrent_block(model_or_W, gate)
    ev = np.linalg.eigvals(W)
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    return Spectrum(ev, float(np.abs(ev).max()), largest_singular_value(W), gate)


# ------------------------------------------------------------------ top-k contexts
Contexts = namedtuple("Contexts", "positions values windows inputs before after")


def top_k_contexts(acts, unit, k=10, before=10, after=5, inputs=None, mode="max"):
    """The k places where `unit` fires most, each with its context window (LSTMVis).

    acts: (N, T, H) activations over N validation sequences, or (T, H) for one stream.
    mode: "max" (largest values), "min" (most negative) or "abs".
    Peaks are taken greedily from the strongest; a peak is skipped when its window
    [t - before, t + after] would overlap an already chosen window of the same sequence.
    Returns Contexts: positions (k', 2) int rows (sequence, t); values (k',);
    windows (k', before + after + 1) activations aligned on the peak (column `before`),
    NaN outside the sequence; inputs (k', before + after + 1) taken from `inputs` (N, T)
    (e.g. token ids, -1 outside) or None. k' < k when there are fewer peaks.
    """
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
        inputs = None if inputs is None else np.asarray(inputs)[None]
    if a.ndim != 3:
        raise ConfigError(f"acts must have shape (N, T, H) or (T, H), got {np.shape(acts)}")
    N, T, H = a.shape
    if not isinstance(unit, (int, np.integer)) or not 0 <= unit < H:
        raise ConfigError(f"unit must be in [0, {H}), got {unit!r}")
    if before < 0 or after < 0 or k < 0:
        raise ConfigError("k, before and after must be >= 0")
    if inputs is not None:
        inputs = np.asarray(inputs)
        if inputs.shape[:2] != (N, T):
            raise ConfigError(f"inputs must have shape {(N, T)}, got {inputs.shape[:2]}")
    v = a[:, :, unit]
    score = {"max": v, "min": -v, "abs": np.abs(v)}.get(mode)
    if score is None:
        raise ConfigError(f"mode must be 'max', 'min' or 'abs', got {mode!r}")
    flat = np.where(np.isfinite(score), score, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")
    taken = np.zeros((N, T), bool)    # peaks whose windows would overlap a chosen one
    span = before + after
    chosen = []
    for idx in order:
        if len(chosen) >= k or flat[idx] == -np.inf:
            break
        n, t = divmod(int(idx), T)
        if taken[n, t]:
            continue
        chosen.append((n, t))
        taken[n, max(0, t - span):t + span + 1] = True
    pos = np.array(chosen, dtype=np.int64).reshape(-1, 2)
    width = span + 1
    offs = np.arange(width) - before
    windows = np.full((len(pos), width), np.nan)
    ins = None if inputs is None else np.full((len(pos), width) + inputs.shape[2:], -1,
                                              dtype=inputs.dtype)
    for r, (n, t) in enumerate(pos):
        ts = t + offs
        ok = (ts >= 0) & (ts < T)
        windows[r, ok] = v[n, ts[ok]]
        if ins is not None:
            ins[r, ok] = inputs[n, ts[ok]]
    values = v[pos[:, 0], pos[:, 1]] if len(pos) else np.zeros(0)
    return Contexts(pos, values, windows, ins, before, after)


# ------------------------------------------------------------------ gates
Saturation = namedtuple("Saturation", "low high")


def gate_saturation(gates, low=0.1, high=0.9, names=None, per_unit=False, mask=None):
    """Fractions of gate values under `low` and over `high` (Karpathy et al. 2015).

    gates: dict name -> (B, T, H) activations (a Trace's `gates`); names: the gates to
    measure (default: the sigmoid ones present, i f o or r z). A tanh gate (g, n) asked
    for by name is measured on (v + 1) / 2, i.e. v < 2 low - 1 and v > 2 high - 1.
    mask (B, T) drops padded positions. Returns dict name -> Saturation(low, high),
    floats, or (H,) arrays with per_unit=True.
    """
    if names is None:
        names = [g for g in ("i", "f", "o", "r", "z") if g in gates]
    out = {}
    for g in names:
        if g not in gates:
            raise ConfigError(f"no gate {g!r} among {sorted(gates)}")
        v = np.asarray(gates[g], dtype=np.float64)
        if g in ("g", "n"):
            v = 0.5 * (v + 1.0)
        v = v.reshape(-1, v.shape[-1])                        # (B*T, H)
        if mask is not None:
            v = v[np.asarray(mask, bool).reshape(-1)]
        axis = 0 if per_unit else None
        if v.shape[0] == 0:
            empty = np.zeros(v.shape[1]) if per_unit else 0.0
            out[g] = Saturation(empty, empty)
            continue
        out[g] = Saturation(np.mean(v < low, axis=axis), np.mean(v > high, axis=axis))
        if not per_unit:
            out[g] = Saturation(float(out[g].low), float(out[g].high))
    return out


# ------------------------------------------------------------------ histograms
def nice_limit(x):
    """The smallest of 1, 2, 5 times a power of ten that is >= x (> 0)."""
    x = float(x)
    if not np.isfinite(x) or x <= 0:
        return 1.0
    p = 10.0 ** np.floor(np.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * p >= x * (1 - 1e-12):
            return m * p
    return 10.0 * p


class HistogramTracker:
    """Per-matrix histograms with bin edges that stay put between frames.

    Each name's edges are symmetric about zero, [-L, L] with `bins` bins, L a "nice"
    number (1, 2, 5 x 10^k) covering max |value|; L only grows (when values leave it),
    so histograms of successive steps share edges and stack into an image.
    """

    def __init__(self, bins=64):
        self.bins = int(bins)
        self.limits = {}

    def edges(self, name):
        L = self.limits[name]
        return np.linspace(-L, L, self.bins + 1)

    def update(self, arrays):
        """dict name -> array  ->  dict name -> (counts (bins,), edges (bins + 1,))."""
        out = {}
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float64).ravel()
            a = a[np.isfinite(a)]
            peak = float(np.abs(a).max()) if a.size else 0.0
            L = self.limits.get(name, 0.0)
            if peak > L or L == 0.0:
                self.limits[name] = max(L, nice_limit(peak if peak > 0 else 1e-3))
            e = self.edges(name)
            out[name] = (np.histogram(a, bins=e)[0], e)
        return out
