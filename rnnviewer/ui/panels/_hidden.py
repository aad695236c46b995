"""Pieces shared by the hidden-state panels: state choice, probe labels, tick thinning,
unit lists, stable ranges and the "nothing to show yet" message."""

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QSpinBox

# One colour per gate, by name (GRU r z n, LSTM i f g o).
GATE_COLORS = {"i": "#1f77b4", "f": "#ff7f0e", "g": "#2ca02c", "o": "#d62728",
               "r": "#9467bd", "z": "#8c564b", "n": "#17becf"}
GATE_TITLES = {"i": "input i", "f": "forget f", "g": "candidate g", "o": "output o",
               "r": "reset r", "z": "update z", "n": "candidate n"}
# A few distinct light colours for the extra units a trajectory plot shows.
UNIT_COLORS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd",
               "#8c8c8c", "#e377c2", "#bcbd22", "#17becf"]
VIRIDIS = pg.colormap.get("viridis")
STATE_TITLES = {"h": "hidden state h", "c": "cell state c"}


def refresh(panel):
    """Redraw `panel`'s newest snapshot after a change of its controls or of the selected
    unit: now if it is visible, else when it is shown next."""
    if panel.snapshot is not None:
        panel.drawn = None
        if panel.isVisible():
            panel.redraw_now(raise_errors=False)


def probe_state(snap, which="h"):
    """(P, T, H) probe states: "h", or "c" for an LSTM (falls back to h)."""
    p = snap.probe
    if which == "c" and p.c is not None:
        return p.c
    return p.h


def state_keys(snap):
    """The states a snapshot has: ("h",) or ("h", "c") for an LSTM."""
    return ("h", "c") if snap.probe.c is not None else ("h",)


def probe_labels(snap, seq):
    """One display label per timestep of probe sequence `seq` (time indices if missing)."""
    T = snap.probe.h.shape[1]
    labels = snap.probe.labels
    if seq < len(labels) and len(labels[seq]) == T:
        return list(labels[seq])
    return [str(t) for t in range(T)]


def is_text(labels):
    """True when every label is a single character (a text task)."""
    return bool(labels) and all(len(s) == 1 for s in labels)


def sequence_spin(tooltip="Which sequence of the probe batch to show"):
    spin = QSpinBox()
    spin.setRange(0, 0)
    spin.setPrefix("seq ")
    spin.setToolTip(tooltip)
    return spin


def set_spin_max(spin, n):
    """Let `spin` choose 0..n-1, keeping its value when it still fits."""
    top = max(0, int(n) - 1)
    if spin.maximum() != top:
        spin.setMaximum(top)


def state_combo():
    combo = QComboBox()
    combo.addItem("h", "h")
    combo.setToolTip("Which state to show: the hidden state h, or an LSTM's cell state c")
    return combo


def sync_state_combo(combo, snap):
    """Offer c only for an LSTM; return the chosen key."""
    keys = state_keys(snap)
    have = tuple(combo.itemData(i) for i in range(combo.count()))
    if have != keys:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for k in keys:
            combo.addItem(k, k)
        combo.setCurrentIndex(max(0, keys.index(current)) if current in keys else 0)
        combo.blockSignals(False)
    return combo.currentData() or "h"


def parse_units(text, n_hidden):
    """Unit numbers from text like "0-7, 12" or "all" (sorted, in range); ValueError if bad."""
    text = text.strip().lower()
    if text in ("", "none"):
        return []
    if text == "all":
        return list(range(n_hidden))
    units = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition("-")
        lo = int(a)
        hi = int(b) if sep else lo
        if lo > hi:
            lo, hi = hi, lo
        units.update(range(lo, hi + 1))
    return sorted(u for u in units if 0 <= u < n_hidden)


def thinned_ticks(labels, x0, x1, px_per_step, metrics, offset=0.0):
    """[(t + offset, label)] for timesteps in [x0, x1], every n-th so labels never overlap."""
    T = len(labels)
    if T == 0 or px_per_step <= 0:
        return []
    widest = max(metrics.horizontalAdvance(s) for s in labels) + 6
    stride = max(1, math.ceil(widest / px_per_step))
    t0 = max(0, int(math.floor(x0)))
    t0 -= t0 % stride
    t1 = min(T - 1, int(math.ceil(x1)))
    return [(t + offset, labels[t]) for t in range(t0, t1 + 1, stride)]


def tick_font(size=8.5):
    font = QFont()
    font.setPointSizeF(size)
    return font


def tick_metrics(size=8.5):
    return QFontMetrics(tick_font(size))


def robust_max(a, q=99.5):
    """A high percentile of |a| (finite values), at least 1e-6."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 1.0
    return max(float(np.percentile(a, q)), 1e-6)


class StableLimit:
    """A symmetric limit L that grows at once when data leave [-L, L] and shrinks only
    when the data's robust max falls under half of it: levels and ranges stay put."""

    def __init__(self, start=1.0):
        self.value = float(start)

    def update(self, peak):
        peak = float(peak)
        if not np.isfinite(peak) or peak <= 0:
            return self.value
        if peak > self.value or peak < 0.5 * self.value:
            self.value = nice_up(peak * 1.05)
        return self.value


def nice_up(x):
    """The smallest of 1, 1.5, 2, 3, 5, 7 x 10^k that is >= x."""
    p = 10.0 ** math.floor(math.log10(x))
    for m in (1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0):
        if m * p >= x * (1 - 1e-9):
            return m * p
    return 10.0 * p


def info_label(tooltip):
    """A plain-text line for the bar that may be cut short rather than widen the panel,
    and that can change every frame without re-laying out the window (_perf.TextLine)."""
    from rnnviewer.ui.panels._perf import TextLine
    label = TextLine("", tooltip)
    label.setMinimumWidth(0)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def message_label(text=""):
    """A centred, word-wrapped grey label for "waiting for ..." and "not available" texts."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet("color: #505050; font-size: 10pt; padding: 12px;")
    return label


def time_brushes(T, cmap=VIRIDIS):
    """T brushes coloured by time (0 .. T-1) from `cmap`."""
    pos = np.linspace(0.0, 1.0, max(T, 1))
    cols = cmap.map(pos, mode="qcolor")
    return [pg.mkBrush(c) for c in cols]


def widget_svg(widget, path):
    """Draw `widget` into an SVG file. (Panel._export_svg calls QWidget.render(painter),
    which PySide6 6.11 rejects without a target offset; this passes one.)"""
    from PySide6.QtSvg import QSvgGenerator
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(widget.size())
    gen.setViewBox(QRectF(0, 0, widget.width(), widget.height()))
    gen.setTitle(getattr(widget, "title", ""))
    painter = QPainter(gen)
    try:
        widget.render(painter, QPoint(0, 0))
    finally:
        painter.end()
