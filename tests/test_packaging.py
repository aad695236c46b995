"""Fast checks of the packaging files (the real build and frozen run: packaging/smoke.sh)."""

import ast
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"
SPEC = PACKAGING / "rnnviewer.spec"
sys.path.insert(0, str(PACKAGING))

import bundle_filter  # noqa: E402
import make_icons  # noqa: E402
import strip_bundle  # noqa: E402


# ------------------------------------------------------------------ spec
def _spec_tree():
    return ast.parse(SPEC.read_text(), str(SPEC))


def _assigned(name):
    for node in ast.walk(_spec_tree()):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return node.value
    raise AssertionError(f"{SPEC.name} assigns no {name!r}")


def _call_kwargs(func):
    for node in ast.walk(_spec_tree()):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == func:
            return {k.arg: k.value for k in node.keywords}
    raise AssertionError(f"{SPEC.name} never calls {func}()")


def spec_excludes():
    return ast.literal_eval(_assigned("excludes"))


def test_spec_builds_one_folder_with_sources_as_py():
    analysis = _call_kwargs("Analysis")
    assert ast.literal_eval(analysis["module_collection_mode"]) == {"rnnviewer": "py"}
    exe = _call_kwargs("EXE")
    assert ast.literal_eval(exe["exclude_binaries"]) is True      # one-folder: COLLECT holds them
    _call_kwargs("COLLECT")
    for call in ("EXE", "COLLECT"):                                 # strip=True breaks OpenBLAS
        assert ast.literal_eval(_call_kwargs(call)["strip"]) is False


def test_spec_bundles_scipy_blas_and_its_own_files():
    text = SPEC.read_text()
    for name in ("scipy.linalg.cython_blas", "scipy.linalg.cython_lapack"):
        assert f'"{name}"' in text
    assert 'collect_submodules("rnnviewer"' in text              # panels are imported by name
    for rel in ("packaging/launcher.py", "packaging/hooks/pyi_rth_rnnviewer.py"):
        assert (ROOT / rel).is_file()
    assert '"packaging" / "launcher.py"' in text
    assert '"hooks" / "pyi_rth_rnnviewer.py"' in text


def test_spec_excludes_nothing_known_unsafe():
    unsafe = {"colorama", "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "numba.cuda",
              "scipy", "scipy.linalg", "scipy._lib", "numpy", "PySide6.QtSvg"}
    assert not unsafe & set(spec_excludes())


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_rnnviewer_imports_nothing_the_spec_excludes():
    excluded = spec_excludes()
    bad = []
    for path in sorted((ROOT / "rnnviewer").rglob("*.py")):
        for mod in _imports(path):
            if any(mod == ex or mod.startswith(ex + ".") for ex in excluded):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "the frozen app lacks these (drop them from the spec's excludes):\n" + "\n".join(bad)


def test_constraints_satisfy_pyproject():
    tomllib = pytest.importorskip("tomllib")
    req_mod = pytest.importorskip("packaging.requirements")
    pins = {}
    for line in (PACKAGING / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["package"]:
        req = req_mod.Requirement(dep)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = req.name.lower()
        assert name in pins, f"packaging/constraints.txt pins no {name}"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, pyproject wants {dep}"


def test_shell_scripts_parse():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    for script in ("build.sh", "smoke.sh"):
        subprocess.run([bash, "-n", str(PACKAGING / script)], check=True)


# ------------------------------------------------------------------ runtime hook
def test_runtime_hook_keys_numba_cache_and_logs_when_windowed(tmp_path):
    code = (
        "import os, sys, runpy\n"
        "sys.stdout = None\n"
        f"runpy.run_path({str(PACKAGING / 'hooks' / 'pyi_rth_rnnviewer.py')!r})\n"
        "sys.stdout.write('hello from a windowed app\\n'); sys.stdout.flush()\n"
        "sys.stderr.write(os.environ['NUMBA_CACHE_DIR'] + '\\n')\n"
        "assert 'numba' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    cache = Path(r.stderr.strip().splitlines()[-1])
    assert cache.parent == tmp_path / "rnnviewer" and cache.name.startswith("numba-"), cache
    assert cache.is_dir()
    from rnnviewer.app import source_hash
    assert cache.name == f"numba-{source_hash()}"
    assert "hello from a windowed app" in (tmp_path / "rnnviewer" / "rnnviewer.log").read_text()


# ------------------------------------------------------------------ bundle filter / strip
def test_prune_drops_translations_and_unused_linux_plugins():
    binaries = [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/nonexistent/a", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", "/nonexistent/b", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqvnc.so", "/nonexistent/c", "BINARY"),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/nonexistent/d", "BINARY"),
        ("PySide6/Qt/plugins/imageformats/libqsvg.so", "/nonexistent/e", "BINARY"),
    ]
    datas = [("PySide6/Qt/translations/qt_de.qm", "/nonexistent/f", "DATA"),
             ("resources/icons/rnnviewer.png", "/nonexistent/g", "DATA")]
    b, d, gone = bundle_filter.prune(binaries, datas, platform="linux")
    assert [e[0] for e in b] == ["PySide6/Qt/plugins/platforms/libqxcb.so",
                                 "PySide6/Qt/plugins/platforms/libqoffscreen.so",
                                 "PySide6/Qt/plugins/imageformats/libqsvg.so"]
    assert [e[0] for e in d] == ["resources/icons/rnnviewer.png"]
    b, d, gone = bundle_filter.prune(binaries, datas, platform="win32")
    assert len(b) == len(binaries) and gone == ["PySide6/Qt/translations/qt_de.qm"]


def test_orphans_keeps_libraries_anything_kept_needs(monkeypatch):
    graph = {"/p": ["libA.so.1"], "/a": ["libB.so.1"], "/b": [], "/k": ["libB.so.1"],
             "/c": ["libC.so.1"], "/cc": []}
    monkeypatch.setattr(bundle_filter, "elf_needed", lambda path: graph[path])
    kept = [("libA.so.1", "/a", "BINARY"), ("libB.so.1", "/b", "BINARY"),
            ("PySide6/QtCore.abi3.so", "/k", "EXTENSION"), ("libC.so.1", "/cc", "BINARY"),
            ("x/uses_c.so", "/c", "EXTENSION")]
    dropped = [("PySide6/Qt/plugins/platforms/libqvnc.so", "/p", "BINARY")]
    assert [e[0] for e in bundle_filter.orphans(kept, dropped)] == ["libA.so.1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF only on Linux")
def test_elf_needed_reads_a_real_extension_module():
    import numpy._core._multiarray_umath as m
    needed = bundle_filter.elf_needed(m.__file__)
    assert "libc.so.6" in needed or any(n.startswith("libc.") for n in needed), needed
    assert bundle_filter.elf_needed(__file__) == []


def test_strip_skips_wheel_libs_folders_and_the_executable(tmp_path):
    elf = b"\x7fELF" + b"\0" * 60
    for rel in ("rnnviewer", "_internal/numpy.libs/libopenblas.so", "_internal/scipy.libs/x.so.1",
                "_internal/PySide6/Qt/lib/libQt6Core.so.6", "_internal/foo.cpython-311.so",
                "_internal/notes.so.txt"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(elf if not rel.endswith(".txt") else b"text")
    got = sorted(p.relative_to(tmp_path).as_posix() for p in strip_bundle.strippable(tmp_path))
    assert got == ["_internal/PySide6/Qt/lib/libQt6Core.so.6", "_internal/foo.cpython-311.so"]


# ------------------------------------------------------------------ desktop file
def test_desktop_file_has_required_keys():
    cp = ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str
    cp.read(ROOT / "resources" / "rnnviewer.desktop", encoding="utf-8")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "rnnviewer %F"
    assert entry["Icon"] == "rnnviewer"
    assert entry["StartupWMClass"] == "rnnviewer"
    assert entry["Name"] and entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")


def test_desktop_file_validates():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate not installed (apt-get install desktop-file-utils)")
    r = subprocess.run([tool, str(ROOT / "resources" / "rnnviewer.desktop")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "error" not in r.stdout + r.stderr, r.stdout + r.stderr


# ------------------------------------------------------------------ icons
def png_size(data):
    """(width, height) of PNG bytes, checking the signature and the IHDR chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    crc, = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(data[12:29]), "bad IHDR CRC"
    assert data.endswith(b"IEND\xaeB`\x82"), "truncated PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("size", make_icons.PNG_SIZES)
def test_png_icon_in_every_size(size):
    data = (ICONS / f"rnnviewer-{size}.png").read_bytes()
    assert png_size(data) == (size, size)
    assert data[25] == 6, "expected RGBA (colour type 6)"


def test_svg_and_window_icon():
    root = ET.parse(ICONS / "rnnviewer.svg").getroot()
    assert root.tag.endswith("svg") and root.get("viewBox") == "0 0 512 512"
    assert png_size((ICONS / "rnnviewer.png").read_bytes()) == (256, 256)


def test_ico_holds_png_entries_16_to_256():
    data = (ICONS / "rnnviewer.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", data, 0)
    assert (reserved, kind) == (0, 1)
    sizes = []
    for i in range(count):
        w, h, _, _, planes, bpp, length, offset = struct.unpack_from("<BBBBHHII", data, 6 + 16 * i)
        size = png_size(data[offset:offset + length])
        assert size == ((w or 256), (h or 256)) and bpp == 32
        sizes.append(size[0])
    assert sizes == list(make_icons.ICO_SIZES)


def test_icns_holds_png_elements_up_to_1024():
    data = (ICONS / "rnnviewer.icns").read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    pos, found = 8, {}
    while pos < len(data):
        kind, length = data[pos:pos + 4].decode(), struct.unpack(">I", data[pos + 4:pos + 8])[0]
        found[kind] = png_size(data[pos + 8:pos + length])[0]
        pos += length
    assert pos == len(data)
    assert found == {k: s for k, s in make_icons.ICNS_TYPES}


def test_icon_writers_round_trip():
    png = (ICONS / "rnnviewer-16.png").read_bytes()
    ico = make_icons.ico_bytes([(16, png), (256, png)])
    assert struct.unpack_from("<HHH", ico, 0) == (0, 1, 2) and ico[6 + 16] == 0   # 256 -> 0
    icns = make_icons.icns_bytes([("ic07", png)])
    assert icns[8:12] == b"ic07" and struct.unpack(">I", icns[12:16])[0] == 8 + len(png)


# ------------------------------------------------------------------ resources
def test_resource_path_from_source():
    from rnnviewer.resources import resource_path, resources_root
    assert resources_root() == ROOT / "resources"
    assert resource_path("icons", "rnnviewer.png").is_file()
    assert resource_path("rnnviewer.desktop").is_file()
    assert resource_path("corpora").is_dir()


def test_resource_path_frozen_prefers_meipass(tmp_path, monkeypatch):
    from rnnviewer import resources
    (tmp_path / "resources" / "icons").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_root() == tmp_path / "resources"
    assert resources.resource_path("icons") == tmp_path / "resources" / "icons"
