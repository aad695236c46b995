"""The training worker: a QObject in its own QThread, between the window and training.

Training runs in a process of its own (training/process.py: in one process the
window's paints and the training share Python's lock); this worker's thread starts that
process, hands it the window's commands and turns its events into signals. With
`in_process=True` (tests that patch the session, experiments) the same
TrainingController runs in this QThread instead. Either way the window sees one API.

The GUI thread talks to the worker only through thread-safe calls (`post`: a command to
the process's pipe, or to the controller's queue); the worker answers with signals,
which the window connects to @Slot methods of GUI-thread objects only (NOTES.md:
closures would run in the worker thread).

    worker = TrainingWorker(); thread = WorkerThread(worker)
    worker.configure(SessionConfig(...)); thread.start()
    worker.set_running(True) ... thread.stop(timeout=0.8)
"""

import logging
import multiprocessing
import os
import threading
import time
import weakref

from PySide6.QtCore import QObject, QThread, Signal, Slot

from rnnviewer.training.controller import TrainingController
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
    """The window's handle on training (see the module): commands in, signals out."""

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

    QUIT_WAIT = 3.0     # s the training process gets to end after quit (a final autosave)

    def __init__(self, session_factory=None, in_process=None):
        super().__init__()
        if in_process is None:
            in_process = os.environ.get("RNNVIEWER_TRAIN_IN_PROCESS", "") not in ("", "0")
        self._factory = session_factory   # in a process: must be importable by name
        self._quit = threading.Event()
        self._lock = threading.Lock()
        self._pending = []                # commands posted before the process exists
        self._proc = None                 # training.process.TrainingProcess
        self._resend = {}                 # what a restarted process needs: command -> args
        self._demand_sent = None
        self._last_run_id = 0
        self._compiling = False
        self._heard = False               # the process sent something: it started
        # request_quit writes here to wake the relay from its wait for events
        self._wake_recv, self._wake_send = multiprocessing.Pipe(duplex=False)
        self.controller = TrainingController(self._emit_signal, session_factory,
                                             snapshot_demand) if in_process else None

    @property
    def child_pid(self):
        """The training process's pid (None in-process or before it started)."""
        proc = self._proc
        return None if proc is None else proc.pid

    # ------------------------------------------------------------ GUI-thread API
    def post(self, command, *args):
        with self._lock:      # one order for every command, whoever sends them (relay)
            self._remember(command, args)
            if self.controller is not None:
                self.controller.post(command, *args)
            elif self._proc is not None:
                self._proc.send(command, *args)
            else:
                self._pending.append((command, args))

    def _remember(self, command, args):
        """Keep what a new training process needs to go on where this one was."""
        if command in ("configure", "open", "import"):
            for c in ("configure", "open", "import"):
                self._resend.pop(c, None)
            self._resend[command] = args
        elif command == "live":
            self._resend["live"] = ({**self._resend.get("live", ({},))[0], **args[0]},)
        elif command in ("analyses", "threads", "final_save"):
            self._resend[command] = args

    def configure(self, config):
        """Start a new run with `config` (a SessionConfig)."""
        self.post("configure", config)

    def open_session(self, path, fallback=None):
        """Open a session file; `fallback` (a SessionConfig): the run to start instead if
        it cannot be opened and there is none yet."""
        self.post("open", str(path), fallback)

    def import_weights(self, path, config):
        self.post("import", str(path), config)

    def save_session(self, path):
        self.post("save", str(path))

    def autosave(self, path):
        """Save quietly to `path` between two steps, unless nothing changed since the last."""
        self.post("autosave", str(path))

    def set_final_save(self, path):
        """Autosave to `path` when training stops (a clean quit)."""
        self.post("final_save", str(path) if path else "")

    def set_running(self, running):
        self.post("running", bool(running))

    def step(self, n=1):
        """Make n steps, then pause."""
        self.post("steps", int(n))

    def set_live(self, **settings):
        """Apply shape-keeping settings (lr, clip, batch, speed) without a reset."""
        self.post("live", settings)

    def set_train_threads(self, n):
        """numba threads for training (None: all cores); for experiments."""
        self.post("threads", n)

    def set_analysis_requests(self, requests):
        """The worker-side analyses the visible panels want: name -> options dict."""
        self.post("analyses", {k: dict(v) for k, v in requests.items()})

    def request_quit(self):
        self._quit.set()
        with self._lock:
            controller, proc = self.controller, self._proc
        if controller is not None:
            controller.request_quit()
            return
        if proc is not None:
            proc.send("quit")
        try:
            self._wake_send.send_bytes(b"q")
        except (OSError, ValueError):
            pass

    @property
    def quitting(self):
        return self._quit.is_set()

    # ------------------------------------------------------------ worker thread
    @Slot()
    def run(self):
        """The thread's body: run the controller here, or relay the training process."""
        try:
            if self.controller is not None:
                self.controller.run()
            else:
                self._relay()
        except BaseException as e:  # never let an exception kill the thread silently
            log.exception("training worker failed")
            if not self._quit.is_set():
                self.errored.emit(f"{type(e).__name__}: {e}", "")
        finally:
            self.finished.emit()
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()          # thread-safe; ends the thread's event loop

    def _emit_signal(self, event, *args):
        getattr(self, event).emit(*args)

    def _start_process(self, commands=None):
        from rnnviewer.training.process import TrainingProcess
        proc = TrainingProcess.open(self._factory, self._last_run_id)
        with self._lock:
            for command, args in (commands or []) + self._pending:
                proc.send(command, *args)
            self._pending = []
            self._proc = proc
        if self._quit.is_set():
            proc.send("quit")
        return proc

    def _relay(self):
        """Start the training process and turn its events into signals until it ends;
        if it dies, say so and start a fresh one with the last session's settings."""
        try:
            proc = self._start_process()
        except Exception as e:      # noqa: BLE001 - e.g. a factory that cannot be pickled
            self._train_here(f"{type(e).__name__}: {e}")
            return
        quit_at = None
        self._compiling = False
        try:
            while True:
                if self._quit.is_set() and quit_at is None:
                    quit_at = time.monotonic()
                if quit_at is not None and (self._compiling or
                                            time.monotonic() - quit_at > self.QUIT_WAIT):
                    break    # a compile cannot be interrupted: proc.stop() terminates it
                if self._wake_recv.poll():
                    self._wake_recv.recv_bytes()
                try:
                    events = proc.receive(0.5, self._wake_recv)
                except (EOFError, OSError):
                    if self._quit.is_set():
                        break
                    if not self._heard:             # it never started: train here
                        proc.stop(0.1)
                        self._train_here(proc.exit_description())
                        return
                    proc = self._restart(proc)
                    continue
                if self._forward(proc, events):
                    break
        finally:
            proc.stop(0.0 if self._compiling else 0.5)
            self._wake_recv.close()
            self._wake_send.close()

    def _forward(self, proc, events):
        """Emit the process's events as signals; True once it said it finished."""
        for event, args in events:
            self._heard = True
            if event == "finished":
                return True
            if event in ("compile_started", "compile_finished"):
                self._compiling = event == "compile_started"
            if self._quit.is_set() and event != "running_changed":
                continue
            getattr(self, event).emit(*args)
            if event == "snapshot_ready":
                self._last_run_id = args[0].run_id
                self._send_demand(proc)
        return False

    def _send_demand(self, proc):
        """Tell the process how many snapshots/s the panels draw (it makes no more)."""
        hz = snapshot_demand()
        last = self._demand_sent
        if hz and (last is None or abs(hz - last) > 0.1 * last):
            self._demand_sent = hz
            proc.send("demand", hz)

    def _replay(self):
        """The commands that bring a new process to where the last one was (the caller
        holds self._lock)."""
        order = ("configure", "open", "import", "live", "analyses", "threads", "final_save")
        return [(c, self._resend[c]) for c in order if c in self._resend]

    def _train_here(self, why):
        """The training process could not start (a sandbox, a broken install): run the
        controller in this thread instead, with what the window asked for so far."""
        log.warning("training process did not start (%s); training in-process", why)
        controller = TrainingController(self._emit_signal, self._factory, snapshot_demand,
                                        last_run_id=self._last_run_id)
        with self._lock:
            for command, args in self._replay() + self._pending:
                controller.post(command, *args)
            self._pending = []
            self.controller = controller
        if self._quit.is_set():
            controller.request_quit()
        self.notice.emit(f"The training process did not start ({why}); "
                         "training runs in the window's process (slower while drawing)")
        controller.run()

    def _restart(self, proc):
        proc.wait_ended(1.0)      # its exit code, for the message
        what = proc.exit_description()
        log.error("training process ended unexpectedly (%s)", what)
        proc.stop(0.1)
        self.running_changed.emit(False)
        self.errored.emit(
            f"The training process stopped unexpectedly ({what}). A new one starts with "
            "the last session settings; training since the last save is lost "
            "(the autosave keeps a recent copy).", "")
        self._demand_sent = None
        self._compiling = False
        self._heard = False
        with self._lock:
            self._proc = None       # commands wait in _pending until the new one is up
            commands = self._replay()
        return self._start_process(commands)


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
