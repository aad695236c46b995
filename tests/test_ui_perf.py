"""The pieces that keep panel frames cheap (ui/panels/_perf.py, _chargrid.py) and the
redraw scheduler's pacing (ui/panels/_schedule.py), offscreen."""

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QGraphicsItem

import rnnviewer.ui.style  # noqa: F401  (pyqtgraph options: row-major images)
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.ui.panels import Panel, UnitSelection
from rnnviewer.ui.panels import _schedule
from rnnviewer.ui.panels._chargrid import CharGrid
from rnnviewer.ui.panels._perf import (Band, BandLevel, Dots, FastImageItem, GrowingSeries,
                                       LevelGate, Rule, SeriesTrace, nice_below, nice_ceil,
                                       TextLine, TimeDots, Trace, ViewRange, _decimate,
                                       cache_axes, set_ticks)
from rnnviewer.ui.panels._wg_common import colormap


def plot_widget(qtbot):
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.show()
    return w


def test_cache_axes_caches_every_axis(qtbot):
    w = pg.GraphicsLayoutWidget()
    qtbot.addWidget(w)
    w.addPlot(row=0, col=0)
    w.addPlot(row=0, col=1)
    assert cache_axes(w) == 8                              # 4 axes per plot, shown or not
    axes = [i for i in w.scene().items() if isinstance(i, pg.AxisItem)]
    assert axes and all(a.cacheMode() == QGraphicsItem.CacheMode.DeviceCoordinateCache
                        for a in axes)


def test_view_range_moves_in_steps(qtbot):
    w = plot_widget(qtbot)
    vb = w.getPlotItem().getViewBox()
    r = ViewRange(vb, "x", pad=(0.0, 0.5), shrink=0.5)
    assert r.fit(0, 10) and r.range == (0, 15)             # headroom on the right
    assert not r.fit(0, 14)                                # inside: the range stays
    assert r.fit(0, 16) and r.range == (0, 24)             # out: grows at once, with room
    assert r.fit(0, 5) and r.range == (0, 7.5)             # fills < half: shrinks
    assert vb.viewRange()[0] == pytest.approx([0, 7.5])
    assert not vb.state["autoRange"][0]
    log = ViewRange(vb, "y", pad=(0, 0), log=True)
    assert log.fit_data([0.1, 10.0, -1.0, np.nan]) and log.range == pytest.approx((-1, 1))


def test_band_level_steps_and_level_gate():
    lv = BandLevel()
    assert lv.update(1.0) == pytest.approx(1.25)           # grows at once to a round rung
    assert lv.update(1.1) == pytest.approx(1.25)           # inside the band: unchanged
    assert lv.update(0.8) == pytest.approx(1.25)
    assert lv.update(0.01) == pytest.approx(1.0)           # far under: one rung down
    assert lv.update(0.01) == pytest.approx(0.8)
    assert lv.update(2.0) == pytest.approx(2.5)
    assert lv.update(0.0) == pytest.approx(2.0)            # zero: steps down, never to 0
    assert lv.update(float("nan")) == pytest.approx(1.5)
    assert [nice_ceil(x) for x in (0.031, 1.0, 7.2, 9.5, 123.0)] == \
        pytest.approx([0.04, 1.0, 8.0, 10.0, 125.0])
    assert [nice_below(x) for x in (1.0, 0.04, 125.0, 8.0)] == \
        pytest.approx([0.8, 0.03, 100.0, 6.0])
    gate = LevelGate(tol=0.1)
    assert gate.update(0.0, 1.0) == (0.0, 1.0)
    assert gate.update(0.02, 0.99) == (0.0, 1.0)           # small inward moves wait
    assert gate.update(0.2, 1.0) == (0.2, 1.0)             # a larger one goes through
    assert gate.update(0.19, 1.0) == (0.19, 1.0)           # widening always goes through


def test_trace_band_dots_rule_hold_their_data(qtbot):
    w = plot_widget(qtbot)
    t = Trace(pg.mkPen("b"))
    w.addItem(t)
    x = np.arange(5.0)
    t.setData(x, x ** 2)
    np.testing.assert_array_equal(t.getData()[1], x ** 2)
    assert t.path().elementCount() == 5
    t.setData([], [])
    assert len(t.getData()[0]) == 0 and t.path().isEmpty()
    t.setData(x, [0, 1, np.nan, 3, 4])                     # NaN breaks the line
    path = t.path()
    moves = [i for i in range(path.elementCount()) if path.elementAt(i).isMoveTo()]
    assert len(moves) == 2 and path.elementAt(moves[1]).x == 3
    assert t.dataBounds(1) == (0.0, 4.0)
    band = Band("r")
    w.addItem(band)
    band.setData(x, x - 1, x + 1)
    np.testing.assert_array_equal(band.lo.getData()[1], x - 1)
    assert band.path().boundingRect().height() == pytest.approx(6.0)
    d = Dots("g", size=5)
    w.addItem(d)
    d.setData(x, x)
    assert d.path().elementCount() == 10                   # a tiny segment per point
    rule = Rule(0.5, angle=0)
    w.addItem(rule)
    assert rule.dataBounds(0) == (None, None)
    td = TimeDots(colormap("viridis"), bands=4)
    td.add_to(w.getPlotItem())
    td.setData(np.arange(8.0), np.zeros(8))
    assert td.bands() == [0, 0, 1, 1, 2, 2, 3, 3]
    y = np.zeros(8)
    y[3] = np.nan                                          # not drawn; the others keep bands
    td.setData(np.arange(8.0), y)
    assert td.bands() == [0, 0, 1, 2, 2, 3, 3]
    assert len(td.getData()[0]) == 8 and td.dataBounds(0) == (0.0, 7.0)


@pytest.mark.parametrize("fragments", (True, False))
def test_time_dots_draw_round_dots_in_time_colours(qtbot, tmp_path, fragments):
    """Each point is stamped in its band's colour (the first in the colour map's start, the
    last in its end), round at unequal axis scales; an SVG gets vector dots, no images.
    With pyqtgraph's fragment array (one call a frame) and without (one call a point)."""
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator
    cmap = colormap("viridis")
    w = plot_widget(qtbot)
    w.setXRange(0, 10, padding=0)
    w.setYRange(0, 1, padding=0)                           # y stretched 10x against x
    td = TimeDots(cmap, size=9)
    assert td._frags is not None                           # this pyqtgraph has the array
    if not fragments:
        td._frags = None
    td.add_to(w.getPlotItem())
    xs, ys = np.array([2.0, 5.0, 8.0]), np.array([0.3, 0.5, 0.7])
    td.setData(xs, ys)
    qtbot.wait(10)
    img = w.grab().toImage()
    vb = w.getPlotItem().getViewBox()
    want = {0: cmap.map(0.5 / 64, mode="qcolor"), 2: cmap.map(63.5 / 64, mode="qcolor")}
    for i, col in want.items():
        c = w.mapFromScene(vb.mapViewToScene(QPointF(xs[i], ys[i])))
        got = img.pixelColor(c.x(), c.y())
        assert abs(got.red() - col.red()) + abs(got.green() - col.green()) + \
            abs(got.blue() - col.blue()) < 30, (i, got.name(), col.name())
        # as wide as high: 3 px out from the centre, both ways, still the dot's colour
        for dx, dy in ((3, 0), (0, 3), (-3, 0), (0, -3)):
            near = img.pixelColor(c.x() + dx, c.y() + dy)
            assert abs(near.green() - col.green()) < 30, (i, dx, dy, near.name())
        far = img.pixelColor(c.x() + 8, c.y())             # beyond the 9 px dot and rim
        assert far.green() > 200 and far.red() > 200
    path = tmp_path / "dots.svg"
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(w.size())
    gen.setViewBox(QRectF(0, 0, w.width(), w.height()))
    painter = QPainter(gen)
    w.scene().render(painter)
    painter.end()
    svg = path.read_text()
    assert "<image" not in svg and svg.count(cmap.map(63.5 / 64, mode="qcolor").name()) >= 1


def test_export_legends_go_to_the_emptiest_corner(qtbot):
    from rnnviewer.ui.panels import CORNERS, emptiest_corner, view_points
    pts = np.array([[5.0, 5.0], [95.0, 5.0], [95.0, 95.0]])      # pixels, y down
    assert emptiest_corner(pts, 100, 100, 20, 20) == (0, 1)       # bottom left is free
    assert emptiest_corner(np.zeros((0, 2)), 100, 100, 20, 20) == CORNERS[0]   # top right
    pts = np.array([[95.0, 5.0], [5.0, 5.0], [95.0, 95.0], [5.0, 95.0]] * 2 + [[5.0, 5.0]])
    assert emptiest_corner(pts, 100, 100, 20, 20) == (1, 0)       # a tie: the first
    w = plot_widget(qtbot)
    w.setXRange(0, 10, padding=0)
    w.setYRange(0, 1, padding=0)
    t = Trace(pg.mkPen("b"))
    w.addItem(t)
    t.setData([0.0, 10.0], [1.0, 0.0])                            # top left to bottom right
    vb = w.getPlotItem().getViewBox()
    qtbot.wait(10)
    p = view_points(vb)
    width, height = vb.width(), vb.height()
    assert len(p) > width / 2 - 2                                 # every 2 pixels along it
    np.testing.assert_allclose(p[:, 1], height * p[:, 0] / width, atol=1e-6)
    assert emptiest_corner(p, width, height, 60, 30) in ((1, 0), (0, 1))
    t.setData([1.0, 9.0], [0.9, 0.9])                             # along the top
    assert emptiest_corner(view_points(vb), width, height, 60, 30) == (1, 1)
    t.setData([9.8, 9.8, 0.2], [0.97, 0.03, 0.03])               # a point in 3 corners
    assert emptiest_corner(view_points(vb), width, height, 60, 30) == (0, 0)
    label = pg.TextItem("unit 0 (seq 0)", anchor=(0, 0))          # text a legend must not
    label.setParentItem(vb)                                       # cover, top left
    label.setPos(4, 2)
    assert emptiest_corner(view_points(vb), width, height, 60, 30) == (1, 0)


def test_decimation_keeps_the_peaks():
    x = np.arange(10_000.0)
    y = np.sin(x / 300.0)
    y[1234], y[8765] = 5.0, -7.0
    xd, yd = _decimate(x, y, 400)
    assert len(xd) <= 420 and yd.max() == 5.0 and yd.min() == -7.0
    assert np.all(np.diff(xd) > 0)                         # still in order


def reference_extremes(y, per):
    """Plain numpy: each whole bin's min and max rows, in order, then the rest of the rows."""
    whole = len(y) // per * per
    idx = []
    for b in range(0, whole, per):
        seg = np.where(np.isnan(y[b:b + per]), np.inf, y[b:b + per])
        lo = b + int(np.argmin(seg))
        seg = np.where(np.isnan(y[b:b + per]), -np.inf, y[b:b + per])
        hi = b + int(np.argmax(seg))
        idx += [min(lo, hi), max(lo, hi)]
    return np.array(idx + list(range(whole, len(y))), dtype=int)


def test_growing_series_decimates_from_the_new_rows_alone():
    rng = np.random.default_rng(3)
    n = 20_000
    x = np.arange(1.0, n + 1)
    y = rng.standard_normal(n).cumsum()
    y[[777, 15_000]] = [1e3, -1e3]                         # peaks that must survive
    y[[5, 6, 9000]] = np.nan
    s = GrowingSeries(max_points=500)
    fed = 0
    while fed < n:                                         # as frames would: uneven chunks
        fed = min(n, fed + int(rng.integers(1, 900)))
        s.feed(x[:fed], y[:fed])
        px, py = s.points()
        assert len(px) <= 500 + s.per and np.all(np.diff(px) > 0)
        ref = reference_extremes(y[:fed], s.per)
        np.testing.assert_array_equal(px, x[:fed][ref])
        np.testing.assert_array_equal(py, y[:fed][ref])
    assert py.max() == 1e3 and py.min() == -1e3
    assert s.bounds() == (np.nanmin(y), np.nanmax(y))
    np.testing.assert_array_equal(s.y, y)                   # all of it, for getData
    # rows already seen are not read again: a frame's cost does not grow with the run
    x2, y2 = np.arange(1.0, n + 41), np.r_[y, rng.standard_normal(40)]
    poisoned = y2.copy()
    poisoned[:n] = 99.0
    s.feed(x2, poisoned)
    ref = reference_extremes(y2, s.per)
    np.testing.assert_array_equal(s.points()[1], y2[ref])
    # a new run (shorter, or another first step) starts over
    s.feed(x[:3], y[:3] * 2)
    np.testing.assert_array_equal(s.points()[1], y[:3] * 2)
    s.feed(x[5:50] + 1000, y[5:50])
    assert s.points()[0][0] == 1006.0


def test_growing_series_transform_and_series_trace(qtbot):
    vals = np.array([10.0, 0.0, 100.0, -1.0, 1000.0])
    s = GrowingSeries(max_points=100, transform=np.log10)
    s.feed(np.arange(5.0), vals)
    np.testing.assert_array_equal(s.points()[1][[0, 2, 4]], [1.0, 2.0, 3.0])
    assert s.bounds() == (1.0, 3.0)                       # -inf and nan are left out
    t = SeriesTrace(pg.mkPen("b"), max_points=100)
    t.set_series(np.arange(3.0), [1.0, 2.0, 3.0])
    t.set_series(np.arange(4.0), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(t.getData()[1], [1, 2, 3, 4])
    assert t.path().elementCount() == 4
    t.setData([5.0, 6.0])                                  # as Trace: starts over
    np.testing.assert_array_equal(t.getData()[0], [0, 1])


def test_curves_panel_follows_a_growing_history(qtbot):
    """The curves read each new step once: long runs, a learning rate raised live (the
    lr axis follows the running maximum), log scale toggled (the series start over)."""
    import dataclasses

    from rnnviewer.training.snapshot import History, frozen_map
    from rnnviewer.ui.panels.curves import MAX_DOTS, CurvesPanel
    base = TrainingSession(SessionConfig(task="sine", hidden=4, batch=2, seq_len=6,
                                         probe_size=1)).snapshot()
    panel = CurvesPanel(UnitSelection())
    qtbot.addWidget(panel)
    panel.show()
    h = History()

    def frame(serial, steps, lr):
        for _ in range(steps):
            n = len(h) + 1
            h.append(n, 1.0 / n, 2.0, lr)
            if n % 10 == 0:
                h.append_val(n, 2.0 / n)
        panel.update_snapshot(dataclasses.replace(base, run_id=7, serial=serial, step=len(h),
                                                  history=frozen_map(h.arrays(), copy=False)))
        panel.redraw_now()
    frame(1, 50, 0.01)
    assert panel.lr_plot.getViewBox().viewRange()[1][1] == pytest.approx(0.0115)
    frame(2, 20_000, 0.02)                                 # a long run, lr raised
    assert panel.lr_plot.getViewBox().viewRange()[1][1] == pytest.approx(0.023)
    xs, ys = panel.train_curve.getData()
    assert len(xs) == 20_050
    np.testing.assert_allclose(ys, np.log10(1.0 / np.arange(1, 20_051)))   # log scale
    assert len(panel.train_curve.series.points()[0]) <= 4000 + panel.train_curve.series.per
    assert len(panel.val_dots.getData()[0]) == 0 and len(h.arrays()["val_step"]) > MAX_DOTS
    lo, hi = panel.loss_plot.getViewBox().viewRange()[1]
    assert lo <= np.log10(1.0 / 20_050) and hi >= 0.0     # the whole loss in view
    panel.log_box.setChecked(False)                        # linear: the series start over
    np.testing.assert_allclose(panel.train_curve.getData()[1], 1.0 / np.arange(1, 20_051))


def test_fast_image_item_renders_like_pyqtgraph(qtbot):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((20, 30)).astype(np.float32)
    img[3, 4] = np.nan
    out = []
    for cls in (pg.ImageItem, FastImageItem):
        it = cls(axisOrder="row-major")
        it.setColorMap(colormap("RdBu_r"))
        it.setImage(img, levels=(-2, 2), autoLevels=False)
        it.render()
        q = it.qimage.convertToFormat(it.qimage.Format.Format_ARGB32)
        a = np.array(q.constBits()).reshape(20, q.bytesPerLine() // 4, 4)[:, :30]
        out.append(a.astype(int))
    ok = np.ones((20, 30), bool)
    ok[3, 4] = False                                       # NaN: transparent in both
    assert np.abs(out[0][ok] - out[1][ok]).max() == 0
    assert out[1][3, 4, 3] == 0


def test_text_line_and_set_ticks(qtbot):
    line = TextLine("a")
    qtbot.addWidget(line)
    line.resize(200, 20)
    hint = line.minimumSizeHint()
    line.setText("a much longer text than before, many times over " * 5)
    assert line.minimumSizeHint() == hint                  # no new geometry to lay out
    assert line.text().startswith("a much longer")
    axis = pg.AxisItem("bottom")
    set_ticks(axis, [[(0, "a")]])
    axis.picture = "kept"                                  # the cached picture ...
    set_ticks(axis, [[(0, "a")]])
    assert axis.picture == "kept"                          # ... survives the same ticks


def test_char_grid_colours_cells_and_finds_them(qtbot):
    grid = CharGrid(["#ff0000", "#0000ff"], ["#ffffff", "#000000"])
    qtbot.addWidget(grid)
    grid.resize(300, 200)
    grid.show()
    grid.set_labels([list("ab\u21b5cd"), list("xyz")])
    grid.set_colors([np.array([0, 1, 0, 1, 0]), np.array([1, 1, 0])])
    img = grid.grab().toImage()
    r = grid.cell_rect(0, 1)
    assert img.pixelColor(r.left() + 1, r.top() + 1).name() == "#0000ff"
    assert grid.cell_at(r.center()) == (0, 1)
    assert grid.cell_rect(0, 3).top() > r.top()            # a new line after the newline
    assert grid.cell_at(QPoint(1, 199)) is None
    assert grid.toPlainText().splitlines()[1] == "xyz"
    with qtbot.waitSignal(grid.clicked) as sig:
        qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cell_rect(1, 2).center())
    assert sig.args == [1, 2]


def test_scheduler_paces_to_its_budget_and_sets_the_snapshot_demand():
    s = _schedule.RedrawScheduler()
    s.fixed_budget = 0.25
    t, cpu, proc = 0.0, 0.0, 0.0
    s._mark = (t, cpu, proc)
    for _ in range(20):                                    # GUI busy 60%, training 1.5 cores
        t += 0.5
        cpu += 0.3
        proc += 0.3 + 0.75
        s._measure(t, cpu, proc)
    assert s.pace > 1.5 and s.others == pytest.approx(1.5, rel=0.01)
    for _ in range(40):                                    # idle GUI: back to full rate
        t += 0.5
        proc += 0.75
        s._measure(t, cpu, proc)
    assert s.pace == 1.0
    s.fixed_budget = None
    s._measure(t + 0.5, cpu, proc + 0.75)
    assert s.budget == s.BUSY_BUDGET                       # training flat out
    for _ in range(6):
        t += 0.5
        proc += 0.05
        s._measure(t, cpu, proc)
    assert s.budget == s.IDLE_BUDGET                       # paused / capped: the GUI may draw
    assert _schedule.MIN_SNAPSHOT_HZ <= _schedule.snapshot_demand() <= \
        _schedule.MAX_SNAPSHOT_HZ

    class Window:                     # training flat out on a machine busy with others:
        flat_out = True               # the threads get few cores, the window knows better

        def trains_flat_out(self):
            return self.flat_out
    w = Window()
    s.add_training_hint(w.trains_flat_out)
    t += 0.5
    s._measure(t, cpu, proc + 0.05)
    assert s.budget == s.BUSY_BUDGET
    w.flat_out = False
    t += 0.5
    s._measure(t, cpu, proc + 0.1)
    assert s.budget == s.IDLE_BUDGET
    w.flat_out = True
    del w                                                  # a closed window says nothing
    t += 0.5
    s._measure(t, cpu, proc + 0.15)
    assert s.budget == s.IDLE_BUDGET
    s.deleteLater()


class _Counting(Panel):
    object_name = "counting_test_panel"

    def build(self):
        self.calls = 0

    def redraw(self, snap):
        self.calls += 1
        return False if self.calls % 2 else None


def test_a_redraw_that_draws_nothing_is_not_a_frame(qtbot):
    s = TrainingSession(SessionConfig(task="sine", hidden=4, seq_len=5, batch=2,
                                      probe_size=1))
    panel = _Counting(UnitSelection())
    qtbot.addWidget(panel)
    snap = s.snapshot()
    for i in range(4):
        panel.update_snapshot(snap)
        panel.drawn = None
        panel.redraw_now()
    assert panel.calls == 4 and panel.frames == 2 and panel.skipped == 2


def test_session_snapshot_rate_follows_the_owner_up_to_its_cap():
    s = TrainingSession(SessionConfig(task="sine", hidden=4, seq_len=5, batch=2),
                        snapshot_hz=30)
    s.set_snapshot_rate(10)
    assert s.snapshot_interval == pytest.approx(0.1)
    s.set_snapshot_rate(500)                               # never above snapshot_hz
    assert s.snapshot_interval == pytest.approx(1 / 30)
    every = TrainingSession(SessionConfig(task="sine", hidden=4, seq_len=5, batch=2),
                            snapshot_hz=0)
    every.set_snapshot_rate(10)                            # 0 = every step: left alone
    assert every.snapshot_interval == 0.0
