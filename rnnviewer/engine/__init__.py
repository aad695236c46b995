"""rnnviewer's engine: models, kernels, losses, optimizers, tasks and analysis.

numpy + numba only: nothing here imports Qt or threading.
"""

from rnnviewer.engine.checkpoint import load, save
from rnnviewer.engine.model import Model, Trace
from rnnviewer.engine.fixedpoints import fixed_points
from rnnviewer.engine.maximize import maximize_activation
from rnnviewer.engine.optim import SGD, Adam, clip_grad_norm
from rnnviewer.engine.weights_import import import_weights, inspect_weights
from rnnviewer.errors import CheckpointError, ConfigError, DataError, RnnviewerError

__all__ = ["Model", "Trace", "SGD", "Adam", "clip_grad_norm", "save", "load",
           "CheckpointError", "ConfigError", "DataError", "RnnviewerError"]
__all__ += ["fixed_points", "maximize_activation"]
