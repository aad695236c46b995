"""Activation maximization and fixed points for the dynamics panels (issue 8), Qt-free.

The panels (ui/panels/maximize.py, ui/panels/fixed_points.py) run `run_maximize` and
`run_fixed_points` in a thread of their own, on a numpy-backend copy of a snapshot's model
(`numpy_model`): neither needs a numba kernel, so they never stall training, report real
progress and stop within one iteration. The same computations are registered as worker
analyses "maximize" and "fixed_points" (on the live model) for headless callers.

maximize options (all optional):
    target "hidden" | "output"; unit; t (Python index, -1 = last); length T;
    restarts; steps; l2; bounds (low, high); temperature (start, end);
    onehot (bool, default from the task: `input_encoding`); seed
fixed_points options (all optional):
    x_star "zero" | "mean" (the probe inputs' mean); starts (initial states, sampled from
    the probe trajectories); tol; slow_tol; noise (std added to every start); max_iter; seed
"""

import math
from dataclasses import dataclass

import numpy as np

from rnnviewer.engine import Model, fixed_points, maximize_activation
from rnnviewer.engine.fixedpoints import trajectory_states
from rnnviewer.errors import ConfigError
from rnnviewer.training.analyses import register_analysis

COPY_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_LENGTH = 1000
DEFAULT_LENGTH_CAP = 100     # the panel's default T: the task's seq_len, at most this
KINDS = ("stable", "saddle", "unstable")


@dataclass(frozen=True)
class InputEncoding:
    """How a task encodes its inputs, for activation maximization."""

    kind: str                    # "onehot" (one channel per symbol) or "real"
    vocab: str | None = None     # onehot: one display symbol per input channel, if known
    bounds: tuple = (-1.0, 1.0)  # real: the range the task's inputs take
    binary: bool = False         # real inputs that are 0/1 bits (parity): shown as bits


def _nice_bounds(lo, hi):
    """(lo, hi) widened outwards to multiples of half a power of ten of the span."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return (-1.0, 1.0)
    if hi - lo < 1e-6:
        return (lo - 1.0, hi + 1.0)
    step = 10.0 ** math.floor(math.log10(hi - lo)) / 2
    return (math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step)


def input_encoding(task_name, task_config, n_in, probe_x=None):
    """The InputEncoding of a task: one-hot for text and copy (and any task whose probe
    inputs are one-hot rows over several channels), real otherwise with bounds from the
    probe inputs' range (flipflop -1..1, adding and parity 0..1)."""
    cfg = dict(task_config or {})
    x = None if probe_x is None else np.asarray(probe_x, dtype=np.float64)
    if task_name == "text":
        vocab = cfg.get("vocab")
        return InputEncoding("onehot", vocab if isinstance(vocab, str) and
                             len(vocab) == n_in else None)
    if task_name == "copy":
        symbols = int(cfg.get("symbols", n_in - 1))
        vocab = COPY_LETTERS[:symbols] + ">"
        return InputEncoding("onehot", vocab if len(vocab) == n_in else None)
    if x is None or x.size == 0:
        return InputEncoding("real")
    bits = bool(np.all((x == 0) | (x == 1)))
    if bits and n_in >= 2 and np.all(x.sum(-1) <= 1):
        return InputEncoding("onehot")
    return InputEncoding("real", bounds=_nice_bounds(float(x.min()), float(x.max())),
                         binary=bits)


def default_length(seq_len):
    """The default maximization length: the task's sequence length, capped."""
    return int(min(max(int(seq_len), 1), DEFAULT_LENGTH_CAP))


def numpy_model(model_config, params, dtype="float64"):
    """A numpy-backend Model with `params` (a snapshot's): safe in any thread, since it
    calls no numba kernel (numpy releases the GIL inside BLAS)."""
    cfg = dict(model_config)
    return Model(cfg["cell"], int(cfg["n_in"]), int(cfg["n_hidden"]), int(cfg["n_out"]),
                 seed=int(cfg.get("seed", 0)), dtype=dtype, backend="numpy",
                 params={k: np.asarray(v) for k, v in params.items()})


def _int(options, name, default, low, high, what):
    v = options.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ConfigError(f"{what}: {name} must be an integer, got {v!r}")
    if not low <= v <= high:
        raise ConfigError(f"{what}: {name} must lie in [{low}, {high}], got {v}")
    return int(v)


def _float(options, name, default, low, high, what):
    v = options.get(name, default)
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {name} must be a number, got {v!r}") from None
    if not low <= v <= high:
        raise ConfigError(f"{what}: {name} must lie in [{low}, {high}], got {v}")
    return v


def _pair(options, name, default, what):
    v = options.get(name, default)
    try:
        a, b = (float(v[0]), float(v[1]))
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{what}: {name} must be two numbers, got {v!r}") from None
    return a, b


def symbol_labels(x, encoding):
    """One display label per step of an input sequence x (T, I) (one-hot: its symbol)."""
    x = np.asarray(x)
    if encoding.kind == "onehot":
        ids = x.argmax(-1)
        if encoding.vocab:
            return [encoding.vocab[i] for i in ids]
        return [str(i) for i in ids]
    if encoding.binary and x.shape[1] == 1:
        return ["1" if v > 0.5 else "0" for v in x[:, 0]]
    return []


# ------------------------------------------------------------------ maximization
def run_maximize(model, options, encoding, progress=None, should_stop=None):
    """Activation maximization (engine.maximize_activation) with the panel's options.

    Returns a dict: x (T, I), activation (T,), value, unit, t (absolute), target, length,
    history (steps run,), restart_values (R,), stopped, onehot, distribution (T, I) and
    argmax (T,) for one-hot inputs (else empty), chars (str), labels (T,) str.
    """
    what = "activation maximization"
    o = dict(options or {})
    target = o.get("target", "hidden")
    if target not in ("hidden", "output"):
        raise ConfigError(f"{what}: target must be 'hidden' or 'output', got {target!r}")
    size = model.n_out if target == "output" else model.n_hidden
    if size < 1:
        raise ConfigError(f"{what}: this model has no readout; maximize a hidden unit")
    unit = _int(o, "unit", 0, 0, size - 1, what)
    length = _int(o, "length", 20, 1, MAX_LENGTH, what)
    t = _int(o, "t", -1, -length, length - 1, what)
    onehot = bool(o.get("onehot", encoding.kind == "onehot"))
    kw = dict(target=target, onehot=onehot,
              restarts=_int(o, "restarts", 8, 1, 256, what),
              steps=_int(o, "steps", 300, 1, 100_000, what),
              seed=_int(o, "seed", 0, 0, 2**31, what),
              progress=progress, should_stop=should_stop)
    if onehot:
        t0, t1 = _pair(o, "temperature", (1.0, 0.05), what)
        if not (t0 > 0 and t1 > 0):
            raise ConfigError(f"{what}: temperatures must be > 0, got {(t0, t1)}")
        kw["temperature"] = (t0, t1)
        if encoding.vocab and len(encoding.vocab) == model.n_in:
            kw["vocab"] = encoding.vocab
    else:
        kw["l2"] = _float(o, "l2", 1e-3, 0.0, 1e3, what)
        lo, hi = _pair(o, "bounds", encoding.bounds, what)
        if not lo < hi:
            raise ConfigError(f"{what}: bounds must be (low, high) with low < high, "
                              f"got {(lo, hi)}")
        kw["bounds"] = (lo, hi)
    res = maximize_activation(model, unit, t=t, length=length, **kw)
    I = model.n_in
    enc = encoding if onehot == (encoding.kind == "onehot") else \
        InputEncoding("onehot" if onehot else "real")
    return {"x": np.asarray(res.x, np.float64), "activation": res.activation,
            "value": res.value, "unit": res.unit, "t": res.t, "target": res.target,
            "length": length, "history": res.history, "restart_values": res.restart_values,
            "stopped": bool(res.stopped), "onehot": onehot,
            "distribution": (res.distribution if res.distribution is not None
                             else np.zeros((0, I))),
            "argmax": res.argmax if res.argmax is not None else np.zeros(0, np.int64),
            "chars": res.chars or "",
            "labels": np.array(symbol_labels(res.x, enc), dtype=str)}


# ------------------------------------------------------------------ fixed points
def probe_states(probe):
    """(P*T, S) states of a probe trace: h, or [h, c] for an LSTM."""
    return trajectory_states(probe)


def initial_states(probe, n, rng):
    """n starts for the fixed-point search, drawn from the probe trajectories (without
    replacement while they last; more are jittered copies, noise 5% of the states' std)."""
    s = probe_states(probe)
    if n <= len(s):
        return s[rng.choice(len(s), n, replace=False)]
    extra = s[rng.integers(0, len(s), n - len(s))]
    extra = extra + rng.normal(scale=0.05 * (s.std() + 1e-12), size=extra.shape)
    return np.concatenate([s, extra])


def _table(points):
    """Arrays describing a list of FixedPoint."""
    S = len(points[0].h) if points else 0
    ev = np.array([p.eigenvalues for p in points]).reshape(len(points), S)
    return {"points": np.array([p.h for p in points]).reshape(len(points), S),
            "q": np.array([p.q for p in points], np.float64),
            "kind": np.array([p.kind for p in points], dtype="<U8"),
            "spectral_radius": np.abs(ev).max(1) if S else np.zeros(len(points)),
            "n_unstable": (np.abs(ev) > 1.0).sum(1).astype(np.int64),
            "count": np.array([p.count for p in points], np.int64),
            "eigenvalues": ev.astype(np.complex128)}


def run_fixed_points(model, probe, options, progress=None, should_stop=None):
    """Fixed and slow points of h -> F(h, x*) from starts on the probe trajectories.

    Returns a dict of arrays: points (N, S), q, kind (str), spectral_radius, n_unstable
    (eigenvalues outside the unit circle), count (starts that ended there), eigenvalues
    (N, S) complex; directions (M, S) unit unstable directions and direction_owner (M,)
    the index of their point; the same for slow points with a "slow_" prefix (no
    directions); x_star (I,), n_candidates, n_starts, stopped, scale (the RMS spread of
    the probe states around their mean: a length for drawing directions).
    """
    what = "fixed points"
    o = dict(options or {})
    choice = o.get("x_star", "zero")
    if choice == "zero":
        x_star = np.zeros(model.n_in)
    elif choice == "mean":
        x_star = np.asarray(probe.x, np.float64).reshape(-1, model.n_in).mean(0)
    else:
        raise ConfigError(f"{what}: x_star must be 'zero' or 'mean', got {choice!r}")
    n = _int(o, "starts", 256, 1, 100_000, what)
    tol = _float(o, "tol", 1e-12, 1e-30, 1.0, what)
    slow_tol = max(_float(o, "slow_tol", 1e-4, 0.0, 1e3, what), tol)
    noise = _float(o, "noise", 0.0, 0.0, 100.0, what)
    max_iter = _int(o, "max_iter", 100, 1, 10_000, what)
    rng = np.random.default_rng(_int(o, "seed", 0, 0, 2**31, what))
    starts = initial_states(probe, n, rng)
    fps = fixed_points(model, x_star, initial_states=starts, tol=tol, slow_tol=slow_tol,
                       noise=noise, max_candidates=n, max_iter=max_iter, seed=rng,
                       progress=progress, should_stop=should_stop)
    out = _table(list(fps))
    S = model.state_size
    dirs = [(i, d) for i, p in enumerate(fps) for d in p.unstable_directions]
    out["directions"] = np.array([d for _, d in dirs], np.float64).reshape(len(dirs), S)
    out["direction_owner"] = np.array([i for i, _ in dirs], np.int64)
    out.update({f"slow_{k}": v for k, v in _table(list(fps.slow)).items()})
    s = probe_states(probe)
    out.update({"x_star": np.asarray(fps.x_star, np.float64), "x_star_choice": choice,
                "n_candidates": int(fps.n_candidates), "n_starts": int(len(starts)),
                "stopped": bool(fps.stopped),
                "scale": float(np.sqrt(np.mean(np.sum((s - s.mean(0)) ** 2, axis=1))))})
    return out


def kind_counts(kinds):
    """dict kind -> count, for every kind in KINDS."""
    kinds = list(kinds)
    return {k: kinds.count(k) for k in KINDS}


# ------------------------------------------------------------------ worker analyses
@register_analysis("maximize", min_interval=30.0)
def maximize_analysis(ctx, options):
    """run_maximize on the live model (the panel runs the same in its own thread)."""
    task = ctx.task
    enc = input_encoding(task.name, task.config, ctx.model.n_in, ctx.probe.x)
    return run_maximize(ctx.model, options, enc)


@register_analysis("fixed_points", min_interval=30.0)
def fixed_points_analysis(ctx, options):
    """run_fixed_points on the live model (the panel runs the same in its own thread)."""
    return run_fixed_points(ctx.model, ctx.probe, options)
