"""Safe .npz reading and atomic writing. Never unpickles; checks sizes before reading.

read_npz(path) -> dict name -> ndarray; every failure is a CheckpointError naming the file.

Reading refuses, before allocating anything: object (pickled) arrays, a zip directory with
more than MAX_MEMBERS entries, an array header declaring more than MAX_ARRAY_BYTES (or more
bytes than its zip entry holds), more than MAX_TOTAL_BYTES in all, and compressed entries
that would inflate more than MAX_RATIO times (zip bombs).

Writing goes to `.<name>.<random>.tmp` beside the target, is fsynced, then renamed over
the target, so a crash or kill mid-write leaves the old file intact. A killed write leaves
its temp file behind; the next save of the same target removes such leftovers once they
are older than STALE_TMP_SECONDS (younger ones may belong to another process still writing).
"""

import io
import json
import math
import os
import re
import secrets
import stat
import struct
import time
import zipfile
from pathlib import Path

import numpy as np

from rnnviewer.errors import CheckpointError

MAX_ARRAY_BYTES = 2 << 30        # 2 GiB: anything larger is a damaged or hostile header
MAX_TOTAL_BYTES = 4 << 30        # all entries of one file together
MAX_MEMBERS = 10_000
MAX_DIRECTORY_BYTES = 8 << 20    # zip central directory (about 10,000 entries' names)
MAX_RATIO = 200                  # inflation allowed for compressed entries ...
RATIO_FREE_BYTES = 64 << 20      # ... larger than this (zeros compress about 1000:1)
STALE_TMP_SECONDS = 600.0


# ------------------------------------------------------------------ writing
def temp_files(path):
    """Leftover temp files of atomic writes to `path` (`.name.XXXXXXXX.tmp` siblings)."""
    path = Path(path)
    parent = path.parent
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp\Z")
    try:
        return [parent / n for n in os.listdir(parent) if pattern.match(n)]
    except OSError:
        return []


def remove_stale_temp_files(path, max_age=None):
    """Delete temp files of killed writes to `path` older than max_age seconds; return them."""
    max_age = STALE_TMP_SECONDS if max_age is None else max_age
    now, removed = time.time(), []
    for p in temp_files(path):
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= max_age:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def _open_temp(path):
    """(fd, temp path) of a new file beside `path`; mode follows the umask (like open())."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                           0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: cannot create a temp file beside it")


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:     # not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call write(fileobj) on a temp file beside `path`, fsync, then rename over it.

    An existing target keeps its permission bits; a new one gets the umask's.
    """
    path = Path(path)
    remove_stale_temp_files(path)
    fd, tmp = _open_temp(path)
    try:
        if hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
            except OSError:   # no old file
                pass
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def write_npz(path, arrays):
    """Atomically save a dict of arrays (no object arrays) as an uncompressed .npz."""
    for k, v in arrays.items():
        if np.asarray(v).dtype.hasobject:
            raise TypeError(f"{k}: object arrays cannot be saved")

    def write(f):
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    atomic_write(path, write)


# ------------------------------------------------------------------ JSON entries
def json_array(obj):
    """A JSON document as a 0-d unicode array (storable without pickle)."""
    return np.asarray(json.dumps(obj))


def read_json(arrays, key, path):
    try:
        return json.loads(str(arrays[key][()]))
    except KeyError:
        raise CheckpointError(f"{path}: not an rnnviewer file (no {key!r} entry)") from None
    except (ValueError, TypeError, IndexError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON ({reason})") from None


def scalar_int(arrays, key):
    """The integer in 0-d integer entry `key`, or None if it is absent or anything else."""
    a = arrays.get(key)
    if a is None or a.ndim != 0 or a.dtype.kind not in "iu":
        return None
    return int(a[()])


# ------------------------------------------------------------------ reading
def _check_directory(f, size, path):
    """Refuse a zip whose end record declares too many entries or a huge directory.

    zipfile parses the whole central directory before we could count it (seconds for
    200,000 entries); the end-of-directory record says how big it is.
    """
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        return  # zipfile reports it
    entries, cd_size = struct.unpack("<4s4H2LH", tail[i:i + 22])[4:6]
    if (entries == 0xFFFF or cd_size == 0xFFFFFFFF) and i >= 20 \
            and tail[i - 20:i - 16] == b"PK\x06\x07":   # zip64: the real counts are elsewhere
        offset = struct.unpack("<4sLQL", tail[i - 20:i])[2]
        if 0 <= offset <= size - 56:
            f.seek(offset)
            rec = f.read(56)
            if rec[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack("<4sQ2H2L4Q", rec)[7:9]
    if entries > MAX_MEMBERS:
        raise CheckpointError(f"{path}: too many entries ({entries}; at most {MAX_MEMBERS})")
    if cd_size > MAX_DIRECTORY_BYTES:
        raise CheckpointError(f"{path}: zip directory too large ({cd_size} bytes)")


def _read_member(zf, info, path, budget, size):
    """One .npy entry as an array; `budget` is a one-item list of bytes still allowed.

    Memory is bounded by what the file really holds: an entry must lie inside the file,
    a stored entry's size is its size on disk, and compressed ones inflate at most
    MAX_RATIO times (beyond RATIO_FREE_BYTES).
    """
    name = info.filename
    if info.header_offset + info.compress_size > size or \
            (info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size):
        raise CheckpointError(f"{path}: entry {name!r} is truncated or its zip record damaged")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > RATIO_FREE_BYTES \
            and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise CheckpointError(f"{path}: entry {name!r} would inflate from {info.compress_size} "
                              f"to {info.file_size} bytes (a zip bomb or a damaged file)")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise CheckpointError(f"{path}: entry {name!r} holds Python objects "
                                  "(pickled data is never loaded)")
        if any(s < 0 for s in shape) or dtype.itemsize == 0:
            raise CheckpointError(f"{path}: entry {name!r} declares an impossible array "
                                  f"({shape}, {dtype})")
        nbytes = math.prod(shape) * dtype.itemsize   # Python ints: no overflow
        if nbytes > MAX_ARRAY_BYTES or nbytes > budget[0]:
            raise CheckpointError(f"{path}: entry {name!r} declares {shape} {dtype}, "
                                  f"{nbytes} bytes: too large")
        if nbytes > info.file_size:
            raise CheckpointError(f"{path}: entry {name!r} is truncated (declares {nbytes} "
                                  f"bytes, holds at most {info.file_size})")
        budget[0] -= nbytes
        buf = np.empty(nbytes, np.uint8)
        got = 0
        while got < nbytes:
            chunk = f.read(min(nbytes - got, 1 << 24))
            if not chunk:
                raise CheckpointError(f"{path}: entry {name!r} is truncated")
            buf[got:got + len(chunk)] = np.frombuffer(chunk, np.uint8)
            got += len(chunk)
        if f.read(1):   # reaching the end also checks the CRC
            raise CheckpointError(f"{path}: entry {name!r} has data after its array")
    return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_zip(f, size, path):
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        _check_directory(f, size, path)
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise CheckpointError(f"{path}: too many entries ({len(infos)})")
            budget = [MAX_TOTAL_BYTES]
            out = {}
            for info in infos:
                fn = info.filename
                key = fn[:-4] if fn.endswith(".npy") else fn
                out[key] = _read_member(zf, info, path, budget, size)
            return out
    except CheckpointError:
        raise
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: damaged or not an .npz archive ({e})") from None
    except MemoryError:
        raise CheckpointError(f"{path}: declares arrays too large to load") from None
    except Exception as e:  # zlib, struct, header syntax, encryption, compression method, ...
        raise CheckpointError(f"{path}: damaged ({type(e).__name__}: {e})") from None


def read_npz(path):
    """Every array of an .npz file, read without pickle; CheckpointError on any damage."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise CheckpointError(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):   # a FIFO or device would block or never end
            raise CheckpointError(f"{path}: not a regular file")
        f = open(path, "rb")
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open ({e.strerror or e})") from None
    except ValueError as e:   # e.g. a NUL character in the name
        raise CheckpointError(f"{path!r}: not a usable file name ({e})") from None
    with f:
        return _read_zip(f, st.st_size, path)


def from_bytes(data, name="<bytes>"):
    """read_npz for in-memory bytes (importers, tests); errors name `name`."""
    return _read_zip(io.BytesIO(data), len(data), name)
