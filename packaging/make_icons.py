"""Render the application icon from resources/icons/rnnviewer.svg.

Writes into resources/icons/:
  rnnviewer-<N>.png   N in PNG_SIZES (Linux hicolor theme, window icon)
  rnnviewer.png       the 256 px PNG (the window icon the app loads)
  rnnviewer.ico       Windows: PNG-compressed entries 16..256
  rnnviewer.icns      macOS: PNG entries 16..1024 (retina @2x included)

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py
"""

import argparse
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)         # ICO entries stop at 256
# ICNS element types holding PNG data, and the pixel size of each
ICNS_TYPES = (("icp4", 16), ("icp5", 32), ("ic11", 32), ("icp6", 64), ("ic12", 64),
              ("ic07", 128), ("ic08", 256), ("ic13", 256), ("ic09", 512), ("ic14", 512),
              ("ic10", 1024))


def render_png(svg_path, size):
    """PNG bytes of the SVG rendered at size x size (transparent background)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    if QGuiApplication.instance() is None:
        make_icons._app = QGuiApplication([sys.argv[0]])   # kept alive while rendering
    renderer = QSvgRenderer(str(svg_path))
    if not renderer.isValid():
        raise ValueError(f"{svg_path}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.convertToFormat(QImage.Format.Format_ARGB32).save(buf, "PNG"):
        raise RuntimeError(f"could not encode the {size} px PNG")
    buf.close()
    return bytes(data.data())


def ico_bytes(pngs):
    """A Windows .ico with one PNG-compressed entry per (size, png bytes)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, blobs = [], []
    for size, png in pngs:
        dim = 0 if size >= 256 else size                # 0 means 256 in an ICO entry
        entries.append(struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset))
        blobs.append(png)
        offset += len(png)
    return header + b"".join(entries) + b"".join(blobs)


def icns_bytes(elements):
    """A macOS .icns from (4-char type, png bytes) elements."""
    body = b"".join(kind.encode("ascii") + struct.pack(">I", 8 + len(png)) + png
                    for kind, png in elements)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def make_icons(svg_path=ICONS / "rnnviewer.svg", out=ICONS):
    """Render every icon file; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    cache = {}

    def png(size):
        if size not in cache:
            cache[size] = render_png(svg_path, size)
        return cache[size]

    written = []
    for size in PNG_SIZES:
        path = out / f"rnnviewer-{size}.png"
        path.write_bytes(png(size))
        written.append(path)
    (out / "rnnviewer.png").write_bytes(png(256))
    (out / "rnnviewer.ico").write_bytes(ico_bytes([(s, png(s)) for s in ICO_SIZES]))
    (out / "rnnviewer.icns").write_bytes(icns_bytes([(k, png(s)) for k, s in ICNS_TYPES]))
    written += [out / "rnnviewer.png", out / "rnnviewer.ico", out / "rnnviewer.icns"]
    return written


make_icons._app = None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--svg", type=Path, default=ICONS / "rnnviewer.svg")
    ap.add_argument("--out", type=Path, default=ICONS, help="output folder")
    args = ap.parse_args(argv)
    for path in make_icons(args.svg, args.out):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
              f"  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
