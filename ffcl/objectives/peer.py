"""Peer normalisation (Hinton 2022, "The Forward-Forward Algorithm", section 3.2; the loeweX
implementation): a layer-local regulariser that keeps every unit in use.

Each unit's mean activity on positive passes is tracked as a running average
m_i <- momentum * m_i + (1 - momentum) * mean_batch h_i (the current batch's term keeps its
gradient), and the penalty is mean_i (mean_j m_j - m_i)^2: units that never fire are pulled up
towards their peers (a ReLU unit that is dead on every input otherwise gets no gradient from the
goodness loss) and units that fire for everything are pulled down.
"""

from __future__ import annotations

import torch

__all__ = ["peer_normalization"]


def peer_normalization(h_pos: torch.Tensor, running: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """The penalty for positive activities ``h_pos`` [B, D]; updates ``running`` [D] in place."""
    m = running * momentum + h_pos.mean(0) * (1 - momentum)
    running.copy_(m.detach())
    return (m.mean() - m).pow(2).mean()
