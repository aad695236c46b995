"""batched_layout: one layout pass for many plots, the same grid as pyqtgraph's own."""

import pyqtgraph as pg
import pytest

from rnnviewer.ui.panels._layout_batch import batched_layout


def _grid(qtbot, batched):
    view = pg.GraphicsLayoutWidget()
    qtbot.addWidget(view)
    view.resize(600, 400)
    layout = view.ci.layout
    calls = []
    real = type(layout).activate

    def counted():
        calls.append(1)
        real(layout)

    layout.activate = counted          # counts pyqtgraph's own per-item activations
    if batched:
        with batched_layout(view):
            plots = [view.addPlot(row=r, col=c) for r in range(2) for c in range(3)]
    else:
        plots = [view.addPlot(row=r, col=c) for r in range(2) for c in range(3)]
    assert vars(layout)["activate"] is counted   # batched_layout put it back
    del layout.activate
    view.show()
    qtbot.waitExposed(view)
    return [p.geometry() for p in plots], len(calls), view


def test_same_grid_with_one_pass(qtbot):
    plain, n_plain, _ = _grid(qtbot, batched=False)
    batched, n_batched, view = _grid(qtbot, batched=True)
    assert n_plain == 6 and n_batched == 1       # one pass instead of one per plot
    assert batched == plain
    assert "activate" not in vars(view.ci.layout)          # the method is restored
    assert view.updatesEnabled()


def test_restored_after_an_error(qtbot):
    view = pg.GraphicsLayoutWidget()
    qtbot.addWidget(view)
    with pytest.raises(RuntimeError):
        with batched_layout(view):
            view.addPlot(row=0, col=0)
            raise RuntimeError("boom")
    assert "activate" not in vars(view.ci.layout)
    assert view.updatesEnabled()
    assert len(view.ci.items) == 1
