"""Analyses that run in the training worker, between steps, for the panels that want them.

Expensive views (saliency, integrated gradients, top-k contexts over validation data,
fixed points ...) are computed here rather than in the GUI thread: only the worker
thread calls numba kernels. A panel names the analyses it needs (`Panel.analyses`) and
their options (`Panel.analysis_options()`); the window passes the requests of visible
panels to the session (`TrainingSession.analysis_requests`, a plain dict replaced
atomically), and the session runs each requested analysis when a snapshot is made and
at least `min_interval` seconds after its last run (or at once if its options changed).
Results land in `Snapshot.extra[name]` and stay there until the next run.

Adding one: in a module listed in ANALYSIS_MODULES,

    @register_analysis("saliency", min_interval=0.2)
    def saliency(ctx, options):          # ctx: AnalysisContext; options: the panel's dict
        return {"values": ...}           # a dict of arrays/scalars (copied, made read-only)
"""

import importlib
import logging
import time
import traceback
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

log = logging.getLogger(__name__)

# modules under rnnviewer/training/ that register analyses
ANALYSIS_MODULES = ("analyses_hidden", "analyses_gradients", "analyses_dynamics",
                    "analyses_samples")
_REGISTRY = {}                 # name -> Analysis


@dataclass(frozen=True)
class Analysis:
    name: str
    fn: object
    min_interval: float


@dataclass
class AnalysisContext:
    """What an analysis may read. `model` is the live model: read it, never modify it."""

    model: object
    task: object
    probe: object          # snapshot.ProbeTrace of this snapshot
    step: int
    rng: np.random.Generator


def register_analysis(name, min_interval=0.25):
    """Decorator: make `fn(ctx, options) -> dict` available as analysis `name`."""
    def deco(fn):
        _REGISTRY[name] = Analysis(name, fn, float(min_interval))
        return fn
    return deco


def registered_analyses():
    for mod in ANALYSIS_MODULES:
        importlib.import_module(f"rnnviewer.training.{mod}")
    return dict(_REGISTRY)


def _freeze(value):
    if isinstance(value, np.ndarray):
        a = value.copy()
        a.flags.writeable = False
        return a
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


class AnalysisRunner:
    """Runs requested analyses when they are due; keeps the latest result of each."""

    def __init__(self):
        self.results = {}          # name -> frozen result (with "options" and "step")
        self._last = {}            # name -> (time, options)

    def reset(self):
        self.results.clear()
        self._last.clear()

    def run_due(self, requests, ctx, now=None, force=False):
        """Run each analysis in `requests` (name -> options) that is due; return all results."""
        now = time.monotonic() if now is None else now
        registry = registered_analyses()
        for name, options in dict(requests or {}).items():
            a = registry.get(name)
            if a is None:
                continue
            options = dict(options or {})
            last = self._last.get(name)
            due = force or last is None or last[1] != options or now - last[0] >= a.min_interval
            if not due:
                continue
            self._last[name] = (now, options)
            try:
                out = dict(a.fn(ctx, options) or {})
                out["error"] = None
            except Exception as e:  # an analysis must never stop training
                log.warning("analysis %s failed:\n%s", name, traceback.format_exc())
                out = {"error": f"{type(e).__name__}: {e}"}
            out["options"] = options
            out["step"] = ctx.step
            self.results[name] = _freeze(out)
        return MappingProxyType(dict(self.results))
