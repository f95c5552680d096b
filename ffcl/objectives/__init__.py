"""Goodness functions and local losses, one file per objective, each citing its paper and equation."""

from .base import OBJECTIVES, Objective, make_objective, register_objective
from .dimcomp import DimensionalityCompression, effective_dimensionality
from .distance import CentroidDistance, DistanceNPair
from .hinton import HintonFF
from .sffa import SFFA
from .symba import SymBa

__all__ = ["OBJECTIVES", "Objective", "make_objective", "register_objective", "DimensionalityCompression", "effective_dimensionality", "CentroidDistance", "DistanceNPair", "HintonFF", "SFFA", "SymBa"]
