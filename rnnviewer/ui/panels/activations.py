"""Activation heatmap: units x time for one probe sequence, the inputs along the time axis."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import FastImageItem
from rnnviewer.ui.panels._hidden import (STATE_TITLES, VIRIDIS, StableLimit, info_label,
                                         probe_labels, probe_state, refresh, robust_max,
                                         sequence_spin, set_spin_max, state_combo,
                                         sync_state_combo, thinned_ticks, tick_metrics)
from rnnviewer.ui.style import COLORS, style_plot


@register_panel
class ActivationsPanel(Panel):
    title = "Activation heatmap"
    object_name = "activations"
    tooltip = ("Every unit's activation (rows) at every time step (columns) of one probe "
               "sequence; the inputs label the time axis. Click a row to select its unit.")
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def build(self):
        bar = QHBoxLayout()
        self.seq_spin = sequence_spin()
        self.seq_spin.valueChanged.connect(self._on_seq_spin_value_changed)
        self.state_box = state_combo()
        self.state_box.currentIndexChanged.connect(self._on_state_box_current_index_changed)
        self.info = info_label("The cell under the mouse pointer")
        self.selected_label = QLabel("")
        self.selected_label.setStyleSheet(f"color: {COLORS['accent']}; font-weight: bold;")
        self.selected_label.setToolTip("The selected unit, outlined in the heatmap")
        bar.addWidget(self.seq_spin)
        bar.addWidget(self.state_box)
        bar.addWidget(self.selected_label)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)

        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        with batched_layout(self.view):              # one layout pass, not one per plot
            self.plot = self.view.addPlot(row=0, col=0)
            style_plot(self.plot, left="unit", bottom="input")
            self.plot.showAxis("top")
            self.plot.setLabel("top", "time step", size="9pt")
            self.plot.getAxis("top").setStyle(
                tickFont=self.plot.getAxis("bottom").style["tickFont"])
            self.plot.showGrid(x=False, y=False)
            self.plot.invertY(True)
            self.plot.hideButtons()
            self.plot.setMenuEnabled(False)
            self.plot.getViewBox().setDefaultPadding(0.0)
            self.image = FastImageItem(axisOrder="row-major")
            self.image.setColorMap(VIRIDIS)
            self.image.setToolTip("Click a row to select its unit")
            self.plot.addItem(self.image)
            accent = pg.mkColor(COLORS["accent"])
            self.marker = pg.PlotCurveItem(pen=pg.mkPen(accent, width=2.2), antialias=False)
            self.marker.setZValue(10)
            self.plot.addItem(self.marker)
            self.cbar = pg.ColorBarItem(values=(-1.0, 1.0), colorMap=VIRIDIS, interactive=False,
                                        width=14, label="h")
            self.cbar.setImageItem(self.image)
            self.view.addItem(self.cbar, row=0, col=1)
        self.limit = StableLimit(1.0)
        self._levels = None
        self._shape = None
        self._labels = []
        self._data = None            # (H, T) float32 drawn
        self._metrics = tick_metrics()
        self._ticks = None
        self.plot.getViewBox().sigXRangeChanged.connect(self._on_view_x_range_changed)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

    def export_item(self):
        return self.view.scene()

    def _refresh(self):
        refresh(self)

    @Slot(int)
    def _on_seq_spin_value_changed(self, _):
        self._refresh()

    @Slot(int)
    def _on_state_box_current_index_changed(self, _):
        self._levels = None
        self._refresh()

    def on_unit_selected(self, unit):
        self._draw_marker()

    def on_reset(self):
        self.limit = StableLimit(1.0)
        self._levels = None

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        which = sync_state_combo(self.state_box, snap)
        states = probe_state(snap, which)                      # (P, T, H)
        P, T, H = states.shape
        set_spin_max(self.seq_spin, P)
        seq = min(self.seq_spin.value(), P - 1)
        self._data = np.ascontiguousarray(states[seq].T, dtype=np.float32)   # (H, T)
        lim = 1.0 if which == "h" else self.limit.update(robust_max(states))
        levels = (-lim, lim)
        if levels != self._levels:
            self._levels = levels
            self.cbar.setLevels(levels)
            self.cbar.setLabel("left", STATE_TITLES[which])
        self.image.setImage(self._data, levels=levels, autoLevels=False)
        if self._shape != (H, T):
            self._shape = (H, T)
            self.image.setRect(QRectF(-0.5, -0.5, T, H))
            self.plot.setRange(xRange=(-0.5, T - 0.5), yRange=(-0.5, H - 0.5), padding=0)
            self.plot.setLimits(xMin=-0.5, xMax=T - 0.5, yMin=-0.5, yMax=H - 0.5)
        self._labels = probe_labels(snap, seq)
        self._update_ticks()
        self._draw_marker()

    def _draw_marker(self):
        if self._shape is None:
            return
        H, T = self._shape
        u = min(self.selection.unit, H - 1)
        x0, x1, y0, y1 = -0.5, T - 0.5, u - 0.5, u + 0.5
        self.marker.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        self.selected_label.setText(f"selected: unit {u}")

    def _update_ticks(self):
        vb = self.plot.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px = vb.width() / max(x1 - x0, 1e-9)
        ticks = thinned_ticks(self._labels, x0, x1, px, self._metrics)
        if ticks != self._ticks:           # new ticks repaint the whole axis: only on change
            self._ticks = ticks
            self.plot.getAxis("bottom").setTicks([ticks, []])

    @Slot(object, object)
    def _on_view_x_range_changed(self, *_):
        self._update_ticks()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._update_ticks()

    # ------------------------------------------------------------ picking
    def cell_at(self, x, y):
        """(unit, t) of the heatmap cell at view point (x, y), or None outside."""
        if self._shape is None:
            return None
        H, T = self._shape
        u, t = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
        return (u, t) if 0 <= u < H and 0 <= t < T else None

    @Slot(object)
    def _on_scene_mouse_clicked(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        cell = self.cell_at(p.x(), p.y())
        if cell is not None:
            self.select_unit(cell[0])

    @Slot(object)
    def _on_scene_mouse_moved(self, pos):
        vb = self.plot.getViewBox()
        if self._data is None or not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        cell = self.cell_at(p.x(), p.y())
        if cell is None:
            self.info.setText("")
            return
        u, t = cell
        lab = self._labels[t] if t < len(self._labels) else ""
        self.info.setText(f"unit {u}   t={t} '{lab}'   {self._data[u, t]:+.3f}")

    # ------------------------------------------------------------ export
    def data_arrays(self):
        if self._data is None:
            return {}
        return {"activations": self._data,                 # (H, T)
                "inputs": np.array(self._labels, dtype=str)}  # (T,)
