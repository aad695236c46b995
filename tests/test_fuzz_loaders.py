"""Fuzzing every loader: checkpoints, session files, imported weights, text, CSV, settings.

Damaged input of any kind (truncated, bit-flipped, empty, random, crafted headers, zip
bombs, pickles, binary, non-UTF-8) must end in one of rnnviewer's errors naming the file,
quickly; nothing is ever unpickled. A load that succeeds must return something usable.
"""

import io
import os
import pickle
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnviewer.engine as engine
from rnnviewer.engine import Model, load, save
from rnnviewer.engine.npzio import MAX_MEMBERS, from_bytes
from rnnviewer.engine.tasks import make_task
from rnnviewer.errors import CheckpointError, ConfigError, DataError, RnnviewerError
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.training.sessionfile import load_session

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SLOW_S = 3.0   # CPU seconds no single load may take (they take milliseconds)


# ---------------------------------------------------------------- good files
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Bytes of a valid checkpoint, session, text and CSV file."""
    d = tmp_path_factory.mktemp("good")
    save(Model("gru", n_in=2, n_hidden=3, n_out=2, seed=1), d / "m.npz")
    s = TrainingSession(SessionConfig(task="sine", hidden=3, seq_len=5, batch=2, val_every=2),
                        snapshot_hz=0)
    s.run(max_steps=3)
    s.save(d / "s.npz")
    text = ("def f(x):\n    return x * 2  # double ü\n" * 30).encode("utf-8")
    csv = ("t,a,b\n" + "".join(f"{i},{np.sin(i / 5):.4f},{i % 7}\n" for i in range(80))).encode()
    return {"checkpoint": (d / "m.npz").read_bytes(), "session": (d / "s.npz").read_bytes(),
            "text": text, "csv": csv}


def _load_text(p):
    return make_task("text", path=p, seq_len=8)


def _load_csv(p):
    return make_task("csv", path=p, seq_len=4)


def _import_weights(p):
    fn = getattr(engine, "import_weights", None)
    if fn is None:
        pytest.skip("rnnviewer.engine.import_weights does not exist yet")
    return fn(p)


# loader, the errors it may raise, and a check of what it returns when it succeeds
def _check_model(m):
    assert isinstance(m, Model)
    for k, shape in m.param_shapes().items():
        assert m.params[k].shape == shape and m.params[k].dtype == m.dtype
        assert np.isfinite(m.params[k]).all()


def _check_session(d):
    _check_model(d.model)
    assert d.step >= 0 and isinstance(d.task_config, dict) and isinstance(d.extra, dict)


def _check_task(t):
    x, target, mask = t.batch("train", 2, np.random.default_rng(0))
    assert x.shape[:2] == (2, t.seq_len) and np.isfinite(x).all()


LOADERS = {
    "checkpoint": (load, (CheckpointError,), _check_model),
    "session": (load_session, (CheckpointError,), _check_session),
    "text": (_load_text, (DataError, ConfigError), _check_task),
    "csv": (_load_csv, (DataError, ConfigError), _check_task),
}


def attempt(kind, path):
    """Load `path` with loader `kind`: return the error (None on success); fail on anything
    but rnnviewer's error types, a message without the file name, or a slow load."""
    fn, errors, check = LOADERS[kind]
    t0 = time.process_time()
    try:
        out = fn(path)
    except errors as e:
        assert path.name in str(e), f"message does not name the file: {e}"
        assert "\n" not in str(e).strip(), str(e)
        err = e
    else:
        check(out)
        err = None
    assert time.process_time() - t0 < SLOW_S, f"{kind} load of {path.name} took too long"
    return err


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------- no pickle, ever
@pytest.fixture
def no_unpickling(monkeypatch):
    """Any attempt to unpickle fails the test (numpy's np.load goes through pickle.load)."""
    def refuse(*a, **k):
        raise AssertionError("a loader tried to unpickle data")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


class _Payload:
    """Unpickling this creates `marker`: proof that something ran pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    """.npz bytes from name -> raw member bytes (".npy" appended to names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for k, v in members.items():
            zf.writestr(k + ".npy", v)
    return buf.getvalue()


def _members(npz_bytes):
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as zf:
        return {i.filename[:-4]: zf.read(i) for i in zf.infolist()}


def test_pickle_payload_is_live(tmp_path):
    """The payload really runs code when unpickled, so its absence below proves something."""
    marker = tmp_path / "ran"
    data = _npy(np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    np.load(io.BytesIO(data), allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["checkpoint", "session", "import"])
def test_pickled_objects_are_refused_never_unpickled(tmp_path, good, kind, no_unpickling):
    marker = tmp_path / "pwned"
    base = _members(good["session" if kind == "session" else "checkpoint"])
    obj_npy = _npy(np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    raw_pickle = pickle.dumps(_Payload(marker), protocol=2)
    struct_npy = obj_npy.replace(b"'descr': '|O'", b"'descr': [('a', '|O')]")
    cases = {
        "object_param.npz": _zip({**base, "param/W_hh": obj_npy}),
        "object_config.npz": _zip({**base, "rnnviewer/config": obj_npy}),
        "object_extra.npz": _zip({**base, "session/extra": obj_npy, "extra2": obj_npy}),
        "struct_object.npz": _zip({**base, "param/b_y": struct_npy}),
        "raw_pickle_member.npz": _zip({**base, "param/W_xh": raw_pickle}),
        "whole_file_pickle.npz": raw_pickle,
        "deflated_object.npz": _zip({**base, "param/W_hh": obj_npy}, zipfile.ZIP_DEFLATED),
    }
    load_fn = _import_weights if kind == "import" else LOADERS[kind][0]
    for name, data in cases.items():
        p = write(tmp_path, name, data)
        with pytest.raises(RnnviewerError) as e:
            load_fn(p)
        assert name in str(e.value)
        if kind != "import":
            assert isinstance(e.value, CheckpointError)
        assert not marker.exists(), f"{name}: the pickle ran"


def test_pickles_given_as_text_or_csv_are_refused(tmp_path, no_unpickling):
    marker = tmp_path / "pwned"
    for proto in (0, 2, 5):
        p = write(tmp_path, f"p{proto}.txt", pickle.dumps(_Payload(marker), protocol=proto) * 20)
        for kind in ("text", "csv"):
            attempt(kind, p)
    assert not marker.exists()


# ---------------------------------------------------------------- truncation, bit flips
def _structure_offsets(data):
    """Offsets of every zip record and .npy header in `data` (where damage matters most)."""
    offs = set()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for i in zf.infolist():
            start = i.header_offset
            offs.update(range(start, min(start + 30 + len(i.filename) + 140, len(data))))
    cd = data.rfind(b"PK\x05\x06")
    first_cd = data.find(b"PK\x01\x02")
    offs.update(range(first_cd, first_cd + 80))
    offs.update(range(cd, len(data)))
    return sorted(o for o in offs if 0 <= o < len(data))


@pytest.mark.parametrize("kind", ["checkpoint", "session"])
def test_truncated_at_many_offsets(tmp_path, good, kind):
    data = good[kind]
    offsets = sorted(set(range(0, len(data), max(1, len(data) // 120))) |
                     {len(data) - k for k in range(1, 40)} | {1, 2, 3, 4, 22, 30})
    for n in offsets:
        p = write(tmp_path, f"{kind}_cut{n}.npz", data[:n])
        assert attempt(kind, p) is not None, f"a file truncated to {n} bytes loaded"


@pytest.mark.parametrize("kind", ["checkpoint", "session"])
def test_bit_flips_at_many_positions(tmp_path, good, kind):
    data = good[kind]
    rng = np.random.default_rng(0)
    structure = _structure_offsets(data)
    positions = sorted(set(rng.choice(structure, size=min(250, len(structure)), replace=False)) |
                       set(range(0, len(data), max(1, len(data) // 60))))
    loaded = 0
    for i, pos in enumerate(positions):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (i % 8)
        p = write(tmp_path, f"{kind}_flip{pos}.npz", bytes(flipped))
        if attempt(kind, p) is None:
            loaded += 1
            if kind == "session":   # what the app does with it next
                try:
                    TrainingSession.from_file(p, snapshot_hz=0)
                except RnnviewerError:
                    pass
    assert loaded < len(positions) // 2   # most flips must be noticed (CRC, headers)


@pytest.mark.parametrize("key, value", [
    ("session/version", np.float64(np.inf)),
    ("session/version", np.asarray(2**62)),
    ("session/version", np.asarray("x")),
    ("session/step", np.asarray(2**70, dtype=np.float64)),
    ("session/step", np.asarray([1, 2])),
    ("session/optimizer/t", np.float64(np.inf)),
    ("session/optimizer/t", np.float64(2.5)),
    ("session/optimizer/t", np.asarray(-5)),
    ("session/optimizer/lr", np.float64(np.nan)),
    ("session/optimizer/betas", np.float64(0.9)),
    ("session/optimizer/m/W_hh", np.zeros((9, 3), np.complex64)),
    ("session/task", np.asarray("[" * 100_000)),
    ("session/extra", np.asarray('{"rng_state": ' + "[" * 100_000 + "}")),
    ("session/history/val_loss", np.zeros(10**5, np.float64)),
])
def test_bad_session_entries(tmp_path, good, key, value):
    members = _members(good["session"])
    p = write(tmp_path, "sess.npz", _zip({**members, key: _npy(value)}))
    with pytest.raises(CheckpointError, match="sess.npz"):
        load_session(p)


@pytest.mark.parametrize("kind", ["text", "csv"])
def test_text_and_csv_truncated_and_flipped(tmp_path, good, kind):
    data = good[kind]
    for n in list(range(0, len(data), max(1, len(data) // 60))):
        attempt(kind, write(tmp_path, f"cut{n}.{kind}", data[:n]))
    rng = np.random.default_rng(1)
    for pos in rng.integers(0, len(data), 60):
        flipped = bytearray(data)
        flipped[pos] ^= 0x80 | (1 << int(rng.integers(0, 7)))
        attempt(kind, write(tmp_path, f"flip{pos}.{kind}", bytes(flipped)))


@pytest.mark.parametrize("kind", ["text", "csv"])
def test_text_and_csv_in_other_encodings_and_binary_formats(tmp_path, good, kind):
    text = good[kind].decode("utf-8")
    cases = {
        "utf16": (text.encode("utf-16"), "binary"),              # NUL bytes
        "utf32": (text.encode("utf-32"), "binary"),
        "latin1": (text.replace("t", "\xe9").encode("latin-1"), "not UTF-8"),
        "cp1252": (("\u201cquoted\u201d,1\n" * 50).encode("cp1252"), "not UTF-8"),
        "gzip": (__import__("gzip").compress(good[kind]), "binary|not UTF-8"),
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(200), "binary"),
        "no_nul_binary": (np.random.default_rng(4).integers(1, 256, 3000, np.uint8).tobytes(),
                          "binary"),
        "npz": (good["checkpoint"], "binary|not UTF-8"),
        "bom_only": (b"\xef\xbb\xbf", "holds no (text|CSV)"),
        "unicode_spaces": ("\u3000\u2003\n".encode() * 9, "holds no (text|CSV)"),
        "crlf_only": (b"\r\n" * 100, "whitespace"),
    }
    for name, (blob, match) in cases.items():
        p = write(tmp_path, f"{name}.{kind}", blob)
        err = attempt(kind, p)
        assert err is not None and re.search(match, str(err)), (name, err)


@FUZZ
@given(data=st.data())
def test_random_damage_hypothesis(tmp_path, good, data):
    kind = data.draw(st.sampled_from(sorted(LOADERS)))
    raw = bytearray(good[kind])
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(raw) - 1, 0)),
                                         st.integers(0, 7)), max_size=6))
    for pos, bit in flips:
        raw[pos] ^= 1 << bit
    junk = data.draw(st.binary(max_size=64))
    where = data.draw(st.integers(0, len(raw)))
    damaged = bytes(raw[:where]) + junk + bytes(raw[where:cut] if cut > where else b"")
    attempt(kind, write(tmp_path, f"h.{'npz' if kind in ('checkpoint', 'session') else kind}",
                        damaged))


@FUZZ
@given(blob=st.binary(max_size=4096))
def test_random_bytes_hypothesis(tmp_path, blob):
    p = write(tmp_path, "random.npz", blob)
    for kind in LOADERS:
        attempt(kind, p)


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_empty_missing_folder_and_special_files(tmp_path, kind):
    assert attempt(kind, write(tmp_path, "empty.dat", b"")) is not None
    errors = LOADERS[kind][1]
    fn = LOADERS[kind][0]
    for bad in (tmp_path / "missing.dat", tmp_path):
        with pytest.raises(errors):
            fn(bad)
    fifo = tmp_path / "pipe.dat"
    os.mkfifo(fifo)            # opening a FIFO for reading would block forever
    assert attempt(kind, fifo) is not None
    if os.path.exists("/dev/zero"):   # an endless file
        with pytest.raises(errors, match="/dev/zero"):
            fn(Path("/dev/zero"))
    with pytest.raises(errors):
        fn("bad\x00name.npz")


# ---------------------------------------------------------------- crafted headers
def _npy_header(descr, shape, fortran=False, version=(1, 0), body=b""):
    h = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    fmt = "<H" if version == (1, 0) else "<I"
    pre = 10 if version == (1, 0) else 12
    h += b" " * (64 - (pre + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(h)) + h + body


HUGE = [
    ("trillion", "<f8", (10**12,)),
    ("overflow_int64", "<f4", (2**32, 2**32)),
    ("many_dims", "<f4", (10**4,) * 8),
    ("big_unicode", "<U1000000", (10**6,)),
    ("negative", "<f4", (-1, 5)),
    ("negative_pair", "<f4", (-3, -4)),
    ("zero_itemsize", "|V0", (10**12,)),
    ("declares_more_than_held", "<f4", (10**6,)),
]


@pytest.mark.parametrize("label, descr, shape", HUGE, ids=[h[0] for h in HUGE])
def test_huge_or_impossible_declared_shapes(tmp_path, good, label, descr, shape):
    base = _members(good["checkpoint"])
    for version in ((1, 0), (2, 0)):
        member = _npy_header(descr, shape, version=version, body=b"\x00" * 64)
        for key in ("param/W_hh", "extra"):
            p = write(tmp_path, f"{label}.npz", _zip({**base, key: member}))
            t0 = time.process_time()
            with pytest.raises(CheckpointError, match=f"{label}.npz") as e:
                load(p)
            assert time.process_time() - t0 < 1.0
            assert any(w in str(e.value) for w in ("too large", "impossible", "truncated",
                                                   "damaged")), str(e.value)


@pytest.mark.parametrize("member, match", [
    (b"\x93NUMPY\x09\x09" + b"\x00" * 20, "damaged"),                 # unknown .npy version
    (b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 200, "damaged"),           # header runs past end
    (_npy_header("<f4", (3, 3))[:-1] + b"x", "damaged"),              # bad header end
    (b"\x93NUMPY\x01\x00" + struct.pack("<H", 40) + b"{'descr': __import__('os')}".ljust(40),
     "damaged"),                                                        # code in the header
    (b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}", "damaged"),  # 2 GB header length
    (b"not an npy at all", "damaged"),
    (_npy_header("<f4", (3, 3), body=b"\x00" * 37), "data after its array"),
])
def test_malformed_npy_members(tmp_path, good, member, match):
    p = write(tmp_path, "m.npz", _zip({**_members(good["checkpoint"]), "param/W_hh": member}))
    with pytest.raises(CheckpointError, match=match) as e:
        load(p)
    assert "m.npz" in str(e.value)


def test_wrong_shapes_dtypes_and_values(tmp_path, good):
    base = _members(good["checkpoint"])
    W = np.zeros((9, 3), np.float32)
    cases = {
        "shape": (_npy(np.zeros((3, 9), np.float32)), "shape"),
        "dtype64": (_npy(W.astype(np.float64)), "dtype"),
        "int": (_npy(W.astype(np.int32)), "dtype"),
        "bigendian": (_npy(W.astype(">f4")), "dtype"),
        "complex": (_npy(W.astype(np.complex64)), "dtype"),
        "string": (_npy(np.full((9, 3), "x")), "dtype"),
        "nan": (_npy(np.full((9, 3), np.nan, np.float32)), "NaN"),
        "inf": (_npy(np.full((9, 3), -np.inf, np.float32)), "NaN or Inf"),
        "0d": (_npy(np.float32(1)), "shape"),
    }
    for name, (member, match) in cases.items():
        p = write(tmp_path, f"{name}.npz", _zip({**base, "param/W_hh": member}))
        with pytest.raises(CheckpointError, match=match) as e:
            load(p)
        assert f"{name}.npz" in str(e.value)
    fortran = _npy(np.asfortranarray(np.arange(27, dtype=np.float32).reshape(9, 3)))
    p = write(tmp_path, "fortran.npz", _zip({**base, "param/W_hh": fortran}))
    np.testing.assert_array_equal(load(p).params["W_hh"],
                                  np.arange(27, dtype=np.float32).reshape(9, 3))


@pytest.mark.parametrize("key, value, match", [
    ("rnnviewer/version", np.float64(np.inf), "version"),
    ("rnnviewer/version", np.array([1, 2]), "version"),
    ("rnnviewer/version", np.asarray("one"), "version"),
    ("rnnviewer/format", np.asarray(["rnnviewer-model"]), "not an rnnviewer"),
    ("rnnviewer/format", np.asarray(b"rnnviewer-model"), "not an rnnviewer"),
    ("rnnviewer/config", np.asarray("[" * 100_000), "JSON"),
    ("rnnviewer/config", np.asarray('{"cell": "rnn"}'), "lacks"),
    ("rnnviewer/config", np.asarray("null"), "JSON object"),
    ("rnnviewer/config", np.zeros(3), "JSON"),
])
def test_bad_metadata(tmp_path, good, key, value, match):
    p = write(tmp_path, "meta.npz", _zip({**_members(good["checkpoint"]), key: _npy(value)}))
    for fn in (load, load_session):
        with pytest.raises(CheckpointError, match="meta.npz") as e:
            fn(p)
    with pytest.raises(CheckpointError, match=match):
        load(p)


@pytest.mark.parametrize("change", [
    {"seed": 1e400}, {"seed": -1}, {"seed": "0"}, {"seed": None}, {"n_hidden": 0},
    {"n_hidden": 10**9}, {"n_hidden": 2.5}, {"n_hidden": True}, {"n_in": 100_000},
    {"n_hidden": 4096, "n_in": 100_000}, {"cell": ["gru"]}, {"cell": "tcn"},
    {"dtype": "f4,("}, {"dtype": {"a": 1}}, {"dtype": "object"}, {"dtype": "float16"},
])
def test_hostile_config_never_allocates(tmp_path, good, change):
    import json
    members = _members(good["checkpoint"])
    cfg = dict(Model("gru", 2, 3, 2, seed=1).config, **change)
    txt = json.dumps(cfg).replace("Infinity", "1e400")
    p = write(tmp_path, "cfg.npz", _zip({**members, "rnnviewer/config": _npy(np.asarray(txt))}))
    t0 = time.process_time()
    with pytest.raises(CheckpointError, match="cfg.npz"):
        load(p)
    assert time.process_time() - t0 < 1.0   # a 4096 x 100,000 LSTM would take gigabytes


# ---------------------------------------------------------------- zip bombs, many members
def _patch_cd(data, **fields):
    """Rewrite fields of the first central directory record (csize, usize)."""
    data = bytearray(data)
    i = data.find(b"PK\x01\x02")
    if "csize" in fields:
        data[i + 20:i + 24] = struct.pack("<L", fields["csize"])
    if "usize" in fields:
        data[i + 24:i + 28] = struct.pack("<L", fields["usize"])
    return bytes(data)


def _raw_zip(entries):
    """Zip bytes written by hand from (name, method, crc, csize, usize, payload) tuples, so
    the recorded sizes can be anything."""
    out, cd = b"", b""
    for name, method, crc, csize, usize, payload in entries:
        n = name.encode()
        cd += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize,
                          usize, len(n), 0, 0, 0, 0, 0, len(out)) + n
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, csize,
                           usize, len(n), 0) + n + payload
    return out + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                                  len(cd), len(out), 0)


def test_zip_bomb_is_refused_before_inflating(tmp_path):
    n = (64 << 20) + (1 << 20)    # 65 MiB of zeros: about 1000:1 deflated
    member = _npy_header("|u1", (n,))
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = co.compress(member) + co.compress(bytes(n)) + co.flush()
    fmt = _npy(np.asarray("rnnviewer-model"))
    data = _raw_zip([("rnnviewer/format.npy", 0, zlib.crc32(fmt), len(fmt), len(fmt), fmt),
                     ("bomb.npy", 8, zlib.crc32(bytes(n), zlib.crc32(member)), len(body),
                      len(member) + n, body)])
    assert len(data) < (1 << 20)
    p = write(tmp_path, "bomb.npz", data)
    t0 = time.process_time()
    with pytest.raises(CheckpointError, match="bomb.npz.*zip bomb"):
        load(p)
    assert time.process_time() - t0 < 1.0
    # the same entry with honest small sizes recorded: inflating stops at the recorded size
    lie = _raw_zip([("bomb.npy", 8, 0, len(body), 1000, body)])
    assert attempt("checkpoint", write(tmp_path, "lie.npz", lie)) is not None


def test_lying_zip_sizes(tmp_path, good):
    one = _zip({"param/W_hh": _npy(np.zeros((9, 3), np.float32))})
    for name, data in {"stored_usize": _patch_cd(one, usize=2**31),
                       "stored_both": _patch_cd(one, usize=2**31, csize=2**31),
                       "stored_small": _patch_cd(one, usize=20, csize=20)}.items():
        p = write(tmp_path, f"{name}.npz", data)
        assert attempt("checkpoint", p) is not None
    deflated = _zip({"param/W_hh": _npy(np.zeros((9, 3), np.float32))}, zipfile.ZIP_DEFLATED)
    p = write(tmp_path, "deflated_usize.npz", _patch_cd(deflated, usize=2**32 - 1))
    with pytest.raises(CheckpointError, match="deflated_usize.npz"):
        load(p)


def _with_end_record(data, entries=None, cd_size=None, zip64_entries=None):
    """`data` (a zip) with its end-of-central-directory record patched."""
    i = data.rfind(b"PK\x05\x06")
    rec = list(struct.unpack("<4s4H2LH", data[i:i + 22]))
    if zip64_entries is not None:   # insert zip64 end record + locator before the end record
        z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, zip64_entries,
                          zip64_entries, rec[5], rec[6])
        loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, i, 1)
        rec[3] = rec[4] = 0xFFFF
        return data[:i] + z64 + loc + struct.pack("<4s4H2LH", *rec) + data[i + 22:]
    if entries is not None:
        rec[3] = rec[4] = entries
    if cd_size is not None:
        rec[5] = cd_size
    return data[:i] + struct.pack("<4s4H2LH", *rec) + data[i + 22:]


def test_too_many_members(tmp_path, good):
    buf = io.BytesIO()
    empty = _npy(np.zeros(0, np.float32))
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(MAX_MEMBERS + 1):
            zf.writestr(f"m{k}.npy", empty)
    for name, data in {"many.npz": buf.getvalue(),
                       "claims_many.npz": _with_end_record(good["checkpoint"], entries=60_000),
                       "zip64_many.npz": _with_end_record(good["checkpoint"],
                                                          zip64_entries=10**9),
                       "huge_directory.npz": _with_end_record(good["checkpoint"],
                                                              cd_size=2**31)}.items():
        p = write(tmp_path, name, data)
        for fn in (load, load_session):
            t0 = time.process_time()
            with pytest.raises(CheckpointError, match=f"{name}: (too many entries|zip directory)"):
                fn(p)
            assert time.process_time() - t0 < 1.0


def test_many_entries_within_budget_and_total_budget(tmp_path, monkeypatch, good):
    from rnnviewer.engine import npzio
    members = _members(good["checkpoint"])
    members.update({f"extra/{k}": _npy(np.zeros(1000, np.float64)) for k in range(20)})
    p = write(tmp_path, "extras.npz", _zip(members))
    _check_model(load(p))
    monkeypatch.setattr(npzio, "MAX_TOTAL_BYTES", 100_000)  # 20 x 8000 bytes > budget
    with pytest.raises(CheckpointError, match="extras.npz.*too large"):
        load(p)


def test_other_archive_kinds(tmp_path, good):
    members = _members(good["checkpoint"])
    cases = {}
    for comp in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        cases[f"comp{comp}.npz"] = _zip(members, comp)
    for name, data in cases.items():   # compressed .npz (np.savez_compressed and others) load
        _check_model(load(write(tmp_path, name, data)))
    enc = bytearray(_zip(members))
    i = 0
    while (i := enc.find(b"PK\x03\x04", i)) >= 0:   # mark every entry encrypted
        enc[i + 6] |= 1
        i += 4
    i = 0
    while (i := enc.find(b"PK\x01\x02", i)) >= 0:
        enc[i + 8] |= 1
        i += 4
    assert attempt("checkpoint", write(tmp_path, "encrypted.npz", bytes(enc))) is not None
    unknown = bytearray(_zip(members))
    i = unknown.find(b"PK\x01\x02")
    unknown[i + 10:i + 12] = struct.pack("<H", 99)   # compression method 99
    assert attempt("checkpoint", write(tmp_path, "method99.npz", bytes(unknown))) is not None
    nested = _zip({"inner": _zip(members)})
    assert attempt("checkpoint", write(tmp_path, "nested.npz", nested)) is not None


def test_from_bytes_is_as_safe_as_read_npz(good):
    assert set(from_bytes(good["checkpoint"])) >= {"rnnviewer/config", "param/W_hh"}
    assert from_bytes(b"PK\x05\x06" + b"\x00" * 18) == {}   # an empty archive
    for data in (b"", b"PK\x05\x06" + b"\x00" * 16 + b"\x01", good["checkpoint"][:500],
                 bytes(300)):
        with pytest.raises(CheckpointError, match="<bytes>"):
            from_bytes(data)
    with pytest.raises(CheckpointError, match="weights.bin"):
        from_bytes(b"junk", name="weights.bin")


# ---------------------------------------------------------------- imported weights
def _safetensors(header, body=b""):
    h = header if isinstance(header, bytes) else __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


SAFETENSORS = {
    "empty": b"",
    "short": b"\x01\x02",
    "huge_header_len": struct.pack("<Q", 10**15) + b"{}",
    "header_len_past_end": struct.pack("<Q", 5000) + b'{"a": 1}',
    "not_json": _safetensors(b"{not json" + b" " * 7),
    "not_utf8": _safetensors(b'{"\xff\xfe": 1}'),
    "deep_json": _safetensors(b"[" * 50_000),
    "bad_dtype": _safetensors({"weight_hh_l0": {"dtype": "Q99", "shape": [3, 3],
                                                "data_offsets": [0, 36]}}, bytes(36)),
    "offsets_past_end": _safetensors({"weight_hh_l0": {"dtype": "F32", "shape": [3, 3],
                                                       "data_offsets": [0, 10**12]}}, bytes(36)),
    "shape_mismatch": _safetensors({"weight_hh_l0": {"dtype": "F32", "shape": [10**6, 10**6],
                                                     "data_offsets": [0, 36]}}, bytes(36)),
    "negative_shape": _safetensors({"weight_hh_l0": {"dtype": "F32", "shape": [-3, -3],
                                                     "data_offsets": [0, 36]}}, bytes(36)),
    "no_tensors": _safetensors({"__metadata__": {"a": "b"}}),
    "random": np.random.default_rng(5).bytes(2000),
}


@pytest.mark.parametrize("name", sorted(SAFETENSORS))
def test_import_weights_damaged_safetensors(tmp_path, name, no_unpickling):
    p = write(tmp_path, f"{name}.safetensors", SAFETENSORS[name])
    t0 = time.process_time()
    with pytest.raises(RnnviewerError) as e:
        _import_weights(p)
    assert p.name in str(e.value)
    assert time.process_time() - t0 < SLOW_S


def test_import_weights_damaged_npz(tmp_path, good, no_unpickling):
    data = good["checkpoint"]
    rng = np.random.default_rng(3)
    cases = {"empty": b"", "random": rng.bytes(1000), "cut": data[: len(data) // 2]}
    for pos in rng.integers(0, len(data), 40):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        cases[f"flip{pos}"] = bytes(flipped)
    for name, blob in cases.items():
        p = write(tmp_path, f"{name}.npz", blob)
        try:
            m = _import_weights(p)
        except RnnviewerError as e:
            assert p.name in str(e)
        else:
            _check_model(m)


# ---------------------------------------------------------------- settings
SETTINGS_BLOBS = {
    "random": np.random.default_rng(7).bytes(4000),
    "binary": bytes(range(256)) * 8,
    "latin1": "[General]\nrecent_files=caf\xe9\n".encode("latin-1"),
    "garbage_values": (b"[General]\nrecent_files=@Variant(\\0\\0\\0\\x7f\\0\\0\\0)\n"
                       b"[session]\nlast_config=\"{\\\"hidden\\\": [[[\"\nspeed=fast\n"
                       b"[window]\ngeometry=@ByteArray(\\xff\\xfe)\nstate=@Rect(1 2)\n"),
    "wrong_types": (b"[General]\nrecent_files=42\n[session]\nlast_config=[1, 2]\nspeed=-1e999\n"
                    b"[confirm]\nskip_reset=@Variant(\\0\\0\\0\\x1)\n"),
    "truncated": b"[General]\nrecent_files=/a, /b\n[sess",
    "empty": b"",
}


@pytest.fixture
def ini_settings(tmp_path, monkeypatch):
    """Point rnnviewer.ui.settings at an INI file in tmp_path; returns a writer of its bytes."""
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings
    from rnnviewer.ui import settings as ui_settings
    counter = [0]

    def use(blob):
        counter[0] += 1   # a new file each time: Qt caches parsed settings files
        path = tmp_path / f"s{counter[0]}.ini"
        path.write_bytes(blob)
        monkeypatch.setattr(ui_settings, "settings",
                            lambda: QSettings(str(path), QSettings.Format.IniFormat))
        return ui_settings

    return use


def test_settings_file_follows_use_settings_dir(tmp_path):
    """Tests and portable runs must never read or write the user's real settings."""
    pytest.importorskip("PySide6")
    from rnnviewer.ui import settings as ui_settings
    try:
        ui_settings.use_settings_dir(tmp_path)
        name = ui_settings.settings().fileName()
    finally:
        ui_settings.use_settings_dir(os.environ["RNNVIEWER_TEST_SETTINGS_DIR"])
    assert name.startswith(str(tmp_path)), name


@pytest.mark.parametrize("name", sorted(SETTINGS_BLOBS))
def test_damaged_settings_file_gives_defaults(tmp_path, ini_settings, name):
    s = ini_settings(SETTINGS_BLOBS[name])
    files = s.recent_files()
    assert isinstance(files, list) and all(isinstance(f, str) for f in files)
    s.load_json("session/last_config", {"x": 1})
    assert s.get_bool("nothing/here", True) is True
    s.get_bool("confirm/skip_reset", False)
    assert s.add_recent_file(tmp_path / "x.npz")[0].endswith("x.npz")   # writing still works


def test_settings_with_deeply_nested_json_give_default(ini_settings):
    s = ini_settings(b"[session]\nlast_config=\"" + b"[" * 50_000 + b"\"\n")
    assert s.settings().value("session/last_config").startswith("[[[")
    assert s.load_json("session/last_config", "default") == "default"


WINDOW_PROBE = """
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from rnnviewer.ui import settings as ui_settings
app = QApplication([])
from rnnviewer.ui.main_window import MainWindow
results = {}
for path in sys.argv[1:]:
    ui_settings.settings = lambda: QSettings(path, QSettings.Format.IniFormat)
    try:
        win = MainWindow(restore_settings=True)
        win.config.validate()
        results[path] = "ok"
    except Exception as e:
        results[path] = f"{type(e).__name__}: {e}"
print(json.dumps(results), flush=True)
os._exit(0)   # results are out; a half-built window must not crash the teardown
"""
WINDOW_CASES = ["garbage_values", "wrong_types", "random"]


@pytest.fixture(scope="module")
def window_with_settings(tmp_path_factory):
    """name -> "ok" or the error of opening the main window with SETTINGS_BLOBS[name];
    in one subprocess, so a window that fails half-built cannot take the test run with it."""
    pytest.importorskip("PySide6")
    import json
    import subprocess
    import sys
    d = tmp_path_factory.mktemp("ini")
    paths = {name: write(d, f"{name}.ini", SETTINGS_BLOBS[name]) for name in WINDOW_CASES}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-c", WINDOW_PROBE, *map(str, paths.values())],
                       capture_output=True, text=True, timeout=300, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and lines, r.stderr[-2000:]
    out = json.loads(lines[-1])
    return {name: out[str(p)] for name, p in paths.items()}


@pytest.mark.parametrize("name", WINDOW_CASES)
def test_main_window_opens_with_damaged_settings(window_with_settings, name):
    assert window_with_settings[name] == "ok"


# ---------------------------------------------------------------- imported weights: content
TORCH_NAMES = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
               "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.weight_hh_l0_reverse",
               "lstm.weight_hh_l0", "lstm.weight_ih_l0", "weight_hh", "weight_ih",
               "fc.weight", "fc.bias", "head.weight", "rnn.weight_hr_l0", "x"]
DTYPES = ["<f2", "<f4", "<f8", "|i1", "<i4", "<i8", "|u1", "<u8", "|b1"]


def _good_torch_state(cell="gru", I=2, H=3, O=2):
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    rng = np.random.default_rng(0)
    return {"rnn.weight_ih_l0": rng.standard_normal((G * H, I)).astype(np.float32),
            "rnn.weight_hh_l0": rng.standard_normal((G * H, H)).astype(np.float32),
            "rnn.bias_ih_l0": rng.standard_normal(G * H).astype(np.float32),
            "rnn.bias_hh_l0": rng.standard_normal(G * H).astype(np.float32),
            "fc.weight": rng.standard_normal((O, H)).astype(np.float32),
            "fc.bias": rng.standard_normal(O).astype(np.float32)}


def _write_weights(path, state):
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
    else:
        from rnnviewer.engine.npzio import write_npz
        write_npz(path, state)


def _attempt_import(path):
    fn = getattr(engine, "import_weights", None)
    if fn is None:
        pytest.skip("rnnviewer.engine.import_weights does not exist yet")
    t0 = time.process_time()
    try:
        m = fn(path)
    except CheckpointError as e:
        assert path.name in str(e), str(e)
        m = None
    else:
        _check_model(m)
    inspect = getattr(engine, "inspect_weights", None)
    if inspect is not None:
        try:
            inspect(path).describe()
        except CheckpointError as e:
            assert path.name in str(e), str(e)
    assert time.process_time() - t0 < SLOW_S
    return m


@FUZZ
@given(data=st.data())
def test_import_weights_wrong_names_shapes_dtypes_hypothesis(tmp_path, data):
    ext = data.draw(st.sampled_from([".safetensors", ".npz"]))
    state = {}
    if data.draw(st.booleans()):   # start from a valid state and damage it
        state.update(_good_torch_state(data.draw(st.sampled_from(["rnn", "gru", "lstm"]))))
    for name in data.draw(st.lists(st.sampled_from(TORCH_NAMES), max_size=6, unique=True)):
        shape = tuple(data.draw(st.lists(st.integers(0, 7), max_size=3)))
        dtype = data.draw(st.sampled_from(DTYPES + ([] if ext == ".safetensors" else
                                                    ["<c8", "<U3", ">f4"])))
        arr = np.zeros(shape, dtype)
        if arr.dtype.kind == "f" and arr.size and data.draw(st.booleans()):
            with np.errstate(over="ignore"):
                arr.flat[0] = data.draw(st.sampled_from([np.nan, np.inf, 1e30]))
        state[name] = arr
    if not state:
        state["x"] = np.zeros(1, np.float32)
    p = tmp_path / f"w{ext}"
    _write_weights(p, state)
    _attempt_import(p)


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_import_weights_truncated_and_flipped(tmp_path, ext):
    good = tmp_path / f"good{ext}"
    _write_weights(good, _good_torch_state("lstm"))
    assert _attempt_import(good) is not None
    data = good.read_bytes()
    rng = np.random.default_rng(2)
    for n in sorted(set(range(0, len(data), max(1, len(data) // 50))) | {8, 9, len(data) - 1}):
        _attempt_import(write(tmp_path, f"cut{n}{ext}", data[:n]))
    for i, pos in enumerate(rng.integers(0, len(data), 80)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (i % 8)
        _attempt_import(write(tmp_path, f"flip{pos}{ext}", bytes(flipped)))


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_import_torch_pickles_never_run(tmp_path, suffix, no_unpickling):
    """A .pt file is a pickle inside a zip: without torch it is refused; torch would open it
    only with weights_only=True. Either way the payload must not run."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"rnn.weight_hh_l0": _Payload(marker)}, protocol=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:   # torch.save's layout
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
    for name, blob in {f"zip{suffix}": buf.getvalue(), f"raw{suffix}": payload}.items():
        p = write(tmp_path, name, blob)
        with pytest.raises(CheckpointError, match=name):
            _import_weights(p)
    assert not marker.exists()
