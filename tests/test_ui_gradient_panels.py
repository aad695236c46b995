"""Gradient panels (saliency, gradient through time) and the "saliency" analysis, from real
snapshots of tiny sessions of every cell type (pytest-qt, offscreen)."""

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest

from rnnviewer.engine import Model, attribution
from rnnviewer.errors import ConfigError
from rnnviewer.training.analyses import AnalysisContext, AnalysisRunner, registered_analyses
from rnnviewer.training.analyses_gradients import METHOD_NAMES, METHODS, attribute, resolve
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import PANEL_ERRORS, UnitSelection, registered_panels
from rnnviewer.ui.panels.grad_through_time import FLOOR, GradThroughTimePanel, log_grad_norms
from rnnviewer.ui.panels.saliency import SaliencyPanel

CELLS = ("rnn", "gru", "lstm")
TASKS = {"rnn": "adding", "gru": "sine", "lstm": "text"}    # mse I=2, mse I=1, xent one-hot
H, T, P = 6, 10, 2


def make_session(cell, task=None, run_id=0):
    task = task or TASKS[cell]
    opts = {"max_chars": 3000} if task == "text" else {}
    config = SessionConfig(task=task, task_options=opts, cell=cell, hidden=H, seq_len=T,
                           batch=4, probe_size=P, lr=0.02)
    t = build_task(config)
    model = Model(cell, t.n_in, H, t.n_out, seed=0, backend="numpy")
    return TrainingSession(config, task=t, model=model, run_id=run_id)


@pytest.fixture(scope="module")
def runs():
    """cell -> (session, [snapshots after 1, 2, 3 and 4 steps])."""
    out = {}
    for cell in CELLS:
        s = make_session(cell)
        snaps = []
        for _ in range(4):
            s.run(max_steps=1)
            snaps.append(s.snapshot())
        out[cell] = (s, snaps)
    return out


def with_saliency(session, snap, options):
    """`snap` with the saliency result in extra, as the worker makes it."""
    ctx = AnalysisContext(session.model, session.task, snap.probe, snap.step,
                          np.random.default_rng(0))
    extra = AnalysisRunner().run_due({"saliency": options}, ctx, force=True)
    return dataclasses.replace(snap, extra=extra)


def show(qtbot, cls, selection=None, size=(700, 480)):
    panel = cls(selection or UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def feed(panel, snaps):
    for snap in snaps:
        panel.update_snapshot(snap)
        panel.redraw_now()


def test_registered():
    names = {c.object_name for c in registered_panels()}
    assert {"saliency", "grad_through_time"} <= names
    assert not {"saliency", "grad_through_time"} & set(PANEL_ERRORS)
    assert "saliency" in registered_analyses()
    assert SaliencyPanel.analyses == ("saliency",)


# ------------------------------------------------------------------ the analysis
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("method", METHODS)
def test_analysis_returns_what_the_engine_returns(runs, cell, method):
    s, snaps = runs[cell]
    probe, m = snaps[-1].probe, s.model
    x = np.asarray(probe.x[:1])
    k = 0 if s.task.loss == "mse" else int(probe.target[0, 3])
    opts = {"method": method, "t": 3 - T, "k": k if s.task.loss == "mse" else "target"}
    r = attribute(m, probe, s.task.loss, opts)
    assert r["t"] == 3 and r["k"] == k and r["method"] == method
    if method == "gradient":
        want = attribution.saliency(m, x, 3, k)[0]
    elif method == "input_x_gradient":
        want = attribution.input_x_gradient(m, x, 3, k)[0]
    elif method == "integrated_gradients":
        want, delta = attribution.integrated_gradients(m, x, 3, k, steps=50)
        want = want[0]
        assert r["delta"] == pytest.approx(float(delta[0]))
        assert r["f_difference"] == pytest.approx(want.sum() - float(delta[0]))
    else:
        want = attribution.occlusion(m, x, 3, k)[0]
    if method == "occlusion":
        assert r["per_feature"] is None
        np.testing.assert_array_equal(r["per_step"], want)
    else:
        np.testing.assert_array_equal(r["per_feature"], want)
        step = np.sqrt((want.astype(float) ** 2).sum(1)) if method == "gradient" and \
            want.shape[1] > 1 else want.sum(1)
        np.testing.assert_allclose(r["per_step"], step, rtol=1e-6)
        assert not r["per_step"][4:].any()          # later inputs cannot matter
    assert r["value"] == pytest.approx(float(probe.y[0, 3, k]))
    assert r["seconds"] >= 0


@pytest.mark.parametrize("cell", ("rnn", "lstm"))
def test_analysis_loss_and_hidden_unit(runs, cell):
    s, snaps = runs[cell]
    probe, m, loss = snaps[-1].probe, s.model, s.task.loss
    x, tgt = np.asarray(probe.x[:1]), np.asarray(probe.target[:1])
    mask = None if probe.mask is None else np.asarray(probe.mask[:1])
    r = attribute(m, probe, loss, {"method": "gradient", "t": -1, "k": "loss"})
    want = attribution.saliency(m, x, T - 1, "loss", target=tgt, loss=loss, mask=mask)[0]
    np.testing.assert_array_equal(r["per_feature"], want)
    r = attribute(m, probe, loss, {"method": "input_x_gradient", "k": "loss_seq"})
    want = attribution.input_x_gradient(m, x, None, "loss", target=tgt, loss=loss,
                                        mask=mask)[0]
    np.testing.assert_array_equal(r["per_feature"], want)
    whole = m.loss(m.forward(x).y, tgt, loss, mask)[0]
    assert r["value"] == pytest.approx(whole, rel=1e-5)
    r = attribute(m, probe, loss, {"method": "occlusion", "t": 5, "k": "unit", "unit": 2})
    np.testing.assert_array_equal(r["per_step"],
                                  attribution.occlusion(m, x, 5, 2, layer="hidden")[0])
    assert r["value"] == pytest.approx(float(probe.h[0, 5, 2]))


def test_analysis_options_are_checked(runs):
    s, snaps = runs["rnn"]
    probe = snaps[-1].probe
    r = resolve({}, probe, "mse", 1, H)
    assert (r["method"], r["t"], r["k"]) == ("gradient", T - 1, 0)       # defaults
    s2, snaps2 = runs["lstm"]
    r = resolve({}, snaps2[-1].probe, "xent", s2.model.n_out, H)
    assert r["k"] == int(snaps2[-1].probe.target[0, T - 1])               # target class
    for bad in ({"method": "magic"}, {"t": T}, {"t": -T - 1}, {"k": 5}, {"k": "target"},
                {"k": "unit", "unit": H}, {"steps": 1}, {"t": 1.5}):
        with pytest.raises(ConfigError):
            resolve(bad, probe, "mse", 1, H)
    # through the runner an error is reported, never raised
    ctx = AnalysisContext(s.model, s.task, probe, 4, np.random.default_rng(0))
    out = AnalysisRunner().run_due({"saliency": {"method": "magic"}}, ctx, force=True)
    assert "unknown method" in out["saliency"]["error"]


# ------------------------------------------------------------------ saliency panel
def test_saliency_panel_says_it_waits_then_shows_errors(qtbot, runs):
    s, snaps = runs["rnn"]
    panel = show(qtbot, SaliencyPanel)
    feed(panel, [snaps[-1]])
    assert "waiting" in panel.message.toPlainText() and panel.message.isVisible()
    assert panel.rows is None
    bad = dataclasses.replace(snaps[-1], serial=50, extra=MappingProxyType(
        {"saliency": MappingProxyType({"error": "ConfigError: boom", "options": {},
                                       "step": 4})}))
    feed(panel, [bad])
    assert "boom" in panel.info.text() and "failed" in panel.message.toPlainText()


@pytest.mark.parametrize("cell", ("rnn", "gru"))
@pytest.mark.parametrize("method", METHODS)
def test_saliency_panel_draws_series_strips(qtbot, runs, cell, method):
    s, snaps = runs[cell]
    panel = show(qtbot, SaliencyPanel)
    feed(panel, [snaps[0]])
    panel.method_box.setCurrentIndex(panel.method_box.findData(method))
    panel.t_spin.setValue(-3)
    assert panel.t_spin.text() == f"-3 (t = {T - 3})"
    opts = panel.analysis_options()
    assert opts["method"] == method and opts["t"] == -3 and opts["k"] == 0
    assert ("steps" in opts) == (method == "integrated_gradients")
    snap = with_saliency(s, snaps[-1], opts)
    feed(panel, [snap])
    res = snap.extra["saliency"]
    assert res["error"] is None
    I = snap.probe.x.shape[2]
    img = panel.strip.image
    if method != "occlusion" and I > 1:       # one row per feature, then the aggregate
        assert img.shape == (I + 1, T)
        np.testing.assert_allclose(img[:I], np.asarray(res["per_feature"]).T, rtol=1e-6)
    else:
        assert img.shape == (1, T)
    np.testing.assert_allclose(img[-1], res["per_step"], rtol=1e-6)
    lo, hi = panel.strip.getLevels()
    assert lo == -hi and hi >= np.abs(img).max() * (1 - 1e-6)
    assert panel.t_lines[0].value() == pytest.approx(T - 3 + 0.5)
    x, y = panel.curves[0].getData()
    np.testing.assert_allclose(y, snap.probe.x[0, :, 0])
    if method == "integrated_gradients":
        assert "delta" in panel.info.text()
    assert "updating" not in panel.info.text()
    panel.t_spin.setValue(2)                     # a new choice: the old result is marked
    assert "updating" in panel.info.text()


def test_saliency_panel_text_mode_and_clicks(qtbot, runs):
    s, snaps = runs["lstm"]
    panel = show(qtbot, SaliencyPanel)
    feed(panel, [snaps[0]])
    assert panel.k_box.currentData() == "target"            # xent default
    panel.method_box.setCurrentIndex(panel.method_box.findData("input_x_gradient"))
    snap = with_saliency(s, snaps[-1], panel.analysis_options())
    feed(panel, [snap])
    res = snap.extra["saliency"]
    html = panel.text.text()
    assert panel.text.isVisible() and html.count("<a href='t:") == T
    assert html.count("background-color:#") == T                # every character coloured
    assert "text-decoration:underline" in html                  # the output timestep
    heights = panel.bars.opts["height"]
    np.testing.assert_allclose(heights, res["per_step"])
    k = int(snap.probe.target[0, T - 1])
    assert res["k"] == k and f"class {k}" in panel.info.text()
    panel._on_text_link_activated("t:4")                        # clicking a character
    assert panel.t_spin.value() == 4 and panel.analysis_options()["t"] == 4
    panel._on_text_link_hovered("t:2")
    assert "\u03c4 = 2" in panel.info.text()


def test_saliency_follows_the_selected_unit(qtbot, runs):
    s, snaps = runs["gru"]
    sel = UnitSelection()
    panel = show(qtbot, SaliencyPanel, sel)
    feed(panel, [snaps[-1]])
    panel.k_box.setCurrentIndex(panel.k_box.findData("unit"))
    sel.select(3)
    assert panel.analysis_options()["unit"] == 3 and panel.analysis_options()["k"] == "unit"
    snap = with_saliency(s, snaps[-1], panel.analysis_options())
    feed(panel, [snap])
    assert "unit 3" in panel.info.text()


# ------------------------------------------------------------------ gradient through time
def test_grad_through_time_records_while_off_screen(qtbot, runs):
    s, snaps = runs["lstm"]
    panel = GradThroughTimePanel(UnitSelection(), lazy=True)   # a tab never shown
    qtbot.addWidget(panel)
    for sn in snaps + snaps[-1:]:                              # the last one twice
        panel.update_snapshot(sn)
    assert not panel.built
    steps, rows = panel.ring.ordered()
    assert list(steps) == [sn.step for sn in snaps]
    np.testing.assert_allclose(rows[0], log_grad_norms(snaps[0].probe.dh))
    panel.resize(700, 480)
    panel.show()
    panel.redraw_now()
    img = panel.image.image                                    # (T, columns)
    np.testing.assert_allclose(img[:, 0], rows[0])
    np.testing.assert_allclose(img[:, -1], rows[-1])
    new_run = dataclasses.replace(snaps[0], run_id=snaps[0].run_id + 1)
    panel.update_snapshot(new_run)
    assert list(panel.ring.ordered()[0]) == [new_run.step]


@pytest.mark.parametrize("cell", CELLS)
def test_grad_through_time_rows_are_log_norms(qtbot, runs, cell):
    s, snaps = runs[cell]
    sel = UnitSelection()
    panel = show(qtbot, GradThroughTimePanel, sel)
    feed(panel, snaps)
    steps, rows = panel.ring.ordered()
    assert list(steps) == [sn.step for sn in snaps]
    for sn, row in zip(snaps, rows):
        dh = np.asarray(sn.probe.dh, dtype=np.float64)                 # (P, T, H)
        want = np.log10(np.mean(np.linalg.norm(dh, axis=2), axis=0))
        np.testing.assert_allclose(row, np.maximum(want, FLOOR), rtol=1e-5)
    img = panel.image.image                               # (T, columns): nearest record
    assert img.shape[0] == T
    np.testing.assert_allclose(img[:, 0], rows[0])
    np.testing.assert_allclose(img[:, -1], rows[-1])
    lo, hi = panel.image.getLevels()
    assert lo < hi and tuple(panel.bar.levels()) == (lo, hi)
    x, y = panel.curve.getData()
    np.testing.assert_allclose(x, rows[-1], rtol=1e-6)
    np.testing.assert_allclose(y, np.arange(T) + 0.5)
    sel.select(4)                                                   # the unit's own curve
    ux, _ = panel.unit_curve.getData()
    u = np.abs(np.asarray(snaps[-1].probe.dh[:, :, 4], np.float64)).mean(0)
    np.testing.assert_allclose(ux, np.log10(u), rtol=1e-5)
    assert "unit 4" in panel.side.titleLabel.text
    assert "10^" in panel.info.text()


def test_grad_through_time_scrolls_and_resets(qtbot, runs):
    s, snaps = runs["rnn"]
    panel = show(qtbot, GradThroughTimePanel)
    panel.keep_box.setValue(50)
    many = [dataclasses.replace(snaps[-1], serial=i, step=i + 1) for i in range(60)]
    feed(panel, many)
    steps, _ = panel.ring.ordered()
    assert len(steps) == 50 and steps[0] == 11 and steps[-1] == 60
    assert panel.image.image.shape[0] == T
    g = panel.grid_steps                      # column centres: within steps 11..60
    assert 11 < g[0] < g[-1] < 60
    rect = panel.image.mapRectToParent(panel.image.boundingRect())
    assert (rect.left(), rect.right()) == pytest.approx((11.0, 60.0))
    new = dataclasses.replace(snaps[0], run_id=7)
    feed(panel, [new])
    assert list(panel.ring.ordered()[0]) == [snaps[0].step]
    assert log_grad_norms(np.zeros((1, 3, 2)))[0] == FLOOR


def test_gradient_panel_exports(qtbot, runs, tmp_path):
    s, snaps = runs["gru"]
    for cls in (SaliencyPanel, GradThroughTimePanel):
        panel = show(qtbot, cls)
        feed(panel, [snaps[0]])
        opts = panel.analysis_options() if cls is SaliencyPanel else None
        feed(panel, [with_saliency(s, snaps[-1], opts) if opts else snaps[-1]])
        for name in ("p.png", "p.svg", "d.npz", "d.csv"):
            path = tmp_path / f"{cls.object_name}_{name}"
            (panel.export_image if name[0] == "p" else panel.export_data)(path)
            assert path.exists() and path.stat().st_size > 100, (cls, name)
        if cls is SaliencyPanel:         # what was attributed, from the tool bar's line
            svg = (tmp_path / f"{cls.object_name}_p.svg").read_text()
            res = panel.result
            assert panel._mode != "text" and res is not None
            assert f"{METHOD_NAMES[res['method']]} of " in svg and f"step {res['step']}" in svg
