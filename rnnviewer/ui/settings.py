"""QSettings access: organisation/application names, recent files, last run settings.

Settings live in one INI file on every platform (~/.config/rnnviewer/rnnviewer.ini on
Linux); tests and portable runs move it with `use_settings_dir(path)`. Every reader
tolerates a damaged file: a value of the wrong type or shape reads as the default.
"""

import json
import math
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "rnnviewer"
APPLICATION = "rnnviewer"
MAX_RECENT = 8


def use_settings_dir(path):
    """Store settings as INI files under `path` (tests, portable runs)."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))


def settings():
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                     ORGANIZATION, APPLICATION)


def recent_files():
    """Recent session files, newest first, only those that still exist."""
    raw = settings().value("recent_files", [])
    if isinstance(raw, str):
        raw = [raw]
    return [p for p in (raw or []) if isinstance(p, str) and Path(p).is_file()]


def add_recent_file(path):
    path = str(Path(path).resolve())
    files = [path] + [p for p in recent_files() if p != path]
    settings().setValue("recent_files", files[:MAX_RECENT])
    return files[:MAX_RECENT]


def clear_recent_files():
    settings().setValue("recent_files", [])


def load_json(key, default=None):
    """A JSON value stored under `key` (default if absent or unreadable)."""
    raw = settings().value(key)
    if not isinstance(raw, str):
        return default
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):   # damaged, or nested deeper than json can go
        return default


def save_json(key, value):
    settings().setValue(key, json.dumps(value))


def get_bool(key, default=False):
    v = settings().value(key, default)
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)


def get_float(key, default=0.0):
    """A finite float stored under `key`; `default` if absent, damaged or not finite."""
    try:
        v = float(settings().value(key, default))
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def set_value(key, value):
    settings().setValue(key, value)
