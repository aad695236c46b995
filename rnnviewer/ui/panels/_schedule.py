"""When the panels draw: the RedrawScheduler (one per process).

Panels keep the newest snapshot; the scheduler draws the ones on screen that have one
not drawn yet, one panel per event-loop turn, the most overdue first: the paint that a
redraw causes runs before the next redraw, so the event loop's latency stays near the
cost of one panel's frame instead of all of them.

It is event-driven: a single-shot timer wakes it for the next panel that comes due, and
`poke()` (a new snapshot) wakes it at once. With nothing to draw it only looks again every
IDLE_CHECK_MS, for panels that asked for a redraw by setting `drawn = None` (after a
resize, say) or came on screen (a 4 ms polling timer took 3-4% of a core).

Frame rate: a panel is due again `interval` after it was drawn: its `redraw_interval_ms`
(33 ms, so it follows snapshots arriving at up to 30 Hz) times the shared `pace`. The
pace holds the GUI thread's busy share (time.thread_time over wall time: everything the
thread does, painting included; waiting for the CPU or the GIL does not count) near a
budget, so that drawing leaves training its throughput: training runs in a process of
its own (training/process.py) whose two numba threads use both cores, and every moment
the GUI thread takes a core stalls one of them and, at the end of each parallel kernel,
the other. Measured on 2 cores, default layout (3 panels drawn, H = 128, T = 100,
benchmarks/bench_gui.py; the ratio to headless training varies by about 0.1 between runs
of the same setting): budget 0.25 gave 12-13 frames/s and 72-77% of the headless rate,
0.35 gave 19-20 frames/s and 69-89%, 0.4 gave 22-24 frames/s and 62-74%. The budget is
BUSY_BUDGET while training runs flat out (a window says so, see add_training_hint, or
the other threads of the process use most of a core or more), IDLE_BUDGET when it does
not (paused, or a steps/s cap for watching slowly: then the panels may draw at full
rate). The user chooses the trade while training runs flat out (View > Panels while
training, DRAW_PRIORITIES): the window sets `busy_budget`. When the shown panels need
more than the budget the pace slows all of them evenly; it returns to 1 as soon as there
is room.

Snapshot demand: `snapshot_demand()` is the snapshot rate the shown panels can use (their
frame rate at the current pace, with some headroom; at least MIN_SNAPSHOT_HZ for the
status bar). The training worker reads it after each snapshot and makes the next ones no
faster: a snapshot costs the training thread 2-3 ms (the probe batch's forward and
backward pass and the copies), so snapshots nobody draws are training time lost.
"""

import time
import weakref

from PySide6.QtCore import QObject, Qt, QTimer, Slot

SLACK = 0.75             # a panel may draw this fraction of its interval after the last draw
IDLE_CHECK_MS = 50       # nothing due: look again this often (drawn = None, shown again)
SHOWN_TTL = 0.2          # seconds a panel's on-screen state is reused (visibleRegion costs)
MIN_SNAPSHOT_HZ = 10.0   # what the status bar and the history panels need at least
MAX_SNAPSHOT_HZ = 60.0
DEMAND_HEADROOM = 1.25   # snapshots per frame: a panel never waits long for a new one

# The snapshot rate the window can use: written by the GUI thread, read by the training
# worker (a plain float in a list: no Qt object is touched from the worker thread).
_DEMAND = [None]


def snapshot_demand():
    """Snapshots per second the shown panels can draw (None before any panel exists)."""
    return _DEMAND[0]


def visible(widget):
    """Visible and not covered: a dock tabbed behind another has an empty visible region."""
    try:
        return widget.isVisible() and not widget.visibleRegion().isEmpty()
    except RuntimeError:   # its C++ side is already deleted
        return False


# View > Panels while training: name -> (menu text, busy budget, tooltip). The figures:
# benchmarks/bench_gui.py --budget B, default layout, H = 128, T = 100, 2 cores.
DRAW_PRIORITIES = {
    "smooth": ("Smooth panels", 0.55,
               "Up to 30 frames/s (every snapshot); training keeps about two thirds of its "
               "speed without the window (measured on 2 cores)"),
    "balanced": ("Balanced", 0.35,
                 "About 20-25 frames/s; training keeps 60-90% of its speed without the "
                 "window (measured on 2 cores)"),
    "training": ("Training first", 0.2,
                 "About 10-12 frames/s; training keeps 80-85% of its speed without the "
                 "window (measured on 2 cores)"),
}
DEFAULT_DRAW_PRIORITY = "balanced"


class RedrawScheduler(QObject):
    """Draws the panels on screen, paced to the GUI thread's budget (see the module)."""

    BUSY_BUDGET = DRAW_PRIORITIES[DEFAULT_DRAW_PRIORITY][1]   # GUI share, training flat out
    IDLE_BUDGET = 0.7            # ... while the other threads leave the cores free
    TRAINING_BUSY = 0.7          # cores used by the other threads that mean "flat out"
    PACE_EVERY = 0.25            # seconds between measurements of the busy share
    MAX_PACE = 20.0

    def __init__(self):
        super().__init__()
        self.panels = weakref.WeakSet()
        self.pace = 1.0
        self.busy = 0.0            # smoothed busy share of the GUI thread
        self.others = 0.0          # smoothed cores used by the process's other threads
        self.busy_budget = self.BUSY_BUDGET   # the window's choice (DRAW_PRIORITIES)
        self.budget = self.busy_budget
        self.fixed_budget = None   # set: use this budget always (benchmark experiments)
        self._hints = []           # WeakMethods: True while a window trains flat out
        self.frames = 0            # redraws done
        self._mark = (time.perf_counter(), time.thread_time(), time.process_time())
        self._shown = weakref.WeakKeyDictionary()   # panel -> (time looked, on screen)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._on_timer_timeout)

    def add(self, panel):
        self.panels.add(panel)

    def add_training_hint(self, method):
        """`method()` says whether its window trains flat out (running, no steps/s cap).
        The measured CPU of the training threads alone misreads a machine busy with other
        programs: training then gets less than TRAINING_BUSY cores while it still wants
        them all, and the panels would take the larger IDLE_BUDGET from it."""
        self._hints = [h for h in self._hints if h() is not None] + [weakref.WeakMethod(method)]

    def training_flat_out(self):
        """True if the other threads use TRAINING_BUSY cores or a window says it trains
        flat out."""
        if self.others >= self.TRAINING_BUSY:
            return True
        for ref in self._hints:
            method = ref()
            try:
                if method is not None and method():
                    return True
            except RuntimeError:   # the window's C++ side is gone
                continue
        return False

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
        panels = list(self.panels)
        if not panels:
            return                 # no panel left (windows closed): sleep until a poke
        best = None
        for p in panels:
            try:
                if p.snapshot is None or p.snapshot is p.drawn:
                    continue
            except RuntimeError:
                continue
            if (best is None or p.next_due < best.next_due) and self.shown(p, now):
                best = p
        if best is None:
            self._timer.start(IDLE_CHECK_MS)
            return
        if best.next_due > now:
            self._timer.start(max(1, int((best.next_due - now) * 1000 + 0.5)))
            return
        best.timed_redraw(now)
        self.frames += 1
        self._timer.start(0)       # the next panel (if any) after this one's paint

    def shown(self, panel, now):
        """visible(panel), looked up at most every SHOWN_TTL seconds: computing a widget's
        visible region walks its parents and siblings, and the scheduler asks several
        hundred times a second. A panel brought to the front waits SHOWN_TTL at most."""
        seen = self._shown.get(panel)
        if seen is None or now - seen[0] > SHOWN_TTL:
            seen = (now, visible(panel))
            self._shown[panel] = seen
        return seen[1]

    def _measure(self, now, cpu=None, proc=None):
        """Update busy, others, budget, pace and the snapshot demand (every PACE_EVERY s).
        cpu, proc: this thread's and the process's CPU seconds (tests pass their own)."""
        wall = now - self._mark[0]
        if wall < self.PACE_EVERY:
            return
        cpu = time.thread_time() if cpu is None else cpu
        proc = time.process_time() if proc is None else proc
        share = min(1.0, (cpu - self._mark[1]) / wall)
        others = max(0.0, (proc - self._mark[2]) / wall - share)
        self._mark = (now, cpu, proc)
        self.busy = 0.5 * self.busy + 0.5 * share
        self.others = 0.5 * self.others + 0.5 * others
        self.budget = self.fixed_budget or (self.busy_budget if self.training_flat_out()
                                            else self.IDLE_BUDGET)
        ratio = self.busy / self.budget
        if ratio > 1.05 or (ratio < 0.9 and self.pace > 1.0):
            step = min(max(ratio, 0.7), 1.4) ** 0.7      # damped proportional control
            self.pace = min(max(self.pace * step, 1.0), self.MAX_PACE)
        self._update_demand()

    def _update_demand(self):
        shown = [p for p in list(self.panels) if visible(p)]
        fastest = min((p.redraw_interval_ms for p in shown), default=None)
        rate = 0.0 if fastest is None else 1000.0 / (fastest * self.pace) * DEMAND_HEADROOM
        _DEMAND[0] = min(max(rate, MIN_SNAPSHOT_HZ), MAX_SNAPSHOT_HZ)

    def interval(self, panel):
        """Seconds from one redraw of `panel` to the next, at the current pace."""
        return panel.redraw_interval_ms / 1000 * self.pace


_SCHEDULER = []


def scheduler():
    """The process's RedrawScheduler (made with the first panel)."""
    if not _SCHEDULER:
        _SCHEDULER.append(RedrawScheduler())
        _DEMAND[0] = MAX_SNAPSHOT_HZ
    return _SCHEDULER[0]
