"""`rnnviewer train`: successful runs, every bad-input case (exit 2), divergence (exit 3)."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnviewer.engine import load
from rnnviewer.engine.tasks import make_task
from rnnviewer.training.headless import Progress, main
from rnnviewer.training.session import TrainingSession
from rnnviewer.training.sessionfile import load_session

FAST = ["--hidden", "8", "--batch", "4", "--seq-len", "10", "--val-every", "5"]


def run(argv):
    err = io.StringIO()
    code = main([str(a) for a in argv], stderr=err)
    return code, err.getvalue()


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("the quick brown fox jumps over the lazy dog.\n" * 40, encoding="utf-8")
    return p


@pytest.fixture
def csv_file(tmp_path):
    p = tmp_path / "series.csv"
    rows = [f"{i},{np.sin(i / 4):.5f},{np.cos(i / 4):.5f}" for i in range(120)]
    p.write_text("t,a,b\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return p


# ---------------------------------------------------------------- successful runs
def test_run_saves_a_session_that_loads_and_continues(tmp_path):
    out = tmp_path / "sine.npz"
    code, err = run(["--task", "sine", "--steps", "12", "--seed", "3", "--save", out] + FAST)
    assert code == 0, err
    assert "Traceback" not in err and "steps/s" in err and f"saved {out}" in err
    model = load(out)  # the engine opens the session file as a model
    assert model.config == {"cell": "rnn", "n_in": 1, "n_hidden": 8, "n_out": 1, "seed": 3,
                            "dtype": "float32"}
    data = load_session(out)
    assert data.step == 12 and data.optimizer_name == "adam" and data.lr == 0.01
    assert len(data.history["train_loss"]) == 12 and np.isfinite(data.history["train_loss"]).all()
    assert list(data.history["val_step"]) == [5, 10, 12]
    assert data.task_config["name"] == "sine" and data.task_config["seed"] == 3
    assert make_task(**data.task_config).config == data.task_config
    s = TrainingSession.from_file(out)  # the app's way in: go on training where it stopped
    assert s.step == 12 and s.task.seq_len == 10 and s.optimizer.t == 12
    assert s.train_step() is None and s.step == 13


def test_runs_are_reproducible(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for p in (a, b):
        assert run(["--task", "parity", "--steps", "5", "--quiet", "--save", p] + FAST)[0] == 0
    pa, pb = load(a).params, load(b).params
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_text_run_with_sample(text_file, tmp_path, capsys):
    out = tmp_path / "t.npz"
    code, err = run(["--text", text_file, "--cell", "lstm", "--steps", "6", "--sample", "40",
                     "--prime", "the ", "--save", out] + FAST)
    assert code == 0, err
    assert "bpc" in err
    printed = capsys.readouterr().out
    assert printed.startswith("the ") and len(printed.rstrip("\n")) >= 40
    cfg = load_session(out).task_config
    assert cfg["name"] == "text" and cfg["path"] == str(text_file.resolve())


def test_csv_run_and_copy_delay(csv_file, tmp_path):
    code, err = run(["--csv", csv_file, "--inputs", "a,b", "--targets", "b", "--horizon", "2",
                     "--steps", "4", "--save", tmp_path / "c.npz"] + FAST)
    assert code == 0, err
    m = load(tmp_path / "c.npz")
    assert (m.n_in, m.n_out) == (2, 1)
    assert load_session(tmp_path / "c.npz").task_config["targets"] == ["b"]
    code, err = run(["--task", "copy", "--delay", "6", "--length", "3", "--steps", "2",
                     "--hidden", "8", "--batch", "4", "--save", tmp_path / "k.npz"])
    assert code == 0, err
    assert load_session(tmp_path / "k.npz").task_config["seq_len"] == 2 * 3 + 6 + 1


def test_example_with_own_text_file(text_file, tmp_path):
    """An example that uses the bundled corpus trains on the user's --text instead."""
    out = tmp_path / "ex.npz"
    code, err = run(["--example", "interpretable-units", "--text", text_file, "--steps", "2",
                     "--save", out] + FAST)
    assert code == 0, err
    cfg = load_session(out).task_config
    assert cfg["path"] == str(text_file.resolve()) and cfg["corpus"] is None


def test_quiet_and_help(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(["--task", "adding", "--steps", "3", "--quiet"] + FAST)
    assert code == 0 and err == ""
    assert files_in(tmp_path) == []  # nothing saved without --save
    code, err = run(["--task", "adding", "--steps", "3"] + FAST)
    assert code == 0 and "nothing saved (give --save FILE" in err
    assert run(["--help"])[0] == 0
    assert "--task" in capsys.readouterr().out


def test_ctrl_c_stops_saves_and_exits_130(tmp_path, monkeypatch):
    import signal

    real_step = TrainingSession.train_step

    def step(self, keep_grads=True):
        if self.step == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends; the CLI's handler stops
        return real_step(self, keep_grads)

    monkeypatch.setattr(TrainingSession, "train_step", step)
    out = tmp_path / "int.npz"
    before = signal.getsignal(signal.SIGINT)   # SIG_IGN when run from a background job
    code, err = run(["--task", "sine", "--steps", "1000", "--save", out] + FAST)
    assert code == 130 and "stopped at step" in err
    assert 4 <= load_session(out).step <= 5
    assert signal.getsignal(signal.SIGINT) is before                     # handler restored


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    code = main(["--task", "sine", "--steps", "20", *FAST], stderr=tty)
    text = tty.getvalue()
    assert code == 0 and "\r" in text and "[########################] 100%" in text
    assert "loss" in text and "val" in text and "steps/s" in text
    # a shorter line (the ETA gone) rubs out the longer one before it
    tty = Tty()
    bar = Progress(10, tty)
    bar.last -= 1.0   # the last redraw was long enough ago
    bar.update(5, 0.5, 0.25)
    bar.update(10, 0.5, 0.25, final=True)
    first, last = tty.getvalue().split("\r")[1:]
    assert "ETA" in first and "ETA" not in last and len(last.rstrip("\n")) >= len(first)


def test_text_progress_in_bits_per_character(text_file):
    code, err = run(["--text", text_file, "--steps", "10", *FAST])
    assert code == 0, err
    line = [ln for ln in err.splitlines() if ln.startswith("step 10/10")][0]
    m = re.search(r"loss ([\d.]+) \(([\d.]+) bpc\)  val ([\d.]+) \(([\d.]+) bpc\)", line)
    assert m, line
    assert float(m[2]) == pytest.approx(float(m[1]) / np.log(2), rel=6e-3)
    assert float(m[4]) == pytest.approx(float(m[3]) / np.log(2), rel=6e-3)


# ---------------------------------------------------------------- bad input: exit 2
BAD_TEXT = [
    ("empty", b"", "the file is empty"),
    ("blank", b"  \n\n", "only whitespace"),
    ("binary", bytes(range(256)) * 4, "binary file"),
    ("latin1", "na\u00efve caf\u00e9\n".encode("latin-1") * 50, "not UTF-8 text"),
    ("short", b"hello world", "too short"),
    ("controls", bytes(range(1, 256)) * 8, "binary file"),   # no NUL byte, still binary
]
BAD_CSV = [   # label, content, extra arguments, expected message
    ("empty", b"", [], "the file is empty"),
    ("headeronly", b"a,b\n", [], "no data rows"),
    ("missing", b"a,b\n" + b"1,2\n" * 30 + b"3,\n" + b"1,2\n" * 30, [], "missing value at line "
     "32, column 'b'"),
    ("nonnumeric", b"a,b\n" + b"1,2\n" * 30 + b"1,two\n", [], "line 32, column 'b': 'two' is "
     "not a number"),
    ("chosen_text_column", b"day,v\n" + b"mon,2\n" * 40, ["--inputs", "day,v"],
     "line 2, column 'day': 'mon' is not a number"),
    ("no_numeric_column", b"day,name\n" + b"mon,x\n" * 40, [], "no numeric column"),
    ("fewrows", b"a,b\n" + b"1,2\n" * 12, [], "too few rows"),
    ("column", b"a,b\n" + b"1,2\n" * 40, ["--inputs", "c"], "no column 'c'"),
    ("target_column", b"a,b\n" + b"1,2\n" * 40, ["--targets", "a,price"], "no column 'price'"),
    ("binary", b"\x00\x01\x02a,b\n1,2\n", [], "binary file"),
    ("controls", b"a,b\n" + bytes(range(1, 256)) * 4, [], "binary file"),
    ("latin1", "a,b\n1,2\n\u00e9,3\n".encode("latin-1"), [], "not UTF-8 text"),
]


def assert_clean_failure(code, err, folder, before, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one clear message
    assert lines[0].startswith("rnnviewer train: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0]
    assert files_in(folder) == before  # no checkpoint, no temp file


@pytest.mark.parametrize("label, content, match", BAD_TEXT, ids=[c[0] for c in BAD_TEXT])
def test_bad_text_file(tmp_path, label, content, match):
    p = tmp_path / f"{label}.txt"
    p.write_bytes(content)
    before = files_in(tmp_path)
    code, err = run(["--text", p, "--steps", "3", "--seq-len", "20", "--save",
                     tmp_path / "out.npz"])
    assert_clean_failure(code, err, tmp_path, before, str(p), match)


@pytest.mark.parametrize("label, content, extra, match", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_file(tmp_path, label, content, extra, match):
    p = tmp_path / f"{label}.csv"
    p.write_bytes(content)
    before = files_in(tmp_path)
    argv = ["--task", "csv", "--csv", p, "--steps", "3", "--seq-len", "8", "--save",
            tmp_path / "out.npz"] + extra
    code, err = run(argv)
    assert_clean_failure(code, err, tmp_path, before, str(p), match)


@pytest.mark.parametrize("argv, match", [
    (["--task", "chess"], "invalid choice: 'chess'"),
    (["--task", "sine", "--cell", "transformer"], "invalid choice: 'transformer'"),
    (["--task", "sine", "--hidden", "lots"], "invalid int value: 'lots'"),
    (["--task", "sine", "--hidden", "0"], "hidden must be"),
    (["--task", "sine", "--batch", "0"], "batch must be"),
    (["--task", "sine", "--lr", "0"], "learning rate"),
    (["--task", "sine", "--lr", "nan"], "learning rate"),
    (["--task", "sine", "--clip", "-1"], "clip"),
    (["--task", "sine", "--steps", "-5"], "--steps must be >= 0"),
    (["--task", "sine", "--seq-len", "0"], "seq_len"),
    (["--task", "sine", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--steps", "3"], "--task is required"),
    (["--task", "sine", "--delay", "5"], "--delay applies to the copy task only"),
    (["--task", "adding", "--text", "x.txt"], "--text applies to the text task only"),
    (["--task", "csv"], "needs --csv FILE"),
    (["--task", "sine", "--sample", "20"], "text task only"),
    (["--task", "sine", "--sample-every", "20"], "text task only"),
    (["--task", "text", "--sample-every", "-1"], "--sample-every must be >= 0"),
    (["--text", "t.txt", "--corpus", "prose"], "--text FILE or --corpus NAME, not both"),
    (["--task", "copy", "--seq-len", "30", "--delay", "3"], "does not match"),
    (["--task", "text", "--text", "no/such/file.txt"], "no/such/file.txt: no such file"),
    (["--task", "csv", "--csv", "no/such.csv"], "no/such.csv: no such file"),
    (["--task", "sine", "--save", "no/such/folder/m.npz"], "does not exist"),
])
def test_bad_arguments(tmp_path, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    code, err = run(argv + ["--save", "m.npz"] if "--save" not in argv else argv)
    assert_clean_failure(code, err, tmp_path, [], match)


def test_save_into_a_folder_is_refused(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    code, err = run(["--task", "sine", "--steps", "2", "--save", tmp_path / "dir.npz"])
    assert_clean_failure(code, err, tmp_path, ["dir.npz"], "is a folder")


@pytest.mark.parametrize("kind", ["text", "csv"])
def test_save_over_the_input_file_is_refused(tmp_path, text_file, csv_file, kind):
    src = text_file if kind == "text" else csv_file
    data = src.read_bytes()
    before = files_in(tmp_path)
    code, err = run([f"--{kind}", src, "--steps", "2", "--save", src] + FAST)
    assert_clean_failure(code, err, tmp_path, before, "is the input file")
    assert src.read_bytes() == data


def test_unwritable_save_path_is_one_clean_error(tmp_path, monkeypatch):
    """The folder of --save vanishes while training: an error naming it, no traceback."""
    import shutil

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_step = TrainingSession.train_step

    def step(self, keep_grads=True):
        if self.step == 2:
            shutil.rmtree(out_dir)
        return real_step(self, keep_grads)

    monkeypatch.setattr(TrainingSession, "train_step", step)
    code, err = run(["--task", "sine", "--steps", "4", "--save", out_dir / "m.npz"] + FAST)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnviewer train: error: cannot save ") and "m.npz" in last
    assert "Traceback" not in err and files_in(tmp_path) == []


def test_ctrl_c_before_training_exits_130_without_traceback(tmp_path, monkeypatch):
    def compile_(self):
        raise KeyboardInterrupt   # Ctrl-C while the kernels compile

    monkeypatch.setattr(TrainingSession, "compile", compile_)
    code, err = run(["--task", "sine", "--steps", "4", "--save", tmp_path / "m.npz"] + FAST)
    assert code == 130 and err.strip().endswith("rnnviewer train: interrupted")
    assert "Traceback" not in err and files_in(tmp_path) == []


def test_samples_while_training_leave_the_run_unchanged(tmp_path, text_file, capsys):
    common = ["--text", text_file, "--steps", "10", "--temperature", "0.5"] + FAST
    code, err = run(common + ["--sample-every", "4", "--sample", "30", "--prime", "the",
                              "--save", tmp_path / "a.npz"])
    assert code == 0, err
    out = capsys.readouterr().out
    heads = [ln for ln in out.splitlines() if ln.startswith("--- sample at step")]
    assert heads == ["--- sample at step 4 (temperature 0.5) ---",
                     "--- sample at step 8 (temperature 0.5) ---"]
    body = out.split(heads[0] + "\n", 1)[1]
    assert body.startswith("the") and len(body.split("\n--- ")[0]) >= 33
    assert run(common + ["--quiet", "--save", tmp_path / "b.npz"])[0] == 0
    pa, pb = load(tmp_path / "a.npz").params, load(tmp_path / "b.npz").params
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)   # sampling never moves training


# ---------------------------------------------------------------- divergence: exit 3
def test_divergence_exits_3_and_saves_last_finite_state(tmp_path):
    out = tmp_path / "boom.npz"
    code, err = run(["--task", "sine", "--lr", "1e30", "--steps", "50", "--save", out] + FAST)
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    assert "diverged at step" in last and "lr 1e+30" in last and "lower --lr" in last
    assert "Traceback" not in err and "RuntimeWarning" not in err
    data = load_session(out)
    assert data.step < 50
    assert all(np.isfinite(v).all() for v in data.model.params.values())
    assert np.isfinite(data.history["train_loss"]).all()


def test_divergence_without_save_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(["--task", "sine", "--lr", "1e30", "--steps", "50", "--quiet"] + FAST)
    assert code == 3 and "diverged" in err and files_in(tmp_path) == []


# ---------------------------------------------------------------- the real entry points
def _entry_points():
    eps = [[sys.executable, "-m", "rnnviewer.training.headless"]]
    app = Path(__file__).resolve().parents[1] / "rnnviewer" / "app.py"
    wired = app.is_file() and "headless" in app.read_text(encoding="utf-8")
    eps.append(pytest.param([sys.executable, "-m", "rnnviewer", "train"], marks=pytest.mark.skipif(
        not wired, reason="rnnviewer/app.py does not route `train` to training.headless yet")))
    return eps


@pytest.mark.parametrize("cmd", _entry_points(), ids=["module", "rnnviewer-train"])
def test_entry_point_subprocess(tmp_path, cmd):
    env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba_cache"),
               OPENBLAS_NUM_THREADS="1")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    r = subprocess.run(cmd + ["--text", str(empty), "--save", str(tmp_path / "x.npz")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "empty.txt: the file is empty" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "ok.npz"
    r = subprocess.run(cmd + ["--task", "adding", "--steps", "3", "--quiet", "--save", str(out)]
                       + FAST, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load(out).n_in == 2
