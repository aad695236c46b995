"""Impossible settings and mismatched shapes fail early with an error a user understands:
through the engine API, the tasks, the training session and the headless CLI."""

import io
import math
import re

import numpy as np
import pytest

from rnnviewer.engine import SGD, Adam, Model, load
from rnnviewer.engine.tasks import make_task
from rnnviewer.errors import ConfigError, DataError
from rnnviewer.training import session as session_mod
from rnnviewer.training.headless import main
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.training.sessionfile import load_session


def raises(exc, fn, *needles):
    """Call fn, expect `exc` whose one-line message holds every needle (regex)."""
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    for n in needles:
        assert re.search(n, msg), f"{n!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------- engine: model settings
@pytest.mark.parametrize("kw, needles", [
    (dict(n_hidden=0), ["n_hidden", r"\[1, 4096\]", "got 0"]),
    (dict(n_hidden=-4), ["n_hidden", "-4"]),
    (dict(n_hidden=10**6), ["n_hidden", "1000000"]),
    (dict(n_hidden=2.5), ["n_hidden", "integer", "2.5"]),
    (dict(n_hidden="64"), ["n_hidden", "integer", "'64'"]),
    (dict(n_hidden=True), ["n_hidden", "integer"]),
    (dict(n_in=0), ["n_in", "got 0"]),
    (dict(n_in=10**7), ["n_in"]),
    (dict(n_out=-1), ["n_out", "-1"]),
    (dict(cell="tcn"), ["unknown cell 'tcn'", "rnn, gru, lstm"]),
    (dict(cell=None), ["unknown cell None"]),
    (dict(dtype="int32"), ["dtype", "float32 or float64", "int32"]),
    (dict(dtype="float16"), ["dtype", "float16"]),
    (dict(dtype="nonsense"), ["dtype", "nonsense"]),
    (dict(seed=-1), ["seed", ">= 0", "-1"]),
    (dict(seed=1.5), ["seed", "1.5"]),
    (dict(backend="cuda"), ["backend", "cuda"]),
])
def test_model_settings(kw, needles):
    raises(ConfigError, lambda: Model(**{"cell": "gru", "n_in": 2, "n_hidden": 3, **kw}),
           *needles)


# ---------------------------------------------------------------- engine: shapes in calls
@pytest.fixture(scope="module")
def models():
    return {c: Model(c, n_in=2, n_hidden=3, n_out=4, backend="numpy") for c in ("rnn", "lstm")}


B, T = 2, 5
X = np.zeros((B, T, 2))


@pytest.mark.parametrize("x, needles", [
    (np.zeros((B, T)), [r"x must have shape \(B, T, 2\)", r"got \(2, 5\)"]),
    (np.zeros((1, B, T, 2)), [r"\(1, 2, 5, 2\)"]),
    (np.zeros((B, T, 3)), [r"\(B, T, 2\)", r"got \(2, 5, 3\)"]),
    (np.zeros((0, T, 2)), ["B, T >= 1"]),
    (np.zeros((B, 0, 2)), ["B, T >= 1"]),
    (np.full((B, T, 2), "a"), ["real numbers", "dtype"]),
    (np.broadcast_to(np.float32(0), (4096, 10**5, 2)), ["GB of activations", "smaller"]),
])
def test_forward_input_shapes(models, x, needles):
    raises(ConfigError, lambda: models["rnn"].forward(x), *needles)


def test_initial_state_shapes(models):
    rnn, lstm = models["rnn"], models["lstm"]
    raises(ConfigError, lambda: rnn.forward(X, np.zeros((B, 4))), r"h0 must have shape \(2, 3\)",
           r"got \(2, 4\)")
    raises(ConfigError, lambda: rnn.forward(X, np.zeros(3)), "h0", r"got \(3,\)")
    raises(ConfigError, lambda: rnn.forward(X, (np.zeros((B, 3)), np.zeros((B, 3)))), "h0")
    raises(ConfigError, lambda: lstm.forward(X, np.zeros((B, 3))), r"tuple \(h0, c0\)")
    raises(ConfigError, lambda: lstm.forward(X, (np.zeros((B, 3)),) * 3), r"tuple \(h0, c0\)")
    raises(ConfigError, lambda: lstm.forward(X, (np.zeros((B, 3)), np.zeros((B, 2)))), "c0",
           r"\(2, 3\)")
    raises(ConfigError, lambda: rnn.forward(X, "zeros"), "h0")
    raises(ConfigError, lambda: rnn.step_state(np.zeros((B, 4)), np.zeros((B, 2))),
           r"state must have shape \(N, 3\)")
    raises(ConfigError, lambda: lstm.step_state(np.zeros((B, 3)), np.zeros((B, 2))),
           r"\(N, 6\)")
    raises(ConfigError, lambda: rnn.step_state(np.zeros((B, 3)), np.zeros((B, 5))),
           r"x_t must have shape \(N, 2\)")


@pytest.mark.parametrize("loss, target, mask, needles", [
    ("mse", np.zeros((B, T, 3)), None, [r"mse target has shape \(2, 5, 3\)", r"\(2, 5, 4\)"]),
    ("mse", np.zeros((B, T)), None, ["mse target", r"expected \(2, 5, 4\)"]),
    ("mse", np.full((B, T, 4), "x"), None, ["mse target must hold numbers"]),
    ("xent", np.zeros((B, T, 4)), None, [r"xent target has shape \(2, 5, 4\)",
                                         r"expected \(2, 5\)"]),
    ("xent", np.zeros((B, T)), None, ["integer class ids"]),
    ("xent", np.full((B, T), 4), None, [r"\[0, 4\)"]),
    ("xent", np.full((B, T), -1), None, [r"\[0, 4\)"]),
    ("xent", np.zeros((B, T), int), np.ones((B, T + 1)), [r"mask has shape \(2, 6\)",
                                                           r"expected \(2, 5\)"]),
    ("mse", np.zeros((B, T, 4)), np.ones(B), ["mask has shape"]),
    ("mse", np.zeros((B, T, 4)), np.full((B, T), np.nan), ["mask must hold finite"]),
    ("mse", np.zeros((B, T, 4)), -np.ones((B, T)), ["mask", ">= 0"]),
    ("l1", np.zeros((B, T, 4)), None, ["unknown loss 'l1'", "mse or xent"]),
    (None, np.zeros((B, T, 4)), None, ["unknown loss None"]),
])
def test_loss_arguments(models, loss, target, mask, needles):
    raises(ConfigError, lambda: models["rnn"].loss_and_grads(X, target, loss=loss, mask=mask),
           *needles)


def test_backward_and_readout_arguments(models):
    m = models["rnn"]
    tr = m.forward(X)
    raises(ConfigError, lambda: m.backward(tr, dy=np.zeros((T, B, 4))), r"dy must have shape "
           r"\(2, 5, 4\)", r"got \(5, 2, 4\)")   # same size, wrong layout: not reshaped
    raises(ConfigError, lambda: m.backward(tr, dh=np.zeros((B, T, 4))), r"dh must have shape")
    bare = Model("gru", n_in=2, n_hidden=3, n_out=0, backend="numpy")
    raises(ConfigError, lambda: bare.loss_and_grads(X, np.zeros((B, T, 1))), "no readout")
    raises(ConfigError, lambda: bare.backward(bare.forward(X), dy=np.zeros((B, T, 1))),
           "no readout: pass dh")
    raises(ConfigError, lambda: m.set_params({"W_hh": np.zeros((3, 3))}), "do not match")
    bad = {k: v.copy() for k, v in m.params.items()}
    bad["W_hh"] = np.zeros((3, 4))
    raises(ConfigError, lambda: m.set_params(bad), r"W_hh: expected shape \(3, 3\)")
    bad["W_hh"] = np.zeros((3, 3), complex)
    raises(ConfigError, lambda: m.set_params(bad), "W_hh", "real numbers")
    raises(ConfigError, lambda: m.load_torch({"weight_hh_l0": np.zeros((3, 3))}), "weight_ih_l0")


@pytest.mark.parametrize("make, needles", [
    (lambda p: SGD(p, lr=-0.1), ["learning rate", "-0.1"]),
    (lambda p: SGD(p, lr=float("nan")), ["learning rate", "nan"]),
    (lambda p: Adam(p, lr=float("inf")), ["learning rate", "inf"]),
    (lambda p: Adam(p, lr="fast"), ["learning rate must be a number", "'fast'"]),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), ["momentum", "-0.5"]),
    (lambda p: Adam(p, lr=0.1, betas=(1.0, 0.9)), ["beta1", r"\[0, 1\)"]),
    (lambda p: Adam(p, lr=0.1, betas=(0.9,)), ["betas must be two numbers"]),
    (lambda p: Adam(p, lr=0.1, eps=-1e-8), ["eps"]),
])
def test_optimizer_settings(models, make, needles):
    raises(ConfigError, lambda: make(models["rnn"].params), *needles)


def test_optimizer_state_is_checked(models):
    opt = Adam(models["rnn"].copy().params, lr=0.1)
    good = opt.state_dict()
    for key, value, needle in (("t", np.float64(np.inf), "step count"), ("t", 2.5, "integer"),
                               ("lr", -1.0, "learning rate"), ("t", -3, "step count")):
        raises(ConfigError, lambda: opt.load_state_dict({**good, key: value}), needle)


# ---------------------------------------------------------------- tasks
@pytest.fixture
def short_text(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("hello world, this is short.\n" * 3, encoding="utf-8")   # 84 characters
    return p


@pytest.fixture
def small_csv(tmp_path):
    p = tmp_path / "small.csv"
    p.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)), encoding="utf-8")
    return p


def test_sequence_longer_than_the_data(short_text, small_csv):
    raises(DataError, lambda: make_task("text", path=short_text, seq_len=60), "short.txt",
           "too short: 84 characters", "seq_len 60", "at least 122", "shorter")
    make_task("text", path=short_text, seq_len=20)   # fits
    raises(DataError, lambda: make_task("csv", path=small_csv, seq_len=20), "small.csv",
           "too few rows: 30 data rows", "seq_len 20", "shorter")
    raises(DataError, lambda: make_task("csv", path=small_csv, seq_len=5, horizon=20),
           "horizon 20")
    raises(DataError, lambda: make_task("text", path=short_text, seq_len=5, max_chars=10),
           "too short")


@pytest.mark.parametrize("name, kw, exc, needles", [
    ("sine", dict(seq_len=0), ConfigError, [r"seq_len must be \[1, 100000\], got 0"]),
    ("sine", dict(seq_len=-5), ConfigError, ["seq_len", "-5"]),
    ("sine", dict(seq_len="50"), ConfigError, ["seq_len must be an integer", "'50'"]),
    ("sine", dict(seq_len=10**9), ConfigError, ["seq_len", "1000000000"]),
    ("sine", dict(waves=0), ConfigError, ["waves"]),
    ("copy", dict(symbols=10**6), ConfigError, ["symbols"]),
    ("text", dict(val_fraction=2.0), ConfigError, ["val_fraction", r"\[0.01, 0.5\]"]),
    ("csv", dict(normalize="log", path="x.csv"), ConfigError, ["normalize", "'log'"]),
    ("csv", dict(), ConfigError, ["CSV file path is required"]),
])
def test_task_settings(name, kw, exc, needles):
    raises(exc, lambda: make_task(name, **kw), *needles)


def test_batch_settings(short_text):
    task = make_task("sine", seq_len=10)
    raises(ConfigError, lambda: task.batch("train", 0), r"batch_size must be \[1, 1000000\], "
           "got 0")
    raises(ConfigError, lambda: task.batch("train", -3), "batch_size", "-3")
    raises(ConfigError, lambda: task.batch("test", 4), "split must be 'train' or 'val'")
    long = make_task("sine", seq_len=100_000)
    raises(ConfigError, lambda: long.batch("train", 5000), "5000 sequences of 100000 steps",
           "GB", "smaller batch")


def test_text_with_too_many_distinct_characters(tmp_path):
    p = tmp_path / "cjk.txt"
    p.write_text("".join(chr(0x4E00 + i) for i in range(12_000)) * 2, encoding="utf-8")
    raises(DataError, lambda: make_task("text", path=p, seq_len=10), "cjk.txt",
           "12000 distinct characters", "at most 10000")


def test_csv_values_too_large(tmp_path):
    p = tmp_path / "huge.csv"
    p.write_text("a,b\n" + "".join(f"{1e300 * (-1) ** i},{i}\n" for i in range(40)))
    raises(DataError, lambda: make_task("csv", path=p, seq_len=4), "huge.csv", "column 'a'",
           "too large", "zscore")
    raises(DataError, lambda: make_task("csv", path=p, seq_len=4, normalize="none"),
           "beyond float32")
    task = make_task("csv", path=p, seq_len=4, normalize="minmax")   # scales into [-1, 1]
    assert np.isfinite(task.x_all).all()


# ---------------------------------------------------------------- training session
SMALL = dict(task="sine", hidden=4, batch=2, seq_len=6)


@pytest.mark.parametrize("change, needles", [
    (dict(hidden=0), [r"hidden must be an integer in \[1, 4096\], got 0"]),
    (dict(hidden=10**6), ["hidden", "1000000"]),
    (dict(hidden=8.0), ["hidden", "8.0"]),
    (dict(batch=0), ["batch", "got 0"]),
    (dict(seq_len=0), ["seq_len", "got 0"]),
    (dict(lr=-0.1), ["learning rate must be a positive number", "-0.1"]),
    (dict(lr=float("nan")), ["learning rate", "nan"]),
    (dict(lr=float("inf")), ["learning rate", "inf"]),
    (dict(lr="0.1"), ["learning rate", "'0.1'"]),
    (dict(clip=float("nan")), ["clip", "nan"]),
    (dict(val_every=0), ["val_every"]),
    (dict(cell="transformer"), ["unknown cell 'transformer'"]),
    (dict(optimizer="lbfgs"), ["unknown optimizer 'lbfgs'"]),
])
def test_session_config_is_checked_before_any_work(monkeypatch, change, needles):
    def no_work(*a, **k):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(session_mod, "build_task", no_work)
    monkeypatch.setattr(session_mod, "Model", no_work)
    raises(ConfigError, lambda: SessionConfig(**{**SMALL, **change}).validate(), *needles)
    raises(ConfigError, lambda: TrainingSession(SessionConfig(**{**SMALL, **change})), *needles)


def test_session_data_problems_come_before_the_model(monkeypatch, short_text):
    def no_model(*a, **k):
        raise AssertionError("the model was built for a task that cannot work")

    monkeypatch.setattr(session_mod, "Model", no_model)
    cfg = SessionConfig(task="text", task_options={"path": str(short_text)}, seq_len=80,
                        hidden=4, batch=2)
    raises(DataError, lambda: TrainingSession(cfg), "short.txt", "too short")
    cfg = cfg.replace(task_options={"path": str(short_text.parent / "gone.txt")})
    raises(DataError, lambda: TrainingSession(cfg), "gone.txt: no such file")


# ---------------------------------------------------------------- headless CLI
def run(argv):
    err = io.StringIO()
    code = main([str(a) for a in argv], stderr=err)
    return code, err.getvalue()


@pytest.mark.parametrize("argv, needles", [
    (["--task", "sine", "--hidden", "1000000"], ["hidden must be", "1000000"]),
    (["--task", "sine", "--hidden", "-3"], ["hidden", "-3"]),
    (["--task", "sine", "--lr", "-0.1"], ["learning rate", "-0.1"]),
    (["--task", "sine", "--lr", "inf"], ["learning rate", "inf"]),
    (["--task", "sine", "--clip", "nan"], ["clip", "nan"]),
    (["--task", "sine", "--batch", "-2"], ["batch", "-2"]),
    (["--task", "sine", "--val-every", "0"], ["val_every"]),
    (["--task", "sine", "--seq-len", "100000", "--batch", "5000"], ["GB", "smaller batch"]),
    (["--task", "sine", "--dtype", "float16"], ["invalid choice: 'float16'"]),
    (["--task", "copy", "--symbols", "100000"], ["symbols"]),
    (["--text", "{text}", "--seq-len", "60"], ["short.txt", "too short", "shorter --seq-len"]),
    (["--text", "{text}", "--max-chars", "1"], ["max_chars"]),
    (["--text", "{text}", "--val-fraction", "5"], ["val_fraction"]),
    (["--csv", "{csv}", "--seq-len", "20"], ["small.csv", "too few rows", "shorter --seq-len"]),
    (["--csv", "{csv}", "--seq-len", "4", "--horizon", "1000000"], ["horizon"]),
    (["--csv", "{csv}", "--seq-len", "4", "--inputs", "z"], ["no column 'z'"]),
])
def test_cli_impossible_settings_exit_2_with_one_line(tmp_path, short_text, small_csv, argv,
                                                      needles):
    argv = [a.format(text=short_text, csv=small_csv) for a in argv]
    out = tmp_path / "out.npz"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run(argv + ["--steps", "3", "--save", out])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnviewer train: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing written


# ---------------------------------------------------------------- CLI divergence (exit 3)
def test_cli_divergence_names_step_tensor_lr_and_advice(tmp_path):
    """Complements test_headless: with clipping off the advice says to turn it on, the
    message names the tensor, and the saved last finite state opens as a model too."""
    out = tmp_path / "boom.npz"
    code, err = run(["--task", "sine", "--lr", "1e30", "--clip", "0", "--optimizer", "sgd",
                     "--steps", "30", "--hidden", "6", "--batch", "4", "--seq-len", "8",
                     "--save", out])
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    m = re.search(r"diverged at step (\d+): (.+?) became NaN or Inf \(lr 1e\+30, clip 0\); "
                  r"lower --lr \(try 1e\+29\) or set --clip 1\.0; saved the last finite state "
                  r"\(step (\d+)\) to (.+)$", last)
    assert m, last
    step, tensor, saved_step = int(m[1]), m[2], int(m[3])
    assert tensor == "the loss" or tensor.startswith(("the gradient", "parameter",
                                                       "optimizer state")), tensor
    assert saved_step == step - 1 and m[4] == str(out)
    assert "Traceback" not in err and "Warning" not in err
    model = load(out)
    assert all(np.isfinite(v).all() for v in model.params.values())
    data = load_session(out)
    assert data.step == saved_step and len(data.history["train_loss"]) == saved_step
    assert math.isclose(data.lr, 1e30)
    s = TrainingSession.from_file(out, snapshot_hz=0)   # reopens at the last finite state
    assert s.step == saved_step


def test_cli_divergence_on_the_first_step_saves_step_0(tmp_path, monkeypatch):
    real = Model.loss_and_grads

    def nan_loss(self, *a, **k):
        value, grads = real(self, *a, **k)
        return float("nan"), grads

    monkeypatch.setattr(Model, "loss_and_grads", nan_loss)
    out = tmp_path / "first.npz"
    code, err = run(["--task", "adding", "--steps", "5", "--hidden", "4", "--batch", "2",
                     "--seq-len", "6", "--quiet", "--save", out])
    assert code == 3, err
    assert "diverged at step 1: the loss became NaN or Inf" in err
    assert "saved the last finite state (step 0)" in err
    data = load_session(out)
    assert data.step == 0 and len(data.history["train_loss"]) == 0
    assert load(out).config == data.model.config
