"""Training curves: train and validation loss, gradient norm and learning rate per step."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._perf import Dots, SeriesTrace, TextLine, ViewRange, set_ticks
from rnnviewer.ui.style import COLORS, PENS, log_ticks, style_plot

PX_PER_TICK = 26           # log axes: at most one tick label per this many pixels
MAX_POINTS = 4000          # longer histories are drawn min/max-decimated (peaks kept)
MAX_DOTS = 300             # validation points get a dot each while there are no more


@register_panel
class CurvesPanel(Panel):
    title = "Training curves"
    object_name = "curves"
    tooltip = "Loss, gradient norm and learning rate against training steps, live."
    default_area = Qt.DockWidgetArea.RightDockWidgetArea
    own_row = True

    def build(self):
        bar = QHBoxLayout()
        self.log_box = QCheckBox("Log scale")
        self.log_box.setChecked(True)
        self.log_box.setToolTip("Show the loss and the gradient norm on a logarithmic axis")
        self.log_box.toggled.connect(self._on_log_box_toggled)
        legend = QLabel(f'<span style="color:{COLORS["train"]}">━━ train loss</span>&nbsp;&nbsp;'
                        f'<span style="color:{COLORS["val"]}">━●━ validation loss</span>')
        legend.setToolTip("Training loss of every step; validation loss on a fixed held-out "
                          "batch every few steps")
        self.info = TextLine("", "Last training loss, validation loss and gradient norm",
                             align=Qt.AlignmentFlag.AlignRight)
        bar.addWidget(self.log_box)
        bar.addSpacing(12)
        bar.addWidget(legend)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        # The loss large on the left; gradient norm and learning rate stacked on the right,
        # so the panel reads well both tall and short.
        self.loss_plot = self.view.addPlot(row=0, col=0, rowspan=2)
        self.norm_plot = self.view.addPlot(row=0, col=1)
        self.lr_plot = self.view.addPlot(row=1, col=1)
        layout = self.view.ci.layout
        layout.setColumnStretchFactor(0, 2)
        layout.setColumnStretchFactor(1, 1)
        style_plot(self.loss_plot, left="loss", bottom="step")
        style_plot(self.norm_plot, left="gradient norm")
        style_plot(self.lr_plot, left="learning rate", bottom="step")
        for p in (self.norm_plot, self.lr_plot):
            p.setXLink(self.loss_plot)
        # Plain Qt path items of the growing histories (_perf.SeriesTrace): each frame
        # reads the new steps only and draws them min/max-decimated, so a frame costs the
        # same at step 1,000,000 as at step 1,000. In log mode they hold log10 of the
        # values (the axes show 10^y).
        self.train_curve = SeriesTrace(PENS["train"], max_points=MAX_POINTS)
        self.val_curve = SeriesTrace(PENS["val"], max_points=MAX_POINTS)
        self.val_dots = Dots(PENS["val"].color(), size=5)
        self.norm_curve = SeriesTrace(PENS["norm"], max_points=MAX_POINTS)
        self.lr_curve = SeriesTrace(PENS["lr"], max_points=MAX_POINTS)
        for plot, item in ((self.loss_plot, self.train_curve), (self.loss_plot, self.val_curve),
                           (self.loss_plot, self.val_dots), (self.norm_plot, self.norm_curve),
                           (self.lr_plot, self.lr_curve)):
            plot.addItem(item)
        self.lr_plot.enableAutoRange(axis="y", enable=False)
        # Ranges that move in steps, not every frame: the cached axes stay valid (_perf.py).
        # x (steps, linked to the other two plots) grows to round values with 10% headroom.
        self.x_range = ViewRange(self.loss_plot.getViewBox(), "x", pad=(0.02, 0.1),
                                 shrink=0.0, round_hi=True)
        self.y_ranges = {p: ViewRange(p.getViewBox(), "y", pad=(0.05, 0.05), log=True)
                         for p in (self.loss_plot, self.norm_plot)}
        for p in (self.loss_plot, self.norm_plot):   # readable log ticks at any height
            p.getViewBox().sigYRangeChanged.connect(self._on_view_y_range_changed)
            p.getViewBox().sigResized.connect(self._on_view_y_range_changed)
        self._lr_top = None
        self._apply_log(True)

    def export_item(self):
        return self.view.scene()

    def export_legends(self):
        # (a point of data: a PlotDataItem hands its symbol style to the sample only then)
        val = pg.PlotDataItem([0.0], [0.0], pen=PENS["val"], symbol="o", symbolSize=5,
                              symbolPen=None, symbolBrush=PENS["val"].color())
        return [(self.loss_plot, [(pg.PlotDataItem(pen=PENS["train"]), "train loss"),
                                  (val, "validation loss")])]

    @Slot(bool)
    def _on_log_box_toggled(self, on):
        self._apply_log(on)

    def _apply_log(self, on):
        for c in (self.train_curve, self.val_curve, self.norm_curve):
            c.set_transform(_log10_positive if on else None)
        for p in (self.loss_plot, self.norm_plot):
            p.setLogMode(x=False, y=on)
            self.y_ranges[p].log = on
            self.y_ranges[p].reset()
            self._log_ticks(p)
        if self.snapshot is not None:       # the curves take log10 of the data: redraw
            self.drawn = None
            self.redraw_now(raise_errors=False)

    @Slot()
    def _on_view_y_range_changed(self, *args):
        for p in (self.loss_plot, self.norm_plot):
            self._log_ticks(p)

    def _log_ticks(self, plot):
        """Readable ticks on a log axis (1-2-5 per decade, as many as fit), set only when
        they change; pyqtgraph's own ticks otherwise."""
        axis = plot.getAxis("left")
        rng = self.y_ranges[plot].range
        if not self.log_box.isChecked():
            set_ticks(axis, None)
            return
        lo, hi = rng if rng is not None else plot.getViewBox().viewRange()[1]
        height = max(plot.getViewBox().height(), 1.0)
        ticks = log_ticks(lo, hi, height / PX_PER_TICK)
        set_ticks(axis, [ticks, []] if ticks else None)

    def _fit(self, snap):
        """Move the ranges if the data left them (or shrank well inside)."""
        step = snap.history["step"]
        if len(step):
            self.x_range.fit(float(step[0]), float(step[-1]))
        for plot, curves in ((self.loss_plot, (self.train_curve, self.val_curve)),
                             (self.norm_plot, (self.norm_curve,))):
            bounds = [b for b in (c.series.bounds() for c in curves) if b is not None]
            if bounds and self.y_ranges[plot].fit(min(b[0] for b in bounds),
                                                  max(b[1] for b in bounds)):
                self._log_ticks(plot)

    def on_reset(self):
        for c in (self.train_curve, self.val_curve, self.val_dots, self.norm_curve,
                  self.lr_curve):
            c.setData([], [])
        self.x_range.reset()
        for r in self.y_ranges.values():
            r.reset()

    def redraw(self, snap):
        h = snap.history
        step = h["step"]
        self.train_curve.set_series(step, h["train_loss"])
        self.val_curve.set_series(h["val_step"], h["val_loss"])
        vx, vy = self.val_curve.getData()
        dots = self.val_dots.getData()[0]
        if len(vx) <= MAX_DOTS:        # more would be a thick line of dots, and costly
            self.val_dots.setData(vx, vy)
        elif dots is not None and len(dots):
            self.val_dots.setData([], [])
        self.norm_curve.set_series(step, h["grad_norm"])
        self.lr_curve.set_series(step, h["lr"])
        lr = self.lr_curve.series.bounds()            # running (lo, hi): not O(steps)
        if lr is not None:
            top = lr[1] * 1.15
            if top != self._lr_top and np.isfinite(top) and top > 0:
                self._lr_top = top
                self.lr_plot.setYRange(0.0, top, padding=0)
        self._fit(snap)
        parts = [f"step {snap.step}", f"loss {snap.loss:.4g}"]
        if np.isfinite(snap.val_loss):
            parts.append(f"val {snap.val_loss:.4g}")
        if np.isfinite(snap.grad_norm):
            parts.append(f"|g| {snap.grad_norm:.3g}")
        self.info.setText("   ".join(parts))

    def data_arrays(self):
        snap = self.drawn or self.snapshot
        if snap is None:
            return {}
        h = snap.history
        val = np.full(len(h["step"]), np.nan)
        idx = np.searchsorted(h["step"], h["val_step"])
        ok = idx < len(val)
        val[idx[ok]] = h["val_loss"][ok]
        return {"step": h["step"], "train_loss": h["train_loss"], "val_loss": val,
                "grad_norm": h["grad_norm"], "lr": h["lr"]}


def _positive(a):
    """Values for a log axis: non-positive entries become NaN (drawn as gaps)."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(a > 0, a, np.nan)


def _log10_positive(a):
    """log10 of the positive values (the view's coordinates in log mode); NaN gaps."""
    return np.log10(_positive(a))
