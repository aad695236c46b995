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
import host_libs  # noqa: E402
import icu_data  # noqa: E402
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


def test_spec_bundles_its_own_files_and_no_scipy():
    text = SPEC.read_text()
    assert "scipy" in spec_excludes()              # the kernels bind numpy's OpenBLAS
    assert "cython_blas" not in text
    assert "collect_submodules(" in text and '"rnnviewer"' in text   # panels imported by name
    for rel in ("packaging/launcher.py", "packaging/hooks/pyi_rth_rnnviewer.py"):
        assert (ROOT / rel).is_file()
    assert '"packaging" / "launcher.py"' in text
    assert '"hooks" / "pyi_rth_rnnviewer.py"' in text


def test_spec_excludes_nothing_known_unsafe():
    unsafe = {"colorama", "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "numba.cuda",
              "numpy", "numpy.linalg", "numpy.random", "PySide6.QtSvg", "PySide6.QtWidgets",
              "pyqtgraph", "pyqtgraph.exporters", "pyqtgraph.parametertree", "llvmlite",
              "ctypes", "unittest", "pydoc"}
    assert not unsafe & set(spec_excludes())


# Excluded modules rnnviewer may import inside a function, on a path the bundle never takes:
# (file, module) -> why. Anything else excluded and imported fails the test below.
ALLOWED_FALLBACKS = {
    ("rnnviewer/engine/kernels/blas.py", "scipy"):
        "SciPy's BLAS only when numpy has no OpenBLAS; the bundled numpy wheel has it",
}


def _imports(path):
    """(module, inside a function) for every import statement of `path`."""
    tree = ast.parse(path.read_text(), str(path))
    nested = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            nested.update(id(n) for n in ast.walk(fn) if n is not fn)
    for node in ast.walk(tree):
        lazy = id(node) in nested
        if isinstance(node, ast.Import):
            yield from ((a.name, lazy) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, lazy
            yield from ((f"{node.module}.{a.name}", lazy) for a in node.names)


def _excluded(mod, excluded):
    return next((ex for ex in excluded if mod == ex or mod.startswith(ex + ".")), None)


def test_rnnviewer_imports_nothing_the_spec_excludes():
    excluded = spec_excludes()
    bad = []
    for path in sorted((ROOT / "rnnviewer").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for mod, lazy in _imports(path):
            ex = _excluded(mod, excluded)
            if ex and not (lazy and (rel, ex) in ALLOWED_FALLBACKS):
                bad.append(f"{rel} imports {mod}" + ("" if lazy else " at module level"))
    assert not bad, "the frozen app lacks these (drop them from the spec's excludes):\n" + "\n".join(bad)


def test_import_guard_sees_lazy_and_module_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import scipy.linalg\ndef g():\n    from scipy import linalg\n")
    assert sorted(_imports(f)) == [("scipy", True), ("scipy.linalg", False),
                                   ("scipy.linalg", True)]
    assert _excluded("scipy.linalg", ["scipy"]) == "scipy" and _excluded("scipyx", ["scipy"]) is None


def test_allowed_fallbacks_are_still_lazy_imports():
    for (rel, mod), why in ALLOWED_FALLBACKS.items():
        found = [lazy for m, lazy in _imports(ROOT / rel) if _excluded(m, [mod])]
        assert found and all(found), f"{rel}: {mod} should be imported lazily ({why})"


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


def test_prune_drops_host_libraries_what_only_they_need_and_links_to_them(monkeypatch):
    graph = {"/gui": ["libX11.so.6", "libfontconfig.so.1", "libdbus-1.so.3", "libzstd.so.1"],
             "/x11": [], "/fc": ["libfreetype.so.6"], "/ft": ["libpng16.so.16"], "/png": [],
             "/dbus": ["libsystemd.so.0"], "/sd": ["libzstd.so.1", "libgcrypt.so.20"],
             "/gcrypt": [], "/zstd": [], "/np": [], "/gf": []}
    monkeypatch.setattr(bundle_filter, "elf_needed", lambda path: graph.get(path, []))
    binaries = [("PySide6/Qt/lib/libQt6Gui.so.6", "/gui", "BINARY"),
                ("libX11.so.6", "/x11", "BINARY"), ("libfontconfig.so.1", "/fc", "BINARY"),
                ("libfreetype.so.6", "/ft", "BINARY"), ("libpng16.so.16", "/png", "BINARY"),
                ("libdbus-1.so.3", "/dbus", "BINARY"), ("libsystemd.so.0", "/sd", "BINARY"),
                ("libgcrypt.so.20", "/gcrypt", "BINARY"), ("libzstd.so.1", "/zstd", "BINARY"),
                ("numpy.libs/libgfortran-1.so.5", "/gf", "BINARY"),          # a wheel's own
                ("numpy/_core/_multiarray_umath.so", "/np", "EXTENSION")]
    datas = [("libQt6Gui.so.6", "PySide6/Qt/lib/libQt6Gui.so.6", "SYMLINK")]
    b, d, gone = bundle_filter.prune(binaries, datas, platform="linux")
    assert [e[0] for e in b] == ["PySide6/Qt/lib/libQt6Gui.so.6", "libzstd.so.1",
                                 "numpy.libs/libgfortran-1.so.5",
                                 "numpy/_core/_multiarray_umath.so"]
    assert d == datas                          # the link to a kept library stays
    assert gone == sorted(["libX11.so.6", "libfontconfig.so.1", "libfreetype.so.6",
                           "libpng16.so.16", "libdbus-1.so.3", "libsystemd.so.0",
                           "libgcrypt.so.20"])
    b, d, gone = bundle_filter.prune(binaries, datas, platform="win32")
    assert b == binaries and d == datas and gone == []


def test_prune_drops_links_to_dropped_libraries():
    binaries = [("PySide6/Qt/plugins/platforms/libqvnc.so", "/nonexistent/vnc", "BINARY")]
    datas = [("libqvnc.so", "PySide6/Qt/plugins/platforms/libqvnc.so", "SYMLINK"),
             ("resources/x.txt", "/nonexistent/x", "DATA")]
    b, d, gone = bundle_filter.prune(binaries, datas, platform="linux")
    assert b == [] and d == datas[1:] and "libqvnc.so" in gone


def test_host_library_list_follows_the_appimage_excludelist():
    host = set(bundle_filter.HOST_LIBS_LINUX)
    # on the excludelist: never bundle
    assert {"libstdc++.so.6", "libgcc_s.so.1", "libX11.so.6", "libfontconfig.so.1",
            "libfreetype.so.6", "libz.so.1", "libgpg-error.so.0"} <= host
    # bundled on purpose (the excludelist keeps GLib private; xcb helpers, xkbcommon,
    # zstd are not on it) or needed from the wheels
    assert not {"libglib-2.0.so.0", "libgthread-2.0.so.0", "libxkbcommon.so.0",
                "libxcb-cursor.so.0", "libzstd.so.1", "libpython3.11.so.1.0"} & host
    assert not bundle_filter.is_host_lib("numpy.libs/libz.so.1")   # only top-level copies


def test_host_libs_lists_what_the_bundle_lacks(tmp_path, monkeypatch):
    files = {"_internal/PySide6/Qt/lib/libQt6Gui.so.6": ["libX11.so.6", "libQt6Core.so.6",
                                                         "libc.so.6"],
             "_internal/PySide6/Qt/lib/libQt6Core.so.6": ["libstdc++.so.6"],
             "_internal/PySide6/Qt/plugins/platforms/libqwayland.so": ["libwayland-client.so.0"],
             "_internal/numba/np/ufunc/tbbpool.so": ["libtbb.so.12"],
             "_internal/resources/notes.txt": ["libnever.so.1"]}    # not a library
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.setattr(host_libs, "elf_needed",
                        lambda path: files[Path(path).relative_to(tmp_path).as_posix()])
    found = host_libs.scan(tmp_path / "_internal")
    assert sorted(found) == ["libX11.so.6", "libstdc++.so.6", "libtbb.so.12",
                             "libwayland-client.so.0"]
    assert not host_libs.is_optional(found["libX11.so.6"])
    assert host_libs.is_optional(found["libwayland-client.so.0"])
    assert host_libs.is_optional(found["libtbb.so.12"])


# ------------------------------------------------------------------ ICU data
def _fake_icu(items):
    header = struct.pack("<HBB", 32, 0xDA, 0x27) + struct.pack("<HH", 20, 0) + \
        bytes([0, 0, 2, 0]) + b"CmnD" + bytes([1, 0, 0, 0]) + bytes(12)
    return icu_data.write_common(header, items)


def test_icu_common_data_round_trip_and_shrink():
    items = [("icudt73l/brkitr/cjdict.dict", b"D" * 40), ("icudt73l/cnvalias.icu", b"a" * 20),
             ("icudt73l/coll/de.res", b"c" * 17), ("icudt73l/en.res", b"e" * 16),
             ("icudt73l/gb18030.cnv", b"g" * icu_data.BIG_CONVERTER),
             ("icudt73l/ibm-5348_P100-1997.cnv", b"w" * 100), ("icudt73l/lang/de.res", b"l"),
             ("icudt73l/zone/de.res", b"z"), ("icudt73l/zone/en_GB.res", b"z"),
             ("icudt73l/zone/pool.res", b"p"), ("icudt73l/zone/root.res", b"r")]
    blob = _fake_icu(items)
    header, back = icu_data.read_common(blob)
    assert [n for n, _ in back] == [n for n, _ in items]
    assert all(b[:len(o)] == o and not b[len(o):].strip(b"\0") for (_, b), (_, o) in zip(back, items))
    assert icu_data.write_common(header, back) == blob
    small, dropped = icu_data.shrink(blob)
    assert dropped == ["icudt73l/brkitr/cjdict.dict", "icudt73l/gb18030.cnv",
                       "icudt73l/lang/de.res", "icudt73l/zone/de.res"]
    _, kept = icu_data.read_common(small)
    names = [n for n, _ in kept]
    assert names == [n for n, _ in items if n not in dropped]
    for (_, b), name in zip(kept, names):
        assert len(b) % 16 == 0 or name == names[-1]
    with pytest.raises(ValueError):
        icu_data.read_common(b"\0" * 64)
    assert icu_data.data_symbol("/x/libicudata.so.73") == "icudt73_dat"


def _pyside_icu():
    try:
        import PySide6
    except ImportError:
        return None
    found = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    return found[0] if found else None


ICU_PROBE = """
import functools, sys
from PySide6.QtCore import QCollator, QLocale, QStringDecoder, QTimeZone
words = ["zebra", "Apfel", "apple", "Oel", "ångström", "Zürich", "a10", "a9", "öl"]
for loc in ("de_DE", "sv_SE"):
    print(loc, sorted(words, key=functools.cmp_to_key(QCollator(QLocale(loc)).compare)))
print(QLocale("tr_TR").toUpper("istanbul"), QLocale("de_DE").toUpper("straße"))
tz = QTimeZone(b"Europe/Berlin")
print(tz.isValid(), tz.displayName(QTimeZone.TimeType.StandardTime,
                                   QTimeZone.NameType.LongName, QLocale("en_US")))
print([QStringDecoder(c).isValid() for c in ("windows-1252", "ISO-8859-15", "KOI8-R")])
print(QStringDecoder("Shift_JIS").isValid())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reduced ICU is Linux only")
def test_reduced_icu_serves_every_icu_call_qt_makes(tmp_path):
    src = _pyside_icu()
    if src is None or icu_data.tools() is None:
        pytest.skip("needs PySide6's libicudata and binutils (as, ld)")
    out = tmp_path / src.name
    before, after = icu_data.shrink_library(src, out)
    assert after < before * 0.4
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}

    def probe(preload=None):
        e = dict(env, LD_PRELOAD=str(preload)) if preload else env
        r = subprocess.run([sys.executable, "-c", ICU_PROBE], env=e, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    full, small = probe(), probe(out)
    assert small[:-1] == full[:-1]        # collation, case mapping, zones, one-byte codecs
    assert full[-1] == "True" and small[-1] == "False"    # multi-byte codecs are dropped
    maps = subprocess.run([sys.executable, "-c", "from PySide6 import QtCore; "
                           "print(open('/proc/self/maps').read())"],
                          env=dict(env, LD_PRELOAD=str(out)), capture_output=True, text=True)
    assert str(out) in maps.stdout and str(src) not in maps.stdout    # the reduced one ran


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
