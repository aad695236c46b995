"""Per-timestep recurrent product on a panel-packed weight: C = beta * C + A @ B.

`pack(w, trans, out)` copies B = w.T (trans) or B = w, a (K, N) matrix, into column
panels 3L wide (then 2L, L and the < L columns left over; L = 8 float32 or 4 float64
lanes, one AVX2 register), each panel stored contiguously row by row: element (k, l)
of the panel starting at column j is out[K * j + k * width + l]. `mm_packed` then runs
the register tiles of `_common._vector_tile` (4 rows x 3L columns: 12 accumulators in
registers over the whole K loop) over each panel, which it reads as one sequential
stream. Packing once per training step removes the large-stride reads of B (a row stride
of H floats maps every k of a panel onto the same few L1 sets for H = 512) and lets the
tiles run at 80-95 GFLOP/s per core for H = 512 where `mm_nt`'s dot products reached
about 55 (8 rows, float32, measured). Both directions of BPTT use it: the forward
product h_{t-1} @ W_hh.T packs B = W_hh.T, the backward da_t @ W_hh packs B = W_hh.

numba's cache checks only a kernel's own source file: after editing this one, clear
NUMBA_CACHE_DIR (the packaged app keys its cache by a hash of the sources).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from rnnviewer.engine.kernels._common import JIT_F32, JIT_F64, _vector_tile

_TILES = {(r, v): _vector_tile(r, v) for r in (4, 3, 2, 1) for v in (3, 2, 1)}
_T43, _T33, _T23, _T13 = (_TILES[r, 3] for r in (4, 3, 2, 1))
_T42, _T32, _T22, _T12 = (_TILES[r, 2] for r in (4, 3, 2, 1))
_T41, _T31, _T21, _T11 = (_TILES[r, 1] for r in (4, 3, 2, 1))


@njit(inline="always")
def panel_width(j, N, L):
    """Width of the packed panel that starts at column j of N (3L, 2L, L or the rest)."""
    r = N - j
    if r >= 3 * L:
        return 3 * L
    if r >= 2 * L:
        return 2 * L
    if r >= L:
        return L
    return r


@njit(inline="always")
def _pack_rest(w, trans, out, j, N, K, L):
    """The panels narrower than 3L, from column j on (generic loops)."""
    while j < N:
        wd = panel_width(j, N, L)
        for k in range(K):
            for q in range(wd):
                out[K * j + k * wd + q] = w[j + q, k] if trans else w[k, j + q]
        j += wd


@njit(cache=True, nogil=True)
def pack(w, trans, out):
    """Pack B = w.T (trans; w (N, K)) or B = w (w (K, N)) into `out` (K * N,), panel by
    panel (see the module docstring). Pure copies, one compiled copy per dtype: the full
    3L panels by fixed-size blocks on flat unsigned indices (no wraparound checks, so
    they vectorise: 5-7x the generic loops at H = 512; about 0.1 ms for W_hh.T and
    0.06 ms for W_hh there)."""
    if trans:
        N, K = w.shape
    else:
        K, N = w.shape
    L = 32 // w.itemsize
    L3 = 3 * L
    nf = N // L3 * L3  # columns in full panels
    wf = w.reshape(w.size)
    u = np.uintp
    if trans:  # L x 8 blocks: read rows of w, write 8 panel rows at once
        K8 = K // 8 * 8
        for j in range(0, nf, L3):
            base = K * j
            for q0 in range(0, L3, L):
                for k0 in range(0, K8, 8):
                    for qq in range(L):
                        s, o = (j + q0 + qq) * K + k0, base + k0 * L3 + q0 + qq
                        for kk in range(8):
                            out[u(o + kk * L3)] = wf[u(s + kk)]
                for k in range(K8, K):
                    for qq in range(L):
                        out[base + k * L3 + q0 + qq] = w[j + q0 + qq, k]
    else:  # row k of w feeds row k of every panel
        for k in range(K):
            for j in range(0, nf, L3):
                o, s = K * j + k * L3, k * N + j
                for q in range(L3):
                    out[u(o + q)] = wf[u(s + q)]
    _pack_rest(w, trans, out, nf, N, K, L)


@njit(inline="always")
def _panel_rows(m, a, off_a, lda, bp, ob, wd, K, c, off_c, ldc, acc, L):
    """Every row of C against one packed panel (ob: its offset, wd >= L its width)."""
    V = wd // L
    i = 0
    while i + 4 <= m:
        oa, oc = off_a + i * lda, off_c + i * ldc
        if V == 3:
            _T43(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        elif V == 2:
            _T42(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        else:
            _T41(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        i += 4
    r = m - i
    oa, oc = off_a + i * lda, off_c + i * ldc
    if r == 3:
        if V == 3:
            _T33(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        elif V == 2:
            _T32(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        else:
            _T31(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
    elif r == 2:
        if V == 3:
            _T23(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        elif V == 2:
            _T22(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        else:
            _T21(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
    elif r == 1:
        if V == 3:
            _T13(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        elif V == 2:
            _T12(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)
        else:
            _T11(a, oa, lda, bp, ob, wd, K, c, oc, ldc, acc)


def _mm_packed(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta):
    """Row-major C[m, N] = beta * C + A[m, K] @ B, B (K, N) packed by `pack` into bp.

    A and C are flat buffers (row i of A starts at off_a + i * lda); beta is 0 or 1."""
    acc = beta != 0.0
    L = 8 if c.itemsize == 4 else 4
    zero = c.dtype.type(0.0)
    j = 0
    while j < N:
        wd = panel_width(j, N, L)
        ob = K * j
        if wd >= L and K > 0:
            _panel_rows(m, a, off_a, lda, bp, ob, wd, K, c, off_c + j, ldc, acc, L)
        else:  # the < L columns left over (or K = 0)
            for i in range(m):
                for q in range(wd):
                    s = zero
                    for k in range(K):
                        s += a[off_a + i * lda + k] * bp[ob + k * wd + q]
                    at = off_c + i * ldc + j + q
                    c[at] = s + c[at] if acc else s
        j += wd


_mm_packed_f32 = njit(**JIT_F32)(_mm_packed)
_mm_packed_f64 = njit(**JIT_F64)(_mm_packed)


def mm_packed(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta):
    """C = beta * C + A @ B on strided rows, B packed; see `_mm_packed`."""


@overload(mm_packed, inline="always")
def _mm_packed_ol(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta):
    fn = _mm_packed_f32 if c.dtype == types.float32 else _mm_packed_f64

    def impl(m, a, off_a, lda, bp, K, N, c, off_c, ldc, beta):  # flat views, int64, float
        i64 = np.int64
        fn(i64(m), a.reshape(a.size), i64(off_a), i64(lda), bp.reshape(bp.size), i64(K), i64(N),
           c.reshape(c.size), i64(off_c), i64(ldc), float(beta))
    return impl
