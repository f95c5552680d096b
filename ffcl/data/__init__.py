"""Data sets as tensors, and the Avalanche streams built from them."""

from .datasets import DATASETS, DataError, TensorData, default_data_root, load_dataset, synthetic
from .streams import Stream, make_stream

__all__ = [
    "DATASETS",
    "DataError",
    "TensorData",
    "default_data_root",
    "load_dataset",
    "synthetic",
    "Stream",
    "make_stream",
]
