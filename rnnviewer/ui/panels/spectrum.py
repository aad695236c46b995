"""Spectrum of the recurrent matrix: eigenvalues of W_hh (for gated cells the recurrent
block of one gate) in the complex plane against the unit circle, and the spectral radius
and largest singular value tracked over training.

The eigen-decomposition runs in the GUI thread only when the snapshot changed and at most
every `Throttle` interval (a multiple of its measured cost), so it never takes more than a
small share of the frame budget at H=128 on a loaded machine. Between two computations the
picture cannot change: redraw() then draws nothing and says so (returns False).
"""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from rnnviewer.engine.analysis import DEFAULT_GATE
from rnnviewer.engine.analysis import spectrum as engine_spectrum
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import Rule, TextLine, ViewRange, set_text
from rnnviewer.ui.panels._wg_common import (SteadyLevel, Throttle, fmt, gate_blocks,
                                            off_screen_throttle, single_thread_blas)
from rnnviewer.ui.style import COLORS, PENS, style_plot

CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 361))


def spectrum(W):
    """(eigenvalues (H,) complex, spectral radius, largest singular value) of a square W."""
    single_thread_blas()
    s = engine_spectrum(np.asarray(W))
    return s.eigenvalues, s.spectral_radius, s.max_singular_value


PLANE_SHARE = (0.3, 0.5)    # the eigenvalue plane's share of the width: least, most
OFF_SCREEN_EVERY = 2.0      # seconds between spectra of one block while off screen
OFF_SCREEN_RAMP = (0.25, 50.0)  # ... from 0.25 s, + 1 s per 50 s of the run (Throttle)
MAX_TRACK = 4000            # points of the rho / sigma curves kept; older ones thinned out


class GateTrack:
    """Spectral radius and largest singular value of one block per training step."""

    def __init__(self):
        self.steps, self.rho, self.sigma = [], [], []
        self.first = None           # (step, eigenvalues) of the first computation in this run
        self.last = None            # (step, eigenvalues) of the newest computation

    def add(self, step, eig, rho, sigma):
        if self.first is None:
            self.first = (step, eig)
        self.last = (step, eig)
        if self.steps and step <= self.steps[-1]:
            self.steps[-1], self.rho[-1], self.sigma[-1] = step, rho, sigma
        else:
            self.steps.append(step)
            self.rho.append(rho)
            self.sigma.append(sigma)
            if len(self.steps) > MAX_TRACK:     # a long run: keep every other one
                self.steps, self.rho, self.sigma = \
                    self.steps[::2], self.rho[::2], self.sigma[::2]


@register_panel
class SpectrumPanel(Panel):
    title = "Spectrum of W_hh"
    object_name = "spectrum"
    tooltip = ("Eigenvalues of the recurrent weights against the unit circle, and the "
               "spectral radius and largest singular value over training.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    tab_with = "weights"

    def __init__(self, *args, **kwargs):
        # The curves go on while the panel is off screen (a tab behind another, not built
        # yet), at most 1/100 of the GUI thread: one gate block every 0.25 s at first, then
        # less often as the run ages, up to OFF_SCREEN_EVERY s (OFF_SCREEN_RAMP), so that
        # it shows the whole run when it comes to the front. Set first: an eager panel
        # builds inside Panel.__init__.
        self.tracks = {}                # gate label -> GateTrack (kept without widgets)
        self.off_screen = off_screen_throttle(OFF_SCREEN_EVERY, OFF_SCREEN_RAMP)
        self._off_rr = 0                # round robin over the gate blocks off screen
        super().__init__(*args, **kwargs)

    def build(self):
        bar = QHBoxLayout()
        self.gate_label = QLabel("Gate")
        self.gate_box = QComboBox()
        self.gate_box.setToolTip("For GRU and LSTM: the gate whose recurrent block of W_hh "
                                 "is shown")
        self.gate_box.currentIndexChanged.connect(self._on_gate_box_changed)
        bar.addWidget(self.gate_label)
        bar.addWidget(self.gate_box)
        self.info = TextLine("", "Spectral radius (largest |eigenvalue|) and largest singular "
                                 "value of the block shown")
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        with batched_layout(self.view):              # one layout pass, not one per plot
            self.plane = self.view.addPlot(row=0, col=0)
            style_plot(self.plane, left="imaginary part", bottom="real part")
            self.plane.setAspectLocked(True)
            self.plane.addLegend(offset=(5, 5), labelTextSize="8pt")
            self.plane.plot(CIRCLE.real, CIRCLE.imag, pen=pg.mkPen("#808080", width=1,
                                                                      style=Qt.PenStyle.DashLine))
            self.first_pts = pg.ScatterPlotItem(size=6, pen=pg.mkPen("#a0a0a0"), brush=None,
                                                name="first")
            self.now_pts = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(COLORS["train"]),
                                              name="now", hoverable=True,
                                              tip=self._point_tip)
            self.top_pts = pg.ScatterPlotItem(size=11, pen=pg.mkPen(COLORS["val"], width=1.6),
                                              brush=None, symbol="o", name="largest |\u03bb|")
            for item in (self.first_pts, self.now_pts, self.top_pts):
                self.plane.addItem(item)
            self.curves = self.view.addPlot(row=0, col=1)
            style_plot(self.curves, left="value", bottom="step")
            self.curves.addLegend(offset=(-5, -5), labelTextSize="8pt")
            self.curves.addItem(Rule(1.0, angle=0, pen=pg.mkPen("#808080", width=1,
                                                               style=Qt.PenStyle.DashLine)))
            self.rho_curve = self.curves.plot(pen=PENS["train"], name="spectral radius \u03c1")
            self.sigma_curve = self.curves.plot(pen=PENS["accent"], name="largest singular value")
            for c in (self.rho_curve, self.sigma_curve):
                c.setDownsampling(auto=True, method="peak")
                c.setClipToView(True)
            # ranges that move in steps, not with every computation (cached axes, _perf.py)
            self.curve_x = ViewRange(self.curves.getViewBox(), "x", pad=(0.02, 0.1), shrink=0.0,
                                     round_hi=True)
            self.curve_y = ViewRange(self.curves.getViewBox(), "y", pad=(0.08, 0.08))
            self._plane_share = None
            self._fit_columns()
        self.message = pg.TextItem("waiting for the first snapshot\u2026", color="#606060",
                                   anchor=(0.5, 0.5))
        self.plane.addItem(self.message)
        self.throttle = Throttle(min_interval=0.1, ratio=10.0)
        self.radius = SteadyLevel(decay=0.995)
        self._gates = None
        self._rr = 0                    # round robin over the gates not shown
        self._computed = None           # the snapshot last computed from
        self._first_drawn = None        # the GateTrack.first shown by first_pts
        self.plane.setRange(xRange=(-1.15, 1.15), yRange=(-1.15, 1.15), padding=0)

    # ------------------------------------------------------------ data
    def _blocks(self, snap, which="params"):
        return dict(gate_blocks("W_hh", getattr(snap, which)["W_hh"], snap.gate_names))

    def _sync_gates(self, snap):
        labels = list(self._blocks(snap))
        if labels == self._gates:
            return
        self._gates = labels
        self.gate_box.blockSignals(True)
        self.gate_box.clear()
        for lab in labels:
            g = lab[5:-1] if "[" in lab else ""
            self.gate_box.addItem(f"{g} (W_h{g})" if g else "W_hh", lab)
        want = DEFAULT_GATE.get(snap.cell)
        idx = self.gate_box.findData(f"W_hh[{want}]") if want else 0
        self.gate_box.setCurrentIndex(max(idx, 0))
        self.gate_box.blockSignals(False)
        gated = len(labels) > 1
        self.gate_label.setVisible(gated)
        self.gate_box.setVisible(gated)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.built:
            self._fit_columns()

    def _fit_columns(self):
        """The eigenvalue plane (aspect locked) about as wide as it is high, the curves the
        rest: in a wide, low dock an even split left most of the plane empty."""
        w, h = max(self.view.width(), 1), max(self.view.height(), 1)
        share = min(max(1.15 * h / w, PLANE_SHARE[0]), PLANE_SHARE[1])
        share = round(share, 2)
        if share != self._plane_share:
            self._plane_share = share
            lay = self.view.ci.layout
            lay.setColumnStretchFactor(0, int(100 * share))
            lay.setColumnStretchFactor(1, int(100 * (1 - share)))

    def current_gate(self):
        return self.gate_box.currentData()

    def _compute(self, snap):
        """Eigenvalues of the shown block, plus one other gate (round robin) for its curve."""
        blocks = self._blocks(snap)
        shown = self.current_gate()
        todo = [shown]
        others = [g for g in blocks if g != shown]
        if others:
            self._rr = (self._rr + 1) % len(others)
            todo.append(others[self._rr])
        for lab in todo:
            eig, rho, sigma = spectrum(blocks[lab])
            self.tracks.setdefault(lab, GateTrack()).add(snap.step, eig, rho, sigma)

    def on_new_run(self):
        self.tracks.clear()
        self.off_screen.reset()

    def update_snapshot(self, snap):
        super().update_snapshot(snap)
        if not (self.built and self.is_shown()) and self.off_screen.due():
            self.off_screen.run(self._compute_off_screen, snap)

    def _compute_off_screen(self, snap):
        """One gate block of `snap` (round robin, the one shown or shown first by default
        first) for its curve, while off screen."""
        blocks = self._blocks(snap)
        first = self.current_gate() if self.built else None
        if first not in blocks:
            want = DEFAULT_GATE.get(snap.cell)
            first = f"W_hh[{want}]" if want else None
        labels = sorted(blocks, key=lambda lab: lab != first)
        lab = labels[self._off_rr % len(labels)]
        self._off_rr += 1
        eig, rho, sigma = spectrum(blocks[lab])
        self.tracks.setdefault(lab, GateTrack()).add(snap.step, eig, rho, sigma)

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        self._sync_gates(snap)
        if self._computed is not snap:
            if not self.throttle.due():
                self.drawn = None          # not yet: retried on a later timer tick
                return False               # nothing new to draw
            self.throttle.run(self._compute, snap)
            self._computed = snap
        self._draw()

    def _draw(self):
        tr = self.tracks.get(self.current_gate())
        if tr is None or tr.last is None:
            return
        if self.message is not None:
            self.plane.removeItem(self.message)
            self.message = None
        step, eig = tr.last
        fstep, feig = tr.first
        self.now_pts.setData(eig.real, eig.imag)
        if self._first_drawn is not tr.first:     # it changes only with the run or gate
            self._first_drawn = tr.first
            self.first_pts.setData(feig.real, feig.imag)
        top = eig[np.argmax(np.abs(eig))]
        self.top_pts.setData([top.real], [top.imag])
        block = f"{self.current_gate()}, " if len(self._gates or ()) > 1 else ""  # gated
        self._rename(self.now_pts, f"{block}step {step}")   # (exports show no gate box)
        self._rename(self.first_pts, f"step {fstep}")
        R = max(1.15, 1.05 * float(max(np.abs(eig).max(), np.abs(feig).max())))
        old = self.radius.value
        R = self.radius.update(R)
        if old is None or abs(R - old) > 0.02 * old:
            self.plane.setRange(xRange=(-R, R), yRange=(-R, R), padding=0)
        steps = np.asarray(tr.steps, float)
        self.rho_curve.setData(steps, np.asarray(tr.rho))
        self.sigma_curve.setData(steps, np.asarray(tr.sigma))
        self.curve_x.fit(float(steps[0]), float(steps[-1]))
        self.curve_y.fit_data(tr.rho, tr.sigma, [1.0])
        self.info.setText(f"step {step}   \u03c1 = {fmt(tr.rho[-1])}   "
                          f"\u03c3_max = {fmt(tr.sigma[-1])}   "
                          f"({len(eig)} eigenvalues, {self.throttle.last_cost * 1e3:.0f} ms)")

    def _rename(self, item, name):
        legend = self.plane.legend
        for sample, label in legend.items:
            if sample.item is item:
                set_text(label, name)          # a new text re-lays out the legend

    @staticmethod
    def _point_tip(x, y, data):
        sign = "+" if y >= 0 else "-"
        return f"\u03bb = {x:.4g} {sign} {abs(y):.4g}i\n|\u03bb| = {np.hypot(x, y):.4g}"

    @Slot(int)
    def _on_gate_box_changed(self, _):
        snap = self.drawn or self.snapshot
        if snap is not None:
            if self.current_gate() not in self.tracks or self.tracks[self.current_gate()].last \
                    is None or self.tracks[self.current_gate()].last[0] != snap.step:
                self.throttle.run(self._compute, snap)
                self._computed = snap
            self.radius.reset()
            self.curve_y.reset()
            self._draw()

    def on_reset(self):
        self.curve_x.reset()
        self.curve_y.reset()
        self.radius.reset()
        self.throttle.reset()
        self._computed = None
        self._first_drawn = None
        for item in (self.now_pts, self.first_pts, self.top_pts):
            item.setData([], [])
        for c in (self.rho_curve, self.sigma_curve):
            c.setData([], [])

    # ------------------------------------------------------------ export
    def export_item(self):
        return self.view.scene()

    def data_arrays(self):
        tr = self.tracks.get(self.current_gate())
        if tr is None or tr.last is None:
            return {}
        eig = tr.last[1]
        return {"eigenvalues_real": eig.real, "eigenvalues_imag": eig.imag,
                "eigenvalues_abs": np.abs(eig),
                "track_step": np.asarray(tr.steps), "spectral_radius": np.asarray(tr.rho),
                "largest_singular_value": np.asarray(tr.sigma)}
