"""Shared numba helpers for the cell kernels: strided BLAS gemm, float32 tanh, chunking.

`gemm` calls SciPy's BLAS (scipy.linalg.cython_blas) straight from njit code with
explicit leading dimensions, offsets, alpha and beta, so the kernels multiply strided
(B, T, H) slices in place with no copies and no allocation. The BLAS entry points are
registered with llvmlite under fixed symbol names, so kernels using them stay cacheable
(`cache=True`): a cached kernel links against the symbol when this module is imported.

Arithmetic helpers (`mm_nt`, `tanh32`, `act_tanh`) are `inline="always"`: numba
inlines them into each kernel before lowering, so they take the kernel's flags
(fastmath for float32, exact for float64). `gemm` and the input-side helpers do no
float arithmetic of their own and are compiled once per signature, shared by all cells.
numba's cache checks only the kernel's own source file: after editing this file,
clear NUMBA_CACHE_DIR (the packaged app keys its cache by a hash of the sources).
"""

import ctypes
import glob
import math
import os
import sys

import llvmlite.binding as llvm
from llvmlite import ir
import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from rnnviewer.engine import numba_config

# OpenMP threads (numba's default threading layer) spin for a long while at every join
# by default; on a machine busy with other work a spinning thread steals the time
# slice its partner needs, and 2-thread steps ran 3-30x slower than 1-thread ones
# (measured). Spin only briefly, then sleep. Read when the runtime starts, i.e. at the
# first parallel kernel, after this import; an explicit setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")   # GNU libgomp (Linux)
os.environ.setdefault("KMP_BLOCKTIME", "1")       # Intel / LLVM OpenMP, milliseconds

# float32: fastmath without nnan/ninf (NaN and Inf still propagate, so divergence stays
# visible); float64: exact. error_model="numpy" drops the zero-division checks that
# would stop the loops from vectorising.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"} if numba_config.FASTMATH else False
JIT_F32 = dict(numba_config.JIT, fastmath=_FAST, error_model="numpy")
JIT_F64 = dict(numba_config.JIT_EXACT, error_model="numpy")
# Drivers: functions that only call compiled kernels, per batch chunk (in parallel for
# JIT_PAR, with prange alone: numba's other parallel passes only add compile time).
# numba re-optimises every callee's code when it finalises a caller, so keep call
# chains shallow: compile time grows with their depth.
JIT_DRIVER = JIT_F64
JIT_PAR = dict(JIT_DRIVER, parallel={"prange": True, "fusion": False, "numpy": False,
                                     "setitem": False, "comprehension": False,
                                     "reduction": False, "inplace_binop": False,
                                     "stencil": False})

# ---------------------------------------------------------------- BLAS binding
_GEMM_SYMBOLS = {"sgemm": "rnnviewer_sgemm", "dgemm": "rnnviewer_dgemm",
                 "sgemv": "rnnviewer_sgemv", "dgemv": "rnnviewer_dgemv"}


def _register_blas():
    """Make SciPy's Fortran xGEMM/xGEMV callable from njit code under stable names."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)

    for fortran, symbol in _GEMM_SYMBOLS.items():
        llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", fortran))


_register_blas()


def _scipy_blas_libraries():
    """Paths of the OpenBLAS libraries SciPy loaded (the ones the kernels call)."""
    import scipy

    root = os.path.dirname(os.path.dirname(scipy.__file__))
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                folder = os.path.dirname(path)
                if "openblas" in os.path.basename(path).lower() and (
                        folder.endswith("scipy.libs") or folder.endswith(os.path.join("scipy", ".dylibs"))):
                    found.add(path)
    except OSError:
        pass
    for pattern in ("scipy.libs/*openblas*", "scipy/.dylibs/*openblas*", "scipy.libs/*openblas*.dll"):
        found.update(glob.glob(os.path.join(root, pattern)))
    return sorted(found)


def set_blas_threads(n=1):
    """Limit SciPy's OpenBLAS (the BLAS the kernels call) to `n` threads; True if done.

    The kernels run their own coarse batch parallelism and call BLAS on small blocks:
    a multi-threaded BLAS inside them oversubscribes the cores and stalls (NOTES.md).
    numpy's own BLAS is left alone.
    """
    done = False
    for path in _scipy_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = None
                fn(int(n))
                done = True
                break
    return done


BLAS_LIMITED = set_blas_threads(int(os.environ.get("RNNVIEWER_BLAS_THREADS", "1")))

# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=256 << 20):
    """Let glibc recycle the (B, T, H) arrays of one training step for the next one.

    By default glibc maps each large array fresh and returns it to the OS when freed,
    so every step page-faults its few MB of activations and gradients in again: 25-35%
    of a step at B = 32, H = 128 (measured). Arrays below `mmap_threshold` now come
    from the heap, which keeps up to `trim_threshold` bytes of freed memory. Process
    wide and Linux/glibc only (a no-op elsewhere); RNNVIEWER_MALLOC_TUNE=0 disables it.
    Returns True if applied.
    """
    if os.environ.get("RNNVIEWER_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and \
        bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


MALLOC_TUNED = keep_freed_memory()

# Fortran calling convention: every argument is a pointer.
_GEMM_SIG = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction(_GEMM_SYMBOLS["sgemm"], _GEMM_SIG)
_dgemm = types.ExternalFunction(_GEMM_SYMBOLS["dgemm"], _GEMM_SIG)
_GEMV_SIG = types.void(*([types.voidptr] * 11))
_sgemv = types.ExternalFunction(_GEMM_SYMBOLS["sgemv"], _GEMV_SIG)
_dgemv = types.ExternalFunction(_GEMM_SYMBOLS["dgemv"], _GEMV_SIG)


@intrinsic
def _addr(typingctx, arr, offset):
    """void* to element `offset` of the (contiguous) buffer of `arr`."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        off = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(ary.data, [off])
        return builder.bitcast(ptr, cgutils.voidptr_t)

    return types.voidptr(arr, offset), codegen


@intrinsic
def _ref(typingctx, value):
    """void* to a stack copy of a scalar (Fortran passes everything by reference)."""
    if not isinstance(value, (types.Integer, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        ptr = cgutils.alloca_once_value(builder, args[0])
        return builder.bitcast(ptr, cgutils.voidptr_t)

    return types.voidptr(value), codegen


_N = np.int8(ord("N"))
_T = np.int8(ord("T"))


def _blas_gemm(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Fortran xGEMM on void pointers; sgemm or dgemm by the dtype of the array `like`."""


@overload(_blas_gemm, inline="always")
def _blas_gemm_ol(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    fn, ft = (_sgemm, np.float32) if like.dtype == types.float32 else (_dgemm, np.float64)

    def impl(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        fn(_ref(ta), _ref(tb), _ref(np.int32(m)), _ref(np.int32(n)), _ref(np.int32(k)),
           _ref(ft(alpha)), a, _ref(np.int32(lda)), b, _ref(np.int32(ldb)),
           _ref(ft(beta)), c, _ref(np.int32(ldc)))

    return impl


def _blas_gemv(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    """Fortran xGEMV on void pointers; sgemv or dgemv by the dtype of the array `like`."""


@overload(_blas_gemv, inline="always")
def _blas_gemv_ol(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    fn, ft = (_sgemv, np.float32) if like.dtype == types.float32 else (_dgemv, np.float64)

    def impl(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
        fn(_ref(trans), _ref(np.int32(m)), _ref(np.int32(n)), _ref(ft(alpha)), a,
           _ref(np.int32(lda)), x, _ref(np.int32(incx)), _ref(ft(beta)), y, _ref(np.int32(incy)))

    return impl


@njit(inline="always")
def _gemv_rows(trans, rows, k, alpha, a, off_a, lda, v, off_v, inc_v, beta, y, off_y, inc_y):
    """y[rows] (stride inc_y) = alpha * op(A) @ v + beta * y with op(A) (rows, k): A is
    row-major (rows, k), or (k, rows) with trans. OpenBLAS's gemm is 10-20x slower than
    its gemv on a single row or column."""
    if trans:  # row-major (k, rows) is column-major (rows, k)
        _blas_gemv(y, _N, rows, k, alpha, _addr(a, off_a), max(lda, 1), _addr(v, off_v),
                   inc_v, beta, _addr(y, off_y), inc_y)
    else:      # row-major (rows, k) is column-major (k, rows): transpose it back
        _blas_gemv(y, _T, k, rows, alpha, _addr(a, off_a), max(lda, 1), _addr(v, off_v),
                   inc_v, beta, _addr(y, off_y), inc_y)


@njit(inline="always")
def gemm(trans_a, trans_b, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc):
    """Row-major C[m, n] = alpha * op(A) @ op(B) + beta * C on strided buffers.

    A, B, C are C-contiguous arrays of one float dtype, addressed as flat buffers:
    element (i, j) of the row-major operand X is X.flat[off_x + i * ldx + j]. op(A) is
    A (m, k) or, with trans_a, A.T where A is (k, m); likewise B. beta = 0 overwrites C.
    Inlined: it flattens the arrays, so `_gemm_flat` compiles once per dtype.
    """
    _gemm_flat(bool(trans_a), bool(trans_b), m, n, k, float(alpha), a.reshape(a.size), off_a,
               lda, b.reshape(b.size), off_b, ldb, float(beta), c.reshape(c.size), off_c, ldc)


@njit(cache=True, nogil=True)
def _gemm_flat(trans_a, trans_b, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c,
               ldc):
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # C = beta * C, which BLAS may skip
        for i in range(m):
            for j in range(n):
                c[off_c + i * ldc + j] = 0.0 if beta == 0.0 else beta * c[off_c + i * ldc + j]
        return
    if n == 1:  # a column: C = op(A) @ (column op(B))
        _gemv_rows(trans_a, m, k, alpha, a, off_a, lda, b, off_b, 1 if trans_b else ldb,
                   beta, c, off_c, ldc)
        return
    if m == 1:  # a row: C^T = op(B)^T @ (row op(A))^T
        _gemv_rows(not trans_b, n, k, alpha, b, off_b, ldb, a, off_a, lda if trans_a else 1,
                   beta, c, off_c, 1)
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap operands.
    _blas_gemm(c, _T if trans_b else _N, _T if trans_a else _N, n, m, k, alpha,
               _addr(b, off_b), max(ldb, 1), _addr(a, off_a), max(lda, 1),
               beta, _addr(c, off_c), max(ldc, 1))


# ---------------------------------------------------------------- per-timestep matmul
@njit(inline="always")
def _dot1x8(a, w, j, K, zero):
    """a . w[j + q] for q < 8 (one row of A against eight rows of W)."""
    w0, w1, w2, w3, w4, w5, w6, w7 = (w[j], w[j + 1], w[j + 2], w[j + 3], w[j + 4], w[j + 5],
                                      w[j + 6], w[j + 7])
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for k in range(K):
        x = a[k]
        s0 += x * w0[k]
        s1 += x * w1[k]
        s2 += x * w2[k]
        s3 += x * w3[k]
        s4 += x * w4[k]
        s5 += x * w5[k]
        s6 += x * w6[k]
        s7 += x * w7[k]
    return s0, s1, s2, s3, s4, s5, s6, s7


@njit(inline="always")
def _put(cf, at, s, beta):
    cf[at] = s if beta == 0.0 else cf[at] + s


@njit(inline="always")
def _rows3(a0, a1, a2, w, cf, c0, c1, c2, j0, j1, K, beta, zero):
    """Three rows of A against rows j0:j1 of W (3x3 register tiles)."""
    j = j0
    while j + 3 <= j1:
        w0, w1, w2 = w[j], w[j + 1], w[j + 2]
        s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = zero
        for k in range(K):
            x0, x1, x2 = w0[k], w1[k], w2[k]
            y0, y1, y2 = a0[k], a1[k], a2[k]
            s00 += y0 * x0
            s01 += y0 * x1
            s02 += y0 * x2
            s10 += y1 * x0
            s11 += y1 * x1
            s12 += y1 * x2
            s20 += y2 * x0
            s21 += y2 * x1
            s22 += y2 * x2
        _put(cf, c0 + j, s00, beta)
        _put(cf, c0 + j + 1, s01, beta)
        _put(cf, c0 + j + 2, s02, beta)
        _put(cf, c1 + j, s10, beta)
        _put(cf, c1 + j + 1, s11, beta)
        _put(cf, c1 + j + 2, s12, beta)
        _put(cf, c2 + j, s20, beta)
        _put(cf, c2 + j + 1, s21, beta)
        _put(cf, c2 + j + 2, s22, beta)
        j += 3
    while j < j1:
        wj = w[j]
        s0 = s1 = s2 = zero
        for k in range(K):
            x = wj[k]
            s0 += a0[k] * x
            s1 += a1[k] * x
            s2 += a2[k] * x
        _put(cf, c0 + j, s0, beta)
        _put(cf, c1 + j, s1, beta)
        _put(cf, c2 + j, s2, beta)
        j += 1


@njit(inline="always")
def _rows1(a0, w, cf, c0, j0, j1, K, beta, zero):
    """One row of A against rows j0:j1 of W (1x8 tiles)."""
    j = j0
    while j + 8 <= j1:
        s0, s1, s2, s3, s4, s5, s6, s7 = _dot1x8(a0, w, j, K, zero)
        _put(cf, c0 + j, s0, beta)
        _put(cf, c0 + j + 1, s1, beta)
        _put(cf, c0 + j + 2, s2, beta)
        _put(cf, c0 + j + 3, s3, beta)
        _put(cf, c0 + j + 4, s4, beta)
        _put(cf, c0 + j + 5, s5, beta)
        _put(cf, c0 + j + 6, s6, beta)
        _put(cf, c0 + j + 7, s7, beta)
        j += 8
    while j < j1:
        wj = w[j]
        s0 = zero
        for k in range(K):
            s0 += a0[k] * wj[k]
        _put(cf, c0 + j, s0, beta)
        j += 1


MM_PANEL_BYTES = 16 << 10  # rows of W kept in L1 while every row of A passes over them


def _mm_nt(m, a, off_a, lda, w, c, off_c, ldc, beta):
    """Row-major C[m, N] = beta * C + A[m, K] @ W.T for a contiguous (N, K) matrix W.

    A and C are addressed as flat buffers (row i of A starts at off_a + i * lda). The
    recurrent product of one timestep (A = h_{t-1} rows, W = W_hh); beta is 0 or 1
    (0 overwrites C). Hand-tiled dot products (3x3 register tiles; 1x8 for the
    rows left over) over panels of W that stay in L1 while all rows of A pass, so
    W streams from memory once per call: with fastmath's reassociation they vectorise
    along K and beat BLAS gemm, which re-packs W on every call, by 1.5-3x at these
    sizes (8x at m = 1).
    """
    N, K = w.shape
    af = a.reshape(a.size)
    cf = c.reshape(c.size)
    zero = w.dtype.type(0.0)  # a float literal would turn float32 sums into float64
    panel = max(8, MM_PANEL_BYTES // max(1, K * w.itemsize) // 24 * 24)
    for j0 in range(0, N, panel):
        j1 = min(j0 + panel, N)
        i = 0
        while i + 3 <= m:
            oa = off_a + i * lda
            _rows3(af[oa:oa + K], af[oa + lda:oa + lda + K], af[oa + 2 * lda:oa + 2 * lda + K],
                   w, cf, off_c + i * ldc, off_c + (i + 1) * ldc, off_c + (i + 2) * ldc,
                   j0, j1, K, beta, zero)
            i += 3
        while i < m:
            oa = off_a + i * lda
            _rows1(af[oa:oa + K], w, cf, off_c + i * ldc, j0, j1, K, beta, zero)
            i += 1


# compiled once per dtype with that dtype's flags (reassociation is what vectorises
# the float32 dot products), shared by every kernel
_mm_nt_f32 = njit(**JIT_F32)(_mm_nt)
_mm_nt_f64 = njit(**JIT_F64)(_mm_nt)


def mm_nt(m, a, off_a, lda, w, c, off_c, ldc, beta):
    """C = beta * C + A @ W.T on strided rows; see `_mm_nt`."""


@overload(mm_nt, inline="always")
def _mm_nt_ol(m, a, off_a, lda, w, c, off_c, ldc, beta):
    fn = _mm_nt_f32 if c.dtype == types.float32 else _mm_nt_f64

    def impl(m, a, off_a, lda, w, c, off_c, ldc, beta):  # flat views: one specialisation
        fn(m, a.reshape(a.size), off_a, lda, w, c.reshape(c.size), off_c, ldc, float(beta))
    return impl


@njit(inline="always")
def tanh32(x):
    """float32 tanh as a rational function (Eigen's fast tanh): error < 3e-7, vectorises.

    Written so that NaN propagates (the clamps compare false on NaN)."""
    lim = np.float32(7.90531110763549805)
    if x > lim:
        x = lim
    if x < -lim:
        x = -lim
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@intrinsic
def _pow2_f32(typingctx, n):
    """2**n as float32 for a float32 holding an integer in [-126, 127], built from its
    exponent bits (int32 arithmetic in LLVM, so the loop around it vectorises)."""
    if n != types.float32:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        k = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(k, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@njit(inline="always")
def exp32(x):
    """float32 exp (Cephes expf: 2^n times a degree-6 polynomial), error about 1 ulp;
    unlike np.exp it vectorises (no SVML here). Clamped to the float32 range; NaN
    propagates."""
    if x > np.float32(88.3762626647949):
        x = np.float32(88.3762626647949)
    if x < np.float32(-87.3365447504019):
        x = np.float32(-87.3365447504019)
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _pow2_f32(n)


def act_exp(v):
    """exp: exp32 for float32, np.exp for float64 (chosen at typing)."""


@overload(act_exp, inline="always")
def _act_exp_ol(v):
    if v == types.float32:
        return lambda v: exp32(v)
    return lambda v: np.exp(v)


def act_tanh(v):
    """tanh: the rational tanh32 for float32, np.tanh for float64 (chosen at typing)."""


@overload(act_tanh, inline="always")
def _act_tanh_ol(v):
    if v == types.float32:
        return lambda v: tanh32(v)
    return lambda v: np.tanh(v)


def carve(dtype, shapes):
    """Arrays of the given shapes, all views into one fresh allocation (64-byte aligned):
    one malloc instead of many per training step."""
    dtype = np.dtype(dtype)
    sizes = [math.prod(s) for s in shapes]
    pad = 64 // dtype.itemsize
    offsets, total = [], 0
    for n in sizes:
        offsets.append(total)
        total += n + (-n) % pad
    buf = np.empty(total + pad, dtype)
    skip = (-buf.ctypes.data % 64) // dtype.itemsize
    return [buf[skip + o:skip + o + n].reshape(s) for o, n, s in zip(offsets, sizes, shapes)]


def chunk_count(B, min_rows):
    """How many batch chunks to run in parallel: 1 (the serial kernel) for small B."""
    if B < 2 * max(1, min_rows):
        return 1
    return max(1, min(numba.get_num_threads(), B // max(1, min_rows)))


@njit(**JIT_F32)
def transpose(a):
    """A C-contiguous copy of a.T for a 2-D array, in 8x8 blocks (2-3x numpy's copy)."""
    R, C = a.shape
    out = np.empty((C, R), a.dtype)
    R8, C8 = R - R % 8, C - C % 8
    for r0 in range(0, R8, 8):
        for c0 in range(0, C8, 8):
            for i in range(8):
                src = a[r0 + i]
                for j in range(8):
                    out[c0 + j, r0 + i] = src[c0 + j]
    for r in range(R8, R):
        for c in range(C):
            out[c, r] = a[r, c]
    for r in range(R8):
        for c in range(C8, C):
            out[c, r] = a[r, c]
    return out


@njit(cache=True, nogil=True)
def ids_in_range(x, n):
    """True if every entry of the integer array x lies in [0, n)."""
    for v in x.ravel():
        if v < 0 or v >= n:
            return False
    return True


# ---------------------------------------------------------------- input side
# Dense inputs and token ids go through the same compiled kernels: x (B, T, I) floats
# with an empty ids array, or ids (B, T) int64 with an empty x (one specialisation each).
NO_IDS = np.zeros((0, 0), np.int64)
NO_X = {4: np.zeros((0, 0, 0), np.float32), 8: np.zeros((0, 0, 0), np.float64)}


@njit(inline="always")
def project_input(x, ids, W_xh, W_xh_T, out, b0, b1):
    """out[b0:b1] (B, T, G) = x[b0:b1] @ W_xh.T (one gemm), or for token ids the rows
    W_xh_T[ids] (a gather); W_xh (G, I), W_xh_T its (I, G) copy."""
    T, G = out.shape[1], out.shape[2]
    if ids.size:
        for b in range(b0, b1):
            for t in range(T):
                o, w = out[b, t], W_xh_T[ids[b, t]]
                for j in range(G):
                    o[j] = w[j]
    else:
        I = x.shape[2]
        gemm(False, True, (b1 - b0) * T, G, I, 1.0, x, b0 * T * I, I, W_xh, 0, I,
             0.0, out, b0 * T * G, G)


@njit(inline="always")
def input_grads(x, ids, W_xh, da, gW_xh, dx, b0, b1):
    """Rows b0:b1: gW_xh = da^T x (G, I), or for token ids (I, G) by scatter-add, and
    dx[b0:b1] = da @ W_xh (B, T, I). da (B, T, G) is the input-side pre-activation grad."""
    T, G = da.shape[1], da.shape[2]
    I = W_xh.shape[1]
    if ids.size:
        gW_xh[:] = 0.0
        for b in range(b0, b1):
            for t in range(T):
                g, d = gW_xh[ids[b, t]], da[b, t]
                for j in range(G):
                    g[j] += d[j]
    else:
        gemm(True, False, G, I, (b1 - b0) * T, 1.0, da, b0 * T * G, G, x, b0 * T * I, I,
             0.0, gW_xh, 0, I)
    gemm(False, False, (b1 - b0) * T, I, G, 1.0, da, b0 * T * G, G, W_xh, 0, I,
         0.0, dx, b0 * T * I, I)
