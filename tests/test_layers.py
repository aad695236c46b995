"""The dependency rule (DESIGN.md): engine imports nothing of training/ui/Qt/threading;
training imports no ui/Qt; app.py imports Qt only lazily. Checked on every import
statement of every file, found with ast."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rnnviewer"

FORBIDDEN = {
    "engine": ("rnnviewer.training", "rnnviewer.ui", "rnnviewer.app", "PySide6", "PyQt5",
               "PyQt6", "shiboken6", "pyqtgraph", "threading", "_thread"),
    "training": ("rnnviewer.ui", "rnnviewer.app", "PySide6", "PyQt5", "PyQt6", "shiboken6",
                 "pyqtgraph"),
}


def imports(path, package):
    """Every module name an import statement in `path` names (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, node.col_offset) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno, node.col_offset))
            out += [(f"{mod}.{a.name}", node.lineno, node.col_offset) for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id",
              None)) in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.lineno, node.col_offset))
    return out


def violations(layer):
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        pkg = ".".join(path.relative_to(PKG.parent).parent.parts)
        for mod, line, _ in imports(path, pkg):
            for f in FORBIDDEN[layer]:
                if mod == f or mod.startswith(f + "."):
                    bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    assert (PKG / layer).is_dir()
    assert list((PKG / layer).rglob("*.py")), f"no files in {layer}"
    assert violations(layer) == []


def test_app_imports_qt_only_inside_functions():
    tree = ast.parse((PKG / "app.py").read_text(encoding="utf-8"))
    for node in tree.body:          # module level only: function bodies import lazily
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n.startswith(("PySide6", "pyqtgraph", "rnnviewer.ui", "numba",
                                         "rnnviewer.engine", "rnnviewer.training"))
                           for n in names), ast.dump(node)


def test_checker_catches_violations(tmp_path):
    src = tmp_path / "rnnviewer" / "engine" / "bad.py"
    src.parent.mkdir(parents=True)
    src.write_text("import threading\nfrom ..ui import main_window\n"
                   "from PySide6.QtCore import QObject\nimport importlib\n"
                   "importlib.import_module('pyqtgraph')\n")
    found = {m for m, _, _ in imports(src, "rnnviewer.engine")}
    assert {"threading", "rnnviewer.ui", "PySide6.QtCore", "pyqtgraph"} <= found
