"""Worker-side gradient analyses: per-timestep attribution ("saliency") of the first probe
sequence, with the engine's exact BPTT (rnnviewer.engine.attribution).

Options (the saliency panel's choices; every key optional):
    method  "gradient" | "input_x_gradient" | "integrated_gradients" | "occlusion"
    t       output timestep, Python indexing (default -1, the last)
    k       an output index, "target" (xent: the target class at t; the default there),
            "loss" (the loss term at t), "loss_seq" (the sequence's whole loss) or
            "unit" (hidden unit `unit` at t); default 0 for mse tasks
    unit    the hidden unit when k == "unit"
    steps   integration steps of integrated gradients (default 50)
"""

import time

import numpy as np

from rnnviewer.engine import attribution
from rnnviewer.engine.losses import log_softmax
from rnnviewer.errors import ConfigError
from rnnviewer.training.analyses import register_analysis

METHODS = ("gradient", "input_x_gradient", "integrated_gradients", "occlusion")
METHOD_NAMES = {"gradient": "gradient (saliency)", "input_x_gradient": "gradient \u00d7 input",
                "integrated_gradients": "integrated gradients", "occlusion": "occlusion"}
MAX_STEPS = 1024


def _int(options, name, default, low, high):
    v = options.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ConfigError(f"saliency: {name} must be an integer, got {v!r}")
    if not low <= v <= high:
        raise ConfigError(f"saliency: {name} must lie in [{low}, {high}], got {v}")
    return int(v)


def resolve(options, probe, loss_name, n_out, n_hidden):
    """The options checked and made concrete for the first probe sequence:
    dict(method, t (absolute), k (int or "loss"), layer, whole (bool), steps, target)."""
    options = dict(options or {})
    method = options.get("method", "gradient")
    if method not in METHODS:
        raise ConfigError(f"saliency: unknown method {method!r}; choose one of "
                          f"{', '.join(METHODS)}")
    T = probe.x.shape[1]
    t = _int(options, "t", -1, -T, T - 1) % T
    default_k = "target" if loss_name == "xent" else 0
    k = options.get("k", default_k)
    out = {"method": method, "t": t, "layer": None, "whole": False,
           "steps": _int(options, "steps", 50, 2, MAX_STEPS), "target": None}
    if k in ("loss", "loss_seq"):
        if not n_out:
            raise ConfigError("saliency: this model has no readout, so it has no loss")
        out["k"], out["whole"] = "loss", k == "loss_seq"
    elif k == "target":
        if loss_name != "xent":
            raise ConfigError("saliency: k='target' needs a classification (xent) task")
        out["k"] = int(np.asarray(probe.target)[0, t])
        out["target"] = out["k"]
        out["layer"] = "output"
    elif k == "unit":
        out["k"] = _int(options, "unit", 0, 0, n_hidden - 1)
        out["layer"] = "hidden"
    else:
        if not n_out:
            raise ConfigError("saliency: this model has no readout; choose k='unit'")
        out["k"] = _int(options, "k", 0, 0, n_out - 1)
        out["layer"] = "output"
    return out


def _objective_value(probe, r, loss_name):
    """f(x) of the first probe sequence for the resolved options r (float)."""
    t = r["t"]
    if r["k"] != "loss":
        src = probe.y if r["layer"] == "output" else probe.h
        return float(src[0, t, r["k"]])
    y = np.asarray(probe.y[0], dtype=np.float64)                      # (T, O)
    target = np.asarray(probe.target[0])
    mask = np.ones(y.shape[0]) if probe.mask is None else np.asarray(probe.mask[0], float)
    if loss_name == "xent":
        terms = -np.take_along_axis(log_softmax(y), target[:, None], axis=1)[:, 0]
    else:
        terms = ((y - target) ** 2).mean(axis=1)
    if r["whole"]:
        return float((terms * mask).sum() / max(mask.sum(), 1.0))
    return float(terms[t] * mask[t])


def attribute(model, probe, loss_name, options):
    """The attribution of the first probe sequence: dict with
    per_feature (T, I) (None for occlusion), per_step (T,), value f(x), delta (IG),
    plus the resolved t, k, layer, method, steps, seconds."""
    r = resolve(options, probe, loss_name, model.n_out, model.n_hidden)
    x = np.asarray(probe.x[:1])                                       # (1, T, I)
    kw = {}
    if r["k"] == "loss":
        kw = {"target": np.asarray(probe.target[:1]), "loss": loss_name,
              "mask": None if probe.mask is None else np.asarray(probe.mask[:1])}
        t = None if r["whole"] else r["t"]
    else:
        kw = {"layer": r["layer"]}
        t = r["t"]
    method = r["method"]
    delta = None
    t0 = time.perf_counter()
    if method == "gradient":
        attr = attribution.saliency(model, x, t, r["k"], **kw)
    elif method == "input_x_gradient":
        attr = attribution.input_x_gradient(model, x, t, r["k"], **kw)
    elif method == "integrated_gradients":
        attr, delta = attribution.integrated_gradients(model, x, t, r["k"], steps=r["steps"],
                                                       **kw)
    else:
        attr = attribution.occlusion(model, x, t, r["k"], **kw)
    seconds = time.perf_counter() - t0
    out = {"method": method, "t": r["t"], "k": r["k"], "layer": r["layer"] or "",
           "whole": r["whole"], "steps": r["steps"], "seconds": seconds,
           "value": _objective_value(probe, r, loss_name),
           "delta": float("nan") if delta is None else float(np.asarray(delta)[0])}
    if method == "occlusion":
        out["per_feature"] = None
        out["per_step"] = np.asarray(attr[0], dtype=np.float64)               # (T,)
    else:
        a = np.asarray(attr[0], dtype=np.float64)                             # (T, I)
        out["per_feature"] = a
        # signed sum over the features; the plain gradient of a multi-feature input has
        # no meaningful sum, so it shows its size (L2 norm over the features) instead
        out["per_step"] = np.sqrt((a * a).sum(1)) if method == "gradient" and \
            a.shape[1] > 1 else a.sum(1)
    if delta is not None:
        total = float(out["per_feature"].sum())
        out["f_difference"] = total - out["delta"]          # f(x) - f(baseline)
    return out


@register_analysis("saliency", min_interval=0.3)
def saliency_analysis(ctx, options):
    """Per-timestep attribution of the first probe sequence (see `attribute`)."""
    loss_name = getattr(ctx.task, "loss", "mse")
    return attribute(ctx.model, ctx.probe, loss_name, options)
