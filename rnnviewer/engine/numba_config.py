"""The one place numba flags live. Kernels: `@njit(**JIT)` or `@njit(**JIT_PARALLEL)`.

Only the training worker thread calls parallel kernels (numba's default threading
layer is not safe across Python threads); every kernel releases the GIL.

Environment: RNNVIEWER_FASTMATH=0 turns float32 fastmath off (here); RNNVIEWER_BLAS
(numpy | scipy) and RNNVIEWER_BLAS_THREADS (default 1) choose the kernels' BLAS and its
thread limit (`kernels/blas.py`); RNNVIEWER_MALLOC_TUNE=0 leaves glibc's allocator alone
(`kernels/_common.py`). Flags are frozen into cached kernels: clear NUMBA_CACHE_DIR
after changing RNNVIEWER_FASTMATH.
"""

import os

FASTMATH = os.environ.get("RNNVIEWER_FASTMATH", "1") != "0"
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH)
JIT_EXACT = dict(cache=True, nogil=True)            # float64 checks: no fastmath
JIT_PARALLEL = dict(JIT, parallel=True)
