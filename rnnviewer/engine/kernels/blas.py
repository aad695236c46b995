"""The one BLAS binding of every numba kernel: row-major strided `gemm` callable from njit code.

`gemm` multiplies strided blocks of the kernels' (B, T, ...) arrays in place (explicit
offsets, leading dimensions, transposes, alpha and beta; no copies, no allocation). It
calls a CBLAS with 64-bit integers through fixed symbol names (`rnnviewer_cblas_*`,
one signature each), which this module points at a library when it is imported:

- numpy's own OpenBLAS (`numpy.libs/`, `numpy/.dylibs/`, or already mapped by numpy):
  the ILP64 `scipy_cblas_?gem[mv]64_` of numpy >= 2 wheels, `cblas_?gem[mv]64_` of
  numpy 1.x wheels. SciPy is then never imported, and a bundle needs no scipy.libs.
- otherwise (numpy built on Accelerate, MKL or a system BLAS; or RNNVIEWER_BLAS=scipy),
  SciPy's `scipy.linalg.cython_blas` through small CBLAS-shaped adapters (numba cfuncs
  over its Fortran xGEMM/xGEMV), imported only then.
- neither: ConfigError, naming what was looked for.

Fixed names and signatures keep the kernels cacheable: a cached kernel links against
whatever the names point at in this process. Change a name when its signature changes.

Threads: the kernels run their own coarse batch parallelism and call BLAS on small
blocks, so the bound library is limited to RNNVIEWER_BLAS_THREADS threads (default 1;
0 leaves it alone) when bound: two-thread OpenBLAS inside them stalled on 2-core VMs
(NOTES.md). This is process-wide: OpenBLAS's pthreads builds have no per-thread count
(`openblas_set_num_threads_local` sets the global count too, measured on 0.3.31), so
numpy's own products then run on that many threads as well.

numba's cache checks only a kernel's own source file: after editing this one, clear
NUMBA_CACHE_DIR (the packaged app keys its cache by a hash of the sources).
"""

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numpy as np
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from rnnviewer.errors import ConfigError

_ROW, _NO, _TR = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans
_I32, _I64, _P = types.int32, types.int64, types.voidptr


def _gemm_sig(real):
    """cblas_?gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), ILP64."""
    return types.void(_I32, _I32, _I32, _I64, _I64, _I64, real, _P, _I64, _P, _I64, real, _P,
                      _I64)


def _gemv_sig(real):
    """cblas_?gemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy), ILP64."""
    return types.void(_I32, _I32, _I64, _I64, real, _P, _I64, _P, _I64, real, _P, _I64)


_SIGS = {"sgemm": _gemm_sig(types.float32), "dgemm": _gemm_sig(types.float64),
         "sgemv": _gemv_sig(types.float32), "dgemv": _gemv_sig(types.float64)}
SYMBOLS = {name: f"rnnviewer_cblas_{name}64" for name in _SIGS}
_ext = {name: types.ExternalFunction(SYMBOLS[name], sig) for name, sig in _SIGS.items()}
_sgemm, _dgemm, _sgemv, _dgemv = _ext["sgemm"], _ext["dgemm"], _ext["sgemv"], _ext["dgemv"]

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


# exported names, per library flavour: (sgemm, dgemm, sgemv, dgemv, set_num_threads)
_NUMPY_FLAVOURS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "scipy_cblas_sgemv64_",
     "scipy_cblas_dgemv64_", "scipy_openblas_set_num_threads64_"),   # numpy >= 2 wheels
    ("cblas_sgemm64_", "cblas_dgemm64_", "cblas_sgemv64_", "cblas_dgemv64_",
     "openblas_set_num_threads64_"),                                 # numpy 1.x wheels
)


# ---------------------------------------------------------------- finding a library
def _numpy_candidates():
    """Paths of OpenBLAS libraries that may be numpy's: its wheel folders, then any
    OpenBLAS already mapped into this process (numpy loaded its own at import)."""
    root = os.path.dirname(np.__file__)
    paths = sorted(glob.glob(os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*")))
    paths += sorted(glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    try:
        with open("/proc/self/maps") as f:
            mapped = {line.split()[-1] for line in f if "openblas" in line.lower()}
        paths += sorted(p for p in mapped if p.startswith(os.sep) and p not in paths)
    except OSError:
        pass
    return paths


def _address(lib, name):
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _numpy_binding():
    """(addresses by kernel name, thread setter, description) for numpy's ILP64 OpenBLAS,
    or None when there is none (Accelerate, MKL, a system BLAS, a 32-bit-int build)."""
    for path in _numpy_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for *names, threads in _NUMPY_FLAVOURS:
            if all(hasattr(lib, n) for n in names):
                addresses = {k: _address(lib, n) for k, n in zip(_SIGS, names)}
                setter = getattr(lib, threads, None) or getattr(lib, "openblas_set_num_threads",
                                                                None)
                return addresses, setter, f"numpy's OpenBLAS ({os.path.basename(path)})"
    return None


# Fortran BLAS adapters for the SciPy fallback: plain functions here, compiled (and
# cached) by `_scipy_binding` only when it runs. Row-major C = op(A) op(B) is the
# column-major C^T = op(B)^T op(A)^T: swap the operands; a row-major (m, n) matrix is a
# column-major (n, m) one, so gemv flips its transpose flag. Fortran takes int32s.
_CH_N, _CH_T = np.int8(ord("N")), np.int8(ord("T"))
_F_GEMM, _F_GEMV = types.void(*([_P] * 13)), types.void(*([_P] * 11))
_f_sgemm = types.ExternalFunction("rnnviewer_fortran_sgemm", _F_GEMM)
_f_dgemm = types.ExternalFunction("rnnviewer_fortran_dgemm", _F_GEMM)
_f_sgemv = types.ExternalFunction("rnnviewer_fortran_sgemv", _F_GEMV)
_f_dgemv = types.ExternalFunction("rnnviewer_fortran_dgemv", _F_GEMV)


def _sgemm_f(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    _f_sgemm(_ref(_CH_T if tb == _TR else _CH_N), _ref(_CH_T if ta == _TR else _CH_N),
             _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.int32(k)), _ref(alpha), b,
             _ref(np.int32(ldb)), a, _ref(np.int32(lda)), _ref(beta), c, _ref(np.int32(ldc)))


def _dgemm_f(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    _f_dgemm(_ref(_CH_T if tb == _TR else _CH_N), _ref(_CH_T if ta == _TR else _CH_N),
             _ref(np.int32(n)), _ref(np.int32(m)), _ref(np.int32(k)), _ref(alpha), b,
             _ref(np.int32(ldb)), a, _ref(np.int32(lda)), _ref(beta), c, _ref(np.int32(ldc)))


def _sgemv_f(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    _f_sgemv(_ref(_CH_N if trans == _TR else _CH_T), _ref(np.int32(n)), _ref(np.int32(m)),
             _ref(alpha), a, _ref(np.int32(lda)), x, _ref(np.int32(incx)), _ref(beta), y,
             _ref(np.int32(incy)))


def _dgemv_f(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    _f_dgemv(_ref(_CH_N if trans == _TR else _CH_T), _ref(np.int32(n)), _ref(np.int32(m)),
             _ref(alpha), a, _ref(np.int32(lda)), x, _ref(np.int32(incx)), _ref(beta), y,
             _ref(np.int32(incy)))


_ADAPTERS = {}  # the compiled adapters, kept alive while the kernels call them


def _scipy_openblas_setter():
    """SciPy's OpenBLAS set_num_threads, if its BLAS is an OpenBLAS of its own."""
    import scipy

    base = os.path.dirname(os.path.dirname(scipy.__file__))
    for path in sorted(glob.glob(os.path.join(base, "scipy.libs", "*openblas*")) +
                       glob.glob(os.path.join(base, "scipy", ".dylibs", "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            if hasattr(lib, name):
                return getattr(lib, name)
    return None


def _scipy_binding():
    """(addresses, thread setter, description) for SciPy's cython_blas through adapters."""
    from numba.extending import get_cython_function_address

    import scipy.linalg.cython_blas  # noqa: F401  (the fallback: imported only here)

    for name in _SIGS:
        llvm.add_symbol(f"rnnviewer_fortran_{name}",
                        get_cython_function_address("scipy.linalg.cython_blas", name))
    adapters = {"sgemm": _sgemm_f, "dgemm": _dgemm_f, "sgemv": _sgemv_f, "dgemv": _dgemv_f}
    _ADAPTERS.update((name, cfunc(_SIGS[name], cache=True)(fn)) for name, fn in adapters.items())
    addresses = {name: f.address for name, f in _ADAPTERS.items()}
    return addresses, _scipy_openblas_setter(), "scipy.linalg.cython_blas"


def _limit_threads(setter):
    """Limit the bound library to RNNVIEWER_BLAS_THREADS threads (0: leave it)."""
    try:
        n = int(os.environ.get("RNNVIEWER_BLAS_THREADS", "1"))
    except ValueError:
        n = 1
    if setter is None or n <= 0:
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], None
    setter(n)
    return n


def _bind():
    """Point the kernels' BLAS names at a library; returns (description, thread limit)."""
    choice = os.environ.get("RNNVIEWER_BLAS", "auto").strip().lower() or "auto"
    if choice not in ("auto", "numpy", "scipy"):
        raise ConfigError(f"RNNVIEWER_BLAS={choice!r}: use 'numpy', 'scipy' or leave it unset")
    found = None if choice == "scipy" else _numpy_binding()
    if found is None and choice == "numpy":
        raise ConfigError("RNNVIEWER_BLAS=numpy, but numpy has no bundled 64-bit-integer "
                          "OpenBLAS here (looked in numpy.libs, numpy/.dylibs and the loaded "
                          "libraries); unset RNNVIEWER_BLAS to use SciPy's BLAS instead")
    if found is None:
        try:
            found = _scipy_binding()
        except ImportError as e:
            why = "skipped (RNNVIEWER_BLAS=scipy)" if choice == "scipy" else \
                "has no bundled 64-bit-integer OpenBLAS (looked in numpy.libs, numpy/.dylibs " \
                "and the loaded libraries)"
            raise ConfigError(
                f"the numba kernels need a BLAS: numpy {np.__version__} {why}, and SciPy's "
                f"BLAS cannot be imported ({e}). Install scipy (pip install scipy), or train "
                "with the numpy backend (Model(..., backend='numpy'))") from e
    addresses, setter, description = found
    for name, addr in addresses.items():
        llvm.add_symbol(SYMBOLS[name], addr)
    return description, _limit_threads(setter)


BLAS, BLAS_THREADS = _bind()  # which library the kernels call; its thread limit (or None)


# ---------------------------------------------------------------- calling it from njit
def _cblas_gemm(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Row-major cblas_sgemm or cblas_dgemm by the dtype of the array `like`."""


@overload(_cblas_gemm, inline="always")
def _cblas_gemm_ol(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    fn, ft = (_sgemm, np.float32) if like.dtype == types.float32 else (_dgemm, np.float64)

    def impl(like, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        fn(np.int32(_ROW), np.int32(ta), np.int32(tb), m, n, k, ft(alpha), a, lda, b, ldb,
           ft(beta), c, ldc)
    return impl


def _cblas_gemv(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    """Row-major cblas_sgemv or cblas_dgemv by the dtype of the array `like`."""


@overload(_cblas_gemv, inline="always")
def _cblas_gemv_ol(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    fn, ft = (_sgemv, np.float32) if like.dtype == types.float32 else (_dgemv, np.float64)

    def impl(like, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
        fn(np.int32(_ROW), np.int32(trans), m, n, ft(alpha), a, lda, x, incx, ft(beta), y,
           incy)
    return impl


@njit(cache=True, nogil=True)
def _gemm_flat(trans_a, trans_b, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c,
               ldc):
    """`gemm` on flat buffers (one compiled copy per dtype)."""
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # C = beta * C, which a BLAS may skip
        for i in range(m):
            for j in range(n):
                c[off_c + i * ldc + j] = 0.0 if beta == 0.0 else beta * c[off_c + i * ldc + j]
        return
    # OpenBLAS's gemm is 10-20x slower than its gemv on a single row or column
    if n == 1:  # C[:, 0] = op(A) @ (the column op(B)); A is (m, k), or (k, m) with trans_a
        rows, cols = (k, m) if trans_a else (m, k)
        _cblas_gemv(c, _TR if trans_a else _NO, rows, cols, alpha, _addr(a, off_a),
                    max(lda, cols, 1), _addr(b, off_b), 1 if trans_b else ldb,
                    beta, _addr(c, off_c), ldc)
        return
    if m == 1:  # C[0] = op(B)^T @ (the row op(A)); B is (k, n), or (n, k) with trans_b
        rows, cols = (n, k) if trans_b else (k, n)
        _cblas_gemv(c, _NO if trans_b else _TR, rows, cols, alpha, _addr(b, off_b),
                    max(ldb, cols, 1), _addr(a, off_a), lda if trans_a else 1,
                    beta, _addr(c, off_c), 1)
        return
    # a leading dimension only matters past the first row: keep the one-row ones legal
    _cblas_gemm(c, _TR if trans_a else _NO, _TR if trans_b else _NO, m, n, k, alpha,
                _addr(a, off_a), max(lda, m if trans_a else k, 1),
                _addr(b, off_b), max(ldb, k if trans_b else n, 1),
                beta, _addr(c, off_c), max(ldc, n, 1))


@njit(inline="always")
def gemm(trans_a, trans_b, m, n, k, alpha, a, off_a, lda, b, off_b, ldb, beta, c, off_c, ldc):
    """Row-major C[m, n] = alpha * op(A) @ op(B) + beta * C on strided buffers.

    A, B, C are C-contiguous arrays of one float dtype, addressed as flat buffers:
    element (i, j) of the row-major operand X is X.flat[off_x + i * ldx + j]. op(A) is
    A (m, k) or, with trans_a, A.T where A is (k, m); likewise B. beta = 0 overwrites C.
    Inlined: it flattens the arrays and fixes the scalar types, so `_gemm_flat`
    compiles once per dtype whatever the callers pass.
    """
    i64 = np.int64
    _gemm_flat(bool(trans_a), bool(trans_b), i64(m), i64(n), i64(k), float(alpha),
               a.reshape(a.size), i64(off_a), i64(lda), b.reshape(b.size), i64(off_b), i64(ldb),
               float(beta), c.reshape(c.size), i64(off_c), i64(ldc))
