"""Session files: exact continuation, engine.load compatibility, atomic writes, bad files."""

import io
import os
import zipfile

import numpy as np
import pytest

from rnnviewer.engine import load
from rnnviewer.engine.npzio import write_npz, read_npz
from rnnviewer.errors import CheckpointError
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.training.sessionfile import load_session, save_session

SMALL = dict(task="sine", hidden=8, batch=4, seq_len=12, probe_size=2, val_every=4)


def make(**kw):
    return TrainingSession(SessionConfig(**{**SMALL, **kw}), snapshot_hz=0)


@pytest.mark.parametrize("cell,optimizer", [("rnn", "adam"), ("gru", "sgd"), ("lstm", "adam")])
def test_reopened_session_continues_exactly(tmp_path, cell, optimizer):
    path = tmp_path / "run.npz"
    a = make(cell=cell, optimizer=optimizer)
    if optimizer == "sgd":
        a.optimizer.momentum = 0.0
    a.run(max_steps=9)
    a.save(path)
    b = TrainingSession.from_file(path, snapshot_hz=0)
    assert b.step == 9 and b.config == a.config
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    a.run(max_steps=7)
    b.run(max_steps=7)
    for k in a.model.params:            # same data, same updates: bit for bit
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    ha, hb = a.history.arrays(), b.history.arrays()
    for k in ha:
        np.testing.assert_array_equal(ha[k], hb[k])
    assert b.snapshot().step == 16


def test_session_file_opens_as_a_model_checkpoint(tmp_path):
    s = make(cell="gru")
    s.run(max_steps=2)
    s.save(tmp_path / "s.npz")
    m = load(tmp_path / "s.npz")
    assert m.config == s.model.config
    for k in m.params:
        np.testing.assert_array_equal(m.params[k], s.model.params[k])


def test_save_session_api_and_fields(tmp_path):
    s = make(task="parity")
    s.run(max_steps=5)
    path = tmp_path / "p.npz"
    save_session(path, s.model, s.optimizer, s.task.config, s.step,
                 s.history.arrays(copy=True), extra={"note": "hello"})
    d = load_session(path)
    assert d.step == 5 and d.task_config == s.task.config and d.extra == {"note": "hello"}
    assert d.optimizer_name == "adam" and d.lr == pytest.approx(0.01)
    np.testing.assert_array_equal(d.history["step"], np.arange(1, 6))
    assert d.history["val_step"].tolist() == [4.0]
    opt = d.make_optimizer()
    assert opt.t == 5
    # written without extra (as another tool might): reopens with a config from the task
    save_session(path, s.model, s.optimizer, s.task.config, s.step, s.history.arrays())
    t = TrainingSession.from_file(path)
    assert t.config.task == "parity" and t.config.hidden == 8 and t.step == 5


def test_files_hold_no_pickles_and_json_is_text(tmp_path):
    s = make()
    s.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        for k in z.files:
            assert z[k].dtype != object
        assert z["session/task"].dtype.kind == "U" and z["session/extra"].dtype.kind == "U"


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "s.npz"
    s = make()
    s.save(path)
    good = path.read_bytes()
    s.run(max_steps=2)

    def boom(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        s.save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["s.npz"]      # no temp file left behind


def _arrays(tmp_path):
    s = make()
    s.run(max_steps=2)
    s.save(tmp_path / "ok.npz")
    return read_npz(tmp_path / "ok.npz")


def _write(tmp_path, arrays):
    p = tmp_path / "bad.npz"
    write_npz(p, arrays)
    return p


@pytest.mark.parametrize("damage,expect", [
    (lambda a: a.pop("session/format"), "model checkpoint, not a session"),
    (lambda a: a.update({"session/format": np.asarray("other")}), "not an rnnviewer session"),
    (lambda a: a.update({"session/version": np.asarray(99)}), "newer"),
    (lambda a: a.update({"session/step": np.asarray(-3)}), "step"),
    (lambda a: a.update({"session/step": np.asarray(1.5)}), "step"),
    (lambda a: a.update({"session/task": np.asarray("{not json")}), "JSON"),
    (lambda a: a.update({"session/extra": np.asarray("[1, 2]")}), "JSON object"),
    (lambda a: a.update({"session/history/val_loss": np.zeros(7)}), "differ in length"),
    (lambda a: a.update({"session/history/lr": np.zeros((2, 2))}), "1-D"),
    (lambda a: a.pop("session/history/grad_norm"), "missing"),
    (lambda a: a.update({"session/optimizer/name": np.asarray("lbfgs")}), "unknown optimizer"),
    (lambda a: a.update({"session/optimizer/m/W_hh": np.zeros((3, 3), np.float32)}), "shape"),
    (lambda a: a.update({"session/optimizer/m/W_zz": np.zeros(3, np.float32)}), "no parameter"),
    (lambda a: a.update({"session/optimizer/lr": np.asarray(-1.0)}), "learning rate"),
    (lambda a: a.update({"param/W_hh": np.zeros((2, 2), np.float32)}), "shape"),
    (lambda a: a.pop("param/b_y"), "missing"),
])
def test_damaged_content_raises_checkpoint_error(tmp_path, damage, expect):
    arrays = _arrays(tmp_path)
    damage(arrays)
    path = _write(tmp_path, arrays)
    with pytest.raises(CheckpointError, match=expect) as e:
        load_session(path)
    assert "bad.npz" in str(e.value)


def test_damaged_bytes_raise_checkpoint_error(tmp_path):
    _arrays(tmp_path)
    good = (tmp_path / "ok.npz").read_bytes()
    rng = np.random.default_rng(0)
    cases = {"empty": b"", "truncated": good[: len(good) // 2], "random": rng.bytes(3000)}
    flipped = bytearray(good)
    for i in rng.integers(100, len(good), 20):
        flipped[i] ^= 0xFF
    cases["flipped"] = bytes(flipped)
    for name, data in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(data)
        with pytest.raises(CheckpointError):
            load_session(p)
    with pytest.raises(CheckpointError, match="cannot open"):
        load_session(tmp_path / "missing.npz")


def test_pickled_objects_are_refused(tmp_path):
    arrays = _arrays(tmp_path)
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    path = tmp_path / "pickle.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in arrays.items():
            if k == "session/extra":
                continue
            b = io.BytesIO()
            np.save(b, v)
            zf.writestr(k + ".npy", b.getvalue())
        zf.writestr("session/extra.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match="pickle"):
        load_session(path)


def test_model_checkpoint_is_not_a_session(tmp_path):
    from rnnviewer.engine import save
    s = make()
    save(s.model, tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="model checkpoint"):
        load_session(tmp_path / "m.npz")


def test_bad_session_config_in_extra_is_a_checkpoint_error(tmp_path):
    s = make()
    path = tmp_path / "s.npz"
    save_session(path, s.model, s.optimizer, s.task.config, 0, {},
                 extra={"session_config": {"hidden": "many"}, "rng_state": {"x": 1}})
    with pytest.raises(CheckpointError, match="s.npz"):
        TrainingSession.from_file(path)
