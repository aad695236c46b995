"""Autosave, the crash marker and the restore offer (pytest-qt, offscreen)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnviewer.training.session import SessionConfig
from rnnviewer.training.sessionfile import load_session
from rnnviewer.ui import autosave, dialogs
from rnnviewer.ui.main_window import MainWindow

SMALL = dict(task="sine", hidden=6, batch=3, seq_len=10, probe_size=2, val_every=5)
WAIT = 300_000   # ms; the first window may compile kernels on a busy machine


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    before = autosave._DIR["path"]
    autosave.use_data_dir(tmp_path / "data")
    shown = []
    monkeypatch.setattr(dialogs, "show_error",
                        lambda parent, title, text, details="": shown.append(text))
    yield tmp_path / "data"
    autosave.use_data_dir(before)
    assert shown == []


@pytest.fixture
def asked(monkeypatch):
    state = {"answer": True, "asked": []}

    def ask(parent, path):
        state["asked"].append(str(path))
        return state["answer"]
    monkeypatch.setattr(autosave, "ask_restore", ask)
    return state


def app_window(qtbot, config=None):
    win = MainWindow(config or SessionConfig(**SMALL), restore_settings=False, autosave=True)
    qtbot.addWidget(win)
    win.show()
    win.start_pending()
    qtbot.waitUntil(lambda: win.snapshot is not None, timeout=WAIT)
    return win


def steps(qtbot, win, n):
    target = win.snapshot.step + n
    win.worker.step(n)
    qtbot.waitUntil(lambda: win.snapshot.step >= target, timeout=WAIT)


def dead_pid():
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True).stdout
    return int(out)


def test_autosave_writes_a_loadable_file_and_skips_unchanged(qtbot, data_dir, asked):
    win = app_window(qtbot)
    assert autosave.read_marker() == os.getpid() and win.autosaver.owner
    assert asked["asked"] == []                   # a clean start asks nothing
    steps(qtbot, win, 3)
    path = autosave.autosave_path()
    win.autosaver.save_now()
    qtbot.waitUntil(path.is_file, timeout=WAIT)
    data = load_session(path)
    assert data.step == 3
    np.testing.assert_array_equal(data.model.params["W_hh"], win.snapshot.params["W_hh"])
    mtime = path.stat().st_mtime_ns
    win.autosaver.save_now()                      # nothing changed: no rewrite
    steps(qtbot, win, 1)                          # the command was handled before this
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in data_dir.iterdir()) == ["autosave.npz", "running.pid"]
    win.close()


def test_clean_quit_autosaves_and_removes_the_marker(qtbot, data_dir, asked):
    win = app_window(qtbot)
    steps(qtbot, win, 4)
    win.close()
    assert autosave.read_marker() is None          # no restore offer next time
    assert load_session(autosave.autosave_path()).step == 4
    again = app_window(qtbot)
    assert asked["asked"] == [] and again.snapshot.step == 0
    again.close()


def test_after_a_crash_the_next_start_offers_to_restore(qtbot, data_dir, asked):
    win = app_window(qtbot, SessionConfig(**{**SMALL, "lr": 0.004, "hidden": 5}))
    steps(qtbot, win, 6)
    win.autosaver.save_now()
    qtbot.waitUntil(autosave.autosave_path().is_file, timeout=WAIT)
    before = win.snapshot
    win.autosaver.close = lambda: None              # a crash: no final save, marker stays
    win.autosaver.release = lambda: None
    win.close()
    autosave.marker_path().write_text(str(dead_pid()))   # left by a process that is gone
    # the user says no: a fresh session, and the offer is not repeated
    asked["answer"] = False
    fresh = app_window(qtbot)
    assert len(asked["asked"]) == 1 and fresh.snapshot.step == 0
    fresh.autosaver.release = lambda: None
    fresh.autosaver.close = lambda: None
    fresh.close()
    autosave.marker_path().write_text(str(dead_pid()))
    asked["answer"] = True
    win2 = app_window(qtbot)
    assert asked["asked"][1] == str(autosave.autosave_path())
    assert win2.snapshot.step == 6 and win2.snapshot.n_hidden == 5
    assert win2.config.lr == pytest.approx(0.004) and win2.controls.lr.value() == 0.004
    for k in before.params:
        np.testing.assert_array_equal(win2.snapshot.params[k], before.params[k])
    assert win2.current_path == ""                 # Save never writes over the autosave
    assert "Restored" in win2.statusBar().currentMessage()
    assert autosave.read_marker() == os.getpid()
    win2.close()
    assert autosave.read_marker() is None


def test_a_second_running_instance_keeps_its_marker(qtbot, data_dir, asked):
    data_dir.mkdir(parents=True)
    other = os.getppid()                            # a live process that is not us
    autosave.marker_path().write_text(str(other))
    win = app_window(qtbot)
    assert not win.autosaver.owner and asked["asked"] == []
    win.close()
    assert autosave.read_marker() == other
    assert not autosave.autosave_path().exists()
