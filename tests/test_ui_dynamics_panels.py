"""Activation maximization and fixed-point panels (issue 8): drawn from real snapshots of
tiny sessions of every cell, their own job threads (progress, Cancel, closing mid-run),
the overlay on the state-space panel, and the Qt-free functions behind them."""

import dataclasses
import subprocess
import sys
import textwrap
import time
from types import MappingProxyType

import numpy as np
import pytest
from PySide6.QtCore import Qt

from rnnviewer.engine import Model
from rnnviewer.training.analyses import AnalysisContext, AnalysisRunner, registered_analyses
from rnnviewer.training.analyses_dynamics import (InputEncoding, input_encoding, kind_counts,
                                                  numpy_model, run_fixed_points, run_maximize)
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import UnitSelection, registered_panels
from rnnviewer.ui.panels import _job
from rnnviewer.ui.panels.fixed_points import OVERLAY, FixedPointsPanel
from rnnviewer.ui.panels.maximize import MaximizePanel
from rnnviewer.ui.panels.state_space import StateSpacePanel

CELLS = ("rnn", "gru", "lstm")
H, T, P = 6, 10, 3


def make_session(cell, task):
    opts = {"max_chars": 4000} if task == "text" else {}
    config = SessionConfig(task=task, task_options=opts, cell=cell, hidden=H, seq_len=T,
                           batch=4, probe_size=P, lr=0.02)
    t = build_task(config)
    model = Model(cell, t.n_in, H, t.n_out, seed=0, backend="numpy")
    return TrainingSession(config, task=t, model=model)


@pytest.fixture(scope="module")
def snaps():
    """(cell, task) -> a snapshot after 3 training steps."""
    out = {}
    for cell in CELLS:
        for task in ("flipflop", "text"):
            s = make_session(cell, task)
            s.run(max_steps=3)
            out[cell, task] = s.snapshot()
    return out


def show(qtbot, cls, selection=None, size=(700, 480)):
    panel = cls(selection or UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def quick(panel, iterations=20, restarts=2, starts=32):
    """Small settings, so a run takes well under a second."""
    if isinstance(panel, MaximizePanel):
        panel.iter_spin.setValue(iterations)
        panel.restarts_spin.setValue(restarts)
    else:
        panel.starts_spin.setValue(starts)
    return panel


def feed_and_wait(qtbot, panel, snap, timeout=20000):
    panel.update_snapshot(snap)
    panel.redraw_now()
    assert panel.job is not None, "a shown panel runs once it has a snapshot"
    qtbot.waitUntil(lambda: panel.job is None, timeout=timeout)
    assert panel.result is not None, panel.info.text()


# ------------------------------------------------------------------ Qt-free functions
def test_panels_and_analyses_are_registered():
    names = {c.object_name: c for c in registered_panels()}
    assert names["maximize"].title == "Activation maximization"
    assert names["fixed_points"].title == "Fixed points"
    assert {"maximize", "fixed_points"} <= set(registered_analyses())


def test_input_encoding_follows_the_task():
    x01 = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    enc = input_encoding("text", {"vocab": "ab"}, 2, x01)
    assert enc == InputEncoding("onehot", "ab")
    assert input_encoding("copy", {"symbols": 3}, 4).vocab == "ABC>"
    flip = input_encoding("flipflop", {}, 3, np.array([[[0, 1, -1], [0, 0, 0]]], float))
    assert flip.kind == "real" and flip.bounds == (-1.0, 1.0) and not flip.binary
    par = input_encoding("parity", {}, 1, np.array([[[0.0], [1.0]]]))
    assert par.kind == "real" and par.bounds == (0.0, 1.0) and par.binary
    add = input_encoding("adding", {}, 2, np.array([[[0.3, 1.0], [0.93, 0.0]]]))
    assert add.kind == "real" and add.bounds == (0.0, 1.0) and not add.binary
    sine = input_encoding("sine", {}, 1, np.array([[[-0.93], [0.81]]]))
    assert sine.bounds == (-1.0, 1.0)
    # an unknown task whose inputs are one-hot rows
    assert input_encoding("csv", {}, 2, x01).kind == "onehot"


def test_run_maximize_recovers_a_known_answer():
    """One tanh unit with signed input weights: h = tanh(w . x) is largest at x = sign(w)
    times the bound (an L2 of zero)."""
    m = Model("rnn", n_in=3, n_hidden=1, n_out=0, seed=0, dtype="float64", backend="numpy")
    for k in m.params:
        m.params[k][:] = 0.0
    m.params["W_xh"][0] = [0.8, -0.5, 0.3]
    r = run_maximize(m, {"unit": 0, "t": -1, "length": 2, "steps": 200, "l2": 0.0,
                         "bounds": (-1.0, 1.0), "restarts": 2}, InputEncoding("real"))
    np.testing.assert_allclose(r["x"][-1], [1.0, -1.0, 1.0], atol=1e-3)
    assert r["value"] == pytest.approx(np.tanh(1.6), abs=1e-4)
    assert r["x"].shape == (2, 3) and r["activation"].shape == (2,) and not r["onehot"]


def test_worker_analyses_put_results_in_extra(snaps):
    snap = snaps["gru", "text"]
    s = make_session("gru", "text")
    ctx = AnalysisContext(s.model, s.task, snap.probe, snap.step, np.random.default_rng(0))
    extra = AnalysisRunner().run_due({"maximize": {"unit": 2, "steps": 10, "restarts": 2},
                                      "fixed_points": {"starts": 16}}, ctx, force=True)
    mx, fp = extra["maximize"], extra["fixed_points"]
    assert mx["error"] is None and fp["error"] is None, (mx["error"], fp["error"])
    assert mx["onehot"] and len(mx["chars"]) == 20
    assert mx["distribution"].shape == (20, s.model.n_in)
    assert fp["points"].shape[1] == H and len(fp["q"]) == len(fp["kind"]) >= 1
    bad = AnalysisRunner().run_due({"fixed_points": {"x_star": "nonsense"}}, ctx, force=True)
    assert "x_star" in bad["fixed_points"]["error"]


# ------------------------------------------------------------------ maximize panel
@pytest.mark.parametrize("cell", CELLS)
def test_maximize_panel_draws_real_inputs(qtbot, snaps, cell):
    snap = snaps[cell, "flipflop"]
    panel = quick(show(qtbot, MaximizePanel))
    feed_and_wait(qtbot, panel, snap)
    r = panel.result
    assert panel.enc_box.currentData() == "real" and not r["onehot"]
    assert panel.len_spin.value() == T and r["x"].shape == (T, 3)
    assert panel.stack.currentWidget() is panel.view
    # three input channels: curves, no heatmap
    assert len(panel.curves) == 3 and not panel.image.isVisible()
    assert panel.curve_legend.isVisible() and "x2" in panel.curve_legend.text()
    for i, c in enumerate(panel.curves):
        np.testing.assert_allclose(c.getData()[1], r["x"][:, i])
    assert np.all(np.abs(r["x"]) <= 1.0 + 1e-9)
    xs, ys = panel.act_curve.getData()
    assert len(xs) == T and np.allclose(ys, r["activation"])
    assert panel.act_marker.getData()[1][0] == pytest.approx(r["value"])
    assert len(panel.hist_curve.getData()[1]) == 20
    assert f"h[0] at t = {T - 1}" in panel.info.text()
    assert set(panel.data_arrays()) >= {"x", "activation", "history"}


@pytest.mark.parametrize("cell", CELLS)
def test_maximize_panel_draws_one_hot_text(qtbot, snaps, cell):
    snap = snaps[cell, "text"]
    panel = quick(show(qtbot, MaximizePanel))
    feed_and_wait(qtbot, panel, snap)
    r = panel.result
    I = int(snap.model_config["n_in"])
    assert panel.enc_box.currentData() == "onehot" and r["onehot"]
    dist = r["distribution"]                                       # (T, I)
    likely = np.flatnonzero((dist.max(0) >= 0.05) | np.isin(np.arange(I), r["argmax"]))
    img = panel.image.image              # by default only the likely symbols are rows
    assert panel.image.isVisible() and img.dtype == np.float32
    np.testing.assert_array_equal(img, dist[:, likely].T.astype(np.float32))
    panel.all_box.setChecked(True)
    img = panel.image.image
    assert img.shape == (I, T)
    np.testing.assert_allclose(img.sum(0), 1.0, atol=1e-5)     # a distribution per step
    assert panel.cbar.isVisible() and tuple(panel.cbar.levels()) == (0.0, 1.0)
    assert len(r["chars"]) == T and panel.chars.isVisible()
    assert not panel.curve_legend.isVisible() and not any(c.isVisible() for c in panel.curves)
    vocab = snap.task_config["vocab"]
    assert r["chars"] == "".join(vocab[i] for i in r["distribution"].argmax(1))
    assert "most likely input" in panel.chars.text()
    assert "distribution" in panel.data_arrays()


def test_maximize_follows_the_selected_unit_and_output_units(qtbot, snaps):
    snap = snaps["rnn", "flipflop"]
    sel = UnitSelection()
    panel = quick(show(qtbot, MaximizePanel, sel))
    feed_and_wait(qtbot, panel, snap)
    sel.select(4)                                  # selected elsewhere in the app
    assert panel.job is not None and panel.unit_spin.value() == 4
    qtbot.waitUntil(lambda: panel.job is None, timeout=20000)
    assert panel.result["unit"] == 4 and panel.result["target"] == "hidden"
    panel.target_box.setCurrentIndex(1)            # an output unit
    panel.unit_spin.setValue(2)
    assert sel.unit == 4                           # output units do not change the selection
    panel.run()
    qtbot.waitUntil(lambda: panel.job is None, timeout=20000)
    assert panel.result["target"] == "output" and panel.result["unit"] == 2
    assert "y[2]" in panel.info.text()


@pytest.mark.parametrize("cls", (MaximizePanel, FixedPointsPanel))
def test_rerun_every_n_steps(qtbot, snaps, cls):
    snap = snaps["gru", "flipflop"]
    panel = quick(show(qtbot, cls))
    feed_and_wait(qtbot, panel, snap)
    first = panel.result
    later = dataclasses.replace(snap, step=snap.step + 3, serial=snap.serial + 1)
    panel.update_snapshot(later)
    panel.redraw_now()
    assert panel.job is None                       # off by default: on demand only
    panel.auto_box.setChecked(True)
    panel.auto_spin.setValue(5)
    panel.drawn = None
    panel.redraw_now()
    assert panel.job is None                       # 3 steps later: not due yet
    panel.update_snapshot(dataclasses.replace(snap, step=snap.step + 5,
                                              serial=snap.serial + 2))
    panel.redraw_now()
    assert panel.job is not None
    qtbot.waitUntil(lambda: panel.job is None, timeout=20000)
    assert panel.result is not first and panel.result["step"] == snap.step + 5


def test_maximize_can_be_cancelled(qtbot, snaps, monkeypatch):
    from rnnviewer.engine import maximize as engine_maximize
    ascent = engine_maximize._Adam.ascent

    def slow_ascent(self, *args):
        time.sleep(0.002)             # 5000 iterations take >= 10 s: the click comes first
        return ascent(self, *args)

    monkeypatch.setattr(engine_maximize._Adam, "ascent", slow_ascent)
    snap = snaps["lstm", "flipflop"]
    panel = show(qtbot, MaximizePanel)
    panel.iter_spin.setValue(5000)
    panel.update_snapshot(snap)
    panel.redraw_now()
    job = panel.job
    assert job is not None and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20000)
    qtbot.mouseClick(panel.cancel_button, _left())
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)
    assert job.thread.isFinished() and job not in _job.RUNNING
    r = panel.result                  # the best input found before the stop
    assert r is not None and r["stopped"] and 0 < len(r["history"]) < 5000
    assert panel.progress.format() == "cancelled" and not panel.cancel_button.isEnabled()
    assert "(cancelled)" in panel.info.text()


def test_a_cancel_that_finds_the_job_finished_keeps_result_before_ended(qtbot):
    """cancel() may find the thread already ended with its result still queued: the
    owner must get the result first, then job_ended (the order JobPanel documents)."""
    seen = []

    class Owner(_job.JobPanel):
        object_name = "job_order_test_panel"

        def job_succeeded(self, result):
            seen.append(("result", result))

        def job_ended(self):
            seen.append(("ended", None))

    owner = Owner(UnitSelection())
    qtbot.addWidget(owner)
    job = owner.start_job(lambda progress, should_stop: 42, "rnnviewer-job-test")
    assert job.thread.wait(5000)            # ended; its signals wait in the queue
    owner.cancel_job()
    assert seen == [("result", 42), ("ended", None)] and owner.job is None
    assert job not in _job.RUNNING


@pytest.mark.parametrize("cls", [MaximizePanel, FixedPointsPanel])
def test_a_reset_mid_run_drops_the_old_models_result(qtbot, snaps, cls):
    """The run was for the model before the reset: its (partial) result must not appear."""
    snap = snaps["lstm", "flipflop"]
    panel = show(qtbot, cls)
    if cls is MaximizePanel:
        panel.iter_spin.setValue(5000)
    panel.update_snapshot(snap)
    panel.redraw_now()
    job = panel.job
    assert job is not None
    qtbot.waitUntil(lambda: panel.progress.value() > 0 or not job.is_running(), timeout=20000)
    panel.on_reset()
    assert panel.job is None and not panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: job not in _job.RUNNING, timeout=10000)
    qtbot.wait(50)                     # let any queued result signal arrive
    assert panel.result is None and panel.progress.format() == "idle"


def test_closing_a_panel_mid_run_stops_its_thread(qtbot, snaps):
    snap = snaps["gru", "text"]
    panel = show(qtbot, MaximizePanel)
    panel.iter_spin.setValue(5000)
    panel.update_snapshot(snap)
    panel.redraw_now()
    job = panel.job
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20000)
    panel.close()                      # closeEvent: stop and wait
    assert job.thread.isFinished() and job not in _job.RUNNING


def test_jobs_never_outlive_their_panel_or_window(tmp_path):
    """A panel destroyed mid-run, a window closed mid-run, and the application quitting
    mid-run: every job thread stops, and the process ends cleanly (a QThread destroyed
    while running would abort it with "QThread: Destroyed while thread is still running")."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(f"""
        import gc, os
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget
        app = QApplication([])
        sys_path = {str(__file__)!r}
        import sys; sys.path.insert(0, os.path.dirname(sys_path))
        from test_ui_dynamics_panels import make_session
        from rnnviewer.ui.panels import UnitSelection, _job
        from rnnviewer.ui.panels.fixed_points import FixedPointsPanel
        from rnnviewer.ui.panels.maximize import MaximizePanel
        from rnnviewer.ui.runner import wait_until
        s = make_session("lstm", "flipflop"); s.run(max_steps=1); snap = s.snapshot()

        def running(cls, parent=None):
            p = cls(UnitSelection())
            if parent is not None:
                parent.layout().addWidget(p)
            if isinstance(p, MaximizePanel):
                p.iter_spin.setValue(5000); p.len_spin.setValue(300)
            else:
                p.starts_spin.setValue(2048)
            (parent or p).show()
            p.update_snapshot(snap); p.redraw_now()
            assert p.job is not None
            assert wait_until(lambda: p.progress.value() > 0 or p.job is None, 20)
            return p, p.job

        # 1. destroyed mid-run (no close)
        p, job = running(MaximizePanel)
        import shiboken6
        shiboken6.delete(p); del p      # the C++ side goes at once, as when Qt deletes it
        assert job.thread.isFinished(), "destroyed panel left its thread running"
        # 2. its window closed mid-run
        win = QWidget(); win.setLayout(QVBoxLayout())
        p, job = running(FixedPointsPanel, win)
        win.close()
        assert job.thread.isFinished(), "closed window left the thread running"
        # 3. the application quits mid-run
        p, job = running(MaximizePanel)
        QTimer.singleShot(50, app.quit)
        app.exec()
        assert job.thread.isFinished(), "quitting left the thread running"
        assert not _job.RUNNING, _job.RUNNING
        del p, job, win
        gc.collect()
        # 4. the interpreter exits with a job still running (atexit stops it)
        p, job = running(FixedPointsPanel)
        print("clean")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "clean" in out.stdout
    assert "QThread" not in out.stderr, out.stderr[-3000:]


def _left():
    return Qt.MouseButton.LeftButton


# ------------------------------------------------------------------ fixed points panel
@pytest.mark.parametrize("cell", CELLS)
def test_fixed_points_panel_draws_table_and_eigenvalues(qtbot, snaps, cell):
    snap = snaps[cell, "flipflop"]
    panel = quick(show(qtbot, FixedPointsPanel))
    feed_and_wait(qtbot, panel, snap)
    r = panel.result
    S = 2 * H if cell == "lstm" else H
    n = len(r["q"])
    assert n >= 1 and r["points"].shape == (n, S)
    assert panel.table.rowCount() == n and panel.slow_table.rowCount() == len(r["slow_q"])
    assert panel.tabs.tabText(0) == f"Fixed points ({n})"
    kinds = [panel.table.item(i, 1).text() for i in range(n)]
    assert sorted(kinds) == sorted(r["kind"]) and set(kinds) <= {"stable", "saddle", "unstable"}
    assert panel._selected == ("fixed", panel._rows["fixed"][0])      # the first row shown
    n_eig = len(panel.eig_in.getData()[0]) + len(panel.eig_out.getData()[0])
    assert n_eig == S
    assert f"{n} fixed point" in panel.info.text()
    arrays = panel.data_arrays()
    assert arrays["points"].shape == (n, S) and len(arrays["kind"]) == n


def constructed_snapshot(snap, a=2.0):
    """An RNN with W_hh = a I (H = 2), no input weights, zero biases: h = tanh(a h) per unit,
    so 9 fixed points (4 stable, 4 saddles with one unstable direction, an unstable origin
    with two), and a probe whose states cover [-0.9, 0.9]^2 for the starts."""
    cfg = dict(snap.model_config, n_hidden=2)
    m = Model("rnn", int(cfg["n_in"]), 2, int(cfg["n_out"]), dtype="float64")
    params = {k: np.zeros_like(v) for k, v in m.params.items()}
    params["W_hh"] = a * np.eye(2)
    g = np.linspace(-0.9, 0.9, 7)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1)           # (7, 7, 2)
    probe = dataclasses.replace(snap.probe, h=grid, c=None, x=np.zeros((7, 7, cfg["n_in"])))
    return dataclasses.replace(snap, params=MappingProxyType(params), probe=probe,
                               model_config=MappingProxyType(cfg), run_id=snap.run_id + 100)


def test_overlay_lands_on_the_state_space_panel(qtbot, snaps):
    snap = constructed_snapshot(snaps["rnn", "flipflop"])
    sel = UnitSelection()
    ss = show(qtbot, StateSpacePanel, sel)
    ss.update_snapshot(snap)
    ss.redraw_now()
    panel = quick(show(qtbot, FixedPointsPanel, sel), starts=49)
    assert panel.state_space_panel() is ss
    feed_and_wait(qtbot, panel, snap)
    r = panel.result
    assert kind_counts(r["kind"]) == {"stable": 4, "saddle": 4, "unstable": 1}
    stable = r["points"][r["kind"] == "stable"]
    np.testing.assert_allclose(np.sort(np.abs(stable), 0), 0.957504, atol=1e-5)
    ov = ss._overlays
    for kind, n_points, n_segments in (("stable", 4, 0), ("saddle", 4, 4), ("unstable", 1, 2)):
        layer = ov[OVERLAY + kind]
        assert len(layer["scatter"].getData()[0]) == n_points, kind
        assert (0 if layer["segments"] is None else len(layer["segments"])) == n_segments, kind
        xs = layer["lines"].getData()[0]
        assert (0 if xs is None else len(xs)) == 2 * n_segments, kind
    # the points sit where the state-space panel projects them
    xy = ss.project(stable)
    got = np.c_[ov[OVERLAY + "stable"]["scatter"].getData()]
    np.testing.assert_allclose(np.sort(got, 0), np.sort(xy, 0), atol=1e-9)
    # the legend names each kind with its count; the selection halo has no entry
    def legend():
        return sorted(label.text for _, label in ss.overlay_legend.items)
    assert legend() == ["saddle (4), unstable directions", "stable (4)",
                        "unstable (1), unstable directions"]
    # selecting a row adds a halo on that point; unticking removes everything
    panel.table.selectRow(5)
    assert len(ov[OVERLAY + "selected"]["scatter"].getData()[0]) == 1
    assert len(legend()) == 3
    panel.overlay_box.setChecked(False)
    assert not [k for k in ss._overlays if k.startswith(OVERLAY)]
    assert legend() == []
    panel.overlay_box.setChecked(True)
    assert OVERLAY + "saddle" in ss._overlays
    panel.on_reset()                               # a new run: the old points go
    assert not [k for k in ss._overlays if k.startswith(OVERLAY)]


def test_fixed_points_panel_finds_the_state_space_of_its_main_window(qtbot):
    """Through the `panels` dict of the window holding the docks (MainWindow.panels), even
    when the state-space panel uses another selection object."""
    from PySide6.QtWidgets import QDockWidget, QMainWindow
    win = QMainWindow()
    qtbot.addWidget(win)
    win.panels = {}
    for cls in (StateSpacePanel, FixedPointsPanel):
        panel = cls(UnitSelection())
        dock = QDockWidget(cls.title, win)
        dock.setWidget(panel)
        win.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        win.panels[cls.object_name] = panel
    fp = win.panels["fixed_points"]
    assert fp.state_space_panel() is win.panels["state_space"]
    win.panels["fixed_points"].parentWidget().setFloating(True)     # a floating dock too
    assert fp.state_space_panel() is win.panels["state_space"]
    lonely = FixedPointsPanel(UnitSelection())
    qtbot.addWidget(lonely)
    assert lonely.state_space_panel() is None


def test_run_fixed_points_reports_slow_points_separately():
    """A GRU whose update gate is nearly shut (z = 1 - 1e-7) barely moves any state:
    q is about 1e-15 everywhere, a fixed point for the default tolerance but a slow point
    (listed apart, thinned) for a tolerance of 1e-20."""
    m = Model("gru", n_in=1, n_hidden=3, n_out=0, seed=0, dtype="float64", backend="numpy")
    for k in m.params:
        m.params[k][:] = 0.0
    m.params["b_xh"][3:6] = 16.0                   # z = sigmoid(16)
    probe = dataclasses.make_dataclass("Probe", ["h", "c", "x"])(
        np.random.default_rng(0).uniform(-0.5, 0.5, (4, 5, 3)), None, np.zeros((4, 5, 1)))
    r = run_fixed_points(m, probe, {"starts": 20, "tol": 1e-20, "max_iter": 3})
    assert len(r["q"]) == 0 and len(r["slow_q"]) >= 5
    assert np.all((r["slow_q"] > 1e-20) & (r["slow_q"] <= 1e-4))
    assert r["slow_points"].shape == (len(r["slow_q"]), 3)
    assert list(r["slow_kind"]) == ["stable"] * len(r["slow_q"])
    loose = run_fixed_points(m, probe, {"starts": 20, "max_iter": 3})
    assert len(loose["q"]) >= 5 and len(loose["slow_q"]) == 0
    model = numpy_model(m.config, m.params)
    assert model.backend == "numpy" and model.dtype == np.float64
