"""Run the application: the interactive window, `--screenshot` and `--self-test`."""

import gc
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QTimer, Slot
from PySide6.QtGui import QIcon, QImage
from PySide6.QtWidgets import QApplication

import rnnviewer
from rnnviewer.errors import RnnviewerError
from rnnviewer.training.session import SessionConfig
from rnnviewer.ui import pg_startup, settings
from rnnviewer.ui.worker import orphans_running


def make_app(argv=None):
    """The QApplication (created once), with names QSettings and the desktop use, and
    pyqtgraph's per-plot start-up work deferred (ui/pg_startup.py)."""
    pg_startup.install()
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv or [sys.argv[0]]))
    app.setOrganizationName(settings.ORGANIZATION)
    app.setApplicationName(settings.APPLICATION)
    app.setApplicationVersion(rnnviewer.__version__)
    app.setDesktopFileName("rnnviewer")
    try:
        from rnnviewer.resources import resource_path
        icon = resource_path("icons", "rnnviewer.png")
        if Path(icon).is_file():
            app.setWindowIcon(QIcon(str(icon)))
    except Exception:
        pass
    return app


def _config(overrides, base=None):
    cfg = (base or SessionConfig()).replace(**overrides)
    return cfg.validate()


def finish(code, fast=True):
    """Leave the process. With `fast` (the program itself, not a caller in-process) skip
    the interpreter's teardown of Qt, numba and LLVM (measured: about 2 s after the window
    closed); in any case never wait for, nor let Qt destroy, a training thread stuck in an
    uninterruptible numba compile. Settings were synced when the window closed."""
    if fast or orphans_running():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def settle_imports():
    """For the program's own process once its imports are done (app.py turned collection
    off for them: they make about 70,000 objects the collector tracks, all living until
    exit, and almost no garbage; collecting during them took 80 ms of 133 collections).
    Move what they made out of the collector's sight (a full collection took 23-25 ms,
    mostly walking it; ui/gcguard.py runs them in the GUI thread) and collect again. Not
    for callers in-process (tests): their objects must stay collectable."""
    gc.freeze()
    gc.enable()


def run(args, overrides, fast_exit=False):
    from rnnviewer.ui.main_window import MainWindow
    try:
        config = _config(overrides) if overrides else None
    except RnnviewerError as e:
        print(f"rnnviewer: {e}", file=sys.stderr)
        return 2
    app = make_app()
    if fast_exit:
        settle_imports()
    if args.self_test:
        return finish(self_test(args, config), fast_exit)
    if args.screenshot or args.export_panels:
        return finish(screenshot(args, config or SessionConfig()), fast_exit)
    win = MainWindow(config, autosave=True)
    win.show()
    win.pending_path = args.file
    ignored = getattr(args, "ignored_files", None)
    if ignored:
        win.statusBar().showMessage(f"Opened only the first file; ignored {len(ignored)} more: "
                                    f"{', '.join(Path(p).name for p in ignored)}", 15000)
    QTimer.singleShot(0, win.start_pending)
    signal.signal(signal.SIGINT, _on_sigint)
    code = app.exec()
    win.stop()
    return finish(code, fast_exit)


def _on_sigint(*_):
    """Ctrl-C / SIGINT: close the windows from the event loop, never from inside the
    handler (it runs between any two bytecodes, maybe in the middle of a paint event,
    and destroying a window there crashed the app)."""
    app = QApplication.instance()
    if app is not None:
        QTimer.singleShot(0, app.closeAllWindows)


def run_panel_jobs(window, names, timeout=300):
    """Run the panels among `names` that compute in a job of their own (activation
    maximization, fixed points) on the newest snapshot and wait for them; True if done."""
    jobs = [window.panels[n] for n in names
            if n in window.panels and hasattr(window.panels[n], "job_running")]
    for p in jobs:
        p.update_snapshot(window.snapshot)
        p.run()
    done = wait_until(lambda: not any(p.job_running() for p in jobs), timeout)
    wait_until(lambda: False, 0.1)      # deliver the results' queued signals
    return done


def screenshot(args, config):
    """`--screenshot PNG` / `--export-panels DIR`: train offscreen, save the pictures. For
    --export-panels every panel's picture is complete: the analyses of the panels behind
    others run while training, and the search panels run once at the end."""
    from rnnviewer.ui.main_window import MainWindow
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.all_analyses = bool(args.export_panels)
    win.pending_path = args.file
    win.resize(*args.size)
    win.show()
    if (win.width(), win.height()) != tuple(args.size):
        print(f"rnnviewer: the window cannot be smaller than {win.minimumSizeHint().width()}x"
              f"{win.minimumSizeHint().height()}; the picture is {win.width()}x{win.height()}",
              file=sys.stderr)
    try:
        err = train_offscreen(win, 300 if args.steps is None else args.steps)
        if err:
            print(f"rnnviewer: {err}", file=sys.stderr)
            return 1
        if args.export_panels:
            if not run_panel_jobs(win, win.open_panel_names()):
                print("rnnviewer: timed out waiting for the panels' computations",
                      file=sys.stderr)
                return 1
            paths = win.export_panels(args.export_panels)
            print(f"saved {len(paths)} panel images in {args.export_panels}")
        if args.screenshot:
            if not win.grab().save(args.screenshot):
                print(f"rnnviewer: {args.screenshot}: could not write the image",
                      file=sys.stderr)
                return 1
            print(f"saved {args.screenshot} (step {win.snapshot.step})")
        return 0
    finally:
        win.close()


class _Waiter(QObject):
    """Runs a local Qt event loop until `predicate()` holds or `timeout` s have passed.

    The GUI thread then sleeps inside Qt (the GIL free for the training thread) and looks
    again whenever one of `signals` arrives (after the window's own slots have seen it),
    and every `check_ms` in case the change came another way: no fixed sleeps."""

    CHECK_MS = 50      # with signals to wake on: a safety net only
    POLL_MS = 5        # without: how soon a change is seen

    def __init__(self, predicate, signals=(), check_ms=None):
        super().__init__()
        self._predicate = predicate
        self._signals = list(signals)
        self._loop = QEventLoop(self)
        self._tick = QTimer(self)
        self._tick.setInterval(check_ms or (self.CHECK_MS if self._signals else self.POLL_MS))
        self._tick.timeout.connect(self._on_tick_timeout)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._loop.quit)

    @Slot()
    def _on_tick_timeout(self):
        if self._predicate():
            self._loop.quit()

    def wait(self, timeout):
        """True once predicate() holds (at once if it already does), False on timeout."""
        if self._predicate():
            return True
        for sig in self._signals:
            sig.connect(self._on_tick_timeout)
        try:
            self._deadline.start(max(1, int(timeout * 1000)))
            self._tick.start()
            self._loop.exec()
        finally:
            self._tick.stop()
            self._deadline.stop()
            for sig in self._signals:
                sig.disconnect(self._on_tick_timeout)
        return bool(self._predicate())


def wait_until(predicate, timeout, signals=()):
    """Process events until predicate() holds or `timeout` s pass; returns predicate().
    `signals` (say a worker's) wake the check as soon as they arrive; without them it
    looks every few ms. `wait_until(lambda: False, t)` processes events for t s."""
    return _Waiter(predicate, signals).wait(timeout)


def worker_signals(win):
    """The signals of `win`'s training worker after which its state may have changed."""
    w = win.worker
    return () if w is None else (w.snapshot_ready, w.errored, w.saved, w.finished)


def train_steps(win, steps, timeout=600, meanwhile=None):
    """Start `win`'s worker, wait for its kernels and first snapshot, train `steps` steps
    (the panels are not drawn). `meanwhile()` runs once the worker has started: the
    training process loads its kernels on the other core then. Error text or None."""
    win.start(getattr(win, "pending_path", None))
    if meanwhile is not None:
        meanwhile()
    if not wait_until(lambda: win.snapshot is not None or win.errors, timeout,
                      worker_signals(win)):
        return "timed out waiting for the first snapshot (kernel compilation)"
    if win.errors:
        return win.errors[0][0]
    target = win.snapshot.step + steps
    if steps:
        win.worker.step(steps)
        if not wait_until(lambda: win.snapshot.step >= target or win.errors, timeout,
                          worker_signals(win)):
            return f"timed out after {win.snapshot.step} of {target} steps"
    return win.errors[0][0] if win.errors else None


def train_offscreen(win, steps, timeout=600):
    """train_steps, then draw every panel and let the layouts settle. Error text or None."""
    err = train_steps(win, steps, timeout)
    if err:
        return err
    for p in win.panels.values():
        p.redraw_now(raise_errors=False)
    wait_until(lambda: False, 0.1)   # let the layouts settle
    return None


def rgba_pixels(image):
    """A QImage's pixels as an (H, W, 4) uint8 RGBA array (a copy; empty for a null image)."""
    if image.isNull():
        return np.zeros((0, 0, 4), np.uint8)
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w, line = rgba.height(), rgba.width(), rgba.bytesPerLine()
    rows = np.frombuffer(rgba.constBits(), np.uint8, count=h * line).reshape(h, line)
    return rows[:, :4 * w].reshape(h, w, 4).copy()


def blank(pixels):
    """True when nothing was drawn: no pixels, or every pixel of one colour."""
    if pixels.size == 0:
        return True
    rgba = np.ascontiguousarray(pixels).view(np.uint32).ravel()   # one word a pixel
    return bool((rgba == rgba[0]).all())


def check_panel(win, name):
    """Bring panel `name` on screen at its real size, draw the newest snapshot and render
    it once: that picture must not be blank. Returns the problems found (exceptions of
    the panel's own code propagate)."""
    panel, dock = win.panels[name], win.docks[name]
    dock.show()
    dock.raise_()                      # builds a lazy panel
    # Show the widgets just built (Qt shows a visible parent's new children through a
    # queued call), then lay them out at their real size (a tab never shown has a stale
    # one). The window's own repaint that raising asks for waits: grab() renders the panel.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.MetaCall)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
    problems = []
    if panel.error:
        problems.append(f"panel {name} failed to draw:\n{panel.error}")
    panel.drawn = None
    panel.redraw_now()                 # raises what the panel's redraw raises
    if blank(rgba_pixels(panel.grab().toImage())):
        problems.append(f"panel {name}: rendered an empty picture")
    return problems


def build_panels(win):
    """Build every panel's widgets now (the window builds them lazily, when they first
    come on screen)."""
    for panel in win.panels.values():
        panel.ensure_built()


class _Phases:
    """Where the self-test's time goes: printed to stderr with RNNVIEWER_TIMING=1."""

    def __init__(self):
        self.on = os.environ.get("RNNVIEWER_TIMING") == "1"
        self.last = time.monotonic()
        self.parts = []

    def mark(self, what):
        now = time.monotonic()
        self.parts.append(f"{what} {now - self.last:.2f}")
        self.last = now

    def report(self):
        if self.on:
            print(f"rnnviewer: self-test phases (s): {', '.join(self.parts)}", file=sys.stderr,
                  flush=True)


def self_test(args, config):
    """Train a few steps, draw and render every panel, save and reopen the session.

    Each panel is laid out, drawn and rendered once, and that picture must not be blank;
    pyqtgraph's image exporter, which File > Export uses, runs on one panel. The
    waits are event loops woken by the worker's signals, never fixed sleeps, and the worker
    saves the session while the panels draw. RNNVIEWER_TIMING=1 prints the phases."""
    from rnnviewer.training.sessionfile import load_session
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.panels import PANEL_ERRORS
    t0 = time.monotonic()
    phases = _Phases()
    # text + LSTM by default: characters as labels, gates and cell state for every panel,
    # and the bundled corpus must be found (the packaged app runs this)
    config = config or SessionConfig(task="text", cell="lstm", hidden=16, batch=8, seq_len=30)
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.all_analyses = True       # every panel's worker-side analysis runs and is drawn
    win.resize(1400, 900)
    phases.mark("window")
    problems = []
    try:
        steps = 5 if args.steps is None else args.steps
        # Shown once trained: shown first, the panels in front were painted empty, then
        # drawn and painted again for each snapshot, and all of it once more below (13
        # more pyqtgraph paints, about 0.4 s of the GUI thread, serial with the training
        # thread through the GIL). The interactive order (window first, painted while the
        # kernels load) is what smoke.sh's runs under Xvfb check.
        # the panels' widgets are built while the training process loads its kernels
        err = train_steps(win, steps, meanwhile=lambda: build_panels(win))
        phases.mark("kernels+steps")
        win.show()
        if err:
            problems.append(f"training: {err}")
        problems += [f"panel module {m} failed to import:\n{tb}" for m, tb in PANEL_ERRORS.items()]
        with tempfile.TemporaryDirectory() as tmp:
            session = Path(tmp) / "session.npz"
            if not err:
                win.save_session(session)     # written by the worker while the panels draw
            exported = False
            for name, panel in win.panels.items():
                try:
                    problems += check_panel(win, name)
                    if getattr(panel, "job_running", None) and panel.job_running():
                        # a search its redraw started (maximize, fixed points): the result
                        # is no part of the check, and running on it competed for the GIL
                        # with the rest of the test (0.4-0.5 s measured)
                        panel.cancel_job()
                    if not exported and panel.export_item() is not None:
                        exported = True       # File > Export's path (pyqtgraph's exporter)
                        panel.export_image(Path(tmp) / f"{name}-export.png")
                except Exception as e:
                    problems.append(f"panel {name}: {type(e).__name__}: {e}")
            phases.mark("panels")
            if not err:
                if not wait_until(lambda: win.current_path == str(session) or win.errors, 30,
                                  worker_signals(win)):
                    problems.append("saving the session timed out")
                try:
                    data = load_session(session)
                    if data.step != win.snapshot.step:
                        problems.append(f"session file has step {data.step}, "
                                        f"expected {win.snapshot.step}")
                except Exception as e:
                    problems.append(f"session file: {e}")
                phases.mark("session")
        if blank(rgba_pixels(win.grab().toImage())):
            problems.append("the window rendered an empty picture")
        problems += [f"error shown: {m}" for m, _ in win.errors if not err]
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        win.close()
    phases.mark("close")
    phases.report()
    if problems:
        print("rnnviewer self-test FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    step = win.snapshot.step if win.snapshot else 0
    print(f"rnnviewer self-test passed: {step} steps, {len(win.panels)} panels "
          f"({', '.join(win.panels)}), {time.monotonic() - t0:.1f} s")
    return 0
