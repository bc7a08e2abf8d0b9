"""LoadGen driver: CLI, settings, dataset and QSL, the run, its verdict and records."""

__version__ = "0.1.0"
