"""Test setup shared by the whole suite.

Qt must run offscreen (no display on CI) and must know it before any QApplication
exists; numba caches into a temp folder unless the caller chose one; QSettings write
into a temp folder, never into the user's real settings.
"""

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba_cache"))

_SETTINGS_DIR = tempfile.mkdtemp(prefix="rnnviewer-test-settings-")
os.environ["RNNVIEWER_TEST_SETTINGS_DIR"] = _SETTINGS_DIR

try:  # only when Qt is installed: engine tests must run without it
    from PySide6.QtCore import QSettings
except ImportError:  # pragma: no cover
    QSettings = None
else:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, _SETTINGS_DIR)

if QSettings is not None:   # autosave and its crash marker: never the user's data folder
    from rnnviewer.ui import autosave as _autosave
    _autosave.use_data_dir(os.path.join(_SETTINGS_DIR, "data"))


def pytest_sessionfinish(session, exitstatus):
    """Let every training thread end before the interpreter tears Qt down: one still
    running at exit (a window a test left open, or one orphaned inside a numba compile)
    deadlocked pytest's exit against the GUI thread's deletions."""
    if QSettings is not None:
        from rnnviewer.ui.worker import stop_all
        stop_all()
