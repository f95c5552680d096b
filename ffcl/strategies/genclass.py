"""Generative classifier: one small VAE per class, classified by its likelihood estimate.

van de Ven, Li and Tolias, "Class-incremental learning with generative classifiers", CVPR-W 2021
(the replay-free anchor of algorithms.md section 11: 93.8% on Split-MNIST). Each class has its own
variational autoencoder, trained only on that class's images by the negative ELBO with a Bernoulli
decoder; a test image goes to the class whose VAE gives it the highest importance-sampled
log-likelihood,

    log p(x | c) ~ logsumexp_s [log p(x | z_s) + log p(z_s) - log q(z_s | x)] - log S,  z_s ~ q(z | x),

with a uniform prior over the classes seen so far. A class's VAE never sees another class, so
nothing is forgotten and no image is stored (kept per class: the VAE's parameters).

Settings follow the paper's MNIST setup (fully connected encoder and decoder with two hidden
layers of 85 units, latent size 5, Adam lr 1e-3, batch 128). Where we differ: training length is
the recipe's epochs over the experience (the paper counts iterations per class), and the
likelihood uses ``importance_samples`` samples (default 20; the paper 10,000), since it is
estimated for every seen class of every test image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from ..config import ConfigError
from ..data.loaders import TensorLoaders
from ..nn.ff import NEG
from .ff_template import ScoreCrossEntropy
from .registry import BuildContext, register_learner

__all__ = ["VAE", "GenerativeClassifier", "GenClassTemplate"]

LOG_2PI = math.log(2 * math.pi)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class VAE(nn.Module):
    """Gaussian encoder q(z|x), standard normal prior, Bernoulli decoder p(x|z)."""

    def __init__(self, dim: int, hidden: list[int], latent: int) -> None:
        super().__init__()
        self.encoder = _mlp([dim, *hidden, 2 * latent])
        self.decoder = _mlp([latent, *reversed(hidden), dim])
        self.latent = latent

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative ELBO of images x [B, D] in [0, 1]."""
        mu, logvar = self._posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return (rec + kl).mean()

    def log_likelihood(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """Importance-sampled log p(x) [B] with ``samples`` draws from q(z|x)."""
        mu, logvar = self._posterior(x)
        eps = torch.randn(x.shape[0], samples, self.latent, device=x.device, dtype=x.dtype)
        z = mu[:, None] + eps * (0.5 * logvar[:, None]).exp()
        log_px = -F.binary_cross_entropy_with_logits(self.decoder(z), x[:, None].expand(-1, samples, -1), reduction="none").sum(-1)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar[:, None]).sum(-1)
        return torch.logsumexp(log_px + log_pz - log_qz, dim=1) - math.log(samples)


class GenerativeClassifier(nn.Module):
    """One :class:`VAE` per class; scores are log p(x | c) for the classes seen so far, ``NEG`` otherwise."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: list[int], latent: int, importance_samples: int) -> None:
        super().__init__()
        self.dim, self.hidden, self.latent = math.prod(input_shape), list(hidden), latent
        self.importance_samples = importance_samples
        self.vaes = nn.ModuleList(VAE(self.dim, self.hidden, latent) for _ in range(num_classes))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))

    @property
    def max_classes(self) -> int:
        return len(self.vaes)

    def grow(self, num_classes: int) -> None:
        device = self.seen.device
        for _ in range(num_classes - len(self.vaes)):
            self.vaes.append(VAE(self.dim, self.hidden, self.latent).to(device))
        self.seen = torch.cat([self.seen, self.seen.new_zeros(max(0, num_classes - len(self.seen)))])

    def kept_bytes(self) -> dict[str, int]:
        """What the learner keeps instead of images: one VAE per class, nothing shared."""
        return {"per_class": sum(p.numel() * p.element_size() for p in self.vaes[0].parameters()), "shared": 0}

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each class's VAE on its own images: the sum over the classes present of their mean negative ELBO."""
        if y.numel() and int(y.max()) >= len(self.vaes):
            raise ValueError(f"label {int(y.max())} is out of range for a generative classifier of {len(self.vaes)} classes")
        x = x.flatten(1)
        self.seen[y.unique()] = True
        return sum(self.vaes[int(c)].loss(x[y == c]) for c in y.unique())

    def forward(self, x: torch.Tensor, samples: int | None = None) -> torch.Tensor:
        x = x.flatten(1)
        out = torch.full((x.shape[0], len(self.vaes)), NEG, device=x.device, dtype=x.dtype)
        for c in self.seen.nonzero().flatten().tolist():
            out[:, c] = torch.cat([self.vaes[c].log_likelihood(part, samples or self.importance_samples) for part in x.split(256)])
        return out


class GenClassTemplate(TensorLoaders, SupervisedTemplate):
    """Avalanche template for :class:`GenerativeClassifier`: the loss of a minibatch trains each
    present class's VAE on its own images; the output is the classifier's scores (one importance
    sample while training, so training accuracy is cheap but real)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("criterion", ScoreCrossEntropy())
        super().__init__(**kwargs)

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        with torch.no_grad():  # scored before the loss marks this minibatch's classes as seen (test-then-train)
            scores = self.model(self.mb_x, samples=1)
        self._vae_loss = self.model.loss(self.mb_x, self.mb_y)
        return scores

    def criterion(self) -> torch.Tensor:
        return self._vae_loss if self.is_training else super().criterion()


@register_learner("genclass")
def genclass(ctx: BuildContext, latent: int = 5, importance_samples: int = 20) -> GenClassTemplate:
    """One VAE per class (``hidden`` units per layer in encoder and decoder, ``latent`` dimensions),
    classified by the likelihood estimated from ``importance_samples`` samples."""
    if latent < 1 or importance_samples < 1:
        raise ConfigError(f"genclass: 'latent' and 'importance_samples' must be >= 1, got {latent} and {importance_samples}")
    model = GenerativeClassifier(ctx.input_shape, ctx.num_classes, ctx.config.hidden, latent, importance_samples)
    return GenClassTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **ctx.template_kwargs())
