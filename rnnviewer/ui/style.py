"""Shared look of the plots: colours, pens, axis styling."""

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont

pg.setConfigOptions(antialias=True, background="w", foreground="#202020",
                    imageAxisOrder="row-major")

COLORS = {"train": "#1f77b4", "val": "#d62728", "norm": "#2ca02c", "lr": "#9467bd",
          "accent": "#ff7f0e", "grid": "#d0d0d0"}
PENS = {k: pg.mkPen(QColor(c), width=1.6) for k, c in COLORS.items()}

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
