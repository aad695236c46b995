"""Run the application: the interactive window, `--screenshot` and `--self-test`."""

import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

import rnnviewer
from rnnviewer.errors import RnnviewerError
from rnnviewer.training.session import SessionConfig
from rnnviewer.ui import settings
from rnnviewer.ui.worker import orphans_running


def make_app(argv=None):
    """The QApplication (created once), with names QSettings and the desktop use."""
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


def wait_until(predicate, timeout):
    """Process events until predicate() is true or `timeout` s pass; returns predicate()."""
    app = QApplication.instance()
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.002)
    return True


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


def run(args, overrides, fast_exit=False):
    from rnnviewer.ui.main_window import MainWindow
    try:
        config = _config(overrides) if overrides else None
    except RnnviewerError as e:
        print(f"rnnviewer: {e}", file=sys.stderr)
        return 2
    app = make_app()
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


def train_offscreen(win, steps, timeout=600):
    """Start `win`'s worker, wait for the kernels, train `steps` steps. Error text or None."""
    win.start(getattr(win, "pending_path", None))
    if not wait_until(lambda: win.snapshot is not None or win.errors, timeout):
        return "timed out waiting for the first snapshot (kernel compilation)"
    if win.errors:
        return win.errors[0][0]
    target = win.snapshot.step + steps
    if steps:
        win.worker.step(steps)
        if not wait_until(lambda: win.snapshot.step >= target or win.errors, timeout):
            return f"timed out after {win.snapshot.step} of {target} steps"
    if win.errors:
        return win.errors[0][0]
    for p in win.panels.values():
        p.redraw_now(raise_errors=False)
    wait_until(lambda: False, 0.1)   # let the layouts settle
    return None


def screenshot(args, config):
    from rnnviewer.ui.main_window import MainWindow
    win = MainWindow(config, interactive=False, restore_settings=False)
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


def self_test(args, config):
    """Train a few steps, render and export every panel, save and reopen the session."""
    from rnnviewer.training.sessionfile import load_session
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.panels import PANEL_ERRORS
    t0 = time.monotonic()
    # text + LSTM by default: characters as labels, gates and cell state for every panel,
    # and the bundled corpus must be found (the packaged app runs this)
    config = config or SessionConfig(task="text", cell="lstm", hidden=16, batch=8, seq_len=30)
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.all_analyses = True       # every panel's worker-side analysis runs and is drawn
    win.resize(1400, 900)
    win.show()
    problems = []
    try:
        steps = 5 if args.steps is None else args.steps
        err = train_offscreen(win, steps)
        if err:
            problems.append(f"training: {err}")
        problems += [f"panel module {m} failed to import:\n{tb}" for m, tb in PANEL_ERRORS.items()]
        with tempfile.TemporaryDirectory() as tmp:
            for name, panel in win.panels.items():
                try:
                    dock = win.docks[name]
                    dock.show()
                    dock.raise_()
                    wait_until(lambda: False, 0.02)
                    if panel.error:
                        problems.append(f"panel {name} failed to draw:\n{panel.error}")
                    panel.drawn = None
                    panel.redraw_now()
                    if panel.grab().isNull():
                        problems.append(f"panel {name}: rendered an empty picture")
                    panel.export_image(Path(tmp) / f"{name}.png")
                except Exception as e:
                    problems.append(f"panel {name}: {type(e).__name__}: {e}")
            if not err:
                path = Path(tmp) / "session.npz"
                win.save_session(path)
                if not wait_until(lambda: path.exists() or win.errors, 30):
                    problems.append("saving the session timed out")
                try:
                    data = load_session(path)
                    if data.step != win.snapshot.step:
                        problems.append(f"session file has step {data.step}, "
                                        f"expected {win.snapshot.step}")
                except Exception as e:
                    problems.append(f"session file: {e}")
        if win.grab().isNull():
            problems.append("the window rendered an empty picture")
        problems += [f"error shown: {m}" for m, _ in win.errors if not err]
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        win.close()
    if problems:
        print("rnnviewer self-test FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    step = win.snapshot.step if win.snapshot else 0
    print(f"rnnviewer self-test passed: {step} steps, {len(win.panels)} panels "
          f"({', '.join(win.panels)}), {time.monotonic() - t0:.1f} s")
    return 0
