"""rnnviewer: train small recurrent networks live and look inside them."""

__version__ = "0.1.0"
