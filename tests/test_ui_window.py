"""The main window with live training in a worker thread (pytest-qt, offscreen)."""

import os
import sys
import time
import types

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.ui import dialogs, settings
from rnnviewer.ui.main_window import MainWindow
from rnnviewer.ui.panels import Panel, UnitSelection, registered_panels
from rnnviewer.ui.worker import ORPHANS

from fault_sessions import BrokenOnceSession, CrashingSession, SlowCompileSession

SMALL = dict(task="sine", hidden=8, batch=4, seq_len=12, probe_size=2, val_every=5)
WAIT = 300_000   # ms; the first test of a process may compile kernels (slow on a busy machine)


@pytest.fixture
def shown_errors(monkeypatch):
    shown = []
    monkeypatch.setattr(dialogs, "show_error",
                        lambda parent, title, text, details="": shown.append((title, text)))
    return shown


@pytest.fixture
def confirm(monkeypatch):
    state = {"answer": True, "asked": []}

    def ask(parent, what):
        state["asked"].append(what)
        return state["answer"]
    monkeypatch.setattr(dialogs, "confirm_reset", ask)
    return state


def open_window(qtbot, config=None, path=None, factory=None):
    """A shown window with its first snapshot; `factory`: its session_factory."""
    win = MainWindow(config or SessionConfig(**SMALL), restore_settings=False)
    win.session_factory = factory
    qtbot.addWidget(win)
    win.show()
    win.start(path)
    qtbot.waitUntil(lambda: win.snapshot is not None, timeout=WAIT)
    return win


@pytest.fixture
def window(qtbot, shown_errors, confirm):
    win = open_window(qtbot)
    yield win
    win.close()
    assert shown_errors == []        # tests that expect an error clear the list


def wait_step(qtbot, win, n):
    qtbot.waitUntil(lambda: win.snapshot is not None and win.snapshot.step >= n, timeout=WAIT)


def test_window_shows_before_training_and_every_panel_is_docked(window):
    assert window.isVisible()
    names = {cls.object_name for cls in registered_panels()}
    assert set(window.panels) == names and "curves" in names
    view = [m for m in window.menuBar().actions() if m.text() == "&View"][0].menu()
    titles = {a.text() for a in view.actions()}
    assert {window.docks[n].windowTitle() for n in names} <= titles
    assert "Reset &layout" in titles
    assert window.status_kernels.text() == "kernels ready"


def test_start_pause_step_reset(window, qtbot):
    window.act_step.trigger()
    wait_step(qtbot, window, 1)
    assert window.snapshot.step == 1 and not window.running
    window.act_start.trigger()
    qtbot.waitUntil(lambda: window.running, timeout=WAIT)
    wait_step(qtbot, window, 15)
    window.act_start.trigger()
    qtbot.waitUntil(lambda: not window.running, timeout=WAIT)
    qtbot.wait(150)
    step = window.snapshot.step
    qtbot.wait(200)
    assert window.snapshot.step == step          # paused means paused
    run_id = window.snapshot.run_id
    window.act_reset.trigger()
    qtbot.waitUntil(lambda: window.snapshot.run_id != run_id, timeout=WAIT)
    assert window.snapshot.step == 0 and len(window.snapshot.history["step"]) == 0
    window.panels["curves"].redraw_now()
    xs = window.panels["curves"].train_curve.getData()[0]
    assert xs is None or len(xs) == 0


def test_keyboard_shortcuts(window, qtbot):
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    wait_step(qtbot, window, 1)
    qtbot.keyClick(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    wait_step(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.running, timeout=WAIT)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.running, timeout=WAIT)


def test_live_edits_apply_without_reset(window, qtbot, confirm, tmp_path):
    window.worker.step(3)
    wait_step(qtbot, window, 3)
    run_id = window.snapshot.run_id
    window.controls.lr.setValue(0.0025)
    window.controls.clip.setValue(0.5)
    window.controls.batch.setValue(6)
    window.act_step.trigger()
    wait_step(qtbot, window, 4)
    snap = window.snapshot
    assert snap.run_id == run_id and snap.lr == pytest.approx(0.0025) and snap.clip == 0.5
    assert snap.history["lr"][-1] == pytest.approx(0.0025)
    assert confirm["asked"] == []
    path = tmp_path / "live.npz"                 # the session itself has the new batch
    window.save_session(path)
    qtbot.waitUntil(lambda: path.exists(), timeout=WAIT)
    assert TrainingSession.from_file(path).config.batch == 6


def test_shape_change_asks_then_resets_or_reverts(window, qtbot, confirm):
    window.worker.step(3)
    wait_step(qtbot, window, 3)
    confirm["answer"] = False
    window.controls.hidden.setValue(12)
    assert confirm["asked"] == ["the hidden size"]
    assert window.controls.hidden.value() == 8           # reverted
    qtbot.wait(100)
    assert window.snapshot.n_hidden == 8 and window.snapshot.step == 3
    confirm["answer"] = True
    window.controls.cell.setCurrentIndex(window.controls.cell.findData("lstm"))
    qtbot.waitUntil(lambda: window.snapshot.cell == "lstm", timeout=WAIT)
    assert window.snapshot.step == 0 and window.config.cell == "lstm"
    assert window.snapshot.probe.c is not None
    # nothing trained yet: a shape change needs no question
    confirm["asked"].clear()
    window.controls.hidden.setValue(5)
    qtbot.waitUntil(lambda: window.snapshot.n_hidden == 5, timeout=WAIT)
    assert confirm["asked"] == []


def test_task_change_and_bad_task_option(window, qtbot, shown_errors):
    c = window.controls
    c.task.setCurrentIndex(c.task.findData("parity"))
    qtbot.waitUntil(lambda: window.snapshot.task_name == "parity", timeout=WAIT)
    assert window.snapshot.loss_name == "xent" and window.snapshot.model_config["n_out"] == 2
    c.options.editors["modulus"].setValue(1)            # impossible: modulus >= 2
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "modulus" in shown_errors[0][1]
    shown_errors.clear()
    assert c.options.editors["modulus"].value() == 2    # controls show what really runs


def test_save_and_reopen_session(window, qtbot, tmp_path):
    path = tmp_path / "run.npz"
    window.worker.step(7)
    wait_step(qtbot, window, 7)
    # (not qtbot.waitSignal: its handler would run in the worker thread, NOTES.md)
    window.save_session(str(path))
    qtbot.waitUntil(lambda: window.saved_step == 7, timeout=WAIT)
    assert path.is_file()
    assert str(path.resolve()) in settings.recent_files()
    assert "run.npz" in window.windowTitle() and "*" not in window.windowTitle()
    before = window.snapshot
    other = open_window(qtbot, SessionConfig(task="parity", hidden=4), path=str(path))
    qtbot.waitUntil(lambda: other.snapshot.step == 7, timeout=WAIT)
    snap = other.snapshot
    assert other.config.task == "sine" and other.controls.hidden.value() == 8
    for k in before.params:
        np.testing.assert_array_equal(snap.params[k], before.params[k])
    for k in before.history:
        np.testing.assert_array_equal(snap.history[k], before.history[k])
    assert other.current_path == str(path)
    # both continue identically from here
    window.worker.step(3)
    other.worker.step(3)
    wait_step(qtbot, window, 10)
    wait_step(qtbot, other, 10)
    for k in before.params:
        np.testing.assert_array_equal(window.snapshot.params[k], other.snapshot.params[k])
    other.close()


def test_opening_a_bad_file_shows_the_problem(window, qtbot, tmp_path, shown_errors):
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip file at all")
    window.open_session(str(bad))
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "junk.npz" in shown_errors[0][1]
    shown_errors.clear()
    window.act_step.trigger()                   # the window still works
    wait_step(qtbot, window, 1)


def test_close_mid_training_returns_within_a_second(qtbot, shown_errors):
    win = open_window(qtbot)
    win.act_start.trigger()
    wait_step(qtbot, win, 5)
    thread = win.worker_thread.thread
    t0 = time.monotonic()
    win.close()
    assert time.monotonic() - t0 < 1.0
    assert thread.isFinished() and win.worker_thread is None
    assert shown_errors == []


def test_close_mid_compile_returns_within_a_second(qtbot, shown_errors):
    """The compile runs in the training process: closing ends that process at once."""
    win = MainWindow(SessionConfig(**SMALL), restore_settings=False)
    win.session_factory = SlowCompileSession      # numba compiles cannot be interrupted
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.compiling, timeout=WAIT)
    assert win.status_kernels.text() == "compiling kernels…"
    handle = win.worker_thread
    pid = handle.worker.child_pid
    t0 = time.monotonic()
    win.close()
    assert time.monotonic() - t0 < 1.0
    assert handle not in ORPHANS and handle.thread.isFinished()
    assert not process_alive(pid)
    assert shown_errors == []


def test_close_mid_compile_in_process_returns_within_a_second(qtbot, monkeypatch,
                                                              shown_errors):
    """Training in the window's own process (in_process): the busy thread is kept alive
    and left to finish."""
    def slow_compile(self):
        time.sleep(2.5)
        return 2.5
    monkeypatch.setattr(TrainingSession, "compile", slow_compile)
    monkeypatch.setenv("RNNVIEWER_TRAIN_IN_PROCESS", "1")
    win = MainWindow(SessionConfig(**SMALL), restore_settings=False)
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.compiling, timeout=WAIT)
    handle = win.worker_thread
    t0 = time.monotonic()
    win.close()
    assert time.monotonic() - t0 < 1.0
    assert handle in ORPHANS                         # still compiling, kept alive
    qtbot.waitUntil(lambda: handle.thread.isFinished(), timeout=10_000)
    assert shown_errors == []


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_exception_reaches_the_user(qtbot, shown_errors, confirm):
    win = open_window(qtbot, factory=BrokenOnceSession)
    win.act_start.trigger()
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "RuntimeError: kernel exploded" in shown_errors[0][1]
    qtbot.waitUntil(lambda: not win.running, timeout=WAIT)
    shown_errors.clear()
    win.act_step.trigger()                      # the training survived
    wait_step(qtbot, win, 1)
    win.close()
    assert shown_errors == []


def test_a_crashed_training_process_is_reported_and_replaced(qtbot, shown_errors, confirm,
                                                             monkeypatch, tmp_path):
    monkeypatch.setenv("RNNVIEWER_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    win = open_window(qtbot, factory=CrashingSession)   # its process dies at step 3, once
    run_id, pid = win.snapshot.run_id, win.worker.child_pid
    win.act_start.trigger()
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "stopped unexpectedly" in shown_errors[0][1]
    assert "exit code 9" in shown_errors[0][1]
    qtbot.waitUntil(lambda: not win.running, timeout=WAIT)
    # a new process, a new run with the same settings (panels see a new run)
    qtbot.waitUntil(lambda: win.snapshot.run_id != run_id, timeout=WAIT)
    assert win.worker.child_pid != pid and not process_alive(pid)
    assert win.snapshot.step == 0 and win.snapshot.n_hidden == SMALL["hidden"]
    shown_errors.clear()
    win.act_step.trigger()
    wait_step(qtbot, win, 1)
    win.close()
    assert shown_errors == []


def test_training_falls_back_to_this_process_if_its_own_cannot_start(qtbot, monkeypatch,
                                                                     shown_errors, confirm):
    """A training process that dies before it says anything (here: it cannot import the
    session class, which exists in this process only): train in this one instead."""
    module = types.ModuleType("rnnviewer_test_parent_only")

    class ParentOnlySession(TrainingSession):
        pass
    ParentOnlySession.__module__ = module.__name__
    ParentOnlySession.__qualname__ = "ParentOnlySession"
    module.ParentOnlySession = ParentOnlySession
    monkeypatch.setitem(sys.modules, module.__name__, module)
    win = open_window(qtbot, factory=ParentOnlySession)
    assert win.worker.controller is not None            # training runs in this process
    assert isinstance(win.worker.controller.session, ParentOnlySession)
    win.act_step.trigger()
    wait_step(qtbot, win, 1)
    win.close()
    assert shown_errors == []


def test_divergence_pauses_and_tells_the_user(qtbot, shown_errors, confirm):
    win = open_window(qtbot, SessionConfig(**{**SMALL, "optimizer": "sgd", "clip": 0.0}))
    win.worker.step(2)
    wait_step(qtbot, win, 2)
    good = win.snapshot.params
    win.controls.lr.setValue(10.0)
    win.worker.set_live(lr=1e39)
    win.act_start.trigger()
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    title, text = shown_errors[0]
    assert title == "Training diverged" and "step 3" in text and "learning rate" in text
    qtbot.waitUntil(lambda: not win.running, timeout=WAIT)
    assert win.snapshot.step == 2
    for k in good:
        np.testing.assert_array_equal(win.snapshot.params[k], good[k])
    win.close()


def test_reset_layout_shows_closed_panels(window, qtbot):
    dock = window.docks["curves"]
    dock.close()
    window.controls_dock.close()
    assert not dock.isVisible()
    window.act_reset_layout.trigger()
    assert dock.isVisible() and window.controls_dock.isVisible()


def test_settings_remember_last_run_and_layout(window, qtbot):
    window.controls.lr.setValue(0.003)
    window.docks["curves"].close()
    window.close()
    assert settings.load_json("session/last_config")["lr"] == pytest.approx(0.003)
    assert settings.settings().value("window/geometry") == window.saveGeometry()
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    assert again.config.lr == pytest.approx(0.003) and again.controls.lr.value() == 0.003
    assert not again.docks["curves"].isVisible()       # the dock layout came back
    again.act_reset_layout.trigger()
    assert again.docks["curves"].isVisible()


def test_panels_while_training_sets_the_budget_and_is_remembered(qtbot):
    """View > Panels while training: how much of the cores the panels may take while
    training runs flat out; remembered, and a damaged setting gives the default."""
    from rnnviewer.ui.panels import scheduler
    from rnnviewer.ui.panels._schedule import DRAW_PRIORITIES
    s = scheduler()
    win = MainWindow(SessionConfig(**SMALL), restore_settings=False)
    qtbot.addWidget(win)
    try:
        assert win.draw_priority == "balanced"
        assert s.busy_budget == DRAW_PRIORITIES["balanced"][1]
        win.draw_priority_actions["training"].trigger()
        assert win.draw_priority == "training"
        assert s.busy_budget == DRAW_PRIORITIES["training"][1] < DRAW_PRIORITIES["balanced"][1]
        s.fixed_budget = None
        s._mark = (0.0, 0.0, 0.0)
        s._measure(0.5, 0.05, 0.05 + 0.9)     # the other threads: 1.8 cores, flat out
        assert s.budget == DRAW_PRIORITIES["training"][1]
        win.close()
        again = MainWindow(SessionConfig(**SMALL))
        qtbot.addWidget(again)
        assert again.draw_priority == "training"
        assert again.draw_priority_actions["training"].isChecked()
        again.close()
        settings.set_value("view/draw_priority", ["not", "a", "name"])
        third = MainWindow(SessionConfig(**SMALL))
        qtbot.addWidget(third)
        assert third.draw_priority == "balanced"
        assert s.busy_budget == DRAW_PRIORITIES["balanced"][1]
        third.close()
    finally:
        s.busy_budget = DRAW_PRIORITIES["balanced"][1]


def test_unit_selection_reaches_every_panel(qtbot):
    class Probe(Panel):
        title, object_name = "Probe", "probe_test"

        def build(self):
            self.seen = []

        def on_unit_selected(self, unit):
            self.seen.append(unit)
    sel = UnitSelection()
    a, b = Probe(sel), Probe(sel)
    qtbot.addWidget(a)
    qtbot.addWidget(b)
    a.select_unit(5)
    assert a.seen == [5] and b.seen == [5] and sel.unit == 5
    b.select_unit(5)                            # no change, no signal
    assert b.seen == [5]


def test_curves_panel_draws_and_exports(window, qtbot, tmp_path):
    window.worker.step(12)
    wait_step(qtbot, window, 12)
    panel = window.panels["curves"]
    panel.redraw_now()
    xs, ys = panel.train_curve.getData()
    assert len(xs) == 12 and np.all(np.isfinite(ys))
    assert len(panel.val_curve.getData()[0]) == 2      # steps 5 and 10
    assert "step 12" in panel.info.text()
    for name in ("c.png", "c.svg"):
        panel.export_image(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    svg = (tmp_path / "c.svg").read_text()
    assert "<svg" in svg[:2000]
    # the key the panel shows in its tool bar goes into the exported picture only
    assert "train loss" in svg and "validation loss" in svg
    assert not [i for i in panel.view.scene().items() if isinstance(i, pg.LegendItem)]
    panel.export_data(tmp_path / "c.csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "step,train_loss,val_loss,grad_norm,lr" and len(lines) == 13
    panel.export_data(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["step"], np.arange(1, 13))
    front = [n for n, p in window.panels.items() if p.is_shown()]
    paths = window.export_panels(tmp_path / "all")      # every open panel, tabs raised
    opened = [f"{n}.png" for n, d in window.docks.items() if d.toggleViewAction().isChecked()]
    assert [p.name for p in paths] == opened and "curves.png" in opened
    assert len(opened) > len(front)                     # tabs behind others are exported too
    assert [n for n, p in window.panels.items() if p.is_shown()] == front   # put back
    panel.log_box.setChecked(False)
    assert not panel.loss_plot.ctrl.logYCheck.isChecked()


def test_window_picture_is_not_empty(window, qtbot):
    window.worker.step(10)
    wait_step(qtbot, window, 10)
    for p in window.panels.values():
        p.redraw_now()
    img = window.grab().toImage()
    assert img.width() > 800 and img.height() > 500
    # the curves panel is not a blank canvas: it has plenty of distinct colours
    panel_img = window.panels["curves"].grab().toImage()
    colors = {panel_img.pixel(x, y) for x in range(0, panel_img.width(), 7)
              for y in range(0, panel_img.height(), 7)}
    assert len(colors) > 10


def test_import_weights_trained_elsewhere(window, qtbot, tmp_path, shown_errors):
    rng = np.random.default_rng(1)
    H = 6
    torch_like = {"rnn.weight_ih_l0": rng.normal(size=(3 * H, 1)).astype(np.float32),
                  "rnn.weight_hh_l0": rng.normal(size=(3 * H, H)).astype(np.float32),
                  "rnn.bias_ih_l0": rng.normal(size=3 * H).astype(np.float32),
                  "rnn.bias_hh_l0": rng.normal(size=3 * H).astype(np.float32),
                  "fc.weight": rng.normal(size=(1, H)).astype(np.float32),
                  "fc.bias": rng.normal(size=1).astype(np.float32)}
    path = tmp_path / "gru.npz"
    np.savez(path, **torch_like)
    window.import_weights(str(path))
    qtbot.waitUntil(lambda: window.snapshot.cell == "gru", timeout=WAIT)
    snap = window.snapshot
    assert snap.n_hidden == H and window.controls.hidden.value() == H
    np.testing.assert_array_equal(snap.params["W_hh"], torch_like["rnn.weight_hh_l0"])
    np.testing.assert_array_equal(snap.params["W_hy"], torch_like["fc.weight"])
    # a layer without readout: a fresh readout for the task, and the user is told
    del torch_like["fc.weight"], torch_like["fc.bias"]
    np.savez(path, **torch_like)
    run_id = snap.run_id
    window.import_weights(str(path))
    qtbot.waitUntil(lambda: window.snapshot.run_id != run_id, timeout=WAIT)
    assert "new readout" in window.statusBar().currentMessage()
    np.testing.assert_array_equal(window.snapshot.params["W_hh"], torch_like["rnn.weight_hh_l0"])
    # a layer that takes another input size is refused with the file named
    torch_like["rnn.weight_ih_l0"] = np.zeros((3 * H, 4), np.float32)
    np.savez(path, **torch_like)
    window.import_weights(str(path))
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "gru.npz" in shown_errors[0][1] and "inputs" in shown_errors[0][1]
    shown_errors.clear()


def test_remembered_settings_that_fail_fall_back_to_defaults(qtbot, shown_errors, tmp_path):
    gone = SessionConfig(task="csv", task_options={"path": str(tmp_path / "gone.csv")},
                         hidden=4)
    settings.save_json("session/last_config", gone.to_dict())
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.snapshot is not None, timeout=WAIT)
    assert "gone.csv" in shown_errors[0][1]
    assert win.snapshot.task_name == SessionConfig().task
    assert win.controls.task.currentData() == SessionConfig().task
    win.close()


def test_controls_report_only_what_the_user_edited(qtbot):
    from rnnviewer.ui.controls import ControlsWidget
    # a session written by `rnnviewer train`: task options hold everything the task uses
    base = SessionConfig(task="text", seq_len=20, task_options={
        "corpus": None, "path": "/data/book.txt", "vocab": "abc", "seed": 0, "dtype": "float32",
        "val_fraction": 0.1, "max_chars": None})
    c = ControlsWidget(base)
    qtbot.addWidget(c)
    assert c.config() == base
    c.lr.setValue(0.002)
    assert c.config() == base.replace(lr=0.002)
    c.options.editors["val_fraction"].setValue(0.2)
    assert c.config().task_options == {**base.task_options, "val_fraction": 0.2}
    c.task.setCurrentIndex(c.task.findData("parity"))
    assert c.config().task == "parity" and c.config().task_options == {}
    c.task.setCurrentIndex(c.task.findData("text"))
    assert c.options.value("path") == "/data/book.txt"
    # copy task: a new sequence length frees the delay that followed from the old one
    c.set_config(SessionConfig(task="copy", seq_len=21, task_options={"length": 5, "delay": 10}))
    c.seq_len.setValue(31)
    assert c.config().seq_len == 31 and "delay" not in c.config().task_options


def test_about_and_shortcuts_texts():
    text = dialogs.about_text()
    for name in ("rnnviewer", "Python", "numpy", "numba", "PySide6", "Qt", "pyqtgraph"):
        assert name in text
    keys = dialogs.shortcuts_text()
    assert "Space" in keys and "Ctrl+S" in keys


def test_every_control_has_a_tooltip(qtbot):
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit
    win = MainWindow(SessionConfig(), restore_settings=False)
    qtbot.addWidget(win)
    for task in ("sine", "copy", "text", "parity", "flipflop", "adding"):
        win.controls.set_config(SessionConfig(task=task))
        inputs = [w for cls in (QAbstractSpinBox, QComboBox, QLineEdit, QAbstractButton)
                  for w in win.controls.findChildren(cls)
                  if not isinstance(w.parent(), (QAbstractSpinBox, QComboBox))
                  and not w.isHidden()]
        assert len(inputs) > 12
        missing = [w for w in inputs if not (w.toolTip() or (
            getattr(w, "defaultAction", None) and w.defaultAction() and
            w.defaultAction().toolTip()))]
        assert missing == [], [type(w).__name__ for w in missing]


def test_visible_panels_get_their_worker_side_analyses(qtbot, monkeypatch, shown_errors,
                                                       confirm):
    """An analysis registered here exists in this process only: train in it."""
    from PySide6.QtWidgets import QDockWidget
    from rnnviewer.training.analyses import register_analysis
    monkeypatch.setenv("RNNVIEWER_TRAIN_IN_PROCESS", "1")
    window = open_window(qtbot)

    @register_analysis("test_unit_count", min_interval=0.0)
    def unit_count(ctx, options):
        return {"n": ctx.model.n_hidden * options["times"]}

    class Wants(Panel):
        title, object_name = "Wants", "wants_test"
        analyses = ("test_unit_count",)

        def analysis_options(self):
            return {"times": 3}
    panel = Wants(window.selection)
    dock = QDockWidget("Wants", window)
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.panels["wants_test"] = panel
    dock.show()
    qtbot.waitUntil(lambda: "test_unit_count" in window.snapshot.extra, timeout=WAIT)
    assert window.snapshot.extra["test_unit_count"]["n"] == 8 * 3     # while paused
    dock.close()
    qtbot.waitUntil(lambda: "test_unit_count" not in window._sent_requests, timeout=WAIT)
    window.close()


def test_saving_where_it_cannot_shows_the_problem(window, qtbot, tmp_path, shown_errors):
    target = tmp_path / "no" / "such" / "folder" / "s.npz"
    window.save_session(str(target))
    qtbot.waitUntil(lambda: bool(shown_errors), timeout=WAIT)
    assert "s.npz" in shown_errors[0][1] and "cannot save" in shown_errors[0][1]
    assert not target.exists()
    shown_errors.clear()


def test_garbage_is_collected_in_the_gui_thread_only(qtbot):
    import gc
    import weakref

    import shiboken6
    from PySide6.QtCore import QObject
    from rnnviewer.ui import gcguard
    from rnnviewer.ui.gcguard import GuiThreadGC
    assert gc.isenabled(), gcguard._ACTIVE
    guard = GuiThreadGC(interval_ms=10)
    assert not gc.isenabled()                     # no collection in the worker thread
    # a low first threshold: whatever else allocates or collects in the meantime, the
    # guard's next looks find more than 20 new objects (the event loop's own make more)
    guard.threshold = (20,) + guard.threshold[1:]

    class Cycle:
        pass
    for _ in range(200):
        c = Cycle()
        c.me = c
    ref = weakref.ref(c)
    del c
    qtbot.waitUntil(lambda: guard.collections > 0 and ref() is None, timeout=5000)
    guard.stop()
    assert gc.isenabled()
    # a guard deleted with its parent, never stopped, does not leave collection off
    parent = QObject()
    GuiThreadGC(parent)
    assert not gc.isenabled()
    shiboken6.delete(parent)
    assert gc.isenabled()


def test_svg_export_of_a_plain_widget_panel(qtbot, tmp_path):
    """A panel drawn by plain widgets (no pyqtgraph scene) renders into the SVG
    (PySide6 6.11 rejects QWidget.render(painter) without a target offset)."""
    from PySide6.QtWidgets import QLabel

    class Plain(Panel):
        title, object_name = "Plain", "plain_test"

        def build(self):
            self.layout_.addWidget(QLabel("a plain label with some words"))
    panel = Plain(UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(320, 200)
    panel.show()
    assert panel.export_item() is None
    panel.export_image(tmp_path / "p.svg")
    data = (tmp_path / "p.svg").read_bytes()
    assert b"<svg" in data[:2000] and len(data) > 500
