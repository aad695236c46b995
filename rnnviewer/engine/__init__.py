"""rnnviewer's engine: models, kernels, losses, optimizers, tasks and analysis.

numpy + numba only: nothing here imports Qt or threading.
"""

from rnnviewer.engine.checkpoint import load, save
from rnnviewer.engine.model import Model, Trace
from rnnviewer.engine.optim import SGD, Adam, clip_grad_norm
from rnnviewer.errors import CheckpointError, ConfigError, DataError, RnnviewerError

__all__ = ["Model", "Trace", "SGD", "Adam", "clip_grad_norm", "save", "load",
           "CheckpointError", "ConfigError", "DataError", "RnnviewerError"]
