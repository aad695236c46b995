"""The one place numba flags live. Kernels: `@njit(**JIT)` or `@njit(**JIT_PARALLEL)`.

Only the training worker thread calls parallel kernels (numba's default threading
layer is not safe across Python threads); every kernel releases the GIL.
"""

import os

FASTMATH = os.environ.get("RNNVIEWER_FASTMATH", "1") != "0"
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH)
JIT_EXACT = dict(cache=True, nogil=True)            # float64 checks: no fastmath
JIT_PARALLEL = dict(JIT, parallel=True)
