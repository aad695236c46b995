"""Shared look of the plots: colours, pens, axis styling."""

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont

pg.setConfigOptions(antialias=True, background="w", foreground="#202020",
                    imageAxisOrder="row-major")

COLORS = {"train": "#1f77b4", "val": "#d62728", "norm": "#2ca02c", "lr": "#9467bd",
          "accent": "#ff7f0e", "grid": "#d0d0d0"}
# Width 1: Qt draws antialiased pens wider than 1 px about 20x slower (long loss curves).
PENS = {k: pg.mkPen(QColor(c), width=1) for k, c in COLORS.items()}

LABEL_STYLE = {"font-size": "9pt", "color": "#202020"}


def style_plot(plot, left=None, bottom=None, title=None):
    """Grid, tick font and axis labels for a PlotItem."""
    plot.showGrid(x=True, y=True, alpha=0.25)
    font = QFont()
    font.setPointSizeF(8.5)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setTickFont(font)
    plot.getAxis("left").setWidth(58)
    for name in ("left", "bottom"):
        plot.getAxis(name).enableAutoSIPrefix(False)
    if left:
        plot.setLabel("left", left, **LABEL_STYLE)
    if bottom:
        plot.setLabel("bottom", bottom, **LABEL_STYLE)
    if title:
        plot.setTitle(title, size="9pt")
    plot.setMenuEnabled(True)
    return plot


def log_ticks(lo, hi, max_ticks):
    """Tick positions and labels for a log10 axis showing 10**lo .. 10**hi.

    Returns [(log10 value, label)]: the densest of 1, 1-3, 1-2-5, 1..9 per decade that fits
    `max_ticks`, or every k-th decade when even one per decade is too many.
    """
    import math
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    max_ticks = max(2, int(max_ticks))
    d0, d1 = math.floor(lo), math.ceil(hi)
    best = None
    for mults in ((1,), (1, 3), (1, 2, 5), tuple(range(1, 10))):
        vals = [m * 10.0 ** d for d in range(d0, d1 + 1) for m in mults
                if lo <= math.log10(m * 10.0 ** d) <= hi]
        if len(vals) <= max_ticks:
            best = vals
        else:
            break
    if best is None or len(best) < 2 and (d1 - d0) > max_ticks:
        step = max(1, math.ceil((d1 - d0) / max_ticks))
        best = [10.0 ** d for d in range(d0, d1 + 1) if d % step == 0 and lo <= d <= hi]
    return [(math.log10(v), f"{v:g}") for v in best]


def apply_log_ticks(plot, px_per_tick=26, data_range=None):
    """Set readable ticks on a PlotItem's left axis while it is in log mode.

    data_range (lo, hi) in data units: use it instead of the (lazily updated) view range.
    """
    import math
    axis = plot.getAxis("left")
    if not plot.ctrl.logYCheck.isChecked():
        axis.setTicks(None)
        return
    if data_range is not None and data_range[0] > 0 and data_range[1] >= data_range[0]:
        lo, hi = math.log10(data_range[0]), math.log10(data_range[1])
        pad = max(0.02 * (hi - lo), 1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = plot.getViewBox().viewRange()[1]
    height = max(plot.getViewBox().height(), 1.0)
    ticks = log_ticks(lo, hi, height / px_per_tick)
    axis.setTicks([ticks, []] if ticks else None)
