"""Hidden-state panels (trajectories, state space, activations, neuron view, gates) and the
"top_contexts" analysis, drawn from real snapshots of tiny sessions (pytest-qt, offscreen)."""

import dataclasses
import re
from types import MappingProxyType

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt

from rnnviewer.engine import Model
from rnnviewer.engine.analysis import PCAProjector, gate_saturation, top_k_contexts
from rnnviewer.training.analyses import (AnalysisContext, AnalysisRunner, _freeze,
                                         registered_analyses)
from rnnviewer.training.analyses_hidden import contexts_all_units
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import UnitSelection, registered_panels
from rnnviewer.ui.panels._hidden import GATE_TITLES
from rnnviewer.ui.panels.activations import ActivationsPanel
from rnnviewer.ui.panels.gates import GatesPanel
from rnnviewer.ui.panels.neuron_view import BG, NeuronViewPanel, color_index
from rnnviewer.ui.panels.state_space import VIEW_3D, GramPCA, StateSpacePanel, view_matrix
from rnnviewer.ui.panels.trajectories import TrajectoriesPanel

CELLS = ("rnn", "gru", "lstm")
H, T, P = 6, 10, 3
PANELS = (TrajectoriesPanel, StateSpacePanel, ActivationsPanel, NeuronViewPanel, GatesPanel)


def make_session(cell, task="text"):
    opts = {"max_chars": 4000} if task == "text" else {}
    config = SessionConfig(task=task, task_options=opts, cell=cell, hidden=H, seq_len=T,
                           batch=4, probe_size=P, lr=0.02)
    t = build_task(config)
    model = Model(cell, t.n_in, H, t.n_out, seed=0, backend="numpy")
    return TrainingSession(config, task=t, model=model)


def with_contexts(session, snap, **options):
    """`snap` with the top_contexts analysis result in extra, as the worker makes it."""
    ctx = AnalysisContext(session.model, session.task, snap.probe, snap.step,
                          np.random.default_rng(0))
    opts = {"k": 4, "before": 5, "after": 2, "batches": 1, "batch_size": 8, **options}
    extra = AnalysisRunner().run_due({"top_contexts": opts}, ctx, force=True)
    return dataclasses.replace(snap, extra=extra)


@pytest.fixture(scope="module")
def runs():
    """cell -> (session, [snapshots after 2, 3 and 4 steps], last snapshot with contexts)."""
    out = {}
    for cell in CELLS:
        s = make_session(cell)
        snaps = []
        for _ in range(3):
            s.run(max_steps=1 if snaps else 2)
            snaps.append(s.snapshot())
        out[cell] = (s, snaps, with_contexts(s, snaps[-1]))
    return out


def show(qtbot, cls, selection=None, size=(640, 420)):
    panel = cls(selection or UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def feed(panel, snaps):
    for snap in snaps if isinstance(snaps, (list, tuple)) else [snaps]:
        panel.update_snapshot(snap)
        panel.redraw_now()


def click_view(qtbot, plot, x, y):
    """A real left click at view point (x, y) of a pyqtgraph PlotItem."""
    vb = plot.getViewBox()
    gv = plot.scene().views()[0]
    pos = gv.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(gv.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def hover(widget, pos):
    """A mouse move over `widget` at `pos`, delivered to it directly (QTest.mouseMove goes
    through the window system and reaches whichever top-level window is under the
    cursor: with several test windows open offscreen, not necessarily this one)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    p = QPointF(pos)
    ev = QMouseEvent(QEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton,
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def test_every_panel_and_the_analysis_are_registered():
    names = {c.object_name for c in registered_panels()}
    assert {"trajectories", "state_space", "activations", "neuron_view", "gates"} <= names
    assert "top_contexts" in registered_analyses()
    assert NeuronViewPanel.analyses == ("top_contexts",)


# ------------------------------------------------------------------ trajectories
@pytest.mark.parametrize("cell", CELLS)
def test_trajectories_draw_units_band_and_inputs(qtbot, runs, cell):
    s, snaps, last = runs[cell]
    sel = UnitSelection()
    sel.select(2)
    panel = show(qtbot, TrajectoriesPanel, sel)
    feed(panel, snaps)
    h = last.probe.h                                          # (P, T, H)
    x, y = panel.sel_curve.getData()
    np.testing.assert_array_equal(x, np.arange(T))
    np.testing.assert_allclose(y, h[0, :, 2])
    drawn = [c for c in panel.unit_curves if c.getData()[0] is not None and
             len(c.getData()[0])]
    assert len(drawn) == H - 1                                # units 0-7 minus the selected
    np.testing.assert_allclose(panel.unit_curves[0].getData()[1], h[0, :, 0])
    lo = panel.band_lo.getData()[1]
    np.testing.assert_allclose(lo, h[:, :, 2].mean(0) - h[:, :, 2].std(0), rtol=1e-5)
    ticks = panel.plot.getAxis("top")._tickLevels[0]
    labels = last.probe.labels[0]
    assert ticks and all(labels[int(t)] == text for t, text in ticks)
    panel.seq_spin.setValue(1)                                # another probe sequence
    np.testing.assert_allclose(panel.sel_curve.getData()[1], h[1, :, 2])
    panel.units_edit.setText("all")
    panel.units_edit.editingFinished.emit()
    assert set(panel.data_arrays()) >= {f"unit_{u}" for u in range(H)}
    if cell == "lstm":
        panel.state_box.setCurrentIndex(panel.state_box.findData("c"))
        np.testing.assert_allclose(panel.sel_curve.getData()[1], last.probe.c[1, :, 2])


def test_trajectories_click_on_a_trace_selects_its_unit(qtbot, runs):
    _, snaps, last = runs["gru"]
    sel = UnitSelection()
    panel = show(qtbot, TrajectoriesPanel, sel)
    panel.band_box.setChecked(False)
    feed(panel, snaps)
    h = last.probe.h[0]
    t = int(np.argmax(np.min(np.abs(h[:, [4]] - np.delete(h, 4, axis=1)), axis=1)))
    assert panel.unit_at(t, h[t, 4]) == 4
    click_view(qtbot, panel.plot, t, h[t, 4])
    assert sel.unit == 4
    assert panel.unit_at(t, 50.0) is None                     # far from every trace


# ------------------------------------------------------------------ state space
def test_gram_pca_matches_the_engine_projector():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 7)) @ rng.normal(size=(7, 7))
    a = PCAProjector(3, 512).update(X)
    b = GramPCA(3, 512).update(X)
    np.testing.assert_allclose(b.explained_variance, a.explained_variance, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(a.components * b.components, 1)), 1, atol=1e-8)
    np.testing.assert_allclose(b.components, a.components, atol=1e-7)    # same sign rule
    first = b.components.copy()
    b.update(X[:50] * 1.01)                                   # refit keeps the signs
    assert np.all(np.sum(b.components * first, axis=1) > 0.9)


@pytest.mark.parametrize("cell", CELLS)
def test_state_space_projects_the_trajectory(qtbot, runs, cell):
    _, snaps, last = runs[cell]
    panel = show(qtbot, StateSpacePanel)
    feed(panel, snaps)
    h = last.probe.h
    x, y = panel.points.getData()
    assert len(x) == T
    z = (h[0] - panel.pca.mean) @ panel.pca.components[:2].T
    np.testing.assert_allclose(np.c_[x, y], z, rtol=1e-5, atol=1e-6)
    assert panel.start.getData()[0][0] == pytest.approx(x[0])
    assert panel.end.getData()[1][0] == pytest.approx(y[-1])
    assert re.search(r"PC\d \(\d+% var\.\)", panel.plot.getAxis("bottom").labelText)
    ox, _ = panel.others.getData()
    assert np.isfinite(ox).sum() == (P - 1) * T
    panel.comp_box.setCurrentIndex(1)                         # PC2 / PC3
    x2, _ = panel.points.getData()
    np.testing.assert_allclose(x2, y, rtol=1e-5, atol=1e-6)
    assert panel.plot.getAxis("bottom").labelText.startswith("PC2")
    if cell == "lstm":
        panel.space_box.setCurrentIndex(panel.space_box.findData("hc"))
        assert panel.pca.components.shape[1] == 2 * H
        assert panel.project(np.c_[h[0], last.probe.c[0]]).shape == (T, 2)


def test_state_space_axis_labels_follow_the_variance_slowly(qtbot, runs):
    """A new share of the variance reaches the axis label at most every LABEL_EVERY_S
    (each new label redraws the axis); a new component at once."""
    import time as _time
    _, snaps, last = runs["rnn"]
    panel = show(qtbot, StateSpacePanel)
    feed(panel, [*snaps[:-1], last])
    real = panel.plot.getAxis("bottom").labelText
    assert re.fullmatch(r"PC1 \(\d+% var\.\)", real)
    panel._axis_text["bottom"] = ("PC1 (1% var.)", _time.monotonic())   # set just now
    panel.plot.setLabel("bottom", "PC1 (1% var.)")
    panel.drawn = None
    panel.redraw_now()
    assert panel.plot.getAxis("bottom").labelText == "PC1 (1% var.)"   # not yet
    panel._axis_text["bottom"] = ("PC1 (1% var.)", _time.monotonic() - 10.0)
    panel.drawn = None
    panel.redraw_now()
    assert panel.plot.getAxis("bottom").labelText == real                # due: updated
    panel.comp_box.setCurrentIndex(1)                                   # at once
    assert panel.plot.getAxis("bottom").labelText.startswith("PC2")


def test_view_matrix_selects_or_turns_the_components():
    np.testing.assert_array_equal(view_matrix((1, 2), 3), [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(view_matrix((0, 2), 2), [[1, 0], [0, 0]])  # no PC3 yet
    np.testing.assert_allclose(view_matrix(VIEW_3D, 3), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    for az, el in ((30, 20), (-135, 75), (90, -90)):
        M = view_matrix(VIEW_3D, 3, az, el)
        np.testing.assert_allclose(M @ M.T, np.eye(2), atol=1e-12)   # a turn, no stretch
    # a quarter turn brings PC3 onto x; tilting by 90 degrees brings it onto y
    np.testing.assert_allclose(view_matrix(VIEW_3D, 3, 90, 0)[0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(view_matrix(VIEW_3D, 3, 0, 90)[1], [0, 0, -1], atol=1e-12)
    assert view_matrix(VIEW_3D, 4, 10, 10)[:, 3].tolist() == [0, 0]  # PC4 never shown


def test_state_space_3d_view_turns_by_dragging(qtbot, runs):
    _, snaps, last = runs["lstm"]
    panel = show(qtbot, StateSpacePanel)
    feed(panel, [*snaps[:-1], last])
    assert not panel.az_spin.isVisible()
    panel.comp_box.setCurrentIndex(panel.comp_box.findData(VIEW_3D))
    assert panel.az_spin.isVisible() and panel.el_spin.isVisible()
    assert panel.plot.getViewBox().state["aspectLocked"]     # a turn must not stretch it
    h = last.probe.h[0]                                        # (T, H)
    z = (h - panel.pca.mean) @ panel.pca.components[:3].T     # (T, 3) on PC1-PC3
    M = view_matrix(VIEW_3D, 3, panel.az_spin.value(), panel.el_spin.value())
    x, y = panel.points.getData()
    np.testing.assert_allclose(np.c_[x, y], z @ M.T, rtol=1e-5, atol=1e-6)
    assert panel.plot.getAxis("bottom").labelText.startswith("PC1-PC3")
    az0, el0 = panel.az_spin.value(), panel.el_spin.value()
    vp = panel.view.viewport()
    c = vp.rect().center()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=c)
    for dx in (10, 20, 40):
        qtbot.mouseMove(vp, c + type(c)(dx, -dx // 2))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=c + type(c)(40, -20))
    assert panel.az_spin.value() == az0 + 20 and panel.el_spin.value() == el0 - 10
    M = view_matrix(VIEW_3D, 3, az0 + 20, el0 - 10)
    x, y = panel.points.getData()
    np.testing.assert_allclose(np.c_[x, y], z @ M.T, rtol=1e-5, atol=1e-6)
    full = np.c_[last.probe.h[1, :4], last.probe.c[1, :4]]     # overlays follow the turn
    panel.set_overlay_points(full, name="fixed points")
    np.testing.assert_allclose(np.c_[panel._overlays["fixed points"]["scatter"].getData()],
                               panel.project(full[:, :H]))
    assert panel.data_arrays()["view_matrix"].shape == (2, 3)
    panel.turn_by(200, 100)                                   # wraps, and stops at +-90
    assert panel.az_spin.value() == ((az0 + 20 + 200 + 180) % 360) - 180
    assert panel.el_spin.value() == 90
    panel.comp_box.setCurrentIndex(0)                         # back to PC1 / PC2: panning
    assert not panel.az_spin.isVisible()
    assert panel.plot.getViewBox().state["mouseEnabled"] == [True, True]
    assert not panel.plot.getViewBox().state["aspectLocked"]


def test_state_space_overlay_follows_the_basis(qtbot, runs):
    _, snaps, last = runs["lstm"]
    panel = show(qtbot, StateSpacePanel)
    changed = []
    panel.projection_changed.connect(lambda: changed.append(1))
    assert panel.project(np.zeros(H)) is None                 # nothing fitted yet
    feed(panel, snaps[:1])
    assert changed
    full = np.c_[last.probe.h[1, :4], last.probe.c[1, :4]]     # (4, 2H) LSTM states
    seg = np.stack([full[:2], full[2:]], axis=1)              # (2, 2, 2H)
    panel.set_overlay_points(full, name="fixed points", segments=seg)
    ov = panel._overlays["fixed points"]
    np.testing.assert_allclose(np.c_[ov["scatter"].getData()], panel.project(full[:, :H]))
    assert len(ov["lines"].getData()[0]) == 4
    panel.comp_box.setCurrentIndex(2)                         # PC1 / PC3: re-projected
    np.testing.assert_allclose(np.c_[ov["scatter"].getData()], panel.project(full))
    with pytest.raises(ValueError):
        panel.project(np.zeros((1, H + 1)))
    panel.clear_overlay("fixed points")
    assert panel._overlays == {}


def test_state_space_overlay_of_another_state_size_draws_nothing(qtbot, runs):
    """A fixed-point result of the model before a reset (other H) may arrive after it."""
    _, snaps, last = runs["lstm"]
    panel = show(qtbot, StateSpacePanel)
    feed(panel, snaps[:1])
    stale = np.zeros((3, H + 3))
    panel.set_overlay_points(stale, name="stale", segments=np.stack([stale, stale], axis=1))
    ov = panel._overlays["stale"]
    assert len(ov["scatter"].getData()[0]) == 0 and len(ov["lines"].getData()[0]) == 0


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("cell", CELLS)
def test_activation_heatmap_shows_units_by_time(qtbot, runs, cell):
    _, snaps, last = runs[cell]
    sel = UnitSelection()
    sel.select(3)
    panel = show(qtbot, ActivationsPanel, sel)
    feed(panel, snaps)
    img = panel.image.image
    assert img.shape == (H, T) and img.dtype == np.float32 and img.flags.c_contiguous
    np.testing.assert_allclose(img, last.probe.h[0].T, rtol=1e-6)
    assert tuple(panel.image.levels) == (-1.0, 1.0)
    assert tuple(panel.cbar.levels()) == (-1.0, 1.0)
    ys = panel.marker.getData()[1]
    assert min(ys) == pytest.approx(2.5) and max(ys) == pytest.approx(3.5)
    ticks = panel.plot.getAxis("bottom")._tickLevels[0]
    assert ticks and all(last.probe.labels[0][int(t)] == s for t, s in ticks)
    click_view(qtbot, panel.plot, 4.0, 5.0)                   # t=4, unit 5
    assert sel.unit == 5
    ys = panel.marker.getData()[1]
    assert min(ys) == pytest.approx(4.5)
    assert panel.cell_at(-3, 1) is None


# ------------------------------------------------------------------ neuron view
@pytest.mark.parametrize("cell", CELLS)
def test_neuron_view_colours_the_text_and_lists_contexts(qtbot, runs, cell):
    s, snaps, last = runs[cell]
    sel = UnitSelection()
    sel.select(1)
    panel = show(qtbot, NeuronViewPanel, sel)
    feed(panel, snaps[:1])                                    # no analysis result yet
    assert "waiting" in panel.ctx_title.text()
    feed(panel, last)
    acts = last.probe.h[:, :, 1]
    assert panel.text.labels() == [list(r) for r in last.probe.labels]   # every input
    np.testing.assert_array_equal(panel.cell_colors(), color_index(acts))
    i = int(color_index([acts[2, 5]])[0])
    panel.text.resize(600, 400)
    img = panel.text.grab().toImage()                      # the cell is painted in BG[i]
    r = panel.text.cell_rect(2, 5)
    assert img.pixelColor(r.left() + 1, r.top() + 1).name() == BG[i]
    res = last.extra["top_contexts"]
    assert "Where unit 1 fires highest" in panel.ctx_title.text()
    ok = np.isfinite(res["max_values"][1])
    rows = panel._ctx_rows
    assert len(rows[2]) == ok.sum() > 0
    assert panel.contexts.toPlainText().count("seq ") == ok.sum()
    panel.mode_box.setCurrentIndex(1)
    np.testing.assert_allclose(panel._ctx_rows[2], res["min_values"][1][ok])
    sel.select(4)                                             # from another panel
    assert panel.unit_spin.value() == 4
    np.testing.assert_allclose(panel._acts, last.probe.h[:, :, 4])
    assert panel.most_active_unit(0, 3) == int(np.argmax(np.abs(last.probe.h[0, 3])))
    r = panel.text.cell_rect(0, 3)                         # a click on a character selects
    assert panel.text.cell_at(r.center()) == (0, 3)        # the unit most active there
    qtbot.mouseClick(panel.text, Qt.MouseButton.LeftButton, pos=r.center())
    assert sel.unit == int(np.argmax(np.abs(last.probe.h[0, 3])))
    hover(panel.text, panel.text.cell_rect(1, 0).center())
    assert "seq 1  t=0" in panel.info.text()               # hovering shows the value
    hover(panel.text, r.center())
    assert "seq 0  t=3" in panel.info.text()


def test_neuron_view_shows_analysis_errors_and_values_of_numeric_tasks(qtbot):
    s = make_session("gru", task="sine")
    s.run(max_steps=1)
    snap = s.snapshot()
    panel = show(qtbot, NeuronViewPanel)
    opts = panel.analysis_options()
    bad = dataclasses.replace(snap, extra=MappingProxyType({"top_contexts": _freeze(
        {"error": "ConfigError: broken", "options": opts, "step": 1})}))
    feed(panel, bad)
    assert "failed" in panel.ctx_title.text() and "broken" in panel.ctx_title.text()
    feed(panel, with_contexts(s, snap, before=3, after=1))
    text = panel.text.toPlainText()
    assert snap.probe.labels[0][0] in text and len(snap.probe.labels[0][0]) > 1
    assert panel._ctx_rows is not None and len(panel._ctx_rows[0][0]) == 5


# ------------------------------------------------------------------ gates
def test_gates_panel_says_an_rnn_has_no_gates(qtbot, runs, tmp_path):
    _, snaps, _ = runs["rnn"]
    panel = show(qtbot, GatesPanel)
    feed(panel, snaps)
    assert panel.stack.currentWidget() is panel.message
    assert "no gates" in panel.message.text()
    assert panel.data_arrays() == {}
    for suffix in ("png", "svg"):                             # the message is the picture
        assert panel.export_image(tmp_path / f"gates.{suffix}").stat().st_size > 1000


@pytest.mark.parametrize("cell", ("gru", "lstm"))
def test_gates_over_time_and_saturation_over_training(qtbot, runs, cell, tmp_path):
    _, snaps, last = runs[cell]
    sel = UnitSelection()
    sel.select(2)
    panel = show(qtbot, GatesPanel, sel)
    for snap in snaps:
        panel.update_snapshot(snap)                          # accumulated even if not drawn
    panel.redraw_now()
    assert panel.stack.currentWidget() is panel.view
    names = last.gate_names
    assert set(panel.time_curves) == set(names)
    for g in names:
        np.testing.assert_allclose(panel.time_curves[g].getData()[1], last.probe.gates[g][0, :, 2])
    sigmoid = ("r", "z") if cell == "gru" else ("i", "f", "o")
    assert set(panel.sat_curves) == set(sigmoid)
    steps, high = panel.sat_curves[sigmoid[0]][1].getData()
    np.testing.assert_array_equal(steps, [s.step for s in snaps])
    want = [gate_saturation(s.probe.gates, names=sigmoid)[sigmoid[0]].high for s in snaps]
    np.testing.assert_allclose(high, want)
    x, y = panel.unit_points[sigmoid[-1]].getData()
    per = gate_saturation(last.probe.gates, names=sigmoid, per_unit=True)[sigmoid[-1]]
    np.testing.assert_allclose(x, per.low)
    np.testing.assert_allclose(y, per.high)
    pts = panel.unit_points[sigmoid[0]].points()
    panel._on_unit_points_clicked(panel.unit_points[sigmoid[0]], [pts[5]], None)
    assert sel.unit == 5
    np.testing.assert_allclose(panel.time_curves[names[0]].getData()[1],
                               last.probe.gates[names[0]][0, :, 5])
    svg = panel.export_image(tmp_path / "gates.svg").read_text()   # the key, exported only
    assert "unit 5, seq 0" in svg and all(GATE_TITLES[g] in svg for g in names)
    assert not [i for i in panel.view.scene().items() if isinstance(i, pg.LegendItem)]
    panel.on_reset()
    assert panel._history == {}
    assert len(panel.sat_curves[sigmoid[0]][0].getData()[0]) == 0


def test_the_unit_arrow_stays_near_the_states(qtbot, runs):
    """The arrow shows +1 of the unit's activation, or a round fraction of it when +1
    would reach far beyond the states drawn (early in training they lie close together)."""
    from rnnviewer.ui.panels.state_space import arrow_step
    assert arrow_step(0.5, 2.0) == 1.0 and arrow_step(2.0, 2.0) == 1.0
    assert arrow_step(4.0, 1.0) == 0.2           # 0.25 wanted: the next round one below
    assert arrow_step(10.0, 0.3) == 0.02
    assert arrow_step(3.0, 1.5) == 0.5
    assert arrow_step(0.0, 1.0) == 1.0 and arrow_step(1.0, 0.0) == 1.0
    _, snaps, last = runs["rnn"]
    panel = show(qtbot, StateSpacePanel)
    feed(panel, [*snaps[:-1], last])
    tip = np.array(panel.unit_tip.getData()).ravel()
    step = float(panel.unit_text.toPlainText().split("+")[1])
    length = np.hypot(*tip) / step                # the arrow of +1
    assert step == arrow_step(length, panel._reach())
    assert step < 1 and np.hypot(*tip) <= panel._reach()   # these few steps: states close


# ------------------------------------------------------------------ across panels
def test_unit_selection_propagates_between_the_panels(qtbot, runs):
    _, snaps, last = runs["lstm"]
    sel = UnitSelection()
    panels = {cls: show(qtbot, cls, sel) for cls in PANELS}
    for p in panels.values():
        feed(p, [*snaps[:-1], last])
    act = panels[ActivationsPanel]
    click_view(qtbot, act.plot, 2.0, 4.0)                    # row of unit 4
    assert sel.unit == 4
    for p in panels.values():
        p.redraw_now()
    traj = panels[TrajectoriesPanel]
    np.testing.assert_allclose(traj.sel_curve.getData()[1], last.probe.h[0, :, 4])
    assert panels[NeuronViewPanel].unit_spin.value() == 4
    assert "unit 4" in panels[GatesPanel].legend.text()
    assert panels[StateSpacePanel].unit_text.toPlainText().startswith("unit 4 +")
    panels[NeuronViewPanel].unit_spin.setValue(1)            # and back from the neuron view
    assert sel.unit == 1
    np.testing.assert_allclose(act.marker.getData()[1][0], 0.5)
    np.testing.assert_allclose(traj.sel_curve.getData()[1], last.probe.h[0, :, 1])


@pytest.mark.parametrize("cls", PANELS, ids=lambda c: c.object_name)
def test_panels_follow_new_runs_of_other_cells_and_sizes(qtbot, runs, cls):
    panel = show(qtbot, cls)
    order = [("lstm", 0), ("rnn", 1), ("gru", 2), ("lstm", 3)]
    small = make_session("gru")
    s4 = TrainingSession(small.config, task=small.task,
                         model=Model("gru", small.task.n_in, 4, small.task.n_out,
                                     backend="numpy"))
    snap4 = dataclasses.replace(s4.snapshot(), run_id=9)
    for cell, run in order:
        snap = dataclasses.replace(runs[cell][2], run_id=run)
        feed(panel, snap)
        assert panel.error is None
    panel.select_unit(5)                                      # a unit the next model lacks
    feed(panel, snap4)                                        # a GRU with 4 units
    assert panel.error is None and panel.drawn is snap4
    assert panel.data_arrays()


@pytest.mark.parametrize("cls", PANELS, ids=lambda c: c.object_name)
def test_exports_write_pictures_and_data(qtbot, runs, tmp_path, cls):
    _, snaps, last = runs["lstm"]
    panel = show(qtbot, cls)
    feed(panel, [*snaps[:-1], last])
    for suffix in ("png", "svg"):
        path = panel.export_image(tmp_path / f"{cls.object_name}.{suffix}")
        assert path.stat().st_size > 1000
    if cls is TrajectoriesPanel:         # the other units' colours: a legend, exported only
        svg = (tmp_path / f"{cls.object_name}.svg").read_text()
        assert all(f"unit {u}" in svg for u in range(1, H))    # unit 0 is selected
    csv = panel.export_data(tmp_path / f"{cls.object_name}.csv")
    assert len(csv.read_text().splitlines()) > T
    npz = panel.export_data(tmp_path / f"{cls.object_name}.npz")
    with np.load(npz, allow_pickle=False) as data:
        arrays = dict(data)
    assert arrays and all(a.size for a in arrays.values())


# ------------------------------------------------------------------ the analysis
def test_contexts_all_units_on_a_hand_built_case():
    acts = np.zeros((2, 8, 2))
    acts[0, 5, 0] = 0.9           # unit 0: peaks at (0, 5) and (1, 1); lowest at (1, 6)
    acts[1, 1, 0] = 0.7
    acts[1, 6, 0] = -0.8
    acts[0, 4, 0] = 0.5           # inside the first peak's window: not a separate context
    acts[:, :, 1] = -1.0          # unit 1: flat
    acts[1, 2, 1] = 0.3
    labels = np.array([list("abcdefgh"), list("ABCDEFGH")])
    out = contexts_all_units(acts, labels, k=3, before=2, after=1)
    assert out["max_positions"].shape == (2, 3, 2) and out["max_labels"].shape == (2, 3, 4)
    np.testing.assert_array_equal(out["max_positions"][0, :2], [[0, 5], [1, 1]])
    np.testing.assert_allclose(out["max_values"][0, :2], [0.9, 0.7])
    np.testing.assert_array_equal(out["max_labels"][0, 0], list("defg"))   # peak at column 2
    np.testing.assert_allclose(out["max_windows"][0, 0], [0.0, 0.5, 0.9, 0.0])
    np.testing.assert_array_equal(out["max_labels"][0, 1], ["", "A", "B", "C"])  # clipped
    assert np.isnan(out["max_windows"][0, 1, 0])
    np.testing.assert_array_equal(out["min_positions"][0, 0], [1, 6])
    assert out["min_values"][0, 0] == pytest.approx(-0.8)
    np.testing.assert_array_equal(out["max_positions"][1, 0], [1, 2])
    assert out["max_values"][1, 0] == pytest.approx(0.3)
    assert out["before"] == 2 and out["after"] == 1 and out["n_sequences"] == 2


def test_contexts_all_units_equal_the_full_search():
    """The search restricted to the sequences that can hold a top-k context finds exactly
    what top_k_contexts finds over all sequences (ties included)."""
    rng = np.random.default_rng(0)
    for trial in range(12):
        N, T = int(rng.integers(1, 9)), int(rng.integers(1, 12))
        acts = rng.normal(size=(N, T, 2))
        if trial % 3 == 0:
            acts = np.round(acts, 1)                          # many ties
        labels = rng.choice(list("xyz"), size=(N, T))
        k, before, after = int(rng.integers(1, 5)), int(rng.integers(0, 3)), 1
        out = contexts_all_units(acts, labels, k, before, after)
        where = np.arange(N * T).reshape(N, T)
        for mode in ("max", "min"):
            for u in range(2):
                c = top_k_contexts(acts, u, k=k, before=before, after=after, inputs=where,
                                   mode=mode)
                n = len(c.values)
                np.testing.assert_array_equal(out[f"{mode}_positions"][u, :n], c.positions)
                assert np.all(out[f"{mode}_positions"][u, n:] == -1)
                np.testing.assert_allclose(out[f"{mode}_windows"][u, :n], c.windows)


def test_top_contexts_analysis_matches_the_model(runs):
    s, _, last = runs["gru"]
    res = last.extra["top_contexts"]
    assert res["error"] is None and res["step"] == last.step
    b = s.task.val_batches(1, 8)[0]
    h = s.model.forward(b.x).h                                # (8, T, H)
    for u in range(H):
        assert res["max_values"][u, 0] == pytest.approx(h[:, :, u].max(), rel=1e-6)
        assert res["min_values"][u, 0] == pytest.approx(h[:, :, u].min(), rel=1e-6)
        n, t = res["max_positions"][u, 0]
        assert res["max_labels"][u, 0, 5] == s.task.render_inputs(b.x[n])[t]
    with pytest.raises(Exception, match="state"):
        registered_analyses()["top_contexts"].fn(
            AnalysisContext(s.model, s.task, last.probe, 0, np.random.default_rng(0)),
            {"state": "c"})
