"""rnnviewer's exception types: every loader and validator raises only these."""


class RnnviewerError(Exception):
    """Base class: a problem the user can act on; the message says what and where."""


class ConfigError(RnnviewerError, ValueError):
    """Impossible settings or mismatched shapes in an API call."""


class DataError(RnnviewerError):
    """A text, CSV or other input file that cannot be used."""


class CheckpointError(RnnviewerError):
    """A checkpoint, session or weights file that cannot be read."""


class DivergenceError(RnnviewerError):
    """Training produced NaN or Inf."""

    def __init__(self, message, step=None, tensor=None, lr=None):
        super().__init__(message)
        self.step = step
        self.tensor = tensor
        self.lr = lr
