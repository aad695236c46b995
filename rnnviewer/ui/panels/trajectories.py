"""Hidden-state trajectories: each chosen unit's h_t over time for a probe sequence,
the selected unit highlighted with its mean and spread over the probe batch."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._perf import Band, Dots, Rule, Trace, WideTrace
from rnnviewer.ui.panels._hidden import (STATE_TITLES, UNIT_COLORS, StableLimit, info_label,
                                         parse_units, probe_labels, probe_state, refresh,
                                         robust_max, sequence_spin, set_spin_max, state_combo,
                                         sync_state_combo, thinned_ticks, tick_metrics)
from rnnviewer.ui.style import COLORS, style_plot

MAX_COLOURED = len(UNIT_COLORS)   # more units than this are drawn in one grey item
PICK_PX = 12                      # a click this close (pixels) to a trace selects its unit


@register_panel
class TrajectoriesPanel(Panel):
    title = "Hidden trajectories"
    object_name = "trajectories"
    tooltip = ("Each unit's activation over time for one probe sequence. The selected unit is "
               "thick, with its mean and spread (±1 sd) over the probe batch. Click a trace to "
               "select its unit.")
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def build(self):
        bar = QHBoxLayout()
        self.seq_spin = sequence_spin()
        self.seq_spin.valueChanged.connect(self._on_seq_spin_value_changed)
        self.state_box = state_combo()
        self.state_box.currentIndexChanged.connect(self._on_state_box_current_index_changed)
        self.units_edit = QLineEdit("0-7")
        self.units_edit.setMaximumWidth(110)
        self.units_edit.setToolTip("Units to draw besides the selected one: e.g. \"0-7, 12\", "
                                   "\"all\" or empty")
        self.units_edit.editingFinished.connect(self._on_units_edit_editing_finished)
        self.band_box = QCheckBox("batch mean ± sd")
        self.band_box.setChecked(True)
        self.band_box.setToolTip("Shade the selected unit's mean ± 1 standard deviation over "
                                 "all sequences of the probe batch")
        self.band_box.toggled.connect(self._on_band_box_toggled)
        self.info = info_label("The unit under the mouse pointer")
        bar.addWidget(self.seq_spin)
        bar.addWidget(self.state_box)
        bar.addWidget(QLabel("units"))
        bar.addWidget(self.units_edit)
        bar.addWidget(self.band_box)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)

        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        self.plot = self.view.addPlot(row=0, col=0)
        style_plot(self.plot, left="activation h", bottom="time step")
        self.plot.showAxis("top")
        self.plot.getAxis("top").setStyle(tickFont=self.plot.getAxis("bottom").style["tickFont"])
        self.plot.getAxis("top").setToolTip("The input at each time step")
        self.plot.getAxis("top").setGrid(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.hideButtons()
        # Traces, band and dots are plain Qt path items (_perf.py): a frame costs a
        # fraction of what PlotCurveItem / FillBetweenItem / symbols cost.
        self.many_curve = Trace(pg.mkPen(QColor(120, 120, 120, 90), width=1))
        self.plot.addItem(self.many_curve)
        self.unit_curves = []
        for c in UNIT_COLORS:
            col = QColor(c)
            col.setAlpha(200)
            item = Trace(pg.mkPen(col, width=1))
            self.plot.addItem(item)
            self.unit_curves.append(item)
        accent = QColor(COLORS["accent"])
        fill = QColor(accent)
        fill.setAlpha(55)
        self.band = Band(fill)
        self.band_lo, self.band_hi = self.band.lo, self.band.hi
        self.plot.addItem(self.band)
        self.mean_curve = Trace(pg.mkPen(accent, width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.mean_curve)
        self.sel_curve = WideTrace(pg.mkPen(accent.darker(115), width=2.6))
        self.plot.addItem(self.sel_curve)
        self.sel_dots = Dots(accent.darker(115), size=4)
        self.plot.addItem(self.sel_dots)
        self.legend = pg.TextItem("", color=accent.darker(130), anchor=(0, 0))
        self.legend.setParentItem(self.plot.getViewBox())
        self.legend.setPos(6, 2)
        self.zero = Rule(0.0, angle=0, pen=pg.mkPen("#a0a0a0", width=0.8))
        self.plot.addItem(self.zero)
        self.limit = StableLimit(1.0)
        self._ylim = None
        self._units = [0, 1, 2, 3, 4, 5, 6, 7]
        self._labels = []
        self._shown = {}          # unit -> (T,) values drawn (for picking and export)
        self._band = None         # (mean (T,), sd (T,)) of the selected unit over the batch
        self._sel = 0
        self._metrics = tick_metrics()
        self._ticks = None
        self._tick_key = None
        self.plot.getViewBox().sigXRangeChanged.connect(self._on_view_x_range_changed)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

    def export_item(self):
        return self.view.scene()

    def export_legends(self):
        """The other units' colours (the selected one is named in the plot)."""
        others = [u for u in self._shown if u != self._sel]     # in the order drawn
        if not others:
            return []
        if len(others) > MAX_COLOURED:
            rows = [(pg.PlotDataItem(pen=self.many_curve.pen()), f"{len(others)} other units")]
        else:
            rows = [(pg.PlotDataItem(pen=item.pen()), f"unit {u}")
                    for u, item in zip(others, self.unit_curves)]
        return [(self.plot, rows)]

    # ------------------------------------------------------------ controls
    def _refresh(self):
        refresh(self)

    @Slot(int)
    def _on_seq_spin_value_changed(self, _):
        self._refresh()

    @Slot(int)
    def _on_state_box_current_index_changed(self, _):
        self._ylim = None
        self._refresh()

    @Slot(bool)
    def _on_band_box_toggled(self, _):
        self._refresh()

    @Slot()
    def _on_units_edit_editing_finished(self):
        H = self.snapshot.n_hidden if self.snapshot is not None else 4096
        try:
            self._units = parse_units(self.units_edit.text(), H)
            self.units_edit.setStyleSheet("")
        except ValueError:
            self.units_edit.setStyleSheet("background: #ffd8d8;")
            self.info.setText("units: write numbers and ranges like 0-7, 12, or all")
            return
        self._refresh()

    def on_unit_selected(self, unit):
        self._refresh()

    def on_reset(self):
        self._ylim = None
        self.limit = StableLimit(1.0)

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        which = sync_state_combo(self.state_box, snap)
        states = probe_state(snap, which)                  # (P, T, H)
        P, T, H = states.shape
        set_spin_max(self.seq_spin, P)
        seq = min(self.seq_spin.value(), P - 1)
        sel = self._sel = min(self.selection.unit, H - 1)
        h = states[seq]                                    # (T, H)
        t = np.arange(T, dtype=np.float64)
        units = [u for u in self._units if u < H and u != sel]
        self._shown = {u: h[:, u] for u in units}
        self._shown[sel] = h[:, sel]
        if len(units) > MAX_COLOURED:
            xs = np.empty((len(units), T + 1))
            ys = np.empty((len(units), T + 1))
            xs[:, :T] = t
            xs[:, T] = np.nan
            ys[:, :T] = h[:, units].T
            ys[:, T] = np.nan
            self.many_curve.setData(xs.ravel(), ys.ravel())
            for item in self.unit_curves:
                item.setData([], [])
        else:
            self.many_curve.setData([], [])
            for i, item in enumerate(self.unit_curves):
                if i < len(units):
                    item.setData(t, h[:, units[i]])
                else:
                    item.setData([], [])
        if self.band_box.isChecked() and P > 1:
            m = states[:, :, sel].mean(0)
            sd = states[:, :, sel].std(0)
            self.band.setData(t, m - sd, m + sd)
            self.mean_curve.setData(t, m)
            self.band.setVisible(True)
            self._band = (m, sd)
        else:
            self.band.clear()
            self.mean_curve.setData([], [])
            self.band.setVisible(False)
            self._band = None
        self.sel_curve.setData(t, h[:, sel])
        self.sel_dots.setData(t, h[:, sel])
        legend = f"unit {sel} (seq {seq})" + ("   dashed: batch mean" if self._band is not None
                                              else "")
        if legend != self.legend.toPlainText():
            self.legend.setText(legend)
        if self._ylim is None:
            self.plot.setLabel("left", STATE_TITLES[which])
        lim = 1.0 if which == "h" else self.limit.update(robust_max(states, 99.9))
        if self._ylim != lim:
            self._ylim = lim
            self.plot.setYRange(-1.05 * lim, 1.05 * lim, padding=0)
        if len(self._labels) != T or self.plot.getViewBox().viewRange()[0][1] > T:
            self.plot.setXRange(0, max(T - 1, 1), padding=0.01)
        self._labels = probe_labels(snap, seq)
        self._update_ticks()

    def _update_ticks(self):
        vb = self.plot.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px = vb.width() / max(x1 - x0, 1e-9)
        key = (tuple(self._labels), x0, x1, px)
        if key == self._tick_key:          # the same labels in the same place
            return
        self._tick_key = key
        ticks = thinned_ticks(self._labels, x0, x1, px, self._metrics)
        if ticks != self._ticks:           # new ticks repaint the whole axis: only on change
            self._ticks = ticks
            self.plot.getAxis("top").setTicks([ticks, []])

    @Slot(object, object)
    def _on_view_x_range_changed(self, *_):
        self._update_ticks()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._update_ticks()

    # ------------------------------------------------------------ picking
    def unit_at(self, x, y):
        """The drawn unit whose trace passes closest to view point (x, y), or None."""
        if not self._shown:
            return None
        T = len(next(iter(self._shown.values())))
        xc = min(max(float(x), 0.0), T - 1.0)
        tt = np.arange(T)
        units = list(self._shown)
        vals = np.array([np.interp(xc, tt, self._shown[u]) for u in units])
        dy = np.abs(vals - float(y))
        i = int(np.argmin(dy))
        px = self.plot.getViewBox().viewPixelSize()[1]
        return units[i] if dy[i] <= PICK_PX * px else None

    @Slot(object)
    def _on_scene_mouse_clicked(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        unit = self.unit_at(p.x(), p.y())
        if unit is not None:
            self.select_unit(unit)

    @Slot(object)
    def _on_scene_mouse_moved(self, pos):
        vb = self.plot.getViewBox()
        if not self._shown or not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        unit = self.unit_at(p.x(), p.y())
        T = len(self._labels)
        t = int(round(min(max(p.x(), 0), T - 1))) if T else 0
        if unit is None:
            self.info.setText(f"t={t}")
            return
        lab = self._labels[t] if t < T else ""
        self.info.setText(f"unit {unit}   t={t} '{lab}'   {self._shown[unit][t]:+.3f}")

    # ------------------------------------------------------------ export
    def data_arrays(self):
        if not self._shown:
            return {}
        T = len(next(iter(self._shown.values())))
        out = {"t": np.arange(T)}
        for u in sorted(self._shown):
            out[f"unit_{u}"] = np.asarray(self._shown[u])
        if self._band is not None:
            out[f"unit_{self._sel}_batch_mean"] = self._band[0]
            out[f"unit_{self._sel}_batch_sd"] = self._band[1]
        return out
