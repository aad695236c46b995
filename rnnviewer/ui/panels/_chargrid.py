"""CharGrid: rows of input labels (characters or values) on coloured cells, repainted
every frame at a small cost, for the neuron view.

A QTextEdit given P x T styled HTML spans per frame took 26 ms to parse and lay out and
8 ms to paint (P=8, T=100). Here the layout (where each cell goes) and the glyphs are
made once per width, labels and font: the glyphs as a coverage mask in numpy, and a
table of every palette entry's text colour blended over its background at every coverage
level. A frame only gathers each cell's colour into the cell pixels and the blended
colours into the glyph pixels (two numpy gathers), for the rows being painted only (the
grid scrolls: most of it is usually out of sight), then paints them with one drawImage.

    grid = CharGrid(bg_palette, fg_palette)            # entry i: background, text colour
    grid.set_labels(labels)                            # per sequence, one str per step
    grid.set_colors(index)                             # per sequence (T,) palette indices
    grid.hovered / grid.clicked                        # Signal(int, int): (sequence, t)
"""

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

LINE_GAP = 2          # pixels between wrapped lines
SEQ_GAP = 6           # extra pixels between sequences
MARGIN = 3
VALUE_GAP = 5         # pixels between the cells of a numeric task


def _argb(colors):
    """uint32 0xAARRGGBB for "#rrggbb" strings or QColors."""
    out = np.empty(len(colors), np.uint32)
    for i, c in enumerate(colors):
        out[i] = QColor(c).rgba()
    return out


class CharGrid(QWidget):
    """Labels on coloured cells; the height follows from the width (put it in a
    QScrollArea with widgetResizable). Text tasks (one character per label): monospace
    cells, a new line after "\u21b5" and where the width ends; other tasks: one cell per
    value, spaced."""

    hovered = Signal(int, int)      # (sequence, t) under the mouse, (-1, -1) off the cells
    clicked = Signal(int, int)      # left click on a cell

    def __init__(self, bg_palette, fg_palette, newline="\u21b5", parent=None):
        super().__init__(parent)
        if len(bg_palette) != len(fg_palette):
            raise ValueError("CharGrid: the two palettes must have the same length")
        self._bg = _argb(bg_palette)                 # (K,) background colours
        # (K, 256): text colour of entry k over its background at glyph coverage a
        b = self._bg.view(np.uint8).reshape(-1, 1, 4).astype(np.uint32)
        f = _argb(fg_palette).view(np.uint8).reshape(-1, 1, 4).astype(np.uint32)
        a = np.arange(256, dtype=np.uint32).reshape(1, -1, 1)
        mix = (b * (255 - a) + f * a + 127) // 255
        mix[..., 3] = 255
        self._blend = np.ascontiguousarray(mix.astype(np.uint8)).view(np.uint32)[..., 0]
        self.newline = newline
        self._labels = []                            # per sequence, per step
        self._starts = np.zeros(1, np.intp)          # index of each sequence's first cell
        self._idx = None                             # (N,) per cell, N = sum of lengths
        self._geom = None                            # layout for (width, dpr, labels)
        self._image = None
        self._hover = (-1, -1)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # ------------------------------------------------------------ content
    def set_labels(self, labels):
        labels = [list(map(str, row)) for row in labels]
        if labels != self._labels:
            self._labels = labels
            self._starts = np.cumsum([0] + [len(r) for r in labels])
            self._geom = None
            self._relayout()

    def labels(self):
        return self._labels

    def set_colors(self, index):
        """index: per sequence (T,) arrays (or one (P, T) array) of palette entries, one
        per label. The picture is composed when painted (only the part on screen)."""
        idx = np.concatenate([np.asarray(r, np.intp).ravel() for r in index]) \
            if len(index) else np.zeros(0, np.intp)
        self._idx = np.clip(idx, 0, len(self._bg) - 1)
        self.update()

    def toPlainText(self):
        """The labels, one sequence per line (what the grid shows, as text)."""
        return "\n".join(("" if self.is_text() else " ").join(r) for r in self._labels)

    def is_text(self):
        return bool(self._labels) and all(len(s) == 1 for r in self._labels for s in r)

    # ------------------------------------------------------------ layout
    def _relayout(self):
        w = max(self.width(), 60)
        height = self._layout(w)
        if self.minimumHeight() != height:
            self.setMinimumHeight(height)
        self.update()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self._geom is None or self._geom["width"] != self.width():
            self._relayout()

    def sizeHint(self):
        return QSize(400, max(self.minimumHeight(), 60))

    def _layout(self, width):
        """Place the cells for `width`; render the glyph mask. Returns the height."""
        fm = QFontMetrics(self.font())
        lh = fm.height() + LINE_GAP
        text = self.is_text()
        cw = fm.horizontalAdvance("M")
        P = len(self._labels)
        prefix_w = fm.horizontalAdvance(f"{max(P - 1, 0)} ") + 2
        x0 = MARGIN + prefix_w
        rects, prefixes = [], []
        y = MARGIN
        for p, row in enumerate(self._labels):
            prefixes.append((MARGIN, y, f"{p}"))
            x = x0
            for lab in row:
                w = cw if text else fm.horizontalAdvance(lab) + 4
                if x + w > width - MARGIN and x > x0:
                    x, y = x0, y + lh
                rects.append((x, y, w, lh - LINE_GAP))
                x += w if text else w + VALUE_GAP
                if text and lab == self.newline:
                    x, y = x0, y + lh
            y += lh + SEQ_GAP
        height = y + MARGIN
        dpr = self.devicePixelRatioF()
        self._geom = {"width": width, "height": height, "dpr": dpr, "rects": rects,
                      "prefixes": prefixes}
        self._render_mask(width, height, dpr, rects, fm)
        return height

    def _render_mask(self, width, height, dpr, rects, fm):
        """Glyph coverage and the pixel -> cell map, in device pixels."""
        W, Hh = max(1, int(round(width * dpr))), max(1, int(round(height * dpr)))
        mask = QImage(W, Hh, QImage.Format.Format_Grayscale8)
        mask.fill(0)
        p = QPainter(mask)
        p.scale(dpr, dpr)
        p.setFont(self.font())
        p.setPen(QColor(255, 255, 255))
        labels = [lab for row in self._labels for lab in row]
        for (x, y, w, h), lab in zip(rects, labels):
            p.drawText(QRect(x, y, w, h), int(Qt.AlignmentFlag.AlignCenter), lab)
        p.end()
        stride = mask.bytesPerLine()
        cov = np.frombuffer(mask.constBits(), np.uint8, count=stride * Hh)
        cov = cov.reshape(Hh, stride)[:, :W].copy()                   # (Hh, W)
        cell = np.full((Hh, W), -1, np.int32)
        for i, (x, y, w, h) in enumerate(rects):
            cell[int(y * dpr):int((y + h) * dpr), int(x * dpr):int((x + w) * dpr)] = i
        inside = np.flatnonzero(cell.ravel() >= 0)
        glyph = np.flatnonzero((cov.ravel() > 0) & (cell.ravel() >= 0))
        g = self._geom
        g.update(W=W, H=Hh, cell=cell, inside=inside, inside_cell=cell.ravel()[inside],
                 glyph=glyph, glyph_cell=cell.ravel()[glyph], glyph_a=cov.ravel()[glyph])
        # the picture: white outside the cells; a frame rewrites only the cell pixels
        g["pixels"] = np.full(Hh * W, QColor("white").rgba(), np.uint32)
        img = QImage(g["pixels"].data, W, Hh, 4 * W, QImage.Format.Format_RGB32)
        img.setDevicePixelRatio(dpr)
        g["image"] = img

    # ------------------------------------------------------------ frame
    def _compose(self, y0=0, y1=None):
        """Write the current colours into the image rows y0..y1 (widget pixels)."""
        g = self._geom
        n = int(self._starts[-1])
        if g is None or self._idx is None or len(self._idx) != n or n == 0:
            self._image = None
            return
        W, dpr = g["W"], g["dpr"]
        lo = max(0, int(y0 * dpr)) * W
        hi = (g["H"] if y1 is None else min(g["H"], int(np.ceil(y1 * dpr)))) * W
        out = g["pixels"]                                # the QImage's memory
        a, b = np.searchsorted(g["inside"], (lo, hi))
        out[g["inside"][a:b]] = self._bg[self._idx[g["inside_cell"][a:b]]]
        a, b = np.searchsorted(g["glyph"], (lo, hi))
        out[g["glyph"][a:b]] = self._blend[self._idx[g["glyph_cell"][a:b]], g["glyph_a"][a:b]]
        self._image = g["image"]

    def paintEvent(self, event):
        r = event.rect()
        self._compose(r.top(), r.bottom() + 1)
        p = QPainter(self)
        try:
            p.fillRect(r, QColor("white"))
            g = self._geom
            if self._image is None or g is None:
                return
            d = g["dpr"]
            p.drawImage(QRectF(r), self._image,
                        QRectF(r.left() * d, r.top() * d, r.width() * d, r.height() * d))
            p.setPen(QColor("#808080"))
            fm = p.fontMetrics()
            for x, y, text in g["prefixes"]:
                p.drawText(QRect(x, y, fm.horizontalAdvance(text) + 2, fm.height()),
                           int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                           text)
        finally:
            p.end()

    # ------------------------------------------------------------ mouse
    def cell_at(self, pos):
        """(sequence, t) of the cell at widget point `pos`, or None."""
        g = self._geom
        if g is None:
            return None
        x, y = int(pos.x() * g["dpr"]), int(pos.y() * g["dpr"])
        if not (0 <= x < g["W"] and 0 <= y < g["H"]):
            return None
        i = int(g["cell"][y, x])
        if i < 0:
            return None
        p = int(np.searchsorted(self._starts, i, side="right") - 1)
        return p, i - int(self._starts[p])

    def cell_rect(self, p, t):
        """The QRect (widget coordinates) of the cell of sequence p, step t."""
        x, y, w, h = self._geom["rects"][int(self._starts[p]) + t]
        return QRect(x, y, w, h)

    def mouseMoveEvent(self, event):
        where = self.cell_at(event.position().toPoint()) or (-1, -1)
        if where != self._hover:
            self._hover = where
            self.hovered.emit(*where)
        super().mouseMoveEvent(event)

    def leaveEvent(self, event):
        if self._hover != (-1, -1):
            self._hover = (-1, -1)
            self.hovered.emit(-1, -1)
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton:
            where = self.cell_at(event.position().toPoint())
            if where is not None:
                self.clicked.emit(*where)
        super().mouseReleaseEvent(event)
