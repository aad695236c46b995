"""Autosave and crash restore for the interactive window.

Every few minutes (QSettings "autosave/minutes", default 3; 0 turns it off) and on quit
the worker writes the session to `autosave.npz` in the user data folder, between two
training steps and in its own thread (never from live arrays being changed), atomically
through sessionfile.save_session. A marker file `running.pid` holds the PID of the
running app; a clean quit removes it. A marker left by a process that is gone means the
last run did not exit cleanly, and the next start offers to restore the autosave.

Tests point the folder elsewhere with `use_data_dir(path)`.
"""

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Slot
from PySide6.QtWidgets import QMessageBox

from rnnviewer.ui import settings

log = logging.getLogger(__name__)

AUTOSAVE_NAME = "autosave.npz"
MARKER_NAME = "running.pid"
DEFAULT_MINUTES = 3.0
_DIR = {"path": None}


def use_data_dir(path):
    """Keep the autosave and the marker under `path` (tests, portable runs); None: default."""
    _DIR["path"] = None if path is None else Path(path)


def data_dir():
    """The per-user data folder (QStandardPaths AppDataLocation)."""
    if _DIR["path"] is not None:
        return _DIR["path"]
    loc = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(loc) if loc else Path.home() / ".local" / "share" / settings.APPLICATION


def autosave_path():
    return data_dir() / AUTOSAVE_NAME


def marker_path():
    return data_dir() / MARKER_NAME


def pid_alive(pid):
    """True if a process with this id runs (any user)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)
        return bool(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_marker():
    """The PID in the marker file, 0 if unreadable, None if there is no marker."""
    try:
        text = marker_path().read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return 0
    return int(text) if text.isdigit() else 0


def ask_restore(parent, path):
    """Ask whether to restore the autosaved session; True for yes."""
    answer = QMessageBox.question(
        parent, "Restore session?",
        "rnnviewer did not exit cleanly last time.\n\n"
        f"Restore the session saved automatically before that?\n({path})",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.Yes)
    return answer == QMessageBox.StandardButton.Yes


class Autosaver(QObject):
    """Owns the marker and the autosave timer of one window.

    `claim()` when the window starts: writes the marker and says whether the last run
    crashed; `save_now()` asks the worker to autosave; `close()` on a clean quit.
    """

    def __init__(self, window, minutes=None):
        super().__init__(window)
        self.window = window
        if minutes is None:
            minutes = settings.get_float("autosave/minutes", DEFAULT_MINUTES)
        self.minutes = max(0.0, minutes)
        self.owner = False             # this process wrote the marker
        self.crashed = False           # the last run left its marker behind
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_timer_timeout)

    def claim(self):
        """Write our marker; True if the last run crashed and left an autosave to restore.
        Another instance still running keeps its marker, and this window does not autosave."""
        pid = read_marker()
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            log.info("another rnnviewer (pid %d) is running: autosave off here", pid)
            return False
        self.crashed = pid is not None and pid != os.getpid()
        try:
            data_dir().mkdir(parents=True, exist_ok=True)
            marker_path().write_text(str(os.getpid()), encoding="ascii")
        except OSError as e:
            log.warning("cannot write %s: %s (autosave off)", marker_path(), e)
            return False
        self.owner = True
        if self.minutes > 0:
            self._timer.start(int(self.minutes * 60_000))
        return self.crashed and autosave_path().is_file()

    def restore_path(self):
        """The autosave to open at start, if the last run crashed and the user agrees."""
        path = autosave_path()
        if self.claim() and ask_restore(self.window, path):
            return str(path)
        return None

    def is_autosave(self, path):
        return bool(path) and Path(path).resolve() == autosave_path().resolve()

    @Slot()
    def _on_timer_timeout(self):
        self.save_now()

    def save_now(self):
        """Ask the worker to autosave between two steps (it skips an unchanged session)."""
        worker = self.window.worker
        if self.owner and worker is not None:
            worker.autosave(str(autosave_path()))

    def close(self):
        """A clean quit: autosave as the worker stops, then remove the marker."""
        self._timer.stop()
        worker = self.window.worker
        if self.owner and worker is not None:
            worker.set_final_save(str(autosave_path()))

    def release(self):
        """Remove our marker (after the worker stopped)."""
        if not self.owner:
            return
        self.owner = False
        if read_marker() == os.getpid():
            try:
                marker_path().unlink()
            except OSError:
                pass
