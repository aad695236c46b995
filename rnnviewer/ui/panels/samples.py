"""Generated text (Karpathy 2015): characters sampled from the current character model
while it trains, with a history of earlier samples so the progression from gibberish to
words can be read off.

The sampling runs in the training worker (analysis "samples",
rnnviewer/training/analyses_samples.py: numba kernels only run there); this panel sends
its options, keeps a history of the results and draws them as rich text. A frame only
does work when a new sample has arrived (every couple of seconds at most).
"""

import html
import math

import numpy as np
from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QFontDatabase, QTextOption
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QStackedWidget, QTextEdit)

from rnnviewer.training.analyses_samples import DEFAULTS, MAX_LENGTH
from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._hidden import info_label, message_label, widget_svg

PRIME_NAMES = {"val": "validation text", "newline": "newline", "custom": "custom…"}
HISTORY_DEFAULT = 6
PRIME_COLOR = "#8a8a8a"
NEWEST_BG = "#f3f6fb"
WAIT_FIRST = "Waiting for the first snapshot of the training run…"
WAIT_SAMPLE = ("Waiting for the first sample… It is generated in the training thread while "
               "this panel is visible: start training (Space) or make a step (Right arrow).")


def thin_history(entries, keep):
    """Drop entries (newest first, each with a "step") until `keep` remain. The newest and
    the oldest always stay; of the others, the one whose removal leaves the smallest gap
    in log(1 + step) goes first, so the kept samples spread over the run (early steps,
    where the text changes fastest, closer together), as in Karpathy's progression."""
    entries = list(entries)
    keep = max(1, int(keep))
    if keep == 1:
        return entries[:1]
    while len(entries) > keep:
        logs = [math.log1p(max(e["step"], 0)) for e in entries]
        gaps = [logs[i - 1] - logs[i + 1] for i in range(1, len(entries) - 1)]
        del entries[1 + int(np.argmin(gaps))]
    return entries


def entry_header(e):
    """One line naming where a sample comes from: step, temperature, validation score."""
    t = e["temperature"]
    temp = "greedy (temperature 0)" if t == 0 else f"temperature {t:g}"
    parts = [f"step {e['step']:,}", temp]
    if np.isfinite(e["val_bpc"]):
        parts.append(f"val {e['val_bpc']:.2f} bits/char")
    return "  ·  ".join(parts)


def entries_html(entries):
    """The samples as rich text, newest (first) on a tinted background: a header line,
    then the prime in grey followed by the generated characters, whitespace kept."""
    out = []
    for i, e in enumerate(entries):
        bg = f" background-color:{NEWEST_BG};" if i == 0 else ""
        head = html.escape(entry_header(e)) + (" — newest" if i == 0 and len(entries) > 1
                                               else "")
        out.append(f'<p style="margin-top:{0 if i == 0 else 10}px; margin-bottom:2px;'
                   f' color:#404040;{bg}"><b>{head}</b></p>'
                   f'<p style="white-space:pre-wrap; margin-top:0px; margin-bottom:4px;{bg}">'
                   f'<span style="color:{PRIME_COLOR};">{html.escape(e["prime"])}</span>'
                   f'<span style="color:#111111;">{html.escape(e["text"])}</span></p>')
    return "".join(out)


@register_panel
class SamplesPanel(Panel):
    title = "Generated text"
    object_name = "samples"
    tooltip = ("Text sampled from the character model as it trains (Karpathy 2015), with "
               "earlier samples below: watch gibberish turn into words.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    analyses = ("samples",)

    def build(self):
        self.history = []            # newest first: dicts of step, temperature, prime, text ...
        self._res = None             # the analysis result last taken in
        self._res_key = None         # its (step, options), to add each sample once
        self._view = None            # what is drawn: (task, state, history ids, keep, count)
        self._seed = int(DEFAULTS["seed"])
        self._prime_text = ""
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Temperature"))
        self.temp_spin = QDoubleSpinBox()
        self.temp_spin.setRange(0.0, 2.0)
        self.temp_spin.setSingleStep(0.1)
        self.temp_spin.setDecimals(2)
        self.temp_spin.setValue(DEFAULTS["temperature"])
        self.temp_spin.setSpecialValueText("0 (greedy)")
        self.temp_spin.setToolTip(
            "Divide the logits by this before the softmax: low values pick the likeliest "
            "characters (0: always the most likely, greedy), 1 samples the model's own "
            "distribution, higher values give more surprising text")
        self.temp_spin.valueChanged.connect(self._on_options_changed)
        bar.addWidget(self.temp_spin)
        bar.addWidget(QLabel("Length"))
        self.length_spin = QSpinBox()
        self.length_spin.setRange(10, MAX_LENGTH)
        self.length_spin.setSingleStep(50)
        self.length_spin.setValue(DEFAULTS["length"])
        self.length_spin.setSuffix(" chars")
        self.length_spin.setToolTip("How many characters to generate after the prime")
        self.length_spin.valueChanged.connect(self._on_options_changed)
        bar.addWidget(self.length_spin)
        bar.addWidget(QLabel("Prime"))
        self.prime_box = QComboBox()
        for key, name in PRIME_NAMES.items():
            self.prime_box.addItem(name, key)
        self.prime_box.setToolTip(
            "The text the model reads before it generates (shown in grey): the start of a "
            "line of the validation text, a newline, or your own text")
        self.prime_box.currentIndexChanged.connect(self._on_prime_box_current_index_changed)
        bar.addWidget(self.prime_box)
        self.prime_edit = QLineEdit()
        self.prime_edit.setPlaceholderText("prime text")
        self.prime_edit.setMinimumWidth(100)
        self.prime_edit.setToolTip("Your prime (Enter to use it); characters the model "
                                   "does not know are dropped")
        self.prime_edit.editingFinished.connect(self._on_prime_edit_editing_finished)
        self.prime_edit.setVisible(False)
        bar.addWidget(self.prime_edit, 1)
        bar.addStretch(0)
        self.layout_.addLayout(bar)
        bar = QHBoxLayout()                  # second row: keeps the panel's minimum narrow
        self.new_button = QPushButton("New sample")
        self.new_button.setToolTip("Draw another sample now (a new random seed)")
        self.new_button.clicked.connect(self._on_new_button_clicked)
        bar.addWidget(self.new_button)
        self.keep_box = QCheckBox("Keep history")
        self.keep_box.setChecked(True)
        self.keep_box.setToolTip(
            "Keep earlier samples below the newest: the first one and a few spread over "
            "the run, so you can see the text improve")
        self.keep_box.toggled.connect(self._on_view_changed)
        bar.addWidget(self.keep_box)
        self.count_spin = QSpinBox()
        self.count_spin.setRange(2, 20)
        self.count_spin.setValue(HISTORY_DEFAULT)
        self.count_spin.setToolTip("How many samples the history keeps")
        self.count_spin.valueChanged.connect(self._on_view_changed)
        bar.addWidget(self.count_spin)
        bar.addSpacing(8)
        self.info = info_label("Where the newest sample comes from")
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.stack = QStackedWidget()
        self.message = message_label(WAIT_FIRST)
        self.text = QTextEdit()
        self.text.setReadOnly(True)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(max(font.pointSizeF(), 9.5))
        self.text.setFont(font)
        self.text.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.text.setToolTip("Generated text, newest on top: the prime in grey, then what "
                             "the model wrote")
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.text)
        self.layout_.addWidget(self.stack, 1)

    def sizeHint(self):
        return QSize(560, 360)

    # ------------------------------------------------------------ analysis request
    def analysis_options(self):
        if not self.built:
            return dict(DEFAULTS)
        return {"temperature": round(float(self.temp_spin.value()), 4),
                "length": int(self.length_spin.value()),
                "prime": self.prime_box.currentData() or "val",
                "text": self._prime_text, "seed": self._seed}

    # ------------------------------------------------------------ controls
    def _refresh(self):
        self._view = None
        self.drawn = None
        if self.snapshot is not None and self.isVisible():
            self.redraw_now(raise_errors=False)

    @Slot()
    def _on_options_changed(self, *_):
        self._refresh()              # the info line says a new sample is coming

    @Slot(int)
    def _on_prime_box_current_index_changed(self, _):
        custom = self.prime_box.currentData() == "custom"
        self.prime_edit.setVisible(custom)
        if custom:
            self.prime_edit.setFocus()
        self._refresh()

    @Slot()
    def _on_prime_edit_editing_finished(self):
        self._prime_text = self.prime_edit.text()
        self._refresh()

    @Slot()
    def _on_new_button_clicked(self):
        self._seed = (self._seed + 1) % 2**32
        self._refresh()

    @Slot()
    def _on_view_changed(self, *_):
        self.count_spin.setEnabled(self.keep_box.isChecked())
        self._refresh()

    def on_reset(self):
        self.history = []
        self._res = self._res_key = self._view = None

    # ------------------------------------------------------------ drawing
    def shown_entries(self):
        """The samples on screen, newest first."""
        if not self.keep_box.isChecked():
            return self.history[:1]
        return thin_history(self.history, self.count_spin.value())

    def _take(self, snap, res):
        """Add a new result to the history (once per step and options)."""
        self._res = res
        key = (res.get("step"), tuple(sorted(dict(res.get("options") or {}).items())))
        if key == self._res_key or not res.get("applies") or res.get("error"):
            return
        self._res_key = key
        step = int(res["step"])
        val = snap.val_loss / math.log(2) if snap.step == step else float("nan")
        self.history.insert(0, {"step": step, "temperature": float(res["temperature"]),
                                "prime": str(res["prime"]), "text": str(res["text"]),
                                "seed": int(res["seed"]), "length": int(res["length"]),
                                "val_bpc": float(val)})
        # keep at most the most the history could show (it thins the rest anyway)
        self.history = thin_history(self.history, self.count_spin.maximum())

    def _show_message(self, text):
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    def redraw(self, snap):
        res = snap.extra.get("samples") if snap.extra is not None else None
        if res is not None and res is not self._res:
            self._take(snap, res)
        text_task = snap.task_name == "text"
        state = ("other" if not text_task else "error" if res is not None and res.get("error")
                 else "wait" if not self.history else "text")
        entries = self.shown_entries() if state == "text" else []
        view = (snap.task_name, state, tuple(id(e) for e in entries),
                res.get("error") if res is not None else None)
        pending = (res is None or dict(res.get("options") or {}) != self.analysis_options())
        info = self._info_text(state, entries, pending, snap.step)
        self.info.setText(info)
        if view == self._view:
            return False             # no new sample: nothing to draw
        self._view = view
        for w in (self.temp_spin, self.length_spin, self.prime_box, self.prime_edit,
                  self.new_button, self.keep_box):
            w.setEnabled(text_task)
        self.count_spin.setEnabled(text_task and self.keep_box.isChecked())
        if state == "other":
            self._show_message(
                "Generated text applies to character models (the text task): the model "
                "writes one character at a time, each fed back as its next input. This run's "
                f"task is \u201c{snap.task_name}\u201d; choose the text task in Controls to "
                "see what the model writes while it trains.")
        elif state == "error":
            self._show_message(f"Sampling failed: {res['error']}")
        elif state == "wait":
            self._show_message(WAIT_SAMPLE)
        else:
            self.text.setHtml(entries_html(entries))
            self.stack.setCurrentWidget(self.text)
        return None

    @staticmethod
    def _info_text(state, entries, pending, step):
        if state != "text":
            return ""
        n = len(entries)
        e = entries[0]
        now = f" (model now at step {step:,})" if step != e["step"] else ""
        more = f"; {n - 1} earlier below" if n > 1 else ""
        new = "  A sample with the new options is on its way…" if pending else ""
        return (f"Newest: step {e['step']:,}{now}, {e['length']} characters after the prime "
                f"(grey){more}.{new}")

    # ------------------------------------------------------------ export
    def export_item(self):
        return None                  # the widget is grabbed (rich text, not a plot)

    def _export_svg(self, path, item):
        widget_svg(self, path)

    def data_arrays(self):
        """The samples shown, newest first: one row each (strings as unicode arrays)."""
        entries = self.shown_entries() if self.built else []
        if not entries:
            return {}
        col = lambda k, dt: np.array([e[k] for e in entries], dtype=dt)   # noqa: E731
        return {"step": col("step", np.int64), "temperature": col("temperature", np.float64),
                "seed": col("seed", np.int64), "val_bits_per_char": col("val_bpc", np.float64),
                "prime": col("prime", str), "text": col("text", str)}
