"""Helpers shared by the GRU and LSTM numba kernels.

- `tanh` / `sigmoid`: a rational tanh (max abs error 2.6e-7) for float32, exact `np.tanh`
  for float64 (the checks run in float64).
- `gemm`: row-major BLAS on strided blocks of the kernels' (B, T, ...) arrays, in place
  (explicit offsets, leading dimensions, transposes and beta): no copies, no allocation.
  It calls numpy's bundled OpenBLAS through CBLAS when found (0.3.31 here: 1.5-2x faster
  than scipy's 0.3.30 on the small-batch products of a time step), else (or with
  RNNVIEWER_GATED_BLAS=scipy) scipy's `cython_blas` through CBLAS-shaped adapters. Either
  way the kernels call fixed symbol names with one signature, so they stay cacheable.
- `blas_local_threads`: a per-thread BLAS thread count (OpenBLAS >= 0.3.27), so each
  batch chunk runs single-threaded BLAS without changing numpy's setting elsewhere.
- `matmul_rows` / `matmul_rows_t`: the recurrent product of one step (hand loops for
  one or two rows, which BLAS handles badly, else one BLAS call).
- `jit_variants`, `sum_chunks`: per-dtype kernel bodies, per-chunk gradient reduction.
- `prepare_input` / `onehot_rows`: token ids and one-hot rows become a row lookup.
- `chunks`: coarse batch parallelism, one chunk per numba thread.

numba's cache checks only the contents of a kernel's own file: after editing this one,
clear NUMBA_CACHE_DIR (the packaged app keys its cache by a hash of the sources).
"""

import ctypes
import glob
import os
import types as pytypes

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from rnnviewer.engine import numba_config
from rnnviewer.errors import ConfigError

# float32: fastmath without nnan/ninf (NaN and Inf still propagate, so divergence stays
# visible); float64: exact. error_model="numpy" drops the zero-division checks that
# would stop the loops from vectorising.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"} if numba_config.FASTMATH else False
JIT_F32 = dict(numba_config.JIT, fastmath=_FAST, error_model="numpy")
JIT_F64 = dict(numba_config.JIT_EXACT, error_model="numpy")
JIT_F32_PAR = dict(JIT_F32, parallel=True)
JIT_F64_PAR = dict(JIT_F64, parallel=True)


def jit_variants(fn):
    """(float32, float64) jitted copies of a kernel body, each with its dtype's flags and its
    own cache entry (a copy of the function under another name). The serial and parallel
    drivers call them, so numba types and lowers a body once per dtype instead of once per
    driver (LLVM still optimises it again where a driver links it)."""
    out = []
    for suffix, flags in (("_f32", JIT_F32), ("_f64", JIT_F64)):
        f = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                                 fn.__defaults__, fn.__closure__)
        f.__qualname__ = fn.__qualname__ + suffix
        f.__doc__ = fn.__doc__
        out.append(njit(**flags)(f))
    return tuple(out)


# ------------------------------------------------------------------ activations
_A = [np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                              5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                              -2.76076847742355e-16)]
_B = [np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                              1.19825839466702e-06)]
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = _A
_B0, _B2, _B4, _B6 = _B
_CLAMP = np.float32(7.90531110763549805)


@njit(inline="always")
def _tanh32(v):
    """Eigen's rational tanh for float32 (13/6), clamped; NaN propagates."""
    v = min(max(v, -_CLAMP), _CLAMP)
    v2 = v * v
    p = v2 * _A13 + _A11
    p = p * v2 + _A9
    p = p * v2 + _A7
    p = p * v2 + _A5
    p = p * v2 + _A3
    p = p * v2 + _A1
    q = v2 * _B6 + _B4
    q = q * v2 + _B2
    q = q * v2 + _B0
    return v * p / q


def tanh(v):
    """tanh for scalars inside kernels: rational for float32, exact for float64."""
    return np.tanh(v)


def sigmoid(v):
    return 0.5 * (np.tanh(0.5 * v) + 1.0)


@overload(tanh, inline="always")
def _ol_tanh(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return lambda v: _tanh32(v)
    return lambda v: np.tanh(v)


@overload(sigmoid, inline="always")
def _ol_sigmoid(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        half = np.float32(0.5)
        return lambda v: half * (_tanh32(half * v) + np.float32(1.0))
    return lambda v: 0.5 * (np.tanh(0.5 * v) + 1.0)


# ------------------------------------------------------------------ BLAS
@intrinsic
def _addr(typingctx, arr, offset):
    """void* to element `offset` of the flat (C-contiguous) buffer of `arr`."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        off = context.cast(builder, args[1], sig.args[1], types.intp)
        return builder.bitcast(builder.gep(ary.data, [off]), cgutils.voidptr_t)

    return types.voidptr(arr, offset), codegen


@intrinsic
def _ref(typingctx, value):
    """void* to a stack copy of a scalar (Fortran takes every argument by reference)."""
    if not isinstance(value, (types.Integer, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        ptr = cgutils.alloca_once_value(builder, args[0])
        return builder.bitcast(ptr, cgutils.voidptr_t)

    return types.voidptr(value), codegen


_ROW, _NO, _TR = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans
_I32, _I64, _P = types.int32, types.int64, types.voidptr


def _cblas_sig(real):
    """cblas_?gemm with 64-bit integers (OpenBLAS built with USE64BITINT, as numpy's)."""
    return types.void(_I32, _I32, _I32, _I64, _I64, _I64, real, _P, _I64, _P, _I64, real, _P, _I64)


# the kernels call these three symbols; _bind() points them at a library
_sgemm = types.ExternalFunction("rnnviewer_gated_sgemm", _cblas_sig(types.float32))
_dgemm = types.ExternalFunction("rnnviewer_gated_dgemm", _cblas_sig(types.float64))
_local_threads = types.ExternalFunction("rnnviewer_gated_blas_threads", _I32(_I32))


def _numpy_openblas():
    """(ctypes library, sgemm, dgemm, set_threads_local names) of numpy's OpenBLAS, or None."""
    import numpy

    root = os.path.dirname(numpy.__file__)
    paths = set(glob.glob(os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*")))
    paths.update(glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    try:
        with open("/proc/self/maps") as f:
            paths.update(ln.split()[-1] for ln in f if "openblas" in ln.lower() and "numpy" in ln)
    except OSError:
        pass
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        local = "openblas_set_num_threads_local"
        for s, d in (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
                     ("cblas_sgemm64_", "cblas_dgemm64_")):
            if hasattr(lib, s) and hasattr(lib, d) and hasattr(lib, local):
                return lib, s, d, local
    return None


def _address(lib, name):
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _scipy_fallback():
    """CBLAS-shaped adapters (numba cfuncs) over scipy's Fortran sgemm/dgemm."""
    f_sig = types.void(*([_P] * 13))
    fs = {}
    for name in ("sgemm", "dgemm"):
        symbol = f"rnnviewer_gated_f_{name}"
        llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
        fs[name] = types.ExternalFunction(symbol, f_sig)
    fsg, fdg = fs["sgemm"], fs["dgemm"]
    N, T = np.int8(ord("N")), np.int8(ord("T"))

    # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
    @cfunc(_cblas_sig(types.float32))
    def sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        fsg(_ref(T if tb == _TR else N), _ref(T if ta == _TR else N), _ref(np.int32(n)),
            _ref(np.int32(m)), _ref(np.int32(k)), _ref(alpha), b, _ref(np.int32(ldb)),
            a, _ref(np.int32(lda)), _ref(beta), c, _ref(np.int32(ldc)))

    @cfunc(_cblas_sig(types.float64))
    def dgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        fdg(_ref(T if tb == _TR else N), _ref(T if ta == _TR else N), _ref(np.int32(n)),
            _ref(np.int32(m)), _ref(np.int32(k)), _ref(alpha), b, _ref(np.int32(ldb)),
            a, _ref(np.int32(lda)), _ref(beta), c, _ref(np.int32(ldc)))

    @cfunc(_I32(_I32))
    def local_threads(n):
        return 1  # scipy's BLAS is limited to one thread process-wide instead

    _limit_scipy_blas()
    return sgemm.address, dgemm.address, local_threads.address


def _limit_scipy_blas():
    """Limit scipy's OpenBLAS to one thread (it has no per-thread setting before 0.3.27)."""
    import scipy

    base = os.path.dirname(os.path.dirname(scipy.__file__))
    for path in glob.glob(os.path.join(base, "scipy.libs", "*openblas*")) + \
            glob.glob(os.path.join(base, "scipy", ".dylibs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                fn(1)
                break


def _bind():
    """Point the kernels' BLAS symbols at numpy's OpenBLAS, or at the scipy adapters."""
    found = None if os.environ.get("RNNVIEWER_GATED_BLAS") == "scipy" else _numpy_openblas()
    if found is not None:
        lib, s, d, local = found
        addresses = _address(lib, s), _address(lib, d), _address(lib, local)
        backend = f"numpy's OpenBLAS ({os.path.basename(lib._name)})"
    else:
        addresses = _scipy_fallback()
        backend = "scipy.linalg.cython_blas"
    for name, addr in zip(("sgemm", "dgemm", "blas_threads"), addresses):
        llvm.add_symbol(f"rnnviewer_gated_{name}", addr)
    return backend


BLAS = _bind()  # which library the kernels call (for the benchmark's report)


@njit
def blas_local_threads(n):
    """Set this thread's BLAS thread count (kernel chunks use 1); returns the previous one."""
    return _local_threads(np.int32(n))


@njit
def gemm(ta, tb, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc):
    """Row-major C (m, n) = alpha op(A) op(B) + beta C on flat buffers: element (i, j) of
    operand X is X.flat[off_x + i * ldx + j]; op(A) is A (m, k) or, with ta, A.T for A (k, m).
    beta = 0 overwrites C."""
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # C = beta C, which a BLAS may skip
        cf = c.reshape(c.size)
        for i in range(m):
            for j in range(n):
                cf[off_c + i * ldc + j] = 0.0 if beta == 0.0 else beta * cf[off_c + i * ldc + j]
        return
    fa = _TR if ta else _NO
    fb = _TR if tb else _NO
    if c.itemsize == 4:
        _sgemm(_ROW, fa, fb, m, n, k, np.float32(alpha), _addr(a, off_a), max(lda, 1),
               _addr(b, off_b), max(ldb, 1), np.float32(beta), _addr(c, off_c), max(ldc, 1))
    else:
        _dgemm(_ROW, fa, fb, m, n, k, np.float64(alpha), _addr(a, off_a), max(lda, 1),
               _addr(b, off_b), max(ldb, 1), np.float64(beta), _addr(c, off_c), max(ldc, 1))


SMALL_M = 2  # rows of a step product done by hand, not BLAS


@njit(inline="always")
def _axpy_rows(m, a3, b0, t, w, c):
    """c[i] = a3[b0 + i, t] @ w for i < m: each row of W read once, used by every row of c.

    Written on 1-D row views: LLVM vectorises the inner loop (flat offsets with a run-time
    stride made it 8x slower)."""
    N = w.shape[1]
    for i in range(m):
        ci = c[i]
        for j in range(N):
            ci[j] = 0.0
    for k in range(w.shape[0]):
        wk = w[k]
        for i in range(m):
            s = a3[b0 + i, t, k]
            ci = c[i]
            for j in range(N):
                ci[j] += s * wk[j]


@njit(inline="always")
def matmul_rows(m, a3, b0, t, w, c):
    """The recurrent product of one step: c (m, N) = rows a3[b0:b0+m, t] (K,) @ w (K, N).

    a3 is (B, T, K) (use a (B, 1, K) view and t=0 for a plain (B, K) matrix); w and c are
    C-contiguous. Up to SMALL_M rows (a batch chunk of one or two) skip BLAS, which packs
    W again on every call (40 us for one row of 128 x 384 against 4 us by hand)."""
    K, N = w.shape
    if m > SMALL_M:
        T = a3.shape[1]
        gemm(False, False, m, N, K, 1.0, a3, (b0 * T + t) * K, T * K, w, 0, N, 0.0, c, 0, N)
    else:
        _axpy_rows(m, a3, b0, t, w, c)


@njit(inline="always")
def _dot_rows(m, a3, b0, t, w, c):
    """c[i, g] = a3[b0 + i, t] . w[g] for i < m (one or two rows)."""
    G, K = w.shape
    zero = c.dtype.type(0.0)
    for i in range(m):
        ai = a3[b0 + i, t]
        ci = c[i]
        for g in range(G):
            wg = w[g]
            s = zero  # (starting from ai[0] * wg[0] stopped the loop vectorising)
            for k in range(K):
                s += ai[k] * wg[k]
            ci[g] = s


@njit(inline="always")
def matmul_rows_t(m, a3, b0, t, w, c):
    """c (m, G) = rows a3[b0:b0+m, t] (K,) @ w.T for w (G, K): the forward recurrent product
    straight from W_hh (no transposed copy). Up to SMALL_M rows: dot products (vectorised
    by fastmath's reassociation in float32); more: one BLAS call."""
    G, K = w.shape
    if m > SMALL_M:
        T = a3.shape[1]
        gemm(False, True, m, G, K, 1.0, a3, (b0 * T + t) * K, T * K, w, 0, K, 0.0, c, 0, G)
    else:
        _dot_rows(m, a3, b0, t, w, c)


# ------------------------------------------------------------------ small kernels
@njit(**JIT_F64)
def onehot_rows(x2):
    """Column of the single 1 in each row of x2 (R, I), or an empty array if x2 is not one-hot."""
    R, I = x2.shape
    idx = np.empty(R, np.int32)
    for r in range(R):
        hot = -1
        for i in range(I):
            v = x2[r, i]
            if v != 0.0:
                if v != 1.0 or hot >= 0:
                    return np.empty(0, np.int32)
                hot = i
        if hot < 0:
            return np.empty(0, np.int32)
        idx[r] = hot
    return idx


def prepare_input(x, dtype, I, min_onehot=4):
    """(x3, ids) for the kernels: x (B,T,I) floats -> (x C-contiguous, one-hot row ids or an
    empty array); x (B,T) integer token ids -> (a (1,1,1) placeholder, the ids as int32).
    One-hot inputs then take a row lookup forward and a scatter-add backward."""
    x = np.asarray(x)
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.integer):
            raise ConfigError(f"(B, T) inputs must be integer token ids, got {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= I):
            raise ConfigError(f"token ids must lie in [0, {I})")
        return np.zeros((1, 1, 1), dtype), np.ascontiguousarray(x, np.int32).reshape(-1)
    x = np.ascontiguousarray(x, dtype)
    if I < min_onehot:
        return x, np.empty(0, np.int32)
    return x, onehot_rows(x.reshape(-1, I))


@njit
def sum_chunks(a):
    """a[0] += a[1] + a[2] + ... for per-chunk buffers a (n, ...): a plain loop (array
    expressions in a parallel driver become extra parallel loops that compile slowly)."""
    n = a.shape[0]
    if n < 2 or a.size == 0:
        return
    flat = a.reshape(n, a.size // n)
    for k in range(1, n):
        for i in range(flat.shape[1]):
            flat[0, i] += flat[k, i]


def chunks(B, min_rows):
    """Number of batch chunks: one per numba thread, each at least `min_rows` rows."""
    n = min(numba.get_num_threads(), B // max(1, min_rows))
    return max(1, n)
