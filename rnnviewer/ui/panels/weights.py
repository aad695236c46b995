"""Weight matrices as heatmaps: W_xh, W_hh (one block per gate) and W_hy, live.

Every heatmap has the hidden unit on its vertical axis (W_hy is drawn transposed), so
a row is always one unit: clicking it selects that unit everywhere, and the selected
unit's row (and its column in W_hh, where columns are the sending units) is outlined.
Colours: diverging, centred on zero, symmetric levels per matrix that grow at once and
shrink slowly, so they stay comparable from frame to frame.
"""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QSizePolicy,
                               QToolTip)

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._wg_common import (DIVERGING, ReportingImage, SteadyLevel, color_bar,
                                            colormap, fmt, gate_blocks, input_names,
                                            output_names, robust_absmax)
from rnnviewer.ui.style import LABEL_STYLE, style_plot

MODES = {"value": "Value", "delta": "Last update \u0394W", "grad": "Gradient"}
MATRICES = ("W_xh", "W_hh", "W_hy")
TITLES = {"W_xh": "W_xh  (unit \u00d7 input)", "W_hh": "W_hh  (unit \u00d7 unit)",
          "W_hy": "W_hy\u1d40  (unit \u00d7 output)"}
BOTTOM = {"W_xh": "input", "W_hh": "from unit", "W_hy": "output"}
SELECT_PEN = pg.mkPen("#111111", width=1.5, cosmetic=True)


@register_panel
class WeightsPanel(Panel):
    title = "Weights"
    object_name = "weights"
    tooltip = ("Weight matrices as heatmaps (one block per gate). Rows are hidden units: "
               "click a row to select that unit everywhere. Hover for the entry.")
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def build(self):
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        self.mode_box = QComboBox()
        for key, text in MODES.items():
            self.mode_box.addItem(text, key)
        self.mode_box.setToolTip("Colour by the weights, by the last update (new minus old "
                                 "weights) or by the gradient of the last step")
        self.mode_box.currentIndexChanged.connect(self._on_mode_box_changed)
        bar.addWidget(self.mode_box)
        self.matrix_box = QComboBox()
        self.matrix_box.addItem("All matrices", None)
        for m in MATRICES:
            self.matrix_box.addItem(m, m)
        self.matrix_box.setToolTip("Show every matrix, or one of them larger")
        self.matrix_box.currentIndexChanged.connect(self._on_matrix_box_changed)
        bar.addWidget(self.matrix_box)
        self.info = QLabel("")
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setToolTip("The entry under the mouse")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addWidget(self.info, 1)
        self.layout_.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.layout_.addWidget(self.view, 1)
        self.cmap = colormap(DIVERGING)
        self.levels = {}                   # (mode, matrix) -> SteadyLevel
        self.blocks = {}                   # label -> BlockView
        self.bars = {}                     # matrix -> ColorBarItem
        self.shown = {}                    # label -> the array drawn (float32)
        self._structure = None
        self._names = ([], [])
        self.message = self.view.addLabel("waiting for the first snapshot\u2026", color="#606060")

    # ------------------------------------------------------------ structure
    def _matrices(self):
        which = self.matrix_box.currentData()
        return (which,) if which else MATRICES

    def _ensure_structure(self, snap):
        mats = tuple(m for m in self._matrices() if m in snap.params)
        key = (snap.cell, snap.n_hidden, tuple(snap.params[m].shape for m in mats),
               snap.gate_names, mats)
        if key == self._structure:
            return
        self._structure = key
        self.view.clear()
        self.blocks.clear()
        self.bars.clear()
        self.shown.clear()
        self.message = None
        H = snap.n_hidden
        gates = snap.gate_names or ("",)
        first_plot = None
        G = len(gates)
        for col, m in enumerate(mats):
            rows = gates if m in ("W_xh", "W_hh") else ("",)
            ncols = snap.params[m].shape[1] if m != "W_hy" else snap.params[m].shape[0]
            above = None
            for r, g in enumerate(rows):
                label = f"{m}[{g}]" if g else m
                span = G if len(rows) == 1 else 1      # W_hy spans every gate row
                plot = self.view.addPlot(row=r, col=col, rowspan=span)
                style_plot(plot)
                bv = BlockView(self, plot, m, label, r if g else None, H, ncols)
                self.blocks[label] = bv
                left = plot.getAxis("left")
                left.setWidth(44 if col == 0 else 30)
                if r == 0:
                    plot.setTitle(TITLES[m], size="9pt")
                if col == 0:
                    plot.setLabel("left", f"{g} \u00b7 unit" if g else "unit", **LABEL_STYLE)
                if r == len(rows) - 1:
                    plot.setLabel("bottom", BOTTOM[m], **LABEL_STYLE)
                else:
                    plot.getAxis("bottom").setStyle(showValues=False)
                    plot.getAxis("bottom").setHeight(6)
                if first_plot is None:
                    first_plot = plot
                else:
                    plot.setYLink(first_plot)
                if above is not None:
                    plot.setXLink(above)
                above = plot
            cb = color_bar(self.cmap, orientation="horizontal", width=10)
            self.view.addItem(cb, row=G, col=col)
            self.bars[m] = cb
            stretch = int(np.clip(ncols, max(12, H // 4), H))
            self.view.ci.layout.setColumnStretchFactor(col, stretch)
        for r in range(G):
            self.view.ci.layout.setRowStretchFactor(r, 1)
        self.on_unit_selected(self.selection.unit)

    # ------------------------------------------------------------ drawing
    def _source(self, snap):
        mode = self.mode_box.currentData()
        return {"value": snap.params, "delta": snap.delta, "grad": snap.grads}[mode], mode

    def redraw(self, snap):
        self._ensure_structure(snap)
        self._names = (input_names(snap), output_names(snap))
        src, mode = self._source(snap)
        for m in {b.matrix for b in self.blocks.values()}:
            a = src.get(m)
            if a is None:
                continue
            lv = self.levels.setdefault((mode, m), SteadyLevel()).update(robust_absmax(a))
            for label, block in gate_blocks(m, a, snap.gate_names):
                bv = self.blocks.get(label)
                if bv is None:
                    continue
                img = block.T if m == "W_hy" else block
                img = np.ascontiguousarray(img, dtype=np.float32)   # (H, I) / (H, H) / (H, O)
                self.shown[label] = img
                bv.image.setImage(img, levels=(-lv, lv), autoLevels=False)
            cb = self.bars[m]
            cb.setLevels((-lv, lv))
            cb.getAxis("bottom").setLabel(f"{m} {MODES[mode].lower()}  (\u00b1{fmt(lv)})",
                                          **LABEL_STYLE)

    # ------------------------------------------------------------ interaction
    def describe(self, bv, row, col):
        """Text for the entry (row, col) of the block drawn by `bv` (image indices)."""
        snap = self.drawn
        if snap is None or bv.label not in self.shown:
            return ""
        value = self.shown[bv.label][row, col]
        ins, outs = self._names
        what = MODES[self.mode_box.currentData()]
        if bv.matrix == "W_hy":
            name = f"W_hy[{col}, {row}]"
            link = f"output {col} ({outs[col] if col < len(outs) else ''}) \u2190 unit {row}"
        else:
            r = row + (bv.gate_index or 0) * bv.H
            name = f"{bv.matrix}[{r}, {col}]"
            src = (f"input {col} ({ins[col]})" if bv.matrix == "W_xh" and col < len(ins)
                   else f"unit {col}")
            gate = f" gate {snap.gate_names[bv.gate_index]}" if bv.gate_index is not None else ""
            link = f"unit {row}{gate} \u2190 {src}"
        return f"{name}  {link}:  {what} {fmt(value)}"

    def _on_block_hover(self, bv, row, col):
        if row is None:
            self.info.setText("")
            return
        text = self.describe(bv, row, col)
        self.info.setText(text)
        if self.view.underMouse():
            QToolTip.showText(QCursor.pos(), text, self.view)

    def _on_block_click(self, bv, row, col):
        self.select_unit(row)

    def on_unit_selected(self, unit):
        for bv in self.blocks.values():
            bv.mark(unit)

    @Slot(int)
    def _on_mode_box_changed(self, _):
        self.drawn = None
        self.redraw_now()

    @Slot(int)
    def _on_matrix_box_changed(self, _):
        self._structure = None
        self.drawn = None
        self.redraw_now()

    def on_reset(self):
        for lv in self.levels.values():
            lv.reset()

    # ------------------------------------------------------------ export
    def export_item(self):
        return self.view.scene()

    def data_arrays(self):
        return {k.replace("[", "_").replace("]", ""): v for k, v in self.shown.items()}


class BlockView:
    """One heatmap (a gate block of a matrix) with its selected-unit outline."""

    def __init__(self, panel, plot, matrix, label, gate_index, H, ncols):
        self.panel, self.plot, self.matrix, self.label = panel, plot, matrix, label
        self.gate_index, self.H, self.ncols = gate_index, H, ncols
        self.image = ReportingImage(on_hover=self._hover, on_click=self._click)
        self.image.setColorMap(panel.cmap)
        plot.addItem(self.image)
        vb = plot.getViewBox()
        vb.invertY(True)
        vb.setLimits(xMin=0, xMax=ncols, yMin=0, yMax=H)
        plot.setRange(xRange=(0, ncols), yRange=(0, H), padding=0)
        plot.showGrid(x=False, y=False)
        self.row_mark = _outline(plot)
        self.col_mark = _outline(plot) if matrix == "W_hh" else None

    def mark(self, unit):
        u = min(max(int(unit), 0), self.H - 1)
        self.row_mark.setRect(QRectF(0, u, self.ncols, 1))
        if self.col_mark is not None:
            self.col_mark.setRect(QRectF(u, 0, 1, self.H))

    def _hover(self, row, col):
        self.panel._on_block_hover(self, row, col)

    def _click(self, row, col):
        self.panel._on_block_click(self, row, col)


def _outline(plot):
    """A rectangle outline (cosmetic pen) in the plot's data coordinates."""
    item = QGraphicsRectItem()
    item.setPen(SELECT_PEN)
    item.setZValue(10)
    item.setAcceptHoverEvents(False)
    item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
    plot.addItem(item)
    return item
