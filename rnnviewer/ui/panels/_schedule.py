"""When the panels draw: the RedrawScheduler (one per process).

Panels keep the newest snapshot; the scheduler draws the ones on screen that have one
not drawn yet, one panel per event-loop turn, the most overdue first: the paint that a
redraw causes runs before the next redraw, so the event loop's latency stays near the
cost of one panel's frame instead of all of them.

It is event-driven: a single-shot timer wakes it for the next panel that comes due, and
`poke()` (a new snapshot) wakes it at once; nothing runs while there is nothing to draw.
(A 4 ms polling timer took 3-4% of a core of the GUI thread with nothing to draw.)

Frame rate: a panel is due again `interval` after it was drawn: its `redraw_interval_ms`
(33 ms, so it follows snapshots arriving at up to 30 Hz) times the shared `pace`. The
pace holds the GUI thread's busy share (time.thread_time over wall time: everything the
thread does, painting included; waiting for the CPU or the GIL does not count) near
`BUDGET`, so that drawing leaves training its throughput: painting holds the GIL (PySide6
keeps it during C++ calls) and takes a core from the two training threads. Measured on 2
cores: the GUI thread busy 20% of the time left 83-85% of the headless training rate, 40%
left 60%. When the shown panels need more than the budget the pace slows all of them
evenly; it returns to 1 as soon as there is room.
"""

import time
import weakref

from PySide6.QtCore import QObject, Qt, QTimer, Slot

SLACK = 0.75             # a panel may draw this fraction of its interval after the last draw
IDLE_CHECK_MS = 150      # undrawn snapshots but no panel on screen: look again this often


def visible(widget):
    """Visible and not covered: a dock tabbed behind another has an empty visible region."""
    try:
        return widget.isVisible() and not widget.visibleRegion().isEmpty()
    except RuntimeError:   # its C++ side is already deleted
        return False


class RedrawScheduler(QObject):
    """Draws the panels on screen, paced to the GUI thread's budget (see the module)."""

    BUDGET = 0.22                # target busy share of the GUI thread
    PACE_EVERY = 0.25            # seconds between measurements of the busy share
    MAX_PACE = 20.0

    def __init__(self):
        super().__init__()
        self.panels = weakref.WeakSet()
        self.pace = 1.0
        self.busy = 0.0            # smoothed busy share of the GUI thread
        self.frames = 0            # redraws done
        self._mark = (time.perf_counter(), time.thread_time())
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._on_timer_timeout)

    def add(self, panel):
        self.panels.add(panel)

    def poke(self):
        """Something may be due now (a new snapshot): look at the next event-loop turn."""
        if not self._timer.isActive() or self._timer.remainingTime() > 0:
            self._timer.start(0)

    def stop(self):
        self._timer.stop()

    @Slot()
    def _on_timer_timeout(self):
        now = time.perf_counter()
        self._measure(now)
        best, waiting = None, False
        for p in list(self.panels):
            try:
                if p.snapshot is None or p.snapshot is p.drawn:
                    continue
            except RuntimeError:
                continue
            if not visible(p):
                waiting = True
                continue
            if best is None or p.next_due < best.next_due:
                best = p
        if best is None:
            if waiting:
                self._timer.start(IDLE_CHECK_MS)
            return
        if best.next_due > now:
            self._timer.start(max(1, int((best.next_due - now) * 1000 + 0.5)))
            return
        best.timed_redraw(now)
        self.frames += 1
        self._timer.start(0)       # the next panel (if any) after this one's paint

    def _measure(self, now):
        wall = now - self._mark[0]
        if wall < self.PACE_EVERY:
            return
        cpu = time.thread_time()
        share = min(1.0, (cpu - self._mark[1]) / wall)
        self._mark = (now, cpu)
        self.busy = 0.5 * self.busy + 0.5 * share
        ratio = self.busy / self.BUDGET
        if ratio > 1.05 or (ratio < 0.9 and self.pace > 1.0):
            step = min(max(ratio, 0.7), 1.4) ** 0.7      # damped proportional control
            self.pace = min(max(self.pace * step, 1.0), self.MAX_PACE)

    def interval(self, panel):
        """Seconds from one redraw of `panel` to the next, at the current pace."""
        return panel.redraw_interval_ms / 1000 * self.pace


_SCHEDULER = []


def scheduler():
    """The process's RedrawScheduler (made with the first panel)."""
    if not _SCHEDULER:
        _SCHEDULER.append(RedrawScheduler())
    return _SCHEDULER[0]
