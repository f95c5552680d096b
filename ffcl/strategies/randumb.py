"""``randumb``: random Fourier features under streaming LDA with OAS shrinkage.

RanDumb (Prabhu, Sinha, Kumaraguru, Torr, Bibi, "Random Representations Outperform Online
Continually Learned Representations", NeurIPS 2024; code drimpossible/RanDumb) embeds the
normalised pixels with a fixed random Fourier feature map approximating the RBF kernel
(Rahimi and Recht, NeurIPS 2007; scikit-learn's ``RBFSampler``):

    z(x) = sqrt(2 / D) cos(W^T x~ + b),   W_ij ~ N(0, 2 gamma),   b_j ~ U(0, 2 pi),

with x~ the pixels shifted and scaled to zero mean and unit variance and ``gamma = "scale"``
= 1 / (d var(x~)), d the number of pixels; then it classifies with LDA whose covariance is shrunk
by OAS. Nothing is learnt but the class statistics, so it is order-invariant and stores no image.

Streaming differences from the authors' batch code (checked on the same arrays by
``benchmarks/randumb_check.py``; docs/replay_free.md): the pixel mean and variance come from the
first experience (the authors use the whole training set's), after which the map is fixed; OAS
shrinks the pooled within-class covariance (``ffcl.readout``), where scikit-learn's
``LinearDiscriminantAnalysis(covariance_estimator=OAS())`` averages per-class shrunk covariances;
and classes have equal priors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ConfigError
from .gaussian import GaussianClassifier, GaussianTemplate, _readout
from .registry import BuildContext, register_learner

__all__ = ["RandomFourierFeatures"]


class RandomFourierFeatures(nn.Module):
    """The fixed map z(x) above. Its input statistics (pixel mean, std and gamma) are set once by
    :meth:`fit_input`, which :class:`GaussianTemplate` calls on the first experience's images.

    :param input_shape: shape of one input.
    :param components: D, the number of features.
    :param gamma: the RBF kernel's gamma on normalised inputs, or ``"scale"`` (1 / (d var)).
    :param seed: seed of W and b (None: torch's global generator, which ``ffcl run`` seeds with the run's seed).
    """

    def __init__(self, input_shape: tuple[int, ...], components: int, gamma: float | str = "scale", seed: int | None = None) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        if gamma != "scale" and (isinstance(gamma, str) or gamma <= 0):
            raise ValueError(f"gamma must be a positive number or \"scale\", got {gamma!r}")
        self.gamma, self.feature_size = gamma, components
        d = math.prod(input_shape)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.register_buffer("weight", torch.randn(d, components, generator=g))  # N(0, 1); scaled by sqrt(2 gamma)
        self.register_buffer("offset", torch.rand(components, generator=g) * (2 * math.pi))
        self.register_buffer("input_stats", torch.zeros(3))  # pixel mean, pixel std, sqrt(2 gamma)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_input(self, x: torch.Tensor) -> None:
        """Set the pixel mean and std, and gamma, from the images ``x`` (once; the map is fixed after)."""
        x = x.flatten(1).double()
        mean, std = float(x.mean()), float(x.std(unbiased=False))
        if std == 0:
            raise ValueError("randumb: the first experience's pixels all have one value, so they cannot be "
                             "normalised; give it images that vary")
        var = float(((x - mean) / std).var(unbiased=False))  # 1 up to rounding, as in the authors' code
        gamma = 1.0 / (x.shape[1] * var) if self.gamma == "scale" else float(self.gamma)
        self.input_stats.copy_(torch.tensor([mean, std, math.sqrt(2 * gamma)]))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError("RandomFourierFeatures: call fit_input on the first images before using it")
        mean, std, scale = self.input_stats.tolist()
        proj = torch.addmm(self.offset, (x.flatten(1).to(self.weight.dtype) - mean) / std, self.weight, alpha=scale)
        return proj.cos_().mul_(math.sqrt(2.0 / self.feature_size))


@register_learner("randumb")
def randumb(
    ctx: BuildContext,
    components: int = 4000,
    gamma: float | str = "scale",
    shrinkage: float | str = "oas",
    seed: int | None = None,
    covariance_refresh: int = 0,
) -> GaussianTemplate:
    """RanDumb: ``components`` random Fourier features of the normalised pixels (``gamma``:
    "scale" or a number) under streaming LDA with ``shrinkage`` ("oas" or a number); ``seed``
    draws the map (default: the run's seed); ``covariance_refresh`` as for ``slda``."""
    try:
        features = RandomFourierFeatures(ctx.input_shape, components, gamma, seed).to(ctx.device)
    except ValueError as e:
        raise ConfigError(f"randumb: {e}") from None
    model = GaussianClassifier(features, _readout(ctx, components, "lda", shrinkage, covariance_refresh))
    return GaussianTemplate(model=model, **ctx.template_kwargs())
