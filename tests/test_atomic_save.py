"""Atomic saving: a process killed mid-write never leaves a broken file in place of a good one.

A child process saves a big checkpoint or session over the same file in a loop and is
SIGKILLed at random moments; after every kill the file loads (old or new content) and at
most the killed write's temp file is left, which the next save clears once it is stale.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rnnviewer.engine import Model, load, npzio, save
from rnnviewer.errors import CheckpointError
from rnnviewer.training.sessionfile import load_session, save_session

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# H=512 LSTM in float64: a 9.7 MB file, 40-100 ms per save here
BIG = dict(cell="lstm", n_in=64, n_hidden=512, n_out=64, dtype="float64", backend="numpy")

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rnnviewer.engine import Model, npzio, save
    from rnnviewer.training.sessionfile import save_session
    if sys.argv[2] == "single":   # one writer: clear a killed write's temp file at once
        npzio.STALE_TMP_SECONDS = 0.0
    if sys.argv[3] == "pause":    # stop in the middle of writing, for a kill right there
        real = np.savez
        def half(f, **arrays):
            f.write(b"PK\\x03\\x04" + bytes(1 << 20))
            f.flush()
            print("mid-write", flush=True)
            time.sleep(60)
        np.savez = half
    big = dict(cell="lstm", n_in=64, n_hidden=512, n_out=64, dtype="float64", backend="numpy")
    models = [Model(seed=s, **big) for s in (1, 2)]
    print("ready", flush=True)
    i = 0
    while True:
        m = models[i % 2]
        if i % 2:
            save_session(sys.argv[1], m, None, {"name": "sine"}, i, {})
        else:
            save(m, sys.argv[1])
        i += 1
""")


def start_writer(target, mode="single", pause="no"):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] +
                                        [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), mode, pause],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"writer did not start: {line!r} {proc.stderr.read()}")
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def fingerprints():
    """W_hh checksums of the writer's two models: a loaded file must hold one of them."""
    return {float(Model(seed=s, **BIG).params["W_hh"].sum()) for s in (1, 2)}


def check_target(target, fingerprints):
    m = load(target)   # never raises: the old or the new file is in place
    assert float(m.params["W_hh"].sum()) in fingerprints
    if "session" in str(npzio.read_npz(target).get("session/format", "")):
        assert load_session(target).model.config == m.config


def test_sigkill_at_random_times_never_breaks_the_file(tmp_path, fingerprints):
    target = tmp_path / "big.npz"
    save(Model(seed=1, **BIG), target)   # the good file the writer overwrites
    rng = np.random.default_rng(12345)
    mid_write = 0
    for _ in range(6):
        proc = start_writer(target)
        time.sleep(float(rng.uniform(0.05, 0.6)))
        kill(proc)
        check_target(target, fingerprints)
        left = npzio.temp_files(target)
        assert len(left) <= 1, left          # only the killed write's temp file
        mid_write += len(left)
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) \
            == ["big.npz"]
    assert mid_write >= 1, "no kill landed during a write: the test proved nothing"


def test_kill_in_the_middle_of_a_write(tmp_path, fingerprints):
    target = tmp_path / "s.npz"
    save(Model(seed=2, **BIG), target)
    good = target.read_bytes()
    proc = start_writer(target, pause="pause")
    assert proc.stdout.readline().strip() == "mid-write"
    tmp = npzio.temp_files(target)
    assert len(tmp) == 1 and tmp[0].stat().st_size > 1 << 20   # half a file, beside it
    kill(proc)
    assert target.read_bytes() == good
    check_target(target, fingerprints)


def test_stale_temp_files_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "m.npz"
    m = Model("rnn", 2, 3, 1, backend="numpy")
    save(m, target)
    old = tmp_path / ".m.npz.abcd1234.tmp"       # a write killed long ago
    young = tmp_path / ".m.npz.young123.tmp"     # maybe another process writing now
    other = tmp_path / ".other.npz.abcd1234.tmp"  # another file's temp file
    unrelated = tmp_path / ".m.npz.notes.tmp.txt"
    for p in (old, young, other, unrelated):
        p.write_bytes(b"PK\x03\x04 partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    save(m, target)
    assert not old.exists()
    assert young.exists() and other.exists() and unrelated.exists()
    assert set(npzio.temp_files(target)) == {young}
    load(target)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "m.npz"
    m = Model("gru", 2, 3, 1, backend="numpy")
    save(m, target)
    good = target.read_bytes()

    def boom(f, **arrays):
        f.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt   # even a Ctrl-C mid-write cleans up
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        save(Model("gru", 2, 3, 1, seed=5, backend="numpy"), target)
    assert target.read_bytes() == good and npzio.temp_files(target) == []


def test_saved_file_permissions(tmp_path):
    """A new file gets the umask's permissions (mkstemp's 0600 would hide it from others);
    an existing file keeps its own."""
    m = Model("rnn", 2, 3, 1, backend="numpy")
    old_umask = os.umask(0o022)
    try:
        save(m, tmp_path / "new.npz")
        assert (tmp_path / "new.npz").stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.npz"
        save(m, kept)
        os.chmod(kept, 0o640)
        save(m, kept)
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)


def test_impossible_targets_leave_nothing_behind(tmp_path):
    m = Model("rnn", 2, 3, 1, backend="numpy")
    with pytest.raises(OSError):
        save(m, tmp_path / "no" / "such" / "dir" / "m.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(OSError):
        save(m, tmp_path / "d.npz")
    assert npzio.temp_files(tmp_path / "d.npz") == []
    with pytest.raises(CheckpointError, match="d.npz: is a folder"):
        load(tmp_path / "d.npz")


def test_session_save_is_atomic_too(tmp_path, monkeypatch):
    target = tmp_path / "s.npz"
    m = Model("lstm", 2, 3, 1, backend="numpy")
    save_session(target, m, None, {"name": "sine"}, 3, {})
    good = target.read_bytes()
    monkeypatch.setattr(np, "savez", lambda f, **a: (f.write(b"junk"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        save_session(target, m, None, {"name": "sine"}, 4, {})
    assert target.read_bytes() == good and load_session(target).step == 3
