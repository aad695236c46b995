"""TrainingSession: the Qt-free step loop, snapshots, stop/pause, speed cap, divergence."""

import threading
import time

import numpy as np
import pytest

from rnnviewer.errors import ConfigError, DivergenceError
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.training.snapshot import GrowableArray, History, Snapshot

SMALL = dict(task="sine", hidden=8, batch=4, seq_len=12, probe_size=3, val_every=5)


def make(**kw):
    return TrainingSession(SessionConfig(**{**SMALL, **kw}), snapshot_hz=0)


def params_copy(s):
    return {k: v.copy() for k, v in s.model.params.items()}


def test_run_steps_history_and_validation():
    s = make()
    steps = []
    s.add_callback("on_step", lambda sess: steps.append(sess.step))
    assert s.run(max_steps=12) == 12
    assert steps == list(range(1, 13)) and s.step == 12
    h = s.history.arrays()
    np.testing.assert_array_equal(h["step"], np.arange(1, 13))
    np.testing.assert_array_equal(h["val_step"], [5, 10])
    assert np.all(np.isfinite(h["train_loss"])) and np.all(h["grad_norm"] > 0)
    np.testing.assert_allclose(h["lr"], 0.01)


def test_same_seed_same_run_bit_for_bit():
    a, b = make(seed=3), make(seed=3)
    a.run(max_steps=6)
    b.run(max_steps=6)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    c = make(seed=4)
    c.run(max_steps=6)
    assert not np.array_equal(a.model.params["W_hh"], c.model.params["W_hh"])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_snapshot_contents_are_copies_and_read_only(cell):
    s = make(cell=cell)
    snaps = []
    s.add_callback("on_snapshot", snaps.append)
    s.run(max_steps=4)
    assert len(snaps) == 4            # snapshot_hz=0: every step
    snap = snaps[-1]
    assert isinstance(snap, Snapshot) and snap.step == 4 and snap.cell == cell
    P, T, H = 3, 12, 8
    assert snap.probe.h.shape == (P, T, H) and snap.probe.dh.shape == (P, T, H)
    assert snap.probe.x.shape == (P, T, 1) and snap.probe.y.shape == (P, T, 1)
    assert set(snap.probe.gates) == set(snap.gate_names)
    assert (snap.probe.c is not None) == (cell == "lstm")
    assert len(snap.probe.labels) == P and len(snap.probe.labels[0]) == T
    arrays = [*snap.params.values(), *snap.delta.values(), *snap.grads.values(),
              *snap.history.values(), snap.probe.h, snap.probe.dh, *snap.probe.gates.values()]
    for a in arrays:
        assert not a.flags.writeable
    with pytest.raises(ValueError):
        snap.params["W_hh"][0, 0] = 1.0
    with pytest.raises(TypeError):
        snap.params["W_hh"] = None
    before = snap.params["W_hh"].copy()
    hist_before = snap.history["train_loss"].copy()
    s.run(max_steps=3)     # training goes on: the old snapshot does not change
    np.testing.assert_array_equal(snap.params["W_hh"], before)
    np.testing.assert_array_equal(snap.history["train_loss"], hist_before)
    assert not np.array_equal(s.model.params["W_hh"], before)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_snapshot_delta_grads_and_probe_dh(cell):
    s = make(cell=cell, clip=0.0)
    s.run(max_steps=3)
    before = params_copy(s)
    s.run(max_steps=1)
    snap = s.snapshot()
    for k, v in s.model.params.items():
        np.testing.assert_array_equal(snap.delta[k], v - before[k])
        np.testing.assert_array_equal(snap.params[k], v)
    # dL/dh_t of the probe (a backward pass without parameter gradients) equals the full
    # loss_and_grads on the probe batch
    x, t, m = s.probe_batch
    loss, g = s.model.loss_and_grads(x, t, loss=s.task.loss, mask=m)
    np.testing.assert_allclose(snap.probe.dh, g["h"], rtol=1e-5, atol=1e-8)
    assert snap.probe.loss == pytest.approx(loss, rel=1e-6)
    # grads: the gradient of the last training step, unclipped
    assert set(snap.grads) == set(s.model.params)
    norm = np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in snap.grads.values()))
    assert norm == pytest.approx(snap.grad_norm, rel=1e-4)


def test_snapshot_rate_is_limited():
    s = TrainingSession(SessionConfig(**SMALL), snapshot_hz=20)
    snaps = []
    s.add_callback("on_snapshot", snaps.append)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    n = s.run(stop_event=stop)
    dt = time.monotonic() - t0
    assert n > len(snaps)
    assert len(snaps) <= 20 * dt + 2
    assert snaps[-1].step == s.step          # the final state is always sent
    assert [sn.serial for sn in snaps] == sorted(sn.serial for sn in snaps)


def test_slow_snapshots_are_made_rarer_to_protect_training(monkeypatch):
    import rnnviewer.training.session as mod

    class Clock:            # deterministic time: 1 ms per step, 20 ms per snapshot
        t = 0.0

        def monotonic(self):
            return self.t
        perf_counter = thread_time = monotonic   # the snapshot's cost is CPU time
    clock = Clock()
    monkeypatch.setattr(mod, "time", clock)
    real_snapshot, real_step = TrainingSession.snapshot, TrainingSession.train_step

    def slow(self):
        clock.t += 0.02
        return real_snapshot(self)

    def step(self, *a, **k):
        clock.t += 0.001
        return real_step(self, *a, **k)
    monkeypatch.setattr(TrainingSession, "snapshot", slow)
    monkeypatch.setattr(TrainingSession, "train_step", step)
    s = TrainingSession(SessionConfig(**SMALL), snapshot_hz=1000)
    snaps = []
    s.add_callback("on_snapshot", snaps.append)
    s.run(max_steps=400)
    elapsed = clock.t
    cost = 0.02 * len(snaps)
    assert 2 <= len(snaps) <= 20          # not one per step (the 1000 Hz cap would allow it)
    assert cost <= 0.2 * elapsed          # about a tenth of the time, never much more


def test_snapshots_keep_their_rate_on_a_time_grid(monkeypatch):
    """Steps of 7 ms and 30 Hz: a snapshot waits for the end of a step, yet the average
    rate stays 30/s (not 1 / (33 ms + half a step))."""
    import rnnviewer.training.session as mod

    class Clock:
        t = 0.0

        def monotonic(self):
            return self.t
        perf_counter = thread_time = monotonic
    clock = Clock()
    monkeypatch.setattr(mod, "time", clock)
    real_step = TrainingSession.train_step

    def step(self, *a, **k):
        clock.t += 0.007
        return real_step(self, *a, **k)
    monkeypatch.setattr(TrainingSession, "train_step", step)
    s = TrainingSession(SessionConfig(**SMALL), snapshot_hz=30)
    snaps = []
    s.add_callback("on_snapshot", snaps.append)
    s.run(max_steps=300)                  # 2.1 s
    rate = (len(snaps) - 1) / clock.t
    assert 28 <= rate <= 31


def test_stop_event_from_another_thread_stops_promptly():
    s = make()
    t = threading.Timer(0.2, s.stop_event.set)
    t.start()
    t0 = time.monotonic()
    s.run()
    assert time.monotonic() - t0 < 1.5
    assert s.step > 0


def test_speed_cap():
    s = make()
    s.set_speed(40)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    n = s.run(stop_event=stop)
    assert 5 <= n <= 40 * 0.5 + 3


def test_live_settings():
    s = make()
    s.run(max_steps=2)
    s.set_lr(0.001)
    s.set_clip(0.5)
    s.set_batch(6)
    s.run(max_steps=2)
    assert s.optimizer.lr == 0.001 and s.config.clip == 0.5 and s.config.batch == 6
    np.testing.assert_allclose(s.history.arrays()["lr"], [0.01, 0.01, 0.001, 0.001])
    with pytest.raises(ConfigError):
        s.set_lr(-1)


@pytest.mark.parametrize("bad", [dict(hidden=0), dict(hidden=10**6), dict(cell="tcn"),
                                 dict(optimizer="lbfgs"), dict(lr=0), dict(lr=float("nan")),
                                 dict(clip=-1), dict(batch=0), dict(seq_len=0)])
def test_impossible_settings_raise_config_error(bad):
    with pytest.raises(ConfigError):
        TrainingSession(SessionConfig(**{**SMALL, **bad}))


def test_divergence_in_loss_pauses_without_touching_params(monkeypatch):
    s = make()
    s.run(max_steps=3)
    good = params_copy(s)
    real = s.model.loss_and_grads
    monkeypatch.setattr(s.model, "loss_and_grads",
                        lambda *a, **k: (float("nan"), real(*a, **k)[1]))
    seen = []
    s.add_callback("on_diverged", seen.append)
    assert s.run(max_steps=10) == 0
    assert s.step == 3 and len(seen) == 1
    err = seen[0]
    assert isinstance(err, DivergenceError) and err.step == 4 and err.tensor == "the loss"
    assert err.lr == pytest.approx(0.01)
    assert "learning rate" in str(err) and "step 4" in str(err)
    for k, v in s.model.params.items():
        np.testing.assert_array_equal(v, good[k])


def test_divergence_in_gradient_names_the_tensor(monkeypatch):
    s = make(clip=0.0)
    real = s.model.loss_and_grads

    def bad(*a, **k):
        loss, g = real(*a, **k)
        g["W_hh"][0, 0] = np.inf
        return loss, g
    monkeypatch.setattr(s.model, "loss_and_grads", bad)
    assert s.train_step() is not None
    assert s.diverged.tensor == "the gradient of W_hh" and s.step == 0


def test_divergence_in_params_rolls_back_params_and_optimizer():
    s = make(optimizer="sgd", clip=0.0, lr=0.1)
    s.run(max_steps=3)
    good = params_copy(s)
    opt_state = {k: np.array(v, copy=True) for k, v in s.optimizer.state_dict().items()}
    s.set_lr(1e39)          # float32(1e39) is inf: the update overflows
    assert s.run(max_steps=5) == 0
    assert s.diverged is not None and s.diverged.tensor.startswith("parameter")
    for k, v in s.model.params.items():
        np.testing.assert_array_equal(v, good[k])
        assert np.isfinite(v).all()
    for k, v in s.optimizer.state_dict().items():
        if k != "lr":
            np.testing.assert_array_equal(v, opt_state[k])
    s.set_lr(0.01)          # going on from the last finite state works
    s.diverged = None
    assert s.run(max_steps=2) == 2 and s.step == 5


def test_compile_changes_nothing():
    s = make(cell="lstm")
    before = params_copy(s)
    state = s.rng.bit_generator.state
    assert s.compile() >= 0
    for k, v in s.model.params.items():
        np.testing.assert_array_equal(v, before[k])
    assert s.rng.bit_generator.state == state and s.step == 0


def test_history_buffers_grow_without_changing_old_views():
    h = History()
    for i in range(1500):
        h.append(i, 1.0 / (i + 1), 0.5, 0.01)
        if i == 10:
            early = h.arrays()
    assert len(early["step"]) == 11 and early["step"][-1] == 10
    full = h.arrays()
    assert len(full["step"]) == 1500 and full["step"][-1] == 1499
    h2 = History(h.arrays(copy=True))
    np.testing.assert_array_equal(h2.arrays()["train_loss"], full["train_loss"])


def test_growable_array_matches_a_list_and_keeps_old_views():
    rng = np.random.default_rng(1)
    g, ref, views = GrowableArray(), [], []
    for _ in range(300):
        if rng.random() < 0.5:
            v = float(rng.normal())
            g.append(v)
            ref.append(v)
        else:
            vs = rng.normal(size=int(rng.integers(0, 40)))
            g.extend(vs)
            ref.extend(vs.tolist())
        views.append((g.a, list(ref)))
    np.testing.assert_array_equal(g.a, ref)
    assert len(g._buf) >= 1024 and g.n == len(ref) > 1024          # it grew past its start
    for view, was in views:                                       # views taken earlier
        np.testing.assert_array_equal(view, was)
    ints = GrowableArray(np.intp)
    ints.extend(np.arange(3))
    assert ints.a.dtype == np.intp and ints.a.tolist() == [0, 1, 2]


def test_requested_analyses_run_in_snapshots_without_touching_training():
    from rnnviewer.training.analyses import register_analysis
    calls = []

    @register_analysis("test_probe_mean", min_interval=0.0)
    def probe_mean(ctx, options):
        calls.append(ctx.step)
        return {"mean": ctx.probe.h.mean(axis=(0, 1)) * options.get("scale", 1.0),
                "noise": ctx.rng.standard_normal(3)}

    a, b = make(), make()
    a.analysis_requests = {"test_probe_mean": {"scale": 2.0}}
    snaps = []
    a.add_callback("on_snapshot", snaps.append)
    a.run(max_steps=4)
    b.run(max_steps=4)
    res = snaps[-1].extra["test_probe_mean"]
    assert res["error"] is None and res["step"] == 4 and res["options"] == {"scale": 2.0}
    np.testing.assert_allclose(res["mean"], 2.0 * snaps[-1].probe.h.mean(axis=(0, 1)))
    assert not res["mean"].flags.writeable
    assert calls == [1, 2, 3, 4]
    for k in a.model.params:          # analyses draw from their own generator
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    assert make().snapshot().extra == {}
