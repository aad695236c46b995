"""The Controls dock: task and its options, model, optimisation, and the run buttons.

`ControlsWidget.edited` fires after any setting changes; the window compares
`config()` with the running config to decide between a live change (learning rate,
clip, batch size) and a reset (anything that changes shapes or data), which it asks
about first. `set_config` shows a config without emitting `edited`.
"""

import inspect
import math
from html import escape

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QScrollArea, QSpinBox, QToolButton, QVBoxLayout,
                               QWidget)

from rnnviewer.training.session import SessionConfig

CELL_NAMES = {"rnn": "RNN (Elman)", "gru": "GRU", "lstm": "LSTM"}
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD"}
SPEEDS = [(0, "As fast as possible"), (1000, "1000 steps/s"), (300, "300 steps/s"),
          (100, "100 steps/s"), (30, "30 steps/s"), (10, "10 steps/s"), (3, "3 steps/s"),
          (1, "1 step/s")]
_HIDDEN_OPTIONS = {"vocab", "header"}          # advanced task options not shown
_CHOICES = {"corpus": ("python", "prose"), "normalize": ("zscore", "minmax", "none")}
_OPTION_TIPS = {
    "waves": "Number of sine waves mixed in each sequence",
    "min_period": "Shortest period of a wave, in steps",
    "max_period": "Longest period of a wave, in steps",
    "noise": "Standard deviation of noise added to the input",
    "length": "Number of symbols to memorise",
    "symbols": "Size of the alphabet",
    "delay": "Blank steps between the symbols and the recall (empty: from the sequence length)",
    "bits": "Number of independent flip-flop channels",
    "p": "Probability of a pulse per step and channel",
    "modulus": "2: parity; k > 2: count of ones modulo k",
    "path": "A file of your own (empty: the bundled corpus)",
    "corpus": "Bundled text to train on when no file is given",
    "val_fraction": "Share of the data held out for validation",
    "max_chars": "Use only the first N characters of the text (empty: all)",
    "inputs": "Input columns, by name or number, separated by commas (empty: every numeric column)",
    "targets": "Target columns, by name or number, separated by commas",
    "horizon": "How many rows ahead the target is",
}


def _task_classes():
    from rnnviewer.engine.tasks import TASKS
    return TASKS


def task_option_defaults(name):
    """option -> default value of task `name`'s constructor (beyond seq_len, seed, dtype)."""
    cls = _task_classes()[name]
    out = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in ("seq_len", "seed", "dtype") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


_NOT_OPTIONS = ("name", "seq_len", "seed", "dtype")


def effective_options(task, options):
    """The options task `task` would really use: its defaults updated with `options`
    (name, seq_len, seed and dtype dropped). Compare these, not the raw dicts."""
    try:
        out = task_option_defaults(task)
    except KeyError:
        out = {}
    out.update({k: v for k, v in dict(options or {}).items() if k not in _NOT_OPTIONS})
    return out


def _parse(text):
    text = text.strip()
    if not text:
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


class GSpinBox(QDoubleSpinBox):
    """A QDoubleSpinBox that shows values compactly (0.001, 1e-05, 40) instead of 0.001000."""

    def __init__(self, low, high, decimals=8, parent=None):
        super().__init__(parent)
        self.setDecimals(decimals)
        self.setRange(low, high)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)

    def textFromValue(self, value):
        return f"{value:.6g}"

    def valueFromText(self, text):
        try:
            return float(text.replace(self.locale().decimalPoint(), "."))
        except ValueError:
            return self.value()

    def validate(self, text, pos):
        from PySide6.QtGui import QValidator
        t = text.strip()
        if t in ("", "-", ".", "e", "-."):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(t)
        except ValueError:
            if t.endswith(("e", "e-", "E", "E-")):
                return QValidator.State.Intermediate, text, pos
            if self.specialValueText() and t == self.specialValueText():
                return QValidator.State.Acceptable, text, pos
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= v <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos


class TaskOptionsForm(QWidget):
    """One editor per option of the chosen task, built from the task's constructor."""

    edited = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.editors = {}
        self.defaults = {}
        self.touched = set()

    def set_task(self, name, values=None):
        self.touched = set()            # options the user changed since
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.defaults = task_option_defaults(name)
        values = dict(values or {})
        for opt, default in self.defaults.items():
            if opt in _HIDDEN_OPTIONS:
                continue
            ed = self._editor(opt, default)
            self.editors[opt] = ed
            label = opt.replace("_", " ").capitalize()
            tip = _OPTION_TIPS.get(opt, "")
            ed.setToolTip(tip)
            box = ed
            if opt == "path":
                box = QWidget()
                row = QHBoxLayout(box)
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(ed, 1)
                browse = QToolButton()
                browse.setText("…")
                browse.setToolTip("Choose a file")
                browse.clicked.connect(self._on_browse_clicked)
                row.addWidget(browse)
            self.form.addRow(label, box)
            self._show(opt, values.get(opt, default))

    def _editor(self, opt, default):
        if opt in _CHOICES:
            ed = QComboBox()
            ed.addItems(_CHOICES[opt])
            ed.currentIndexChanged.connect(self._on_editor_changed)
        elif isinstance(default, bool) or default is None or isinstance(default, str):
            ed = QLineEdit()
            ed.setPlaceholderText("auto" if opt not in ("path", "inputs", "targets") else "")
            ed.editingFinished.connect(self._on_editor_changed)
        elif isinstance(default, int):
            ed = QSpinBox()
            ed.setRange(0, 1_000_000)
            ed.setKeyboardTracking(False)
            ed.valueChanged.connect(self._on_editor_changed)
        else:
            ed = GSpinBox(0.0, 1e6)
            ed.valueChanged.connect(self._on_editor_changed)
        return ed

    def _show(self, opt, value):
        ed = self.editors[opt]
        ed.blockSignals(True)
        if isinstance(ed, QComboBox):
            i = ed.findText(str(value))
            ed.setCurrentIndex(max(i, 0))
        elif isinstance(ed, QLineEdit):
            ed.setText("" if value is None else str(value))
            ed.setModified(False)
        elif isinstance(ed, QSpinBox):
            ed.setValue(int(value))
        else:
            ed.setValue(float(value))
        ed.blockSignals(False)

    def value(self, opt):
        """The value editor `opt` shows (None for an empty text field)."""
        ed = self.editors[opt]
        if isinstance(ed, QComboBox):
            return ed.currentText()
        if isinstance(ed, QLineEdit):
            v = _parse(ed.text())
            return str(v) if opt in ("path", "inputs", "targets") and v is not None else v
        return ed.value()

    def values(self):
        """option -> value, only those that differ from the task's defaults."""
        out = {}
        for opt in self.editors:
            v = self.value(opt)
            if v != self.defaults.get(opt):
                out[opt] = v
        return out

    def set_values(self, values):
        for opt in self.editors:
            self._show(opt, values.get(opt, self.defaults.get(opt)))

    @Slot()
    def _on_editor_changed(self):
        sender = self.sender()
        if isinstance(sender, QLineEdit) and not sender.isModified():
            return
        if isinstance(sender, QLineEdit):
            sender.setModified(False)
        for opt, ed in self.editors.items():
            if ed is sender:
                self.touched.add(opt)
        self.edited.emit()

    @Slot()
    def _on_browse_clicked(self):
        self.browse_path()

    def browse_path(self):
        """Ask for a data file; True if one was chosen."""
        ed = self.editors.get("path")
        if ed is None:
            return False
        path, _ = QFileDialog.getOpenFileName(self, "Choose a data file", ed.text(),
                                              "Text and CSV files (*.txt *.csv *.tsv);;"
                                              "All files (*)")
        if path:
            ed.setText(path)
            self.touched.add("path")
            self.edited.emit()
        return bool(path)


class ControlsWidget(QScrollArea):
    """Every training setting and the Start/Pause, Step and Reset buttons."""

    edited = Signal()

    def __init__(self, config=None, parent=None):
        super().__init__(parent)
        self.setObjectName("controls")
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget()
        self.setWidget(body)
        col = QVBoxLayout(body)
        col.setContentsMargins(6, 6, 6, 6)

        # Run buttons first: they are used most.
        run = QGroupBox("Run")
        rl = QVBoxLayout(run)
        buttons = QHBoxLayout()
        self.start_button = QToolButton()
        self.step_button = QToolButton()
        self.reset_button = QToolButton()
        for b in (self.start_button, self.step_button, self.reset_button):
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setMinimumWidth(64)
            buttons.addWidget(b)
        rl.addLayout(buttons)
        speed_row = QFormLayout()
        self.speed = QComboBox()
        for value, label in SPEEDS:
            self.speed.addItem(label, value)
        self.speed.setToolTip("Cap the training speed to watch it slowly; applies at once")
        speed_row.addRow("Speed", self.speed)
        rl.addLayout(speed_row)
        col.addWidget(run)

        task = QGroupBox("Task")
        tf = QFormLayout(task)
        self.task = QComboBox()
        for name in _task_classes():
            self.task.addItem(name, name)
        self.task.setToolTip("What the network learns (changing it resets training)")
        tf.addRow("Task", self.task)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: #555; font-size: 8.5pt")
        self.description.linkActivated.connect(self._on_description_link_activated)
        self._full_description = False
        tf.addRow(self.description)
        self.seq_len = self._spin(1, 100_000, "Length of each training sequence, in steps "
                                  "(resets training)")
        tf.addRow("Sequence length", self.seq_len)
        self.options = TaskOptionsForm()
        tf.addRow(self.options)
        col.addWidget(task)

        model = QGroupBox("Model")
        mf = QFormLayout(model)
        self.cell = QComboBox()
        for key, label in CELL_NAMES.items():
            self.cell.addItem(label, key)
        self.cell.setToolTip("Recurrent cell type (changing it resets training)")
        mf.addRow("Cell", self.cell)
        self.hidden = self._spin(1, 4096, "Number of hidden units (changing it resets training)")
        mf.addRow("Hidden size", self.hidden)
        self.seed = self._spin(0, 2**31 - 1, "Random seed of the initial weights and the data "
                               "(changing it resets training)")
        mf.addRow("Seed", self.seed)
        col.addWidget(model)

        opt = QGroupBox("Optimisation")
        of = QFormLayout(opt)
        self.optimizer = QComboBox()
        for key, label in OPTIMIZER_NAMES.items():
            self.optimizer.addItem(label, key)
        self.optimizer.setToolTip("Update rule (changing it resets training)")
        of.addRow("Optimizer", self.optimizer)
        self.lr = GSpinBox(1e-7, 10.0)
        self.lr.setToolTip("Learning rate; applies at once, without a reset")
        of.addRow("Learning rate", self.lr)
        self.clip = GSpinBox(0.0, 1e6, decimals=4)
        self.clip.setSpecialValueText("off")
        self.clip.setToolTip("Clip the global gradient norm to this value (off: no clipping); "
                             "applies at once")
        of.addRow("Clip norm", self.clip)
        self.batch = self._spin(1, 65_536, "Sequences per training step; applies at once")
        of.addRow("Batch size", self.batch)
        col.addWidget(opt)
        col.addStretch(1)

        self._fields = {"task": self.task, "seq_len": self.seq_len, "cell": self.cell,
                        "hidden": self.hidden, "seed": self.seed, "optimizer": self.optimizer,
                        "lr": self.lr, "clip": self.clip, "batch": self.batch}
        self._touched = set()
        self.task.currentIndexChanged.connect(self._on_task_changed)
        for w in (self.cell, self.optimizer):
            w.currentIndexChanged.connect(self._on_any_edited)
        for w in (self.seq_len, self.hidden, self.seed, self.batch, self.lr, self.clip):
            w.valueChanged.connect(self._on_any_edited)
        self.speed.currentIndexChanged.connect(self._on_any_edited)
        self.options.edited.connect(self._on_any_edited)
        self.set_config(config or SessionConfig())

    def _spin(self, low, high, tip):
        s = QSpinBox()
        s.setRange(low, high)
        s.setKeyboardTracking(False)
        s.setToolTip(tip)
        return s

    def set_actions(self, start, step, reset):
        """Bind the run buttons to the window's actions (same text, shortcut, state)."""
        self.start_button.setDefaultAction(start)
        self.step_button.setDefaultAction(step)
        self.reset_button.setDefaultAction(reset)

    # ------------------------------------------------------------ config
    def set_config(self, config):
        """Show `config` without emitting `edited`."""
        widgets = (self.task, self.seq_len, self.cell, self.hidden, self.seed, self.optimizer,
                   self.lr, self.clip, self.batch, self.options)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.task.setCurrentIndex(max(self.task.findData(config.task), 0))
            self._describe(config.task)
            self.options.set_task(config.task, config.task_options)
            self.seq_len.setValue(int(config.seq_len))
            self.cell.setCurrentIndex(max(self.cell.findData(config.cell), 0))
            self.hidden.setValue(int(config.hidden))
            self.seed.setValue(int(config.seed))
            self.optimizer.setCurrentIndex(max(self.optimizer.findData(config.optimizer), 0))
            self.lr.setValue(float(config.lr))
            self.clip.setValue(float(config.clip))
            self.batch.setValue(int(config.batch))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._base = config
        self._touched = set()

    def config(self):
        """The SessionConfig the widgets show: the config last shown with `set_config`,
        changed only in the fields the user edited since (so options the form does not
        show, or normalises, never look like edits)."""
        base = self._base
        changes = {f: self._widget_value(f) for f in self._touched}
        task = changes.get("task", base.task)
        if task != base.task:
            changes["task_options"] = self.options.values()
        elif self.options.touched:
            opts = dict(base.task_options)
            for opt in self.options.touched:
                v = self.options.value(opt)
                if v is None or v == self.options.defaults.get(opt):
                    opts.pop(opt, None)
                else:
                    opts[opt] = v
            changes["task_options"] = opts
        return base.replace(**changes)

    def _widget_value(self, field):
        w = self._fields[field]
        return w.currentData() if isinstance(w, QComboBox) else w.value()

    def speed_value(self):
        return float(self.speed.currentData() or 0)

    def set_speed_value(self, value):
        ok = value and math.isfinite(value) and 0 < value < 1e9
        i = self.speed.findData(int(value)) if ok else 0
        self.speed.blockSignals(True)
        self.speed.setCurrentIndex(max(i, 0))
        self.speed.blockSignals(False)

    def _describe(self, name):
        """The task's description: its first sentence, and the rest behind "more"."""
        cls = _task_classes().get(name)
        text = " ".join((getattr(cls, "description", "") if cls else "").split())
        self._description = text
        first = text.split(". ")[0].rstrip(".") + "." if text else ""
        if self._full_description or first == text:
            html = f'{escape(text)}' + (' <a href="less">less</a>' if first != text else "")
        else:
            html = f'{escape(first)} <a href="more">more…</a>'
        self.description.setText(html)
        self.description.setToolTip(text)
        self.task.setToolTip(f"What the network learns (changing it resets training)\n\n{text}")

    @Slot(str)
    def _on_description_link_activated(self, link):
        self._full_description = link == "more"
        self._describe(self.task.currentData())

    # ------------------------------------------------------------ slots
    @Slot(int)
    def _on_task_changed(self, index):
        name = self.task.currentData()
        self._touched.add("task")
        self._describe(name)
        self.options.blockSignals(True)
        self.options.set_task(name, self._base.task_options if name == self._base.task else None)
        self.options.blockSignals(False)
        if name == "csv" and not self.options.values().get("path"):
            self.options.blockSignals(True)
            chosen = self.options.browse_path()
            self.options.blockSignals(False)
            if not chosen:
                self.set_config(self._base)
                return
        self.edited.emit()

    @Slot()
    def _on_any_edited(self):
        sender = self.sender()
        self._touched |= {f for f, w in self._fields.items() if w is sender}
        if sender is self.seq_len and "delay" in self.options.editors:
            # copy task: the delay follows from the sequence length unless given alone
            self.options.blockSignals(True)
            self.options.set_values({**self.options.values(), "delay": None})
            self.options.touched.add("delay")
            self.options.blockSignals(False)
        self.edited.emit()
