"""Fixed points of the dynamics h -> F(h, x*) (Sussillo & Barak 2013; issue 8).

q(h) = 1/2 |F(h, x*) - h|^2 is minimized (engine.fixed_points) from states sampled on the
probe trajectories, under a constant input x* (zero or the probe inputs' mean). The
table lists the points found (kind, q, spectral radius of the Jacobian, unstable
directions); slow points (q above the tolerance) are listed separately; the eigenvalues
of the selected point are drawn against the unit circle. The points are overlaid on the
state-space panel: stable points filled circles, saddles crosses and unstable points stars,
each unstable direction a short line through its point.

The search runs in a thread of its own on a numpy copy of the snapshot's model rather than
as a worker analysis: it needs no numba kernel (dynamics and Jacobians are numpy), takes
seconds at H = 64 that would otherwise stall training, and so gets real progress and Cancel.
"""

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QSizePolicy,
                               QSpinBox, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QTabWidget)

from rnnviewer.training.analyses_dynamics import KINDS, kind_counts, numpy_model, \
    run_fixed_points
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._hidden import message_label
from rnnviewer.ui.panels._job import ProgressJobPanel
from rnnviewer.ui.panels._wg_common import single_thread_blas
from rnnviewer.ui.style import style_plot

# How each kind is drawn, here and on the state-space panel: (symbol, colour, size).
STYLES = {"stable": ("o", "#1f4e9c", 13), "saddle": ("x", "#d62728", 15),
          "unstable": ("star", "#9467bd", 16), "slow": ("d", "#8c8c8c", 8),
          "selected": ("o", "#ffa00080", 30)}      # a halo drawn under the selected point
OVERLAY = "fixed points: "             # prefix of the overlay names on the state space
TOLERANCES = (1e-16, 1e-14, 1e-12, 1e-10, 1e-8, 1e-6)
SEGMENT = 0.15                         # half-length of a direction line, x the states' spread
COLUMNS = ("#", "kind", "q", "|\u03bb| max", "unstable", "hits")


def legend_html():
    """The overlay's marks, as coloured text for the panel's tool bar."""
    marks = (("stable", "●"), ("saddle", "✖"), ("unstable", "★"),
             ("slow", "◆"))
    return "&nbsp;&nbsp;".join(f'<span style="color:{STYLES[k][1]}">{m}</span>&nbsp;{k}'
                               for k, m in marks)


def _table(tip):
    t = QTableWidget(0, len(COLUMNS))
    t.setHorizontalHeaderLabels(COLUMNS)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(False)
    t.setToolTip(tip)
    return t


@register_panel
class FixedPointsPanel(ProgressJobPanel):
    run_label = "Find"
    job_title = "fixed-point search"
    start_hint = "search for fixed points"
    title = "Fixed points"
    object_name = "fixed_points"
    tooltip = ("Fixed and slow points of the hidden-state dynamics under a constant input, "
               "with the eigenvalues of the Jacobian there; drawn on the state-space panel.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    # ------------------------------------------------------------ widgets
    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("x*"))
        self.x_box = QComboBox()
        self.x_box.addItem("zero input", "zero")
        self.x_box.addItem("mean input", "mean")
        self.x_box.setToolTip("The constant input x* under which the dynamics h -> F(h, x*) "
                              "are searched: zero, or the mean of the probe inputs")
        self.starts_spin = QSpinBox()
        self.starts_spin.setRange(8, 4096)
        self.starts_spin.setValue(256)
        self.starts_spin.setSingleStep(64)
        self.starts_spin.setToolTip("Initial states, sampled from the probe trajectories; "
                                    "each is optimized to the nearest fixed or slow point")
        self.tol_box = QComboBox()
        for tol in TOLERANCES:
            self.tol_box.addItem(f"{tol:g}", tol)
        self.tol_box.setCurrentIndex(TOLERANCES.index(1e-12))
        self.tol_box.setToolTip("A point with q = \u00bd|F(h) - h|\u00b2 at most this is a "
                                "fixed point; up to 1e-4 it is a slow point")
        for w in (self.x_box, QLabel("starts"), self.starts_spin, QLabel("q \u2264"),
                  self.tol_box):
            bar.addWidget(w)
        self.overlay_box = QCheckBox("show on state space")
        self.overlay_box.setChecked(True)
        self.overlay_box.setToolTip("Draw the points and their unstable directions on the "
                                    "state-space panel")
        self.overlay_box.toggled.connect(self._on_overlay_box_toggled)
        bar.addWidget(self.overlay_box)
        self.legend = QLabel(legend_html())
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setToolTip("How the points are marked on the state-space panel; the "
                               "short lines through saddles and unstable points are their "
                               "unstable directions, the halo marks the selected point")
        bar.addWidget(self.legend)
        bar.addStretch(1)
        self.layout_.addLayout(bar)

        bar = QHBoxLayout()
        self.run_button = QPushButton("Find")
        self.run_button.setToolTip("Search for fixed points now, on the newest model")
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the search (the points converged so far are shown)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setMaximumWidth(220)
        self.auto_box = QCheckBox("rerun every")
        self.auto_box.setToolTip("Search again automatically while training, every N steps")
        self.auto_spin = QSpinBox()
        self.auto_spin.setRange(1, 1_000_000)
        self.auto_spin.setValue(500)
        self.auto_spin.setSingleStep(100)
        self.auto_spin.setSuffix(" steps")
        self.auto_spin.setToolTip("Training steps between automatic searches")
        for w in (self.run_button, self.cancel_button, self.progress, self.auto_box,
                  self.auto_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        self.layout_.addLayout(bar)
        self.info = QLabel("")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setToolTip("How many points of each kind, from how many starts, at which "
                             "training step")
        self.layout_.addWidget(self.info)

        self.stack = QStackedWidget()
        self.message = message_label("waiting for the first snapshot\u2026")
        self.stack.addWidget(self.message)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.tabs = QTabWidget()
        self.table = _table("Fixed points (q at most the tolerance), stable first. |\u03bb| "
                            "max: spectral radius of the Jacobian dF/dh; unstable: eigenvalues "
                            "outside the unit circle; hits: starts that ended there. Select a "
                            "row to see its eigenvalues.")
        self.slow_table = _table("Slow points: q above the tolerance but at most 1e-4, "
                                 "thinned to one per 0.01 of distance. Select a row to see "
                                 "its eigenvalues.")
        self.tabs.addTab(self.table, "Fixed points")
        self.tabs.addTab(self.slow_table, "Slow points")
        for t in (self.table, self.slow_table):
            t.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        split.addWidget(self.tabs)
        self.view = pg.GraphicsLayoutWidget()
        self.eig_plot = self.view.addPlot()
        style_plot(self.eig_plot, left="Im \u03bb", bottom="Re \u03bb")
        self.eig_plot.setAspectLocked(True)
        theta = np.linspace(0, 2 * np.pi, 241)
        self.circle = self.eig_plot.plot(np.cos(theta), np.sin(theta),
                                         pen=pg.mkPen("#606060", width=1.2,
                                                      style=Qt.PenStyle.DashLine))
        self.eig_in = pg.ScatterPlotItem(size=7, pen=None,
                                         brush=pg.mkBrush(STYLES["stable"][1] + "b0"))
        self.eig_out = pg.ScatterPlotItem(size=9, pen=None,
                                          brush=pg.mkBrush(STYLES["saddle"][1] + "d0"))
        for item in (self.eig_in, self.eig_out):
            self.eig_plot.addItem(item)
        self.eig_plot.setTitle("eigenvalues of dF/dh", size="9pt")
        split.addWidget(self.view)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([1000, 1000])
        self.stack.addWidget(split)
        self.layout_.addWidget(self.stack, 1)

        self.result = None               # dict from run_fixed_points + step, seconds
        self._failure = None
        self._ran_run_id = None
        self._started = 0.0
        self._rows = {"fixed": [], "slow": []}   # table row -> index into the result arrays
        self._selected = None            # ("fixed" | "slow", index) shown in the eigen plot
        self._overlay_on = None          # the state-space panel holding our overlay

    def sizeHint(self):
        return QSize(620, 420)

    # ------------------------------------------------------------ controls
    def options(self):
        """The search options chosen in the panel (run_fixed_points' keys)."""
        return {"x_star": self.x_box.currentData(), "starts": int(self.starts_spin.value()),
                "tol": float(self.tol_box.currentData())}

    @Slot()
    def _on_run_button_clicked(self):
        self.run()

    @Slot()
    def _on_cancel_button_clicked(self):
        self.cancel_job()

    @Slot(bool)
    def _on_overlay_box_toggled(self, on):
        self.update_overlay()

    @Slot(int)
    def _on_tabs_current_changed(self, _):
        self._on_table_selection_changed()

    @Slot()
    def _on_table_selection_changed(self):
        group = "fixed" if self.tabs.currentWidget() is self.table else "slow"
        table = self.table if group == "fixed" else self.slow_table
        rows = table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self._rows[group]):
            self._selected = (group, self._rows[group][rows[0].row()])
        else:
            self._selected = None
        self._draw_eigenvalues()
        self.update_overlay()

    def on_reset(self):
        self.reset_job()               # its result would describe the old model
        self._selected = None
        for t in (self.table, self.slow_table):
            t.setRowCount(0)
        self._clear_overlay()
        self._show_message("waiting for the first snapshot\u2026")

    # ------------------------------------------------------------ running
    def run(self):
        """Start a search on the newest snapshot's model (cancels a running one)."""
        snap = self.snapshot
        if snap is None:
            return None
        single_thread_blas()
        opts = self.options()
        cfg, params, probe, step = dict(snap.model_config), dict(snap.params), snap.probe, \
            snap.step

        def work(progress, should_stop):
            model = numpy_model(cfg, params)
            t0 = time.perf_counter()
            out = run_fixed_points(model, probe, opts, should_stop=should_stop,
                                   progress=lambda f, n: progress(f, f"{n} converged"))
            out.update(step=step, seconds=time.perf_counter() - t0, options=opts,
                       cell=cfg["cell"], n_hidden=int(cfg["n_hidden"]))
            return out

        self.launch(work, "rnnviewer-fixed-points", snap.run_id)
        if self.result is None:
            self._show_message("searching for fixed points\u2026")
        return self.job

    def job_succeeded(self, result):
        self.result = result
        self._selected = None
        self._draw_result()
        self.update_overlay()

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        if self.result is not None and self._overlay_on is None and self.overlay_box.isChecked():
            self.update_overlay()            # the state-space panel may have appeared since
        return self.follow_training(snap)

    def _show_message(self, text):
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    def _draw_result(self):
        r = self.result
        self.stack.setCurrentIndex(1)
        self._rows["fixed"] = self._fill(self.table, r, "")
        self._rows["slow"] = self._fill(self.slow_table, r, "slow_")
        n, m = len(r["q"]), len(r["slow_q"])
        self.tabs.setTabText(0, f"Fixed points ({n})")
        self.tabs.setTabText(1, f"Slow points ({m})")
        counts = kind_counts(r["kind"])
        kinds = ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k]) or "none"
        x = "zero input" if r["x_star_choice"] == "zero" else "mean input"
        stopped = "  (cancelled: partial)" if r["stopped"] else ""
        self.info.setStyleSheet("")
        self.info.setText(f"{n} fixed point{'s' if n != 1 else ''}: {kinds};  {m} slow;  "
                          f"{r['n_starts']} starts, {x}, model at step {r['step']:,}, "
                          f"{r['seconds']:.1f} s{stopped}")
        table = self.table if n or not m else self.slow_table
        self.tabs.setCurrentWidget(table)
        if table.rowCount():
            table.selectRow(0)
        else:
            self._draw_eigenvalues()

    def _fill(self, table, r, prefix):
        """Fill `table` with the points of group `prefix`; returns row -> array index."""
        kinds = np.asarray(r[prefix + "kind"])
        q = np.asarray(r[prefix + "q"])
        order = sorted(range(len(q)), key=lambda i: (KINDS.index(kinds[i]), q[i]))
        table.blockSignals(True)
        table.clearSelection()
        table.setRowCount(len(order))
        for row, i in enumerate(order):
            kind = str(kinds[i])
            cells = (str(i), kind, f"{q[i]:.1e}", f"{r[prefix + 'spectral_radius'][i]:.5f}",
                     str(int(r[prefix + "n_unstable"][i])), str(int(r[prefix + "count"][i])))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col != 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight |
                                          Qt.AlignmentFlag.AlignVCenter)
                else:
                    item.setForeground(QBrush(QColor(STYLES[kind][1])))
                table.setItem(row, col, item)
        table.blockSignals(False)
        return order

    def _draw_eigenvalues(self):
        r = self.result
        if r is None or self._selected is None:
            self.eig_in.setData([], [])
            self.eig_out.setData([], [])
            self.eig_plot.setTitle("eigenvalues (select a point)", size="9pt")
            self.eig_plot.setRange(xRange=(-1.2, 1.2), yRange=(-1.2, 1.2), padding=0)
            return
        group, i = self._selected
        prefix = "slow_" if group == "slow" else ""
        ev = np.asarray(r[prefix + "eigenvalues"][i])
        out = np.abs(ev) > 1.0
        self.eig_in.setData(ev.real[~out], ev.imag[~out])
        self.eig_out.setData(ev.real[out], ev.imag[out])
        kind = r[prefix + "kind"][i]
        what = "slow point" if group == "slow" else str(kind)
        self.eig_plot.setTitle(f"eigenvalues of dF/dh at {what} #{i}", size="9pt")
        lim = max(1.15, float(np.abs(ev).max()) * 1.1 if ev.size else 1.15)
        self.eig_plot.setRange(xRange=(-lim, lim), yRange=(-lim, lim), padding=0)

    # ------------------------------------------------------------ overlay
    def state_space_panel(self):
        """The state-space panel of this window (through the main window's `panels`), or
        of the same unit selection; None if there is none."""
        w = self.parentWidget()
        while w is not None:
            panels = getattr(w, "panels", None)
            if isinstance(panels, dict) and "state_space" in panels:
                return panels["state_space"]
            w = w.parentWidget()
        for p in list(Panel._live):
            if p is not self and p.object_name == "state_space" and \
                    p.selection is self.selection:
                return p
        return None

    def overlay_layers(self):
        """name -> dict(points (N, S), segments (M, 2, S) or None, symbol, color, size):
        what goes on the state-space panel for the current result."""
        r = self.result
        if r is None:
            return {}
        layers = {}
        pts, kinds = np.asarray(r["points"]), np.asarray(r["kind"])
        dirs, owner = np.asarray(r["directions"]), np.asarray(r["direction_owner"])
        half = SEGMENT * max(float(r["scale"]), 1e-6)
        for kind in KINDS:
            sel = kinds == kind
            if not sel.any():
                continue
            seg = None
            mine = sel[owner] if len(owner) else np.zeros(0, bool)
            if mine.any():
                p, d = pts[owner[mine]], dirs[mine]                    # (M, S)
                seg = np.stack([p - half * d, p + half * d], axis=1)   # (M, 2, S)
            layers[kind] = {"points": pts[sel], "segments": seg}
        if len(r["slow_q"]):
            layers["slow"] = {"points": np.asarray(r["slow_points"]), "segments": None}
        if self._selected is not None:
            group, i = self._selected
            src = r["slow_points"] if group == "slow" else r["points"]
            layers["selected"] = {"points": np.asarray(src)[i:i + 1], "segments": None}
        for name, layer in layers.items():
            layer["symbol"], layer["color"], layer["size"] = STYLES[name]
        return layers

    def update_overlay(self):
        """Put the current result on the state-space panel (or take it off)."""
        ss = self.state_space_panel()
        if self._overlay_on is not None and self._overlay_on is not ss:
            self._clear_overlay()
        if ss is None:
            return
        layers = self.overlay_layers() if self.overlay_box.isChecked() else {}
        for name in ("selected", "slow") + KINDS:
            if name not in layers:
                ss.clear_overlay(OVERLAY + name)
        for name in ("selected", "slow") + KINDS:           # later ones are drawn on top
            if name in layers:
                layer = layers[name]
                tip = f"{name} fixed point" if name in KINDS else \
                    ("slow point" if name == "slow" else "the point selected in Fixed points")
                n = len(layer["points"])
                label = None if name == "selected" else (
                    f"slow point ({n})" if name == "slow" else f"{name} ({n})"
                    + (", unstable directions" if layer["segments"] is not None else ""))
                ss.set_overlay_points(layer["points"], name=OVERLAY + name,
                                      segments=layer["segments"], symbol=layer["symbol"],
                                      size=layer["size"], color=layer["color"], tooltip=tip,
                                      label=label)
        self._overlay_on = ss if layers else None

    def _clear_overlay(self):
        ss = self._overlay_on
        self._overlay_on = None
        if ss is None:
            return
        try:
            for name in ("selected", "slow") + KINDS:
                ss.clear_overlay(OVERLAY + name)
        except RuntimeError:          # the state-space panel is already gone
            pass

    # ------------------------------------------------------------ export
    def data_arrays(self):
        r = self.result
        if r is None:
            return {}
        code = {k: i for i, k in enumerate(KINDS)}
        out = {}
        for prefix in ("", "slow_"):
            kinds = np.asarray(r[prefix + "kind"])
            ev = np.asarray(r[prefix + "eigenvalues"])
            out.update({prefix + "points": np.asarray(r[prefix + "points"]),
                        prefix + "q": np.asarray(r[prefix + "q"]),
                        prefix + "kind": np.array([code[k] for k in kinds], np.int64),
                        prefix + "spectral_radius": np.asarray(r[prefix + "spectral_radius"]),
                        prefix + "n_unstable": np.asarray(r[prefix + "n_unstable"]),
                        prefix + "eigenvalues_real": ev.real, prefix + "eigenvalues_imag":
                        ev.imag})
        out["x_star"] = np.asarray(r["x_star"])
        return out
