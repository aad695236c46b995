"""The "Generated text" panel and its "samples" analysis (Karpathy 2015), from real
snapshots of tiny sessions (pytest-qt, offscreen)."""

import csv
import dataclasses
from types import MappingProxyType

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.training.analyses import AnalysisContext, AnalysisRunner, registered_analyses
from rnnviewer.training.analyses_samples import resolve_prime, samples, validation_prime
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import UnitSelection, registered_panels
from rnnviewer.ui.panels.samples import SamplesPanel, thin_history

CELLS = ("rnn", "gru", "lstm")
H, T, P = 8, 12, 2


def make_session(cell, task="text"):
    opts = {"max_chars": 4000} if task == "text" else {}
    config = SessionConfig(task=task, task_options=opts, cell=cell, hidden=H, seq_len=T,
                           batch=4, probe_size=P, lr=0.03)
    t = build_task(config)
    model = Model(cell, t.n_in, H, t.n_out, seed=0, backend="numpy")
    return TrainingSession(config, task=t, model=model)


def ctx_of(session, snap):
    return AnalysisContext(session.model, session.task, snap.probe, snap.step,
                           np.random.default_rng(123))


def with_samples(session, snap, runner=None, **options):
    """`snap` with the samples analysis result in extra, as the worker makes it."""
    runner = runner or AnalysisRunner()
    extra = runner.run_due({"samples": {"length": 60, **options}}, ctx_of(session, snap),
                           force=True)
    return dataclasses.replace(snap, extra=extra)


@pytest.fixture(scope="module")
def runs():
    """cell -> (session, snapshot after 6 steps)."""
    out = {}
    for cell in CELLS:
        s = make_session(cell)
        s.run(max_steps=6)
        out[cell] = (s, s.snapshot())
    return out


def show(qtbot, size=(640, 360)):
    panel = SamplesPanel(UnitSelection())
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def feed(panel, snap):
    panel.update_snapshot(snap)
    panel.redraw_now()


def greedy_chain(task, model, prime, n):
    """Reference: the argmax character at each step, fed back, one forward per character."""
    ids = [task.char_to_id[c] for c in prime]
    tr = model.forward(task.one_hot(np.array([ids])))
    out = []
    for _ in range(n):
        i = int(np.argmax(tr.y[0, -1]))
        out.append(i)
        h0 = tr.h[:, -1] if tr.c is None else (tr.h[:, -1], tr.c[:, -1])
        tr = model.forward(task.one_hot(np.array([[i]])), h0)
    return task.decode(out)


# ------------------------------------------------------------------ the analysis
def test_samples_is_registered_and_panel_too():
    assert "samples" in registered_analyses()
    assert SamplesPanel in registered_panels()
    assert SamplesPanel.analyses == ("samples",)


@pytest.mark.parametrize("cell", CELLS)
def test_analysis_matches_task_sample(runs, cell):
    s, snap = runs[cell]
    out = samples(ctx_of(s, snap), {"temperature": 0.9, "length": 50, "seed": 3})
    assert out["applies"] and len(out["text"]) == 50
    assert out["prime"] == validation_prime(s.task) and out["prime"]
    ref = s.task.sample(s.model, out["prime"], 50, 0.9, np.random.default_rng([3, snap.step]))
    assert out["text"] == ref
    assert set(out["text"]) <= set(s.task.vocab)


def test_same_model_options_and_step_give_the_same_text(runs):
    s, snap = runs["lstm"]
    opts = {"temperature": 1.0, "length": 80}
    a = samples(ctx_of(s, snap), opts)["text"]
    b = samples(ctx_of(s, snap), dict(opts))["text"]      # ctx.rng is not used
    assert a == b
    assert samples(ctx_of(s, snap), {**opts, "seed": 1})["text"] != a
    later = dataclasses.replace(snap, step=snap.step + 1)
    assert samples(ctx_of(s, later), opts)["text"] != a


def test_low_temperature_is_the_argmax_chain(runs):
    s, snap = runs["gru"]
    prime = resolve_prime(s.task, "newline")
    ref = greedy_chain(s.task, s.model, prime, 40)
    for t in (0.0, 1e-4):            # 0 and anything under GREEDY_BELOW: greedy
        out = samples(ctx_of(s, snap), {"temperature": t, "length": 40, "prime": "newline",
                                        "seed": 5})
        assert out["temperature"] == 0.0 and out["text"] == ref
    # greedy text does not depend on the seed; a hot sample does, and differs from it
    assert samples(ctx_of(s, snap), {"temperature": 0, "length": 40, "prime": "newline",
                                     "seed": 6})["text"] == ref
    hot = [samples(ctx_of(s, snap), {"temperature": 2.0, "length": 40, "prime": "newline",
                                     "seed": k})["text"] for k in range(3)]
    assert all(h != ref for h in hot)
    assert np.mean([len(set(h)) for h in hot]) > len(set(ref))


def test_prime_modes_and_bad_options(runs):
    s, snap = runs["rnn"]
    task = s.task
    assert resolve_prime(task, "newline") == "\n"
    custom = samples(ctx_of(s, snap), {"prime": "custom", "text": "def \u2603x", "length": 5})
    assert custom["prime"] == "".join(c for c in "def \u2603x" if c in task.char_to_id)
    assert "\u2603" not in custom["prime"]
    assert samples(ctx_of(s, snap), {"prime": "custom", "text": "", "length": 5})["prime"] \
        == "\n"
    for bad in ({"temperature": -1}, {"temperature": "hot"}, {"length": 0},
                {"length": 10**6}, {"prime": "nope"}, {"seed": -1}):
        out = AnalysisRunner().run_due({"samples": bad}, ctx_of(s, snap), force=True)
        assert out["samples"]["error"], bad


# ------------------------------------------------------------------ the panel
@pytest.mark.parametrize("cell", CELLS)
def test_panel_draws_the_sample(qtbot, runs, cell):
    s, snap = runs[cell]
    panel = show(qtbot)
    snap = with_samples(s, snap, length=60, temperature=0.7)
    feed(panel, snap)
    res = snap.extra["samples"]
    assert panel.error is None and panel.stack.currentWidget() is panel.text
    shown = panel.text.toPlainText()
    assert res["text"] in shown and res["prime"] in shown
    assert f"step {snap.step}" in shown and "temperature 0.7" in shown
    assert not panel.grab().isNull()
    img = panel.text.viewport().grab().toImage()
    # the text area has dark (text) pixels, not only its background
    dark = sum(img.pixelColor(x, y).lightness() < 100
               for x in range(0, img.width(), 3) for y in range(0, img.height(), 3))
    assert dark > 20
    # nothing new: the next frame draws nothing
    frames = panel.frames
    panel.drawn = None
    panel.redraw_now()
    assert panel.frames == frames and panel.skipped >= 1


def test_waiting_then_error_texts(qtbot, runs):
    s, snap = runs["lstm"]
    panel = show(qtbot)
    assert panel.stack.currentWidget() is panel.message
    assert "waiting" in panel.message.text().lower()          # before any snapshot
    feed(panel, snap)                                          # no analysis result yet
    assert "waiting for the first sample" in panel.message.text().lower()
    bad = with_samples(s, snap, length=-3)
    feed(panel, bad)
    assert panel.stack.currentWidget() is panel.message
    assert panel.message.text().startswith("Sampling failed") and "length" in \
        panel.message.text()
    assert panel.data_arrays() == {}


def test_non_text_task_says_why(qtbot):
    s = make_session("gru", task="sine")
    s.run(max_steps=1)
    snap = with_samples(s, s.snapshot())
    res = snap.extra["samples"]
    assert res["error"] is None and res["applies"] is False and "text task" in res["reason"]
    panel = show(qtbot)
    feed(panel, snap)
    assert panel.stack.currentWidget() is panel.message
    msg = panel.message.text()
    assert "character models" in msg and "text task" in msg and "sine" in msg
    assert not panel.temp_spin.isEnabled() and panel.history == []


def test_history_newest_first_and_thinned(qtbot):
    s = make_session("lstm")
    panel = show(qtbot)
    runner = AnalysisRunner()
    steps = []
    for _ in range(4):
        s.run(max_steps=2)
        snap = s.snapshot()
        feed(panel, with_samples(s, snap, runner))
        steps.append(snap.step)
    feed(panel, with_samples(s, snap, runner))                 # same step and options: once
    shown = [e["step"] for e in panel.shown_entries()]
    assert shown == steps[::-1]
    text = panel.text.toPlainText()
    pos = [text.index(f"step {k}") for k in shown]
    assert pos == sorted(pos)                                  # newest on top
    data = panel.data_arrays()
    assert data["step"].tolist() == shown and data["text"].dtype.kind == "U"
    # a new temperature at the same step is a new entry
    feed(panel, with_samples(s, snap, runner, temperature=0))
    assert [e["temperature"] for e in panel.shown_entries()[:2]] == [0.0, 0.8]
    assert "greedy" in panel.text.toPlainText()
    panel.keep_box.setChecked(False)
    assert len(panel.shown_entries()) == 1 and panel.text.toPlainText().count("step ") == 1
    panel.keep_box.setChecked(True)
    panel.count_spin.setValue(3)
    kept = [e["step"] for e in panel.shown_entries()]
    assert len(kept) == 3 and kept[0] == snap.step and kept[-1] == steps[0]
    panel.on_reset()
    assert panel.history == []


def test_thin_history_spreads_over_the_run():
    entries = [{"step": k} for k in range(1000, -1, -10)]      # newest first
    kept = [e["step"] for e in thin_history(entries, 6)]
    assert len(kept) == 6 and kept[0] == 1000 and kept[-1] == 0
    assert kept == sorted(kept, reverse=True)
    gaps = -np.diff(np.log1p(kept[:-1]))        # about even in log(1 + step) down to step 10
    assert gaps.max() < 3 * gaps.min()
    assert [e["step"] for e in thin_history(entries, 1)] == [1000]
    # as the panel keeps it: one more sample at a time, thinned to 20, 6 of them shown
    history = []
    for k in range(0, 1001, 10):
        history = thin_history([{"step": k}] + history, 20)
    kept = [e["step"] for e in thin_history(history, 6)]
    assert kept[0] == 1000 and kept[-1] == 0 and sum(k <= 100 for k in kept) >= 3


def test_options_reach_the_analysis(qtbot, runs):
    s, snap = runs["rnn"]
    panel = show(qtbot)
    opts = panel.analysis_options()
    assert opts["temperature"] == 0.8 and opts["length"] == 200 and opts["prime"] == "val"
    panel.temp_spin.setValue(0.0)
    panel.length_spin.setValue(37)
    panel.prime_box.setCurrentIndex(panel.prime_box.findData("custom"))
    assert panel.prime_edit.isVisibleTo(panel)
    panel.prime_edit.setText("def ")
    panel.prime_edit.editingFinished.emit()
    seed = panel.analysis_options()["seed"]
    panel.new_button.click()
    opts = panel.analysis_options()
    assert opts == {"temperature": 0.0, "length": 37, "prime": "custom", "text": "def ",
                    "seed": seed + 1}
    snap = dataclasses.replace(snap, extra=AnalysisRunner().run_due(
        {name: opts for name in panel.analyses}, ctx_of(s, snap), force=True))
    feed(panel, snap)
    res = snap.extra["samples"]
    assert res["options"] == MappingProxyType(opts)
    assert res["temperature"] == 0 and len(res["text"]) == 37 and res["prime"] == "def "
    assert "pending" not in panel.info.text() and "on its way" not in panel.info.text()
    panel.temp_spin.setValue(1.2)                              # not sampled yet
    assert "on its way" in panel.info.text()


def test_export_csv_and_npz(qtbot, runs, tmp_path):
    s, snap = runs["gru"]
    panel = show(qtbot)
    snap = with_samples(s, snap, length=30)
    feed(panel, snap)
    npz = panel.export_data(tmp_path / "s.npz")
    with np.load(npz, allow_pickle=False) as d:
        assert d["text"][0] == snap.extra["samples"]["text"] and d["step"][0] == snap.step
        assert d["temperature"][0] == pytest.approx(0.8)
    path = panel.export_data(tmp_path / "s.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "temperature", "seed", "val_bits_per_char", "prime", "text"]
    assert rows[1][5] == snap.extra["samples"]["text"]
    assert panel.export_image(tmp_path / "s.png").stat().st_size > 0
    assert panel.export_image(tmp_path / "s.svg").stat().st_size > 0


def test_window_runs_the_analysis_in_the_worker(qtbot):
    """End to end: the visible panel's options go to the worker and its text comes back."""
    from rnnviewer.ui.main_window import MainWindow
    cfg = SessionConfig(task="text", task_options={"max_chars": 4000}, cell="gru", hidden=H,
                        seq_len=T, batch=4, probe_size=P)
    win = MainWindow(cfg, interactive=False, restore_settings=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    dock, panel = win.docks["samples"], win.panels["samples"]
    assert win.dockWidgetArea(dock) == SamplesPanel.default_area
    dock.raise_()
    try:
        win.start()
        qtbot.waitUntil(lambda: win.snapshot is not None, timeout=300_000)
        qtbot.waitUntil(lambda: panel.built, timeout=5000)
        panel.temp_spin.setValue(0.0)
        panel.length_spin.setValue(25)
        assert win.analysis_requests()["samples"]["length"] == 25

        def arrived():
            res = (win.snapshot.extra or {}).get("samples")
            return res is not None and res["options"]["length"] == 25
        win.worker.step(1)
        qtbot.waitUntil(arrived, timeout=60_000)
        panel.update_snapshot(win.snapshot)
        panel.redraw_now()
        res = win.snapshot.extra["samples"]
        assert res["error"] is None and len(res["text"]) == 25
        assert res["text"] in panel.text.toPlainText()
    finally:
        win.close()
