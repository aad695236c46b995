"""Garbage collection in the GUI thread only.

Python's cyclic garbage collector runs in whichever thread happens to allocate; while
training runs, that is usually the worker thread, and a collected cycle that holds a Qt
object (a panel's plot item, a dialog) would then be destroyed outside the GUI thread,
which Qt does not allow (crashes, or aborts). So while a window is open, automatic
collection is off and a GUI-thread timer collects instead (pyqtgraph's GarbageCollector
does the same).
"""

import gc

import shiboken6
from PySide6.QtCore import QObject, QTimer, Slot

_ACTIVE = []                   # guards alive; automatic collection resumes when none is
_STATE = {"enabled_before": True}


class GuiThreadGC(QObject):
    def __init__(self, parent=None, interval_ms=500):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.collections = 0
        if not _ACTIVE:
            _STATE["enabled_before"] = gc.isenabled()
        _ACTIVE.append(self)
        gc.disable()
        # deleted with its window without stop() (a window never closed): clean up too
        self.destroyed.connect(_prune)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    @Slot()
    def _on_timer_timeout(self):
        self.check()

    def check(self):
        """Collect the generations whose counts passed their thresholds (as gc would)."""
        l0, l1, l2 = gc.get_count()
        if l0 > self.threshold[0]:
            gc.collect(0)
            self.collections += 1
            if l1 > self.threshold[1]:
                gc.collect(1)
                if l2 > self.threshold[2]:
                    gc.collect(2)

    @Slot()
    def on_thread_finished(self):
        """A worker thread that outlived its window has ended: stop now."""
        self.stop()

    def stop(self):
        """Stop; automatic collection comes back once no guard is active."""
        self._timer.stop()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        _prune()


def _prune(*_):
    """Forget guards whose Qt object is gone; re-enable collection when none is left."""
    _ACTIVE[:] = [g for g in _ACTIVE if shiboken6.isValid(g)]
    if not _ACTIVE and _STATE["enabled_before"]:
        gc.enable()
