"""Activation maximization over input sequences (issue 8), by gradient ascent.

The objective is one unit at one timestep: h[t, unit] (`target="hidden"`) or
y[t, unit] (`target="output"`, the raw readout: a logit for xent models), driven from
a zero initial state. Gradients come from `Model.backward` with a one-hot dh or dy.

- Real inputs: Adam ascent on x of  a(x) - l2/2 ||x||^2,  projected onto `bounds`.
- One-hot inputs (`onehot=True`): ascent on logits z with x = softmax(z / tau), tau
  annealed geometrically from `temperature[0]` to `temperature[1]`; the answer is the
  per-step argmax symbol, evaluated exactly as a one-hot sequence.

`restarts` random starts run together in the batch dimension; the best is kept.
"""

from dataclasses import dataclass

import numpy as np

from rnnviewer.errors import ConfigError

LR_END = 0.01   # the step size ends at 1% of lr (Adam alone would orbit the optimum)


@dataclass
class MaximizeResult:
    x: np.ndarray                  # (T, I) the optimized input (one-hot for onehot=True)
    activation: np.ndarray         # (T,) the unit along x
    value: float                   # the unit at t for x
    unit: int
    t: int                         # the objective's timestep, in [0, T)
    target: str                    # "hidden" or "output"
    history: np.ndarray            # (steps run,) best objective over the restarts per step
    #                                (real: activation - l2 term; one-hot: the relaxed one)
    restart_values: np.ndarray     # (restarts,) final value of every restart
    distribution: np.ndarray | None = None   # (T, I) softmax at the end (onehot)
    argmax: np.ndarray | None = None         # (T,) the chosen symbols (onehot)
    chars: str | None = None                 # argmax mapped through vocab (onehot + vocab)
    stopped: bool = False                    # should_stop() ended the run early


class _Adam:
    """Adam with a short second-moment memory (beta2 = 0.5): near a saturating unit the
    gradient shrinks by orders of magnitude within a few steps, and the usual 0.999
    would shrink the step with it (measured: inputs stalled at 0.2-0.8 of their bounds)."""

    def __init__(self, shape, lr, b1=0.9, b2=0.5, eps=1e-12):
        self.m, self.v = np.zeros(shape), np.zeros(shape)
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0

    def ascent(self, g, scale=1.0):
        """The step to add for gradient g (maximizing), lr times `scale`."""
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mh = self.m / (1 - self.b1 ** self.t)
        vh = self.v / (1 - self.b2 ** self.t)
        return scale * self.lr * mh / (np.sqrt(vh) + self.eps)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def maximize_activation(model, unit, t=-1, length=20, *, target="hidden", onehot=False,
                        restarts=8, steps=300, lr=None, l2=1e-3, bounds=(-1.0, 1.0),
                        temperature=(1.0, 0.05), vocab=None, seed=0, progress=None,
                        should_stop=None, report_every=10):
    """Gradient ascent for the input sequence (length, I) that maximizes one unit at t.

    lr: default 0.05 for real inputs (times the bounds' half-width when it exceeds 1,
    so wide bounds are reachable), 0.2 for logits, decaying geometrically to 1% of that
    by the last step. bounds: (low, high) or None; l2 and bounds apply to real inputs
    only. Real starts are Gaussian (std 0.1, times the half-width when above 1) around
    0, or around the bounds' centre when 0 lies outside them, clipped to the bounds.
    vocab (I symbols, e.g. a string) gives `.chars` for one-hot inputs.
    progress(fraction, best_value) is called every `report_every` steps and at the end;
    should_stop() is polled every step (True ends the run with the best so far).
    seed: int or numpy Generator. Returns a MaximizeResult.
    """
    if target not in ("hidden", "output"):
        raise ConfigError(f"target must be 'hidden' or 'output', got {target!r}")
    if target == "output" and not model.n_out:
        raise ConfigError("this model has no readout: use target='hidden'")
    size = model.n_out if target == "output" else model.n_hidden
    if not isinstance(unit, (int, np.integer)) or isinstance(unit, bool) or not 0 <= unit < size:
        raise ConfigError(f"unit must be a {target} unit in [0, {size}), got {unit!r}")
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ConfigError(f"length must be a positive int, got {length!r}")
    if not isinstance(t, (int, np.integer)) or not -length <= t < length:
        raise ConfigError(f"t must be an int in [{-length}, {length}), got {t!r}")
    if restarts < 1 or steps < 0:
        raise ConfigError("restarts must be >= 1 and steps >= 0")
    if bounds is not None and not bounds[0] < bounds[1]:
        raise ConfigError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    if vocab is not None and len(vocab) != model.n_in:
        raise ConfigError(f"vocab has {len(vocab)} symbols, the model {model.n_in} inputs")
    t = int(t) % length
    T, I, R = int(length), model.n_in, int(restarts)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    dt = model.dtype

    def run(x):
        """Unit values (R', T) along x and d unit[t] / dx (R', T, I)."""
        tr = model.forward(x.astype(dt))
        src = tr.h if target == "hidden" else tr.y
        seed_ = np.zeros(src.shape, dt)
        seed_[:, t, unit] = 1.0
        g = model.backward(tr, **({"dh": seed_} if target == "hidden" else {"dy": seed_}))
        return src[:, :, unit].astype(np.float64), g["x"].astype(np.float64)

    def curve(x):
        tr = model.forward(x.astype(dt))
        return (tr.h if target == "hidden" else tr.y)[:, :, unit].astype(np.float64)

    if onehot:
        z = rng.normal(scale=0.1, size=(R, T, I))
        opt = _Adam(z.shape, 0.2 if lr is None else lr)
        tau0, tau1 = (float(temperature[0]), float(temperature[1]))
        if not (tau0 > 0 and tau1 > 0):
            raise ConfigError(f"temperatures must be > 0, got {temperature!r}")
    else:
        lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
        half = 1.0 if bounds is None else max(1.0, (hi - lo) / 2)
        centre = 0.0 if lo <= 0.0 <= hi else (lo + hi) / 2   # else every start is a corner
        x = np.clip(centre + rng.normal(scale=0.1 * half, size=(R, T, I)), lo, hi)
        opt = _Adam(x.shape, 0.05 * half if lr is None else lr)

    history = []
    stopped = False
    tau = tau0 if onehot else None
    for k in range(steps):
        if should_stop is not None and should_stop():
            stopped = True
            break
        frac = k / max(1, steps - 1)
        decay = LR_END ** frac             # lr decays geometrically to LR_END * lr
        if onehot:
            tau = tau0 * (tau1 / tau0) ** frac
            p = _softmax(z / tau)
            vals, g = run(p)
            obj = vals[:, t]
            # chain rule through the softmax: dJ/dz = p * (g - <p, g>) / tau
            dz = p * (g - np.sum(p * g, -1, keepdims=True)) / tau
            z = z + opt.ascent(dz, decay)
        else:
            vals, g = run(x)
            obj = vals[:, t] - 0.5 * l2 * np.sum(x * x, axis=(1, 2))
            x = np.clip(x + opt.ascent(g - l2 * x, decay), lo, hi)
        history.append(float(obj.max()))
        if progress is not None and ((k + 1) % report_every == 0 or k + 1 == steps):
            progress((k + 1) / steps, history[-1])

    distribution = argmax = None
    if onehot:
        distribution = _softmax(z / tau)
        argmax = distribution.argmax(-1)                      # (R, T)
        x = np.zeros((R, T, I))
        x[np.arange(R)[:, None], np.arange(T)[None, :], argmax] = 1.0
    acts = curve(x)                                           # (R, T)
    score = acts[:, t] - (0.0 if onehot else 0.5 * l2 * np.sum(x * x, axis=(1, 2)))
    best = int(np.argmax(score))
    res = MaximizeResult(x=x[best].astype(dt), activation=acts[best], value=float(acts[best, t]),
                         unit=int(unit), t=t, target=target, history=np.array(history),
                         restart_values=acts[:, t], stopped=stopped)
    if onehot:
        res.distribution, res.argmax = distribution[best], argmax[best]
        if vocab is not None:
            res.chars = "".join(str(vocab[i]) for i in res.argmax)
    return res
