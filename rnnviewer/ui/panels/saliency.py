"""Per-timestep saliency of the first probe sequence: which inputs drive output k at step t.

The attribution is computed in the training worker (analysis "saliency",
rnnviewer/training/analyses_gradients.py) with the engine's exact BPTT, and drawn aligned
with the input: characters coloured by attribution for text (click a character to make it
the output timestep), a heat strip under the input curves for series, one row per feature
for inputs with several features. Colours are diverging, centred on zero.
"""

import html
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSpinBox

from rnnviewer.training.analyses_gradients import METHOD_NAMES, METHODS
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import BandLevel, ViewRange, set_ticks
from rnnviewer.ui.panels._wg_common import (DIVERGING, ReportingImage, color_bar,
                                            colormap, fmt, input_names, output_names)
from rnnviewer.ui.style import LABEL_STYLE, style_plot

MAX_FEATURE_ROWS = 16          # inputs with more features (one-hot text) show one row
CURVE_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                "#17becf")


class TimeSpin(QSpinBox):
    """Output timestep: Python indexing (negative from the end), shown with its absolute
    value, e.g. "-1 (t = 99)"."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.T = 1
        self.set_length(1)

    def set_length(self, T):
        self.T = max(1, int(T))
        self.setRange(-self.T, self.T - 1)

    def absolute(self, v=None):
        return (self.value() if v is None else v) % self.T

    def textFromValue(self, v):
        return f"{v} (t = {v % self.T})" if v < 0 else str(v)

    def valueFromText(self, text):
        m = re.match(r"\s*([-+]?\d+)", text)
        return int(m.group(1)) if m else self.value()

    def validate(self, text, pos):
        from PySide6.QtGui import QValidator
        m = re.match(r"\s*([-+]?\d*)", text)
        s = m.group(1) if m else ""
        if s in ("", "-", "+"):
            return QValidator.State.Intermediate, text, pos
        v = int(s)
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Invalid), text, pos


@register_panel
class SaliencyPanel(Panel):
    title = "Saliency"
    object_name = "saliency"
    tooltip = ("Which input timesteps drive output k at timestep t (first probe sequence): "
               "gradient, gradient x input, integrated gradients or occlusion.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    analyses = ("saliency",)

    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Method"))
        self.method_box = QComboBox()
        for m in METHODS:
            self.method_box.addItem(METHOD_NAMES[m], m)
        self.method_box.setToolTip(
            "gradient: d f / d x;  gradient \u00d7 input: x \u00b7 d f / d x;  integrated "
            "gradients: (x \u2212 0) \u00b7 mean gradient on the path 0 \u2192 x;  occlusion: "
            "f(x) \u2212 f(x with step \u03c4 set to 0)")
        self.method_box.currentIndexChanged.connect(self._on_choice_changed)
        bar.addWidget(self.method_box)
        bar.addWidget(QLabel("t"))
        self.t_spin = TimeSpin()
        self.t_spin.setValue(-1)
        self.t_spin.setToolTip("The output timestep attributed; negative values count from "
                               "the end (-1 = last). Clicking a character sets it too.")
        self.t_spin.valueChanged.connect(self._on_choice_changed)
        bar.addWidget(self.t_spin)
        bar.addWidget(QLabel("of"))
        self.k_box = QComboBox()
        self.k_box.setToolTip("The quantity attributed: an output (class logit), the loss, "
                              "or the selected hidden unit, at timestep t")
        self.k_box.currentIndexChanged.connect(self._on_choice_changed)
        bar.addWidget(self.k_box, 1)
        self.steps_label = QLabel("steps")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(4, 512)
        self.steps_spin.setValue(50)
        self.steps_spin.setToolTip("Integration steps of integrated gradients")
        self.steps_spin.valueChanged.connect(self._on_choice_changed)
        bar.addWidget(self.steps_label)
        bar.addWidget(self.steps_spin)
        self.layout_.addLayout(bar)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setToolTip("What is attributed, and (integrated gradients) the convergence "
                             "delta: sum of attributions minus (f(x) - f(baseline))")
        self.layout_.addWidget(self.info)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text.linkHovered.connect(self._on_text_link_hovered)
        self.text.linkActivated.connect(self._on_text_link_activated)
        self.text.setToolTip("Each input character coloured by its attribution; the output "
                             "timestep t is underlined. Click a character to attribute there.")
        self.layout_.addWidget(self.text)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        self.cmap = colormap(DIVERGING)
        with batched_layout(self.view):              # one layout pass, not one per plot
            self.input_plot = self.view.addPlot(row=0, col=0)
            style_plot(self.input_plot, left="input")
            self.strip_plot = self.view.addPlot(row=1, col=0)
            style_plot(self.strip_plot, left=None, bottom="timestep")
            self.strip_plot.setToolTip("Rows: the input features, then their sum (\u03a3; the "
                                       "gradient's norm \u2016g\u2016). Click to attribute there.")
            self.strip_plot.showGrid(x=False, y=False)
            self.strip_plot.setXLink(self.input_plot)
            self.strip_plot.getViewBox().invertY(True)
            self.strip = ReportingImage(on_hover=self._on_strip_hover,
                                        on_click=self._on_strip_click)
            self.strip.setColorMap(self.cmap)
            self.strip_plot.addItem(self.strip)
            self.cbar = color_bar(self.cmap, orientation="horizontal", width=10)
            self.view.addItem(self.cbar, row=2, col=0)
        pen = pg.mkPen("#d62728", width=1.5, style=Qt.PenStyle.DashLine)
        self.t_lines = [p.addLine(x=0, pen=pen) for p in (self.input_plot, self.strip_plot)]
        self.curves = []
        self.legend = self.input_plot.addLegend(offset=(-5, 5), labelTextSize="8pt",
                                                colCount=4)
        self.bars = pg.BarGraphItem(x=[0.5], height=[0.0], width=0.8)
        self.input_plot.addItem(self.bars)
        # y follows the bars (or the input curves) in steps, not every frame: the left axis
        # stays cached in between (an axis regenerated costs ~5 ms, _perf.py)
        self.input_y = ViewRange(self.input_plot.getViewBox(), "y", pad=(0.08, 0.12),
                                 shrink=0.5)
        self.bars.setVisible(False)
        self.message = pg.TextItem("", color="#a03030", anchor=(0.5, 0.5))
        self.strip_plot.addItem(self.message)
        self.level = BandLevel()       # round levels that change in steps: the colour
                                       # bar's axis redraws only then (_perf.py)
        self._drawn_key = None         # (run, result) drawn: redraw only when it changes
        self._cbar_label = None
        self._level_key = None
        self._k_key = None
        self._mode = None              # "text" or "series"
        self.result = None             # the analysis result drawn
        self.rows = None               # (R, T) the strip drawn
        self.row_names = []
        self._set_message("waiting for the first snapshot\u2026")

    def sizeHint(self):
        from PySide6.QtCore import QSize
        return QSize(560, 380)

    # ------------------------------------------------------------ analysis request
    def analysis_options(self):
        k = self.k_box.currentData()
        opts = {"method": self.method_box.currentData(), "t": int(self.t_spin.value()),
                "k": 0 if k is None else k}
        if k == "unit":
            opts["unit"] = int(self.selection.unit)
        if opts["method"] == "integrated_gradients":
            opts["steps"] = int(self.steps_spin.value())
        return opts

    # ------------------------------------------------------------ choices
    def _sync_choices(self, snap):
        T = snap.probe.x.shape[1]
        if T != self.t_spin.T:
            self.t_spin.blockSignals(True)
            v = self.t_spin.value()
            self.t_spin.set_length(T)
            self.t_spin.setValue(v if -T <= v < T else -1)
            self.t_spin.blockSignals(False)
        O = int(snap.model_config.get("n_out", 0) or 0)
        key = (snap.loss_name, O, tuple(output_names(snap)))
        if key != self._k_key:
            self._k_key = key
            self.k_box.blockSignals(True)
            self.k_box.clear()
            names = output_names(snap)
            if snap.loss_name == "xent":
                self.k_box.addItem("target class at t", "target")
            for i in range(O):
                label = f"class {i} '{names[i]}'" if snap.loss_name == "xent" and \
                    names[i] != f"y{i}" else f"output {i}"
                self.k_box.addItem(label, i)
            if O:
                self.k_box.addItem("loss at t", "loss")
                self.k_box.addItem("loss of the whole sequence", "loss_seq")
            self.k_box.addItem("selected hidden unit", "unit")
            self.k_box.setCurrentIndex(0)
            self.k_box.blockSignals(False)
        self.steps_label.setVisible(self.method_box.currentData() == "integrated_gradients")
        self.steps_spin.setVisible(self.method_box.currentData() == "integrated_gradients")

    @Slot()
    def _on_choice_changed(self, *_):
        self.steps_label.setVisible(self.method_box.currentData() == "integrated_gradients")
        self.steps_spin.setVisible(self.method_box.currentData() == "integrated_gradients")
        self._drawn_key = None
        self.drawn = None
        self.redraw_now()

    def on_unit_selected(self, unit):
        if self.k_box.currentData() == "unit":
            self._on_choice_changed()

    # ------------------------------------------------------------ drawing
    def _set_message(self, text):
        self.message.setText(text)
        self.message.setVisible(bool(text))
        if text:
            self.message.setPos(self.strip_plot.getViewBox().viewRect().center())

    def redraw(self, snap):
        self._sync_choices(snap)
        res = snap.extra.get("saliency") if snap.extra else None
        # The picture is the worker's analysis result (recomputed at most every 0.3 s)
        # over the fixed probe inputs: a snapshot that brings neither is not a new frame.
        key = (snap.run_id, id(res), res.get("step") if res is not None else None)
        if key == self._drawn_key:
            return False
        self._drawn_key = key
        self._draw_inputs(snap)
        if res is None:
            self._clear_result()
            self._set_message("waiting for the saliency analysis (computed in the training "
                              "worker)\u2026")
            self.info.setText("Saliency is computed in the training worker; it appears with "
                              "the next snapshot.")
            return
        if res.get("error"):
            self._clear_result()
            self._set_message("saliency failed")
            self.info.setText(f"<span style='color:#a03030'>saliency failed: "
                              f"{html.escape(str(res['error']))}</span>")
            return
        self._set_message("")
        self.result = res
        self._draw_result(snap, res)

    def _clear_result(self):
        self.result = None
        self.rows = None
        self.strip.clear()
        self.bars.setOpts(x=[0.5], height=[0.0])
        if self._mode == "text":
            self.text.setText(self._text_html(self.drawn, None, None))

    def _draw_inputs(self, snap):
        x = np.asarray(snap.probe.x[0])                                  # (T, I)
        T, I = x.shape
        names = input_names(snap)
        mode = "text" if names and names[0] != "x0" else "series"
        if mode != self._mode:
            self._mode = mode
            text = mode == "text"
            self.text.setVisible(text)
            self.strip_plot.setVisible(not text)
            self.strip_plot.setMaximumHeight(0 if text else 16777215)
            self.bars.setVisible(text)
            self.legend.setVisible(not text)
            self.input_plot.setLabel("left", "attribution" if text else "input", **LABEL_STYLE)
            self.input_plot.setLabel("bottom", "timestep" if text else None, **LABEL_STYLE)
            self.input_plot.getAxis("bottom").showLabel(text)
            self.view.ci.layout.setRowStretchFactor(0, 3)
            self.view.ci.layout.setRowStretchFactor(1, 0 if text else 2)
            self.input_y.reset()
        self.input_plot.setXRange(0, T, padding=0)
        if mode == "text":
            for c in self.curves:
                c.setVisible(False)
            return
        n = min(I, len(CURVE_COLORS))
        while len(self.curves) < n:
            c = CURVE_COLORS[len(self.curves)]
            self.curves.append(self.input_plot.plot(pen=pg.mkPen(c, width=1.4),
                                                    name=names[len(self.curves)]))
        for i, c in enumerate(self.curves):
            c.setVisible(i < n)
            if i < n:
                c.setData(np.arange(T) + 0.5, x[:, i])
        self.input_y.fit_data(x[:, :n])

    def _draw_result(self, snap, res):
        T = snap.probe.x.shape[1]
        per_step = np.asarray(res["per_step"], dtype=np.float64)          # (T,)
        pf = res.get("per_feature")
        names = input_names(snap)
        method = res["method"]
        agg = {"gradient": "\u2016g\u2016" if pf is not None and pf.shape[1] > 1 else "g",
               "occlusion": "occl."}.get(method, "\u03a3")
        if pf is not None and 1 < pf.shape[1] <= MAX_FEATURE_ROWS:
            rows = np.vstack([np.asarray(pf, dtype=np.float64).T, per_step[None]])
            row_names = list(names) + [agg]
        else:
            rows = per_step[None]
            row_names = [agg if pf is None or pf.shape[1] > 1 else names[0]]
        key = (method, res["k"], res.get("layer"), res.get("whole"))
        if key != self._level_key:
            self._level_key = key
            self.level.reset()
        finite = rows[np.isfinite(rows)]
        lv = self.level.update(float(np.abs(finite).max()) if finite.size else 0.0)
        img = np.ascontiguousarray(rows, dtype=np.float32)               # (R, T)
        self.rows, self.row_names = img, row_names
        self.strip.setImage(img, levels=(-lv, lv), autoLevels=False)
        if tuple(self.cbar.levels()) != (-lv, lv):    # setLevels redraws the bar's axis
            self.cbar.setLevels((-lv, lv))
        label = f"attribution ({METHOD_NAMES[method]})"
        if label != self._cbar_label:                 # a new label re-lays out the plot
            self._cbar_label = label
            self.cbar.getAxis("bottom").setLabel(label, **LABEL_STYLE)
        R = len(row_names)
        set_ticks(self.strip_plot.getAxis("left"), [[(i + 0.5, n) for i, n in
                                                     enumerate(row_names)]])
        self.strip_plot.setLimits(xMin=0, xMax=T, yMin=0, yMax=R)
        self.strip_plot.setRange(xRange=(0, T), yRange=(0, R), padding=0)
        t = int(res["t"])
        for line in self.t_lines:
            line.setValue(t + 0.5)
        if self._mode == "text":
            self.text.setText(self._text_html(snap, per_step, lv, t))
            u = np.clip(0.5 + 0.5 * np.nan_to_num(per_step) / lv, 0.0, 1.0)
            brushes = [pg.mkBrush(*c) for c in self.cmap.map(u, mode="byte")]
            self.bars.setOpts(x=np.arange(T) + 0.5, height=per_step, width=0.85,
                              brushes=brushes, pen=pg.mkPen("#808080", width=0.5))
            h = per_step[np.isfinite(per_step)]          # the range keeps 0 (the bars' base)
            self.input_y.fit(float(h.min(initial=0.0)), float(h.max(initial=0.0)))
        self.info.setText(self._describe(snap, res))

    # ------------------------------------------------------------ text
    def _text_html(self, snap, per_step, lv, t=None):
        if snap is None:
            return ""
        labels = snap.probe.labels[0] if snap.probe.labels else input_names(snap)
        T = snap.probe.x.shape[1]
        rgba = None
        if per_step is not None and lv:
            u = np.clip(0.5 + 0.5 * per_step / lv, 0.0, 1.0)
            rgba = self.cmap.map(u, mode="byte")                         # (T, 4)
        out = []
        for i in range(min(T, len(labels))):
            ch = html.escape(str(labels[i])) or "&nbsp;"
            ch = ch.replace(" ", "&nbsp;")
            style = "text-decoration:none;"
            if rgba is not None:
                r, g, b = (int(v) for v in rgba[i][:3])
                fg = "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 110 else "#000000"
                if t is not None and i > t:
                    fg = "#9a9a9a"
                style += f"background-color:#{r:02x}{g:02x}{b:02x}; color:{fg};"
            else:
                style += "color:#000000;"
            if t is not None and i == t:
                style += "font-weight:bold; text-decoration:underline;"
            out.append(f"<a href='t:{i}' style='{style}'>{ch}</a>")
        return ("<span style='font-family:monospace; font-size:12pt'>"
                + "".join(out) + "</span>")

    @Slot(str)
    def _on_text_link_hovered(self, link):
        if not link or self.result is None:
            return
        i = int(link.split(":")[1])
        self._show_entry(len(self.row_names) - 1, i)

    @Slot(str)
    def _on_text_link_activated(self, link):
        self.t_spin.setValue(int(link.split(":")[1]))

    # ------------------------------------------------------------ hover, click
    def _on_strip_hover(self, row, col):
        if row is not None and self.rows is not None:
            self._show_entry(row, col)

    def _on_strip_click(self, row, col):
        self.t_spin.setValue(int(col))

    def _show_entry(self, row, col):
        snap = self.drawn
        if snap is None or self.rows is None or col >= self.rows.shape[1]:
            return
        labels = snap.probe.labels[0] if snap.probe.labels else ()
        lab = f" '{labels[col]}'" if col < len(labels) else ""
        self.info.setText(f"\u03c4 = {col}{lab}  {self.row_names[row]}: "
                          f"{fmt(self.rows[row, col])}     (click: attribute at t = {col})")

    def _describe(self, snap, res):
        method, t, k = res["method"], int(res["t"]), res["k"]
        names = output_names(snap)
        if k == "loss":
            what = "the sequence's loss" if res.get("whole") else f"the loss at t = {t}"
        elif res.get("layer") == "hidden":
            what = f"h[t = {t}, unit {k}]"
        elif snap.loss_name == "xent":
            what = f"logit of '{names[k]}' (class {k}) at t = {t}"
        else:
            what = f"y[t = {t}, {k}]"
        text = f"{METHOD_NAMES[method]} of {what} = {fmt(res['value'])}"
        if method == "integrated_gradients" and np.isfinite(res.get("delta", np.nan)):
            diff = res.get("f_difference", np.nan)
            rel = abs(res["delta"]) / abs(diff) if diff else np.inf
            text += (f";  {res['steps']} steps, f(x) \u2212 f(0) = {fmt(diff)}, "
                     f"delta = {fmt(res['delta'])} ({100 * rel:.2g}%)")
        text += f";  step {res['step']}, {1e3 * res['seconds']:.0f} ms"
        if res.get("options") != self.analysis_options():
            text += "  \u2014 updating for the new choice\u2026"
        return text

    # ------------------------------------------------------------ export
    def export_item(self):
        """None: the picture is the whole widget, with the line that says what was
        attributed (method, output, time step, value) and, for text, the coloured text."""
        return None

    def data_arrays(self):
        if self.result is None:
            return {}
        out = {"per_step": np.asarray(self.result["per_step"])}
        if self.result.get("per_feature") is not None:
            out["per_feature"] = np.asarray(self.result["per_feature"])
        return out
