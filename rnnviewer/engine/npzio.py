"""Safe .npz reading and atomic writing. Never unpickles; checks sizes before reading.

read_npz(path) -> dict name -> ndarray; every failure is a CheckpointError naming the file.
"""

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from rnnviewer.errors import CheckpointError

MAX_ARRAY_BYTES = 2 << 30   # 2 GiB: anything larger is a damaged or hostile header
MAX_MEMBERS = 10_000


def atomic_write(path, write):
    """Call write(fileobj) on a temp file beside `path`, fsync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
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


def write_npz(path, arrays):
    """Atomically save a dict of arrays (no object arrays) as an uncompressed .npz."""
    for k, v in arrays.items():
        if np.asarray(v).dtype.hasobject:
            raise TypeError(f"{k}: object arrays cannot be saved")

    def write(f):
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    atomic_write(path, write)


def json_array(obj):
    """A JSON document as a 0-d unicode array (storable without pickle)."""
    return np.asarray(json.dumps(obj))


def read_json(arrays, key, path):
    try:
        return json.loads(str(arrays[key][()]))
    except KeyError:
        raise CheckpointError(f"{path}: not an rnnviewer file (no {key!r} entry)") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON ({e})") from None


def _read_member(zf, info, path):
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise CheckpointError(f"{path}: entry {info.filename!r} holds Python objects "
                                  "(pickled data is never loaded)")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES or nbytes < 0:
            raise CheckpointError(f"{path}: entry {info.filename!r} declares {shape}, "
                                  f"{nbytes} bytes: too large")
        data = f.read(nbytes + 1)
        if len(data) != nbytes:
            raise CheckpointError(f"{path}: entry {info.filename!r} is truncated")
        arr = np.frombuffer(data, dtype=dtype).copy()
        return arr.reshape(shape, order="F" if fortran else "C")


def read_npz(path):
    """Every array of an .npz file, read without pickle; CheckpointError on any damage."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open ({e.strerror})") from None
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise CheckpointError(f"{path}: too many entries ({len(infos)})")
            out = {}
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                out[name] = _read_member(zf, info, path)
            return out
    except CheckpointError:
        raise
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path}: not an .npz archive (damaged or another format)") from None
    except MemoryError:
        raise CheckpointError(f"{path}: declares arrays too large to load") from None
    except Exception as e:  # zlib, struct, header syntax, CRC, ...
        raise CheckpointError(f"{path}: damaged ({type(e).__name__}: {e})") from None


def from_bytes(data):
    """read_npz for in-memory bytes (used by tests and importers)."""
    tmp = io.BytesIO(data)
    with zipfile.ZipFile(tmp) as zf:
        return {i.filename[:-4]: _read_member(zf, i, "<bytes>") for i in zf.infolist()}
