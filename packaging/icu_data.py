"""A smaller ICU data library for the Linux bundle: only the data Qt can reach.

PySide6's QtCore links ICU, and `libicudata.so.<N>` (31 MB, the largest file after
llvmlite) holds ICU's whole data package. Qt 6 calls only these ICU services (the
`_73`-suffixed symbols QtCore imports: `nm -D --undefined-only libQt6Core.so.6`):
collation (`ucol_*`: QCollator), character-set conversion (`ucnv_*`: QStringConverter
for codecs Qt has no built-in for), time zones (`ucal_*`: QTimeZone ids and display names)
and locale case mapping (`u_strToUpper/Lower`: built into ICU's code, no data). So this
drops the trees only other ICU services read: break iterators and their dictionaries
(`brkitr/`), unit, currency, language and region display names (`unit/`, `curr/`, `lang/`,
`region/`), transliteration (`translit/`), spelled-out numbers (`rbnf/`); time zone names
for locales other than English (`zone/`: other languages fall back to ICU's root names);
and the multi-byte (CJK) conversion tables (`*.cnv` of 16 KB and more; the single-byte
ISO-8859/Windows/KOI8/EBCDIC tables stay). Collation, locale data, calendars and time
zone rules stay whole. This is what ICU's own data filter (the ICU Data Build Tool's
`featureFilters`) produces: a valid package with fewer items; ICU answers a request for a
missing item with U_MISSING_RESOURCE_ERROR and falls back (locale fallback to root), and
Qt handles that error. tests/test_packaging.py runs Qt's ICU calls against the result.

The package is ICU's "common data" format (`ucmndata.h`): a data header, a table of
contents (count, then name and data offsets, sorted by name) and 16-byte aligned items.
The library is rebuilt with binutils (`as`, `ld`; build.sh already needs `strip`).

    python packaging/icu_data.py IN/libicudata.so.73 OUT/libicudata.so.73   # prints MB saved
"""

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# whole trees nothing Qt calls ever reads
DROP_TREES = ("brkitr", "unit", "curr", "lang", "region", "translit", "rbnf")
# trees kept for these locales only (plus each tree's root, pool and index)
ENGLISH_ONLY_TREES = ("zone",)
BIG_CONVERTER = 16 * 1024        # .cnv tables this large are the multi-byte (CJK) ones


def keep_item(name, size):
    """True if the ICU data item `name` ("icudt73l/coll/de.res") of `size` bytes stays."""
    parts = name.split("/")[1:]                  # drop the package name (icudt73l)
    if len(parts) >= 2:
        tree, leaf = parts[0], parts[-1]
        if tree in DROP_TREES:
            return False
        if tree in ENGLISH_ONLY_TREES:
            stem = leaf.rsplit(".", 1)[0]
            return stem in ("root", "pool", "res_index") or stem == "en" or stem.startswith("en_")
        return True
    return not (parts[0].endswith(".cnv") and size >= BIG_CONVERTER)


# ------------------------------------------------------------------ common data format
def read_common(blob):
    """(header bytes, [(name, item bytes)]) of an ICU common data package (little-endian)."""
    header_size, magic1, magic2 = struct.unpack_from("<HBB", blob, 0)
    if (magic1, magic2) != (0xDA, 0x27) or blob[12:16] != b"CmnD":
        raise ValueError("not an ICU common data package")
    if blob[8] != 0:
        raise ValueError("big-endian ICU data is not supported")
    toc = blob[header_size:]
    count, = struct.unpack_from("<I", toc, 0)
    entries = [struct.unpack_from("<II", toc, 4 + 8 * i) for i in range(count)]
    ends = [data for _, data in entries[1:]] + [len(toc)]
    items = []
    for (name_off, data_off), end in zip(entries, ends):
        name = toc[name_off:toc.index(b"\0", name_off)].decode("ascii")
        items.append((name, toc[data_off:end]))
    return blob[:header_size], items


def write_common(header, items):
    """An ICU common data package of `items` (sorted by name, as ICU's lookup needs)."""
    names = [name for name, _ in items]
    if names != sorted(names, key=lambda n: n.encode()):
        raise ValueError("items must be sorted by name")
    count = len(items)
    name_table = b""
    name_offsets = []
    base = 4 + 8 * count
    for name in names:
        name_offsets.append(base + len(name_table))
        name_table += name.encode("ascii") + b"\0"
    pos = base + len(name_table)
    pad = -pos % 16
    data = b""
    data_offsets = []
    pos += pad
    for _, blob in items:
        data_offsets.append(pos + len(data))
        data += blob + b"\0" * (-len(blob) % 16)
    toc = struct.pack("<I", count) + b"".join(
        struct.pack("<II", n, d) for n, d in zip(name_offsets, data_offsets))
    return header + toc + name_table + b"\xaa" * pad + data


def shrink(blob):
    """The package `blob` without the items keep_item() rejects; (new blob, dropped names)."""
    header, items = read_common(blob)
    kept = [(n, b) for n, b in items if keep_item(n, len(b))]
    dropped = [n for n, b in items if not keep_item(n, len(b))]
    return write_common(header, kept), dropped


# ------------------------------------------------------------------ the shared library
def _elf_symbol(data, wanted):
    """(file offset, size) of the dynamic symbol `wanted` in a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    for sec in sections:
        if sec[1] != 11:                      # SHT_DYNSYM
            continue
        strtab = sections[sec[6]]
        for pos in range(sec[4], sec[4] + sec[5], 24):
            name_off, _, _, shndx, value, size = struct.unpack_from("<IBBHQQ", data, pos)
            start = strtab[4] + name_off
            if data[start:data.index(b"\0", start)] == wanted.encode():
                target = sections[shndx]      # address -> file offset via its section
                return value - target[3] + target[4], size
    raise ValueError(f"no symbol {wanted}")


def data_symbol(lib):
    """ICU's data symbol for `libicudata.so.73` -> "icudt73_dat"."""
    m = re.match(r"libicudata\.so\.(\d+)", Path(lib).name)
    if not m:
        raise ValueError(f"{lib}: not an ICU data library (libicudata.so.<major>)")
    return f"icudt{m.group(1)}_dat"


def tools():
    """Paths of `as` and `ld`, or None when binutils is missing."""
    found = shutil.which("as"), shutil.which("ld")
    return found if all(found) else None


def build_library(blob, symbol, soname, out):
    """Write a data-only shared library exporting `symbol` (16-byte aligned) = `blob`."""
    found = tools()
    if found is None:
        raise RuntimeError("binutils (as, ld) not found")
    as_, ld = found
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data.bin").write_bytes(blob)
        (tmp / "data.s").write_text(
            f'\t.section .rodata\n\t.balign 16\n\t.globl {symbol}\n\t.type {symbol}, @object\n'
            f'\t.size {symbol}, {len(blob)}\n{symbol}:\n\t.incbin "{tmp / "data.bin"}"\n'
            '\t.section .note.GNU-stack,"",@progbits\n')
        subprocess.run([as_, "-o", str(tmp / "data.o"), str(tmp / "data.s")], check=True)
        subprocess.run([ld, "-shared", "-soname", soname, "-o", str(out), str(tmp / "data.o")],
                       check=True)
    return Path(out)


def shrink_library(src, out):
    """Write the reduced copy of ICU data library `src` to `out`; (bytes before, after)."""
    src, out = Path(src), Path(out)
    data = src.read_bytes()
    symbol = data_symbol(src)
    offset, size = _elf_symbol(data, symbol)
    small, _ = shrink(data[offset:offset + size])
    out.parent.mkdir(parents=True, exist_ok=True)
    build_library(small, symbol, src.name, out)
    return src.stat().st_size, out.stat().st_size


def shrink_in_toc(binaries, workdir):
    """PyInstaller's binaries list with every libicudata replaced by its reduced copy
    (built in `workdir`); (new list, messages). Without binutils the full library stays."""
    out, notes = [], []
    for entry in binaries:
        dest, src, kind = entry[0], entry[1], entry[2] if len(entry) > 2 else "BINARY"
        name = Path(dest.replace("\\", "/")).name
        if kind == "SYMLINK" or not re.fullmatch(r"libicudata\.so\.\d+", name):
            out.append(entry)
            continue
        reduced = Path(workdir) / name
        try:
            before, after = shrink_library(src, reduced)
        except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as e:
            notes.append(f"{name}: kept the full ICU data ({e})")
            out.append(entry)
            continue
        notes.append(f"{name}: ICU data {before / 1e6:.1f} -> {after / 1e6:.1f} MB")
        out.append((dest, str(reduced), kind))
    return out, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="libicudata.so.<N> (e.g. from PySide6/Qt/lib)")
    ap.add_argument("out", type=Path, help="where to write the reduced library")
    args = ap.parse_args(argv)
    before, after = shrink_library(args.src, args.out)
    print(f"{args.out}: {after / 1e6:.1f} MB (was {before / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
