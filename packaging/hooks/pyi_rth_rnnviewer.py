"""PyInstaller runtime hook: runs in the frozen app before the launcher script.

1. numba's cache. In a frozen app numba checks a cached kernel against the executable,
   which does not change when only the bundled .py files do, so a rebuild could run stale
   machine code (NOTES.md, PyInstaller). rnnviewer.app.setup_numba_cache() points
   NUMBA_CACHE_DIR at a user cache folder keyed by a hash of the bundled sources; calling
   it here guarantees that happens before anything can import numba. The hash needs the
   sources as .py files: the spec collects rnnviewer with module_collection_mode "py".
2. A windowed build (Windows --windowed) has no stdout/stderr: send them to
   <user cache>/rnnviewer.log so a failure after a double-click leaves a trace.
"""

import sys


def _log_to_file_when_windowed():
    if sys.stdout is not None and sys.stderr is not None:
        return
    from rnnviewer.app import user_cache_dir
    try:
        folder = user_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "rnnviewer.log", "a", encoding="utf-8", buffering=1)
    except OSError:
        return
    if sys.stdout is None:
        sys.stdout = log
    if sys.stderr is None:
        sys.stderr = log


def _setup_numba_cache():
    from rnnviewer.app import setup_numba_cache
    setup_numba_cache()


_log_to_file_when_windowed()
_setup_numba_cache()
