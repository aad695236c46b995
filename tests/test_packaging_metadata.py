"""pyproject.toml lists every subpackage (explicit list, because resources/ is mapped in)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "rnnviewer").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject [tool.setuptools] packages: {sorted(found - listed)}"


def test_pyside_pinned_below_6_12_on_python_311():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = cfg["project"]["dependencies"]
    pins = [d for d in deps if d.lower().startswith("pyside6-essentials")]
    assert any("<6.12" in d and "python_version < '3.12'" in d for d in pins), pins
