"""The Qt user interface: the only package that imports PySide6 and pyqtgraph."""

from rnnviewer.ui import qt_mirror

qt_mirror.install()          # before anything imports pyqtgraph (see qt_mirror.py)
