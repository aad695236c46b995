"""Test setup shared by the whole suite.

Qt must run offscreen (no display on CI) and must know it before any QApplication
exists; numba caches into a temp folder unless the caller chose one; QSettings write
into a temp folder, never into the user's real settings.
"""

import gc
import os
import tempfile

import pytest

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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """No automatic cyclic garbage collection during a test (setup, call, teardown and
    pytest-qt's event processing between them); the young generations are collected
    after it, and every generation once the old one's count says so, as gc would. So a
    collection never runs inside a Qt paint, as in the application (ui/gcguard.py:
    collection at safe points of the GUI thread only). Why: full runs segfaulted now and
    then (about one in four on one machine, at 29d05c5 too) in QPainter::setWorldTransform
    on a freed paint engine while pytest-qt painted a histograms panel, and a collection
    freeing objects in the middle of a panel's paint was seen in those tests; the link is
    not proven. The generation-0 threshold is raised rather than gc.disable()d, so tests
    of gc.isenabled() (the window's GuiThreadGC) see what the application sees."""
    saved = gc.get_threshold()
    gc.set_threshold(1 << 30, *saved[1:])
    try:
        return (yield)
    finally:
        gc.set_threshold(*saved)
        gc.collect(2 if gc.get_count()[2] >= saved[2] else 1)
