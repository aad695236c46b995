"""The training loop behind a window: commands in, events out, in one thread (no Qt).

A TrainingController owns the TrainingSession. Other threads `post` commands (put in a
queue; the loop looks between two steps); the controller answers through one callback,
`emit(event, *args)`, with the events

    snapshot_ready(Snapshot)  session_changed(SessionConfig, path)  running_changed(bool)
    compile_started()  compile_finished(seconds)  diverged(message)  saved(path)
    notice(message)  errored(message, details)

It runs wherever its caller runs `run()`: in the training process (training/process.py,
what the window uses) or in a thread of the caller's own (ui/worker.py, in_process=True).
"""

import logging
import queue
import threading
import traceback

from rnnviewer.errors import RnnviewerError

log = logging.getLogger(__name__)


class TrainingController:
    """Owns the TrainingSession; every session method runs in the thread of `run()`."""

    def __init__(self, emit, session_factory=None, snapshot_demand=None, last_run_id=0):
        if session_factory is None:
            from rnnviewer.training.session import TrainingSession
            session_factory = TrainingSession
        self.emit = emit
        self._factory = session_factory
        # snapshots/s the window can draw (None: no limit); a callable, or the "demand"
        # command's value when the window lives in another process
        self._demand_source = snapshot_demand or (lambda: self.demand)
        self.demand = None
        self._commands = queue.SimpleQueue()
        self._attention = threading.Event()   # set: a command is waiting or quit requested
        self._quit = threading.Event()
        self.session = None
        self.running = False
        self.pending_steps = 0
        self.speed = 0.0
        self._run_id = last_run_id          # run ids go on from here (a restarted process)
        self._compiled = set()
        self.analysis_requests = {}
        self.final_save_path = None           # autosave here when quitting
        # numba threads for training (None: numba's default, all cores); numba's thread
        # count is per calling thread, so this leaves other threads alone
        self.train_threads = None
        self._autosaved = None                # (run_id, step) of the last autosave

    # ------------------------------------------------------------ any thread
    def post(self, command, *args):
        if command == "final_save":     # at once: the loop may be quitting already
            self.final_save_path = args[0] or None
            return
        self._commands.put((command, args))
        self._attention.set()

    def request_quit(self):
        self._quit.set()
        self._attention.set()

    @property
    def quitting(self):
        return self._quit.is_set()

    # ------------------------------------------------------------ the loop's thread
    def run(self):
        """Process commands and train until quit; then the final save, if one was asked."""
        try:
            self._loop()
        except BaseException as e:  # never let an exception end the loop silently
            self._report(e)
        finally:
            if self.final_save_path:
                self._quiet_save(self.final_save_path)
            self.session = None

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

    def _emit(self, event, *args):
        if not self._quit.is_set():
            self.emit(event, *args)

    def _report(self, exc):
        if isinstance(exc, RnnviewerError):
            msg, details = str(exc), ""
        else:
            msg = f"{type(exc).__name__}: {exc}"
            details = "".join(traceback.format_exception(exc))
            log.error("training error\n%s", details)
        self._emit("errored", msg, details)

    def _set_running(self, running):
        if running != self.running:
            self.running = running
            self.emit("running_changed", running)

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
        self.emit("session_changed", session.config, path)
        self._compile(session)
        self._emit("snapshot_ready", session.snapshot())

    def _compile(self, session):
        c = session.config
        key = (c.cell, c.dtype, session.task.loss, c.batch > 1)
        new = key not in self._compiled
        if new:
            self.emit("compile_started")
        seconds = session.compile()
        self._compiled.add(key)
        if new:
            self._emit("compile_finished", seconds)

    def _on_session_snapshot(self, snap):
        self._emit("snapshot_ready", snap)
        # no more snapshots than the window draws (ui/panels/_schedule.py): each one
        # costs this thread the probe batch's forward and backward pass
        hz = self._demand_source()
        if hz and self.session is not None:
            self.session.set_snapshot_rate(hz)

    def _on_session_diverged(self, err):
        self._emit("diverged", str(err))

    # ------------------------------------------------------------ commands
    def _cmd_configure(self, config):
        self._install(self._factory(config))

    def _cmd_open(self, path, fallback=None):
        """Open a session file; if it cannot be opened and there is no session yet, start
        one with the SessionConfig `fallback` (something to show) and report why."""
        try:
            session = self._factory.from_file(path)
        except Exception:
            if fallback is not None and self.session is None:
                self._install(self._factory(fallback))
            raise
        self._install(session, path)

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
        self._emit("notice", note)

    def _cmd_save(self, path):
        if self.session is None:
            raise RnnviewerError("nothing to save yet")
        try:
            self.session.save(path)
        except OSError as e:
            raise RnnviewerError(f"{path}: cannot save there ({e.strerror or e})") from None
        self._emit("saved", path)

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
            self._emit("notice", f"Autosave failed: {path}: {e}")
            return
        self._autosaved = (s.run_id, s.step)

    def _cmd_running(self, running):
        if not running:
            self.pending_steps = 0
        self._set_running(running and self.session is not None)

    def _cmd_steps(self, n):
        self._set_running(False)
        self.pending_steps += n

    def _cmd_demand(self, hz):
        self.demand = hz

    def _cmd_threads(self, n):
        self.train_threads = n

    def _cmd_analyses(self, requests):
        self.analysis_requests = requests
        if self.session is not None:
            self.session.analysis_requests = requests
            if not self.running and not self.pending_steps:
                self._emit("snapshot_ready", self.session.snapshot())   # results while paused

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
            self._emit("snapshot_ready", s.snapshot())
