"""Dock panels: the Panel base class, the shared unit selection, and the registry.

Adding a panel: write `rnnviewer/ui/panels/<name>.py` with a `Panel` subclass decorated
with `@register_panel`, and add "<name>" to PANEL_MODULES below. The main window makes
one dock per registered panel, lists it in the View menu, feeds it every snapshot and
offers its image and data export.

    @register_panel
    class WeightsPanel(Panel):
        title = "Weights"                  # dock title and View menu entry
        object_name = "weights"            # stable id: dock layout, export file names
        def build(self): ...               # create widgets and plot items once
        def redraw(self, snap): ...        # update items in place from the newest snapshot
        def data_arrays(self): ...         # name -> array behind the picture (export)
"""

import csv
import importlib
import logging
import math
import time
import traceback
import weakref
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPoint, QRectF, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPainter, QResizeEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

log = logging.getLogger(__name__)

# Modules under rnnviewer/ui/panels/ that define panels (one line per panel module).
PANEL_MODULES = (
    "curves",
    "trajectories", "state_space", "activations", "neuron_view", "gates",
    "weights", "spectrum", "histograms", "saliency", "grad_through_time",
    "maximize", "fixed_points", "samples",
)

_REGISTRY = []                 # Panel subclasses, in registration order
PANEL_ERRORS = {}              # module name -> traceback text of a panel that failed to import


def register_panel(cls):
    """Class decorator: make `cls` a dock panel of the main window."""
    if not (isinstance(cls, type) and issubclass(cls, Panel)):
        raise TypeError(f"{cls!r} is not a Panel subclass")
    if any(c.object_name == cls.object_name and c is not cls for c in _REGISTRY):
        raise ValueError(f"a panel named {cls.object_name!r} is already registered")
    if cls not in _REGISTRY:
        _REGISTRY.append(cls)
    return cls


def registered_panels():
    """Every registered Panel class, importing the PANEL_MODULES first.

    A module that fails to import is skipped (the app still starts) and recorded in
    PANEL_ERRORS, which `rnnviewer --self-test` reports as a failure.
    """
    for name in PANEL_MODULES:
        if name in PANEL_ERRORS:
            continue
        try:
            importlib.import_module(f"{__name__}.{name}")
        except Exception:
            PANEL_ERRORS[name] = traceback.format_exc()
            log.error("panel module %s failed to import:\n%s", name, PANEL_ERRORS[name])
    return list(_REGISTRY)


class UnitSelection(QObject):
    """The hidden unit selected anywhere in the app; every panel follows it."""

    unit_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._unit = 0

    @property
    def unit(self):
        return self._unit

    @Slot(int)
    def select(self, unit):
        unit = int(unit)
        if unit != self._unit:
            self._unit = unit
            self.unit_selected.emit(unit)


# The RedrawScheduler (when panels draw, paced to the GUI thread's budget) and the
# cached axes / steady ranges that keep frames cheap: ui/panels/_schedule.py, _perf.py.
from rnnviewer.ui.panels._perf import cache_axes  # noqa: E402
from rnnviewer.ui.panels._schedule import (SLACK, RedrawScheduler, scheduler,  # noqa: E402,F401
                                         visible)


class Panel(QWidget):
    """Base class of dock panels.

    The window calls `update_snapshot(snap)` for every snapshot; the panel only keeps
    the newest, and the RedrawScheduler draws it when the panel is on screen ("latest
    wins"), so a slow panel never slows training, other panels, or the event loop. Subclasses implement `build`,
    `redraw(snap)` and `data_arrays()`, and may override `export_item`,
    `on_unit_selected` and `on_reset`.
    """

    title = "Panel"
    object_name = "panel"
    tooltip = ""
    default_area = Qt.DockWidgetArea.RightDockWidgetArea
    default_visible = True
    own_row = False            # True: a dock of its own; False: tabbed with the area's group
    tab_with = None            # object_name of a panel to tab this one with (overrides)
    redraw_interval_ms = 33    # at most about 30 frames a second
    _live = weakref.WeakSet()  # every Panel instance (the scheduler draws those on screen)

    analyses = ()              # worker-side analyses the panel draws (training/analyses.py)

    def __init__(self, selection=None, parent=None, *, lazy=False):
        super().__init__(parent)
        self.built = False             # build() has run (lazy panels: when first needed)
        self._unit_changed = False     # the selection changed while not built yet
        self.setObjectName(f"panel_{self.object_name}")
        if self.tooltip:
            self.setToolTip(self.tooltip)
        self.selection = selection if selection is not None else UnitSelection(self)
        self.snapshot = None           # the newest snapshot received
        self.drawn = None              # the snapshot last drawn
        self.frames = 0                # redraws done (the GUI benchmark counts them)
        self.skipped = 0               # redraw() calls that drew nothing new (returned False)
        self.error = None              # traceback of the last failed redraw
        self.redraw_seconds = 0.0      # smoothed duration of a redraw (frame pacing)
        Panel._live.add(self)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(2, 2, 2, 2)
        if not lazy:
            self.ensure_built()
        self.selection.unit_selected.connect(self._on_selection_unit_selected)
        self.next_due = 0.0            # perf_counter time from which a redraw may happen
        self.interval = self.redraw_interval_ms / 1000
        scheduler().add(self)

    # ------------------------------------------------------------ lazy construction
    def ensure_built(self):
        """Run build() once. The main window makes its panels with lazy=True: a panel builds
        its widgets when it first comes on screen (shown, or its tab raised) or is first
        used (drawn, exported, or asked for anything build() makes), so tabs behind others
        and closed docks cost nothing while the window starts up."""
        if self.built:
            return
        self.built = True
        self.build()
        cache_axes(self)               # axes repaint only when they change (_perf.py)
        if self._unit_changed:
            self._unit_changed = False
            self.on_unit_selected(self.selection.unit)
        if self.isVisible():           # the resize it missed (subclasses arrange by size)
            self.resizeEvent(QResizeEvent(self.size(), self.size()))

    def event(self, event):
        if not self.built:
            kind = event.type()
            if kind == QEvent.Type.Resize:
                return True            # subclasses' resizeEvent needs what build() makes
            if kind == QEvent.Type.Paint:
                QTimer.singleShot(0, self._on_first_paint)   # on screen: build next turn
        return super().event(event)

    @Slot()
    def _on_first_paint(self):
        if visible(self):
            self.ensure_built()

    def __getattr__(self, name):
        # Only reached for a missing attribute: one that build() makes, asked for before
        # the panel was built (e.g. another panel reading its plot). Build, then retry.
        if name.startswith("__") or self.__dict__.get("built", True):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.ensure_built()
        return getattr(self, name)

    def showEvent(self, event):
        if visible(self):             # not a tab behind another one
            self.ensure_built()
        super().showEvent(event)

    # ------------------------------------------------------------ subclass API
    def build(self):
        """Create the widgets and plot items (once)."""

    def redraw(self, snap):
        """Draw `snap` (the newest snapshot). Update items in place; never block long.
        Return False when nothing new was drawn (a throttled computation not due yet:
        set self.drawn = None to be called again); it does not count as a frame."""

    def data_arrays(self):
        """name -> ndarray: the data behind the current picture, for export."""
        return {}

    def export_item(self):
        """The pyqtgraph item or scene to export as a picture (None: grab the widget)."""
        return None

    def export_legends(self):
        """[(PlotItem, [(sample, name), ...]), ...]: legends drawn into the exported picture
        only, for keys the panel shows outside its plots (in its tool bar): a sample is an
        item whose `opts` give the pen and symbol (a PlotDataItem never added to a plot;
        pen None for a text-only row). The live panel stays as it is."""
        return []

    def on_unit_selected(self, unit):
        """The selected unit changed (anywhere in the app)."""

    def on_reset(self):
        """A new run started (reset or another session): forget accumulated state."""

    def on_new_run(self):
        """A new run started, built or not: forget the history a panel records without
        its widgets (on_reset follows if the panel is built)."""

    def sizeHint(self):
        return QSize(480, 320)

    # ------------------------------------------------------------ machinery
    def update_snapshot(self, snap):
        """Keep `snap` as the newest; it is drawn on the next timer tick."""
        if self.snapshot is not None and snap.run_id != self.snapshot.run_id:
            self.on_new_run()
            if self.built:
                self.on_reset()        # (a panel built later starts from a clean state)
        self.snapshot = snap
        scheduler().poke()

    def redraw_now(self, raise_errors=True):
        """Draw the newest snapshot now if it was not drawn yet (used by exports and tests).

        With raise_errors=False (the timer) an exception is logged once and kept in
        `self.error`, so one broken panel never takes the window down.
        """
        snap = self.snapshot
        if snap is not None and snap is not self.drawn:
            self.ensure_built()
            self.drawn = snap
            try:
                drew = self.redraw(snap)
            except Exception:
                text = traceback.format_exc()
                if raise_errors:
                    raise
                if text != self.error:
                    log.error("panel %s failed to draw step %s:\n%s", self.object_name,
                              snap.step, text)
                self.error = text
                return
            self.error = None
            if drew is False:          # a throttled computation, not due yet: no frame
                self.skipped += 1
            else:
                self.frames += 1

    def is_shown(self):
        """True if some of the panel is on screen (not closed, not a hidden tab)."""
        return visible(self)

    def timed_redraw(self, now=None):
        """Redraw (called by the scheduler) and set when the next redraw may come: after
        the scheduler's interval (redraw_interval_ms times its pace, see _schedule.py)."""
        t0 = time.perf_counter() if now is None else now
        self.redraw_now(raise_errors=False)
        cost = time.perf_counter() - t0
        self.redraw_seconds = 0.7 * self.redraw_seconds + 0.3 * cost
        self.interval = min(scheduler().interval(self), 2.0)
        self.next_due = t0 + SLACK * self.interval

    @Slot(int)
    def _on_selection_unit_selected(self, unit):
        if self.built:
            self.on_unit_selected(unit)
        else:
            self._unit_changed = True  # ensure_built() passes it on

    def select_unit(self, unit):
        """Select `unit` in every panel."""
        self.selection.select(unit)

    # ------------------------------------------------------------ export
    def export_image(self, path):
        """Save the panel's picture as PNG (or JPEG) or SVG, chosen by the file suffix.

        PNG goes through pyqtgraph's ImageExporter when `export_item()` gives a scene or
        item (else the widget is grabbed); SVG is drawn by Qt's QSvgGenerator (pyqtgraph's
        SVGExporter fails on the path syntax of Qt 6.11).
        """
        path = Path(path)
        self.ensure_built()
        self.redraw_now()
        item = self.export_item()
        legends = self._add_export_legends() if item is not None else []
        try:
            if path.suffix.lower() == ".svg":
                self._export_svg(path, item)
            elif item is not None:
                import pyqtgraph.exporters as pgx
                exporter = pgx.ImageExporter(item)
                exporter.parameters()["width"] = max(int(self.width()), 400)
                exporter.export(str(path))
            elif not self.grab().save(str(path)):
                raise OSError(f"{path}: could not write the image")
        finally:
            for legend in legends:
                if legend.scene() is not None:
                    legend.scene().removeItem(legend)
        if not path.exists():
            raise OSError(f"{path}: could not write the image")
        return path

    def _add_export_legends(self):
        """The export_legends() as LegendItems, each in the corner of its plot that covers
        the fewest data points (matplotlib's loc="best", over the four corners)."""
        added = []
        for plot, entries in self.export_legends():
            vb = plot.getViewBox()
            legend = pg.LegendItem(labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 215),
                                   pen=pg.mkPen(190, 190, 190))
            legend.setParentItem(vb)
            for sample, name in entries:
                legend.addItem(sample, name)
            # rows: at most 3 and at most a third of the plot's height; then fewer columns
            # while the legend is wider than most of the plot
            row_h = legend.boundingRect().height() / max(len(entries), 1)
            rows = max(1, min(3, int(vb.height() / 3 // max(row_h, 1.0))))
            cols = max(1, math.ceil(len(entries) / rows))
            legend.setColumnCount(cols)
            while cols > 1 and legend.boundingRect().width() > 0.9 * vb.width():
                cols -= 1
                legend.setColumnCount(cols)
            rect = legend.boundingRect()
            corner = emptiest_corner(view_points(vb), vb.width(), vb.height(),
                                     rect.width() + LEGEND_MARGIN, rect.height() + LEGEND_MARGIN)
            m = LEGEND_MARGIN
            legend.anchor(itemPos=corner, parentPos=corner,
                          offset=(m if corner[0] == 0 else -m, m if corner[1] == 0 else -m))
            added.append(legend)
        return added

    def _export_svg(self, path, item):
        from PySide6.QtSvg import QSvgGenerator
        from PySide6.QtWidgets import QGraphicsScene
        if isinstance(item, QGraphicsScene):
            rect = item.sceneRect()
        else:
            rect = QRectF(0, 0, self.width(), self.height())
        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(rect.size().toSize())
        gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
        gen.setTitle(self.title)
        painter = QPainter(gen)
        try:
            if isinstance(item, QGraphicsScene):
                item.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
            else:
                self.render(painter, QPoint(0, 0))   # PySide6 6.11 needs the offset
        finally:
            painter.end()

    def export_data(self, path):
        """Save `data_arrays()` as .npz or .csv (chosen by the suffix)."""
        path = Path(path)
        self.ensure_built()
        self.redraw_now()
        arrays = {k: np.asarray(v) for k, v in self.data_arrays().items()}
        if not arrays:
            raise ValueError(f"{self.title}: no data to export yet")
        if path.suffix.lower() == ".npz":
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        else:
            write_csv(path, arrays)
        return path


LEGEND_MARGIN = 6        # pixels between an export legend and its plot's corner
CORNERS = ((1, 0), (0, 0), (1, 1), (0, 1))   # (x, y) of the view: right top first


def view_points(viewbox):
    """(N, 2) pixel positions (x right, y down, in the view box) of the data of the items
    in `viewbox` that have getData() (finite points inside the view only; a series whose x
    never decreases, a line, also at every 2 pixels along it), and a 4-pixel grid over
    its text and legends."""
    r = viewbox.viewRect()
    w, h = viewbox.width(), viewbox.height()
    out = []
    for item in viewbox.addedItems:
        get = getattr(item, "getData", None)
        if get is None or not item.isVisible():
            continue
        try:
            x, y = get()
        except (TypeError, ValueError):
            continue
        if x is None or y is None or not len(x):
            continue
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(x) != len(y) or not r.width() or not r.height():
            continue
        px = (x - r.left()) / r.width() * w
        py = (r.bottom() - y) / r.height() * h               # view y grows upwards
        ok = np.isfinite(px) & np.isfinite(py)
        px, py = px[ok], py[ok]
        if len(px) > 1 and np.all(np.diff(px) >= 0):        # a line over x: every 2 pixels
            grid = np.arange(px[0], px[-1], 2.0)
            px, py = np.concatenate([grid, px]), np.concatenate([np.interp(grid, px, py), py])
        inside = (px >= 0) & (px <= w) & (py >= 0) & (py <= h)
        out.append(np.stack([px[inside], py[inside]], axis=1))
    for item in list(viewbox.addedItems) + viewbox.childItems():   # text a legend must not
        if isinstance(item, (pg.TextItem, pg.LegendItem)) and item.isVisible():   # cover
            rect = item.mapRectToItem(viewbox, item.boundingRect())
            gx, gy = np.meshgrid(np.arange(rect.left(), rect.right(), 4.0),
                                 np.arange(rect.top(), rect.bottom(), 4.0))
            out.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


def emptiest_corner(points, width, height, box_w, box_h):
    """Of CORNERS (fractions of width, height), the one whose box_w x box_h box holds the
    fewest of `points` (N, 2) (pixels); the first such in CORNERS on a tie."""
    best, fewest = CORNERS[0], None
    for cx, cy in CORNERS:
        x0 = width - box_w if cx else 0.0
        y0 = height - box_h if cy else 0.0
        inside = ((points[:, 0] >= x0) & (points[:, 0] <= x0 + box_w) &
                  (points[:, 1] >= y0) & (points[:, 1] <= y0 + box_h))
        n = int(inside.sum())
        if fewest is None or n < fewest:
            best, fewest = (cx, cy), n
    return best


def write_csv(path, arrays):
    """Arrays to CSV: 1-D arrays of one length as columns; one 2-D array as a matrix;
    anything else in long form (array, index..., value)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        vals = list(arrays.values())
        if all(a.ndim == 1 for a in vals) and len({len(a) for a in vals}) == 1:
            w.writerow(list(arrays))
            w.writerows(zip(*(a.tolist() for a in vals)))
        elif len(vals) == 1 and vals[0].ndim == 2:
            a = vals[0]
            w.writerow([f"{list(arrays)[0]}[:, {j}]" for j in range(a.shape[1])])
            w.writerows(a.tolist())
        else:
            nd = max(a.ndim for a in vals)
            w.writerow(["array"] + [f"i{d}" for d in range(nd)] + ["value"])
            for name, a in arrays.items():
                for idx in np.ndindex(*a.shape):
                    w.writerow([name, *idx, *([""] * (nd - len(idx))), a[idx].item()])
