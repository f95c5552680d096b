"""Metrics Avalanche lacks, and the summaries of an accuracy matrix."""

from .activity import BlockActivity, block_activity
from .anytime import AnytimeAccuracy
from .matrix import average_accuracy, average_forgetting, backward_transfer, forward_transfer, plasticity, summarize
from .memory import peak_memory_mb, resident_memory_mb
from .prequential import PrequentialAccuracy
from .summary import MatrixSummary, accuracy_row

__all__ = ["AnytimeAccuracy", "PrequentialAccuracy", "MatrixSummary", "accuracy_row", "BlockActivity", "block_activity", "average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer", "plasticity", "summarize", "peak_memory_mb", "resident_memory_mb"]
