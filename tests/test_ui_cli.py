"""The command line: --version and `train` without Qt, --self-test, --screenshot, and the
real application closed in the middle of a cold numba compile."""

import os
import subprocess
import sys
import textwrap
import time
import types

import pytest

from rnnviewer import __version__
from rnnviewer.app import main, setup_numba_cache, source_hash, user_cache_dir


def run(args, env=None, timeout=300, code=None):
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "rnnviewer", *args]
    e = dict(os.environ, QT_QPA_PLATFORM="offscreen", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


def test_version_and_train_never_import_qt():
    code = textwrap.dedent("""
        import sys
        from rnnviewer.app import main
        try:
            main(["--version"])
        except SystemExit as e:
            assert e.code in (0, None)
        rc = main(["train", "--help"])
        print("RC", rc, "QT", "PySide6" in sys.modules, "PG", "pyqtgraph" in sys.modules)
    """)
    r = run([], code=code)
    assert r.returncode == 0, r.stderr
    assert f"rnnviewer {__version__}" in r.stdout
    assert "rnnviewer train" in r.stdout                    # the headless help
    assert "RC 0 QT False PG False" in r.stdout


def test_train_subcommand_dispatches_its_arguments(monkeypatch):
    seen = []
    fake = types.ModuleType("rnnviewer.training.headless")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "rnnviewer.training.headless", fake)
    assert main(["train", "--task", "sine", "--steps", "3"]) == 7
    assert seen == [["--task", "sine", "--steps", "3"]]


def test_numba_cache_dir_is_per_user_and_keyed_by_sources(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = setup_numba_cache()
    assert path == str(tmp_path / "rnnviewer" / f"numba-{source_hash()}")
    assert os.environ["NUMBA_CACHE_DIR"] == path and os.path.isdir(path)
    assert user_cache_dir() == tmp_path / "rnnviewer"
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    assert setup_numba_cache() == "/somewhere/else"     # a choice made by the user wins


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["--cell", "transformer"])
    assert e.value.code == 2
    assert main(["--self-test", "--hidden", "0"]) == 2


def test_self_test_exits_0():
    r = run(["--self-test"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "self-test passed" in r.stdout


def test_screenshot_and_panel_export(tmp_path):
    shot, panels = tmp_path / "shot.png", tmp_path / "panels"
    r = run(["--screenshot", str(shot), "--export-panels", str(panels), "--steps", "8",
             "--task", "parity", "--cell", "gru", "--hidden", "6", "--seq-len", "10",
             "--size", "1500x900"])
    assert r.returncode == 0, r.stdout + r.stderr
    data = shot.read_bytes()
    assert data[:4] == b"\x89PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1500, 900)
    assert (panels / "curves.png").is_file()
    pngs = sorted(panels.glob("*.png"))
    assert len(pngs) > 3                   # the tabs behind others too
    for p in pngs:                         # each laid out at its real size, not a stale one
        head = p.read_bytes()[:24]
        size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert size[0] >= 300 and size[1] >= 200, (p.name, size)


def test_exported_panels_are_complete(tmp_path, monkeypatch, qapp):
    """--export-panels: the analyses of the panels behind others ran while training (the
    generated text, the top contexts) and the search panels ran once, so no picture says
    "waiting" or "press Run"."""
    from types import SimpleNamespace

    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui import runner
    from rnnviewer.ui.main_window import MainWindow
    seen = {}
    export = MainWindow.export_panels

    def looking_export(self, folder):
        snap = self.snapshot
        seen.update(step=snap.step, extra=set(snap.extra),
                    results={n: p.result is not None for n, p in self.panels.items()
                             if hasattr(p, "job_running")})
        return export(self, folder)
    monkeypatch.setattr(MainWindow, "export_panels", looking_export)
    config = SessionConfig(task="text", cell="gru", hidden=8, batch=4, seq_len=12,
                           probe_size=2)
    args = SimpleNamespace(file=None, size=(1200, 800), steps=40, screenshot=None,
                           export_panels=str(tmp_path / "panels"))
    assert runner.screenshot(args, config) == 0
    assert seen["step"] == 40
    assert {"samples", "top_contexts"} <= seen["extra"], seen["extra"]
    assert seen["results"] == {"maximize": True, "fixed_points": True}
    assert (tmp_path / "panels" / "maximize.png").is_file()


def test_several_files_open_the_first_and_ignore_the_rest(monkeypatch, capsys):
    """The desktop entry's `Exec=rnnviewer %F` may pass several files."""
    import rnnviewer.ui.runner as runner
    seen = []
    monkeypatch.setattr(runner, "run", lambda args, overrides, fast_exit: seen.append(args) or 0)
    assert main(["a.npz", "b.npz", "c.npz"]) == 0
    assert seen[0].file == "a.npz" and seen[0].ignored_files == ["b.npz", "c.npz"]
    assert "ignored 2 more" in capsys.readouterr().err
    assert main(["only.npz"]) == 0 and seen[1].file == "only.npz"
    assert main([]) == 0 and seen[2].file is None and seen[2].ignored_files == []


DRIVER = textwrap.dedent("""
    import sys, time
    from rnnviewer.app import setup_numba_cache
    setup_numba_cache()
    from PySide6.QtCore import QTimer
    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.runner import finish, make_app
    app = make_app()
    win = MainWindow(SessionConfig(task="sine", cell=sys.argv[1], hidden=6, batch=3,
                                   seq_len=8), interactive=False, restore_settings=False)
    win.show()
    win.start()
    mode = sys.argv[2]
    state = {}

    def poll():
        ready = win.compiling if mode == "compile" else (
            win.snapshot is not None and win.snapshot.step >= 20)
        if mode == "train" and win.snapshot is not None and not win.running:
            win.act_start.trigger()
        if ready and "t" not in state:
            state["compiling"] = win.compiling
            state["t"] = time.time()
            QTimer.singleShot(300, win.close)
    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    app.exec()
    print("CLOSED", state.get("compiling"), flush=True)
    print("T", state["t"] + 0.3, flush=True)
    sys.exit(finish(0))
""")


@pytest.mark.parametrize("mode", ["compile", "train"])
def test_app_closed_mid_compile_or_mid_training_exits_fast(tmp_path, mode):
    """A cold numba compile cannot be interrupted: the window still closes and the process
    exits within a second, without Qt's "QThread: Destroyed while thread is still running"."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cold")} if mode == "compile" else {}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "gru", mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, QT_QPA_PLATFORM="offscreen", **env))
    out, err = proc.communicate(timeout=300)
    end = time.time()
    assert proc.returncode == 0, err
    assert "QThread" not in err and "Destroyed" not in err
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["CLOSED"] == ("True" if mode == "compile" else "False")
    assert end - float(lines["T"]) < 1.0
