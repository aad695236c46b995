"""Build many plots in a pg.GraphicsLayoutWidget with one layout pass instead of one each.

pyqtgraph's GraphicsLayout.addItem activates the whole grid layout after every item it
adds, so building N plots lays out (and resizes, and re-links the views of) 1, 2, ... N
plots: about 0.1 s of the weights panel's first draw. Inside `batched_layout(view)` those
activations are skipped and the view does not repaint; the layout is activated once on
leaving, so the result is the same grid, laid out once.
"""

from contextlib import contextmanager


def _skip():
    """Stands in for QGraphicsLayout.activate while a batch is being built."""


@contextmanager
def batched_layout(view):
    """Add items to `view` (a pg.GraphicsLayoutWidget) with one layout pass at the end."""
    layout = view.ci.layout
    shadowed = vars(layout).get("activate")        # an activate set on this object, if any
    updates = view.updatesEnabled()
    view.setUpdatesEnabled(False)
    layout.activate = _skip            # shadows the method on this layout object only
    try:
        yield
    finally:
        if shadowed is None:
            del layout.activate
        else:
            layout.activate = shadowed
        view.setUpdatesEnabled(updates)
        layout.activate()
