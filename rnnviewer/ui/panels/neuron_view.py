"""Neuron view (Karpathy et al. 2015; LSTMVis): the probe inputs with each one's background
coloured by the selected unit's activation, and the unit's top-k contexts over the
validation data (the "top_contexts" analysis, computed in the training worker).

The probe inputs are a CharGrid (ui/panels/_chargrid.py): a frame recolours cells of a
fixed layout (well under a millisecond) instead of re-parsing P x T HTML spans in a
QTextEdit (26 ms + 8 ms to paint at P=8, T=100). The contexts, which change only with
the analysis (every few seconds) or the unit, stay rich text.
"""

import html

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, Slot
from PySide6.QtGui import QColor, QFontDatabase, QLinearGradient, QPainter, QTextOption
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QScrollArea, QSpinBox, QSplitter,
                               QTextEdit, QVBoxLayout, QWidget)

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._chargrid import CharGrid
from rnnviewer.ui.panels._perf import TextLine, set_text
from rnnviewer.ui.panels._hidden import info_label, is_text, probe_labels, refresh, widget_svg

# Diverging map for activations in [-1, 1] (ColorBrewer RdBu): pale near 0 keeps text readable.
_STOPS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
_RGB = np.array([[33, 102, 172], [103, 169, 207], [247, 247, 247], [239, 138, 98],
                 [178, 24, 43]], dtype=np.float64)
_LEVELS = 65                     # colours are quantised to this many steps


def _palette():
    """(_LEVELS,) background "#rrggbb" and matching text colours for values -1..1."""
    v = np.linspace(-1.0, 1.0, _LEVELS)
    rgb = np.stack([np.interp(v, _STOPS, _RGB[:, i]) for i in range(3)], axis=1)
    lum = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]) / 255.0
    bg = ["#%02x%02x%02x" % tuple(int(round(c)) for c in row) for row in rgb]
    fg = ["#ffffff" if lv < 0.55 else "#111111" for lv in lum]
    return bg, fg


BG, FG = _palette()


def color_index(values):
    """Palette indices for activations (clipped to [-1, 1]; NaN -> the centre)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.rint((np.clip(v, -1.0, 1.0) + 1.0) * 0.5 * (_LEVELS - 1)).astype(int)


STYLES = [f"background-color:{b}; color:{f};" for b, f in zip(BG, FG)]
# whitespace glyphs of the text tasks, drawn fainter than the characters
_FAINT = {"␣", "↵", "⇥"}
FAINT_FG = ['#9a9a9a' if f == '#111111' else '#d8d8d8' for f in FG]
FAINT_STYLES = [f"background-color:{b}; color:{f};" for b, f in zip(BG, FAINT_FG)]


def span(label, index, href=None, peak=False):
    """One input label as HTML with the background colour of palette entry `index`
    (see color_index); `href` makes it a link (for mouse lookup), `peak` emphasises it."""
    style = (FAINT_STYLES if label in _FAINT else STYLES)[index]
    if peak:
        style += " font-weight:bold; text-decoration:underline;"
    text = html.escape(label)
    if href is not None:
        return f'<a href="{href}" style="{style} text-decoration:none;">{text}</a>'
    return f'<span style="{style}">{text}</span>'


class ColorLegend(QWidget):
    """A horizontal gradient of the activation colours with -1, 0 and +1 marked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(150, 26)
        self.setToolTip("Background colour of an input: the selected unit's activation there")

    def sizeHint(self):
        return QSize(180, 28)

    def paintEvent(self, event):
        p = QPainter(self)
        w, h = self.width(), self.height()
        bar_h = h // 2
        grad = QLinearGradient(QPointF(0, 0), QPointF(w - 1, 0))
        for s, c in zip(_STOPS, _RGB):
            grad.setColorAt((s + 1) / 2, QColor(*[int(x) for x in c]))
        p.fillRect(0, 0, w, bar_h, grad)
        p.setPen(QColor("#707070"))
        p.drawRect(0, 0, w - 1, bar_h)
        p.setPen(QColor("#202020"))
        fm = p.fontMetrics()
        for text, x in (("-1", 0), ("0", w / 2), ("+1", w)):
            tw = fm.horizontalAdvance(text)
            xx = min(max(x - tw / 2, 0), w - tw)
            p.drawText(int(xx), h - 2, text)
        p.end()


def _text_edit():
    edit = QTextEdit()
    edit.setReadOnly(True)
    edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    edit.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    edit.viewport().setMouseTracking(True)
    return edit


@register_panel
class NeuronViewPanel(Panel):
    title = "Neuron view"
    object_name = "neuron_view"
    tooltip = ("The probe inputs coloured by the selected unit's activation (Karpathy 2015), "
               "and where over the validation data the unit fires most (LSTMVis).")
    default_area = Qt.DockWidgetArea.RightDockWidgetArea
    analyses = ("top_contexts",)

    def build(self):
        self._acts = None            # (P, T) selected unit's activations drawn
        self._all = None             # (P, T, H) probe states of the drawn snapshot
        self._labels = []            # per probe sequence, per time step
        self._faint = None           # (P, T) whitespace glyphs (drawn fainter)
        self._ctx_key = None         # what the contexts pane shows
        self._ctx_rows = None        # (labels (k, W), windows (k, W), values, positions)
        bar = QHBoxLayout()
        self.unit_spin = QSpinBox()
        self.unit_spin.setPrefix("unit ")
        self.unit_spin.setRange(0, 0)
        self.unit_spin.setToolTip("The unit whose activation colours the text (selects it "
                                  "in every panel)")
        self.unit_spin.valueChanged.connect(self._on_unit_spin_value_changed)
        self.mode_box = QComboBox()
        self.mode_box.addItem("fires highest", "max")
        self.mode_box.addItem("fires lowest", "min")
        self.mode_box.setToolTip("Show the contexts of the unit's largest or its most "
                                 "negative activations")
        self.mode_box.currentIndexChanged.connect(self._on_mode_box_current_index_changed)
        self.legend = ColorLegend()
        self.info = info_label("The input under the mouse pointer")
        bar.addWidget(self.unit_spin)
        bar.addWidget(self.mode_box)
        bar.addWidget(self.legend)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)

        self.split = split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Probe sequences</b>"))
        self.text_title = TextLine("")             # changes every frame: no relayout
        head.addWidget(self.text_title, 1)
        tl.addLayout(head)
        # palette entry i < _LEVELS: BG[i] with text FG[i]; i + _LEVELS: faint text
        self.text = CharGrid(BG + BG, FG + FAINT_FG)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setToolTip("Click an input to select the unit most active there")
        self.text.hovered.connect(self._on_text_hovered)
        self.text.clicked.connect(self._on_text_clicked)
        self.text_scroll = QScrollArea()
        self.text_scroll.setWidgetResizable(True)
        self.text_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.text_scroll.setWidget(self.text)
        tl.addWidget(self.text_scroll, 1)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        self.ctx_title = QLabel("")
        self.ctx_title.setWordWrap(True)
        bl.addWidget(self.ctx_title)
        self.contexts = _text_edit()
        # one line per context, aligned on the peak: never wrapped (scrolls sideways)
        self.contexts.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)
        self.contexts.setToolTip("The unit's strongest activations over the validation data, "
                                 "each with its context, aligned on the peak (underlined)")
        bl.addWidget(self.contexts, 1)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.layout_.addWidget(split, 1)

    def sizeHint(self):
        return QSize(520, 420)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        wide = self.width() > 2.2 * self.height()        # text and contexts side by side
        orient = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.split.orientation() != orient:
            self.split.setOrientation(orient)
            if wide:                 # a context line is about 50 characters: give it room
                w = self.split.width()
                self.split.setSizes([w - min(w // 2, 460), min(w // 2, 460)])

    # ------------------------------------------------------------ analysis request
    def analysis_options(self):
        snap = self.snapshot
        text = snap is None or is_text(probe_labels(snap, 0))
        return {"k": 8, "before": 24 if text else 6, "after": 8 if text else 3,
                "batches": 2, "batch_size": 32, "state": "h"}

    # ------------------------------------------------------------ controls
    def _refresh(self):
        refresh(self)

    @Slot(int)
    def _on_unit_spin_value_changed(self, unit):
        self.select_unit(unit)           # redraws through on_unit_selected

    @Slot(int)
    def _on_mode_box_current_index_changed(self, _):
        self._refresh()

    def on_unit_selected(self, unit):
        if unit <= self.unit_spin.maximum() and self.unit_spin.value() != unit:
            self.unit_spin.blockSignals(True)
            self.unit_spin.setValue(unit)
            self.unit_spin.blockSignals(False)
        self._refresh()

    def on_reset(self):
        self._ctx_key = None

    # ------------------------------------------------------------ drawing
    def redraw(self, snap):
        states = snap.probe.h                                 # (P, T, H)
        P, T, H = states.shape
        if self.unit_spin.maximum() != H - 1:
            self.unit_spin.blockSignals(True)
            self.unit_spin.setMaximum(H - 1)
            self.unit_spin.blockSignals(False)
        u = min(self.selection.unit, H - 1)
        if self.unit_spin.value() != u:
            self.unit_spin.blockSignals(True)
            self.unit_spin.setValue(u)
            self.unit_spin.blockSignals(False)
        self._all = states
        self._acts = states[:, :, u]
        labels = [probe_labels(snap, p) for p in range(P)]
        if labels != self._labels:
            self._labels = labels
            self._faint = np.array([[lab in _FAINT for lab in row] for row in labels], bool)
            self.text.set_labels(labels)
        self.text_title.setText(f"coloured by unit {u}'s activation (step {snap.step})")
        idx = color_index(self._acts)                              # (P, T)
        self.text.set_colors(idx + np.where(self._faint, _LEVELS, 0))
        self._draw_contexts(snap, u, H)

    def cell_colors(self):
        """(P, T) palette indices of the cells drawn (BG[i] is the background colour)."""
        return None if self._acts is None else color_index(self._acts)

    def _draw_contexts(self, snap, u, H):
        res = snap.extra.get("top_contexts") if snap.extra is not None else None
        mode = self.mode_box.currentData() or "max"
        key = (id(res), None if res is None else res.get("step"), u, mode)
        if key == self._ctx_key:
            return
        self._ctx_key = key
        if res is None:
            self._ctx_rows = None
            set_text(self.ctx_title, "<b>Top contexts:</b> waiting for the analysis over the "
                     "validation data (it runs in the training thread while this panel is "
                     "visible; train or step to compute it).")
            self.contexts.setHtml("")
            return
        if res.get("error"):
            self._ctx_rows = None
            set_text(self.ctx_title,
                     f"<b>Top contexts failed:</b> {html.escape(res['error'])}")
            self.contexts.setHtml("")
            return
        vals = res[f"{mode}_values"]
        if vals.shape[0] != H:
            self._ctx_rows = None
            set_text(self.ctx_title, "<b>Top contexts:</b> waiting for the analysis of this "
                     "model.")
            self.contexts.setHtml("")
            return
        ok = np.isfinite(vals[u])
        rows = (res[f"{mode}_labels"][u][ok], res[f"{mode}_windows"][u][ok], vals[u][ok],
                res[f"{mode}_positions"][u][ok])
        self._ctx_rows = rows
        word = "highest" if mode == "max" else "lowest"
        set_text(self.ctx_title,
                 f"<b>Where unit {u} fires {word}</b> over {res['n_sequences']} validation "
                 f"sequences (step {res['step']}), aligned on the peak:")
        self.contexts.setHtml(self._contexts_html(rows, int(res["before"])))

    @staticmethod
    def _contexts_html(rows, before):
        labels, windows, values, positions = rows
        if len(values) == 0:
            return "<i>no activations found</i>"
        text = all(len(s) <= 1 for s in labels.ravel())
        sep = "" if text else " "
        out = ['<table cellspacing="0" cellpadding="1">']
        for lab, win, val, (n, t) in zip(labels, windows, values, positions):
            idx = color_index(win).tolist()
            cells = [span(s, i) if s else "" for s, i in zip(lab, idx)]
            left = sep.join(c for c in cells[:before] if c)
            right = sep.join(c for c in cells[before + 1:] if c)
            peak = span(lab[before], idx[before], peak=True)
            out.append(
                f'<tr><td align="right" style="color:#606060;">{val:+.2f}&nbsp;</td>'
                f'<td align="right">{left}</td><td>{sep}{peak}{sep}</td>'
                f'<td align="left">{right}</td>'
                f'<td style="color:#a0a0a0;">&nbsp;seq {n}, t={t}</td></tr>')
        out.append("</table>")
        return "".join(out)

    # ------------------------------------------------------------ mouse on the text
    @Slot(int, int)
    def _on_text_hovered(self, p, t):
        if self._all is not None:
            self._hover(None if p < 0 else (p, t))

    @Slot(int, int)
    def _on_text_clicked(self, p, t):
        if self._all is not None:
            self.select_unit(self.most_active_unit(p, t))

    def most_active_unit(self, p, t):
        """The unit with the largest |activation| at time t of probe sequence p."""
        return int(np.argmax(np.abs(self._all[p, t])))

    def _hover(self, where):
        if where is None:
            self.info.setText("")
            return
        p, t = where
        lab = self._labels[p][t]
        self.info.setText(f"seq {p}  t={t} '{lab}'  unit {self.unit_spin.value()}: "
                          f"{self._acts[p, t]:+.3f}   (click: unit "
                          f"{self.most_active_unit(p, t)}, most active here)")

    # ------------------------------------------------------------ export
    def export_item(self):
        return None

    def _export_svg(self, path, item):
        widget_svg(self, path)

    def data_arrays(self):
        if self._acts is None:
            return {}
        out = {"probe_activations": self._acts,                       # (P, T)
               "probe_inputs": np.array(self._labels, dtype=str)}     # (P, T)
        if self._ctx_rows is not None:
            labels, windows, values, positions = self._ctx_rows
            out.update({"context_inputs": labels, "context_activations": windows,
                        "context_values": values, "context_positions": positions})
        return out
