"""Training in a process of its own: a TrainingController behind a pipe (no Qt).

Why a process: in one process the window's drawing and the training share Python's
lock (PySide6 keeps it during Qt's C++ calls), and the training waits for paints; a
training process also can be ended at once mid-compile, and its crash does not take the
window with it. Measured on 2 cores (H = 128, T = 100, 3 panels drawn, GUI budget 0.35
of a core): training in a thread of the window's process kept 64% of its headless speed
at 19 frames/s, in a process of its own 69-89% at 19-20 frames/s (benchmarks/bench_gui.py,
runs vary by about 0.1). What remains is the cores themselves: the GUI's share of the
two cores is taken from the training's two threads.

    proc = TrainingProcess()            # spawns the child; it imports the engine meanwhile
    proc.send("configure", config)      # any TrainingController command
    for event, args in proc.receive(0.1): ...   # TrainingController events
    proc.stop(timeout=3.0)              # "quit", then terminate if it does not end

The child ends by itself when its parent goes (the pipe closes). Messages are pickled
by multiprocessing between our own two processes; files are never unpickled.
"""

import collections
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time

from rnnviewer.training.snapshot import (HistoryJoiner, Snapshot, history_counts,
                                         with_history_tail)

QUIT_GRACE = 2.0     # s a child whose parent is gone may take to end before it exits hard


def serve(conn, session_factory=None, last_run_id=0):
    """The child's main: run a TrainingController, commands from `conn`, events to it.
    (NUMBA_CACHE_DIR comes with the parent's environment, app.setup_numba_cache.)"""
    from rnnviewer.training.controller import TrainingController
    outbox = Outbox(conn)
    controller = TrainingController(outbox.put, session_factory, last_run_id=last_run_id)
    outbox.on_closed = controller.request_quit
    reader = threading.Thread(target=_read_commands, args=(conn, controller),
                              name="rnnviewer-commands", daemon=True)
    reader.start()
    try:
        warm_up()
    except Exception:     # noqa: BLE001 - the first session meets it again and reports it
        pass
    controller.run()
    outbox.put("finished")
    outbox.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)     # all is said and saved: skip tearing down numba's and numpy's modules


class Outbox:
    """Events to the parent from a thread of their own, so that training never waits for
    the window to read them (a 1 MB snapshot fills the pipe 16 times over, and the
    window's process reads between its paints). Events are pickled by the caller, in
    order; a snapshot still waiting when a newer one comes is dropped (latest wins).
    A snapshot carries only the history rows from the end of the last snapshot sent on
    (snapshot.HistoryTail; TrainingProcess.receive joins them again): a dropped one's
    rows come with the one that superseded it."""

    def __init__(self, conn):
        from multiprocessing.reduction import ForkingPickler
        self._dumps = ForkingPickler.dumps
        self.conn = conn
        self.on_closed = None
        self._items = collections.deque()     # (history sent with it or None, pickled bytes)
        self._ready = threading.Condition()
        self._closing = False
        self._history_sent = (None, (0, 0))   # (run_id, (train, val) rows) the parent has
        self._thread = threading.Thread(target=self._send_loop, name="rnnviewer-outbox",
                                        daemon=True)
        self._thread.start()

    def put(self, event, *args):
        snapshot, sent = event == "snapshot_ready", None
        if snapshot and isinstance(args[0], Snapshot):
            snap = args[0]
            with self._ready:
                run_id, counts = self._history_sent
            args = (with_history_tail(snap, counts if run_id == snap.run_id else (0, 0)),)
            sent = (snap.run_id, history_counts(snap.history))
        data = self._dumps((event, args))
        with self._ready:
            if snapshot and self._items and self._items[-1][0] is not False:
                self._items.pop()             # superseded before it was sent
            self._items.append((sent if snapshot else False, data))
            self._ready.notify()

    def close(self, timeout=5.0):
        """Send what is waiting (up to `timeout` s), then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(timeout)

    def _send_loop(self):
        while True:
            with self._ready:
                while not self._items and not self._closing:
                    self._ready.wait()
                if not self._items:
                    return
                sent, data = self._items.popleft()
            try:
                self.conn.send_bytes(data)
            except (OSError, ValueError):     # the parent is gone
                if self.on_closed is not None:
                    self.on_closed()
                return
            if sent:
                with self._ready:
                    self._history_sent = sent


def warm_up():
    """What the first session needs whatever its cell, done before the first command
    arrives (a prestarted process gets it while the window is built): numba, the cells'
    kernel modules and numba's lowering registries, which the first kernel loaded from
    the cache fills (about 0.3 + 0.5 s, measured)."""
    from numba.core.registry import cpu_target

    from rnnviewer.engine.kernels import get_cell
    for cell in ("rnn", "gru", "lstm"):
        get_cell(cell)
    cpu_target.target_context.refresh()


def _read_commands(conn, controller):
    """Commands from the parent into the controller; the parent gone: quit."""
    while True:
        try:
            command, args = conn.recv()
        except (OSError, EOFError, ValueError):
            break
        if command == "quit":
            controller.request_quit()
            return
        controller.post(command, *args)
    controller.request_quit()
    time.sleep(QUIT_GRACE)      # a compile cannot be interrupted: do not outlive the window
    os._exit(0)


_PRESTARTED = []     # a TrainingProcess started early (prestart), not yet taken


def prestart():
    """Start a training process now, before the window is built: it imports the engine
    meanwhile, on another core. The first TrainingProcess.open() takes it."""
    if not _PRESTARTED:
        _PRESTARTED.append(TrainingProcess())


class TrainingProcess:
    """The parent's handle on a training child process."""

    @classmethod
    def open(cls, session_factory=None, last_run_id=0):
        """The prestarted process if it fits (the default factory, the first run), else
        a new one."""
        if session_factory is None and last_run_id == 0 and _PRESTARTED:
            proc = _PRESTARTED.pop()
            if proc.process.is_alive():
                return proc
            proc.stop(0.0)
        return cls(session_factory, last_run_id)

    def __init__(self, session_factory=None, last_run_id=0):
        ctx = multiprocessing.get_context("spawn")   # fork is unsafe once Qt runs threads
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child_conn, session_factory, last_run_id),
                                   name="rnnviewer-training", daemon=True)
        self.process.start()
        child_conn.close()
        self._lock = threading.Lock()
        self._history = HistoryJoiner()

    @property
    def pid(self):
        return self.process.pid

    def send(self, command, *args):
        """Post a command; False if the child is gone."""
        with self._lock:
            try:
                self.conn.send((command, args))
                return True
            except (OSError, EOFError, ValueError):
                return False

    def receive(self, timeout, wake=None):
        """The events that arrived within `timeout` s (all that are waiting, at least one
        if any comes), or none if the Connection `wake` became readable first. Raises
        EOFError when the child has ended."""
        events = []
        ready = multiprocessing.connection.wait([self.conn] + ([wake] if wake else []), timeout)
        if self.conn in ready:
            while True:
                event, args = self.conn.recv()
                if event == "snapshot_ready":
                    args = (self._history.join(args[0]),)
                events.append((event, args))
                if not self.conn.poll(0):
                    break
        return events

    def wait_ended(self, timeout):
        """Wait up to `timeout` s for the child to end (it closed its pipe); True if it has."""
        self.process.join(timeout)
        return not self.process.is_alive()

    def exit_description(self):
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def stop(self, timeout=3.0):
        """Ask the child to quit, wait up to `timeout` s, then terminate it. True if it
        ended by itself."""
        self.send("quit")
        self.process.join(timeout)
        ended = not self.process.is_alive()
        if not ended:
            self.process.terminate()
            self.process.join(1.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(1.0)
        self.conn.close()
        return ended
