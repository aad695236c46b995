"""Analysis functions against their definitions."""

import numpy as np
import pytest

from rnnviewer.engine import Model
from rnnviewer.engine import analysis as an
from rnnviewer.errors import ConfigError


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 3.0
    p = an.PCAProjector(n_components=3).update(X)
    _, s, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    for i in range(3):                               # same axes up to sign
        assert abs(np.dot(p.components[i], Vt[i])) == pytest.approx(1.0, abs=1e-10)
        big = np.argmax(np.abs(p.components[i]))
        assert p.components[i, big] > 0             # first fit: svd_flip convention
    np.testing.assert_allclose(p.explained_variance, s[:3] ** 2 / (len(X) - 1))
    np.testing.assert_allclose(p.explained_variance, np.linalg.eigvalsh(np.cov(X.T))[::-1][:3])
    np.testing.assert_allclose(p.explained_variance_ratio, s[:3] ** 2 / np.sum(s ** 2))
    np.testing.assert_allclose(p.project(X), (X - X.mean(0)) @ p.components.T)
    assert p.project(X[:5].reshape(1, 5, 6)).shape == (1, 5, 3)


def test_pca_keeps_signs_between_fits():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)) * [5.0, 3.0, 1.0, 0.5]
    p = an.PCAProjector(n_components=2, pool_size=200).update(X)
    first = p.components.copy()
    for _ in range(5):                               # refits on a drifting pool
        new = rng.normal(size=(50, 4)) * [5.0, 3.0, 1.0, 0.5]
        p.update(new)
        assert np.all(np.sum(p.components * first, axis=1) > 0.9)
    q = an.PCAProjector(n_components=2)
    q.update(X)
    q.components = -q.components                     # pretend the previous basis was flipped
    q.fit()
    assert np.all(np.sum(q.components * p.components, axis=1) < 0)   # followed the flip


def test_pca_pool_keeps_the_newest_states():
    p = an.PCAProjector(n_components=1, pool_size=10)
    X = np.arange(29 * 3, dtype=float).reshape(29, 3)
    p.add(X[:7])
    assert len(p) == 7
    p.add(X[7:25])
    p.add(X[25:])
    assert len(p) == 10
    np.testing.assert_array_equal(np.sort(p._pool[:, 0]), X[-10:, 0])
    with pytest.raises(ConfigError):
        p.add(np.zeros((2, 4)))
    with pytest.raises(ConfigError):
        an.PCAProjector().project(np.zeros(3))


@pytest.mark.parametrize("cell,gates", [("rnn", ("h",)), ("gru", ("r", "z", "n")),
                                        ("lstm", ("i", "f", "g", "o"))])
def test_spectrum_and_split_gates(cell, gates):
    m = Model(cell, n_in=3, n_hidden=5, n_out=2, seed=0, dtype="float64")
    W = m.params["W_hh"]
    blocks = an.split_gates(m, W)
    assert tuple(blocks) == gates
    for i, g in enumerate(gates):
        np.testing.assert_array_equal(blocks[g], W[5 * i:5 * (i + 1)])
        sp = an.spectrum(m, gate=g)
        ref = np.linalg.eigvals(W[5 * i:5 * (i + 1)])
        np.testing.assert_allclose(np.sort_complex(sp.eigenvalues), np.sort_complex(ref))
        assert sp.spectral_radius == pytest.approx(np.abs(ref).max())
        assert sp.max_singular_value == pytest.approx(np.linalg.svd(blocks[g])[1][0])
        assert np.all(np.diff(np.abs(sp.eigenvalues)) <= 1e-12)
    assert an.spectrum(m).gate == an.DEFAULT_GATE[cell]
    assert set(an.split_gates(cell, m.params["b_xh"])) == set(gates)
    with pytest.raises(ConfigError):
        an.split_gates(m, np.zeros((len(gates) * 5 + 1, 5)))
    with pytest.raises(ConfigError):
        an.spectrum(m, gate="x")


def test_spectrum_of_a_known_matrix():
    R = np.array([[0.0, -2.0], [2.0, 0.0]])       # eigenvalues +-2i
    sp = an.spectrum(R)
    np.testing.assert_allclose(np.sort_complex(sp.eigenvalues), [-2j, 2j])
    assert sp.spectral_radius == pytest.approx(2.0)
    N = np.array([[0.5, 10.0], [0.0, 0.5]])        # non-normal: radius 0.5, sigma_max > 10
    assert an.spectral_radius(N) == pytest.approx(0.5)
    assert an.largest_singular_value(N) == pytest.approx(np.linalg.svd(N)[1][0])
    assert an.largest_singular_value(N) > 10


def test_top_k_contexts_on_a_hand_built_array():
    acts = np.zeros((2, 20, 3))
    acts[0, 5, 1] = 9.0
    acts[0, 6, 1] = 8.0          # next to the first peak: overlapping window, skipped
    acts[0, 15, 1] = 7.0
    acts[1, 1, 1] = 6.0          # near the start: window padded
    acts[1, 19, 1] = -10.0       # the most negative
    acts[0, 10, 0] = 100.0       # another unit
    tokens = np.arange(40).reshape(2, 20)
    c = an.top_k_contexts(acts, 1, k=3, before=2, after=2, inputs=tokens)
    np.testing.assert_array_equal(c.positions, [[0, 5], [0, 15], [1, 1]])
    np.testing.assert_array_equal(c.values, [9.0, 7.0, 6.0])
    np.testing.assert_array_equal(c.windows[0], [0, 0, 9, 8, 0])
    np.testing.assert_array_equal(c.windows[2], [np.nan, 0, 6, 0, 0])
    np.testing.assert_array_equal(c.inputs[0], [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(c.inputs[2], [-1, 20, 21, 22, 23])
    lo = an.top_k_contexts(acts, 1, k=1, before=2, after=0, mode="min")
    np.testing.assert_array_equal(lo.positions, [[1, 19]])
    np.testing.assert_array_equal(lo.windows, [[0, 0, -10]])
    ab = an.top_k_contexts(acts, 1, k=2, before=0, after=0, mode="abs")
    np.testing.assert_array_equal(ab.values, [-10.0, 9.0])
    # window overlap rule: peaks 5 and 6 coexist once windows are a single step
    one = an.top_k_contexts(acts, 1, k=3, before=0, after=0)
    np.testing.assert_array_equal(one.positions, [[0, 5], [0, 6], [0, 15]])
    # a single stream (T, H), and more requested than exist
    st = an.top_k_contexts(acts[0], 1, k=50, before=1, after=1)
    assert st.positions[0].tolist() == [0, 5] and len(st.positions) <= 20
    starts = sorted(st.positions[:, 1])
    assert np.all(np.diff(starts) > 2)             # no two windows overlap
    with pytest.raises(ConfigError):
        an.top_k_contexts(acts, 3)


def test_gate_saturation_fractions():
    rng = np.random.default_rng(0)
    v = rng.uniform(size=(4, 50, 3))
    g = np.tanh(rng.normal(size=(4, 50, 3)) * 3)
    sat = an.gate_saturation({"i": v, "f": v ** 4, "g": g})
    assert set(sat) == {"i", "f"}
    assert sat["i"].low == pytest.approx(np.mean(v < 0.1))
    assert sat["f"].high == pytest.approx(np.mean(v ** 4 > 0.9))
    pu = an.gate_saturation({"i": v}, per_unit=True)
    np.testing.assert_allclose(pu["i"].low, np.mean(v < 0.1, axis=(0, 1)))
    tg = an.gate_saturation({"g": g}, names=["g"])
    assert tg["g"].low == pytest.approx(np.mean(g < -0.8))
    mask = np.zeros((4, 50))
    mask[1, :10] = 1
    m = an.gate_saturation({"i": v}, mask=mask)
    assert m["i"].high == pytest.approx(np.mean(v[1, :10] > 0.9))
    exact = np.array([0.0, 0.05, 0.5, 0.95, 1.0]).reshape(1, 5, 1)
    e = an.gate_saturation({"z": exact})
    assert e["z"] == (0.4, 0.4)
    with pytest.raises(ConfigError):
        an.gate_saturation({"i": v}, names=["o"])


def test_histograms_keep_their_edges():
    tr = an.HistogramTracker(bins=8)
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.3, 0.3, 100)
    counts, edges = tr.update({"W_hh": w})["W_hh"]
    np.testing.assert_allclose(edges, np.linspace(-0.5, 0.5, 9))
    assert counts.sum() == 100
    np.testing.assert_array_equal(counts, np.histogram(w, edges)[0])
    _, e2 = tr.update({"W_hh": w * 0.5})["W_hh"]       # shrinking values: same edges
    np.testing.assert_array_equal(e2, edges)
    c3, e3 = tr.update({"W_hh": w * 3})["W_hh"]        # growing past 0.5: next nice limit
    np.testing.assert_allclose(e3, np.linspace(-1, 1, 9))
    assert c3.sum() == 100
    assert [an.nice_limit(v) for v in (0.3, 1.0, 1.5, 4, 7, 0.011)] == \
        pytest.approx([0.5, 1.0, 2.0, 5.0, 10.0, 0.02])
