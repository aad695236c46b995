"""Which system libraries a Linux bundle takes from the host, and whether this host has them.

Walks every ELF file of the bundle (DT_NEEDED, bundle_filter.elf_needed) and lists the
libraries no file of the bundle provides, with what needs them. "optional" marks those
needed only by Qt plugins the app loads on demand (Wayland, GLX/EGL integration, input
methods, ...) or numba's optional threading layers: a missing one disables that part, it
does not stop the app. Each is
looked up in the host's linker cache (`ldconfig -p`).

    python packaging/host_libs.py dist/rnnviewer        # exit 1 if a required one is missing
"""

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_filter import elf_needed  # noqa: E402

# Provided by the C library itself: never a question
GLIBC = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
         "libutil.so.1", "libresolv.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
         "libanl.so.1")
# loaded on demand, a missing library only skips them: Qt's plugins, numba's TBB and
# OpenMP threading layers (numba falls back to its own workqueue layer)
OPTIONAL_DIRS = ("PySide6/Qt/plugins/", "numba/np/ufunc/tbbpool", "numba/np/ufunc/omppool")


def scan(bundle):
    """{library name: [bundle files needing it]} for what the bundle itself lacks."""
    bundle = Path(bundle)
    files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]
    provided = {p.name for p in bundle.rglob("*") if ".so" in p.name}
    missing = {}
    for path in files:
        if ".so" not in path.name and path.parent != bundle:
            continue
        for name in elf_needed(path):
            if name not in provided and name not in GLIBC:
                missing.setdefault(name, []).append(path.relative_to(bundle).as_posix())
    return missing


def is_optional(users):
    """True if only on-demand Qt plugins (or libraries only they use) need it."""
    return all(any(d in u for d in OPTIONAL_DIRS) or "Wayland" in u or "WlShell" in u
               for u in users)


def host_libraries():
    """Library names in this host's linker cache (empty set without ldconfig)."""
    for tool in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([tool, "-p"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    return set()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="the one-folder bundle, e.g. dist/rnnviewer")
    args = ap.parse_args(argv)
    missing = scan(args.bundle)
    have = host_libraries()
    bad = []
    for name in sorted(missing, key=lambda n: (is_optional(missing[n]), n)):
        users = missing[name]
        kind = "optional" if is_optional(users) else "required"
        state = "found" if name in have else ("MISSING" if have else "?")
        if kind == "required" and state == "MISSING":
            bad.append(name)
        example = Path(users[0]).name + (f" +{len(users) - 1}" if len(users) > 1 else "")
        print(f"{name:28s} {kind:8s} {state:8s} (needed by {example})")
    if bad:
        print(f"host lacks required libraries: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
