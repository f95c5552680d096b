"""Networks: the back-propagation MLP of the baselines and the FF blocks of the local learners."""

from .mlp import MLP

__all__ = ["MLP"]
