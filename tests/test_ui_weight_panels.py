"""Weight panels (weights, spectrum, histograms) drawn from real snapshots of tiny sessions
of every cell type (pytest-qt, offscreen): the items hold the expected arrays."""

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from rnnviewer.engine import Model
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import PANEL_ERRORS, UnitSelection, registered_panels
from rnnviewer.ui.panels._perf import nice_below
from rnnviewer.ui.panels._wg_common import (RunRecord, SteadyLevel, StepRing, Throttle,
                                            gate_blocks,
                                            nearest_record, robust_absmax, step_grid)
from rnnviewer.ui.panels.histograms import (FINE, HistogramsPanel, fine_histograms,
                                            fine_log_histograms, rebin)
from rnnviewer.ui.panels.spectrum import SpectrumPanel
from rnnviewer.ui.panels.weights import WeightsPanel

CELLS = ("rnn", "gru", "lstm")
TASKS = {"rnn": "adding", "gru": "sine", "lstm": "text"}    # mse I=2, mse I=1, xent one-hot
H, T, P = 6, 10, 2


def make_session(cell, task=None, hidden=H, run_id=0):
    task = task or TASKS[cell]
    opts = {"max_chars": 3000} if task == "text" else {}
    config = SessionConfig(task=task, task_options=opts, cell=cell, hidden=hidden, seq_len=T,
                           batch=4, probe_size=P, lr=0.02)
    t = build_task(config)
    model = Model(cell, t.n_in, hidden, t.n_out, seed=0, backend="numpy")
    return TrainingSession(config, task=t, model=model, run_id=run_id)


@pytest.fixture(scope="module")
def runs():
    """cell -> [snapshots after 1, 2, 3 and 4 steps]."""
    out = {}
    for cell in CELLS:
        s = make_session(cell)
        snaps = []
        for _ in range(4):
            s.run(max_steps=1)
            snaps.append(s.snapshot())
        out[cell] = snaps
    return out


def show(qtbot, cls, selection=None, size=(760, 520)):
    panel = cls(selection or UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def feed(panel, snaps):
    for snap in snaps:
        panel.update_snapshot(snap)
        panel.redraw_now()


def click_image(qtbot, panel, image, row, col):
    """A real left click on entry (row, col) of an ImageItem inside panel.view."""
    view = panel.view
    qtbot.wait(20)                                   # let the layout settle
    scene_pos = image.mapToScene(QPointF(col + 0.5, row + 0.5))
    pos = view.mapFromScene(scene_pos)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_panels_are_registered():
    names = {c.object_name for c in registered_panels()}
    assert {"weights", "spectrum", "histograms"} <= names
    assert not {"weights", "spectrum", "histograms"} & set(PANEL_ERRORS)


# ------------------------------------------------------------------ weights
@pytest.mark.parametrize("cell", CELLS)
def test_weights_heatmaps_equal_the_parameter_blocks(qtbot, runs, cell):
    snaps = runs[cell]
    panel = show(qtbot, WeightsPanel)
    feed(panel, snaps)
    snap = snaps[-1]
    G = max(1, len(snap.gate_names))
    assert len(panel.blocks) == 2 * G + 1
    for m in ("W_xh", "W_hh", "W_hy"):
        for label, block in gate_blocks(m, snap.params[m], snap.gate_names):
            img = panel.blocks[label].image.image
            want = block.T if m == "W_hy" else block
            assert img.dtype == np.float32 and img.flags.c_contiguous
            np.testing.assert_array_equal(img, want.astype(np.float32))
            lo, hi = panel.blocks[label].image.getLevels()
            assert lo == -hi and hi >= robust_absmax(snap.params[m]) * (1 - 1e-9) > 0
        assert tuple(panel.bars[m].levels()) == (lo, hi)
    if G > 1:   # gate blocks are the torch row blocks, labelled by gate
        g = snap.gate_names[1]
        np.testing.assert_array_equal(panel.blocks[f"W_hh[{g}]"].image.image,
                                      snap.params["W_hh"][H:2 * H])
    assert not panel.grab().isNull()


@pytest.mark.parametrize("cell", ("rnn", "lstm"))
def test_weights_toggle_shows_update_and_gradient(qtbot, runs, cell):
    snap = runs[cell][-1]
    panel = show(qtbot, WeightsPanel)
    feed(panel, [snap])
    for mode, source in (("delta", snap.delta), ("grad", snap.grads), ("value", snap.params)):
        panel.mode_box.setCurrentIndex(panel.mode_box.findData(mode))
        label, block = gate_blocks("W_hh", source["W_hh"], snap.gate_names)[0]
        np.testing.assert_array_equal(panel.blocks[label].image.image, block)
        np.testing.assert_array_equal(panel.blocks["W_hy"].image.image, source["W_hy"].T)
        assert panel.blocks["W_hy"].image.getLevels()[1] >= robust_absmax(source["W_hy"]) > 0
    assert np.abs(snap.delta["W_hh"]).max() > 0 and np.abs(snap.grads["W_hh"]).max() > 0
    # one matrix at a time
    panel.matrix_box.setCurrentIndex(panel.matrix_box.findData("W_xh"))
    assert {b.matrix for b in panel.blocks.values()} == {"W_xh"}


def test_weights_levels_are_held_steady(qtbot, runs):
    snap = runs["rnn"][-1]
    panel = show(qtbot, WeightsPanel)
    feed(panel, [snap])
    big = panel.bars["W_hh"].levels()[1]
    small = dataclasses.replace(snap, serial=snap.serial + 1, params={
        k: v * 0.01 for k, v in snap.params.items()})
    feed(panel, [small])
    now = panel.bars["W_hh"].levels()[1]
    # shrinks one rung of the round-value ladder, not to the new robust max
    assert now == pytest.approx(nice_below(big)) and now > 0.1 * big
    grown = dataclasses.replace(snap, serial=snap.serial + 2, params={
        k: v * 10 for k, v in snap.params.items()})
    feed(panel, [grown])
    assert panel.bars["W_hh"].levels()[1] >= robust_absmax(grown.params["W_hh"])  # at once


def test_steady_level_and_robust_max():
    lv = SteadyLevel(decay=0.5)
    assert lv.update(4.0) == 4.0 and lv.update(1.0) == 2.0 and lv.update(8.0) == 8.0
    a = np.zeros(1000)
    a[:3] = [5.0, -7.0, 1.0]
    assert robust_absmax(a) == 7.0                   # sparse: falls back to the max
    b = np.linspace(-1, 1, 2001)
    assert 0.98 < robust_absmax(b) <= 1.0
    assert robust_absmax(np.array([np.nan, np.inf, 2.0, -3.0])) == 3.0


def test_clicking_a_row_selects_the_unit_everywhere(qtbot, runs):
    snap = runs["lstm"][-1]
    sel = UnitSelection()
    panel = show(qtbot, WeightsPanel, sel)
    other = show(qtbot, WeightsPanel, sel)
    feed(panel, [snap])
    feed(other, [snap])
    seen = []
    sel.unit_selected.connect(seen.append)
    bv = panel.blocks[f"W_hh[{snap.gate_names[2]}]"]
    click_image(qtbot, panel, bv.image, 4, 1)
    assert sel.unit == 4 and seen == [4]
    for p in (panel, other):     # the selected row (and W_hh column) is outlined in each
        for b in p.blocks.values():
            r = b.row_mark.rect()
            assert (r.top(), r.height(), r.width()) == (4, 1, b.ncols)
            if b.col_mark is not None:
                assert b.col_mark.rect().left() == 4
    click_image(qtbot, panel, panel.blocks["W_hy"].image, 2, 0)
    assert sel.unit == 2


def test_hover_describes_the_entry(qtbot, runs):
    snap = runs["lstm"][-1]
    panel = show(qtbot, WeightsPanel)
    feed(panel, [snap])
    bv = panel.blocks["W_xh[f]"]
    bv.image.on_hover(3, 5)
    text = panel.info.text()
    vocab = snap.task_config["vocab"]
    assert f"W_xh[{H + 3}, 5]" in text and "gate f" in text
    assert f"{snap.params['W_xh'][H + 3, 5]:.4g}" in text
    assert repr(vocab[5]).strip("'") in text or "input 5" in text
    bv = panel.blocks["W_hy"]
    bv.image.on_hover(1, 7)
    assert "W_hy[7, 1]" in panel.info.text()
    qtbot.wait(20)                                   # a real mouse move over W_hh[o][2, 3]
    img = panel.blocks["W_hh[o]"].image
    pos = panel.view.mapFromScene(img.mapToScene(QPointF(3.5, 2.5)))
    qtbot.mouseMove(panel.view.viewport(), pos)
    assert f"W_hh[{3 * H + 2}, 3]" in panel.info.text()


def test_weights_layout_is_readable_at_H128_with_a_text_task(qtbot):
    s = make_session("lstm", "text", hidden=128)
    snap = s.snapshot()
    assert snap.model_config["n_in"] >= 50
    panel = show(qtbot, WeightsPanel, size=(1000, 700))
    feed(panel, [snap])
    qtbot.wait(10)
    for label, bv in panel.blocks.items():
        rect = bv.plot.getViewBox().sceneBoundingRect()
        assert rect.width() >= 90 and rect.height() >= 60, (label, rect)
        assert bv.image.image.shape[0] == 128


def test_weights_row_arrangement_in_a_wide_short_dock(qtbot, runs):
    snap = runs["lstm"][-1]
    panel = show(qtbot, WeightsPanel, size=(1300, 300))
    feed(panel, [snap])
    assert panel.arrangement() == "row" and len(panel.blocks) == 9
    qtbot.wait(10)
    rects = {k: b.plot.getViewBox().sceneBoundingRect() for k, b in panel.blocks.items()}
    tops = {round(r.top()) for r in rects.values()}
    assert len(tops) == 1                                 # one row, images aligned
    assert min(r.height() for r in rects.values()) >= 100
    panel.resize(700, 600)                                # taller: gate blocks stacked
    qtbot.waitUntil(lambda: panel._structure is not None and panel._structure[-1] == "stack",
                    timeout=3000)
    assert len({round(b.plot.getViewBox().sceneBoundingRect().top())
                for b in panel.blocks.values()}) == 4


# ------------------------------------------------------------------ spectrum
@pytest.mark.parametrize("cell", CELLS)
def test_spectrum_eigenvalues_equal_numpy(qtbot, runs, cell):
    snaps = runs[cell]
    panel = show(qtbot, SpectrumPanel)
    panel.throttle.ratio = panel.throttle.min_interval = 0    # compute for every snapshot
    feed(panel, snaps)
    snap = snaps[-1]
    gate = panel.current_gate()
    want_gate = {"rnn": "W_hh", "gru": "W_hh[n]", "lstm": "W_hh[g]"}[cell]
    assert gate == want_gate
    W = dict(gate_blocks("W_hh", snap.params["W_hh"], snap.gate_names))[gate]
    ev = np.linalg.eigvals(W.astype(np.float64))
    x, y = panel.now_pts.getData()
    got = np.sort_complex(np.asarray(x) + 1j * np.asarray(y))
    np.testing.assert_allclose(got, np.sort_complex(ev), atol=1e-9)
    tr = panel.tracks[gate]
    assert tr.steps == [s.step for s in snaps]
    np.testing.assert_allclose(tr.rho[-1], np.abs(ev).max())
    np.testing.assert_allclose(tr.sigma[-1], np.linalg.svd(W.astype(np.float64),
                                                           compute_uv=False)[0])
    cx, cy = panel.rho_curve.getData()
    np.testing.assert_array_equal(cx, [s.step for s in snaps])
    assert panel.plane.getViewBox().state["aspectLocked"]
    if cell != "rnn":     # another gate: its block's eigenvalues
        panel.gate_box.setCurrentIndex(0)
        W0 = snap.params["W_hh"][:H].astype(np.float64)
        x, y = panel.now_pts.getData()
        np.testing.assert_allclose(np.sort_complex(np.asarray(x) + 1j * np.asarray(y)),
                                   np.sort_complex(np.linalg.eigvals(W0)), atol=1e-9)
    assert "\u03c1" in panel.info.text()


def test_spectrum_resets_on_a_new_run_and_skips_repeats(qtbot, runs):
    snaps = runs["rnn"]
    panel = show(qtbot, SpectrumPanel)
    panel.throttle.ratio = panel.throttle.min_interval = 0
    feed(panel, snaps[:2] + [dataclasses.replace(snaps[1], serial=99)])
    assert panel.tracks["W_hh"].steps == [snaps[0].step, snaps[1].step]
    new = dataclasses.replace(snaps[0], run_id=snaps[0].run_id + 1)
    feed(panel, [new])
    assert panel.tracks["W_hh"].steps == [snaps[0].step]


def test_spectrum_tracks_the_run_while_off_screen(qtbot, runs):
    """A tab behind another (never built) still records the curves, one gate block per
    computation, and shows the whole run when it comes to the front; a new run starts
    a new history even before the panel was built."""
    snaps = runs["gru"]
    panel = SpectrumPanel(UnitSelection(), lazy=True)
    qtbot.addWidget(panel)
    panel.off_screen.min_interval = panel.off_screen.ratio = 0     # every snapshot
    for snap in snaps + snaps[-1:]:
        panel.update_snapshot(snap)
    assert not panel.built
    blocks = dict(gate_blocks("W_hh", snaps[0].params["W_hh"], snaps[0].gate_names))
    # round robin, the gate shown by default first: n, r, z, n, r
    assert {k: tr.steps for k, tr in panel.tracks.items()} == {
        "W_hh[n]": [snaps[0].step, snaps[3].step], "W_hh[r]": [snaps[1].step, snaps[3].step],
        "W_hh[z]": [snaps[2].step]}
    W = blocks["W_hh[n]"].astype(np.float64)
    np.testing.assert_allclose(panel.tracks["W_hh[n]"].rho[0],
                               np.abs(np.linalg.eigvals(W)).max())
    panel.resize(760, 520)
    panel.show()
    panel.throttle.ratio = panel.throttle.min_interval = 0
    panel.redraw_now()
    assert panel.current_gate() == "W_hh[n]"
    cx, _ = panel.rho_curve.getData()
    assert list(cx) == [snaps[0].step, snaps[3].step]               # off screen, then now
    panel.gate_box.setCurrentIndex(panel.gate_box.findData("W_hh[r]"))
    cx, _ = panel.rho_curve.getData()
    assert list(cx) == [snaps[1].step, snaps[3].step]
    hidden = SpectrumPanel(UnitSelection(), lazy=True)
    qtbot.addWidget(hidden)
    hidden.off_screen.min_interval = hidden.off_screen.ratio = 0
    hidden.update_snapshot(snaps[0])
    hidden.update_snapshot(dataclasses.replace(snaps[1], run_id=snaps[1].run_id + 1))
    assert [tr.steps for tr in hidden.tracks.values()] == [[snaps[1].step]]


def test_spectrum_plane_is_about_square_in_a_wide_dock(qtbot, runs):
    """The eigenvalue plane (aspect locked) takes about its height in width, the curves
    the rest; a tall dock splits evenly."""
    panel = show(qtbot, SpectrumPanel, size=(1200, 260))
    feed(panel, runs["rnn"][:2])
    qtbot.waitUntil(lambda: panel.plane.width() > 0)
    assert panel._plane_share < 0.45
    qtbot.waitUntil(lambda: panel.curves.width() > 1.8 * panel.plane.width(), timeout=2000)
    panel.resize(600, 600)
    qtbot.waitUntil(lambda: panel._plane_share == 0.5, timeout=2000)
    qtbot.waitUntil(lambda: abs(panel.curves.width() - panel.plane.width()) <
                    0.2 * panel.plane.width(), timeout=2000)


def test_spectrum_off_screen_is_rare():
    """Off screen: at most 1/100 of the GUI thread, every 0.25 s early in a run and no more
    than every OFF_SCREEN_EVERY (>= 1 s) once the run is a few minutes old."""
    panel = SpectrumPanel(UnitSelection(), lazy=True)
    th = panel.off_screen
    assert th.min_interval >= 1.0 and th.ratio >= 100
    assert th.floor() == 0.25                                     # no record made yet
    th.run(lambda: None)
    now = th.first_start
    assert th.floor(now + 1.0) == 0.25
    assert th.floor(now + 60.0) == pytest.approx(1.2)
    assert th.floor(now + 600.0) == th.min_interval
    th.reset()
    assert th.floor() == 0.25                                     # a new run starts dense


def test_throttle_ramp_is_measured_from_the_first_run():
    th = Throttle(min_interval=1.0, ratio=0.0, ramp=(0.25, 100.0))
    assert th.due() and th.interval() == 0.25
    th.run(lambda: None)
    t0 = th.first_start
    assert not th.due(t0 + 0.2) and th.due(t0 + 0.26)
    assert th.interval(t0 + 50.0) == pytest.approx(0.5)
    th.run(lambda: None)
    assert th.first_start == t0                                   # later runs keep it
    assert Throttle(min_interval=1.0).floor() == 1.0              # no ramp: constant


def test_spectrum_is_throttled_and_catches_up(qtbot, runs):
    snaps = runs["gru"]
    panel = show(qtbot, SpectrumPanel)
    panel.throttle.min_interval = 10.0                   # seconds between computations
    feed(panel, snaps)
    assert panel.tracks["W_hh[n]"].steps == [snaps[0].step]
    assert panel.drawn is None                           # the newest is still to do
    panel.throttle.min_interval = 0.0
    qtbot.waitUntil(lambda: panel.tracks["W_hh[n]"].steps[-1] == snaps[-1].step, timeout=3000)


def test_throttle_limits_expensive_work():
    th = Throttle(min_interval=0.05, ratio=10.0, max_interval=1.0)
    assert th.due(now=0.0)
    th.run(lambda: None)
    th.cost = 0.02                          # pretend it took 20 ms: every 200 ms at most
    assert not th.due(now=th.last_start + 0.1) and th.due(now=th.last_start + 0.21)
    th.cost = 5.0
    assert th.interval() == 1.0


# ------------------------------------------------------------------ histograms
def test_rebin_is_exact_on_aligned_edges():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 7))
    rows = fine_histograms(a, n_blocks=3)                 # whole + 3 gate blocks
    assert rows.shape == (4, 4 + FINE)
    lo, hi = a.min(), a.max()
    fine_edges = np.linspace(lo, hi, FINE + 1)
    np.testing.assert_array_equal(rows[0, 4:], rows[1:, 4:].sum(0))
    idx = np.clip(((a - lo) * (FINE / (hi - lo))).astype(int), 0, FINE - 1)
    np.testing.assert_array_equal(rows[0, 4:], np.bincount(idx.ravel(), minlength=FINE))
    edges = fine_edges[::8]                                 # every 8th fine edge
    counts = rebin(rows[:1], edges)[0]
    np.testing.assert_allclose(counts, rows[0, 4:].reshape(-1, 8).sum(1), atol=1e-9)
    wide = rebin(rows[:1], np.linspace(-0.5, 0.5, 11))[0]   # out-of-range mass in edge bins
    assert wide.sum() == pytest.approx(a.size)
    assert wide[0] == pytest.approx((a < -0.4).sum(), abs=3.0)   # first bin + below it
    assert wide[-1] == pytest.approx((a >= 0.4).sum(), abs=3.0)
    logs = fine_log_histograms(np.array([0.0, 1e-3, 1e-2, 10.0]))
    assert logs[0, 0] == pytest.approx(-3) and logs[0, 1] == pytest.approx(1)
    assert logs[0, 4:].sum() == 3                          # the zero is left out


@pytest.mark.parametrize("cell", CELLS)
def test_histograms_follow_training_with_stable_edges(qtbot, runs, cell):
    snaps = runs[cell]
    panel = show(qtbot, HistogramsPanel)
    panel.throttle.min_interval = panel.throttle.ratio = 0
    feed(panel, snaps[:2])
    edges = panel.strips["params"].edges.copy()
    feed(panel, snaps[2:])
    snap = snaps[-1]
    assert panel.entry() == "W_hh"
    entries = panel.store.entries()
    assert {"W_xh", "W_hh", "W_hy", "b_y"} <= set(entries)
    if snap.gate_names:
        assert f"W_hh[{snap.gate_names[0]}]" in entries
    sv = panel.strips["params"]
    np.testing.assert_array_equal(sv.edges, edges)          # weights moved, edges did not
    assert list(sv.steps) == [s.step for s in snaps]
    W = snap.params["W_hh"].astype(np.float64)
    hist = np.histogram(np.clip(W, sv.edges[0], sv.edges[-1]), bins=sv.edges)[0]
    assert sv.counts[-1].sum() == pytest.approx(W.size)
    # re-binning interpolates inside one fine bin: at most a few entries per display bin
    assert np.abs(sv.counts[-1] - hist).max() <= max(3.0, 0.1 * W.size)
    assert sv.shown.shape[0] == len(sv.edges) - 1 and sv.shown.max() == pytest.approx(1.0)
    g = panel.strips["grads"]
    assert g.scale == "log" and g.counts[-1].sum() == pytest.approx(
        np.count_nonzero(snap.grads["W_hh"]))
    panel.scale_box.setCurrentIndex(panel.scale_box.findData("linear"))
    assert panel.strips["grads"].edges[0] == -panel.strips["grads"].edges[-1]
    i = panel.matrix_box.findData("W_hy")
    panel.matrix_box.setCurrentIndex(i)
    assert panel.strips["params"].counts[-1].sum() == pytest.approx(snap.params["W_hy"].size)
    assert not panel.grab().isNull()


def test_histograms_record_while_off_screen(qtbot, runs):
    snaps = runs["lstm"]
    panel = HistogramsPanel(UnitSelection(), lazy=True)              # a tab never shown
    qtbot.addWidget(panel)
    panel.off_screen.min_interval = panel.off_screen.ratio = 0
    for snap in snaps + snaps[-1:]:                                   # the last one twice
        panel.update_snapshot(snap)
    assert not panel.built
    steps, rows = panel.store.get("W_hh", "params")
    assert list(steps) == [s.step for s in snaps]
    np.testing.assert_allclose(rows[0], fine_histograms(snaps[0].params["W_hh"])[0], rtol=1e-6)
    panel.resize(760, 520)
    panel.show()
    panel.redraw_now()                           # recorded off screen: drawn all the same
    assert panel.entry() == "W_hh"
    assert list(panel.strips["params"].steps) == [s.step for s in snaps]
    new_run = dataclasses.replace(snaps[0], run_id=snaps[0].run_id + 1)
    panel.hide()
    panel.update_snapshot(new_run)
    assert list(panel.store.get("W_hh", "params")[0]) == [new_run.step]


def test_run_record_keeps_the_whole_run_thinned_evenly():
    """Against a plain list of every (step, row) appended: the first and the newest rows
    are always kept, the kept rows are a subsequence of the appended ones with their own
    rows, at least `every` steps apart, and the gaps double when the record thins."""
    cap = 16
    rec = RunRecord(capacity=cap)
    rng = np.random.default_rng(0)
    step, appended = 3, {}
    for k in range(5000):
        step += int(rng.integers(0, 4)) if k else 0     # 0: the same step again
        row = [step, k]
        appended[step] = row                            # a repeated step replaces its row
        rec.append(step, row)
        steps, rows = rec.ordered()
        assert 1 <= len(steps) <= cap
        assert steps[0] == 3 and steps[-1] == step
        assert np.all(np.diff(steps) > 0)
        settled = steps[:-1]
        if len(settled) > 1:
            assert np.diff(settled).min() >= rec.every
    np.testing.assert_array_equal(rows, np.array([appended[s] for s in steps], np.float32))
    assert rec.every >= 2 ** 8 and len(steps) >= cap // 2     # ~7500 steps in <= 16 rows
    gaps = np.diff(steps[:-1])
    assert gaps.max() <= 2 * rec.every + 3                    # even: no hole in the run
    rec.clear()
    rec.append(7, [1.0, 2.0])
    assert rec.every == 1 and rec.ordered()[0].tolist() == [7]
    with pytest.raises(ValueError):
        RunRecord(capacity=2)


def test_histograms_keep_the_start_of_a_long_run(qtbot, runs):
    """More records than the store holds: the strips still begin at the run's first step."""
    snaps = runs["rnn"]
    panel = show(qtbot, HistogramsPanel)
    panel.store.capacity = 4
    panel.store.clear()
    panel.throttle.ratio = panel.throttle.min_interval = 0
    first = snaps[0]
    later = [dataclasses.replace(snaps[-1], step=first.step + 10 * (i + 1), serial=1000 + i)
             for i in range(12)]
    feed(panel, [first] + later)
    steps = list(panel.strips["params"].steps)
    assert steps[0] == first.step and steps[-1] == later[-1].step and len(steps) <= 4
    for sv in panel.strips.values():     # the strip covers exactly the recorded steps
        rect = sv.image.mapRectToParent(sv.image.boundingRect())
        assert (rect.left(), rect.right()) == pytest.approx((first.step, later[-1].step))
    sv = panel.strips["params"]             # hovering a column names the record it shows
    for col, step in ((0, first.step), (sv.shown.shape[1] - 1, later[-1].step)):
        panel._on_strip_hover(sv, 3, col)
        assert panel.info.text().startswith(f"step {step}:")


def test_step_ring_and_grid():
    ring = StepRing(capacity=3)
    for s in (1, 2, 2, 5, 9):
        ring.append(s, [s, -s])
    steps, rows = ring.ordered()
    assert list(steps) == [2, 5, 9] and rows[:, 0].tolist() == [2, 5, 9]
    img, x0, width = step_grid(steps, rows, columns=7)
    assert img.shape == (2, 7) and (x0, width) == (2.0, 7.0)   # exactly [first, last] step
    assert img[0].tolist() == [2, 2, 5, 5, 5, 9, 9]            # centres 2.5, 3.5, ... 8.5
    # irregular records: each column shows the record nearest its centre
    img, x0, width = step_grid(np.array([0, 1, 2, 10]), np.arange(4)[:, None], columns=11)
    assert img[0].tolist() == [0, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3]
    # two records far apart: neither column reaches before step 0 or past step 300
    img, x0, width = step_grid(np.array([0, 300]), np.array([[1.0], [2.0]]), columns=400)
    assert (x0, x0 + width) == (0.0, 300.0)
    assert img[0, :200].tolist() == [1.0] * 200 and img[0, 200:].tolist() == [2.0] * 200
    img, x0, width = step_grid(np.array([40]), np.array([[7.0]]), columns=400)
    assert img.shape == (1, 1) and (x0, width) == (39.5, 1.0)  # one record, one step wide


def test_nearest_record_against_argmin():
    rng = np.random.default_rng(3)
    steps = np.unique(rng.integers(0, 1000, 40))
    x = rng.uniform(-50, 1050, 500)
    x = np.concatenate([x, steps, 0.5 * (steps[1:] + steps[:-1])])   # exact hits and ties
    got = nearest_record(steps, x)
    dist = np.abs(x[:, None] - steps[None, :])
    best = dist.min(axis=1)
    assert np.all(dist[np.arange(len(x)), got] == best)
    first = np.argmax(dist == best[:, None], axis=1)           # ties: the earlier record
    assert np.array_equal(got, first)
    assert nearest_record(np.array([5]), np.array([0.0, 9.0])).tolist() == [0, 0]


# ------------------------------------------------------------------ exports
@pytest.mark.parametrize("cls", (WeightsPanel, SpectrumPanel, HistogramsPanel))
def test_exports_write_files(qtbot, runs, tmp_path, cls):
    panel = show(qtbot, cls)
    if hasattr(panel, "throttle"):
        panel.throttle.ratio = panel.throttle.min_interval = 0
    feed(panel, runs["gru"])
    for name in ("p.png", "p.svg", "d.npz", "d.csv"):
        path = tmp_path / name
        (panel.export_image if name[0] == "p" else panel.export_data)(path)
        assert path.exists() and path.stat().st_size > 100, name
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert len(z.files) >= 1 and all(z[k].size for k in z.files)
    svg = (tmp_path / "p.svg").read_text()
    if cls is HistogramsPanel:           # the matrix chosen in the tool bar: in the label
        assert panel.entry() == "W_hh" and "W_hh weights" in svg
        assert panel.strips["params"].plot.getAxis("left").labelText == "W_hh weights"
    if cls is SpectrumPanel:             # a GRU: the gate block is named in the legend
        assert f"{panel.current_gate()}, step {runs['gru'][-1].step}" in svg


def test_spectrum_track_stays_bounded_over_a_long_run():
    from rnnviewer.ui.panels.spectrum import MAX_TRACK, GateTrack
    track = GateTrack()
    for step in range(1, 3 * MAX_TRACK):
        track.add(step, np.zeros(2), 0.5 + step * 1e-4, 1.0)
    assert len(track.steps) <= MAX_TRACK and track.steps[0] == 1
    assert np.all(np.diff(track.steps) > 0)                 # thinned, still in order
    assert len(track.rho) == len(track.sigma) == len(track.steps)
    assert track.last[0] == 3 * MAX_TRACK - 1

