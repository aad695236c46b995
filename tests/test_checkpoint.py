"""save/load: bit-for-bit round trips, and damaged files raise only CheckpointError."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from rnnviewer.engine import SGD, CheckpointError, Model, load, save
from rnnviewer.engine.checkpoint import model_arrays
from rnnviewer.engine.npzio import temp_files

CELLS = ("rnn", "gru", "lstm")


def trained(cell, dtype, n_out, seed=3):
    """A model whose params are no longer the seeded init (a few SGD steps)."""
    m = Model(cell, n_in=3, n_hidden=4, n_out=n_out, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 5, 3))
    opt = SGD(m.params, 0.3)
    for _ in range(2):
        if n_out:
            _, g = m.loss_and_grads(x, rng.normal(size=(2, 5, n_out)))
        else:
            g = m.backward(m.forward(x), dh=rng.normal(size=(2, 5, 4)))
        opt.step(g)
    return m


def assert_same_model(a, b):
    assert a.config == b.config
    assert set(a.params) == set(b.params)
    for k in a.params:
        assert a.params[k].dtype == b.params[k].dtype, k
        assert a.params[k].shape == b.params[k].shape, k
        assert a.params[k].tobytes() == b.params[k].tobytes(), k


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_out", [0, 2])
def test_round_trip_bit_for_bit(tmp_path, cell, dtype, n_out):
    m = trained(cell, dtype, n_out)
    path = tmp_path / "model.npz"
    save(m, path)
    back = load(path)
    assert_same_model(m, back)
    assert back.cell == cell and back.dtype == np.dtype(dtype) and back.n_out == n_out
    x = np.random.default_rng(0).normal(size=(2, 3, 3))
    a, b = m.forward(x), back.forward(x)
    assert a.h.tobytes() == b.h.tobytes()
    if n_out:
        assert a.y.tobytes() == b.y.tobytes()
    assert temp_files(path) == []


def test_save_overwrites_atomically_and_accepts_str(tmp_path):
    path = tmp_path / "m.npz"
    save(trained("rnn", "float32", 1, seed=1), str(path))
    second = trained("gru", "float64", 2, seed=2)
    save(second, path)
    assert_same_model(second, load(str(path)))
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    first = trained("lstm", "float32", 2)
    save(first, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        save(trained("lstm", "float32", 2, seed=9), path)
    assert path.read_bytes() == before
    assert temp_files(path) == []


# ---------------------------------------------------------------- damaged files
def good_bytes(tmp_path, cell="lstm", dtype="float32", n_out=2):
    path = tmp_path / "good.npz"
    save(trained(cell, dtype, n_out), path)
    return path.read_bytes()


def expect_error(path, *words):
    with pytest.raises(CheckpointError) as info:
        load(path)
    msg = str(info.value)
    assert str(path) in msg or os.path.basename(str(path)) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def write_arrays(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_missing_empty_and_folder(tmp_path):
    expect_error(tmp_path / "nope.npz")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    expect_error(empty, "empty")
    expect_error(tmp_path)


@pytest.mark.parametrize("keep", [1, 4, 30, 100, 0.5, -1, -22, -60])
def test_truncated(tmp_path, keep):
    data = good_bytes(tmp_path)
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep > 0 else len(data) + keep)
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:n])
    expect_error(path)


def test_every_single_byte_damage_is_caught_or_harmless(tmp_path):
    """Bit flips anywhere: CheckpointError, or (headers the reader ignores) the same model."""
    data = good_bytes(tmp_path, "gru", "float64")
    ref = load(tmp_path / "good.npz")
    rng = np.random.default_rng(0)
    path = tmp_path / "flip.npz"
    positions = sorted(set(rng.integers(0, len(data), 250).tolist()) | {0, 1, len(data) - 1})
    errors = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(bad))
        try:
            m = load(path)
        except CheckpointError as e:
            assert str(path) in str(e)
            errors += 1
        else:
            assert_same_model(ref, m)
    assert errors > len(positions) // 2


@pytest.mark.parametrize("size", [1, 22, 1000, 70000])
def test_random_bytes(tmp_path, size):
    rng = np.random.default_rng(size)
    path = tmp_path / "random.npz"
    path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    expect_error(path)
    path.write_bytes(b"PK\x03\x04" + rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    expect_error(path)
    path.write_bytes(b"PK\x05\x06" + bytes(18))   # an empty zip: no entries at all
    expect_error(path)


def test_foreign_npz_and_other_formats(tmp_path):
    foreign = tmp_path / "foreign.npz"
    write_arrays(foreign, {"a": np.arange(3), "weights": np.ones((2, 2))})
    expect_error(foreign, "not an rnnviewer")
    text = tmp_path / "notes.npz"
    text.write_text("just some text\n")
    expect_error(text)
    npy = tmp_path / "array.npz"
    np.save(npy.open("wb"), np.ones(3))
    expect_error(npy)


def base_arrays(tmp_path, cell="rnn", dtype="float64", n_out=2):
    return dict(model_arrays(trained(cell, dtype, n_out)))


@pytest.mark.parametrize("key", ["rnnviewer/format", "rnnviewer/version", "rnnviewer/config",
                                 "param/W_xh", "param/W_hh", "param/b_xh", "param/b_hh",
                                 "param/W_hy", "param/b_y"])
def test_missing_keys(tmp_path, key):
    arrays = base_arrays(tmp_path)
    del arrays[key]
    path = tmp_path / "missing.npz"
    write_arrays(path, arrays)
    expect_error(path)


@pytest.mark.parametrize("name, value, word", [
    ("param/W_hh", np.zeros((5, 4)), "W_hh"),
    ("param/b_y", np.zeros((3,)), "b_y"),
    ("param/W_xh", np.zeros((4, 3), np.float32), "dtype"),
    ("param/W_xh", np.zeros((4, 3), np.int64), "dtype"),
    ("param/W_xh", np.full((4, 3), np.nan), "NaN"),
    ("rnnviewer/version", np.asarray(99), "newer"),
    ("rnnviewer/version", np.asarray("one"), "version"),
    ("rnnviewer/format", np.asarray("something-else"), "not an rnnviewer"),
    ("rnnviewer/config", np.asarray("{not json"), "JSON"),
    ("rnnviewer/config", np.asarray("[1, 2]"), "config"),
])
def test_wrong_shapes_dtypes_values(tmp_path, name, value, word):
    arrays = base_arrays(tmp_path)
    arrays[name] = value
    path = tmp_path / "wrong.npz"
    write_arrays(path, arrays)
    expect_error(path, word)


@pytest.mark.parametrize("change", [
    {"cell": "transformer"}, {"n_hidden": -4}, {"n_hidden": "big"}, {"n_in": 10 ** 12},
    {"dtype": "float16"}, {"dtype": "object"}, {"seed": -1}, {"n_out": 1.5},
])
def test_bad_config_values(tmp_path, change):
    arrays = base_arrays(tmp_path)
    cfg = json.loads(str(arrays["rnnviewer/config"][()]))
    cfg.update(change)
    arrays["rnnviewer/config"] = np.asarray(json.dumps(cfg))
    path = tmp_path / "cfg.npz"
    write_arrays(path, arrays)
    expect_error(path)


def test_pickled_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    arrays = base_arrays(tmp_path)
    obj = np.empty(1, dtype=object)
    obj[0] = Boom()
    arrays["param/W_hh"] = obj
    path = tmp_path / "pickled.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)   # numpy pickles object arrays inside the .npy entry
    expect_error(path, "objects")
    assert not marker.exists()


def _npy_with_header(shape, descr="<f8", payload=b"\0" * 64):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


@pytest.mark.parametrize("shape", [(10 ** 12,), (2 ** 31, 2 ** 31), (-1, 4)])
def test_huge_or_impossible_declared_shapes(tmp_path, shape):
    arrays = base_arrays(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            if k == "param/W_hh":
                zf.writestr(k + ".npy", _npy_with_header(shape))
            else:
                b = io.BytesIO()
                np.save(b, v)
                zf.writestr(k + ".npy", b.getvalue())
    path = tmp_path / "huge.npz"
    path.write_bytes(buf.getvalue())
    expect_error(path)


def test_each_cell_rejects_another_cells_weights(tmp_path):
    """An LSTM's config with a GRU's parameters: shapes do not fit (4H vs 3H rows)."""
    arrays = base_arrays(tmp_path, cell="lstm", dtype="float32")
    gru = model_arrays(trained("gru", "float32", 2))
    for k in ("param/W_xh", "param/W_hh", "param/b_xh", "param/b_hh"):
        arrays[k] = gru[k]
    path = tmp_path / "mixed.npz"
    write_arrays(path, arrays)
    expect_error(path, "shape")
