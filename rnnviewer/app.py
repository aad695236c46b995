"""Command line and main(): `rnnviewer [FILE]`, `--screenshot`, `--self-test`, `train`.

Imports stay light until needed: `rnnviewer --version` and `rnnviewer train ...`
never import Qt, and NUMBA_CACHE_DIR is set before anything imports numba.
"""

import argparse
import gc
import hashlib
import os
import sys
import time
from pathlib import Path

import rnnviewer

_PACKAGE_DIR = Path(__file__).resolve().parent
_IMPORTED_AT = time.time()


def user_cache_dir():
    """The per-user cache folder for rnnviewer (XDG on Linux, the platform's elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "rnnviewer" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "rnnviewer"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnviewer"


def source_hash():
    """A short hash of the package's .py sources: numba's cache is keyed on it, so a new
    build never runs stale machine code (NOTES.md, PyInstaller)."""
    h = hashlib.sha256(rnnviewer.__version__.encode())
    for p in sorted(_PACKAGE_DIR.rglob("*.py")):
        h.update(str(p.relative_to(_PACKAGE_DIR)).encode())
        try:
            h.update(p.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:12]


def setup_numba_cache():
    """Point NUMBA_CACHE_DIR at the user cache (unless set); must run before numba loads."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    path = user_cache_dir() / f"numba-{source_hash()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home: numba falls back to its own default
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return str(path)


def process_start_time():
    """time.time() when this process started: RNNVIEWER_T0 if set (seconds since the epoch,
    from whoever launched it), else the kernel's start time of the process (Linux), else the
    moment this module was imported."""
    try:
        return float(os.environ["RNNVIEWER_T0"])
    except (KeyError, ValueError):
        pass
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        # field 22 of stat (counting from 1), in clock ticks since boot
        return time.time() - uptime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED_AT


def report_window_shown():
    """With RNNVIEWER_TIMING=1, print to stderr how long after the process started the
    first main window was exposed (on screen, painted), e.g. `rnnviewer: window shown
    after 0.84 s`. packaging/smoke.sh reads it; it costs nothing when unset."""
    if os.environ.get("RNNVIEWER_TIMING") != "1":
        return None
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow
    from rnnviewer.ui.runner import make_app
    t0 = process_start_time()
    app = make_app()

    class Watch(QObject):
        """Armed on the first event-loop turn, once the window exists; reports its first
        expose (or at once if it already happened)."""

        def arm(self):
            for w in QApplication.topLevelWidgets():
                handle = w.windowHandle() if isinstance(w, QMainWindow) else None
                if handle is None or not w.isVisible():
                    continue
                if handle.isExposed():
                    self.report()
                else:
                    handle.installEventFilter(self)
                return
            if time.time() - t0 < 600:
                QTimer.singleShot(5, self.arm)     # no window yet

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Expose and obj.isExposed():
                obj.removeEventFilter(self)
                self.report()
            return False

        def report(self):
            print(f"rnnviewer: window shown after {time.time() - t0:.3f} s", file=sys.stderr,
                  flush=True)

    watch = Watch(app)
    QTimer.singleShot(0, watch.arm)
    return watch


def _size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (200 <= w <= 10000 and 200 <= h <= 10000):
        raise argparse.ArgumentTypeError(f"size {text} out of range")
    return w, h


def build_parser():
    p = argparse.ArgumentParser(
        prog="rnnviewer",
        description="Train small recurrent networks live and look inside them. "
                    "`rnnviewer train --help` trains without a window.")
    # nargs="*": the desktop entry's `Exec=rnnviewer %F` may pass several files
    p.add_argument("file", nargs="*", metavar="FILE",
                   help="a session file (.npz) to open (only the first of several is opened)")
    p.add_argument("--version", action="version", version=f"rnnviewer {rnnviewer.__version__}")
    p.add_argument("--screenshot", metavar="PNG",
                   help="train --steps steps offscreen, save a PNG of the window, and exit")
    p.add_argument("--export-panels", metavar="DIR",
                   help="with --screenshot: also save one PNG per visible panel into DIR")
    p.add_argument("--self-test", action="store_true",
                   help="train a few steps offscreen, render every panel, exit 0 if all is well")
    p.add_argument("--example", metavar="NAME",
                   help="start from a guided example (File > Examples): its settings, which "
                        "the flags below override, and its panels; --steps defaults to the "
                        "example's. Names: vanishing-rnn, vanishing-lstm, interpretable-units, "
                        "flipflop-attractors, spectral-radius, what-a-unit-wants")
    p.add_argument("--task", help="task (sine, adding, copy, flipflop, parity, text, csv)")
    p.add_argument("--cell", choices=("rnn", "gru", "lstm"), help="recurrent cell")
    p.add_argument("--hidden", type=int, help="hidden units")
    p.add_argument("--seq-len", type=int, help="sequence length")
    p.add_argument("--batch", type=int, help="batch size")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--optimizer", choices=("adam", "sgd"), help="optimizer")
    p.add_argument("--clip", type=float, help="gradient clip norm (0: off)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps before the screenshot (default 300; self-test 5)")
    p.add_argument("--size", type=_size, default=(1500, 950), metavar="WxH",
                   help="window size for --screenshot (default 1500x950)")
    return p


def config_overrides(args):
    """SessionConfig fields given on the command line."""
    names = {"task": "task", "cell": "cell", "hidden": "hidden", "seq_len": "seq_len",
             "batch": "batch", "lr": "lr", "optimizer": "optimizer", "clip": "clip",
             "seed": "seed"}
    return {field: getattr(args, a) for a, field in names.items() if getattr(args, a) is not None}


def main(argv=None):
    """Entry point of the `rnnviewer` command; returns the exit code.

    Called without `argv` (as the program) the GUI modes end the process directly once
    the window has closed and everything is saved, skipping a slow interpreter teardown.
    RNNVIEWER_PROFILE=FILE profiles the main thread with cProfile into FILE (pstats
    format; it works in the frozen app too, where `python -m cProfile` cannot).
    """
    out = os.environ.get("RNNVIEWER_PROFILE")
    if not out:
        return _main(argv)
    import cProfile
    prof = cProfile.Profile()
    try:
        return prof.runcall(_main, list(sys.argv[1:] if argv is None else argv), profiling=True)
    finally:
        prof.dump_stats(out)
        print(f"rnnviewer: profile of the main thread written to {out}", file=sys.stderr)


def _main(argv=None, profiling=False):
    fast_exit = argv is None and not profiling
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        setup_numba_cache()
        from rnnviewer.training.headless import main as train_main
        return train_main(argv[1:])
    if fast_exit:
        gc.disable()        # for the imports; the GUI modes turn it back on (runner.py)
    args = build_parser().parse_args(argv)
    files = args.file
    args.file = files[0] if files else None       # one window, one session
    args.ignored_files = files[1:]
    if args.ignored_files:
        print(f"rnnviewer: opening {args.file}; ignored {len(args.ignored_files)} more "
              f"file(s): {', '.join(args.ignored_files)}", file=sys.stderr)
    if args.steps is not None and args.steps < 0:
        build_parser().error("--steps must be >= 0")
    setup_numba_cache()
    if args.screenshot or args.self_test or args.export_panels:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if os.environ.get("RNNVIEWER_TRAIN_IN_PROCESS", "") in ("", "0"):
            # no window to show first: the training process starts up while the window
            # is built. Not for the interactive window: under Xvfb, launch to window went
            # from 0.8 to 1.3 s with it (the X server needs the second core then)
            from rnnviewer.training.process import prestart
            prestart()
    report_window_shown()
    overrides = config_overrides(args)
    if args.example:
        from rnnviewer.errors import ConfigError
        from rnnviewer.training.examples import get_example
        try:
            example = get_example(args.example)
        except ConfigError as e:
            print(f"rnnviewer: {e}", file=sys.stderr)
            return 2
        overrides = {**example.config, **overrides}
        if args.screenshot or args.export_panels:
            from rnnviewer.ui.examples_menu import run_screenshot
            return run_screenshot(args, overrides, example, fast_exit=fast_exit)
    from rnnviewer.ui.runner import run
    return run(args, overrides, fast_exit=fast_exit)


if __name__ == "__main__":
    sys.exit(main())
