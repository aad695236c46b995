"""Gradient through time: log10 ||dL/dh_t|| of the probe batch for every timestep t,
as a heatmap over training (x: training step, y: timestep) that scrolls as training runs,
with the newest profile beside it. Vanishing gradients show as a dark band towards t = 0
(the loss sits at the end), exploding ones as a bright band.

The norm is taken over the hidden units and averaged over the probe sequences; the
snapshot carries dL/dh_t already (ProbeTrace.dh), so this panel only does cheap numpy.
"""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSpinBox

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._perf import LevelGate, TextLine, Trace, ViewRange, set_title
from rnnviewer.ui.panels._wg_common import (SEQUENTIAL, ReportingImage, SteadyRange, StepRing,
                                            color_bar, colormap, column_steps, fmt)
from rnnviewer.ui.style import COLORS, PENS, style_plot

FLOOR = -30.0          # log10 of an exactly zero gradient


def log_grad_norms(dh):
    """dh (P, T, H) -> (T,) log10 of the norm over H, averaged over the P sequences."""
    dh = np.asarray(dh, dtype=np.float64)
    norms = np.sqrt((dh * dh).sum(axis=2)).mean(axis=0)               # (T,)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log10(norms), FLOOR)


def log_unit_grads(dh, unit):
    """dh (P, T, H) -> (T,) log10 |dL/dh_t[unit]| averaged over the P sequences."""
    g = np.abs(np.asarray(dh, dtype=np.float64)[:, :, unit]).mean(axis=0)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log10(g), FLOOR)


KEEP_DEFAULT = 500          # snapshots the heatmap keeps (the "keep" box changes it)


@register_panel
class GradThroughTimePanel(Panel):
    title = "Gradient through time"
    object_name = "grad_through_time"
    tooltip = ("log10 of the norm of dL/dh_t (probe batch) for every timestep t over "
               "training: vanishing or exploding gradients through time.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(self, *args, **kwargs):
        # recorded from every new snapshot, on screen or not (a tab behind another, not
        # built yet), so that the heatmap shows the run so far when it comes to the front;
        # set first: an eager panel builds inside Panel.__init__
        self.ring = StepRing(KEEP_DEFAULT)
        self._recorded = None
        super().__init__(*args, **kwargs)

    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Keep"))
        self.keep_box = QSpinBox()
        self.keep_box.setRange(50, 5000)
        self.keep_box.setSingleStep(50)
        self.keep_box.setValue(self.ring.capacity)
        self.keep_box.setSuffix(" snapshots")
        self.keep_box.setToolTip("How many snapshots the heatmap keeps (older ones scroll out)")
        self.keep_box.valueChanged.connect(self._on_keep_box_changed)
        bar.addWidget(self.keep_box)
        self.unit_check = QCheckBox("Selected unit")
        self.unit_check.setToolTip("Also draw |dL/dh_t| of the selected hidden unit in the "
                                   "profile on the right")
        self.unit_check.setChecked(True)
        self.unit_check.toggled.connect(self._on_unit_check_toggled)
        bar.addWidget(self.unit_check)
        self.info = TextLine("")
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        self.plot = self.view.addPlot(row=0, col=0)
        style_plot(self.plot, left="timestep t", bottom="training step",
                   title="log10 \u2016dL/dh_t\u2016 of the probe batch over training")
        self.plot.showGrid(x=False, y=False)
        self.cmap = colormap(SEQUENTIAL)
        self.image = ReportingImage(on_hover=self._on_image_hover)
        self.image.setColorMap(self.cmap)
        self.plot.addItem(self.image)
        self.bar = color_bar(self.cmap, label="log10 \u2016dL/dh_t\u2016", width=10)
        self.view.addItem(self.bar, row=0, col=1)
        self.side = self.view.addPlot(row=0, col=2)
        style_plot(self.side, bottom="log10 \u2016dL/dh_t\u2016")
        self.side.getAxis("left").setStyle(showValues=False)
        self.side.getAxis("left").setWidth(6)
        self.side.setYLink(self.plot)
        self.first_curve = Trace(pg.mkPen("#a0a0a0", width=1.2))
        self.curve = Trace(PENS["train"])
        self.unit_curve = Trace(pg.mkPen(COLORS["accent"], width=1.2,
                                         style=Qt.PenStyle.DashLine))
        for c in (self.first_curve, self.curve, self.unit_curve):
            self.side.addItem(c)
        self.side_range = ViewRange(self.side.getViewBox(), "x", pad=(0.05, 0.05))
        self._side_title(None)
        layout = self.view.ci.layout
        layout.setColumnStretchFactor(0, 4)
        layout.setColumnStretchFactor(2, 1)
        self.message = pg.TextItem("waiting for the first snapshot\u2026", color="#606060",
                                   anchor=(0.5, 0.5))
        self.plot.addItem(self.message)
        self.levels = SteadyRange(decay=0.98)
        self.shown_levels = LevelGate(tol=0.08)   # what image and bar show: in steps
        # x moves in steps (headroom for ~10% more steps), not with every snapshot: the
        # bottom axis then stays cached between steps (_perf.py)
        self.plot_x = ViewRange(self.plot.getViewBox(), "x", pad=(0.0, 0.1), shrink=0.0)
        self.shown = None              # (T, C) image drawn
        self.grid_steps = None         # (C,) step of each column
        self._yspan = None             # T of the y range set

    def on_new_run(self):
        self.ring.clear()
        self._recorded = None

    def update_snapshot(self, snap):
        super().update_snapshot(snap)
        if self._recorded is None or snap.step != self._recorded.step:
            self.ring.append(snap.step, log_grad_norms(snap.probe.dh))
            self._recorded = snap

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        steps, rows = self.ring.ordered()
        if not len(steps):
            return
        if self.message is not None:
            self.plot.removeItem(self.message)
            self.message = None
        img, x0, width = self.ring.grid(columns=500)                     # (T, C)
        T = img.shape[0]
        sample = rows[::max(1, len(rows) // 50)]          # <= ~100 rows: cheap percentiles
        finite = sample[sample > FLOOR]
        if finite.size:
            lo, hi = np.percentile(finite, (1.0, 99.5))
            lo, hi = self.levels.update(float(lo), float(hi))
        else:
            lo, hi = self.levels.value or (FLOOR, FLOOR + 1)
        lo, hi = self.shown_levels.update(lo, hi)
        self.image.setImage(img, levels=(lo, hi), autoLevels=False)
        self.image.setRect(QRectF(x0, 0.0, width, T))
        if tuple(self.bar.levels()) != (lo, hi):
            self.bar.setLevels((lo, hi))
        if self._yspan != T:
            self._yspan = T
            self.plot.setLimits(yMin=0, yMax=T)
            self.plot.setYRange(0, T, padding=0)
        self.plot_x.fit(x0, x0 + width)
        self.grid_steps = column_steps(x0, width, img.shape[1])
        self.shown = img
        t = np.arange(T) + 0.5
        last = rows[-1]
        self.curve.setData(_nan_floor(last), t)
        self.first_curve.setData(_nan_floor(rows[0]), t)
        self._draw_unit(snap, t)
        parts = [_nan_floor(last), _nan_floor(rows[0])]
        if self.unit_curve.isVisible():
            parts.append(self.unit_curve.getData()[0])
        self.side_range.fit_data(*parts)
        ok = last > FLOOR
        text = f"step {int(steps[-1])}"
        if ok[0] and ok[-1]:
            text += (f"   \u2016dL/dh_0\u2016 / \u2016dL/dh_{T - 1}\u2016 = "
                     f"10^{last[0] - last[-1]:.1f}")
        if ok.any():
            text += f"   range 10^{last[ok].min():.1f} \u2026 10^{last[ok].max():.1f}"
        self.info.setText(text)

    def _draw_unit(self, snap, t):
        u = self.selection.unit
        show = self.unit_check.isChecked() and 0 <= u < snap.n_hidden
        self.unit_curve.setVisible(show)
        if show:
            self.unit_curve.setData(_nan_floor(log_unit_grads(snap.probe.dh, u)), t)
        self._side_title(u if show else None)

    def _side_title(self, unit):
        parts = [f"<span style='color:{COLORS['train']}'>now</span>",
                 "<span style='color:#909090'>first</span>"]
        if unit is not None:
            parts.append(f"<span style='color:{COLORS['accent']}'>unit {unit}</span>")
        set_title(self.side, " \u00b7 ".join(parts), size="8pt")

    def _on_image_hover(self, row, col):
        if row is None or self.shown is None:
            return
        self.info.setText(f"step \u2248 {self.grid_steps[col]:.0f}, t = {row}: "
                          f"log10 \u2016dL/dh_t\u2016 = {fmt(self.shown[row, col])}")

    def on_unit_selected(self, unit):
        snap = self.drawn
        if snap is not None:
            self._draw_unit(snap, np.arange(snap.probe.dh.shape[1]) + 0.5)

    @Slot(bool)
    def _on_unit_check_toggled(self, _):
        self.on_unit_selected(self.selection.unit)

    @Slot(int)
    def _on_keep_box_changed(self, n):
        steps, rows = self.ring.ordered()
        self.ring = StepRing(n)
        for s, r in zip(steps[-n:], rows[-n:]):
            self.ring.append(int(s), r)
        self.drawn = None
        self.redraw_now()

    def on_reset(self):
        self.levels.reset()
        self.shown = None
        self.shown_levels.reset()
        self.side_range.reset()
        self.plot_x.reset()
        self._yspan = None

    # ------------------------------------------------------------ export
    def export_item(self):
        return self.view.scene()

    def data_arrays(self):
        steps, rows = self.ring.ordered()
        if not len(steps):
            return {}
        return {"step": steps, "log10_grad_norm": rows}


def _nan_floor(a):
    """Zero gradients (FLOOR) as gaps in a curve."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(a > FLOOR, a, np.nan)
