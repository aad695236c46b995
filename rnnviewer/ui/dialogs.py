"""Message boxes and small dialogs. The window calls them through this module, so
tests replace them (monkeypatch) instead of clicking."""

import platform
import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDialog, QLabel, QMessageBox, QVBoxLayout

from rnnviewer.ui import settings

SHORTCUTS = [
    ("Space", "Start or pause training"),
    ("Right, Ctrl+.", "One training step"),
    ("Ctrl+R", "Reset training (same settings)"),
    ("Ctrl+N", "New session with default settings"),
    ("Ctrl+O", "Open a session file"),
    ("Ctrl+S", "Save the session"),
    ("Ctrl+Shift+S", "Save the session as a new file"),
    ("Ctrl+E", "Export every visible panel as PNG"),
    ("Ctrl+Shift+R", "Reset the window layout"),
    ("F1", "Keyboard shortcuts"),
    ("Ctrl+Q", "Quit"),
]


def show_error(parent, title, text, details=""):
    """A modal error message (with the technical details folded away)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                      parent)
    if details:
        box.setDetailedText(details)
    box.exec()


def confirm_reset(parent, what):
    """Ask whether changing `what` may reset training. True to go ahead."""
    if settings.get_bool("confirm/skip_reset", False):
        return True
    box = QMessageBox(QMessageBox.Icon.Question, "Reset training?",
                      f"Changing {what} restarts training from step 0 with a freshly "
                      "initialised network. The current run is lost unless you saved it.",
                      QMessageBox.StandardButton.Reset | QMessageBox.StandardButton.Cancel,
                      parent)
    box.setDefaultButton(QMessageBox.StandardButton.Reset)
    skip = QCheckBox("Do not ask again")
    box.setCheckBox(skip)
    ok = box.exec() == QMessageBox.StandardButton.Reset
    if ok and skip.isChecked():
        settings.set_value("confirm/skip_reset", True)
    return ok


def versions():
    """Name -> version of everything that matters for a bug report."""
    import numba
    import numpy
    import pyqtgraph
    import PySide6
    from PySide6.QtCore import qVersion

    import rnnviewer
    return {"rnnviewer": rnnviewer.__version__, "Python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__,
            "PySide6": PySide6.__version__, "Qt": qVersion(), "pyqtgraph": pyqtgraph.__version__,
            "platform": f"{platform.system()} {platform.release()} ({platform.machine()})"}


def about_text():
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in versions().items())
    return ("<h3>rnnviewer</h3><p>Train small recurrent networks (RNN, GRU, LSTM) live and "
            "look inside them while they learn.</p>"
            f"<table>{rows}</table><p>Python executable: {sys.executable}</p>")


def show_about(parent):
    QMessageBox.about(parent, "About rnnviewer", about_text())


def shortcuts_text():
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
    return f"<table>{rows}</table>"


def show_shortcuts(parent):
    dlg = QDialog(parent)
    dlg.setWindowTitle("Keyboard shortcuts")
    lay = QVBoxLayout(dlg)
    label = QLabel(shortcuts_text())
    label.setTextFormat(Qt.TextFormat.RichText)
    lay.addWidget(label)
    dlg.exec()
