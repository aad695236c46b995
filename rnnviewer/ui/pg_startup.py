"""pyqtgraph work that every plot paid for up front, deferred or skipped.

- ViewBox menus: every ViewBox built its right-click menu (two axis forms, about 5 ms of
  GUI-thread time each: 0.2 s for the app's 41 plots) whether or not anyone ever
  right-clicks. `install()` makes ViewBox create a `LazyViewBoxMenu` instead, which builds
  the real ViewBoxMenu the first time the menu is used.
- Axis labels: AxisItem re-set its label's HTML on every range change
  (`updateAutoSIPrefix`, about 2,000 times in the self-test: 0.12 s of QGraphicsTextItem
  .setHtml); the patched `_updateLabel` sets it only when the text changed.

Both keep pyqtgraph's behaviour; `install()` is idempotent and leaves pyqtgraph alone
when it does not have the expected shape (another version)."""

import importlib
import weakref

import pyqtgraph as pg

# the module (the package's `ViewBox` attribute is the class)
_vb_module = importlib.import_module("pyqtgraph.graphicsItems.ViewBox.ViewBox")

_INSTALLED = []


class LazyViewBoxMenu:
    """Stands in for a ViewBox's ViewBoxMenu until the menu is first used; then every
    attribute is the real menu's (`real`). A view list set before that is kept."""

    def __init__(self, view):
        self._view = weakref.ref(view)
        self._real = None
        self._views = None

    @property
    def built(self):
        return self._real is not None

    @property
    def real(self):
        """The ViewBoxMenu, built now if it was not."""
        if self._real is None:
            self._real = _INSTALLED[0](self._view())
            if self._views is not None:
                self._real.setViewList(self._views)
                self._views = None
        return self._real

    def setViewList(self, views):
        if self._real is None:
            self._views = list(views)
        else:
            self._real.setViewList(views)

    def setParent(self, parent):
        if self._real is not None:
            self._real.setParent(parent)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _update_label(self):
    """AxisItem._updateLabel without re-setting an unchanged label text."""
    html = self.labelString()
    if html != getattr(self, "_label_html", None):
        self.label.setHtml(html)
        self._label_html = html
    self._adjustSize()
    self.picture = None
    self.update()


def install():
    """Patch pyqtgraph (once per process). False if it does not look as expected."""
    if _INSTALLED:
        return True
    real = getattr(_vb_module, "ViewBoxMenu", None)
    axis = pg.AxisItem
    if real is None or not hasattr(real, "setViewList") or \
            not all(hasattr(axis, n) for n in ("_updateLabel", "labelString", "_adjustSize")):
        return False
    _INSTALLED.append(real)
    _vb_module.ViewBoxMenu = LazyViewBoxMenu
    axis._updateLabel = _update_label
    return True
