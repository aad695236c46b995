"""Histograms of weights and gradients per matrix (and per gate block) over training:
TensorBoard's histogram view, live, drawn as a heat strip (training step x value) with
the newest histogram beside it.

Each snapshot's values are binned once into FINE uniform bins over that step's own range
and kept in a ring buffer; the picture re-bins them exactly (from the cumulative counts)
onto display bins over a symmetric range [-R, R] that changes only in 1-2-5 steps, so bin
edges stay put while the distribution moves, and old steps remain exact.
"""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QComboBox, QGraphicsPathItem, QHBoxLayout, QLabel

from rnnviewer.engine.analysis import nice_limit
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import Rule, TextLine, Trace, ViewRange, cache_axes
from rnnviewer.ui.panels._wg_common import (SEQUENTIAL, ReportingImage, RunRecord, Throttle,
                                            color_bar, colormap, fmt, off_screen_throttle,
                                            column_steps, nearest_record, step_grid)
from rnnviewer.ui.style import COLORS, LABEL_STYLE, style_plot

FINE = 128                 # bins per stored histogram
BINS = 81                  # display bins over [-R, R] (odd: one bin centred on zero)
QUANTITIES = (("params", "weights"), ("grads", "gradients"))
MATRIX_ORDER = ("W_xh", "W_hh", "W_hy", "b_xh", "b_hh", "b_y")
OFF_SCREEN_EVERY = 1.0     # seconds between records while the panel is off screen
OFF_SCREEN_RAMP = (0.25, 100.0)  # ... from 0.25 s, + 1 s per 100 s of the run (Throttle)
TAIL = 0.002               # the display range leaves out at most 2 x this share


def fine_histograms(a, n_blocks=1, fine=FINE):
    """Rows [lo, hi, tail_lo, tail_hi, counts (fine,)] for the whole array and, if
    n_blocks > 1, each of its n_blocks equal row blocks (gate blocks): (1 + n, 4 + fine).

    lo/hi: the array's min and max (the shared range of the fine bins); tail_lo/tail_hi:
    the TAIL and 1-TAIL quantiles of each histogram, read off its cumulative counts.
    Non-finite entries are left out.
    """
    a = np.asarray(a)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    flat = a.reshape(n_blocks, -1)                                   # (n, m)
    lo, hi = float(flat.min()), float(flat.max())
    bad = None
    if not (np.isfinite(lo) and np.isfinite(hi)):                   # slow path: NaN / inf
        ok = np.isfinite(flat)
        bad = ~ok
        if ok.any():
            lo, hi = float(flat[ok].min()), float(flat[ok].max())
        else:
            lo, hi = 0.0, 1.0
        flat = np.where(ok, flat, lo)
    if not hi > lo:
        pad = max(1e-12, 1e-7 * abs(lo))
        lo, hi = lo - pad, hi + pad
    pos = flat - flat.dtype.type(lo)
    pos *= flat.dtype.type(fine / (hi - lo))
    idx = pos.astype(np.intp)
    np.minimum(idx, fine - 1, out=idx)
    np.maximum(idx, 0, out=idx)
    if n_blocks > 1:
        idx += (np.arange(n_blocks) * fine)[:, None]
    if bad is not None:
        idx[bad] = n_blocks * fine                                   # an overflow bin
    counts = np.bincount(idx.ravel(), minlength=n_blocks * fine + 1)[:n_blocks * fine]
    counts = counts.reshape(n_blocks, fine).astype(np.float64)
    if n_blocks > 1:
        counts = np.vstack([counts.sum(0, keepdims=True), counts])
    rows = np.empty((len(counts), 4 + fine))
    rows[:, 0], rows[:, 1] = lo, hi
    rows[:, 4:] = counts
    edges = np.linspace(lo, hi, fine + 1)
    for r, c in zip(rows, counts):
        cum = np.concatenate([[0.0], np.cumsum(c)])
        tot = max(cum[-1], 1.0)
        r[2] = np.interp(TAIL * tot, cum, edges)
        r[3] = np.interp((1 - TAIL) * tot, cum, edges)
    return rows


def fine_log_histograms(a, n_blocks=1, fine=FINE):
    """fine_histograms of log10|a| over the non-zero finite entries (same row layout)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        la = np.log10(np.abs(a))                                     # 0 -> -inf: left out
    return fine_histograms(la, n_blocks, fine)


def rebin(rows, edges):
    """Counts of the stored fine histograms `rows` (n, 4 + FINE) on the display `edges`
    (E + 1,): (n, E). Exact up to linear interpolation inside one fine bin; mass outside
    the edges is added to the first and last display bin."""
    rows = np.asarray(rows, dtype=np.float64)
    n = len(rows)
    lo, hi, counts = rows[:, :1], rows[:, 1:2], rows[:, 4:]
    fine = counts.shape[1]
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(counts, axis=1)], axis=1)  # (n, F+1)
    u = np.clip((edges[None, :] - lo) / (hi - lo) * fine, 0.0, fine)             # (n, E+1)
    i = np.minimum(np.floor(u).astype(np.int64), fine - 1)
    frac = u - i
    at = np.take_along_axis(cum, i, 1) + frac * np.take_along_axis(counts, i, 1)  # CDF
    out = np.diff(at, axis=1)
    out[:, 0] += at[:, 0]
    out[:, -1] += cum[:, -1] - at[:, -1]
    return out


class HistoryStore:
    """Per (entry, quantity, scale): a RunRecord of fine histograms over the whole run,
    entry = matrix or gate block."""

    def __init__(self, capacity=400):
        self.capacity = capacity
        self.rings = {}

    def clear(self):
        self.rings.clear()

    def entries(self):
        return list(dict.fromkeys(k[0] for k in self.rings))

    def add(self, snap):
        gates = snap.gate_names
        for which, _ in QUANTITIES:
            arrays = getattr(snap, which)
            for m in MATRIX_ORDER:
                a = arrays.get(m)
                if a is None:
                    continue
                split = len(gates) if len(gates) > 1 and m in ("W_xh", "W_hh") else 1
                names = [m] + ([f"{m}[{g}]" for g in gates] if split > 1 else [])
                for scale, fn in (("linear", fine_histograms), ("log", fine_log_histograms)):
                    for name, row in zip(names, fn(a, split)):
                        ring = self.rings.get((name, which, scale))
                        if ring is None:
                            ring = self.rings[(name, which, scale)] = RunRecord(self.capacity)
                        ring.append(snap.step, row)

    def get(self, name, which, scale="linear"):
        """(steps (n,), rows (n, 4 + FINE)) oldest first, or (None, None)."""
        ring = self.rings.get((name, which, scale))
        return ring.ordered() if ring is not None and ring.n else (None, None)


class StripView:
    """One heat strip (step x value) with its colour bar and the newest histogram beside."""

    def __init__(self, view, row, title, cmap, link=None):
        self.plot = view.addPlot(row=row, col=0)
        style_plot(self.plot, left=title, bottom="step" if row else None)
        self.plot.showGrid(x=False, y=False)
        self.title = title
        self.image = ReportingImage(on_hover=self._hover)
        self.image.setColorMap(cmap)
        self.plot.addItem(self.image)
        self.zero = Rule(0.0, angle=0, pen=pg.mkPen("#ffffff", width=1,
                                                    style=Qt.PenStyle.DotLine))
        self.plot.addItem(self.zero)
        self.side = view.addPlot(row=row, col=2)
        style_plot(self.side, bottom="share (%)" if row else None)
        self.side.getAxis("left").setStyle(showValues=False)
        self.side.getAxis("left").setWidth(6)
        self.side.setYLink(self.plot)
        self.bars = HBars(COLORS["train"])
        self.first = Trace(pg.mkPen("#909090", width=1))
        self.side.addItem(self.bars)
        self.side.addItem(self.first)
        if link is not None:
            self.plot.setXLink(link.plot)
            self.plot.getViewBox().enableAutoRange(axis="x", enable=False)
        self.scale = "linear"
        self.panel = None
        self.yrange = None     # (lo, hi) of the y range set
        self.label = None      # the left axis label set
        self.edges = None
        self.steps = None
        self.shown = None      # (BINS, C) share of the column peak
        self.columns = None    # (C,) step at each column's centre
        self.counts = None     # (n, BINS) re-binned counts of the stored steps

    def _hover(self, row, col):
        if self.panel is not None:
            self.panel._on_strip_hover(self, row, col)


class HBars(QGraphicsPathItem):
    """Horizontal bars from x = 0 to `widths` between consecutive `edges` on y, as one
    filled outline drawn by Qt alone (a BarGraphItem redraws a QPicture of one rect per
    bar in Python after every change)."""

    def __init__(self, color):
        super().__init__()
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(pg.mkBrush(color))
        self.edges = self.widths = None

    def setData(self, edges, widths):
        e = np.asarray(edges, dtype=np.float64)                 # (n + 1,)
        w = np.asarray(widths, dtype=np.float64)                # (n,)
        self.edges, self.widths = e, w
        w = np.where(np.isfinite(w), w, 0.0)
        xs = np.concatenate([[0.0], np.repeat(w, 2), [0.0]])
        ys = np.repeat(e, 2)
        path = pg.arrayToQPath(xs, ys, connect="all", finiteCheck=False)
        path.closeSubpath()
        self.setPath(path)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        d = self.widths if ax == 0 else self.edges
        if d is None or not len(d):
            return (None, None)
        return (float(min(0.0, d.min())), float(d.max()))


@register_panel
class HistogramsPanel(Panel):
    title = "Weight histograms"
    object_name = "histograms"
    tooltip = ("Histograms of the weights and gradients of one matrix over training "
               "(step x value; colour: share of that step's fullest bin), and the newest "
               "histogram on the right (grey: the first one of the run). The strips cover the "
               "whole run, thinned evenly as it grows.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    tab_with = "weights"

    def __init__(self, *args, **kwargs):
        # Recorded off screen too (a tab behind another, not built yet), at most 1/100 of
        # the GUI thread: every 0.25 s at first, then less often as the run ages, up to
        # OFF_SCREEN_EVERY s (OFF_SCREEN_RAMP), so that the strips show the whole run when
        # the panel comes to the front. Set first: an eager panel builds inside
        # Panel.__init__.
        self.store = HistoryStore()
        self.throttle = Throttle(min_interval=0.2, ratio=10.0)
        self.off_screen = off_screen_throttle(OFF_SCREEN_EVERY, OFF_SCREEN_RAMP)
        self._recorded = None
        super().__init__(*args, **kwargs)

    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Matrix"))
        self.matrix_box = QComboBox()
        self.matrix_box.setToolTip("The matrix (or gate block) whose values are binned")
        self.matrix_box.currentIndexChanged.connect(self._on_matrix_box_changed)
        bar.addWidget(self.matrix_box)
        bar.addWidget(QLabel("Scale"))
        self.scale_box = QComboBox()
        self.scale_box.addItem("weights linear, gradients log", "mixed")
        self.scale_box.addItem("linear", "linear")
        self.scale_box.addItem("log10 |value|", "log")
        self.scale_box.setToolTip("Bin the values themselves, or the decimal logarithm of their "
                                  "magnitude (gradients span many orders of magnitude)")
        self.scale_box.currentIndexChanged.connect(self._on_matrix_box_changed)
        bar.addWidget(self.scale_box)
        self.info = TextLine("")
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        cmap = colormap(SEQUENTIAL)
        self.strips = {}
        link = None
        with batched_layout(self.view):              # one layout pass, not one per plot
            for row, (which, title) in enumerate(QUANTITIES):
                sv = StripView(self.view, row, title, cmap, link)
                sv.panel = self
                self.strips[which] = sv
                link = link or sv
            self.bar = color_bar(cmap, label="density (peak 1)", width=10)  # both strips: 0..1
            self.bar.setLevels((0.0, 1.0))
            self.view.addItem(self.bar, row=0, col=1, rowspan=len(QUANTITIES))
            layout = self.view.ci.layout
            layout.setColumnStretchFactor(0, 5)
            layout.setColumnStretchFactor(2, 1)
        cache_axes(self.view)
        # x (shared by both strips) moves in steps with ~10% headroom, not every frame
        self.x_range = ViewRange(self.strips["params"].plot.getViewBox(), "x",
                                 pad=(0.0, 0.1), shrink=0.0)
        self.ranges = {}               # (entry, which, scale) -> (lo, hi)
        self._dirty = False            # a choice changed: draw even without a new record
        self._entries = []
        self.message = pg.TextItem("waiting for the first snapshot\u2026", color="#606060",
                                   anchor=(0.5, 0.5))
        self.strips["params"].plot.addItem(self.message)

    # ------------------------------------------------------------ data
    def entry(self):
        return self.matrix_box.currentData()

    def scale(self, which):
        """"linear" or "log" for quantity `which` ("params" or "grads")."""
        s = self.scale_box.currentData()
        return ("linear" if which == "params" else "log") if s == "mixed" else s

    def _sync_entries(self):
        names = self.store.entries()
        if names == self._entries:
            return
        current = self.entry()
        self._entries = names
        self.matrix_box.blockSignals(True)
        self.matrix_box.clear()
        for n in names:
            self.matrix_box.addItem(n if "[" not in n else f"   {n}", n)
        i = self.matrix_box.findData(current if current in names else "W_hh")
        self.matrix_box.setCurrentIndex(max(i, 0))
        self.matrix_box.blockSignals(False)

    def _range(self, key, tails):
        """Display range (lo, hi) covering the tails of every stored step. Linear: [-R, R]
        in 1-2-5 steps; log: whole decades. Grows at once; shrinks only when the data
        would fill under 40% of it (linear) or leave a whole decade empty (log)."""
        old = self.ranges.get(key)
        if key[2] == "log":
            lo, hi = np.nanmin(tails[:, 0]), np.nanmax(tails[:, 1])
            if not (np.isfinite(lo) and np.isfinite(hi)):
                lo, hi = -1.0, 0.0
            lo, hi = float(np.floor(lo)), float(np.ceil(hi))
            hi = max(hi, lo + 1.0)
            if old is None or lo < old[0] or hi > old[1] or lo >= old[0] + 1 or \
                    hi <= old[1] - 1:
                self.ranges[key] = (lo, hi)
            return self.ranges[key]
        need = float(np.nanmax(np.abs(tails))) if tails.size else 0.0
        need = need if np.isfinite(need) and need > 0 else 1e-12
        if old is None or need > old[1] or need < 0.4 * old[1]:
            R = nice_limit(need)
            self.ranges[key] = (-R, R)
        return self.ranges[key]

    # ------------------------------------------------------------ drawing
    def on_new_run(self):
        self.store.clear()
        self._recorded = None
        self.off_screen.reset()

    def update_snapshot(self, snap):
        super().update_snapshot(snap)
        if not (self.built and self.is_shown()) and self.off_screen.due() and \
                (self._recorded is None or snap.step != self._recorded.step):
            self.off_screen.run(self.store.add, snap)
            self._recorded = snap

    def redraw(self, snap):
        if self._recorded is not snap:
            if self._recorded is not None and not self.throttle.due():
                self.drawn = None          # not yet: retried on a later timer tick
                if not self._dirty:
                    return False           # nothing new to draw
            else:
                self.throttle.run(self.store.add, snap)
                self._recorded = snap
        self._sync_entries()                   # (records made off screen too)
        self._dirty = False
        name = self.entry()
        if name is None:
            return
        if self.message is not None:
            self.strips["params"].plot.removeItem(self.message)
            self.message = None
        parts = [name]
        for which, title in QUANTITIES:
            sv = self.strips[which]
            scale = self.scale(which)
            sv.scale = scale
            steps, rows = self.store.get(name, which, scale)
            if steps is None:
                continue
            lo, hi = self._range((name, which, scale), rows[:, 2:4])
            edges = np.linspace(lo, hi, BINS + 1)
            counts = rebin(rows, edges)                                   # (n, BINS)
            peak = counts.max(axis=1, keepdims=True)
            share = counts / np.where(peak > 0, peak, 1.0)
            img, x0, width = step_grid(steps, share, columns=400)         # (BINS, C)
            sv.image.setImage(img, levels=(0.0, 1.0), autoLevels=False)
            sv.image.setRect(QRectF(x0, lo, width, hi - lo))
            if sv.yrange != (lo, hi):          # new ranges and labels re-lay out: on change
                sv.yrange = (lo, hi)
                sv.plot.setLimits(yMin=lo, yMax=hi)
                sv.plot.setYRange(lo, hi, padding=0)
            self.x_range.fit(x0, x0 + width)
            label = sv.title if scale == "linear" else f"log\u2081\u2080|{sv.title[0]}|"
            if which == "params":              # names the matrix (the tool bar's choice)
                label = f"{name} {label}"      # in the exported picture too
            if sv.label != label:
                sv.label = label
                sv.plot.setLabel("left", label, **LABEL_STYLE)
            sv.zero.setVisible(scale == "linear")
            centres = 0.5 * (edges[1:] + edges[:-1])
            total = max(counts[-1].sum(), 1.0)
            sv.bars.setData(edges, 100.0 * counts[-1] / total)
            sv.first.setData(100.0 * counts[0] / max(counts[0].sum(), 1.0), centres)
            sv.edges, sv.steps, sv.shown, sv.counts = edges, steps, img, counts
            sv.columns = column_steps(x0, width, img.shape[1])
            latest = rows[-1]
            outside = (counts[-1, 0] + counts[-1, -1]) / total
            what = title if scale == "linear" else f"log10|{title}|"
            parts.append(f"{what} in [{fmt(latest[0])}, {fmt(latest[1])}]"
                         + (f", {100 * outside:.1f}% in the edge bins" if outside > 0.01 else ""))
        self.info.setText("   ".join(parts))

    def _on_strip_hover(self, sv, row, col):
        if row is None or sv.shown is None:
            return
        lo, hi = sv.edges[row], sv.edges[row + 1]
        i = int(nearest_record(sv.steps, sv.columns[col]))      # the record column col shows
        c = sv.counts[i]
        share = 100.0 * c[row] / max(c.sum(), 1.0)
        what = sv.title if sv.scale == "linear" else f"log10 |{sv.title}|"
        text = f"step {int(sv.steps[i])}: {share:.2f}% of the {what} in [{fmt(lo)}, {fmt(hi)})"
        self.info.setText(text)

    @Slot(int)
    def _on_matrix_box_changed(self, _):
        self._dirty = True
        self.drawn = None
        self.redraw_now()

    def on_reset(self):
        self.ranges.clear()
        self.x_range.reset()
        self.throttle.reset()

    # ------------------------------------------------------------ export
    def export_item(self):
        return self.view.scene()

    def data_arrays(self):
        out = {}
        for which, title in QUANTITIES:
            sv = self.strips[which]
            if sv.counts is not None:
                out[f"{title}_steps"] = np.asarray(sv.steps)
                out[f"{title}_bin_edges"] = sv.edges
                out[f"{title}_counts"] = sv.counts
        return out
