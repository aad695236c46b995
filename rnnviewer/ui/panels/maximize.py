"""Activation maximization: the input sequence that drives one unit highest (issue 8).

For the unit selected anywhere in the app (or an output unit), gradient ascent on the
input (engine.maximize_activation) finds a sequence of length T that maximizes the unit
at step t: real inputs with an L2 penalty inside bounds, one-hot inputs (text, copy)
through a softmax relaxation with annealed temperature, several restarts, best kept.
It runs in a thread of its own on a numpy copy of the snapshot's model, so training
never waits, with progress and Cancel; selecting another unit reruns it.

Shown: the optimized input (curves for up to 4 channels, else a heatmap; for one-hot
inputs the most likely symbols as text and their per-step distribution as a heatmap),
the unit's activation along it, and the objective per iteration.
"""

import html
import time
import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSizePolicy, QSpinBox,
                               QStackedWidget)

from rnnviewer.training.analyses_dynamics import (InputEncoding, MAX_LENGTH, default_length,
                                                  input_encoding, numpy_model, run_maximize)
from rnnviewer.ui.panels import register_panel
from rnnviewer.ui.panels._hidden import message_label
from rnnviewer.ui.panels._job import ProgressJobPanel
from rnnviewer.ui.panels._wg_common import (DIVERGING, ReportingImage, color_bar, colormap,
                                            fmt, single_thread_blas)
from rnnviewer.ui.panels.saliency import TimeSpin
from rnnviewer.ui.style import COLORS, style_plot

MAX_CURVES = 4                 # real inputs with more channels are drawn as a heatmap
LIKELY = 0.05                  # symbols shown by default: probability >= this at some step
CURVE_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
VISIBLE = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d"}
ENCODINGS = (("onehot", "one-hot (softmax relaxation)"), ("real", "real (L2 + bounds)"))


def weak_callback(method):
    """A plain function calling the bound `method` while its object lives. (A bound
    method kept by a graphics item is a reference cycle through the panel; PySide6 then
    crashed collecting the panel after the event loop had run.)"""
    ref = weakref.WeakMethod(method)

    def call(*args):
        m = ref()
        return None if m is None else m(*args)
    return call


def _visible(c):
    return VISIBLE.get(c, c)


def channel_names(encoding, n_in):
    """Display names of the input channels (the symbols of a one-hot vocabulary)."""
    if encoding.vocab and len(encoding.vocab) == n_in:
        return [_visible(c) for c in encoding.vocab]
    return [f"x{i}" for i in range(n_in)]


def _spin(low, high, value, tip, step=1):
    s = QSpinBox()
    s.setRange(low, high)
    s.setValue(value)
    s.setSingleStep(step)
    s.setToolTip(tip)
    return s


def _dspin(low, high, value, decimals, step, tip):
    s = QDoubleSpinBox()
    s.setRange(low, high)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setValue(value)
    s.setToolTip(tip)
    return s


@register_panel
class MaximizePanel(ProgressJobPanel):
    run_label = "Run"
    job_title = "activation maximization"
    start_hint = "maximize the selected unit"
    title = "Activation maximization"
    object_name = "maximize"
    tooltip = ("The input sequence that drives the selected unit highest at step t, found by "
               "gradient ascent on the input (several random restarts, best kept).")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    # ------------------------------------------------------------ widgets
    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Maximize"))
        self.target_box = QComboBox()
        self.target_box.addItem("hidden unit", "hidden")
        self.target_box.addItem("output unit", "output")
        self.target_box.setToolTip("Maximize a hidden unit h (follows the unit selected in any "
                                   "panel) or an output unit y (the raw readout, a logit for "
                                   "classification tasks)")
        self.target_box.currentIndexChanged.connect(self._on_target_box_changed)
        self.unit_spin = _spin(0, 0, 0, "The unit maximized (a hidden unit follows the app's "
                                        "selection, and choosing one here selects it)")
        self.unit_spin.setPrefix("unit ")
        self.unit_spin.valueChanged.connect(self._on_unit_spin_value_changed)
        self.t_spin = TimeSpin()
        self.t_spin.setValue(-1)
        self.t_spin.setToolTip("The timestep at which the unit is maximized; negative values "
                               "count from the end (-1 = the last step)")
        self.len_spin = _spin(1, MAX_LENGTH, 20, "Length T of the optimized input sequence "
                                                 "(default: the task's sequence length)")
        self.len_spin.valueChanged.connect(self._on_len_spin_value_changed)
        self.restarts_spin = _spin(1, 64, 8, "Random restarts, optimized together; the best "
                                             "is kept")
        self.iter_spin = _spin(10, 5000, 300, "Gradient-ascent iterations", step=50)
        for w in (self.target_box, self.unit_spin, QLabel("at t"), self.t_spin,
                  QLabel("length"), self.len_spin, QLabel("restarts"), self.restarts_spin,
                  QLabel("iterations"), self.iter_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        self.layout_.addLayout(bar)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Input"))
        self.enc_box = QComboBox()
        for key, text in ENCODINGS:
            self.enc_box.addItem(text, key)
        self.enc_box.setToolTip("One-hot inputs (text, copy): ascent on logits z with "
                                "x = softmax(z / temperature), read out as the most likely "
                                "symbols. Real inputs: ascent on x with an L2 penalty, "
                                "clipped to the bounds. Chosen from the task; change it here.")
        self.enc_box.currentIndexChanged.connect(self._on_enc_box_changed)
        bar.addWidget(self.enc_box)
        self.l2_spin = _dspin(0.0, 10.0, 1e-3, 5, 1e-3, "L2 penalty: the objective is "
                              "unit(x) - l2/2 |x|^2")
        self.lo_spin = _dspin(-1e4, 1e4, -1.0, 3, 0.1, "Lower bound of every input value")
        self.hi_spin = _dspin(-1e4, 1e4, 1.0, 3, 0.1, "Upper bound of every input value")
        self.tau0_spin = _dspin(0.001, 100.0, 1.0, 3, 0.1, "Softmax temperature at the start")
        self.tau1_spin = _dspin(0.001, 100.0, 0.05, 3, 0.01, "Softmax temperature at the end "
                                "(annealed geometrically)")
        self.real_widgets = [QLabel("L2"), self.l2_spin, QLabel("bounds"), self.lo_spin,
                             QLabel("to"), self.hi_spin]
        self.all_box = QCheckBox("all symbols")
        self.all_box.setToolTip(f"Show every symbol in the distribution, not only those with "
                                f"probability >= {LIKELY:g} at some step")
        self.all_box.toggled.connect(self._on_all_box_toggled)
        self.onehot_widgets = [QLabel("temperature"), self.tau0_spin, QLabel("\u2192"),
                               self.tau1_spin, self.all_box]
        for w in self.real_widgets + self.onehot_widgets:
            bar.addWidget(w)
        bar.addStretch(1)
        self.layout_.addLayout(bar)

        bar = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Maximize now with these settings, on the newest model")
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running maximization (the best input found so "
                                      "far is shown)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setMaximumWidth(220)
        self.auto_box = QCheckBox("rerun every")
        self.auto_box.setToolTip("Rerun automatically while training, every N steps")
        self.auto_spin = _spin(1, 1_000_000, 200, "Training steps between automatic reruns",
                               step=50)
        self.auto_spin.setSuffix(" steps")
        for w in (self.run_button, self.cancel_button, self.progress, self.auto_box,
                  self.auto_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        self.layout_.addLayout(bar)
        self.info = QLabel("")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setToolTip("The result: unit, timestep, achieved value, and the model step")
        self.layout_.addWidget(self.info)
        self.chars = QLabel("")
        self.chars.setTextFormat(Qt.TextFormat.RichText)
        self.chars.setWordWrap(True)
        self.chars.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.chars.setToolTip("The most likely symbol at every step; the maximized step t is "
                              "highlighted")
        self.chars.setVisible(False)
        self.layout_.addWidget(self.chars)
        self.curve_legend = QLabel("")
        self.curve_legend.setTextFormat(Qt.TextFormat.RichText)
        self.curve_legend.setToolTip("The input channels drawn as curves")
        self.curve_legend.setVisible(False)
        self.layout_.addWidget(self.curve_legend)

        self.stack = QStackedWidget()
        self.message = message_label("waiting for the first snapshot\u2026")
        self.stack.addWidget(self.message)
        self.view = pg.GraphicsLayoutWidget()
        self.stack.addWidget(self.view)
        self.layout_.addWidget(self.stack, 1)
        self.input_plot = self.view.addPlot(row=0, col=0)
        style_plot(self.input_plot, left="input")
        self.image = ReportingImage(on_hover=weak_callback(self._on_image_hover))
        self.input_plot.addItem(self.image)
        self.curves = []
        self._curve_names = None
        self.cbar = color_bar(colormap(DIVERGING), label="input value")
        self.view.addItem(self.cbar, row=0, col=1)
        self.act_plot = self.view.addPlot(row=1, col=0)
        style_plot(self.act_plot, left="activation", bottom="timestep")
        self.act_plot.setXLink(self.input_plot)
        accent = COLORS["accent"]
        self.act_curve = self.act_plot.plot(pen=pg.mkPen(COLORS["train"], width=1.8),
                                            symbol="o", symbolSize=4,
                                            symbolBrush=COLORS["train"], symbolPen=None)
        self.act_marker = pg.ScatterPlotItem(size=11, pen=pg.mkPen("#202020", width=1),
                                             brush=pg.mkBrush(accent))
        self.act_marker.setZValue(5)
        self.act_plot.addItem(self.act_marker)
        dash = pg.mkPen(accent, width=1.5, style=Qt.PenStyle.DashLine)
        self.t_lines = [p.addLine(x=0, pen=dash) for p in (self.input_plot, self.act_plot)]
        self.hist_plot = self.view.addPlot(row=0, col=2, rowspan=2)
        style_plot(self.hist_plot, left="objective", bottom="iteration")
        self.hist_plot.setTitle("ascent (best restart)", size="8.5pt")
        self.hist_curve = self.hist_plot.plot(pen=pg.mkPen(COLORS["norm"], width=1.5))
        lay = self.view.ci.layout
        lay.setColumnStretchFactor(0, 4)
        lay.setColumnStretchFactor(2, 1)
        lay.setRowStretchFactor(0, 3)
        lay.setRowStretchFactor(1, 2)

        self.encoding = InputEncoding("real")
        self._task_key = None            # (run_id, task config) the choices were made for
        self.result = None               # the result drawn (dict from run_maximize + meta)
        self._failure = None             # message of the last failed run
        self._ran_run_id = None          # run_id of the last run started
        self._pending_unit = False       # the selected unit changed while hidden
        self._started = 0.0
        self._output_unit = 0
        self._names = []
        self._rows = np.zeros(0, np.int64)   # heatmap row -> input channel
        self._on_enc_box_changed(0)

    def sizeHint(self):
        return QSize(620, 460)

    # ------------------------------------------------------------ controls
    def _sync_controls(self, snap):
        """Choices that follow the session: encoding, bounds, length, unit ranges."""
        H = snap.n_hidden
        O = int(snap.model_config.get("n_out", 0) or 0)
        key = (snap.run_id, snap.task_name, tuple(sorted(snap.task_config.items())),
               H, O, snap.cell)
        if key == self._task_key:
            return
        self._task_key = key
        I = int(snap.model_config["n_in"])
        self.encoding = input_encoding(snap.task_name, snap.task_config, I, snap.probe.x)
        for w in (self.enc_box, self.lo_spin, self.hi_spin, self.len_spin, self.target_box):
            w.blockSignals(True)
        self.enc_box.setCurrentIndex(0 if self.encoding.kind == "onehot" else 1)
        self.lo_spin.setValue(self.encoding.bounds[0])
        self.hi_spin.setValue(self.encoding.bounds[1])
        self.len_spin.setValue(default_length(snap.probe.x.shape[1]))
        self._set_t_length(self.len_spin.value())
        item = self.target_box.model().item(1)
        item.setEnabled(O > 0)
        if O == 0:
            self.target_box.setCurrentIndex(0)
        for w in (self.enc_box, self.lo_spin, self.hi_spin, self.len_spin, self.target_box):
            w.blockSignals(False)
        self._show_encoding_widgets()
        self._sync_unit_spin(snap)

    def _sync_unit_spin(self, snap=None):
        snap = snap or self.snapshot
        if snap is None:
            return
        hidden = self.target_box.currentData() == "hidden"
        top = snap.n_hidden if hidden else int(snap.model_config.get("n_out", 0) or 0)
        value = self.selection.unit if hidden else self._output_unit
        self.unit_spin.blockSignals(True)
        self.unit_spin.setRange(0, max(0, top - 1))
        self.unit_spin.setValue(min(max(0, value), max(0, top - 1)))
        self.unit_spin.blockSignals(False)

    def _show_encoding_widgets(self):
        onehot = self.enc_box.currentData() == "onehot"
        for w in self.real_widgets:
            w.setVisible(not onehot)
        for w in self.onehot_widgets:
            w.setVisible(onehot)

    @Slot(int)
    def _on_enc_box_changed(self, _):
        self._show_encoding_widgets()

    @Slot(bool)
    def _on_all_box_toggled(self, _):
        if self.result is not None:
            self._draw_result()

    @Slot(int)
    def _on_target_box_changed(self, _):
        self._sync_unit_spin()

    @Slot(int)
    def _on_unit_spin_value_changed(self, value):
        if self.target_box.currentData() == "hidden":
            self.select_unit(value)          # reruns through on_unit_selected
        else:
            self._output_unit = value

    def _set_t_length(self, T):
        v = self.t_spin.value()
        self.t_spin.blockSignals(True)
        self.t_spin.set_length(T)
        self.t_spin.setValue(v if -T <= v < T else -1)
        self.t_spin.lineEdit().setText(self.t_spin.textFromValue(self.t_spin.value()))
        self.t_spin.blockSignals(False)

    @Slot(int)
    def _on_len_spin_value_changed(self, value):
        self._set_t_length(value)

    @Slot()
    def _on_run_button_clicked(self):
        self.run()

    @Slot()
    def _on_cancel_button_clicked(self):
        self.cancel_job()

    def on_unit_selected(self, unit):
        if self.target_box.currentData() != "hidden":
            return
        self._sync_unit_spin()
        if self.snapshot is None:
            return
        if self.is_shown():
            self.run()
        else:
            self._pending_unit = True
            self.drawn = None                # run when shown again

    def on_reset(self):
        self.reset_job()               # its result would describe the old model
        self._task_key = None
        self._show_message("waiting for the first snapshot\u2026")

    # ------------------------------------------------------------ running
    def options(self):
        """The maximization options chosen in the panel (run_maximize's keys)."""
        hidden = self.target_box.currentData() == "hidden"
        o = {"target": "hidden" if hidden else "output",
             "unit": int(self.selection.unit if hidden else self._output_unit),
             "t": int(self.t_spin.value()), "length": int(self.len_spin.value()),
             "restarts": int(self.restarts_spin.value()),
             "steps": int(self.iter_spin.value()),
             "onehot": self.enc_box.currentData() == "onehot"}
        if o["onehot"]:
            o["temperature"] = (self.tau0_spin.value(), self.tau1_spin.value())
        else:
            o["l2"] = self.l2_spin.value()
            o["bounds"] = (self.lo_spin.value(), self.hi_spin.value())
        return o

    def run(self):
        """Start a maximization on the newest snapshot's model (cancels a running one)."""
        snap = self.snapshot
        if snap is None:
            return None
        self._sync_controls(snap)
        single_thread_blas()
        opts = self.options()
        if opts["target"] == "hidden":
            opts["unit"] = min(opts["unit"], snap.n_hidden - 1)
        cfg, params, enc = dict(snap.model_config), dict(snap.params), self.encoding
        step = snap.step

        def work(progress, should_stop):
            model = numpy_model(cfg, params)
            t0 = time.perf_counter()
            out = run_maximize(model, opts, enc, should_stop=should_stop,
                               progress=lambda f, v: progress(f, f"best {v:.4g}"))
            out.update(step=step, seconds=time.perf_counter() - t0, options=opts,
                       names=channel_names(enc if out["onehot"] == (enc.kind == "onehot")
                                           else InputEncoding(enc.kind), model.n_in))
            return out

        self._pending_unit = False
        self.launch(work, "rnnviewer-maximize", snap.run_id)
        what = "h" if opts["target"] == "hidden" else "y"
        if self.result is None:
            self._show_message(f"maximizing {what}[{opts['unit']}]\u2026")
        return self.job

    def job_succeeded(self, result):
        self.result = result
        self._draw_result()

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        self._sync_controls(snap)
        return self.follow_training(snap, pending=self._pending_unit)

    def _show_message(self, text):
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.chars.setVisible(False)
        self.curve_legend.setVisible(False)

    def _draw_result(self):
        r = self.result
        x = np.asarray(r["x"], np.float64)                          # (T, I)
        T, I = x.shape
        onehot = bool(r["onehot"])
        self._names = list(r["names"])
        self.stack.setCurrentWidget(self.view)
        t = int(r["t"])
        for line in self.t_lines:
            line.setValue(t)
        self._rows = np.arange(I)
        if onehot:
            dist = np.asarray(r["distribution"], np.float64)           # (T, I)
            if not self.all_box.isChecked():
                keep = dist.max(0) >= LIKELY
                keep[np.asarray(r["argmax"], np.int64)] = True
                self._rows = np.flatnonzero(keep)
            self._draw_image(dist[:, self._rows].T, (0.0, 1.0), "viridis", "probability")
            self.input_plot.setLabel("left", "symbol")   # short: the plot is low
        elif I <= MAX_CURVES:
            self._draw_curves(x)
        else:
            lim = max(abs(r["options"]["bounds"][0]), abs(r["options"]["bounds"][1]), 1e-6)
            self._draw_image(x.T, (-lim, lim), DIVERGING, "input value")
            self.input_plot.setLabel("left", "input channel")
        self.input_plot.setXRange(-0.5, T - 0.5, padding=0.02)
        act = np.asarray(r["activation"], np.float64)
        self.act_curve.setData(np.arange(T), act)
        self.act_marker.setData([t], [r["value"]])
        what = "h" if r["target"] == "hidden" else "y"
        self.act_plot.setLabel("left", f"{what}[{r['unit']}]")
        hist = np.asarray(r["history"], np.float64)
        self.hist_curve.setData(np.arange(1, len(hist) + 1), hist)
        self._draw_symbols(r, t)
        label = f"{what}[{r['unit']}]"
        vocab = self.encoding.vocab
        if r["target"] == "output" and vocab and r["unit"] < len(vocab) and \
                self.snapshot is not None and self.snapshot.loss_name == "xent":
            label += f" ('{_visible(vocab[r['unit']])}')"      # the class of a text/copy task
        parts = [f"{label} at t = {t}: {fmt(r['value'])}",
                 f"best of {len(r['restart_values'])} restarts",
                 f"{len(hist)} iterations{' (cancelled)' if r['stopped'] else ''}",
                 f"{r['seconds']:.1f} s", f"model at step {r['step']:,}"]
        if r["target"] == "hidden" and r["unit"] != self.selection.unit:
            parts.append(f"selected unit {self.selection.unit}: press Run")
        self.info.setStyleSheet("")
        self.info.setText("   ".join(parts))

    def _draw_image(self, img, levels, cmap_name, label):
        """img (rows, T): rows are channels or symbols, row 0 on top."""
        for c in self.curves:
            c.setVisible(False)
        self.curve_legend.setVisible(False)
        rows, T = img.shape
        cmap = colormap(cmap_name)
        self.image.setColorMap(cmap)
        self.image.setImage(np.ascontiguousarray(img, dtype=np.float32), levels=levels,
                            autoLevels=False)
        self.image.setRect(QRectF(-0.5, -0.5, T, rows))
        self.image.setVisible(True)
        self.cbar.setColorMap(cmap)
        self.cbar.setLevels(levels)
        self.cbar.getAxis("right").setLabel(label)
        self.cbar.setVisible(True)
        self.input_plot.getViewBox().invertY(True)
        self.input_plot.setYRange(-0.5, rows - 0.5, padding=0)
        px = max(self.input_plot.getViewBox().height(), 60.0)
        stride = max(1, int(np.ceil(rows * 12.0 / px)))
        ticks = [(i, self._names[c] if c < len(self._names) else str(c))
                 for i, c in list(enumerate(self._rows))[::stride]]
        self.input_plot.getAxis("left").setTicks([ticks, []])

    def _draw_curves(self, x):
        T, I = x.shape
        self.image.setVisible(False)
        self.cbar.setVisible(False)
        self.input_plot.getViewBox().invertY(False)
        self.input_plot.getAxis("left").setTicks(None)
        self.input_plot.setLabel("left", "input")
        names = [self._names[i] if i < len(self._names) else f"x{i}" for i in range(I)]
        if names != self._curve_names:
            for c in self.curves:
                self.input_plot.removeItem(c)
            self.curves = []
            for i, name in enumerate(names):
                col = CURVE_COLORS[i % len(CURVE_COLORS)]
                self.curves.append(self.input_plot.plot(
                    name=name, pen=pg.mkPen(col, width=1.6), symbol="o", symbolSize=4,
                    symbolBrush=col, symbolPen=None))
            self._curve_names = names
            self.curve_legend.setText("input channels:&nbsp;&nbsp;" + "&nbsp;&nbsp;".join(
                f'<span style="color:{CURVE_COLORS[i % len(CURVE_COLORS)]}">━●━'
                f'</span>&nbsp;{html.escape(n)}' for i, n in enumerate(names)))
        self.curve_legend.setVisible(True)
        for i, c in enumerate(self.curves):
            c.setVisible(True)
            c.setData(np.arange(T), x[:, i])
        lo, hi = self.result["options"]["bounds"]
        pad = 0.08 * (hi - lo)
        self.input_plot.setYRange(lo - pad, hi + pad, padding=0)

    def _draw_symbols(self, r, t):
        labels = [str(s) for s in r["labels"]]
        if not labels:
            self.chars.setVisible(False)
            return
        spans = []
        for i, s in enumerate(labels):
            c = html.escape(_visible(s))
            if i == t:
                spans.append(f'<span style="background:{COLORS["accent"]};color:white;'
                             f'font-weight:bold">{c}</span>')
            else:
                spans.append(c)
        self.chars.setText('<span style="font-family:monospace;font-size:11pt">most likely '
                           'input: </span><span style="font-family:monospace;font-size:12pt">'
                           + "".join(spans) + "</span>")
        self.chars.setVisible(True)

    def _on_image_hover(self, row, col):
        r = self.result
        if r is None or row is None:
            return
        ch = int(self._rows[row]) if row < len(self._rows) else row
        name = self._names[ch] if ch < len(self._names) else str(ch)
        if r["onehot"]:
            p = float(np.asarray(r["distribution"])[col, ch])
            self.image.setToolTip(f"t = {col}: p('{name}') = {p:.3f}")
        else:
            v = float(np.asarray(r["x"])[col, ch])
            self.image.setToolTip(f"t = {col}: {name} = {fmt(v)}")

    # ------------------------------------------------------------ export
    def data_arrays(self):
        r = self.result
        if r is None:
            return {}
        out = {"x": np.asarray(r["x"]), "activation": np.asarray(r["activation"]),
               "history": np.asarray(r["history"]),
               "restart_values": np.asarray(r["restart_values"])}
        if r["onehot"]:
            out["distribution"] = np.asarray(r["distribution"])
        return out
