"""Helpers shared by the GRU and LSTM numba kernels.

- `tanh` / `sigmoid`: a rational tanh (max abs error 2.6e-7) for float32, exact `np.tanh`
  for float64 (the checks run in float64).
- `gemm` / `gemv`: row-major BLAS calls straight into scipy's `cython_blas` with explicit
  leading dimensions, transposes and beta, so kernels multiply strided blocks of their
  (B, T, ...) arrays in place: no copies, no allocation inside the time loop.
- `onehot_rows`: detects one-hot inputs (text) so the input projection becomes a row lookup.
- `chunks`, `blas_single_thread`: coarse batch parallelism with single-threaded BLAS.

Addresses (`arr.ctypes.data + offset * itemsize`) are plain integers; every kernel keeps
its arrays C-contiguous and alive for the whole call.
"""

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit, types
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
def _blas(name, nargs):
    """scipy's Fortran BLAS `name` as a numba external function: bound by symbol name in
    every process (cacheable), not by an address frozen into the cache."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)

    symbol = f"rnnviewer_gated_{name}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
    return types.ExternalFunction(symbol, types.void(*([types.voidptr] * nargs)))


_sgemm, _dgemm = _blas("sgemm", 13), _blas("dgemm", 13)
_sgemv, _dgemv = _blas("sgemv", 11), _blas("dgemv", 11)


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


_N = np.int8(ord("N"))
_T = np.int8(ord("T"))


@njit
def gemm(ta, tb, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc):
    """Row-major C (m, n) = alpha op(A) op(B) + beta C on flat buffers: element (i, j) of
    operand X is X.flat[off_x + i * ldx + j]; op(A) is A (m, k) or, with ta, A.T for A (k, m)."""
    if m <= 0 or n <= 0:
        return
    # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
    fa = _T if tb else _N
    fb = _T if ta else _N
    if c.itemsize == 4:
        _sgemm(_ref(fa), _ref(fb), _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.int32(k)),
               _ref(np.float32(alpha)), _addr(b, off_b), _ref(np.int32(max(ldb, 1))),
               _addr(a, off_a), _ref(np.int32(max(lda, 1))), _ref(np.float32(beta)),
               _addr(c, off_c), _ref(np.int32(max(ldc, 1))))
    else:
        _dgemm(_ref(fa), _ref(fb), _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.int32(k)),
               _ref(np.float64(alpha)), _addr(b, off_b), _ref(np.int32(max(ldb, 1))),
               _addr(a, off_a), _ref(np.int32(max(lda, 1))), _ref(np.float64(beta)),
               _addr(c, off_c), _ref(np.int32(max(ldc, 1))))


@njit
def gemv(ta, m, n, alpha, a, off_a, lda, x, off_x, beta, y, off_y):
    """Row-major y = alpha op(A) x + beta y for A (m, n) with row stride lda, unit strides."""
    if m <= 0 or n <= 0:
        return
    # the column-major matrix is A^T (n, m): y = A x is a transposed gemv there
    f = _N if ta else _T
    one = np.int32(1)
    if y.itemsize == 4:
        _sgemv(_ref(f), _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.float32(alpha)),
               _addr(a, off_a), _ref(np.int32(max(lda, 1))), _addr(x, off_x), _ref(one),
               _ref(np.float32(beta)), _addr(y, off_y), _ref(one))
    else:
        _dgemv(_ref(f), _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.float64(alpha)),
               _addr(a, off_a), _ref(np.int32(max(lda, 1))), _addr(x, off_x), _ref(one),
               _ref(np.float64(beta)), _addr(y, off_y), _ref(one))


SMALL_M = int(os.environ.get("RNNVIEWER_GATED_SMALL_M", "2"))  # rows done by hand, not BLAS


@njit(inline="always")
def _axpy_rows(m, a3, b0, t, w, c):
    """c[i] = a3[b0 + i, t] @ w for i < m: rows of W read once, reused by every row.

    Written on 1-D row views: LLVM then vectorises the inner loop (flat offsets with a
    run-time stride made it 8x slower)."""
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


@njit(inline="always")
def colsum_add(a, r0, r1, c0, c1, out):
    """out[k] += sum of a2[r, c0 + k] for rows r0..r1 of the flat view of a (rows, cols)."""
    for r in range(r0, r1):
        for k in range(c1 - c0):
            out[k] += a[r, c0 + k]


def chunks(B, min_rows):
    """Number of batch chunks: one per numba thread, each at least `min_rows` rows."""
    n = min(numba.get_num_threads(), B // max(1, min_rows))
    return max(1, n)


_blas_limited = False


def blas_single_thread():
    """Limit scipy's OpenBLAS (the one njit kernels call) to one thread, once per process.

    Two-thread BLAS stalled badly on the target machines and the kernels parallelise
    over the batch themselves (NOTES.md). Best effort: silently does nothing when the
    library or its symbol cannot be found.
    """
    global _blas_limited
    if _blas_limited:
        return
    _blas_limited = True
    try:
        from threadpoolctl import threadpool_limits
        import scipy.linalg.cython_blas  # noqa: F401  (load it so threadpoolctl sees it)
        threadpool_limits(1, user_api="blas")
        return
    except Exception:
        pass
    import scipy
    base = os.path.dirname(os.path.dirname(scipy.__file__))
    for lib in glob.glob(os.path.join(base, "scipy.libs", "libscipy_openblas*")):
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(dll, sym, None)
            if fn is not None:
                fn(1)
                break
