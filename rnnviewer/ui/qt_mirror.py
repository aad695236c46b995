"""pyqtgraph's copies of the Qt modules, filled on demand (start-up time, issue #9).

pyqtgraph.Qt keeps mirrors of PySide6.QtCore, QtGui and QtWidgets (so that its own
monkey-patches stay local), filled by copying every attribute of the real modules
(`_copy_attrs`). PySide6 makes its classes and their Python enums on first access, so that
copy made all of them: 642 enums where the app needs 315 (counted), about 0.2 s of every
start-up of the frozen app (profiled). `install()`, run before anything imports pyqtgraph,
registers mirror modules that read a name from the real module the first time it is
asked for, and hides the real modules' names from pyqtgraph's copy while it imports.
Every name is the same object as before; the unused ones are never made.

If pyqtgraph did not take the mirrors (another version), the import is undone and done
again the ordinary way.
"""

import contextlib
import sys
import types

from PySide6 import QtCore, QtGui, QtWidgets

REAL = {"QtCore": QtCore, "QtGui": QtGui, "QtWidgets": QtWidgets}


def mirror(real, name):
    """A module named `name` whose missing attributes are read from `real` and kept."""
    mod = types.ModuleType(name, f"pyqtgraph's mirror of {real.__name__}, filled on demand")

    def __getattr__(attr):
        value = getattr(real, attr)    # AttributeError just as the real module raises it
        mod.__dict__[attr] = value
        return value

    def __dir__():
        return sorted(set(dir(real)) | set(mod.__dict__))

    mod.__getattr__ = __getattr__
    mod.__dir__ = __dir__
    return mod


def _no_names():
    return []


@contextlib.contextmanager
def _names_hidden(modules):
    """dir() of each module is empty inside (pyqtgraph's copy finds nothing to copy)."""
    saved = [(m, m.__dict__.get("__dir__")) for m in modules]
    try:
        for m in modules:
            m.__dir__ = _no_names
        yield
    finally:
        for m, own in saved:
            if own is None:
                del m.__dict__["__dir__"]
            else:
                m.__dir__ = own


def bound(pg_qt, mirrors):
    """True if pyqtgraph.Qt uses the mirrors and they give the real classes."""
    return all(getattr(pg_qt, short, None) is mod for short, mod in mirrors.items()) and \
        pg_qt.QtWidgets.QWidget is QtWidgets.QWidget and pg_qt.QtCore.QObject is QtCore.QObject


def _forget_pyqtgraph():
    for name in [n for n in sys.modules if n == "pyqtgraph" or n.startswith("pyqtgraph.")]:
        del sys.modules[name]


def install():
    """Import pyqtgraph.Qt with on-demand mirrors. False if pyqtgraph was already imported
    (nothing left to save) or did not take them (then it is imported as usual)."""
    if "pyqtgraph" in sys.modules:
        return False
    mirrors = {short: mirror(real, f"pyqtgraph.Qt.{short}") for short, real in REAL.items()}
    sys.modules.update({mod.__name__: mod for mod in mirrors.values()})
    try:
        with _names_hidden(REAL.values()):
            import pyqtgraph.Qt as pg_qt
        ok = bound(pg_qt, mirrors)
    except Exception:
        ok = False
    if not ok:
        _forget_pyqtgraph()
        import pyqtgraph.Qt  # noqa: F401  (pyqtgraph's own copy)
    return ok
