"""A data set as tensors: :class:`TensorData` (a train/test split) and :class:`DataError`.

Every loader (ffcl.data.sources for the built-in data sets, ffcl.data.user for npz files and
image folders) decodes to the arrays :data:`Arrays` and wraps them with :func:`tensor_data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DataError", "TensorData", "Arrays", "tensor_data"]

# Decoded data: x_train, y_train, x_test, y_test (uint8 [N, C, H, W] images, int64 labels), class names.
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


class DataError(ValueError):
    """A data set is unknown, missing or malformed; the message says what to change or get."""


@dataclass(frozen=True, eq=False)
class TensorData:
    """A train/test split: float32 images ``[N, C, H, W]`` in ``[0, 1]``, int64 labels ``[N]``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if x.dtype != torch.float32 or x.dim() != 4 or y.dtype != torch.int64 or y.shape != x.shape[:1]:
                raise ValueError(f"{self.name}: need float32 [N, C, H, W] images and int64 [N] labels, "
                                 f"got {x.dtype} {list(x.shape)} and {y.dtype} {list(y.shape)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one image, ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """The number of classes (labels run from 0 to ``num_classes - 1``)."""
        return len(self.class_names)


def tensor_data(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, class_names: tuple[str, ...]) -> TensorData:
    """Wrap arrays as tensors: uint8 images become float32 / 255, float32 images are kept."""
    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x))
        return t.float().div_(255) if x.dtype == np.uint8 else t

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64))

    return TensorData(name, images(x_train), labels(y_train), images(x_test), labels(y_test), class_names)
