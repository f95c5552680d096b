"""Metrics Avalanche lacks, and the summaries of an accuracy matrix."""

from .anytime import AnytimeAccuracy
from .matrix import average_accuracy, average_forgetting, backward_transfer, plasticity, summarize
from .memory import peak_memory_mb

__all__ = ["AnytimeAccuracy", "average_accuracy", "average_forgetting", "backward_transfer", "plasticity", "summarize", "peak_memory_mb"]
