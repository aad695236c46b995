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
import time
import traceback
import weakref
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPoint, QRectF, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

log = logging.getLogger(__name__)

# Modules under rnnviewer/ui/panels/ that define panels (one line per panel module).
PANEL_MODULES = (
    "curves",
    "trajectories", "state_space", "activations", "neuron_view", "gates",
    "weights", "spectrum", "histograms", "saliency", "grad_through_time",
    "maximize", "fixed_points",
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


class RedrawScheduler(QObject):
    """Draws the panels: at most one panel per event-loop turn, the most overdue first.

    Spreading the redraws (and the painting each one causes) over separate turns keeps
    the event loop's latency near the cost of one panel instead of all of them. Each
    panel is due again `interval` after it was drawn, where interval grows with what its
    redraw costs and with how many panels are on screen, and is scaled by `pace` while
    the GUI thread is busy (more than half of its time computing, measured with
    time.thread_time: waiting for the CPU or the GIL does not count). One per process.
    """

    TICK_MS = 4
    PACE_EVERY = 0.1               # seconds between measurements of the GUI thread
    HIGH, LOW = 0.5, 0.3           # busy shares that slow drawing down / speed it up
    MAX_PACE = 20.0

    def __init__(self):
        super().__init__()
        self.pace = 1.0
        self.busy = 0.0            # smoothed share of wall time the GUI thread computes
        self._mark = (time.perf_counter(), time.thread_time())
        self._timer = QTimer(self)
        self._timer.setInterval(self.TICK_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    @Slot()
    def _on_timer_timeout(self):
        now = time.perf_counter()
        self._measure(now)
        live = list(Panel._live)
        if not live:
            self._timer.stop()         # restarted by the next panel
            return
        best = None
        for p in live:
            try:
                if p.snapshot is None or p.snapshot is p.drawn or now < p.next_due:
                    continue
            except RuntimeError:
                continue
            if (best is None or p.next_due < best.next_due) and _visible(p):
                best = p
        if best is not None:
            best.timed_redraw(now)

    def _measure(self, now):
        wall = now - self._mark[0]
        if wall < self.PACE_EVERY:
            return
        cpu = time.thread_time()
        share = min(1.0, (cpu - self._mark[1]) / wall)
        self.busy = 0.7 * self.busy + 0.3 * share
        if self.busy > self.HIGH:
            self.pace = min(self.pace * 1.2, self.MAX_PACE)
        elif self.busy < self.LOW:
            self.pace = max(self.pace / 1.1, 1.0)
        self._mark = (now, cpu)


_SCHEDULER = []


def scheduler():
    """The process's RedrawScheduler (made with the first panel)."""
    if not _SCHEDULER:
        _SCHEDULER.append(RedrawScheduler())
    s = _SCHEDULER[0]
    if not s._timer.isActive():
        s._timer.start()
    return s


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

    def __init__(self, selection=None, parent=None):
        super().__init__(parent)
        self.setObjectName(f"panel_{self.object_name}")
        if self.tooltip:
            self.setToolTip(self.tooltip)
        self.selection = selection if selection is not None else UnitSelection(self)
        self.snapshot = None           # the newest snapshot received
        self.drawn = None              # the snapshot last drawn
        self.frames = 0                # redraws done (the GUI benchmark counts them)
        self.error = None              # traceback of the last failed redraw
        self.redraw_seconds = 0.0      # smoothed duration of a redraw (frame pacing)
        Panel._live.add(self)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(2, 2, 2, 2)
        self.build()
        self.selection.unit_selected.connect(self._on_selection_unit_selected)
        self.next_due = 0.0            # perf_counter time from which a redraw may happen
        self.interval = self.redraw_interval_ms / 1000
        scheduler()

    # ------------------------------------------------------------ subclass API
    def build(self):
        """Create the widgets and plot items (once)."""

    def redraw(self, snap):
        """Draw `snap` (the newest snapshot). Update items in place; never block long."""

    def data_arrays(self):
        """name -> ndarray: the data behind the current picture, for export."""
        return {}

    def export_item(self):
        """The pyqtgraph item or scene to export as a picture (None: grab the widget)."""
        return None

    def on_unit_selected(self, unit):
        """The selected unit changed (anywhere in the app)."""

    def on_reset(self):
        """A new run started (reset or another session): forget accumulated state."""

    def sizeHint(self):
        return QSize(480, 320)

    # ------------------------------------------------------------ machinery
    def update_snapshot(self, snap):
        """Keep `snap` as the newest; it is drawn on the next timer tick."""
        if self.snapshot is not None and snap.run_id != self.snapshot.run_id:
            self.on_reset()
        self.snapshot = snap

    def redraw_now(self, raise_errors=True):
        """Draw the newest snapshot now if it was not drawn yet (used by exports and tests).

        With raise_errors=False (the timer) an exception is logged once and kept in
        `self.error`, so one broken panel never takes the window down.
        """
        snap = self.snapshot
        if snap is not None and snap is not self.drawn:
            self.drawn = snap
            try:
                self.redraw(snap)
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
            self.frames += 1

    def is_shown(self):
        """True if some of the panel is on screen (not closed, not a hidden tab)."""
        return _visible(self)

    def timed_redraw(self, now=None):
        """Redraw (called by the scheduler) and set when the next redraw may come:
        slow panels redraw less often, so that all shown panels together take about half
        of the GUI thread, and all of them less often while it is busy."""
        t0 = time.perf_counter() if now is None else now
        self.redraw_now(raise_errors=False)
        cost = time.perf_counter() - t0
        self.redraw_seconds = 0.7 * self.redraw_seconds + 0.3 * cost
        shown = sum(1 for p in list(Panel._live) if _visible(p)) or 1
        interval = max(self.redraw_interval_ms / 1000, 2.0 * self.redraw_seconds * shown)
        self.interval = min(interval * scheduler().pace, 2.0)
        self.next_due = t0 + self.interval

    @Slot(int)
    def _on_selection_unit_selected(self, unit):
        self.on_unit_selected(unit)

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
        self.redraw_now()
        item = self.export_item()
        if path.suffix.lower() == ".svg":
            self._export_svg(path, item)
        elif item is not None:
            import pyqtgraph.exporters as pgx
            exporter = pgx.ImageExporter(item)
            exporter.parameters()["width"] = max(int(self.width()), 400)
            exporter.export(str(path))
        elif not self.grab().save(str(path)):
            raise OSError(f"{path}: could not write the image")
        if not path.exists():
            raise OSError(f"{path}: could not write the image")
        return path

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


def _visible(widget):
    """Visible and not covered: a dock tabbed behind another has an empty visible region."""
    try:
        return widget.isVisible() and not widget.visibleRegion().isEmpty()
    except RuntimeError:   # its C++ side is already deleted
        return False


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
