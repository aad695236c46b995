"""Weight matrices as heatmaps: W_xh, W_hh (one block per gate) and W_hy, live.

Every heatmap has the hidden unit on its vertical axis (W_hy is drawn transposed), so
a row is always one unit: clicking it selects that unit everywhere, and the selected
unit's row (and its column in W_hh, where columns are the sending units) is outlined.
Colours: diverging, centred on zero, symmetric levels per matrix on a ladder of round
values that grow at once and shrink a rung at a time (BandLevel), so they stay
comparable from frame to frame and the colour bars only redraw when a level moves.
"""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QSizePolicy,
                               QToolTip)

from rnnviewer.ui.panels import Panel, register_panel
from rnnviewer.ui.panels._layout_batch import batched_layout
from rnnviewer.ui.panels._perf import BandLevel, cache_axes
from rnnviewer.ui.panels._wg_common import (DIVERGING, ReportingImage, color_bar, colormap, fmt,
                                            gate_blocks, input_names, output_names,
                                            robust_absmax)
from rnnviewer.ui.style import LABEL_STYLE, style_plot

MODES = {"value": "Value", "delta": "Last update \u0394W", "grad": "Gradient"}
SHORT = {"value": "value", "delta": "\u0394W (last update)", "grad": "gradient"}
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
        self.levels = {}                   # (mode, matrix) -> BandLevel
        self._bar_levels = {}              # matrix -> (level, mode) its colour bar shows
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

    def arrangement(self):
        """"stack" (gate blocks one under the other, matrices side by side) or "row" (every
        block side by side: short, wide docks), from the view's shape."""
        w, h = self.width(), self.height() - 36           # the view: all but the tool bar
        return "row" if h > 0 and w >= 1.8 * h else "stack"

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self._structure is not None and self._structure[-1] != self.arrangement():
            self._structure = None
            self.drawn = None              # rebuilt on the next timer tick

    def _ensure_structure(self, snap):
        mats = tuple(m for m in self._matrices() if m in snap.params)
        gates = snap.gate_names or ("",)
        G = len(gates)
        arr = self.arrangement() if G > 1 else "stack"
        key = (snap.cell, snap.n_hidden, tuple(snap.params[m].shape for m in mats),
               snap.gate_names, mats, arr)
        if key == self._structure:
            return
        self._structure = key
        with batched_layout(self.view):              # one layout pass, not one per plot
            self._build_structure(snap, mats, gates, arr)
        cache_axes(self.view)
        self.on_unit_selected(self.selection.unit)

    def _build_structure(self, snap, mats, gates, arr):
        """The heatmaps, their outlines and colour bars for `mats` in arrangement `arr`."""
        G = len(gates)
        self.view.clear()
        self.blocks.clear()
        self.bars.clear()
        self._bar_levels.clear()
        self.shown.clear()
        self._names = ([], [])
        self.message = None
        H = snap.n_hidden
        layout = self.view.ci.layout
        first_plot = None
        offset = 0                                   # "row": first grid column of a matrix
        for ci, m in enumerate(mats):
            rows = gates if m in ("W_xh", "W_hh") else ("",)
            ncols = snap.params[m].shape[1] if m != "W_hy" else snap.params[m].shape[0]
            stretch = int(np.clip(ncols, max(12, H // 4), H))
            above = None
            for r, g in enumerate(rows):
                label = f"{m}[{g}]" if g else m
                if arr == "stack":
                    row, col, span = r, ci, (G if len(rows) == 1 else 1)
                    first_in_row, last_in_col = ci == 0, r == len(rows) - 1
                else:
                    row, col, span = 0, offset + r, 1
                    first_in_row, last_in_col = col == 0, True
                plot = self.view.addPlot(row=row, col=col, rowspan=span)
                style_plot(plot)
                bv = BlockView(self, plot, m, label, r if g else None, H, ncols)
                self.blocks[label] = bv
                left = plot.getAxis("left")
                if first_in_row:
                    left.setWidth(44)
                    text = (g or "unit") if arr == "stack" else "unit"
                    plot.setLabel("left", text, **LABEL_STYLE)
                else:
                    left.setStyle(showValues=False)
                    left.setWidth(4 if arr == "row" else 30)
                if arr == "row":
                    plot.setTitle(f"{m}[{g}]" if g else TITLES[m], size="9pt")
                    plot.setLabel("bottom", BOTTOM[m], **LABEL_STYLE)   # all: same heights
                elif r == 0:
                    plot.setTitle(TITLES[m], size="9pt")
                if arr == "stack" and not last_in_col:
                    plot.getAxis("bottom").setStyle(showValues=False)
                    plot.getAxis("bottom").setHeight(6)
                elif arr == "stack":
                    plot.setLabel("bottom", BOTTOM[m], **LABEL_STYLE)
                if first_plot is None:
                    first_plot = plot
                else:
                    plot.setYLink(first_plot)
                if above is not None:
                    plot.setXLink(above)
                above = plot
                if arr == "row":
                    layout.setColumnStretchFactor(col, stretch)
            cb = color_bar(self.cmap, orientation="horizontal", width=10)
            if arr == "stack":
                self.view.addItem(cb, row=G, col=ci)
                layout.setColumnStretchFactor(ci, stretch)
            else:
                self.view.addItem(cb, row=1, col=offset, colspan=len(rows))
            self.bars[m] = cb
            offset += len(rows)
        for r in range(G if arr == "stack" else 1):
            layout.setRowStretchFactor(r, 1)

    # ------------------------------------------------------------ drawing
    def _source(self, snap):
        mode = self.mode_box.currentData()
        return {"value": snap.params, "delta": snap.delta, "grad": snap.grads}[mode], mode

    def redraw(self, snap):
        self._ensure_structure(snap)
        names = (input_names(snap), output_names(snap))
        if names != self._names:
            self._names = names
            for bv in self.blocks.values():
                bv.name_columns(names[1] if bv.matrix == "W_hy" else
                                names[0] if bv.matrix == "W_xh" else None)
        src, mode = self._source(snap)
        for m in {b.matrix for b in self.blocks.values()}:
            a = src.get(m)
            if a is None:
                continue
            lv = self.levels.setdefault((mode, m), BandLevel()).update(robust_absmax(a))
            for label, block in gate_blocks(m, a, snap.gate_names):
                bv = self.blocks.get(label)
                if bv is None:
                    continue
                img = block.T if m == "W_hy" else block
                img = np.ascontiguousarray(img, dtype=np.float32)   # (H, I) / (H, H) / (H, O)
                self.shown[label] = img
                bv.image.setImage(img, levels=(-lv, lv), autoLevels=False)
            if self._bar_levels.get(m) != (lv, mode):   # the bar redraws only on a change
                self._bar_levels[m] = (lv, mode)
                cb = self.bars[m]
                cb.setLevels((-lv, lv))
                cb.getAxis("bottom").setLabel(f"{m} {SHORT[mode]}  (\u00b1{fmt(lv)})",
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

    def name_columns(self, names):
        """Named ticks at the column centres when there are few columns (inputs, outputs)."""
        axis = self.plot.getAxis("bottom")
        if names is not None and self.ncols <= 12:
            axis.setTicks([[(i + 0.5, n) for i, n in enumerate(names[:self.ncols])]])
        else:
            axis.setTicks(None)

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
