"""Class-conditional Gaussians over features: the readout of every statistics-based learner.

Streaming linear discriminant analysis (Hayes and Kanan, "Lifelong machine learning with deep
streaming linear discriminant analysis", CVPR-W 2020; Avalanche's ``StreamingLDA``) keeps one
mean per class and one covariance shared by all classes, and scores class c as the Gaussian
log-likelihood with shared covariance (the LDA discriminant):

    s_c(f) = mu_c^T P f - mu_c^T P mu_c / 2,   P = ((1 - a) S + a tr(S)/D I)^-1,

with S the pooled within-class covariance and ``a`` the shrinkage (sklearn's ``shrunk_covariance``):
a number, or ``"oas"`` to set it from the statistics themselves with the Oracle Approximating
Shrinkage of Chen, Wiesel, Eldar and Hero (IEEE TSP 2010, eq. 23, as scikit-learn's ``OAS``),
applied to the pooled within-class data: with E = scatter / N (N samples, p = D features),

    a = min(1, (mean(E**2) + (tr(E)/p)**2) / ((N + 1) (mean(E**2) - (tr(E)/p)**2 / p))),

so it needs only the streaming scatter and count, and stays exact under any split of the data.
(Ledoit-Wolf needs the fourth moments of the samples around their class means, which a stream
cannot keep exactly while the means move, so it is not offered.) With ``kind="ncm"`` P is the identity: the nearest class mean. Both models are order-invariant:
after any sequence of experiences they equal the model fit on all the data at once, so in
class-incremental learning they forget nothing and store no samples, only statistics.

The statistics are exact and batched: each minibatch is merged with Chan, Golub and LeVeque's
pairwise update (the scatter of the batch around its own class means plus the between term), so a
60,000-image experience is a few matrix products, not Avalanche's per-sample Python loop (whose
covariance update is an online approximation). Kept state: per class a mean (D float64) and a
count; shared, the D x D scatter.

Scoring needs the covariance factored (O(D^3): about a second for D = 4000 on two cores). A
stream of small batches scored as it is learnt (the training output, prequential accuracy) would
pay that for every batch, so while ``reuse_factor`` is set (by the template, during a statistics
pass) and ``refresh_every`` > 0, the factor is reused until ``min(refresh_every, n0)`` samples have
been merged since it was computed from n0 samples (so it is refreshed often while the statistics
are young); the class means, and new classes, are always current. Otherwise, and always outside
a statistics pass, scores use the covariance of all samples merged so far: exact.
"""

from __future__ import annotations

import torch
from torch import nn

from .nn.ff import NEG

__all__ = ["ClassGaussians", "KINDS", "AUTO_SHRINKAGE", "oas_shrinkage"]

KINDS = ("lda", "ncm")
AUTO_SHRINKAGE = ("oas",)  # shrinkages computed from the statistics


def oas_shrinkage(scatter: torch.Tensor, n: float) -> float:
    """OAS shrinkage (Chen et al. 2010, eq. 23; scikit-learn's ``OAS``) of the covariance
    ``scatter / n`` of ``n`` centred samples: the weight of the scaled identity, in [0, 1]."""
    p = scatter.shape[0]
    if n <= 0:
        return 1.0
    emp = scatter / n
    alpha = float(emp.square().mean())
    mu2 = (float(torch.trace(emp)) / p) ** 2
    den = (n + 1) * (alpha - mu2 / p)
    return 1.0 if den <= 0 else min((alpha + mu2) / den, 1.0)


class ClassGaussians(nn.Module):
    """Streaming class means and pooled within-class covariance of D-dimensional features.

    :param dim: feature dimension D.
    :param num_classes: classes it can hold (grows with :meth:`grow`).
    :param kind: ``lda`` (shared covariance) or ``ncm`` (identity covariance).
    :param shrinkage: weight ``a`` of the scaled identity in the covariance (LDA only), or ``"oas"``.
    :param refresh_every: samples merged before the covariance is factored again (0: always).
    """

    PENDING_ROWS = 2048
    refresh_every: int = 0  # class defaults: readouts pickled before these existed still load
    reuse_factor: bool = False  # set while a statistics pass scores the batches it merges
    _solver: tuple[str, torch.Tensor, float] | None = None
    _pending: list[torch.Tensor] | None = None  # rows whose outer products the scatter still lacks

    def __init__(self, dim: int, num_classes: int, kind: str = "lda", shrinkage: float | str = 1e-4, refresh_every: int = 0) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"readout kind must be one of {', '.join(KINDS)}, got '{kind}'")
        if isinstance(shrinkage, str) and shrinkage not in AUTO_SHRINKAGE:
            raise ValueError(f"shrinkage must be a number in [0, 1] or one of {', '.join(AUTO_SHRINKAGE)}, got '{shrinkage}'")
        if not isinstance(shrinkage, str) and not 0 <= shrinkage <= 1:
            raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
        if refresh_every < 0:
            raise ValueError(f"refresh_every must be >= 0, got {refresh_every}")
        self.kind, self.shrinkage, self.refresh_every = kind, shrinkage, refresh_every
        self.register_buffer("means", torch.zeros(num_classes, dim, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("scatter", torch.zeros(dim, dim, dtype=torch.float64))
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None  # (weights, bias) until the next update

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    def bytes_per_class(self) -> int:
        """Bytes of state a class adds (its mean and its count)."""
        return (self.means.shape[1] + 1) * self.means.element_size()

    def bytes_shared(self) -> int:
        """Bytes of state shared by all classes (the covariance; 0 for NCM, which needs none)."""
        return self.scatter.numel() * self.scatter.element_size() if self.kind == "lda" else 0

    def grow(self, num_classes: int) -> None:
        """Room for labels up to ``num_classes - 1``."""
        extra = num_classes - self.num_classes
        if extra > 0:
            self.means = torch.cat([self.means, self.means.new_zeros(extra, self.means.shape[1])])
            self.counts = torch.cat([self.counts, self.counts.new_zeros(extra)])
            self._cache = None

    @torch.no_grad()
    def update(self, f: torch.Tensor, y: torch.Tensor) -> None:
        """Merge a batch of features f [B, D] with labels y [B] into the statistics (exactly)."""
        if y.numel() and int(y.max()) >= self.num_classes:
            raise ValueError(f"label {int(y.max())} is out of range for a readout of {self.num_classes} classes")
        f = f.detach().to(self.means.dtype)
        n_b = torch.bincount(y, minlength=self.num_classes).to(self.means.dtype)
        sums = torch.zeros_like(self.means).index_add_(0, y, f)
        seen = n_b > 0
        mean_b = sums[seen] / n_b[seen, None]
        n_a = self.counts[seen]
        delta = mean_b - self.means[seen]
        w = n_a * n_b[seen] / (n_a + n_b[seen])
        # scatter += centred^T centred + sum_c w_c delta_c delta_c^T: rows whose product is added
        # when PENDING_ROWS have gathered or the covariance is needed (one large product instead
        # of many small ones that each read and write the whole D x D scatter)
        self._pending = (self._pending or []) + [torch.cat([f - (sums / n_b.clamp(min=1)[:, None])[y], delta * w.sqrt()[:, None]])]
        if sum(len(r) for r in self._pending) >= self.PENDING_ROWS:
            self._flush()
        self.means[seen] += delta * (n_b[seen] / (n_a + n_b[seen]))[:, None]
        self.counts += n_b
        self._cache = None

    def _flush(self) -> None:
        """Add the pending rows' outer products to the scatter."""
        if self._pending:
            rows = torch.cat(self._pending)
            self._pending = None
            self.scatter.addmm_(rows.T, rows)

    def shrinkage_value(self) -> float:
        """The shrinkage ``a`` in use: the recipe's number, or the one OAS sets from the statistics so far."""
        if self.shrinkage == "oas":
            self._flush()  # the statistics so far, all of them
            return oas_shrinkage(self.scatter, float(self.counts.sum()))
        return float(self.shrinkage)

    def covariance(self) -> torch.Tensor:
        """The shrunk pooled within-class covariance (D x D)."""
        self._flush()
        a = self.shrinkage_value()
        d = self.scatter.shape[0]
        n = max(float(self.counts.sum()) - int((self.counts > 0).sum()), 1.0)
        cov = self.scatter * ((1 - a) / n)  # one D x D copy: at D = 10,000 each is 800 MB
        cov.diagonal().add_(a * float(torch.trace(self.scatter)) / (n * d))
        return cov

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None and self._solver is not None and not self.reuse_factor \
                and self._solver[2] != float(self.counts.sum()):
            self._cache = None  # computed with a reused factor: now exact
        if self._cache is None:
            mu = self.means
            if self.kind == "lda":
                kind, factor, _ = self._factor()
                w = torch.cholesky_solve(mu.T, factor).T if kind == "chol" else mu @ factor
            else:
                w = mu
            self._cache = (w, -0.5 * (w * mu).sum(1))
        return self._cache

    def _factor(self) -> tuple[str, torch.Tensor, float]:
        """The covariance's Cholesky factor, or its inverse when it is to be reused (pseudo-inverse
        if singular), recomputed as the module docstring says."""
        n = float(self.counts.sum())
        n0 = self._solver[2] if self._solver is not None else None
        lazy = self.reuse_factor and self.refresh_every and n0
        if n0 is None or (n - n0 >= min(self.refresh_every, n0) if lazy else n != n0):
            cov = self.covariance()
            if float(torch.trace(cov)) <= 0:  # one sample per class so far: no covariance yet
                cov = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
            chol, info = torch.linalg.cholesky_ex(cov)
            if info != 0:
                self._solver = ("inverse", torch.linalg.pinv(cov, hermitian=True), n)
            elif self.refresh_every:  # reused: the explicit inverse makes each later solve one matrix product
                self._solver = ("inverse", torch.cholesky_inverse(chol), n)
            else:
                self._solver = ("chol", chol, n)
        return self._solver

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Class scores [B, C]; classes with no data yet score ``NEG``."""
        w, b = self._weights()
        scores = (f.to(w.dtype) @ w.T + b).to(f.dtype if f.is_floating_point() else torch.float32)
        return scores.masked_fill(self.counts == 0, NEG)  # float64 products: raw-pixel LDA weights are large

    def _save_to_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._flush()
        super()._save_to_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict:
        self._flush()  # a checkpoint holds the whole scatter, not the factor or weights derived from it (D x D each)
        return {**super().__getstate__(), "_solver": None, "_cache": None}

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._cache = self._solver = self._pending = None
        super()._load_from_state_dict(*args, **kwargs)
