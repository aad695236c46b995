"""Shared numba helpers for the cell kernels: flags, float32 tanh/exp, chunking, input side.

`gemm` (strided BLAS from njit code) lives in `blas.py`, the one BLAS binding of every
cell, and is re-exported here. The recurrent product of a step is `rec_mm`: vector
register tiles (`mm_tiled`, written in LLVM vector IR) or dot products (`mm_nt`).
Arithmetic helpers (`tanh32`, `act_tanh`, ...) are `inline="always"`: numba inlines
them into each kernel before lowering, so they take the kernel's flags (fastmath for
float32, exact for float64); `mm_nt` and `mm_tiled` compile once per dtype with that
dtype's flags. `gemm` and the input-side helpers do no float arithmetic of their own and
are compiled once per signature, shared by all cells. numba's cache checks only the
kernel's own source file: after editing this file, clear NUMBA_CACHE_DIR (the packaged
app keys its cache by a hash of the sources).
"""

import ctypes
import math
import os
import sys

from llvmlite import ir
import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from rnnviewer.engine import numba_config
from rnnviewer.engine.kernels.blas import gemm

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


def _vector_tile(R, V):
    """An intrinsic for one register tile of an outer-product matmul, on flat arrays:

        C[r, 0:V*L] = (C[r, 0:V*L] if accumulate else 0) + sum_k A[r, k] * B[k, 0:V*L]

    for r < R, where row r of A starts at off_a + r * lda, row k of B at off_b + k * ldb,
    row r of C at off_c + r * ldc, and L = 8 float32 or 4 float64 lanes (one AVX2
    register). Written in LLVM vector IR: the R * V accumulators stay in registers over
    the whole k loop, each step one broadcast of A[r, k] per row, V loads of B and R * V
    fused multiply-adds. (numba's loops left them in memory or reduced dot products
    horizontally: 2-3x slower for H <= 128.) K must be at least 1."""
    @intrinsic
    def tile(typingctx, a, off_a, lda, b, off_b, ldb, K, c, off_c, ldc, accumulate):
        if not (isinstance(c, types.Array) and c.dtype in (types.float32, types.float64)):
            return None
        dt = c.dtype

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            L = 8 if dt == types.float32 else 4
            fty = context.get_value_type(dt)
            vty = ir.VectorType(fty, L)
            a_, b_, c_ = (context.make_array(sig.args[i])(context, builder, args[i]).data
                          for i in (0, 3, 7))
            oa, la, ob, lb, nk, oc, lc = (context.cast(builder, args[i], sig.args[i], types.int64)
                                          for i in (1, 2, 4, 5, 6, 8, 9))
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty] * 3),
                f"llvm.fma.v{L}{'f32' if dt == types.float32 else 'f64'}")

            def vec_at(base, index):
                return builder.bitcast(builder.gep(base, [index]), vty.as_pointer())

            def const(v):
                return ir.Constant(i64, v)

            c_at = [[vec_at(c_, builder.add(builder.add(oc, builder.mul(lc, const(r))),
                                             const(v * L))) for v in range(V)] for r in range(R)]
            zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * L)
            init = [builder.select(args[10], builder.load(c_at[r][v], align=dt.bitwidth // 8),
                                   zero) for r in range(R) for v in range(V)]
            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), entry)
            acc = []
            for x in init:
                ph = builder.phi(vty)
                ph.add_incoming(x, entry)
                acc.append(ph)
            brow = builder.add(ob, builder.mul(k, lb))
            bv = [builder.load(vec_at(b_, builder.add(brow, const(v * L))),
                               align=dt.bitwidth // 8) for v in range(V)]
            lanes0 = ir.Constant(ir.VectorType(ir.IntType(32), L), [0] * L)
            new = []
            for r in range(R):
                s = builder.load(builder.gep(a_, [builder.add(builder.add(oa, builder.mul(
                    la, const(r))), k)]))
                s = builder.insert_element(ir.Constant(vty, ir.Undefined), s,
                                           ir.Constant(ir.IntType(32), 0))
                s = builder.shuffle_vector(s, ir.Constant(vty, ir.Undefined), lanes0)
                new += [builder.call(fma, [s, bv[v], acc[r * V + v]]) for v in range(V)]
            k1 = builder.add(k, const(1))
            k.add_incoming(k1, builder.block)
            for ph, x in zip(acc, new):
                ph.add_incoming(x, builder.block)
            builder.cbranch(builder.icmp_signed("<", k1, nk), loop, done)
            builder.position_at_end(done)
            for r in range(R):
                for v in range(V):
                    builder.store(new[r * V + v], c_at[r][v], align=dt.bitwidth // 8)
            return context.get_dummy_value()

        return types.void(a, off_a, lda, b, off_b, ldb, K, c, off_c, ldc, accumulate), codegen
    return tile


_T42, _T32, _T22, _T12 = (_vector_tile(r, 2) for r in (4, 3, 2, 1))
_T41, _T31, _T21, _T11 = (_vector_tile(r, 1) for r in (4, 3, 2, 1))


@njit(inline="always")
def _tile_rows(m, a, off_a, lda, b, j, N, K, c, off_c, ldc, acc, wide):
    """Every row of C against columns j:j + 2L (wide) or j:j + L of B: tiles of 4 rows."""
    i = 0
    while i + 4 <= m:
        if wide:
            _T42(a, off_a + i * lda, lda, b, j, N, K, c, off_c + i * ldc + j, ldc, acc)
        else:
            _T41(a, off_a + i * lda, lda, b, j, N, K, c, off_c + i * ldc + j, ldc, acc)
        i += 4
    r = m - i
    oa, oc = off_a + i * lda, off_c + i * ldc + j
    if wide:
        if r == 3:
            _T32(a, oa, lda, b, j, N, K, c, oc, ldc, acc)
        elif r == 2:
            _T22(a, oa, lda, b, j, N, K, c, oc, ldc, acc)
        elif r == 1:
            _T12(a, oa, lda, b, j, N, K, c, oc, ldc, acc)
    else:
        if r == 3:
            _T31(a, oa, lda, b, j, N, K, c, oc, ldc, acc)
        elif r == 2:
            _T21(a, oa, lda, b, j, N, K, c, oc, ldc, acc)
        elif r == 1:
            _T11(a, oa, lda, b, j, N, K, c, oc, ldc, acc)


def _mm_tiled(m, a, off_a, lda, b, c, off_c, ldc, beta):
    """Row-major C[m, N] = beta * C + A[m, K] @ B for a contiguous (K, N) B; beta 0 or 1.

    A and C are flat buffers (row i of A starts at off_a + i * lda). Column panels of B
    2L wide (then L, then single columns) stay in L1 while all rows of A pass over them
    in register tiles of 4 x 2L (`_vector_tile`)."""
    K, N = b.shape
    bf = b.reshape(b.size)
    acc = beta != 0.0
    L = 8 if c.itemsize == 4 else 4
    j = 0
    if K > 0:
        while j + 2 * L <= N:
            _tile_rows(m, a, off_a, lda, bf, j, N, K, c, off_c, ldc, acc, True)
            j += 2 * L
        while j + L <= N:
            _tile_rows(m, a, off_a, lda, bf, j, N, K, c, off_c, ldc, acc, False)
            j += L
    zero = c.dtype.type(0.0)
    for i in range(m):
        for jj in range(j, N):
            s = zero
            for k in range(K):
                s += a[off_a + i * lda + k] * bf[k * N + jj]
            at = off_c + i * ldc + jj
            c[at] = s + c[at] if acc else s


_mm_tiled_f32 = njit(**JIT_F32)(_mm_tiled)
_mm_tiled_f64 = njit(**JIT_F64)(_mm_tiled)
MM_TILE_MIN_ROWS = 3      # fewer rows: `mm_nt`'s dot products (measured faster there)
MM_TILE_MAX_K = 256       # longer panels (K x 2L) no longer fit in L1: `mm_nt` or BLAS


def mm_tiled(m, a, off_a, lda, b, c, off_c, ldc, beta):
    """C = beta * C + A @ B on strided rows for a contiguous (K, N) B; see `_mm_tiled`."""


@overload(mm_tiled, inline="always")
def _mm_tiled_ol(m, a, off_a, lda, b, c, off_c, ldc, beta):
    fn = _mm_tiled_f32 if c.dtype == types.float32 else _mm_tiled_f64

    def impl(m, a, off_a, lda, b, c, off_c, ldc, beta):  # flat views: one specialisation
        fn(m, a.reshape(a.size), off_a, lda, b, c.reshape(c.size), off_c, ldc, float(beta))
    return impl


@njit(inline="always")
def rec_mm(m, a, off_a, lda, w, w_t, c, off_c, ldc, beta):
    """C = beta * C + A @ W.T, the recurrent product of one step; w_t = W.T contiguous.

    Register tiles over w_t (`mm_tiled`) for MM_TILE_MIN_ROWS rows or more and
    K <= MM_TILE_MAX_K, else `mm_nt`'s dot products over w. Measured per step product:
    tiles 2.2x `mm_nt` and 1.5-2x OpenBLAS for H = 32-64 with 4-32 rows, up to 1.5x at
    H = 128; for one or two rows, or H = 512, `mm_nt` is as fast or faster."""
    if m >= MM_TILE_MIN_ROWS and w_t.shape[0] <= MM_TILE_MAX_K:
        mm_tiled(m, a, off_a, lda, w_t, c, off_c, ldc, beta)
    else:
        mm_nt(m, a, off_a, lda, w, c, off_c, ldc, beta)


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
    dx[b0:b1] = da @ W_xh (B, T, I). da (B, T, G) is the input-side pre-activation grad.
    An empty gW_xh skips the weight gradient (dx only)."""
    T, G = da.shape[1], da.shape[2]
    I = W_xh.shape[1]
    if not gW_xh.size:
        pass
    elif ids.size:
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
