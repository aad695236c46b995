"""Training curves: train and validation loss, gradient norm and learning rate per step."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.style import COLORS, PENS, apply_log_ticks, style_plot


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
        self.info = QLabel("")
        self.info.setToolTip("Last training loss, validation loss and gradient norm")
        bar.addWidget(self.log_box)
        bar.addSpacing(12)
        bar.addWidget(legend)
        bar.addStretch(1)
        bar.addWidget(self.info)
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
        for p in (self.loss_plot, self.norm_plot, self.lr_plot):
            p.setDownsampling(auto=True, mode="peak")
            p.setClipToView(True)
        self.train_curve = self.loss_plot.plot(name="train", pen=PENS["train"])
        self.val_curve = self.loss_plot.plot(name="validation", pen=PENS["val"], symbol="o",
                                             symbolSize=5, symbolBrush=PENS["val"].color(),
                                             symbolPen=None)
        self.norm_curve = self.norm_plot.plot(pen=PENS["norm"])
        self.lr_curve = self.lr_plot.plot(pen=PENS["lr"])
        self.lr_plot.enableAutoRange(axis="y", enable=False)
        for p in (self.loss_plot, self.norm_plot):   # readable log ticks at any height
            p.getViewBox().sigYRangeChanged.connect(self._on_view_y_range_changed)
            p.getViewBox().sigResized.connect(self._on_view_y_range_changed)
        self._lr_top = None
        self._apply_log(True)

    def export_item(self):
        return self.view.scene()

    @Slot(bool)
    def _on_log_box_toggled(self, on):
        self._apply_log(on)

    def _apply_log(self, on):
        for p in (self.loss_plot, self.norm_plot):
            p.setLogMode(x=False, y=on)
            apply_log_ticks(p)

    @Slot()
    def _on_view_y_range_changed(self, *args):
        for p in (self.loss_plot, self.norm_plot):
            apply_log_ticks(p)

    def on_reset(self):
        for c in (self.train_curve, self.val_curve, self.norm_curve, self.lr_curve):
            c.setData([], [])

    def redraw(self, snap):
        h = snap.history
        step = h["step"]
        self.train_curve.setData(step, _positive(h["train_loss"]))
        self.val_curve.setData(h["val_step"], _positive(h["val_loss"]))
        self.norm_curve.setData(step, _positive(h["grad_norm"]))
        self.lr_curve.setData(step, h["lr"])
        if len(step):
            top = float(np.max(h["lr"])) * 1.15
            if top != self._lr_top and np.isfinite(top) and top > 0:
                self._lr_top = top
                self.lr_plot.setYRange(0.0, top, padding=0)
        if self.log_box.isChecked() and len(step):
            for plot, arrays in ((self.loss_plot, (h["train_loss"], h["val_loss"])),
                                 (self.norm_plot, (h["grad_norm"],))):
                vals = np.concatenate([a[np.isfinite(a) & (a > 0)] for a in arrays])
                if len(vals):
                    apply_log_ticks(plot, data_range=(vals.min(), vals.max()))
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
