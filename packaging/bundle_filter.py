"""Drop what the frozen app never uses from PyInstaller's lists (imported by rnnviewer.spec).

What goes (each removal was checked with the frozen --self-test and a real window under
Xvfb, see packaging/README.md):
- Qt's translations (rnnviewer's UI is English only): everywhere.
- On Linux, Qt plugins for targets the app does not run on: the GTK3 platform theme
  (it drags in cairo, pango, gdk-pixbuf and friends), framebuffer/EGLFS/VNC/Vulkan-display
  platforms and their input plugins, TUIO touch over the network, rarely used image formats.
  Kept: xcb, wayland, offscreen and minimal platforms, the xdg-desktop-portal theme,
  SVG/ICO/GIF/JPEG image formats.
- Then, on Linux, every shared library that only the dropped files needed (an ELF
  DT_NEEDED walk): e.g. QtNetwork and Kerberos came in only for the VNC and TUIO plugins.
  A library anything kept still needs is never dropped.
"""

import re
import struct
import sys
from pathlib import PurePosixPath

# destination paths in the bundle (posix separators), matched with re.search
DROP_ALWAYS = (
    r"^PySide6/Qt/translations/",
)
DROP_LINUX = (
    r"^PySide6/Qt/plugins/platformthemes/libqgtk3\.so$",
    r"^PySide6/Qt/plugins/platforms/libq(linuxfb|eglfs|minimalegl|vnc|vkkhrdisplay)\.so$",
    r"^PySide6/Qt/plugins/egldeviceintegrations/",
    r"^PySide6/Qt/plugins/generic/",
    r"^PySide6/Qt/plugins/imageformats/libq(tiff|webp|tga|wbmp|icns)\.so$",
)


def elf_needed(path):
    """DT_NEEDED names of an ELF file ([] when it is not a readable 64/32-bit ELF)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        sh_fmt, dyn_fmt = end + "IIQQQQIIQQ", end + "qQ"
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        sh_fmt, dyn_fmt = end + "IIIIIIIIII", end + "iI"
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for sec in sections:
        if sec[1] != 6:  # SHT_DYNAMIC
            continue
        offset, size, link = sec[4], sec[5], sec[6]
        strtab = sections[link]
        str_off = strtab[4]
        step = struct.calcsize(dyn_fmt)
        for pos in range(offset, offset + size, step):
            tag, val = struct.unpack_from(dyn_fmt, data, pos)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                name_end = data.index(b"\0", str_off + val)
                out.append(data[str_off + val:name_end].decode())
    return out


def _dest(entry):
    return PurePosixPath(entry[0].replace("\\", "/")).as_posix()


def _matches(dest, patterns):
    return any(re.search(p, dest) for p in patterns)


def orphans(binaries, dropped):
    """Entries of `binaries` needed (transitively) only by the `dropped` entries."""
    by_name = {}
    for e in binaries:
        by_name.setdefault(PurePosixPath(_dest(e)).name, e)
    needs = {_dest(e): elf_needed(e[1]) for e in binaries + dropped}

    def closure(roots):
        seen, todo = set(), [_dest(e) for e in roots]
        while todo:
            for name in needs.get(todo.pop(), ()):
                dep = by_name.get(name)
                if dep is not None and _dest(dep) not in seen:
                    seen.add(_dest(dep))
                    todo.append(_dest(dep))
        return seen

    from_dropped = closure(dropped)
    kept_roots = [e for e in binaries if _dest(e) not in from_dropped]
    from_kept = closure(kept_roots)
    gone = from_dropped - from_kept
    return [e for e in binaries if _dest(e) in gone]


def prune(binaries, datas, platform=sys.platform):
    """(binaries, datas, dropped destination paths) without what the app never uses."""
    patterns = DROP_ALWAYS + (DROP_LINUX if platform.startswith("linux") else ())
    dropped = [e for e in binaries + datas if _matches(_dest(e), patterns)]
    gone = {_dest(e) for e in dropped}
    binaries = [e for e in binaries if _dest(e) not in gone]
    datas = [e for e in datas if _dest(e) not in gone]
    if platform.startswith("linux"):
        extra = orphans(binaries, dropped)
        gone |= {_dest(e) for e in extra}
        binaries = [e for e in binaries if _dest(e) not in gone]
    return binaries, datas, sorted(gone)
