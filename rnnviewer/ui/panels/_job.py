"""A cancellable computation in a QThread of its own, for panels (NOTES.md Qt rules).

    job = Job(fn, owner=panel, job_id=n)   # fn(progress, should_stop) -> result
    job.start()
    ... job.cancel(wait_ms=2000)

`fn` runs in the job's thread; it may call `progress(fraction, text)` (throttled to about
20 signals a second) and should poll `should_stop()` (a threading.Event). The runner's
signals reach only @Slot methods of `owner` (a GUI-thread QObject):
    owner._on_job_progressed(int job_id, float fraction, str text)
    owner._on_job_succeeded(int job_id, object result)
    owner._on_job_failed(int job_id, str message, str details)
    owner._on_job_ended(int job_id)             # the thread has finished
Every Job keeps itself (QThread and runner) referenced in RUNNING until its thread has
finished, so a running QThread is never destroyed; the owner's destruction, the
application's aboutToQuit, the interpreter's exit (atexit) and `cancel_all()` stop it
and wait for it.
"""

import atexit
import logging
import threading
import time
import traceback
import weakref

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QApplication

from rnnviewer.errors import RnnviewerError
from rnnviewer.ui.panels import Panel

log = logging.getLogger(__name__)

RUNNING = set()                # Jobs whose thread may still run
PROGRESS_INTERVAL = 0.05       # seconds between progress signals


class _Runner(QObject):
    """Lives in the job's thread and runs fn there."""

    progressed = Signal(int, float, str)
    succeeded = Signal(int, object)
    failed = Signal(int, str, str)

    def __init__(self, fn, job_id, stop):
        super().__init__()
        self._fn, self._id, self._stop = fn, job_id, stop
        self._last = 0.0

    def _progress(self, fraction, text=""):
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL or fraction >= 1.0:
            self._last = now
            self.progressed.emit(self._id, float(fraction), str(text))

    @Slot()
    def run(self):
        try:
            out = self._fn(self._progress, self._stop.is_set)
        except BaseException as e:  # never let the thread die silently
            msg = str(e) if isinstance(e, RnnviewerError) else f"{type(e).__name__}: {e}"
            self.failed.emit(self._id, msg, traceback.format_exc())
        else:
            self.succeeded.emit(self._id, out)
        finally:
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()


class Job(QObject):
    """One run of `fn` in its own QThread (see the module docstring)."""

    ended = Signal(int)            # the thread has finished (job id)

    def __init__(self, fn, owner, job_id, name="rnnviewer-job"):
        super().__init__()                 # no parent: it must outlive its owner
        self.job_id = int(job_id)
        self.stop_event = threading.Event()
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.runner = _Runner(fn, self.job_id, self.stop_event)
        self.runner.moveToThread(self.thread)
        self.thread.started.connect(self.runner.run)
        self.thread.finished.connect(self._on_thread_finished)
        self.runner.progressed.connect(owner._on_job_progressed)
        self.runner.succeeded.connect(owner._on_job_succeeded)
        self.runner.failed.connect(owner._on_job_failed)
        self.ended.connect(owner._on_job_ended)
        owner.destroyed.connect(self._on_owner_destroyed)
        self._owner = weakref.ref(owner)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_app_about_to_quit)
        self._ended = False

    def start(self):
        RUNNING.add(self)
        self.thread.start()

    def is_running(self):
        return not self._ended and self.thread.isRunning()

    def cancel(self, wait_ms=0):
        """Ask fn to stop; with wait_ms > 0 wait that long for the thread. True if it ended."""
        self.stop_event.set()
        if self._ended:
            return True
        self.thread.quit()
        if wait_ms > 0 and self.thread.isRunning():
            if not self.thread.wait(int(wait_ms)):
                log.warning("%s still busy after %d ms; left to finish",
                            self.thread.objectName(), wait_ms)
                return False
        if not self.thread.isRunning():
            self._deliver_queued()
            self._finish()
        return True

    def _deliver_queued(self):
        """Deliver the result or error the thread queued to its owner before it ended, so
        that `ended` still comes after them when cancel() finds the thread finished."""
        owner = self._owner()
        try:
            if owner is not None and owner.thread() is QThread.currentThread():
                QCoreApplication.sendPostedEvents(owner, QEvent.Type.MetaCall)
        except RuntimeError:        # the owner's C++ side is gone
            pass

    def _finish(self):
        if self._ended:
            return
        self._ended = True
        self.thread.wait()         # returns at once: finished was emitted, only cleanup left
        RUNNING.discard(self)
        self.ended.emit(self.job_id)

    @Slot()
    def _on_thread_finished(self):
        self._finish()

    @Slot()
    def _on_owner_destroyed(self):
        self.cancel(wait_ms=5000)

    @Slot()
    def _on_app_about_to_quit(self):
        self.cancel(wait_ms=5000)


def cancel_all(wait_ms=5000):
    """Stop every running job and wait for them (True if all ended)."""
    return all([job.cancel(wait_ms) for job in list(RUNNING)])



class JobPanel(Panel):
    """A Panel that runs one Job at a time (a newer run replaces an older one, whose late
    results are ignored) and stops it when the panel closes or is destroyed, when its
    window closes and when the application quits. Subclasses implement `job_progressed`,
    `job_succeeded`, `job_failed` and `job_ended`."""

    JOIN_MS = 3000             # how long closing waits for a job to notice the stop
    job = None                 # the running Job (None when idle)
    _job_serial = 0            # id of the newest job
    _filtered = None           # the top-level widget whose close event we watch

    # ------------------------------------------------------------ API
    def start_job(self, fn, name):
        """Run fn(progress, should_stop) in a new thread (cancelling any running job)."""
        self.cancel_job()
        self._job_serial += 1
        self.job = Job(fn, self, self._job_serial, name=name)
        self.job.start()
        return self.job

    def cancel_job(self, wait_ms=0):
        """Stop the running job (its result, partial, still arrives unless replaced)."""
        if self.job is not None:
            return self.job.cancel(wait_ms)
        return True

    def discard_job(self):
        """Stop the running job and ignore everything it still sends (after a reset its
        result belongs to a model that no longer exists). No `job_ended` follows."""
        job, self.job = self.job, None
        # the serial first: cancelling may end the job at once (its thread already
        # finished), and its queued result must then find a newer serial
        self._job_serial += 1          # the Job stays referenced in RUNNING until it ends
        if job is not None:
            job.cancel()

    def job_running(self):
        return self.job is not None and self.job.is_running()

    def job_progressed(self, fraction, text):
        """Progress of the current job (GUI thread)."""

    def job_succeeded(self, result):
        """The current job's result (GUI thread)."""

    def job_failed(self, message, details):
        """The current job raised (GUI thread)."""

    def job_ended(self):
        """The current job's thread has finished (after its result or error)."""

    # ------------------------------------------------------------ job slots
    @Slot(int, float, str)
    def _on_job_progressed(self, job_id, fraction, text):
        if job_id == self._job_serial:
            self.job_progressed(fraction, text)

    @Slot(int, object)
    def _on_job_succeeded(self, job_id, result):
        if job_id == self._job_serial:
            self.job_succeeded(result)

    @Slot(int, str, str)
    def _on_job_failed(self, job_id, message, details):
        if job_id == self._job_serial:
            log.warning("%s failed:\n%s", self.object_name, details)
            self.job_failed(message, details)

    @Slot(int)
    def _on_job_ended(self, job_id):
        if job_id == self._job_serial:
            self.job = None
            self.job_ended()

    # ------------------------------------------------------------ closing
    def showEvent(self, event):
        super().showEvent(event)
        top = self
        while top.parentWidget() is not None:
            top = top.parentWidget()
        if top is not self and top is not self._filtered:
            top.installEventFilter(self)
            self._filtered = top

    def eventFilter(self, obj, event):
        if obj is self._filtered and event.type() == QEvent.Type.Close:
            self.cancel_job(self.JOIN_MS)
        return super().eventFilter(obj, event)

    def closeEvent(self, event):
        self.cancel_job(self.JOIN_MS)
        super().closeEvent(event)


atexit.register(cancel_all)


class ProgressJobPanel(JobPanel):
    """A JobPanel with the usual controls for its job: a run button (`run_label`, then
    "Restart" while a job runs), a cancel button, a progress bar (0-1000) and an info
    line. Subclasses build `run_button`, `cancel_button`, `progress`, `info`, `auto_box`
    and `auto_spin` (run again every so many steps), keep `result` (None before any), and
    implement `run()` and `_show_message(text)`; `job_title` names the work in failure
    messages."""

    run_label = "Run"
    job_title = "the job"
    start_hint = "start"           # "press <run_label> to <start_hint>"
    result = None
    _failure = None                # message of the last failed run
    _started = 0.0                 # time.monotonic() when the last run started
    _ran_run_id = None             # run_id of the session the last run was for

    def launch(self, fn, name, run_id):
        """start_job(fn, name) for the session `run_id`, the controls set to running."""
        self._ran_run_id = run_id
        self._failure = None
        self._started = time.monotonic()
        self.start_job(fn, name)
        self.run_button.setText("Restart")
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting\u2026")

    def follow_training(self, snap, pending=False):
        """redraw() of a panel whose picture is its job's result: run again for a new
        session (or when `pending`) if on screen, else say how to start; and every
        `auto_spin` steps while `auto_box` is checked. Returns False: a new snapshot alone
        changes nothing on screen (the picture comes with the result, job_succeeded), so
        it is not a frame. Subclasses implement `run()`."""
        if self.job_running():
            return False
        if self._ran_run_id != snap.run_id or pending:
            if self.is_shown():
                self.run()
            elif self.result is None:
                self._show_message(f"press {self.run_label} to {self.start_hint}")
            return False
        if self.auto_box.isChecked() and self.result is not None and self.is_shown() and \
                snap.step - self.result["step"] >= self.auto_spin.value():
            self.run()
        return False

    def reset_job(self):
        """Forget the job and its result (a reset: they describe the old model)."""
        self.discard_job()
        self.cancel_button.setEnabled(False)
        self.run_button.setText(self.run_label)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.result = None
        self._failure = None
        self._ran_run_id = None

    def job_progressed(self, fraction, text):
        self.progress.setValue(int(round(1000 * fraction)))
        self.progress.setFormat(f"{100 * fraction:.0f}%  {text}")

    def job_failed(self, message, details):
        self._failure = message
        if self.result is None:
            self._show_message(f"{self.job_title} failed: {message}")
        self.info.setText(f"failed: {message}")
        self.info.setStyleSheet("color: #a03030;")

    def job_ended(self):
        self.cancel_button.setEnabled(False)
        self.run_button.setText(self.run_label)
        if self.result is not None and self.result.get("stopped"):
            self.progress.setFormat("cancelled")
        elif self._failure:
            self.progress.setFormat("failed")
        else:
            self.progress.setValue(1000)
            self.progress.setFormat(f"done in {time.monotonic() - self._started:.1f} s")
