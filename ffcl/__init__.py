"""ffcl: continual learning with Forward-Forward local learners, as Avalanche strategies."""

__version__ = "0.1.0"
