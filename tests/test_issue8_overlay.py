"""The fixed-point overlay as painted on the state-space panel (issue 8): each kind shows
in its own colour, the unstable directions add visible line pixels, and LSTM points follow
the panel between the h and [h, c] spaces. Networks built so the answer is known: W_hh
(the candidate block) = a I, zero input weights and biases, H = 2."""

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from rnnviewer.engine import Model
from rnnviewer.training.analyses_dynamics import kind_counts
from rnnviewer.training.session import SessionConfig, TrainingSession, build_task
from rnnviewer.ui.panels import UnitSelection
from rnnviewer.ui.panels.fixed_points import OVERLAY, STYLES, FixedPointsPanel
from rnnviewer.ui.panels.state_space import StateSpacePanel

H, N = 2, 7          # hidden units; the probe is an N x N grid of states (P = T = N)


def constructed_snapshot(cell, a):
    """A real snapshot of a tiny flipflop session, its parameters replaced by the
    construction and its probe states by a grid over [-0.9, 0.9]^2 (c = tanh(a h))."""
    config = SessionConfig(task="flipflop", cell=cell, hidden=H, seq_len=N, batch=2,
                           probe_size=N)
    task = build_task(config)
    model = Model(cell, task.n_in, H, task.n_out, seed=0, backend="numpy")
    snap = TrainingSession(config, task=task, model=model).snapshot()
    params = {k: np.zeros_like(v) for k, v in model.params.items()}
    block = 0 if cell == "rnn" else 2                    # the candidate (g / n) block
    params["W_hh"][block * H:(block + 1) * H] = a * np.eye(H)
    g = np.linspace(-0.9, 0.9, N)
    grid = np.stack(np.meshgrid(g, 0.7 * g, indexing="ij"), -1)      # (N, N, 2)
    probe = dataclasses.replace(snap.probe, h=grid, c=np.tanh(a * grid) if cell == "lstm"
                                else None, x=np.zeros((N, N, task.n_in)))
    return dataclasses.replace(snap, params=MappingProxyType(params), probe=probe)


def panels(qtbot, snap):
    sel = UnitSelection()
    ss = StateSpacePanel(sel)
    fp = FixedPointsPanel(sel)
    for p in (ss, fp):
        qtbot.addWidget(p)
    ss.resize(640, 520)
    ss.show()
    fp.show()
    ss.update_snapshot(snap)
    ss.redraw_now()
    fp.starts_spin.setValue(64)
    fp.update_snapshot(snap)
    fp.redraw_now()
    assert fp.job is not None
    qtbot.waitUntil(lambda: fp.job is None, timeout=20000)
    assert fp.result is not None, fp.info.text()
    assert fp.state_space_panel() is ss
    return ss, fp


def pixels(widget, color, tol=12):
    """How many pixels of the widget's grab are within tol (per channel) of color."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    rgb = buf.reshape(h, img.bytesPerLine())[:, :4 * w].reshape(h, w, 4)[:, :, 2::-1]
    want = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.all(np.abs(rgb.astype(int) - want) <= tol, axis=-1)))


def off_screen(ss):
    """Overlay kinds with a point outside the state-space panel's visible range."""
    (x0, x1), (y0, y1) = ss.plot.getViewBox().viewRange()
    out = []
    for name, ov in ss._overlays.items():
        xs, ys = ov["scatter"].getData()
        if not np.all((xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)):
            out.append(name)
    return out


def test_points_found_off_the_trajectories_are_brought_into_view(qtbot):
    """The stable points (+-0.96, +-0.96) lie beyond the probe states in y (+-0.63):
    with training paused no new snapshot refits the view, so Find must."""
    ss, fp = panels(qtbot, constructed_snapshot("rnn", 2.0))
    assert ss._auto and len(ss._overlays) >= 3
    assert off_screen(ss) == []


def test_kinds_are_painted_in_their_colours_with_direction_lines(qtbot):
    ss, fp = panels(qtbot, constructed_snapshot("rnn", 2.0))
    assert kind_counts(fp.result["kind"]) == {"stable": 4, "saddle": 4, "unstable": 1}
    fp.table.clearSelection()                          # no halo over the points
    colors = {k: STYLES[k][1] for k in ("stable", "saddle", "unstable")}
    qtbot.mouseClick(ss.fit_button, Qt.MouseButton.LeftButton)
    assert not off_screen(ss)
    on = {k: pixels(ss, c) for k, c in colors.items()}
    # the unstable directions: hiding the line items takes away pixels of the point's colour
    for kind in ("saddle", "unstable"):
        ss._overlays[OVERLAY + kind]["lines"].setVisible(False)
    no_lines = {k: pixels(ss, c) for k, c in colors.items()}
    assert on["saddle"] - no_lines["saddle"] > 4 * 20       # 4 lines, each tens of pixels
    assert on["unstable"] - no_lines["unstable"] > 2 * 10   # 2 lines, partly under the star
    assert on["stable"] == no_lines["stable"]
    # without the overlay none of the kinds' colours is on screen beyond stray pixels
    fp.overlay_box.setChecked(False)
    off = {k: pixels(ss, c) for k, c in colors.items()}
    for kind in colors:
        assert on[kind] > 4 * off[kind] + 40, (kind, on[kind], off[kind])


@pytest.mark.parametrize("space", ["h", "hc"])
def test_lstm_points_follow_the_state_space(qtbot, space):
    ss, fp = panels(qtbot, constructed_snapshot("lstm", 6.0))
    r = fp.result
    assert kind_counts(r["kind"]) == {"stable": 4, "saddle": 5, "unstable": 0}
    assert r["points"].shape == (9, 2 * H)
    ss.space_box.setCurrentIndex(ss.space_box.findData(space))
    assert ss.space_box.currentData() == space
    stable = r["points"][r["kind"] == "stable"]                  # (4, 2H): [h, c]
    got = np.c_[ss._overlays[OVERLAY + "stable"]["scatter"].getData()]
    np.testing.assert_allclose(np.sort(got, 0), np.sort(ss.project(stable), 0), atol=1e-9)
    seg = ss._overlays[OVERLAY + "saddle"]["segments"]             # (M, 2, 2H)
    xy = np.c_[ss._overlays[OVERLAY + "saddle"]["lines"].getData()]
    np.testing.assert_allclose(xy, ss.project(seg.reshape(-1, 2 * H)), atol=1e-9)
    assert len(seg) == int(r["n_unstable"][r["kind"] == "saddle"].sum())
    assert pixels(ss, STYLES["stable"][1]) > 40
