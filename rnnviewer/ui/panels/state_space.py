"""State space: the probe trajectory on the top principal components of recent states.

The PCA basis is refitted (at most every REFIT_S seconds) on a pool of states from recent
snapshots and keeps its signs from fit to fit (engine.analysis.PCAProjector), so the
picture drifts with training instead of flipping. Two components against each other, or
the top three in 3-D: an orthographic view of PC1-PC3 turned by an azimuth and an
elevation (drag on the plot, or the two spin boxes).

Overlay hook (fixed points, unstable directions, anything in state space):

    panel.set_overlay_points(points, name="fixed points", segments=None, symbol="x")
        points (N, S), segments (M, 2, S): full states, re-projected whenever the basis
        moves; S = H, or 2H = [h, c] for an LSTM (the c half is ignored in the h space).
    panel.clear_overlay(name)          # or clear_overlay() for all
    panel.project(states) -> (N, 2)    # full states -> current view coordinates, or None
                                       # before the first fit
    panel.projection_changed           # Signal() after every refit or change of components
"""

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSignalBlocker, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QPushButton, QSpinBox

from rnnviewer.engine.analysis import PCAProjector
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import Dots, Marker, TimeDots, Trace, WideTrace
from rnnviewer.ui.panels._hidden import (VIRIDIS, info_label, probe_labels, refresh, sequence_spin,
                                         set_spin_max)
from rnnviewer.ui.style import COLORS, style_plot

COMPONENTS = ((0, 1), (1, 2), (0, 2))
VIEW_3D = "3d"          # the component choice of the 3-D view
TURN_DEG_PER_PX = 0.5   # dragging the 3-D view turns it this much per pixel
POOL = 1536            # states kept for the PCA fit
PER_FRAME = 256        # states added to the pool per drawn snapshot
REFIT_S = 0.25         # refit the basis at most this often (seconds)
LABEL_EVERY_S = 2.0    # the axes' share of the variance is updated at most this often
HOVER_PX = 8           # the mouse this close (pixels) to a point shows its time step


class GramPCA(PCAProjector):
    """PCAProjector fitted through the eigenvectors of the (S, S) covariance instead of
    an SVD of the (pool, S) data: the same components (up to rounding) and sign rules,
    about 10x faster at pool 1536, H 64 (2 ms against 20 ms), so it can run in the GUI
    thread. Checked against PCAProjector.fit in tests/test_ui_hidden_panels.py."""

    def fit(self):
        if self._n < 2:
            return super().fit()
        X = self._pool[:self._n]                              # (n, S)
        mean = X.mean(0)
        Xc = X - mean
        var, vecs = np.linalg.eigh(Xc.T @ Xc / (self._n - 1))  # ascending
        var = np.clip(var[::-1], 0.0, None)
        k = min(self.n_components, len(var))
        comps = vecs[:, ::-1][:, :k].T.copy()                 # (k, S)
        if self.components is not None and self.components.shape == comps.shape:
            signs = np.sign(np.sum(comps * self.components, axis=1))
        else:
            signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        comps *= np.where(signs == 0, 1.0, signs)[:, None]
        self.mean, self.components = mean, comps
        self.explained_variance = var[:k]
        total = var.sum()
        self.explained_variance_ratio = var[:k] / total if total > 0 else np.zeros(k)
        return self


def view_matrix(components, k, azimuth=0.0, elevation=0.0):
    """(2, k) matrix from PCA coordinates (N, k) to the view's (x, y): the components
    (a, b) on the axes, or for VIEW_3D the top three turned by `azimuth` about the
    vertical and then `elevation` about the horizontal (degrees; 0, 0 shows PC1 / PC2
    with PC3 pointing at the viewer). Components beyond k contribute nothing."""
    M = np.zeros((2, max(k, 3)))
    if components == VIEW_3D:
        p, t = np.radians(azimuth), np.radians(elevation)
        turn = np.array([[np.cos(p), 0.0, np.sin(p)], [0.0, 1.0, 0.0],
                         [-np.sin(p), 0.0, np.cos(p)]])          # about the vertical (PC2)
        tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)],
                         [0.0, np.sin(t), np.cos(t)]])           # about the horizontal
        M[:, :3] = (tilt @ turn)[:2]
    else:
        a, b = components
        M[0, a], M[1, b] = 1.0, 1.0
    return M[:, :k]


def arrow_step(length, reach):
    """The activation change the unit arrow shows: 1, or the largest of 0.5, 0.2, 0.1,
    0.05, ... whose arrow (`length` per unit of activation) is no longer than `reach`, the
    distance of the farthest state drawn. Early in training the states lie close together
    and the +1 arrow would leave the picture."""
    if not (length > 0 and reach > 0) or length <= reach:
        return 1.0
    want = reach / length
    unit = 10.0 ** math.floor(math.log10(want))          # 1 x unit <= want < 10 x unit
    mant = next((m for m in (5.0, 2.0) if m * unit <= want), 1.0)
    return float(f"{mant * unit:.3g}")


@register_panel
class StateSpacePanel(Panel):
    title = "State space (PCA)"
    object_name = "state_space"
    tooltip = ("The probe sequence's hidden-state trajectory projected on the top principal "
               "components of recent states, coloured by time. The arrow shows the direction "
               "in which the selected unit's activation grows, by the amount its label gives "
               "(1, or less when 1 would reach far beyond the states drawn).")
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    projection_changed = Signal()

    def build(self):
        bar = QHBoxLayout()
        self.seq_spin = sequence_spin()
        self.seq_spin.valueChanged.connect(self._on_seq_spin_value_changed)
        self.comp_box = QComboBox()
        for a, b in COMPONENTS:
            self.comp_box.addItem(f"PC{a + 1} / PC{b + 1}", (a, b))
        self.comp_box.addItem("PC1-PC3 (3-D)", VIEW_3D)
        self.comp_box.setToolTip("Which principal components to plot against each other, or "
                                 "the top three in 3-D (drag on the plot to turn it)")
        self.comp_box.currentIndexChanged.connect(self._on_comp_box_current_index_changed)
        self.az_spin = QSpinBox()
        self.az_spin.setRange(-180, 180)
        self.az_spin.setWrapping(True)
        self.az_spin.setSingleStep(15)
        self.az_spin.setValue(30)
        self.az_spin.setSuffix("°")
        self.az_spin.setToolTip("3-D view: turn about the vertical axis (or drag sideways)")
        self.el_spin = QSpinBox()
        self.el_spin.setRange(-90, 90)
        self.el_spin.setSingleStep(15)
        self.el_spin.setValue(20)
        self.el_spin.setSuffix("°")
        self.el_spin.setToolTip("3-D view: tilt about the horizontal axis (or drag up and "
                                "down)")
        for spin in (self.az_spin, self.el_spin):
            spin.setVisible(False)
            spin.valueChanged.connect(self._on_turn_spin_value_changed)
        self._drag_from = None       # (mouse position, azimuth, elevation) a 3-D turn began at
        self.space_box = QComboBox()
        self.space_box.addItem("h", "h")
        self.space_box.setToolTip("The state space: the hidden state h, or for an LSTM the "
                                  "full state [h, c]")
        self.space_box.currentIndexChanged.connect(self._on_space_box_current_index_changed)
        self.all_box = QCheckBox("all sequences")
        self.all_box.setChecked(True)
        self.all_box.setToolTip("Also draw the other probe sequences' trajectories (grey)")
        self.all_box.toggled.connect(self._on_all_box_toggled)
        self.fit_button = QPushButton("Fit view")
        self.fit_button.setToolTip("Fit the view to the trajectories again (and follow them)")
        self.fit_button.clicked.connect(self._on_fit_button_clicked)
        self.info = info_label("The point under the mouse pointer")
        for w in (self.seq_spin, self.comp_box, self.az_spin, self.el_spin, self.space_box,
                  self.all_box, self.fit_button):
            bar.addWidget(w)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)

        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        with batched_layout(self.view):              # one layout pass, not one per plot
            self.plot = self.view.addPlot(row=0, col=0)
            style_plot(self.plot, left="PC2", bottom="PC1")
            self.plot.hideButtons()
            self.plot.getViewBox().disableAutoRange()
            # Plain Qt path items (_perf.py): Qt draws them without calling Python.
            self.others = Trace(pg.mkPen(QColor(150, 150, 150, 70), width=1))
            self.plot.addItem(self.others)
            self.line = Trace(pg.mkPen(QColor(90, 90, 90, 200), width=1))
            self.plot.addItem(self.line)
            self.points = TimeDots(VIRIDIS, size=7)      # coloured by time step
            self.points.add_to(self.plot)
            self.start = Marker("o", 15, z=5)
            self.end = Marker("s", 14, z=5)
            self.start_text = pg.TextItem("start", color="#202020", anchor=(-0.15, 1.1))
            self.end_text = pg.TextItem("end", color="#202020", anchor=(-0.15, 1.1))
            for item in (self.start, self.end, self.start_text, self.end_text):
                item.setZValue(5)
                self.plot.addItem(item)
            accent = QColor(COLORS["accent"])
            self.unit_line = WideTrace(pg.mkPen(accent, width=2.2))
            self.unit_tip = Dots(accent, size=8)
            self.unit_text = pg.TextItem("", color=accent.darker(120), anchor=(0, 1))
            for item in (self.unit_line, self.unit_tip, self.unit_text):
                item.setZValue(6)
                self.plot.addItem(item)
            self.cbar = pg.ColorBarItem(values=(0, 1), colorMap=VIRIDIS, interactive=False,
                                        width=14, label="time step")
            self.view.addItem(self.cbar, row=0, col=1)
        self.pca = GramPCA(n_components=3, pool_size=POOL)
        self._space = None           # "h" or "hc": what the pool holds
        self._pooled = None          # the last snapshot whose states went into the pool
        self._fit_time = -np.inf
        self._T = None
        self._coords = None          # (P, T, 2) projected probe states
        self._labels = []
        self._seq = 0
        self._auto = True            # follow the data with the view range
        self._axis_text = {}         # axis -> (label shown, when it was set)
        self._overlays = {}          # name -> dict(points, segments, scatter, lines)
        self.overlay_legend = None   # pg.LegendItem of the overlays, made with the first label
        self.plot.getViewBox().sigRangeChangedManually.connect(
            self._on_view_range_changed_manually)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self.view.viewport().installEventFilter(self)     # dragging turns the 3-D view

    def export_item(self):
        return self.view.scene()

    # ------------------------------------------------------------ public hook
    def project(self, states):
        """Full states (N, S) or (S,) -> (N, 2) coordinates in the current view, or None
        before the first fit. S is H, or 2H for an LSTM ([h, c]; c is dropped in the h
        space). ValueError for any other size."""
        if self.pca.components is None:
            return None
        s = np.asarray(states, dtype=np.float64)
        s = s.reshape(-1, s.shape[-1])
        dim = self.pca.components.shape[1]
        if s.shape[1] == 2 * dim and self._space == "h":
            s = s[:, :dim]
        if s.shape[1] != dim:
            raise ValueError(f"states have {s.shape[1]} values; this view needs {dim} "
                             f"(or {2 * dim} for an LSTM's [h, c])" if self._space == "h"
                             else f"states have {s.shape[1]} values; this view needs {dim}")
        z = self.pca.project(s)                               # (N, k)
        return z @ self.view_matrix().T                       # (N, 2)

    def components(self):
        """The (a, b) component indices on the x and y axes (0-based), or VIEW_3D."""
        return self.comp_box.currentData() or (0, 1)

    def view_matrix(self):
        """(2, k): PCA coordinates -> view coordinates (see view_matrix())."""
        k = self.pca.components.shape[0]
        return view_matrix(self.components(), k, self.az_spin.value(), self.el_spin.value())

    def set_overlay_points(self, points, name="overlay", segments=None, symbol="x", size=13,
                           color="#d62728", tooltip="", label=None):
        """Draw full states `points` (N, S) and line `segments` (M, 2, S) on the view as
        overlay `name` (replacing an overlay of that name); kept in sync with the basis.
        `label`: its entry in the plot's legend (none without)."""
        self.clear_overlay(name)
        col = pg.mkColor(color)
        # filled circles get a dark rim: they must not pass for the time-coloured dots
        rim = pg.mkPen("#101010", width=1.5) if symbol == "o" else pg.mkPen(col, width=2)
        scatter = pg.ScatterPlotItem(symbol=symbol, size=size, pen=rim, brush=pg.mkBrush(col))
        lines = pg.PlotCurveItem(pen=pg.mkPen(col, width=2), connect="pairs", antialias=False)
        for item in (lines, scatter):
            item.setZValue(8)
            if tooltip:
                item.setToolTip(tooltip)
            self.plot.addItem(item)
        pts = None if points is None else np.atleast_2d(np.asarray(points, dtype=np.float64))
        seg = None if segments is None else np.asarray(segments, dtype=np.float64)
        if seg is not None and (seg.ndim != 3 or seg.shape[1] != 2):
            raise ValueError(f"segments must have shape (M, 2, S), got {seg.shape}")
        self._overlays[name] = {"points": pts, "segments": seg, "scatter": scatter,
                                "lines": lines}
        if label:
            self._overlay_legend().addItem(scatter, label)
        self._draw_overlays()
        self._fit_view()                     # points off the trajectories come into view

    def _overlay_legend(self):
        if self.overlay_legend is None:
            self.overlay_legend = pg.LegendItem(
                offset=(8, 8), brush=pg.mkBrush(255, 255, 255, 215), pen=pg.mkPen("#a0a0a0"),
                labelTextColor="#202020")
            self.overlay_legend.setParentItem(self.plot.getViewBox())
            self.overlay_legend.setZValue(20)
        return self.overlay_legend

    def clear_overlay(self, name=None):
        """Remove overlay `name` (every overlay when None)."""
        for key in [name] if name is not None else list(self._overlays):
            ov = self._overlays.pop(key, None)
            if ov is not None:
                if self.overlay_legend is not None:
                    self.overlay_legend.removeItem(ov["scatter"])
                self.plot.removeItem(ov["scatter"])
                self.plot.removeItem(ov["lines"])

    def _project_or_none(self, states):
        """project(states), or None when they belong to another model's state size
        (an overlay computed before a reset arrives after it): nothing is drawn then."""
        try:
            return self.project(states)
        except ValueError:
            return None

    def _draw_overlays(self):
        for ov in self._overlays.values():
            pts = None if ov["points"] is None else self._project_or_none(ov["points"])
            if pts is None:
                ov["scatter"].setData([], [])
            else:
                ov["scatter"].setData(pts[:, 0], pts[:, 1])
            seg = ov["segments"]
            xy = None if seg is None else self._project_or_none(seg.reshape(-1, seg.shape[-1]))
            if xy is None:
                ov["lines"].setData([], [])
            else:
                ov["lines"].setData(xy[:, 0], xy[:, 1])

    # ------------------------------------------------------------ controls
    def _refresh(self):
        refresh(self)

    @Slot(int)
    def _on_seq_spin_value_changed(self, _):
        self._refresh()

    @Slot(int)
    def _on_comp_box_current_index_changed(self, _):
        three = self.components() == VIEW_3D
        for spin in (self.az_spin, self.el_spin):
            spin.setVisible(three)
        vb = self.plot.getViewBox()
        vb.setMouseEnabled(not three, not three)      # dragging turns the 3-D view
        vb.setAspectLocked(three)                     # a turn must not stretch it
        self._auto = True
        self._refresh()
        self.projection_changed.emit()

    @Slot(int)
    def _on_turn_spin_value_changed(self, _):
        self._refresh()
        self.projection_changed.emit()

    def eventFilter(self, obj, event):
        """In 3-D, dragging with the left button on the plot turns the view."""
        if self.components() != VIEW_3D:
            return super().eventFilter(obj, event)
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = (event.position(), self.az_spin.value(), self.el_spin.value())
            return True
        if kind == QEvent.Type.MouseMove and self._drag_from is not None:
            start, az, el = self._drag_from
            pos = event.position()
            turn = round((pos.x() - start.x()) * TURN_DEG_PER_PX)   # from where it started:
            tilt = round((pos.y() - start.y()) * TURN_DEG_PER_PX)   # no rounding piles up
            self.turn_by(az + turn - self.az_spin.value(), el + tilt - self.el_spin.value())
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._drag_from is not None:
            self._drag_from = None
            return True
        return super().eventFilter(obj, event)

    def turn_by(self, azimuth, elevation):
        """Turn the 3-D view by these degrees (azimuth wraps, elevation stops at +-90)."""
        az = (self.az_spin.value() + azimuth + 180) % 360 - 180
        el = min(90, max(-90, self.el_spin.value() + elevation))
        with QSignalBlocker(self.az_spin), QSignalBlocker(self.el_spin):
            self.az_spin.setValue(az)
            self.el_spin.setValue(el)
        self._on_turn_spin_value_changed(0)

    @Slot(int)
    def _on_space_box_current_index_changed(self, _):
        self._auto = True
        self._refresh()

    @Slot(bool)
    def _on_all_box_toggled(self, _):
        self._refresh()

    @Slot()
    def _on_fit_button_clicked(self):
        self._auto = True
        self._fit_view(force=True)

    @Slot(object)
    def _on_view_range_changed_manually(self, _):
        self._auto = False

    def on_unit_selected(self, unit):
        self._draw_unit()

    def on_reset(self):
        self.pca.reset()
        self._pooled = None
        self._space = None
        self._fit_time = -np.inf
        self._auto = True

    # ------------------------------------------------------------ drawing
    def _states(self, snap):
        """(P, T, S) states of the chosen space and its key ("h" or "hc")."""
        p = snap.probe
        lstm = p.c is not None
        have = tuple(self.space_box.itemData(i) for i in range(self.space_box.count()))
        want = ("h", "hc") if lstm else ("h",)
        if have != want:
            cur = self.space_box.currentData()
            self.space_box.blockSignals(True)
            self.space_box.clear()
            self.space_box.addItem("h", "h")
            if lstm:
                self.space_box.addItem("[h, c]", "hc")
            self.space_box.setCurrentIndex(want.index(cur) if cur in want else 0)
            self.space_box.blockSignals(False)
        space = self.space_box.currentData() or "h"
        if space == "hc":
            return np.concatenate([p.h, p.c], axis=-1), space
        return p.h, space

    def redraw(self, snap):
        states, space = self._states(snap)                   # (P, T, S)
        P, T, S = states.shape
        if space != self._space or (self.pca.mean is not None and len(self.pca.mean) != S):
            self.pca.reset()
            self._pooled = None
            self._space = space
            self._fit_time = -np.inf
            self._auto = True
        flat = states.reshape(-1, S)
        refit = False
        if self._pooled is not snap:           # redraws for a changed control add nothing
            self._pooled = snap
            stride = max(1, len(flat) // PER_FRAME)
            self.pca.add(flat[::stride])
            refit = time.monotonic() - self._fit_time >= REFIT_S or self.pca.components is None
        if refit and len(self.pca) >= 2:
            self.pca.fit()
            self._fit_time = time.monotonic()
        if self.pca.components is None:
            return
        set_spin_max(self.seq_spin, P)
        seq = self._seq = min(self.seq_spin.value(), P - 1)
        self._coords = self.project(flat).reshape(P, T, 2)
        xy = self._coords[seq]                                # (T, 2)
        if T != self._T:
            self._T = T
            self.cbar.setLevels((0, max(T - 1, 1)))
        if self.all_box.isChecked() and P > 1:
            rest = np.delete(self._coords, seq, axis=0)      # (P-1, T, 2)
            pad = np.full((P - 1, 1, 2), np.nan)
            rest = np.concatenate([rest, pad], axis=1).reshape(-1, 2)
            self.others.setData(rest[:, 0], rest[:, 1])
        else:
            self.others.setData([], [])
        self.line.setData(xy[:, 0], xy[:, 1])
        self._labels = probe_labels(snap, seq)
        self.points.setData(xy[:, 0], xy[:, 1])
        self.start.setData([xy[0, 0]], [xy[0, 1]])
        self.end.setData([xy[-1, 0]], [xy[-1, 1]])
        self.start_text.setPos(xy[0, 0], xy[0, 1])
        self.end_text.setPos(xy[-1, 0], xy[-1, 1])
        now = time.monotonic()
        for axis, text in self._axis_labels():
            # a new label redraws the axis and re-lays out the plot (several ms): a new
            # component or angle shows at once, a new share of the variance every
            # LABEL_EVERY_S at most
            old, since = self._axis_text.get(axis, ("", -np.inf))
            if text != old and (text.split(" (")[0] != old.split(" (")[0] or
                                now - since >= LABEL_EVERY_S):
                self._axis_text[axis] = (text, now)
                self.plot.setLabel(axis, text)
        self._draw_unit()
        self._draw_overlays()
        self._fit_view()
        if refit:
            self.projection_changed.emit()

    def _axis_labels(self):
        """(axis, text) of both axes: each component with its share of the variance, in
        whole percent (the label, and so the plot's layout, changes only now and then)."""
        evr = self.pca.explained_variance_ratio
        share = lambda i: f" ({100 * evr[i]:.0f}% var.)" if i < len(evr) else ""  # noqa: E731
        if self.components() == VIEW_3D:
            total = f"{100 * float(np.sum(evr[:3])):.0f}% var." if len(evr) else ""
            return (("bottom", f"PC1-PC3 turned ({total}; drag to turn)"),
                    ("left", f"az {self.az_spin.value()}°, el {self.el_spin.value()}°"))
        a, b = self.components()
        return (("bottom", f"PC{a + 1}{share(a)}"), ("left", f"PC{b + 1}{share(b)}"))

    def _draw_unit(self):
        """The selected unit's axis: from the pool mean to where that unit is `step`
        higher (arrow_step: 1, or a round fraction of it that stays near the states)."""
        if self.pca.components is None:
            return
        H = self.snapshot.n_hidden if self.snapshot is not None else 0
        u = self.selection.unit
        if not 0 <= u < H:
            for item in (self.unit_line, self.unit_tip):
                item.setData([], [])
            self.unit_text.setText("")
            return
        comps = self.pca.components                           # (k, S)
        if u >= comps.shape[1]:
            return
        dx, dy = self.view_matrix() @ comps[:, u]             # unit u's axis in the view
        step = arrow_step(math.hypot(dx, dy), self._reach())
        dx, dy = step * dx, step * dy
        self.unit_line.setData([0.0, dx], [0.0, dy])
        self.unit_tip.setData([dx], [dy])
        text = f"unit {u} +{step:g}"
        if self.unit_text.toPlainText() != text:
            self.unit_text.setText(text)
        self.unit_text.setPos(dx, dy)

    def _drawn_coords(self):
        """(P or 1, T, 2) view coordinates of the trajectories drawn (all sequences, or
        the chosen one)."""
        return self._coords if self.all_box.isChecked() else self._coords[self._seq][None]

    def _reach(self):
        """How far the drawn states lie from the pool mean (the origin), at most."""
        if self._coords is None:
            return 0.0
        c = self._drawn_coords()
        r = np.hypot(c[..., 0], c[..., 1])
        r = r[np.isfinite(r)]
        return float(r.max()) if r.size else 0.0

    def _fit_view(self, force=False):
        """Follow the data: grow the range at once, shrink only when data use < 45% of it."""
        if self._coords is None or not (self._auto or force):
            return
        xy = self._drawn_coords().reshape(-1, 2)
        extra = [ov["scatter"].getData() for ov in self._overlays.values()]
        xs = np.concatenate([xy[:, 0]] + [np.asarray(e[0], float) for e in extra])
        ys = np.concatenate([xy[:, 1]] + [np.asarray(e[1], float) for e in extra])
        ok = np.isfinite(xs) & np.isfinite(ys)
        if not ok.any():
            return
        x0, x1, y0, y1 = xs[ok].min(), xs[ok].max(), ys[ok].min(), ys[ok].max()
        w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        (vx0, vx1), (vy0, vy1) = self.plot.getViewBox().viewRange()
        inside = vx0 <= x0 and x1 <= vx1 and vy0 <= y0 and y1 <= vy1
        small_x, small_y = w < 0.45 * (vx1 - vx0), h < 0.45 * (vy1 - vy0)
        # with the aspect locked (3-D) one axis always has room to spare
        small = (small_x and small_y) if self.components() == VIEW_3D else (small_x or small_y)
        if force or not inside or small:
            m = 0.08 if force or small else 0.15     # room to grow before the next jump
            self.plot.setRange(xRange=(x0 - m * w, x1 + m * w),
                               yRange=(y0 - m * h, y1 + m * h), padding=0)

    def point_at(self, scene_pos):
        """The time step of the drawn point within HOVER_PX pixels of `scene_pos`, or None."""
        x, y = self.points.getData()
        vb = self.plot.getViewBox()
        if not len(x) or not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        px, py = vb.viewPixelSize()
        d = np.hypot((x - p.x()) / max(px, 1e-300), (y - p.y()) / max(py, 1e-300))
        t = int(np.nanargmin(d)) if np.isfinite(d).any() else None
        return t if t is not None and d[t] <= HOVER_PX else None

    @Slot(object)
    def _on_scene_mouse_moved(self, pos):
        t = self.point_at(pos)
        if t is None:
            self.info.setText("")
            return
        lab = self._labels[t] if t < len(self._labels) else ""
        self.info.setText(f"seq {self._seq}   t={t} '{lab}'")

    # ------------------------------------------------------------ export
    def data_arrays(self):
        if self._coords is None or self.pca.components is None:
            return {}
        comps = self.components()
        return {"coords": self._coords,                        # (P, T, 2) view coordinates
                "components": np.array([0, 1, 2] if comps == VIEW_3D else comps),
                "view_matrix": self.view_matrix(),             # (2, k): basis coords -> view
                "basis": self.pca.components,                  # (k, S)
                "mean": self.pca.mean,                         # (S,)
                "explained_variance_ratio": self.pca.explained_variance_ratio}
