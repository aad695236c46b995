"""Reading user files as text: one DataError naming the file and the problem, nothing else."""

from __future__ import annotations

import stat
from pathlib import Path

from rnnviewer.errors import DataError

MAX_BYTES = 64 << 20  # 64 MiB
SNIFF_BYTES = 1 << 16
BINARY_CONTROL_SHARE = 0.02
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\x0b\x0c\r\x1b") + b"\x7f"
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)  # deleted by translate


def read_bytes(path, kind="text") -> bytes:
    """The bytes of `path`; DataError if missing, a folder, unreadable, empty or too large."""
    path = Path(path)
    try:
        st = path.stat()
        size = st.st_size
        if stat.S_ISDIR(st.st_mode):
            raise DataError(f"{path}: is a folder, not a {kind} file")
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise DataError(f"{path}: not a regular file")
        if size > MAX_BYTES:
            raise DataError(f"{path}: too large ({size / 2**20:.0f} MB; rnnviewer reads "
                            f"{kind} files up to {MAX_BYTES >> 20} MB)")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)   # the file may have grown since stat
        if len(data) > MAX_BYTES:
            raise DataError(f"{path}: too large (rnnviewer reads {kind} files up to "
                            f"{MAX_BYTES >> 20} MB)")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:   # e.g. a NUL character in the name
        raise DataError(f"{path!r}: not a usable file name ({e})") from None
    if not data.strip():
        raise DataError(f"{path}: the file is empty" if not data
                        else f"{path}: the file holds only whitespace")
    return data


def control_share(data: bytes) -> float:
    """Share of the first SNIFF_BYTES bytes that are control codes text files do not hold.

    Tab, line feed, vertical tab, form feed, carriage return and escape (colour codes in
    logs) do not count. Binary formats are about 10% such bytes; text in any 8-bit
    encoding has none.
    """
    head = data[:SNIFF_BYTES]
    n = len(head.translate(None, _NOT_CONTROL))
    return n / len(head) if n > 8 else 0.0   # a stray control code or two is still text


def decode_text(data: bytes, path, kind="text") -> str:
    """UTF-8 (optional BOM) to str with \\n line ends; DataError for binary or non-UTF-8 data."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: looks like a binary file, not {kind} (NUL byte at offset "
                        f"{nul}); rnnviewer reads UTF-8 text")
    share = control_share(data)
    if share > BINARY_CONTROL_SHARE:
        raise DataError(f"{path}: looks like a binary file, not {kind} ({100 * share:.0f}% of "
                        "its first bytes are control codes); rnnviewer reads UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}, "
                        f"offset {e.start}); save it as UTF-8") from None
    if not text.strip():   # e.g. only a byte order mark, or only Unicode spaces
        raise DataError(f"{path}: the file holds no {kind} (only a byte order mark or spaces)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path, kind="text") -> str:
    """A UTF-8 text file's content; DataError for every way it cannot be used."""
    return decode_text(read_bytes(path, kind), path, kind)
