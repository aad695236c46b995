"""The training worker: a QObject that runs a TrainingSession in its own QThread.

The GUI thread talks to the worker only through thread-safe calls (`post` puts a
command in a queue and sets a `threading.Event` the training loop polls every step);
the worker answers with signals, which the window connects to @Slot methods of
GUI-thread objects only (NOTES.md: closures would run in the worker thread).

    worker = TrainingWorker(); thread = WorkerThread(worker)
    worker.configure(SessionConfig(...)); thread.start()
    worker.set_running(True) ... thread.stop(timeout=0.8)
"""

import logging
import queue
import threading
import time
import traceback
import weakref

from PySide6.QtCore import QObject, QThread, Signal, Slot

from rnnviewer.errors import RnnviewerError
from rnnviewer.ui.panels._schedule import snapshot_demand

log = logging.getLogger(__name__)

# Threads that were still busy (e.g. inside a numba compile, which cannot be
# interrupted) when their window closed. Kept referenced so Qt never destroys a
# running QThread; app.main() leaves with os._exit when any is still running.
ORPHANS = []
_LIVE = weakref.WeakSet()       # every WorkerThread not yet garbage (stop_all)


def orphans_running():
    return any(t.is_running() for t in ORPHANS)


def stop_all(timeout=120.0):
    """Stop every training thread of the process and wait for each, orphans included
    (up to `timeout` s each: a numba compile cannot be interrupted). For the end of a
    process that tears the interpreter down normally (the test suite): a training thread
    still running then frees Qt objects outside the GUI thread while the GUI thread
    deletes others, and the two deadlock. True if every thread ended."""
    threads = list(_LIVE) + [t for t in ORPHANS if t not in _LIVE]
    for t in threads:
        if t.is_running():
            t.worker.request_quit()
            t.thread.quit()
    return all(t.thread.wait(max(1, int(timeout * 1000))) for t in threads)


class TrainingWorker(QObject):
    """Owns the TrainingSession; every session method runs in the worker thread."""

    snapshot_ready = Signal(object)        # training.snapshot.Snapshot
    session_changed = Signal(object, str)  # (SessionConfig, file path or "")
    running_changed = Signal(bool)
    compile_started = Signal()
    compile_finished = Signal(float)       # seconds
    diverged = Signal(str)
    saved = Signal(str)
    notice = Signal(str)                   # something the user should read in the status bar
    errored = Signal(str, str)             # (message for the user, details)
    finished = Signal()

    def __init__(self, session_factory=None):
        super().__init__()
        if session_factory is None:
            from rnnviewer.training.session import TrainingSession
            session_factory = TrainingSession
        self._factory = session_factory
        self._commands = queue.SimpleQueue()
        self._attention = threading.Event()   # set: a command is waiting or quit requested
        self._quit = threading.Event()
        self.session = None
        self.running = False
        self.pending_steps = 0
        self.speed = 0.0
        self._run_id = 0
        self._compiled = set()
        self.analysis_requests = {}
        self.final_save_path = None           # set by the GUI: autosave here when quitting
        # numba threads for training in this thread (None: numba's default, all cores);
        # numba's thread count is per calling thread, so this leaves other threads alone
        self.train_threads = None
        self._autosaved = None                # (run_id, step) of the last autosave

    # ------------------------------------------------------------ GUI-thread API
    def post(self, command, *args):
        self._commands.put((command, args))
        self._attention.set()

    def configure(self, config):
        """Start a new run with `config` (a SessionConfig)."""
        self.post("configure", config)

    def open_session(self, path):
        self.post("open", str(path))

    def import_weights(self, path, config):
        self.post("import", str(path), config)

    def save_session(self, path):
        self.post("save", str(path))

    def autosave(self, path):
        """Save quietly to `path` between two steps, unless nothing changed since the last."""
        self.post("autosave", str(path))

    def set_running(self, running):
        self.post("running", bool(running))

    def step(self, n=1):
        """Make n steps, then pause."""
        self.post("steps", int(n))

    def set_live(self, **settings):
        """Apply shape-keeping settings (lr, clip, batch, speed) without a reset."""
        self.post("live", settings)

    def set_analysis_requests(self, requests):
        """The worker-side analyses the visible panels want: name -> options dict."""
        self.post("analyses", {k: dict(v) for k, v in requests.items()})

    def request_quit(self):
        self._quit.set()
        self._attention.set()

    @property
    def quitting(self):
        return self._quit.is_set()

    # ------------------------------------------------------------ worker thread
    @Slot()
    def run(self):
        """The thread's body: process commands and train until quit."""
        try:
            self._loop()
        except BaseException as e:  # never let an exception kill the thread silently
            self._report(e)
        finally:
            if self.final_save_path:
                self._quiet_save(self.final_save_path)
            self.session = None
            self.finished.emit()
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()          # thread-safe; ends the thread's event loop

    def _loop(self):
        while not self._quit.is_set():
            self._attention.clear()
            while not self._quit.is_set():
                try:
                    command, args = self._commands.get_nowait()
                except queue.Empty:
                    break
                try:
                    getattr(self, f"_cmd_{command}")(*args)
                except Exception as e:
                    self._report(e)
            if self._quit.is_set():
                break
            if self.session is None or not (self.running or self.pending_steps):
                self._attention.wait(0.5)
                continue
            try:
                self._train()
            except Exception as e:
                self._set_running(False)
                self.pending_steps = 0
                self._report(e)

    def _train(self):
        s = self.session
        if self.train_threads:
            import numba
            n = max(1, min(int(self.train_threads), numba.config.NUMBA_NUM_THREADS))
            if numba.get_num_threads() != n:
                numba.set_num_threads(n)
        if self.pending_steps:
            s.set_speed(0.0)
            done = s.run(max_steps=self.pending_steps, stop_event=self._attention)
            self.pending_steps = max(0, self.pending_steps - done)
            s.set_speed(self.speed)
            if s.diverged is not None:
                self.pending_steps = 0
        elif self.running:
            s.run(stop_event=self._attention)
        if s.diverged is not None:
            s.diverged = None
            self._set_running(False)

    def _report(self, exc):
        if isinstance(exc, RnnviewerError):
            msg, details = str(exc), ""
        else:
            msg = f"{type(exc).__name__}: {exc}"
            details = "".join(traceback.format_exception(exc))
            log.error("worker error\n%s", details)
        if not self._quit.is_set():
            self.errored.emit(msg, details)

    def _set_running(self, running):
        if running != self.running:
            self.running = running
            self.running_changed.emit(running)

    def _install(self, session, path=""):
        """Make `session` current: callbacks, compile, first snapshot."""
        self._run_id += 1
        session.run_id = self._run_id
        session.add_callback("on_snapshot", self._on_session_snapshot)
        session.add_callback("on_diverged", self._on_session_diverged)
        session.set_speed(self.speed)
        session.analysis_requests = self.analysis_requests
        self._set_running(False)
        self.pending_steps = 0
        self.session = session
        self.session_changed.emit(session.config, path)
        self._compile(session)
        if not self._quit.is_set():
            self.snapshot_ready.emit(session.snapshot())

    def _compile(self, session):
        c = session.config
        key = (c.cell, c.dtype, session.task.loss, c.batch > 1)
        new = key not in self._compiled
        if new:
            self.compile_started.emit()
        seconds = session.compile()
        self._compiled.add(key)
        if new and not self._quit.is_set():
            self.compile_finished.emit(seconds)

    def _on_session_snapshot(self, snap):
        if not self._quit.is_set():
            self.snapshot_ready.emit(snap)
            # no more snapshots than the window draws (ui/panels/_schedule.py): each one
            # costs this thread the probe batch's forward and backward pass
            hz = snapshot_demand()
            if hz and self.session is not None:
                self.session.set_snapshot_rate(hz)

    def _on_session_diverged(self, err):
        if not self._quit.is_set():
            self.diverged.emit(str(err))

    # ------------------------------------------------------------ commands
    def _cmd_configure(self, config):
        self._install(self._factory(config))

    def _cmd_open(self, path):
        self._install(self._factory.from_file(path), path)

    def _cmd_import(self, path, config):
        """Train on from weights trained elsewhere (torch layout), with the task of `config`."""
        from rnnviewer.engine import Model, import_weights
        from rnnviewer.training.session import build_task
        task = build_task(config)
        model = import_weights(path, expect_inputs=task.n_in, dtype=config.dtype)
        note = f"Imported {model.cell.upper()} H={model.n_hidden} from {path}"
        if model.n_out != task.n_out:
            fresh = Model(cell=model.cell, n_in=model.n_in, n_hidden=model.n_hidden,
                          n_out=task.n_out, seed=config.seed, dtype=config.dtype)
            for k in ("W_xh", "W_hh", "b_xh", "b_hh"):
                fresh.params[k] = model.params[k].astype(fresh.dtype)
            what = "has no readout" if not model.n_out else \
                f"has a readout with {model.n_out} outputs"
            note += f"; the file {what}, the task needs {task.n_out}: a new readout was initialised"
            model = fresh
        config = config.replace(cell=model.cell, hidden=model.n_hidden, dtype=model.dtype.name)
        self._install(self._factory(config, task=task, model=model))
        self.notice.emit(note)

    def _cmd_save(self, path):
        if self.session is None:
            raise RnnviewerError("nothing to save yet")
        try:
            self.session.save(path)
        except OSError as e:
            raise RnnviewerError(f"{path}: cannot save there ({e.strerror or e})") from None
        self.saved.emit(path)

    def _cmd_autosave(self, path):
        self._quiet_save(path)

    def _quiet_save(self, path):
        """Autosave: never an error dialog, a note in the status bar at most."""
        s = self.session
        if s is None or self._autosaved == (s.run_id, s.step):
            return
        try:
            s.save(path)
        except Exception as e:       # noqa: BLE001 - autosave must never stop training
            log.warning("autosave to %s failed: %s", path, e)
            if not self._quit.is_set():
                self.notice.emit(f"Autosave failed: {path}: {e}")
            return
        self._autosaved = (s.run_id, s.step)

    def _cmd_running(self, running):
        if not running:
            self.pending_steps = 0
        self._set_running(running and self.session is not None)

    def _cmd_steps(self, n):
        self._set_running(False)
        self.pending_steps += n

    def _cmd_analyses(self, requests):
        self.analysis_requests = requests
        if self.session is not None:
            self.session.analysis_requests = requests
            if not self.running and not self.pending_steps:
                self.snapshot_ready.emit(self.session.snapshot())   # results while paused

    def _cmd_live(self, settings):
        self.speed = float(settings.get("speed", self.speed) or 0.0)
        s = self.session
        if s is None:
            return
        if "lr" in settings:
            s.set_lr(settings["lr"])
        if "clip" in settings:
            s.set_clip(settings["clip"])
        if "batch" in settings:
            s.set_batch(settings["batch"])
        s.set_speed(self.speed)
        if not self.running:
            self.snapshot_ready.emit(s.snapshot())


class WorkerThread:
    """A QThread that runs `worker.run`, with a stop that never blocks for long.

    Holds strong references to the worker and the thread until the thread has
    finished (or hands them to ORPHANS if it could not finish in time).
    """

    def __init__(self, worker):
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName("rnnviewer-training")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        _LIVE.add(self)

    def start(self):
        self.thread.start()

    def is_running(self):
        return self.thread.isRunning()

    def stop(self, timeout=0.8):
        """Ask the worker to quit and wait up to `timeout` s. True if it finished."""
        self.worker.request_quit()
        self.thread.quit()
        t0 = time.monotonic()
        finished = self.thread.wait(max(1, int(timeout * 1000)))
        if not finished:
            # Busy in something uninterruptible (a numba compile): keep it alive and let it
            # end by itself; never destroy a running QThread.
            ORPHANS.append(self)
            log.info("training thread still busy after %.2f s; left to finish",
                     time.monotonic() - t0)
        return finished
