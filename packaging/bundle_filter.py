"""Drop what the frozen app never uses from PyInstaller's lists (imported by rnnviewer.spec).

What goes (each removal was checked with the frozen --self-test and a real window under
Xvfb, see packaging/README.md):
- Qt's translations (rnnviewer's UI is English only): everywhere.
- On Linux, Qt plugins for targets the app does not run on: the GTK3 platform theme
  (it drags in cairo, pango, gdk-pixbuf and friends), framebuffer/EGLFS/VNC/Vulkan-display
  platforms and their input plugins, TUIO touch over the network, rarely used image formats.
  Kept: xcb, wayland, offscreen and minimal platforms, the xdg-desktop-portal theme,
  SVG/ICO/GIF/JPEG image formats.
- On Linux, the Wayland plugins a desktop client never loads: the server-buffer
  integrations (for Qt-based compositors sharing buffers with clients) and the IVI,
  fullscreen, wl-shell and qt-shell shells (kept: xdg-shell and the decorations).
- On Linux, the system libraries the host provides and must provide (HOST_LIBS_LINUX;
  reference: the AppImage project's excludelist, pkg2appimage/excludelist).
- Then, on Linux, every shared library that only the dropped files needed (an ELF
  DT_NEEDED walk): e.g. QtNetwork and Kerberos came in only for the VNC and TUIO plugins,
  libsystemd and libgcrypt only for libdbus. A library anything kept still needs is never
  dropped. Links PyInstaller made to a dropped library go with it.
"""

import posixpath
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
    r"^PySide6/Qt/plugins/wayland-graphics-integration-client/lib(dmabuf|drm-egl|shm-emulation|vulkan)-server\.so$",
    r"^PySide6/Qt/plugins/wayland-shell-integration/lib(ivi-shell|fullscreen-shell-v1|wl-shell-plugin|qt-shell)\.so$",
)

# System libraries the bundle must take from the host (Linux; the copies PyInstaller finds
# on the build machine land at the top of _internal/). The reference is the AppImage
# excludelist: libraries present on every desktop Linux whose bundled copies break on other
# distributions (they must match the host's drivers, X server, font setup, compiler runtime
# or each other). Qt's libraries already need the host's libGL, libEGL and libxcb, which
# PyInstaller never bundles. The wheels' own copies (numpy.libs/, ...) are never touched.
HOST_LIBS_LINUX = (
    # excludelist: C++ and GCC runtime (Qt needs GLIBCXX_3.4.29, GCC 11, which every
    # distribution with glibc >= 2.34 (Qt's own minimum) has), zlib and other base libraries
    "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1", "libuuid.so.1", "libexpat.so.1",
    "libgpg-error.so.0",
    # excludelist: X11 client libraries (must match the host's libxcb) and fonts (must
    # match the host's font configuration; bundled fontconfig stalls reading a newer cache)
    "libX11.so.6", "libX11-xcb.so.1", "libfontconfig.so.1", "libfreetype.so.6",
    "libharfbuzz.so.0", "libwayland-client.so.0",
    # needed only by the host's libxcb (X authorisation): they come with it
    "libXau.so.6", "libXdmcp.so.6",
    # D-Bus, which QtGui links: the session bus is part of every desktop (portals,
    # notifications, input methods); libdbus-1.so.3 has kept its ABI since 2006. Bundled,
    # it drags in libsystemd -> libgcrypt, which needs the host's libgpg-error (on the
    # excludelist): the excludelist's own "libgcrypt.so.20: symbol gpgrt_lock_lock" failure.
    "libdbus-1.so.3",
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
    binaries = [e for e in binaries if _link_target(e) is None]   # libraries, not links
    dropped = [e for e in dropped if _link_target(e) is None]
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


def is_host_lib(dest):
    """True for a system library at the top of the bundle that the host must provide."""
    return "/" not in dest and dest in HOST_LIBS_LINUX


def _link_target(entry):
    """Destination a PyInstaller SYMLINK entry points at (None for other entries)."""
    if len(entry) < 3 or entry[2] != "SYMLINK":
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(_dest(entry)),
                                             entry[1].replace("\\", "/")))


def prune(binaries, datas, platform=sys.platform):
    """(binaries, datas, dropped destination paths) without what the app never uses."""
    linux = platform.startswith("linux")
    patterns = DROP_ALWAYS + (DROP_LINUX if linux else ())
    dropped = [e for e in binaries + datas
               if _matches(_dest(e), patterns) or (linux and is_host_lib(_dest(e)))]
    gone = {_dest(e) for e in dropped}
    binaries = [e for e in binaries if _dest(e) not in gone]
    datas = [e for e in datas if _dest(e) not in gone]
    if linux:
        extra = orphans(binaries, dropped)
        gone |= {_dest(e) for e in extra}
        binaries = [e for e in binaries if _dest(e) not in gone]
    # PyInstaller lists its links (e.g. libQt6Core.so.6 -> PySide6/Qt/lib/...) among datas
    links = {_dest(e) for e in binaries + datas if _link_target(e) in gone}
    binaries = [e for e in binaries if _dest(e) not in links]
    datas = [e for e in datas if _dest(e) not in links]
    return binaries, datas, sorted(gone | links)
