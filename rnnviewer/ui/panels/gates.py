"""Gates (GRU, LSTM): the selected unit's gate activations over time, the saturation of
the sigmoid gates over training (fraction of values under 0.1 and over 0.9, Karpathy et
al. 2015) and the same fractions per unit now."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStackedWidget

from rnnviewer.engine.analysis import SIGMOID_GATES, gate_saturation
from rnnviewer.training.snapshot import GrowableArray
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import SeriesTrace, ViewRange, WideTrace
from rnnviewer.ui.panels._hidden import (GATE_COLORS, GATE_TITLES, info_label, message_label,
                                         probe_labels, refresh, sequence_spin, set_spin_max,
                                         thinned_ticks, tick_metrics, widget_svg)
from rnnviewer.ui.style import COLORS, style_plot

LOW, HIGH = 0.1, 0.9

NO_GATES = ("<b>An Elman RNN has no gates.</b><br><br>"
            "Its state is rewritten completely at every step, "
            "h<sub>t</sub> = tanh(W<sub>hh</sub> h<sub>t-1</sub> + W<sub>xh</sub> x<sub>t</sub>"
            " + b), with nothing that decides what to keep or forget.<br><br>"
            "Choose a GRU (reset r, update z) or an LSTM (input i, forget f, output o) cell "
            "to see its gates over time and how saturated they become while it trains.")


@register_panel
class GatesPanel(Panel):
    title = "Gates"
    object_name = "gates"
    tooltip = ("GRU and LSTM gates: the selected unit's gate values over time, and how many "
               "gate values are saturated (< 0.1 or > 0.9) as training goes on.")
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def build(self):
        bar = QHBoxLayout()
        self.seq_spin = sequence_spin()
        self.seq_spin.valueChanged.connect(self._on_seq_spin_value_changed)
        self.info = info_label("The selected unit and its gate values at the pointer")
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setToolTip("The selected unit and the colour of each gate (the candidates "
                               "g and n are tanh, in [-1, 1]; the gates are sigmoids, in "
                               "[0, 1])")
        bar.addWidget(self.seq_spin)
        bar.addWidget(self.legend)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)

        self.stack = QStackedWidget()
        self.layout_.addWidget(self.stack, 1)
        self.message = message_label("Waiting for the first snapshot…")
        self.stack.addWidget(self.message)
        self.view = pg.GraphicsLayoutWidget()
        self.stack.addWidget(self.view)

        self.time_plot = pg.PlotItem()
        style_plot(self.time_plot, left="gate value", bottom="time step")
        self.time_plot.setYRange(-1.05, 1.05, padding=0)
        self.time_plot.setMouseEnabled(x=True, y=False)
        self.time_plot.hideButtons()
        self.time_plot.showAxis("top")
        self.time_plot.getAxis("top").setGrid(False)
        self.time_plot.getAxis("top").setStyle(
            tickFont=self.time_plot.getAxis("bottom").style["tickFont"])
        self.sat_plot = pg.PlotItem()
        style_plot(self.sat_plot, left="fraction saturated", bottom="step",
                   title="over training (solid &gt; 0.9, dashed &lt; 0.1)")
        self.sat_plot.setYRange(0, 1, padding=0.02)
        self.sat_plot.setMouseEnabled(x=True, y=False)
        # steps grow: the x range moves in steps (cached axes stay valid, _perf.py)
        self.sat_range = ViewRange(self.sat_plot.getViewBox(), "x", pad=(0.02, 0.1),
                                   shrink=0.0, round_hi=True)
        self.unit_plot = pg.PlotItem()
        style_plot(self.unit_plot, left="fraction &gt; 0.9", bottom="fraction &lt; 0.1",
                   title="per unit, now (click selects)")
        self.unit_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.04)
        self.unit_plot.setMouseEnabled(x=False, y=False)
        self.unit_plot.hideButtons()
        self.unit_plot.getAxis("left").setWidth(44)
        self._wide = None
        self._arrange(False)
        self.sel_ring = pg.ScatterPlotItem(symbol="o", size=15, brush=None,
                                           pen=pg.mkPen("#202020", width=2))
        self.sel_ring.setZValue(10)
        self.unit_plot.addItem(self.sel_ring)

        self._gates = ()             # gate names the items are built for
        self.time_curves = {}        # gate -> PlotCurveItem
        self.sat_curves = {}         # gate -> (low curve, high curve)
        self.unit_points = {}        # gate -> ScatterPlotItem
        self._history = {}
        self._last_step = None
        self._labels = []
        self._ticks = None
        self._tick_key = None
        self._title = None
        self._metrics = tick_metrics()
        self._values = {}            # gate -> (T,) drawn for the selected unit
        self._per_unit = {}          # gate -> Saturation of (H,) arrays
        self.time_plot.getViewBox().sigXRangeChanged.connect(self._on_view_x_range_changed)

    def _arrange(self, wide):
        """Three plots in a row when the panel is wide and low, else the time plot on top."""
        if wide == self._wide:
            return
        self._wide = wide
        ci = self.view.ci
        with batched_layout(self.view):              # one layout pass, not one per plot
            for item in (self.time_plot, self.sat_plot, self.unit_plot):
                if item in ci.items:
                    ci.removeItem(item)
            lay = ci.layout
            if wide:
                ci.addItem(self.time_plot, row=0, col=0)
                ci.addItem(self.sat_plot, row=0, col=1)
                ci.addItem(self.unit_plot, row=0, col=2)
                stretch_rows, stretch_cols = (1, 0), (5, 3, 2)
            else:
                ci.addItem(self.time_plot, row=0, col=0, colspan=2)
                ci.addItem(self.sat_plot, row=1, col=0)
                ci.addItem(self.unit_plot, row=1, col=1)
                stretch_rows, stretch_cols = (3, 2), (3, 2, 0)
            for i, f in enumerate(stretch_rows):
                lay.setRowStretchFactor(i, f)
            for i, f in enumerate(stretch_cols):
                lay.setColumnStretchFactor(i, f)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._arrange(self.width() > 2.4 * self.height())
        if self.stack.currentWidget() is self.view:
            self._update_ticks()

    def export_item(self):
        return self.view.scene() if self.stack.currentWidget() is self.view else None

    def export_legends(self):
        if not self._gates:
            return []
        u, seq = self.selection.unit, self.seq_spin.value()
        rows = [(pg.PlotDataItem(pen=pg.mkPen(GATE_COLORS[g], width=2)), GATE_TITLES[g])
                for g in self._gates]
        return [(self.time_plot, rows + [(pg.PlotDataItem(pen=None), f"unit {u}, seq {seq}")])]

    def _export_svg(self, path, item):
        if item is None:
            widget_svg(self, path)
        else:
            super()._export_svg(path, item)

    # ------------------------------------------------------------ saturation history
    def update_snapshot(self, snap):
        super().update_snapshot(snap)
        gates = snap.probe.gates
        names = SIGMOID_GATES.get(snap.cell, ())
        if not names or snap.step == self._last_step:
            return
        self._last_step = snap.step
        sat = gate_saturation(gates, LOW, HIGH, names=names, mask=snap.probe.mask)
        h = self._history        # key -> GrowableArray, one entry per snapshot
        row = {"step": snap.step}
        for g in names:
            row[f"{g}_low"], row[f"{g}_high"] = sat[g].low, sat[g].high
        if set(h) != set(row):
            h.clear()
            h.update((k, GrowableArray()) for k in row)
        for k, v in row.items():
            h[k].append(v)

    def on_reset(self):
        self._history = {}
        self._last_step = None
        self.sat_range.reset()
        for low, high in self.sat_curves.values():
            low.setData([], [])
            high.setData([], [])

    # ------------------------------------------------------------ controls
    def _refresh(self):
        refresh(self)

    @Slot(int)
    def _on_seq_spin_value_changed(self, _):
        self._refresh()

    def on_unit_selected(self, unit):
        self._refresh()

    # ------------------------------------------------------------ drawing
    def _build_items(self, gates, cell):
        for c in self.time_curves.values():
            self.time_plot.removeItem(c)
        for low, high in self.sat_curves.values():
            self.sat_plot.removeItem(low)
            self.sat_plot.removeItem(high)
        for s in self.unit_points.values():
            self.unit_plot.removeItem(s)
        self.time_curves, self.sat_curves, self.unit_points = {}, {}, {}
        for g in gates:
            col = QColor(GATE_COLORS[g])
            # wide antialiased pens are ~20x slower to draw in Qt: wide lines go without
            curve = WideTrace(pg.mkPen(col, width=2))
            self.time_plot.addItem(curve)
            self.time_curves[g] = curve
        sigmoid = SIGMOID_GATES.get(cell, ())
        for g in sigmoid:
            col = QColor(GATE_COLORS[g])
            # append-only series: a frame reads only the new samples (_perf.GrowingSeries)
            low = SeriesTrace(pg.mkPen(col, width=1, style=Qt.PenStyle.DashLine))
            high = SeriesTrace(pg.mkPen(col, width=1))
            self.sat_plot.addItem(low)
            self.sat_plot.addItem(high)
            self.sat_curves[g] = (low, high)
            fill = QColor(col)
            fill.setAlpha(150)
            pts = pg.ScatterPlotItem(symbol="o", size=6, pen=None, brush=pg.mkBrush(fill),
                                     name=g)
            pts.sigClicked.connect(self._on_unit_points_clicked)
            self.unit_plot.addItem(pts)
            self.unit_points[g] = pts
        self._gates = tuple(gates)

    def redraw(self, snap):
        gates = snap.probe.gates
        if not gates:
            self.message.setText(NO_GATES)
            self.stack.setCurrentWidget(self.message)
            self.info.setText("")
            self._values, self._per_unit = {}, {}
            return
        self.stack.setCurrentWidget(self.view)
        names = tuple(snap.gate_names) or tuple(gates)
        if names != self._gates:
            self._build_items(names, snap.cell)
        first = gates[names[0]]                               # (P, T, H)
        P, T, H = first.shape
        set_spin_max(self.seq_spin, P)
        seq = min(self.seq_spin.value(), P - 1)
        u = min(self.selection.unit, H - 1)
        t = np.arange(T)
        self._values = {g: gates[g][seq, :, u] for g in names}
        for g, curve in self.time_curves.items():
            curve.setData(t, self._values[g])
        title = (f'<b style="color:{COLORS["accent"]};">unit {u}</b>&nbsp;&nbsp;' +
                 "&nbsp;&nbsp;".join(f'<span style="color:{GATE_COLORS[g]};">&#9632;</span>'
                                     f'&nbsp;{GATE_TITLES[g]}' for g in names))
        if title != self._title:
            self._title = title
            self.legend.setText(title)
        if self.time_plot.getViewBox().viewRange()[0][1] > T or len(self._labels) != T:
            self.time_plot.setXRange(0, max(T - 1, 1), padding=0.01)
        self._labels = probe_labels(snap, seq)
        self._update_ticks()
        h = self._history
        steps = h["step"].a if h else np.zeros(0)
        for g, (low, high) in self.sat_curves.items():
            if f"{g}_low" in h:
                low.set_series(steps, h[f"{g}_low"].a)
                high.set_series(steps, h[f"{g}_high"].a)
        if len(steps):
            self.sat_range.fit(float(steps[0]), float(steps[-1]))
        sigmoid = tuple(self.sat_curves)
        self._per_unit = gate_saturation(gates, LOW, HIGH, names=sigmoid, per_unit=True,
                                         mask=snap.probe.mask)
        units = np.arange(H)
        ring = []
        for g, pts in self.unit_points.items():
            s = self._per_unit[g]
            pts.setData(x=s.low, y=s.high, data=units)
            ring.append((s.low[u], s.high[u]))
        if ring:
            ring = np.array(ring)
            self.sel_ring.setData(ring[:, 0], ring[:, 1])
        text = f"saturated <{LOW} / >{HIGH}: " + ", ".join(
            f"{g} {self._per_unit[g].low[u]:.0%} / {self._per_unit[g].high[u]:.0%}"
            for g in sigmoid)
        self.info.setText(text)
        tip = f"Unit {u}, share of its gate values on the probe batch {text}"
        if tip != self.info.toolTip():
            self.info.setToolTip(tip)

    def _update_ticks(self):
        vb = self.time_plot.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px = vb.width() / max(x1 - x0, 1e-9)
        key = (tuple(self._labels), x0, x1, px)
        if key == self._tick_key:          # the same labels in the same place
            return
        self._tick_key = key
        ticks = thinned_ticks(self._labels, x0, x1, px, self._metrics)
        if ticks != self._ticks:
            self._ticks = ticks
            self.time_plot.getAxis("top").setTicks([ticks, []])

    @Slot(object, object)
    def _on_view_x_range_changed(self, *_):
        self._update_ticks()

    @Slot(object, object, object)
    def _on_unit_points_clicked(self, item, points, ev):
        if len(points):
            self.select_unit(int(points[0].data()))

    # ------------------------------------------------------------ export
    def data_arrays(self):
        if not self._values:
            return {}
        out = {f"gate_{g}": np.asarray(v) for g, v in self._values.items()}   # (T,)
        for k, v in self._history.items():
            out[f"saturation_{k}"] = v.a.copy()                                 # (n,)
        for g, s in self._per_unit.items():
            out[f"unit_{g}_low"] = s.low                                       # (H,)
            out[f"unit_{g}_high"] = s.high
        return out
