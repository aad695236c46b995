"""200 GUI operations in random (seeded) order: no exception, no leaked thread, no Qt warning.

Start, pause, step, reset, live and shape-changing settings (the confirm dialog answered at
random), save and open sessions, close and reopen the window. Tiny models of one compiled
kernel variant (RNN, float32, MSE, batch > 1) keep it fast. Closing during compilation and
during training is tested in test_ui_window.py and test_ui_cli.py.
"""

import random
import threading

import pytest
from PySide6.QtCore import QtMsgType, qInstallMessageHandler

from rnnviewer.training.session import SessionConfig
from rnnviewer.ui import dialogs
from rnnviewer.ui.main_window import MainWindow
from rnnviewer.ui.worker import ORPHANS

SMALL = dict(task="sine", cell="rnn", hidden=6, batch=3, seq_len=10, probe_size=2,
             val_every=5)
WAIT = 300_000   # ms; the first window may compile kernels on a busy machine
N_OPS = 200


@pytest.fixture
def qt_messages():
    """Every Qt warning, critical or fatal message while the test runs."""
    seen = []

    def handler(kind, context, text):
        if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg) \
                and "propagateSizeHints" not in text:     # the offscreen platform's note
            seen.append(text)
    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)


class Driver:
    """Drives one window at a time with random operations."""

    def __init__(self, qtbot, tmp_path, rng, shown):
        self.qtbot, self.tmp, self.rng, self.shown = qtbot, tmp_path, rng, shown
        self.win = None
        self.threads = []             # every WorkerThread handle ever started
        self.saved = []               # session files known to be on disk
        # Closed windows stay referenced until pytest-qt deletes them at teardown: the
        # cyclic GC collecting a whole closed MainWindow (pyqtgraph items in Python
        # cycles) segfaulted. The application never drops its window while running.
        self.closed = []
        self.counts = {}

    def open(self):
        win = MainWindow(SessionConfig(**SMALL), interactive=True, restore_settings=False)
        self.qtbot.addWidget(win)
        win.show()
        win.start()
        self.threads.append(win.worker_thread)
        self.qtbot.waitUntil(lambda: win.snapshot is not None, timeout=WAIT)
        self.win = win

    def close(self):
        self.win.close()
        self.closed.append(self.win)
        self.win = None

    # ------------------------------------------------------------ operations
    def op_start_pause(self):
        self.win.act_start.trigger()

    def op_step(self):
        self.win.act_step.trigger()

    def op_reset(self):
        self.win.act_reset.trigger()

    def op_lr(self):
        self.win.controls.lr.setValue(self.rng.choice([1e-3, 3e-3, 1e-2, 3e-2]))

    def op_clip(self):
        self.win.controls.clip.setValue(self.rng.choice([0.0, 0.5, 1.0, 5.0]))

    def op_shape(self):
        c = self.win.controls
        spin = self.rng.choice([c.hidden, c.seq_len, c.seed])
        low = {id(c.hidden): 3, id(c.seq_len): 6, id(c.seed): 0}[id(spin)]
        spin.setValue(self.rng.randint(low, low + 5))

    def op_save(self):
        path = self.tmp / f"s{len(self.saved) + self.rng.randint(0, 2)}.npz"
        self.win.save_session(str(path))
        self.qtbot.waitUntil(lambda: self.win.current_path == str(path) or bool(self.shown),
                             timeout=WAIT)
        if path not in self.saved:
            self.saved.append(path)

    def op_open(self):
        if self.saved:
            self.win.open_session(str(self.rng.choice(self.saved)))

    def op_reopen(self):
        self.close()
        self.open()

    OPS = {"start_pause": 8, "step": 8, "reset": 3, "lr": 4, "clip": 3, "shape": 3,
           "save": 2, "open": 2, "reopen": 1}

    def run(self, n):
        names = list(self.OPS)
        weights = [self.OPS[k] for k in names]
        for _ in range(n):
            name = self.rng.choices(names, weights)[0]
            self.counts[name] = self.counts.get(name, 0) + 1
            getattr(self, f"op_{name}")()
            self.qtbot.wait(self.rng.choice([0, 1, 5, 20]))
            assert self.shown == [], (name, self.shown)


def test_two_hundred_random_operations(qtbot, tmp_path, monkeypatch, qt_messages):
    shown = []
    monkeypatch.setattr(dialogs, "show_error",
                        lambda parent, title, text, details="": shown.append((title, text)))
    rng = random.Random(1234)
    monkeypatch.setattr(dialogs, "confirm_reset", lambda parent, what: rng.random() < 0.7)
    baseline = threading.active_count()
    d = Driver(qtbot, tmp_path, rng, shown)
    d.open()
    d.run(N_OPS)
    # the last window still trains after all that. First let the operations still in
    # flight land (an open or a reset brings a new run, from its own step, after the
    # window's newest snapshot): commands run in order and their events arrive in order,
    # so once a save posted now is reported, the window shows the current run
    final = tmp_path / "final.npz"
    d.win.save_session(str(final))
    qtbot.waitUntil(lambda: d.win.current_path == str(final) or bool(shown), timeout=WAIT)
    d.win.worker.step(2)
    step = d.win.snapshot.step
    qtbot.waitUntil(lambda: d.win.snapshot.step >= step + 2 or bool(shown), timeout=WAIT)
    d.close()
    assert shown == []
    assert sum(d.counts.values()) == N_OPS and len(d.counts) == len(Driver.OPS), d.counts
    assert len(d.threads) == 1 + d.counts["reopen"]
    qtbot.waitUntil(lambda: all(h.thread.isFinished() for h in d.threads), timeout=10_000)
    assert not any(h.is_running() for h in ORPHANS)
    qtbot.waitUntil(lambda: threading.active_count() <= baseline, timeout=10_000)
    bad = [m for m in qt_messages if "QThread" in m or "Timers cannot" in m or
           "QObject" in m or "thread" in m.lower()]
    assert bad == [] and qt_messages == [], qt_messages
