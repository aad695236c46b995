"""resource_path(): the bundled `resources/` folder, from source, installed or frozen."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # .../rnnviewer


def _candidates() -> list[Path]:
    out = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # PyInstaller bundle
        out.append(Path(meipass) / "resources")
    if (_HERE.parent / "pyproject.toml").is_file():  # source checkout: <repo>/resources
        out.append(_HERE.parent / "resources")
    out.append(_HERE / "_resources")  # installed: pyproject maps resources/ to rnnviewer._resources
    return out


def resources_root() -> Path:
    """The resources folder: frozen app, source checkout or installed copy, first found."""
    cands = _candidates()
    for c in cands:
        if c.is_dir():
            return c
    raise FileNotFoundError("rnnviewer resources folder not found; looked in "
                            + ", ".join(str(c) for c in cands))


def resource_path(*parts: str) -> Path:
    """Path of a file or folder under resources/, e.g. resource_path("corpora", "prose.txt")."""
    return resources_root().joinpath(*parts)
