"""Tasks: seeded sequence generators and data files with a disjoint train/validation split.

    task = make_task("adding", seq_len=100, seed=0)
    x, target, mask = task.batch("train", 32, rng)   # (B,T,I), (B,T,O) or (B,T) ids, (B,T)|None
    make_task(**task.config)                         # the same task again
"""

from rnnviewer.engine.tasks.base import Batch, Task, evaluate_batches
from rnnviewer.engine.tasks.csvdata import CsvTask
from rnnviewer.engine.tasks.synthetic import (AddingTask, CopyTask, FlipFlopTask, ParityTask,
                                              SineTask)
from rnnviewer.engine.tasks.text import TextTask, bits_per_char
from rnnviewer.errors import ConfigError

TASKS = {cls.name: cls for cls in
         (SineTask, AddingTask, CopyTask, FlipFlopTask, ParityTask, TextTask, CsvTask)}


def make_task(name, **options) -> Task:
    """Build task `name` with its options (seq_len, seed, dtype and task-specific ones)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    try:
        return TASKS[name](**options)
    except TypeError as e:  # an option this task does not take
        raise ConfigError(f"task {name!r}: {e}") from None


__all__ = ["Task", "Batch", "TASKS", "make_task", "evaluate_batches", "bits_per_char",
           "SineTask", "AddingTask", "CopyTask", "FlipFlopTask", "ParityTask", "TextTask",
           "CsvTask"]
