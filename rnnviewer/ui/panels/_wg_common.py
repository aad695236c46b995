"""Helpers shared by the weight and gradient panels (weights, spectrum, histograms,
saliency, gradient through time): colour maps, steady colour levels, a cost-based
throttle, gate blocks of the parameter matrices, step-indexed ring buffers, and an
ImageItem that reports the entry under the mouse."""

import ctypes
import glob
import os
import sys
import time

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from rnnviewer.ui.panels._perf import FastImageItem
from rnnviewer.ui.style import LABEL_STYLE

DIVERGING = "RdBu_r"           # ColorBrewer blue - white - red: zero is white
SEQUENTIAL = "viridis"
_RDBU = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
         "#d6604d", "#b2182b")


def colormap(name):
    """A pyqtgraph ColorMap: "RdBu_r" (built in, no matplotlib needed) or a bundled name."""
    if name == "RdBu_r":
        return pg.ColorMap(np.linspace(0.0, 1.0, len(_RDBU)), list(_RDBU), name="RdBu_r")
    return pg.colormap.get(name)


def robust_absmax(a, q=0.995, max_samples=8192):
    """About the q-quantile of |a| (from a strided subsample of at most max_samples
    entries; non-finite entries ignored); max|a| when that quantile is 0 (sparse arrays)."""
    a = np.abs(np.asarray(a, dtype=np.float64).ravel())
    stride = max(1, a.size // max_samples)
    sub = a[::stride]
    sub = sub[np.isfinite(sub)]
    if sub.size == 0:
        return 0.0
    k = min(sub.size - 1, int(np.ceil(q * (sub.size - 1))))
    m = float(np.partition(sub, k)[k])
    if m > 0:
        return m
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


class SteadyLevel:
    """A colour level that grows at once and shrinks slowly, so colours stay comparable
    between frames: each update moves it to max(target, decay * current)."""

    def __init__(self, decay=0.985, floor=1e-12):
        self.decay, self.floor = decay, floor
        self.value = None

    def reset(self):
        self.value = None

    def update(self, target):
        target = float(target) if np.isfinite(target) else 0.0
        if self.value is None:
            self.value = max(target, self.floor)
        else:
            self.value = max(target, self.value * self.decay, self.floor)
        return self.value


class SteadyRange:
    """(lo, hi) levels for values that are not centred on zero (log norms): the range
    widens at once and narrows slowly towards the target."""

    def __init__(self, decay=0.985):
        self.decay = decay
        self.value = None

    def reset(self):
        self.value = None

    def update(self, lo, hi):
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return self.value
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        if self.value is None:
            self.value = (lo, hi)
        else:
            clo, chi = self.value
            span = chi - clo
            d = (1.0 - self.decay) * span
            self.value = (min(lo, clo + d), max(hi, chi - d))
        return self.value


class Throttle:
    """Runs an expensive computation at most every max(min_interval, ratio * cost) seconds
    (never less often than every max_interval), where cost is a running average of its
    duration: it takes at most about 1/ratio of the GUI thread's time.

    With `ramp=(start, per)` the minimum interval starts at `start` s after a reset and
    grows by 1 s per `per` s until it reaches min_interval: a record of the run (made while
    its panel is off screen) is dense where training changes fastest, at the start."""

    def __init__(self, min_interval=0.0, ratio=8.0, max_interval=3.0, ramp=None):
        self.min_interval, self.ratio, self.max_interval = min_interval, ratio, max_interval
        self.ramp = ramp
        self.last_start = -np.inf
        self.first_start = None    # first run since the last reset (ramp)
        self.cost = 0.0            # running average, seconds
        self.last_cost = 0.0       # duration of the last run, seconds
        self.runs = 0

    def reset(self):
        self.last_start = -np.inf
        self.first_start = None

    def floor(self, now=None):
        """The minimum interval now (min_interval, or less early in a ramp)."""
        if self.ramp is None:
            return self.min_interval
        start, per = self.ramp
        age = 0.0 if self.first_start is None else \
            (time.monotonic() if now is None else now) - self.first_start
        return min(self.min_interval, max(start, age / per))

    def interval(self, now=None):
        return min(self.max_interval, max(self.floor(now), self.ratio * self.cost))

    def due(self, now=None):
        now = time.monotonic() if now is None else now
        return now - self.last_start >= self.interval(now)

    def run(self, fn, *args):
        t0 = time.monotonic()
        self.last_start = t0
        if self.first_start is None:
            self.first_start = t0
        try:
            return fn(*args)
        finally:
            self.last_cost = time.monotonic() - t0
            self.runs += 1
            # the first run pays one-off costs (LAPACK set-up): do not let it dominate
            w = 1.0 if self.runs == 2 else 0.3
            self.cost = self.last_cost if self.runs == 1 else \
                (1 - w) * self.cost + w * self.last_cost


# Records a panel keeps while off screen (histograms, spectrum) take at most this share
# of the GUI thread: the panels' frames share its budget (_schedule.py).
OFF_SCREEN_RATIO = 100.0


def off_screen_throttle(every, ramp):
    """The Throttle of a record kept off screen: at most 1/OFF_SCREEN_RATIO of the GUI
    thread, every `ramp[0]` s at the start of a run, then less often up to every `every`
    s (Throttle's ramp), and at least every 4 x `every` s."""
    return Throttle(min_interval=every, ratio=OFF_SCREEN_RATIO, max_interval=4 * every,
                    ramp=ramp)


_BLAS_LIMITED = False


def single_thread_blas():
    """Limit the OpenBLAS that numpy loaded (and SciPy's, if SciPy's BLAS is loaded) to one
    thread, once per process.

    Small LAPACK calls (eigenvalues of a 128 x 128 matrix) took 1-5 s instead of tens of
    ms with two-thread OpenBLAS on the shared 2-core machines (NOTES.md: two-thread BLAS
    stalls). It imports nothing (no threadpoolctl, no SciPy: importing them cost start-up
    time, and opening SciPy's OpenBLAS just to limit it would load it), and only calls the
    libraries' own set_num_threads; the engine's BLAS binding limits the library it binds."""
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return
    _BLAS_LIMITED = True
    for lib in _loaded_openblas():
        try:
            dll = ctypes.CDLL(lib)       # already loaded: only looks it up
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                    "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(dll, sym, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                fn(1)
                break


def _loaded_openblas():
    """Paths of the OpenBLAS libraries of numpy, and of SciPy once its BLAS is imported
    (wheel folders: `<pkg>.libs/` on Linux and Windows, `<pkg>/.dylibs/` on macOS)."""
    paths = []
    for mod, needs in (("numpy", "numpy"), ("scipy", "scipy.linalg")):
        m = sys.modules.get(mod)
        if needs not in sys.modules or not getattr(m, "__file__", None):
            continue
        root = os.path.dirname(m.__file__)
        paths += sorted(glob.glob(os.path.join(os.path.dirname(root), f"{mod}.libs",
                                               "*openblas*")))
        paths += sorted(glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    return paths


def gate_blocks(name, a, gate_names):
    """[(label, block)] of a parameter: the row blocks of W_xh/W_hh/b_xh/b_hh split by
    gate ("W_hh[f]"), or the whole array for a plain RNN and for W_hy/b_y."""
    a = np.asarray(a)
    G = len(gate_names)
    if G <= 1 or name not in ("W_xh", "W_hh", "b_xh", "b_hh"):
        return [(name, a)]
    H = a.shape[0] // G
    return [(f"{name}[{g}]", a[i * H:(i + 1) * H]) for i, g in enumerate(gate_names)]


def input_names(snap):
    """Names of the input features (characters for text tasks, else x0, x1, ...)."""
    I = int(snap.model_config["n_in"])
    vocab = snap.task_config.get("vocab") if snap.task_config else None
    if isinstance(vocab, str) and len(vocab) == I:
        return [_visible(c) for c in vocab]
    return [f"x{i}" for i in range(I)]


def output_names(snap):
    """Names of the outputs (characters for text tasks, else y0, y1, ...)."""
    O = int(snap.model_config.get("n_out", 0) or 0)
    vocab = snap.task_config.get("vocab") if snap.task_config else None
    if isinstance(vocab, str) and len(vocab) == O:
        return [_visible(c) for c in vocab]
    return [f"y{i}" for i in range(O)]


_VISIBLE = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d"}


def _visible(c):
    return _VISIBLE.get(c, c)


class StepRing:
    """The last `capacity` rows recorded per training step (a ring buffer), and their
    resampling onto a uniform step grid for an ImageItem."""

    def __init__(self, capacity=500):
        self.capacity = capacity
        self.clear()

    def clear(self):
        self.steps = np.zeros(0, np.int64)
        self.rows = None          # (capacity, n) ring storage
        self.start = 0            # index of the oldest row
        self.n = 0

    def append(self, step, row):
        row = np.asarray(row, np.float32)
        if self.rows is None or self.rows.shape[1] != row.size:
            self.rows = np.zeros((self.capacity, row.size), np.float32)
            self.steps = np.zeros(self.capacity, np.int64)
            self.start = self.n = 0
        if self.n and step <= self.last_step():
            i = (self.start + self.n - 1) % self.capacity     # same step again: replace
        elif self.n < self.capacity:
            i = (self.start + self.n) % self.capacity
            self.n += 1
        else:
            i = self.start
            self.start = (self.start + 1) % self.capacity
        self.rows[i] = row
        self.steps[i] = step

    def last_step(self):
        return int(self.steps[(self.start + self.n - 1) % self.capacity])

    def ordered(self):
        """(steps (n,), rows (n, m)) oldest first."""
        if not self.n:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        idx = (self.start + np.arange(self.n)) % self.capacity
        return self.steps[idx], self.rows[idx]

    def grid(self, columns=None):
        """step_grid of the stored rows (oldest first)."""
        steps, rows = self.ordered()
        return step_grid(steps, rows, columns or self.capacity)


class RunRecord:
    """Rows recorded over a whole training run in bounded memory (TensorBoard's histogram
    view keeps the whole run too): kept rows are at least `every` steps apart, and the
    newest row is always the last one. When `capacity` rows are held, every other kept
    row goes (the first stays) and `every` doubles, so the record thins evenly as the
    run grows instead of forgetting its beginning. `ordered()` gives (steps, rows)."""

    def __init__(self, capacity=512):
        if capacity < 3:
            raise ValueError("a RunRecord needs room for at least 3 rows")
        self.capacity = capacity
        self.clear()

    def clear(self):
        self.steps = np.zeros(0, np.int64)
        self.rows = None          # (capacity, m) storage, rows [0, n) in use
        self.n = 0
        self.every = 1            # steps between kept rows

    def append(self, step, row):
        row = np.asarray(row, np.float32)
        if self.rows is None or self.rows.shape[1] != row.size:
            self.rows = np.zeros((self.capacity, row.size), np.float32)
            self.steps = np.zeros(self.capacity, np.int64)
            self.n = 0
        n = self.n
        if n and step <= self.steps[n - 1]:
            i = n - 1                                        # same step again: replace
        elif self._tail_open():
            i = n - 1              # the newest row was too close to the one before: move it
        else:
            if n == self.capacity:
                self._thin()
            if self._tail_open():  # thinned: the newest is too close to its new neighbour
                i = self.n - 1
            else:
                i = self.n
                self.n += 1
        self.rows[i] = row
        self.steps[i] = step

    def _tail_open(self):
        n = self.n
        return n >= 2 and self.steps[n - 1] - self.steps[n - 2] < self.every

    def _thin(self):
        """Keep rows 0, 2, 4, ... of the n - 1 settled ones, then the newest; double every."""
        n = self.n
        keep = np.r_[np.arange(0, n - 1, 2), n - 1]
        m = len(keep)
        self.rows[:m] = self.rows[keep]
        self.steps[:m] = self.steps[keep]
        self.n = m
        self.every *= 2

    def ordered(self):
        """(steps (n,), rows (n, m)) oldest first (copies)."""
        if not self.n:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return self.steps[:self.n].copy(), self.rows[:self.n].copy()


def step_grid(steps, rows, columns):
    """(image (m, C) float32, x0, width): rows (n, m) recorded at increasing `steps`,
    resampled onto C = `columns` uniform columns over [first step, last step] (each column
    shows the row recorded nearest its centre, `nearest_record`) and transposed so that
    the step runs along x; x0 and width place the image on exactly that span, so no
    column reaches before the first record or past the last, however few there are
    (two records at steps 0 and 300: step 0's row over [0, 150], step 300's over
    [150, 300]). One record: one column, one step wide, centred on it."""
    steps = np.asarray(steps)
    if not len(steps):
        return None, 0.0, 1.0
    rows = np.asarray(rows, np.float32)
    s0, s1 = float(steps[0]), float(steps[-1])
    if len(steps) == 1 or s1 <= s0:
        return np.ascontiguousarray(rows[-1:].T), s0 - 0.5, 1.0
    centres = column_steps(s0, s1 - s0, max(int(columns), 1))
    return np.ascontiguousarray(rows[nearest_record(steps, centres)].T), s0, s1 - s0


def column_steps(x0, width, columns):
    """(columns,) step at the centre of each column of a step_grid image placed at x0,
    `width` wide (what a hover over column j refers to)."""
    return x0 + (np.arange(columns) + 0.5) * width / columns


def nearest_record(steps, x):
    """Index into increasing `steps` of the step nearest each x (the earlier on a tie)."""
    steps, x = np.asarray(steps), np.asarray(x)
    if len(steps) == 1:
        return np.zeros(np.shape(x), np.intp)
    j = np.clip(np.searchsorted(steps, x), 1, len(steps) - 1)
    return j - ((x - steps[j - 1]) <= (steps[j] - x))


def _weak(fn):
    """A callable returning `fn` (None stays None); bound methods held weakly."""
    if fn is None:
        return lambda: None
    if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)
    return lambda: fn


class ReportingImage(FastImageItem):
    """An ImageItem (row-major, row 0 at the top when the view is inverted) that calls
    on_hover(row, col) / on_hover(None, None) and on_click(row, col) with array indices."""

    def __init__(self, on_hover=None, on_click=None, **kw):
        super().__init__(**kw)
        # Weak references: a bound method of the panel held by this item makes a
        # reference cycle whose collection after the window is gone segfaults PySide6.
        self._hover_ref = _weak(on_hover)
        self._click_ref = _weak(on_click)
        self.setAcceptHoverEvents(True)

    @property
    def on_hover(self):
        return self._hover_ref()

    @property
    def on_click(self):
        return self._click_ref()

    def _index(self, pos):
        if self.image is None:
            return None
        r, c = int(np.floor(pos.y())), int(np.floor(pos.x()))
        rows, cols = self.image.shape[:2]
        if 0 <= r < rows and 0 <= c < cols:
            return r, c
        return None

    def hoverEvent(self, ev):
        if ev.isExit():
            if self.on_hover:
                self.on_hover(None, None)
            return
        if self.on_click is not None:
            ev.acceptClicks(Qt.MouseButton.LeftButton)
        rc = self._index(ev.pos())
        if self.on_hover:
            self.on_hover(*(rc or (None, None)))

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton and self.on_click is not None:
            rc = self._index(ev.pos())
            if rc is not None:
                ev.accept()
                self.on_click(*rc)
                return
        super().mouseClickEvent(ev)


def color_bar(cmap, label=None, orientation="vertical", width=14):
    """A non-interactive ColorBarItem styled for the white background."""
    cb = pg.ColorBarItem(values=(-1, 1), colorMap=cmap, interactive=False, width=width,
                         orientation=orientation, pen="#606060", colorMapMenu=False)
    axis = cb.getAxis("right" if orientation == "vertical" else "bottom")
    font = QFont()
    font.setPointSizeF(8)
    axis.setTickFont(font)
    axis.enableAutoSIPrefix(False)
    if label:
        axis.setLabel(label, **LABEL_STYLE)
    return cb


def message_item(text=""):
    """A centred text label for "waiting for ..." / error messages inside a layout."""
    item = pg.LabelItem(text, color="#a03030", size="10pt")
    return item


def fmt(v):
    """A number for labels and tooltips: 4 significant digits."""
    v = float(v)
    if v == 0 or (1e-3 <= abs(v) < 1e4):
        return f"{v:.4g}"
    return f"{v:.3e}"
