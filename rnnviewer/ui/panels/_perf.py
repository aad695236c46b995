"""Keeping panel frames cheap: cached axes and steady view ranges.

Measured offscreen (one 640x420 plot, a 100-point curve updated every frame, grid on):
13.7 ms of GUI-thread time per frame with pyqtgraph's defaults, 1.3 ms with the two
measures below. Most of the cost was the axes: an AxisItem that draws the grid covers
the whole plot, so every change of a curve repainted the axes (ticks, labels and grid
lines) and every change of the view range (autoRange, each frame) regenerated them.

- `cache_axes(widget)`: every AxisItem under `widget` paints into a cached pixmap
  (QGraphicsItem.DeviceCoordinateCache), redrawn only when the axis itself changes; a
  frame then blits it instead of running the axis's Python paint.
- `SteadyRange`: a view range that grows at once to fit the data but moves only in
  steps (with headroom) and shrinks only when the data fill much less of it, instead of
  autoRange following every frame's noise; the axes then stay cached between steps.
- `Trace` and `Band`: a polyline and a filled band between two lines as plain
  QGraphicsPathItems: Qt draws them without calling Python (a PlotCurveItem runs Python
  in its paint and in every boundingRect query, and a FillBetweenItem rebuilds its path
  once per changed curve). They take setData/getData like PlotCurveItem.
- `BandLevel`: colour levels that change in steps, so colour bars redraw rarely.
"""

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsView

_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache


def cache_axes(widget):
    """Cache the painting of every AxisItem in the graphics views under `widget`
    (idempotent; call again after adding plots). Returns the number of axes."""
    n = 0
    views = widget.findChildren(QGraphicsView)
    if isinstance(widget, QGraphicsView):
        views.append(widget)
    for view in views:
        scene = view.scene()
        if scene is None:
            continue
        for item in scene.items():
            if isinstance(item, pg.AxisItem):
                if item.cacheMode() != _CACHE:
                    item.setCacheMode(_CACHE)
                n += 1
    return n


class SteadyRange:
    """One axis of a ViewBox that follows the data in steps.

    `fit(lo, hi)` sets the view to [lo, hi] widened by `pad` (fractions of the span below
    and above) when the data leave the current range or fill less than `shrink` of it;
    otherwise it leaves the range, and so the cached axes, alone. A growing series (steps
    on x) thus moves its axis once per `pad[1]` of growth instead of every frame.
    `axis` is "x" or "y"; with `log` the view is in log10 units (pyqtgraph's log mode)
    and `fit_data` takes the positive data. The view's own autoRange of that axis is
    switched off. Returns True when the range moved.
    """

    def __init__(self, viewbox, axis="y", pad=(0.05, 0.05), shrink=0.6, log=False):
        self.vb = viewbox
        self.axis = axis
        self.pad = (float(pad[0]), float(pad[1]))
        self.shrink = float(shrink)
        self.log = log
        self.range = None           # (lo, hi) set last, in view coordinates
        viewbox.enableAutoRange(axis=axis, enable=False)

    def reset(self):
        self.range = None

    def fit_data(self, *arrays):
        """fit() to the finite values of `arrays` (their positive ones, as log10, with log)."""
        lo, hi = math.inf, -math.inf
        for a in arrays:
            a = np.asarray(a, dtype=np.float64)
            if self.log:
                with np.errstate(divide="ignore", invalid="ignore"):
                    a = np.log10(a)
            a = a[np.isfinite(a)]
            if a.size:
                lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        return self.fit(lo, hi)

    def fit(self, lo, hi):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return False
        if hi < lo:
            lo, hi = hi, lo
        span = hi - lo
        if span <= 0:
            span = max(abs(lo) * 0.1, 1e-9)
            lo, hi = lo - span / 2, hi + span / 2
        cur = self.range
        if cur is not None:
            clo, chi = cur
            if clo <= lo and hi <= chi and span >= self.shrink * (chi - clo):
                return False
        new = (lo - self.pad[0] * span, hi + self.pad[1] * span)
        self.range = new
        if self.axis == "x":
            self.vb.setXRange(*new, padding=0)
        else:
            self.vb.setYRange(*new, padding=0)
        return True


def set_ticks(axis, ticks):
    """axis.setTicks(ticks) only when they differ from the last ones set this way: new
    ticks make the axis regenerate and repaint."""
    if getattr(axis, "_rnnviewer_ticks", "unset") != ticks:
        axis._rnnviewer_ticks = ticks
        axis.setTicks(ticks)


class BandLevel:
    """A symmetric colour level that changes in steps, so that colour bars (and their
    axes) stay put between frames while the colours stay comparable: it grows at once to
    `headroom` above the target when the target exceeds it, shrinks by `step` when the
    target falls under `low` of it, and otherwise stays."""

    def __init__(self, headroom=1.05, low=0.8, step=0.92, floor=1e-12):
        self.headroom, self.low, self.step, self.floor = headroom, low, step, floor
        self.value = None

    def reset(self):
        self.value = None

    def update(self, target):
        t = float(target) if np.isfinite(target) else 0.0
        v = self.value
        if v is None or t > v:
            v = t * self.headroom
        elif t < self.low * v:
            v = max(t * self.headroom, v * self.step)
        self.value = max(v, self.floor)
        return self.value


def _decimate(x, y, max_points):
    """(x, y) thinned to about max_points by keeping each bin's min and max of y (in their
    order), so peaks survive: what pyqtgraph's "peak" downsampling does."""
    n = len(x)
    bins = max(1, max_points // 2)
    per = int(math.ceil(n / bins))
    m = (n // per) * per
    if m < 2 * per:
        return x, y
    yb = y[:m].reshape(-1, per)
    with np.errstate(invalid="ignore"):
        lo = np.nanargmin(np.where(np.isnan(yb), np.inf, yb), axis=1)
        hi = np.nanargmax(np.where(np.isnan(yb), -np.inf, yb), axis=1)
    first = np.minimum(lo, hi)
    second = np.maximum(lo, hi)
    base = np.arange(len(yb)) * per
    idx = np.empty(2 * len(yb), dtype=np.intp)
    idx[0::2] = base + first
    idx[1::2] = base + second
    if m < n:
        idx = np.concatenate([idx, np.arange(m, n)])
    return x[idx], y[idx]


class Trace(QGraphicsPathItem):
    """A line through (x, y) in a plot's data coordinates, drawn by Qt alone.

    NaN breaks the line. `max_points`: longer data are drawn min/max-decimated to about
    that many points (getData still returns all of it). Add it with plot.addItem(trace).
    """

    def __init__(self, pen=None, max_points=None, z=None):
        super().__init__()
        self.setPen(pg.mkPen(pen) if pen is not None else QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.max_points = max_points
        self._x = self._y = None
        if z is not None:
            self.setZValue(z)

    def setData(self, x=None, y=None):
        if y is None:
            x, y = (None, x) if x is not None else (None, None)
        y = np.asarray([] if y is None else y, dtype=np.float64).ravel()
        x = np.arange(len(y), dtype=np.float64) if x is None else \
            np.asarray(x, dtype=np.float64).ravel()
        self._x, self._y = x, y
        self.setPath(self._path(x, y))

    def _path(self, x, y):
        if len(y) < 1:
            return QPainterPath()
        if self.max_points and len(y) > self.max_points:
            x, y = _decimate(x, y, self.max_points)
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.all():
            return pg.arrayToQPath(x, y, connect="all", finiteCheck=False)
        return pg.arrayToQPath(x, y, connect="finite")

    def getData(self):
        return self._x, self._y

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        d = self._x if ax == 0 else self._y
        if d is None or not len(d) or not np.isfinite(d).any():
            return (None, None)
        return (float(np.nanmin(d)), float(np.nanmax(d)))


class Dots(Trace):
    """Round markers of `size` pixels at (x, y), drawn by Qt alone: each point is a tiny
    segment stroked with a round-capped cosmetic pen (a dot)."""

    def __init__(self, color, size=4, z=None):
        pen = pg.mkPen(color, width=size)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        super().__init__(pen, z=z)

    def _path(self, x, y):
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if not len(x):
            return QPainterPath()
        eps = 1e-6 * max(float(x.max() - x.min()), 1.0)
        xx = np.repeat(x, 2)
        xx[1::2] += eps
        return pg.arrayToQPath(xx, np.repeat(y, 2), connect="pairs", finiteCheck=False)


class _Holder:
    """getData() of one edge of a Band (what tests and exports read)."""

    def __init__(self):
        self.x = self.y = None

    def getData(self):
        return self.x, self.y


class Band(QGraphicsPathItem):
    """The area between two lines lo(x) and hi(x), filled, drawn by Qt alone; `lo` and
    `hi` give back the edges with getData()."""

    def __init__(self, brush, z=None):
        super().__init__()
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(pg.mkBrush(brush))
        self.lo, self.hi = _Holder(), _Holder()
        if z is not None:
            self.setZValue(z)

    def setData(self, x, lo, hi):
        x = np.asarray(x, dtype=np.float64)
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        self.lo.x, self.lo.y, self.hi.x, self.hi.y = x, lo, x, hi
        ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
        if len(x) < 2 or not ok.all():
            x, lo, hi = x[ok], lo[ok], hi[ok]
        if len(x) < 2:
            self.setPath(QPainterPath())
            return
        path = pg.arrayToQPath(np.concatenate([x, x[::-1]]), np.concatenate([hi, lo[::-1]]),
                               connect="all", finiteCheck=False)
        path.closeSubpath()
        self.setPath(path)

    def clear(self):
        self.lo.x = self.lo.y = self.hi.x = self.hi.y = None
        self.setPath(QPainterPath())
