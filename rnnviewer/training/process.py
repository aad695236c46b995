"""Training in a process of its own: a TrainingController behind a pipe (no Qt).

Why a process: in one process the window's drawing and the training share Python's
lock, and the training waits for every paint (PySide6 keeps the lock during Qt's C++
calls). Measured on 2 cores (H = 128, T = 100, 3 panels drawn): training in a thread of
the window's process kept 64% of its headless speed at 19 frames/s; in a process of its
own, 85-93% at 30 frames/s (benchmarks/README.md).

    proc = TrainingProcess()            # spawns the child; it imports the engine meanwhile
    proc.send("configure", config)      # any TrainingController command
    for event, args in proc.receive(0.1): ...   # TrainingController events
    proc.stop(timeout=3.0)              # "quit", then terminate if it does not end

The child ends by itself when its parent goes (the pipe closes). Messages are pickled
by multiprocessing between our own two processes; files are never unpickled.
"""

import multiprocessing
import multiprocessing.connection
import os
import threading
import time

QUIT_GRACE = 2.0     # s a child whose parent is gone may take to end before it exits hard


def serve(conn, session_factory=None, last_run_id=0):
    """The child's main: run a TrainingController, commands from `conn`, events to it.
    (NUMBA_CACHE_DIR comes with the parent's environment, app.setup_numba_cache.)"""
    from rnnviewer.training.controller import TrainingController
    lock = threading.Lock()

    def emit(event, *args):
        with lock:
            try:
                conn.send((event, args))
            except (OSError, EOFError, ValueError):   # the parent is gone
                controller.request_quit()

    controller = TrainingController(emit, session_factory, last_run_id=last_run_id)
    reader = threading.Thread(target=_read_commands, args=(conn, controller),
                              name="rnnviewer-commands", daemon=True)
    reader.start()
    controller.run()
    emit("finished")


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


class TrainingProcess:
    """The parent's handle on a training child process."""

    def __init__(self, session_factory=None, last_run_id=0):
        ctx = multiprocessing.get_context("spawn")   # fork is unsafe once Qt runs threads
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child_conn, session_factory, last_run_id),
                                   name="rnnviewer-training", daemon=True)
        self.process.start()
        child_conn.close()
        self._lock = threading.Lock()

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
                events.append(self.conn.recv())
                if not self.conn.poll(0):
                    break
        return events

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
