"""TrainingSession variants that misbehave, for window tests. The window's training runs
in a process of its own, where a monkeypatch cannot reach: these classes travel there by
name (this module is importable in the child: pytest puts tests/ on sys.path, which the
child inherits)."""

import os
import time

from rnnviewer.training.session import TrainingSession


class SlowCompileSession(TrainingSession):
    """Compiling takes 2.5 s and cannot be interrupted, like a numba compile."""

    def compile(self):
        time.sleep(2.5)
        return 2.5


class BrokenOnceSession(TrainingSession):
    """The first training step of the process raises; later ones work."""

    failed = False

    def _train_step(self, keep_grads):
        if not BrokenOnceSession.failed:
            BrokenOnceSession.failed = True
            raise RuntimeError("kernel exploded")
        return super()._train_step(keep_grads)


class CrashingSession(TrainingSession):
    """Step 3 kills the whole process (a segfault in a kernel, say), once per run of the
    test: the marker file (RNNVIEWER_TEST_CRASH_MARKER) says it already happened."""

    def _train_step(self, keep_grads):
        marker = os.environ.get("RNNVIEWER_TEST_CRASH_MARKER")
        if self.step == 3 and marker and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(9)
        return super()._train_step(keep_grads)
