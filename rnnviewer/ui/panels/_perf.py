"""Keeping panel frames cheap: cached axes and steady view ranges.

Measured offscreen (one 640x420 plot, a 100-point curve updated every frame, grid on):
13.7 ms of GUI-thread time per frame with pyqtgraph's defaults, 1.3 ms with the two
measures below. Most of the cost was the axes: an AxisItem that draws the grid covers
the whole plot, so every change of a curve repainted the axes (ticks, labels and grid
lines) and every change of the view range (autoRange, each frame) regenerated them.

- `cache_axes(widget)`: every AxisItem under `widget` paints into a cached pixmap
  (QGraphicsItem.DeviceCoordinateCache), redrawn only when the axis itself changes; a
  frame then blits it instead of running the axis's Python paint.
- `ViewRange`: a view range that grows at once to fit the data but moves only in
  steps (with headroom) and shrinks only when the data fill much less of it, instead of
  autoRange following every frame's noise; the axes then stay cached between steps.
- `Trace` and `Band`: a polyline and a filled band between two lines as plain
  QGraphicsPathItems: Qt draws them without calling Python (a PlotCurveItem runs Python
  in its paint and in every boundingRect query, and a FillBetweenItem rebuilds its path
  once per changed curve). They take setData/getData like PlotCurveItem.
- `BandLevel`: colour levels that change in steps, so colour bars redraw rarely.
- `FastImageItem`: an ImageItem whose float images are coloured with one numpy lookup
  into a cached 32-bit colour table (pyqtgraph rebuilds a 256-entry Qt colour table
  in Python for every frame: 0.2 ms per image).
- `TextLine` / `set_text`: text that changes every frame without re-laying out the
  window. QLabel.setText asks its layout for a new geometry, and inside a dock that goes
  up to the main window's layout: measured 3.4 ms per frame for the curves panel's
  status text, more than drawing its three plots.
"""

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (QBrush, QColor, QImage, QPainter, QPaintEngine, QPainterPath, QPen,
                           QPixmap)
from PySide6.QtWidgets import (QGraphicsItem, QGraphicsPathItem, QGraphicsView, QSizePolicy,
                               QWidget)

from rnnviewer.training.snapshot import GrowableArray

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


class ViewRange:
    """One axis of a ViewBox that follows the data in steps.

    `fit(lo, hi)` sets the view to [lo, hi] widened by `pad` (fractions of the span below
    and above) when the data leave the current range or fill less than `shrink` of it;
    otherwise it leaves the range, and so the cached axes, alone. A growing series (steps
    on x) thus moves its axis once per `pad[1]` of growth instead of every frame (with
    `round_hi`, once per rung of the nice_ceil ladder: 20-25% of growth or more).
    `axis` is "x" or "y"; with `log` the view is in log10 units (pyqtgraph's log mode)
    and `fit_data` takes the positive data. The view's own autoRange of that axis is
    switched off. Returns True when the range moved.
    """

    def __init__(self, viewbox, axis="y", pad=(0.05, 0.05), shrink=0.6, log=False,
                 round_hi=False):
        self.vb = viewbox
        self.axis = axis
        self.pad = (float(pad[0]), float(pad[1]))
        self.shrink = float(shrink)
        self.log = log
        self.round_hi = round_hi    # the upper end on a ladder of round values (nice_ceil)
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
        if self.round_hi and new[1] > 0:
            new = (new[0], nice_ceil(new[1]))
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


NICE = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)   # a ladder, steps of 20-25%


def nice_ceil(x):
    """The smallest ladder value (NICE times a power of ten) at or above x > 0."""
    e = math.floor(math.log10(x))
    for m in NICE + (10.0,):
        v = m * 10.0 ** e
        if v >= x * (1 - 1e-12):
            return v
    return 10.0 ** (e + 1)


def nice_below(v):
    """The ladder value one step under the ladder value v."""
    e = math.floor(math.log10(v) + 1e-9)
    m = v / 10.0 ** e
    lower = [n for n in NICE if n < m * (1 - 1e-9)]
    return lower[-1] * 10.0 ** e if lower else NICE[-1] * 10.0 ** (e - 1)


class BandLevel:
    """A symmetric colour level on a ladder of round values (1, 1.25, 1.5, 2, 2.5, 3, 4, 5,
    6, 8 times a power of ten): it rises at once to the first ladder value at or above
    `headroom` times the target, steps down one rung when the target falls under `low` of
    it, and otherwise stays. Colours stay comparable from frame to frame, the colour bars
    read round numbers, and they (and their axes) redraw only when a rung changes."""

    def __init__(self, headroom=1.05, low=0.6, floor=1e-12):
        self.headroom, self.low, self.floor = headroom, low, floor
        self.value = None

    def reset(self):
        self.value = None

    def update(self, target):
        t = max(float(target) if np.isfinite(target) else 0.0, self.floor)
        v = self.value
        if v is None or t * self.headroom > v:
            v = nice_ceil(t * self.headroom)
        elif t < self.low * v:
            v = max(nice_ceil(t * self.headroom), nice_below(v))
        self.value = v
        return v


def _decimate(x, y, max_points):
    """(x, y) thinned to about max_points by keeping each bin's min and max of y (in their
    order), so peaks survive: what pyqtgraph's "peak" downsampling does."""
    n = len(x)
    bins = max(1, max_points // 2)
    per = int(math.ceil(n / bins))
    m = (n // per) * per
    if m < 2 * per:
        return x, y
    idx = _bin_extremes(y[:m], per)
    if m < n:
        idx = np.concatenate([idx, np.arange(m, n)])
    return x[idx], y[idx]


class Trace(QGraphicsPathItem):
    """A line through (x, y) in a plot's data coordinates, drawn by Qt alone.

    NaN breaks the line. `max_points`: longer data are drawn min/max-decimated to about
    that many points (getData still returns all of it). Add it with plot.addItem(trace).
    WideTrace: the same without antialiasing, for pens wider than 1 px.
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


class GrowingSeries:
    """Min/max decimation of an append-only series (a training history), kept up to date
    from the new rows alone: a frame costs what the new steps cost, not the whole run
    (decimating 100,000 steps of three curves afresh took 7 ms a frame, 1,000,000 took 63).

    `feed(x, y)` takes the whole series so far; rows it has seen are not read again (a
    shorter series, or one with another first x, starts over: a new run). `transform`
    maps new y values (log10 for a log axis). `points()`: (x, y) decimated to about
    `max_points`, each bin of `per` rows giving its min and max in their order (peaks
    survive, as pyqtgraph's "peak" mode), the rows after the last whole bin as they are;
    `per` doubles as the series grows (so each row is binned O(log n) times in all).
    `bounds()`: (lo, hi) of the finite transformed y, or None. `x`, `y`: all of it.
    """

    def __init__(self, max_points, transform=None):
        self.max_points = max(4, int(max_points))
        self.transform = transform
        self.reset()

    def reset(self):
        self._x, self._y = GrowableArray(), GrowableArray()
        self._idx = GrowableArray(np.intp)     # rows kept by the whole bins, in order
        self.per = 1                       # rows per bin
        self._binned = 0                   # rows in whole bins
        self._lo, self._hi = math.inf, -math.inf

    @property
    def x(self):
        return self._x.a

    @property
    def y(self):
        return self._y.a

    def feed(self, x, y):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, seen = len(y), self._y.n
        if n < seen or (seen and n and x[0] != self._x.a[0]):
            self.reset()
            seen = 0
        if n > seen:
            new = y[seen:]
            if self.transform is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    new = self.transform(new)
            self._x.extend(x[seen:n])
            self._y.extend(new)
            fin = new[np.isfinite(new)]
            if fin.size:
                self._lo = min(self._lo, float(fin.min()))
                self._hi = max(self._hi, float(fin.max()))
            self._bin()

    def _bin(self):
        n, bins = self._y.n, max(2, self.max_points // 2)
        if n // self.per > bins:                        # too many bins: coarser, from scratch
            while n // self.per > bins:
                self.per *= 2
            self._idx, self._binned = GrowableArray(np.intp), 0
        whole = (n // self.per) * self.per
        if whole > self._binned:
            self._idx.extend(_bin_extremes(self._y.a[self._binned:whole], self.per) + self._binned)
            self._binned = whole

    def points(self):
        if self.per == 1:
            return self.x, self.y
        idx = self._idx.a
        tail = slice(self._binned, self._y.n)
        return (np.concatenate([self.x[idx], self.x[tail]]),
                np.concatenate([self.y[idx], self.y[tail]]))

    def bounds(self):
        return (self._lo, self._hi) if self._lo <= self._hi else None


def _bin_extremes(y, per):
    """Row indices of each `per`-row bin's min and max of y, in their order (2 a bin)."""
    yb = y.reshape(-1, per)
    with np.errstate(invalid="ignore"):
        lo = np.argmin(np.where(np.isnan(yb), np.inf, yb), axis=1)
        hi = np.argmax(np.where(np.isnan(yb), -np.inf, yb), axis=1)
    base = np.arange(len(yb)) * per
    idx = np.empty(2 * len(yb), dtype=np.intp)
    idx[0::2] = base + np.minimum(lo, hi)
    idx[1::2] = base + np.maximum(lo, hi)
    return idx


class SeriesTrace(Trace):
    """A Trace of an append-only series (GrowingSeries): `set_series(x, y)` with the whole
    series each frame reads only its new rows. getData() gives all of it, transformed."""

    def __init__(self, pen=None, max_points=4000, transform=None, z=None):
        super().__init__(pen, z=z)
        self.series = GrowingSeries(max_points, transform)

    def set_transform(self, transform):
        """A new transform (say log10 on or off): the next set_series starts over."""
        self.series = GrowingSeries(self.series.max_points, transform)

    def set_series(self, x, y):
        self.series.feed(x, y)
        self._x, self._y = self.series.x, self.series.y
        self.setPath(self._path(*self.series.points()))     # already decimated

    def setData(self, x=None, y=None):
        """Not an append: the series starts over with these values (as Trace.setData)."""
        if y is None:
            x, y = None, ([] if x is None else x)
        y = np.asarray(y, dtype=np.float64).ravel()
        self.series.reset()
        self.set_series(np.arange(len(y), dtype=np.float64) if x is None else x, y)


class WideTrace(Trace):
    """A Trace drawn without antialiasing: Qt strokes antialiased lines wider than 1 px
    about 20x slower (measured 23 ms against 1.1 ms for 50 points)."""

    def paint(self, painter, option, widget=None):
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        super().paint(painter, option, widget)


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


def set_text(widget, text):
    """widget.setText(text) only when the text changes (labels, pyqtgraph LabelItems)."""
    if getattr(widget, "_rnnviewer_text", None) != text:
        widget._rnnviewer_text = text
        widget.setText(text)


class TextLine(QWidget):
    """One line of plain text for values that change every frame (steps, losses): setText
    only repaints this widget, never the geometry (too long: elided with "…") and never
    what lies behind it (it fills its own background, so Qt does not repaint the dock,
    the panel and the main window under it). `sample`: a text as wide as the widest
    value; the widget then keeps that width (status bars)."""

    def __init__(self, text="", tooltip="", align=Qt.AlignmentFlag.AlignLeft, parent=None,
                 sample=None):
        super().__init__(parent)
        self._text = str(text)
        self._align = align | Qt.AlignmentFlag.AlignVCenter
        if tooltip:
            self.setToolTip(tooltip)
        self.setAutoFillBackground(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        if sample is not None:
            self.setFixedWidth(self.fontMetrics().horizontalAdvance(sample) + 10)

    def text(self):
        return self._text

    def setText(self, text):
        text = str(text)
        if text != self._text:
            self._text = text
            self.update()

    def sizeHint(self):
        fm = self.fontMetrics()
        return QSize(max(120, fm.horizontalAdvance(self._text) + 8), fm.height() + 4)

    def minimumSizeHint(self):
        return QSize(20, self.fontMetrics().height() + 4)

    def paintEvent(self, event):
        p = QPainter(self)
        p.setPen(self.palette().windowText().color())
        r = self.rect().adjusted(2, 0, -2, 0)
        p.drawText(r, int(self._align),
                   self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight,
                                                 r.width()))
        p.end()


class FastImageItem(pg.ImageItem):
    """pg.ImageItem with a cheap render() for the common case: a 2-D float image with
    explicit levels and a colour map (a uint8 lookup table). Anything else (NaN, RGB,
    auto-downsampling, column-major, no levels) takes pyqtgraph's own path."""

    _lut_key = None
    _lut32 = None

    def render(self):
        img, lut, levels = self.image, self.lut, self.levels
        if (img is None or img.ndim != 2 or img.size == 0 or img.dtype.kind != "f"
                or not isinstance(lut, np.ndarray) or lut.ndim != 2
                or lut.shape[1] not in (3, 4) or lut.dtype != np.uint8
                or levels is None or np.ndim(levels) != 1 or self.autoDownsample
                or self.axisOrder != "row-major"):
            return super().render()
        key = (id(lut), lut.shape)
        if key != self._lut_key:
            a = lut.astype(np.uint32)
            alpha = a[:, 3] if lut.shape[1] == 4 else np.uint32(255)
            self._lut32 = (alpha << 24) | (a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2]
            self._lut_key = key
        lo, hi = float(levels[0]), float(levels[1])
        n = len(self._lut32)
        scale = n / (hi - lo) if hi != lo else 0.0
        x = (img - np.float32(lo)) * np.float32(scale)
        bad = ~np.isfinite(x)
        if bad.any():                       # NaN: transparent, as pyqtgraph draws them
            x[bad] = 0
        idx = np.clip(x, 0, n - 1).astype(np.intp)
        argb = self._lut32[idx]
        if bad.any():
            argb[bad] = 0
        argb = np.ascontiguousarray(argb)
        self._argb = argb                   # the QImage uses this memory
        h, w = argb.shape
        self.qimage = pg.functions.ndarray_to_qimage(argb.view(np.uint8).reshape(h, w, 4),
                                                     QImage.Format.Format_ARGB32)
        self._renderRequired = False
        self._unrenderable = False


class LevelGate:
    """The (lo, hi) levels to show for smoothly moving target levels: a change that
    widens them, or moves an end by more than `tol` of the span, goes through at once;
    smaller ones wait. Colour bars (whose axes regenerate on every change) then redraw
    now and then instead of every frame."""

    def __init__(self, tol=0.03):
        self.tol = tol
        self.shown = None

    def reset(self):
        self.shown = None

    def update(self, lo, hi):
        if self.shown is None:
            self.shown = (lo, hi)
            return self.shown
        slo, shi = self.shown
        tol = self.tol * max(shi - slo, 1e-12)
        if lo < slo or hi > shi or abs(lo - slo) > tol or abs(hi - shi) > tol:
            self.shown = (lo, hi)
        return self.shown


def set_title(plot, text, **style):
    """plot.setTitle(text, ...) only when it changes (a new title re-lays out the plot)."""
    key = (text, tuple(sorted(style.items())))
    if getattr(plot, "_rnnviewer_title", None) != key:
        plot._rnnviewer_title = key
        plot.setTitle(text, **style)


class Marker(QGraphicsPathItem):
    """One marker of `size` pixels ("o" ring or "s" square outline) at a data point, drawn
    by Qt alone; setData([x], [y]) / getData() like a one-point ScatterPlotItem."""

    def __init__(self, symbol="o", size=14, pen=None, z=None):
        super().__init__()
        path = QPainterPath()
        r = size / 2.0
        if symbol == "s":
            path.addRect(-r, -r, size, size)
        else:
            path.addEllipse(-r, -r, size, size)
        self.setPath(path)
        self.setPen(pg.mkPen(pen if pen is not None else "#202020", width=2))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._xy = (np.zeros(0), np.zeros(0))
        self.setVisible(False)
        if z is not None:
            self.setZValue(z)

    def setData(self, x, y):
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        self._xy = (x, y)
        ok = len(x) > 0 and np.isfinite(x[0]) and np.isfinite(y[0])
        if ok:
            self.setPos(float(x[0]), float(y[0]))
        self.setVisible(bool(ok))

    def getData(self):
        return self._xy


def _fragment_array():
    """pyqtgraph's zero-copy array of QPainter.PixmapFragment (what its ScatterPlotItem
    draws with), or None where this pyqtgraph has none (then one drawPixmap per point)."""
    try:
        from pyqtgraph.Qt.internals import PrimitiveArray
        return PrimitiveArray(QPainter.PixmapFragment, 10)
    except Exception:                 # an internal of pyqtgraph: absent or changed
        return None


class TimeDots(pg.GraphicsObject):
    """Dots coloured by their order (time) from colour map `cmap` (in `bands` steps), each
    with a dark rim: what a ScatterPlotItem with one brush per point shows, at a fraction
    of its cost. Each band's dot is drawn once into an atlas pixmap (at the screen's pixel
    ratio) and a frame stamps one piece of it per point in a single call: 100 points cost
    about 0.3 ms a frame, against 2.9 ms for one path item per colour band before. Round at
    any axis scale. On a vector device (SVG export) the dots are drawn as ellipses instead.
    add_to(plot) once; setData(x, y) / getData()."""

    def __init__(self, cmap, size=7, bands=64, rim=(40, 40, 40, 150), z=None):
        super().__init__()
        self.colors = cmap.map((np.arange(bands) + 0.5) / bands, mode="qcolor")
        self.size, self.rim = float(size), QColor(*rim)
        self.side = int(math.ceil(size + 1.5)) + 2          # sprite side, logical pixels
        self._atlas, self._atlas_ratio = None, None
        self._frags = _fragment_array()
        self._x = self._y = np.zeros(0)
        self._xs = self._ys = np.zeros(0)                    # the finite points
        self._band = np.zeros(0, np.intp)                    # their colour bands
        self._bounds = None                                  # (x0, x1, y0, y1)
        self._rect = None                                    # boundingRect, until a change
        if z is not None:
            self.setZValue(z)

    def add_to(self, plot):
        plot.addItem(self)

    def setData(self, x, y):
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        self._x, self._y = x, y
        idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        self._xs, self._ys = x[idx], y[idx]
        k = len(self.colors)                   # point i of n: colour i / (n - 1), as the bar
        self._band = np.minimum(idx * k // max(len(x) - 1, 1), k - 1)
        self.prepareGeometryChange()
        self._rect = None
        self._bounds = ((float(self._xs.min()), float(self._xs.max()), float(self._ys.min()),
                         float(self._ys.max())) if len(idx) else None)
        self.update()

    def getData(self):
        return self._x, self._y

    def bands(self):
        """The colour band of each finite point, in order: point i of n in band
        floor(k i / (n - 1)) of k (the last one in the top band)."""
        return self._band.tolist()

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if self._bounds is None:
            return (None, None)
        return self._bounds[0:2] if ax == 0 else self._bounds[2:4]

    def boundingRect(self):
        if self._bounds is None:
            return QRectF()
        if self._rect is None:                 # Qt asks several times a frame: kept
            x0, x1, y0, y1 = self._bounds
            px, py = self.pixelVectors()
            pad = self.side / 2 + 1
            px = pad * (px.length() if px is not None else 0.0)
            py = pad * (py.length() if py is not None else 0.0)
            self._rect = QRectF(x0 - px, y0 - py, x1 - x0 + 2 * px, y1 - y0 + 2 * py)
        return QRectF(self._rect)

    def viewTransformChanged(self):
        self.prepareGeometryChange()          # the pixel padding changed with the zoom
        self._rect = None

    def _atlas_for(self, ratio):
        """One row of sprites, band b at device pixels [b S, (b + 1) S), S = side * ratio."""
        if self._atlas_ratio != ratio:
            S = max(1, int(math.ceil(self.side * ratio)))
            pm = QPixmap(S * len(self.colors), S)
            pm.fill(Qt.GlobalColor.transparent)
            q = QPainter(pm)
            try:
                q.scale(S / self.side, S / self.side)
                for b, color in enumerate(self.colors):
                    self._draw_dot(q, (b + 0.5) * self.side, 0.5 * self.side, color)
            finally:
                q.end()
            self._atlas, self._atlas_ratio, self._S = pm, ratio, S
        return self._atlas

    def _draw_dot(self, painter, cx, cy, color):
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        d = self.size + 1.5
        painter.setBrush(self.rim)
        painter.drawEllipse(QRectF(cx - d / 2, cy - d / 2, d, d))
        painter.setBrush(color)
        painter.drawEllipse(QRectF(cx - self.size / 2, cy - self.size / 2, self.size, self.size))

    def paint(self, painter, option, widget=None):
        n = len(self._xs)
        if not n:
            return
        tr = painter.transform()                    # item -> device (no rotation here)
        X = tr.m11() * self._xs + tr.m21() * self._ys + tr.dx()
        Y = tr.m12() * self._xs + tr.m22() * self._ys + tr.dy()
        painter.save()
        try:
            painter.resetTransform()
            if painter.paintEngine().type() == QPaintEngine.Type.SVG:
                for x, y, b in zip(X.tolist(), Y.tolist(), self._band.tolist()):
                    self._draw_dot(painter, x, y, self.colors[b])
                return
            device = painter.device()
            ratio = device.devicePixelRatioF() if device is not None else 1.0
            atlas = self._atlas_for(ratio)
            S = self._S
            if self._frags is not None:
                try:
                    self._frags.resize(n)
                    f = self._frags.ndarray()              # (n, 10): one fragment a point
                    f[:, 0], f[:, 1] = X, Y                # centre of the target
                    f[:, 2] = self._band * S               # source rect in the atlas
                    f[:, 3], f[:, 4], f[:, 5] = 0.0, S, S
                    f[:, 6:10] = [1.0 / ratio, 1.0 / ratio, 0.0, 1.0]   # scale, rotation, opacity
                    painter.drawPixmapFragments(*self._frags.drawargs(), atlas)
                    return
                except Exception:
                    self._frags = None             # this pyqtgraph differs: one call a point
            h = self.side / 2
            for x, y, b in zip(X.tolist(), Y.tolist(), self._band.tolist()):
                painter.drawPixmap(QRectF(x - h, y - h, self.side, self.side), atlas,
                                   QRectF(b * S, 0, S, S))
        finally:
            painter.restore()


class Rule(QGraphicsPathItem):
    """A horizontal (angle 0) or vertical (angle 90) line at `pos` across the whole view,
    drawn by Qt alone (pg.InfiniteLine recomputes its extent and paints in Python: about
    1.5 ms per frame under a live trace). For plots with a fixed or steady range: it
    reports no data bounds, so autoRange ignores it."""

    SPAN = 1e7

    def __init__(self, pos=0.0, angle=0, pen=None, z=None):
        super().__init__()
        self.angle = angle
        self.setPen(pg.mkPen(pen if pen is not None else "#a0a0a0"))
        if z is not None:
            self.setZValue(z)
        self.setValue(pos)

    def setValue(self, pos):
        self.value = float(pos)
        path = QPainterPath()
        if self.angle == 0:
            path.moveTo(-self.SPAN, self.value)
            path.lineTo(self.SPAN, self.value)
        else:
            path.moveTo(self.value, -self.SPAN)
            path.lineTo(self.value, self.SPAN)
        self.setPath(path)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        return (None, None)
