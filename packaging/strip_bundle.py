"""Strip the shared libraries of a one-folder bundle, after PyInstaller has built it.

`strip=True` in the spec breaks numpy: the wheels' `*.libs/` folders hold libraries
rewritten by auditwheel/patchelf (OpenBLAS, gfortran), and stripping them gives
"ELF load command address/offset not page-aligned" (NOTES.md). This strips every other
ELF shared library with `strip --strip-unneeded` and leaves alone the `*.libs/` folders
and the executable (in one-folder mode it carries PyInstaller's archive at its end).

    python packaging/strip_bundle.py dist/rnnviewer      # prints the bytes saved
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def strippable(bundle):
    """ELF shared libraries under `bundle` outside any `*.libs/` folder."""
    out = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle)
        if path.is_symlink() or not path.is_file() or len(rel.parts) == 1:
            continue  # the top-level files are the executables (archive appended)
        if any(part.endswith(".libs") for part in rel.parts[:-1]):
            continue
        if ".so" in path.name and is_elf(path):
            out.append(path)
    return out


def strip_bundle(bundle, strip="strip"):
    """Strip the libraries in place; returns (files stripped, bytes saved)."""
    files = strippable(bundle)
    before = sum(p.stat().st_size for p in files)
    for i in range(0, len(files), 200):
        subprocess.run([strip, "--strip-unneeded", *map(str, files[i:i + 200])], check=True)
    after = sum(p.stat().st_size for p in files)
    return len(files), before - after


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="the one-folder bundle, e.g. dist/rnnviewer")
    args = ap.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("strip_bundle: Linux only; skipped")
        return 0
    strip = shutil.which("strip")
    if strip is None:
        print("strip_bundle: no `strip` on PATH (binutils); skipped")
        return 0
    if not args.bundle.is_dir():
        print(f"strip_bundle: {args.bundle}: no such folder", file=sys.stderr)
        return 2
    n, saved = strip_bundle(args.bundle, strip)
    print(f"stripped {n} libraries, saved {saved / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
