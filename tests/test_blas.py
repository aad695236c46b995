"""The one BLAS binding of every numba kernel (engine/kernels/blas.py).

gemm against numpy for every layout; training every cell with numpy's OpenBLAS while SciPy
cannot even be imported (as in the packaged app); the SciPy fallback giving the same
numbers; a clear ConfigError when there is no BLAS at all. The subprocess tests reuse the
suite's NUMBA_CACHE_DIR, so they compile only what the other tests have not.
"""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from rnnviewer.engine.kernels import blas

HERE = os.path.dirname(os.path.abspath(__file__))

# A meta-path finder that makes `import scipy` fail, as in a bundle without SciPy.
BLOCK_SCIPY = textwrap.dedent("""
    import sys

    class _NoScipy:
        def find_spec(self, name, path=None, target=None):
            if name == "scipy" or name.startswith("scipy."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoScipy())
""")


def run_python(code, **env):
    """Run `code` in a fresh interpreter with tests/ importable; (returncode, stdout, stderr)."""
    full = f"import sys\nsys.path.insert(0, {HERE!r})\n" + code
    out = subprocess.run([sys.executable, "-c", full], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=900)
    return out.returncode, out.stdout, out.stderr


@njit
def _gemm(ta, tb, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc):
    blas.gemm(ta, tb, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc)


def _operand(rng, rows, cols, dtype, pad=2, off=3):
    """A (rows, cols) matrix stored inside a larger flat buffer: (buffer, offset, ld, matrix)."""
    ld = cols + pad
    buf = rng.normal(size=off + max(rows, 1) * ld).astype(dtype)
    mat = buf[off:off + rows * ld].reshape(rows, ld)[:, :cols] if rows else np.zeros((0, cols))
    return buf, off, ld, np.array(mat, np.float64)


def check_gemm_layouts():
    """C = alpha op(A) op(B) + beta C on strided, offset buffers against numpy: every
    transpose, the gemv shortcuts (one row or column), k = 0, beta 0 and 1, both dtypes."""
    rng = np.random.default_rng(0)
    shapes = [(3, 4, 5), (1, 4, 5), (3, 1, 5), (1, 1, 5), (3, 4, 0), (2, 3, 1), (4, 2, 1)]
    for dtype, tol in ((np.float64, 1e-13), (np.float32, 2e-6)):
        for (m, n, k), ta, tb, beta in itertools.product(shapes, (False, True), (False, True),
                                                          (0.0, 1.0)):
            a, oa, lda, A = _operand(rng, *((k, m) if ta else (m, k)), dtype)
            b, ob, ldb, B = _operand(rng, *((n, k) if tb else (k, n)), dtype)
            c, oc, ldc, C = _operand(rng, m, n, dtype)
            want = 0.7 * (A.T if ta else A) @ (B.T if tb else B) + beta * C
            outside = np.ones(c.size, bool)
            for i in range(m):
                outside[oc + i * ldc:oc + i * ldc + n] = False
            before = c[outside].copy()
            _gemm(ta, tb, m, n, k, 0.7, a, oa, lda, b, ob, ldb, beta, c, oc, ldc)
            got = c[oc:oc + m * ldc].reshape(m, ldc)[:, :n]
            err = np.max(np.abs(got - want), initial=0.0) / max(np.max(np.abs(want),
                                                                       initial=0.0), 1.0)
            assert err < tol, (dtype.__name__, m, n, k, ta, tb, beta, err)
            assert np.array_equal(c[outside], before), "gemm wrote outside C"


def test_gemm_matches_numpy_for_every_layout():
    check_gemm_layouts()


def test_numpy_openblas_is_bound_and_limited_to_one_thread():
    import ctypes

    if not blas.BLAS.startswith("numpy's OpenBLAS"):
        pytest.skip(f"numpy has no bundled OpenBLAS here ({blas.BLAS})")
    assert blas.BLAS_THREADS == int(os.environ.get("RNNVIEWER_BLAS_THREADS", "1"))
    path = next(p for p in blas._numpy_candidates() if os.path.basename(p) in blas.BLAS)
    lib = ctypes.CDLL(path)
    get = getattr(lib, "scipy_openblas_get_num_threads64_", None) or \
        getattr(lib, "openblas_get_num_threads64_")
    get.restype = ctypes.c_int
    assert get() == blas.BLAS_THREADS


TRAIN_EVERY_CELL = textwrap.dedent("""
    import numpy as np
    from rnnviewer.engine import SGD, Model
    from rnnviewer.engine.kernels import blas, head, rnn, gru, lstm

    # split even small batches into per-thread chunks (the parallel kernels)
    head.PARALLEL_MIN_ROWS = rnn.PARALLEL_MIN_ROWS = 1
    gru.MIN_CHUNK_ROWS = lstm.MIN_CHUNK_ROWS = 1

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))

    rng = np.random.default_rng(0)
    worst = 0.0
    for cell in ("rnn", "gru", "lstm"):
        for B, ids in ((1, False), (6, True), (6, False)):
            I, H, O, T = 5, 6, 3, 4
            x = rng.integers(0, I, (B, T)) if ids else rng.normal(size=(B, T, I))
            target = rng.integers(0, O, (B, T))
            fast = Model(cell, I, H, O, seed=1, dtype=DTYPE)
            slow = Model(cell, I, H, O, seed=1, dtype=DTYPE, backend="numpy")
            l1, g1 = fast.loss_and_grads(x, target, "xent")
            l2, g2 = slow.loss_and_grads(x, target, "xent")
            SGD(fast.params, 0.1).step(g1)
            worst = max([worst, abs(l1 - l2) / abs(l2)] + [rel(g1[k], g2[k]) for k in g2])
    print(blas.BLAS)
    print(worst)
""")


def test_training_every_cell_needs_no_scipy():
    """numpy's OpenBLAS found: importing the engine and training every cell (serial and
    parallel chunks, token ids and dense x) works with SciPy unimportable, as in the
    packaged app, and never imports it."""
    if not blas.BLAS.startswith("numpy's OpenBLAS"):
        pytest.skip(f"numpy has no bundled OpenBLAS here ({blas.BLAS})")
    code = BLOCK_SCIPY + "DTYPE = 'float32'\n" + TRAIN_EVERY_CELL + textwrap.dedent("""
        assert "scipy" not in sys.modules, sorted(m for m in sys.modules if "scipy" in m)
        print("no scipy")
    """)
    rc, out, err = run_python(code)
    assert rc == 0, err[-3000:]
    backend, worst, last = out.split("\n")[-4:-1]
    assert backend.startswith("numpy's OpenBLAS"), backend
    assert float(worst) < 1e-4, worst  # float32 kernels against the float32 numpy backend
    assert last == "no scipy"


def test_scipy_fallback_gives_the_same_results():
    """RNNVIEWER_BLAS=scipy: the kernels call SciPy's Fortran BLAS through CBLAS-shaped
    adapters, with the same results (float64: 1e-10) for every cell and gemm layout."""
    pytest.importorskip("scipy.linalg.cython_blas")
    code = ("DTYPE = 'float64'\n" + TRAIN_EVERY_CELL +
            "from test_blas import check_gemm_layouts\ncheck_gemm_layouts()\nprint('gemm ok')\n")
    rc, out, err = run_python(code, RNNVIEWER_BLAS="scipy")
    assert rc == 0, err[-3000:]
    backend, worst, last = out.split("\n")[-4:-1]
    assert backend == "scipy.linalg.cython_blas"
    assert float(worst) < 1e-10, worst
    assert last == "gemm ok"


def test_no_blas_at_all_is_a_clear_config_error():
    code = BLOCK_SCIPY + textwrap.dedent("""
        from rnnviewer.engine import Model
        from rnnviewer.errors import ConfigError
        try:
            Model("gru", 3, 4, 2)
        except ConfigError as e:
            print(e)
        else:
            print("no error")
    """)
    rc, out, err = run_python(code, RNNVIEWER_BLAS="scipy")
    assert rc == 0, err[-3000:]
    assert "need a BLAS" in out and "pip install scipy" in out and "backend='numpy'" in out, out
    rc, out, err = run_python("import rnnviewer.engine.kernels.blas", RNNVIEWER_BLAS="mkl")
    assert rc != 0 and "ConfigError" in err and "RNNVIEWER_BLAS='mkl'" in err, err[-2000:]
