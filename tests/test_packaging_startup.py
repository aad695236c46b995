"""Start-up of the app (what the double-click launch waits for): lazy panels, timing hooks,
and the parts of `--self-test` (event-driven waits, one render per panel, blank pictures),
and the pyqtgraph start-up work deferred by ui/pg_startup.py.

The frozen app's figures come from packaging/smoke.sh; these are the fast in-process checks.
"""

import gc
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

from rnnviewer import app as app_module
from rnnviewer.ui import runner
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


# ------------------------------------------------------------------ the self-test's parts
def test_blank_pictures_are_found():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (7, 5, 4)).astype(np.uint8)
    img = QImage(px.tobytes(), 5, 7, 20, QImage.Format.Format_RGBA8888)
    assert np.array_equal(runner.rgba_pixels(img), px)        # every pixel, alpha too
    assert not runner.blank(px)
    assert runner.blank(np.full((3, 4, 4), 200, np.uint8))    # one colour: nothing drawn
    assert runner.blank(runner.rgba_pixels(QImage()))         # a null picture


class _Source(QObject):
    ping = Signal()


def test_wait_until_wakes_on_a_signal_and_gives_up_at_the_timeout(qtbot, monkeypatch):
    monkeypatch.setattr(runner._Waiter, "CHECK_MS", 60_000)   # only the signal can wake it
    src, state = _Source(), {"done": False}

    def fire():
        state["done"] = True
        src.ping.emit()

    QTimer.singleShot(50, fire)
    t = time.monotonic()
    assert runner.wait_until(lambda: state["done"], 10, [src.ping])
    assert time.monotonic() - t < 5
    # without signals it polls, and events are processed meanwhile
    QTimer.singleShot(30, lambda: state.update(polled=True))
    t = time.monotonic()
    assert runner.wait_until(lambda: state.get("polled"), 10)
    assert time.monotonic() - t < 5
    t = time.monotonic()
    assert not runner.wait_until(lambda: False, 0.2)
    assert 0.15 < time.monotonic() - t < 5
    assert runner.wait_until(lambda: True, 0)                 # already true: no loop at all


class _Drawn(Panel):
    title, object_name = "Drawn", "st_drawn"

    def build(self):
        self.label = QLabel("nothing yet")
        self.layout_.addWidget(self.label)

    def redraw(self, snap):
        self.label.setText(f"step {snap.step}")


class _Empty(Panel):
    title, object_name = "Empty", "st_empty"       # draws nothing at all


class _Broken(_Drawn):
    title, object_name = "Broken", "st_broken"

    def redraw(self, snap):
        raise ValueError("broken on purpose")


def _window(qtbot, classes):
    """A main window with one dock per panel class, all tabbed together, lazy like the
    application's (only the first tab in front)."""
    win = QMainWindow()
    qtbot.addWidget(win)
    win.panels, win.docks = {}, {}
    sel = UnitSelection()
    for cls in classes:
        panel = cls(sel, lazy=True)
        dock = QDockWidget(cls.title, win)
        dock.setWidget(panel)
        win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        if win.docks:
            win.tabifyDockWidget(next(iter(win.docks.values())), dock)
        win.panels[cls.object_name], win.docks[cls.object_name] = panel, dock
        dock.visibilityChanged.connect(panel.ensure_built)    # as MainWindow does
        panel.update_snapshot(_Snap(1))
    next(iter(win.docks.values())).raise_()
    win.resize(700, 500)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_check_panel_draws_renders_once_and_reports(qtbot):
    win = _window(qtbot, [_Drawn, _Empty, _Broken])
    # _Drawn is built when it comes to the front, inside check_panel, while its dock is
    # visible: its label is shown through a queued call and must be in the picture
    assert runner.check_panel(win, "st_drawn") == []
    panel = win.panels["st_drawn"]
    assert panel.label.isVisible() and panel.label.text() == "step 0"
    assert panel.width() > 100
    assert runner.check_panel(win, "st_empty") == ["panel st_empty: rendered an empty picture"]
    with pytest.raises(ValueError, match="broken on purpose"):
        runner.check_panel(win, "st_broken")                  # self_test reports it by name
    win.close()


SELF_TEST_BROKEN = """
import sys
from rnnviewer.training.session import TrainingSession
from rnnviewer.ui.panels import spectrum
def redraw(self, snap):
    raise RuntimeError("broken on purpose")
def train_step(self, keep_grads):
    raise RuntimeError("step broken on purpose")
spectrum.SpectrumPanel.redraw = redraw
if "--break-step" in sys.argv:
    TrainingSession._train_step = train_step
from rnnviewer.app import main
from rnnviewer.ui.runner import finish
finish(main(["--self-test"]))
"""


def _self_test_broken(*flags):
    # the training runs in this process (the patched step exists here only)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "RNNVIEWER_TIMING": "1",
           "RNNVIEWER_TRAIN_IN_PROCESS": "1"}
    return subprocess.run([sys.executable, "-c", SELF_TEST_BROKEN, *flags], env=env,
                          capture_output=True, text=True, timeout=300)


def test_self_test_fails_naming_a_panel_that_cannot_draw():
    r = _self_test_broken()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "self-test FAILED" in r.stderr
    assert "panel spectrum: RuntimeError: broken on purpose" in r.stderr
    assert "training:" not in r.stderr
    assert "panel weights" not in r.stderr                     # the others still pass
    assert "self-test phases (s): window" in r.stderr          # RNNVIEWER_TIMING


def test_self_test_fails_when_the_training_worker_errors():
    r = _self_test_broken("--break-step")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "self-test FAILED" in r.stderr
    assert "training: RuntimeError: step broken on purpose" in r.stderr
    assert "self-test passed" not in r.stdout


GC_AT_START = """
import gc, sys
from rnnviewer.ui import runner
seen = {}
make_app = runner.make_app
def recording_make_app(*a):
    seen["collecting during the imports"] = gc.isenabled()
    return make_app(*a)
def probe(args, config):
    seen["collecting after"] = gc.isenabled()
    seen["frozen"] = gc.get_freeze_count()
    print(seen, flush=True)
    return 0
runner.make_app, runner.self_test = recording_make_app, probe
sys.argv = ["rnnviewer", "--self-test"]
from rnnviewer.app import main
main()
"""


def test_the_program_does_not_collect_while_it_imports_then_collects_again():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-c", GC_AT_START], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = eval(r.stdout.strip().splitlines()[-1])
    assert seen["collecting during the imports"] is False
    assert seen["collecting after"] is True and seen["frozen"] > 10000


def test_settle_imports_freezes_and_collects_again():
    gc.disable()
    try:
        runner.settle_imports()
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


# ------------------------------------------------------------------ pyqtgraph start-up work
ENUMS_MADE = """
import enum, sys
made = [0]
create = enum.EnumType._create_
def counting(*a, **k):
    made[0] += 1
    return create(*a, **k)
enum.EnumType._create_ = counting
if sys.argv[1] == "app":
    import rnnviewer.ui                      # pyqtgraph with the on-demand mirrors
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
assert QtWidgets.QWidget.__module__.startswith("PySide6") and QtGui.QColor and QtCore.QTimer
print(made[0])
"""


def test_pyqtgraph_imports_without_making_every_qt_enum():
    def enums(mode):
        r = subprocess.run([sys.executable, "-c", ENUMS_MADE, mode], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM":
                                                        "offscreen"})
        assert r.returncode == 0, r.stderr
        return int(r.stdout.split()[-1])
    plain, app = enums("plain"), enums("app")
    assert plain > 500 and app < plain / 2, (plain, app)


def test_pyqtgraph_uses_the_on_demand_mirrors_and_sees_the_real_classes():
    import pyqtgraph as pg
    from PySide6 import QtCore, QtGui, QtWidgets
    from rnnviewer.ui import qt_mirror
    for short, real in qt_mirror.REAL.items():
        mod = getattr(pg.Qt, short)
        assert sys.modules[f"pyqtgraph.Qt.{short}"] is mod and "on demand" in mod.__doc__
        assert len(dir(real)) > 200                      # PySide6's own names are back
        assert set(dir(real)) <= set(dir(mod))
    assert pg.Qt.QtWidgets.QGraphicsView is QtWidgets.QGraphicsView
    assert pg.QtGui.QColor is QtGui.QColor and pg.QtCore.Signal is QtCore.Signal
    assert pg.QtGui.QFileSystemModel is QtWidgets.QFileSystemModel   # pyqtgraph's own shim
    with pytest.raises(AttributeError):
        pg.Qt.QtCore.NoSuchThing


MIRROR_REFUSED = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("qm", sys.argv[1])
qm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qm)
qm.bound = lambda pg_qt, mirrors: False          # a pyqtgraph that does not take them
assert qm.install() is False
import pyqtgraph as pg
from PySide6 import QtGui
assert "QColor" in vars(pg.Qt.QtGui) and pg.Qt.QtGui.QColor is QtGui.QColor
assert hasattr(sys.modules["pyqtgraph.Qt.QtCore"], "__path__")   # pyqtgraph's own package
assert len(dir(QtGui)) > 200
print("fell back")
"""


def test_a_pyqtgraph_that_refuses_the_mirrors_is_imported_as_usual():
    from rnnviewer.ui import qt_mirror
    r = subprocess.run([sys.executable, "-c", MIRROR_REFUSED, qt_mirror.__file__],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0 and "fell back" in r.stdout, r.stdout + r.stderr

def test_viewbox_menus_are_built_on_first_use_and_keep_pyqtgraphs_behaviour(qtbot):
    import pyqtgraph as pg

    from rnnviewer.ui import pg_startup
    assert pg_startup.install() and pg_startup.install()          # idempotent
    win = pg.GraphicsLayoutWidget()
    qtbot.addWidget(win)
    a = win.addPlot(name="st_lazy_a")
    b = win.addPlot(name="st_lazy_b")
    menu = a.getViewBox().menu
    assert isinstance(menu, pg_startup.LazyViewBoxMenu) and not menu.built
    actions = a.getViewBox().getContextMenus(None)                # a right-click asks this
    assert menu.built and "View All" in [x.text() for x in actions]
    combo = menu.ctrl[0].linkCombo                                 # the view list set earlier
    assert "st_lazy_b" in [combo.itemText(i) for i in range(combo.count())]
    vb = b.getViewBox()
    vb.setMenuEnabled(False)
    assert vb.menu is None and vb.getMenu(None) is None
    vb.setMenuEnabled(True)
    assert vb.getMenu(None) is not None
    vb.getMenu(None).popup(QPoint(0, 0))                           # the real QMenu's popup
    vb.menu.real.close()


def test_axis_label_text_is_set_only_when_it_changes(qtbot):
    import pyqtgraph as pg

    from rnnviewer.ui import pg_startup
    pg_startup.install()
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    axis = plot.getPlotItem().getAxis("left")
    axis.setLabel("loss")
    calls = []
    real = axis.label.setHtml
    axis.label.setHtml = lambda html: calls.append(html) or real(html)
    axis.setRange(0, 1)
    axis.setRange(0, 2)                       # each range change used to re-set the label
    assert calls == []
    axis.setLabel("accuracy")
    assert len(calls) == 1 and "accuracy" in axis.label.toHtml()


def test_reading_a_session_file_does_not_load_numba(tmp_path):
    """The window's process reads session files (the self-test's check, File > Open's
    fallback) while training runs elsewhere: a Model's kernels load on first use, so
    reading one never pays numba's import and set-up (about 0.4 s)."""
    from rnnviewer.training.session import SessionConfig, TrainingSession
    path = tmp_path / "s.npz"
    s = TrainingSession(SessionConfig(task="sine", hidden=8, batch=4, seq_len=12))
    s.run(max_steps=2)
    s.save(path)
    code = ("import sys\nfrom rnnviewer.training.sessionfile import load_session\n"
            "d = load_session(sys.argv[1])\nassert d.step == 2 and d.model.n_hidden == 8\n"
            "print('numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
