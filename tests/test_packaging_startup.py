"""Start-up of the app (what the double-click launch waits for): lazy panels, timing hooks.

The frozen app's figures come from packaging/smoke.sh; these are the fast in-process checks.
"""

import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QMainWindow

from rnnviewer import app as app_module
from rnnviewer.training.session import SessionConfig
from rnnviewer.ui.main_window import MainWindow
from rnnviewer.ui.panels import Panel, UnitSelection

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ lazy panels
def test_main_window_builds_only_the_panels_on_screen(qtbot):
    win = MainWindow(SessionConfig(task="sine", hidden=8, batch=4, seq_len=12),
                     interactive=False, restore_settings=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(20)
    shown = {n for n, p in win.panels.items() if p.is_shown()}
    built = {n for n, p in win.panels.items() if p.built}
    assert shown and built == shown                 # the tabs behind others wait
    hidden = next(n for n in win.panels if n not in built)
    win.docks[hidden].raise_()                      # its tab comes to the front...
    assert win.panels[hidden].built                 # ...built before it paints
    qtbot.wait(20)
    assert win.panels[hidden].is_shown()
    win.close()


class _Probe(Panel):
    title, object_name = "Probe", "lazy_probe"

    def build(self):
        self.label = QLabel("built")
        self.layout_.addWidget(self.label)
        self.seen, self.resets, self.sizes = [], 0, []

    def resizeEvent(self, event):               # like the panels that arrange by size
        super().resizeEvent(event)
        self.sizes.append(self.label.text() and event.size().width())

    def on_unit_selected(self, unit):
        self.seen.append(unit)

    def on_reset(self):
        self.resets += 1

    def data_arrays(self):
        return {"x": [1.0, 2.0]}


class _Snap:
    def __init__(self, run_id):
        self.run_id, self.step = run_id, 0


def test_a_lazy_panel_builds_on_first_use_and_misses_nothing(qtbot, tmp_path):
    sel = UnitSelection()
    p = _Probe(sel, lazy=True)
    qtbot.addWidget(p)
    assert not p.built
    p.resize(300, 200)                          # no resizeEvent before build: nothing to lay out
    sel.select(3)                               # remembered ...
    p.update_snapshot(_Snap(1))
    p.update_snapshot(_Snap(2))                 # no reset of a panel that has drawn nothing
    assert not p.built
    assert p.label.text() == "built"            # asking for what build() makes builds it
    assert p.built and p.seen == [3] and p.resets == 0     # ... and passed on
    p.update_snapshot(_Snap(3))
    assert p.resets == 1
    q = _Probe(sel, lazy=True)
    qtbot.addWidget(q)
    q.export_data(tmp_path / "q.csv")           # exporting builds too
    assert q.built and (tmp_path / "q.csv").read_text().startswith("x")
    with pytest.raises(AttributeError):
        q.no_such_attribute                     # after build, missing is missing


def test_a_lazy_panel_shown_on_screen_builds_with_its_size(qtbot):
    p = _Probe(UnitSelection(), lazy=True)
    qtbot.addWidget(p)
    p.resize(320, 200)
    p.show()
    qtbot.waitExposed(p)
    assert p.built and p.sizes and p.sizes[-1] == 320    # it got the resize it missed
    qtbot.waitUntil(p.label.isVisible, timeout=1000)      # children made while showing


def test_eager_panels_stay_the_default():
    p = _Probe(UnitSelection())
    assert p.built and p.label.text() == "built"
    p.deleteLater()


# ------------------------------------------------------------------ timing hooks
def test_process_start_time(monkeypatch):
    monkeypatch.setenv("RNNVIEWER_T0", "1234.5")
    assert app_module.process_start_time() == 1234.5
    monkeypatch.delenv("RNNVIEWER_T0")
    t = app_module.process_start_time()
    assert time.time() - 3600 < t <= time.time()


def test_window_shown_is_reported_once_exposed(qtbot, monkeypatch, capsys):
    monkeypatch.setenv("RNNVIEWER_TIMING", "1")
    monkeypatch.setenv("RNNVIEWER_T0", str(time.time() - 0.25))
    watch = app_module.report_window_shown()
    win = QMainWindow()
    qtbot.addWidget(win)
    win.show()
    assert watch is not None
    err = ""
    deadline = time.monotonic() + 5
    while "window shown after" not in err and time.monotonic() < deadline:
        qtbot.wait(10)
        err += capsys.readouterr().err
    line = next(x for x in err.splitlines() if "window shown after" in x)
    assert 0.25 <= float(line.split()[-2]) < 60
    monkeypatch.delenv("RNNVIEWER_TIMING")
    assert app_module.report_window_shown() is None        # off unless asked for
    win.close()


def test_profile_env_writes_pstats(tmp_path):
    out = tmp_path / "p.prof"
    env = {**os.environ, "RNNVIEWER_PROFILE": str(out), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", "import sys; from rnnviewer.app import main; "
                        "sys.exit(main(['--version']))"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("rnnviewer ")
    assert "profile of the main thread written" in r.stderr
    stats = pstats.Stats(str(out))
    assert any("build_parser" in fn[2] for fn in stats.stats)
