"""Regression test for PySide6-Essentials 6.12.0 on Python 3.11 (NOTES.md): every call of a
Qt method returning nothing dropped a reference to None and the interpreter aborted after a
few thousand. A live GUI makes thousands a minute, so ~20,000 must pass in a subprocess."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QObject
    from PySide6.QtGui import QColor, QImage
    from PySide6.QtWidgets import QApplication, QWidget
    app = QApplication([])
    w = QWidget()
    obj = QObject()
    img = QImage(4, 4, QImage.Format.Format_RGB32)
    c = QColor()
    for i in range(5000):
        w.update()
        obj.setObjectName("x")
        img.setPixel(i % 4, 0, 0)
        c.setRgb(1, 2, 3)
    print("ok", 20000)
""")


def test_twenty_thousand_void_qt_calls_do_not_abort_the_interpreter():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.split() == ["ok", "20000"]
