"""Class-conditional Gaussians with one shared (tied) covariance, as in Lee et al. (2018).

The statistics are estimated in float64 and turned into a whitening matrix ``W`` with
``W @ W.T`` equal to the (pseudo-)inverse of the covariance, so that a Mahalanobis distance is
a plain squared Euclidean distance ``||f @ W - mu @ W||^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import ledoit_wolf_shrinkage

from robustlab.errors import ConfigError, DataError

# Eigenvalues below this fraction of the largest one are treated as zero (pseudo-inverse).
RELATIVE_EIGEN_TOLERANCE = 1e-10


@dataclass
class TiedGaussian:
    """Class means ``(C, D)`` and whitening ``(D, K)`` of one feature layer."""

    means: torch.Tensor
    whitening: torch.Tensor
    shrinkage: float

    @property
    def precision(self) -> torch.Tensor:
        """The precision matrix ``W @ W.T`` (pseudo-inverse of the shrunk covariance)."""
        return self.whitening @ self.whitening.T

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> TiedGaussian:
        """A copy on ``device``."""
        return TiedGaussian(
            self.means.to(device, dtype).contiguous(),
            self.whitening.to(device, dtype).contiguous(),
            self.shrinkage,
        )

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distances ``(N, C)`` of features ``(N, D)`` to every class mean.

        Differentiable; the expansion ``|z|^2 - 2 z.m + |m|^2`` keeps memory at ``N x C``.
        """
        # Centring first keeps float32 cancellation in the expansion small.
        center = self.means.mean(0)
        z = (features.to(self.whitening.dtype) - center) @ self.whitening
        m = (self.means - center) @ self.whitening
        sq = z.pow(2).sum(1, keepdim=True) - 2.0 * z @ m.T + m.pow(2).sum(1)[None, :]
        # Rounding can make a tiny distance slightly negative.
        return sq.clamp_min(0.0)


def resolve_shrinkage(shrinkage: str | float) -> str | float:
    """Validate a shrinkage setting: ``"auto"`` (Ledoit–Wolf) or a number in [0, 1]."""
    if shrinkage == "auto":
        return "auto"
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, int | float):
        raise ConfigError(f"shrinkage must be 'auto' or a number in [0, 1], got {shrinkage!r}")
    if not 0.0 <= float(shrinkage) <= 1.0:
        raise ConfigError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    return float(shrinkage)


def fit_tied_gaussian(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, shrinkage: str | float = "auto"
) -> TiedGaussian:
    """Class means and the shared covariance (maximum likelihood, divided by N), shrunk.

    ``shrinkage`` pulls the covariance toward ``trace/D * I``: ``"auto"`` picks the Ledoit–Wolf
    coefficient, a number uses it as is; 0 keeps the plain estimate, whose pseudo-inverse is
    used when it is singular (more dimensions than examples), so no NaN can appear.
    """
    x = features.detach().to("cpu", torch.float64).numpy()
    y = labels.detach().to("cpu", torch.long).numpy()
    _check_inputs(x, y, num_classes)
    means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
    centered = x - means[y]
    cov = centered.T @ centered / len(x)
    scale = float(np.trace(cov)) / cov.shape[0]
    if not scale > 0.0:
        raise DataError(
            "features have zero variance within classes: every example of a class maps to the "
            "same point; check the model (dead layer?) or the data"
        )
    coef = resolve_shrinkage(shrinkage)
    if coef == "auto":
        coef = float(ledoit_wolf_shrinkage(centered, assume_centered=True)) if len(x) > 1 else 1.0
    cov = (1.0 - coef) * cov + coef * scale * np.eye(cov.shape[0])
    whitening = _whitening(cov)
    return TiedGaussian(torch.from_numpy(means), torch.from_numpy(whitening), float(coef))


def _check_inputs(x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"expected features (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise DataError("features contain NaN or inf: check the model and the input range")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes - 1}], got {y.min()}..{y.max()}")
    counts = np.bincount(y, minlength=num_classes)
    empty = [int(c) for c in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(
            f"class(es) {empty} have no training examples: the detector needs every class "
            "represented in the clean data passed to fit()"
        )


def _whitening(cov: np.ndarray) -> np.ndarray:
    """``W`` with ``W @ W.T = pinv(cov)``, dropping numerically null directions."""
    eigvals, eigvecs = np.linalg.eigh((cov + cov.T) / 2.0)
    keep = eigvals > RELATIVE_EIGEN_TOLERANCE * max(float(eigvals.max()), 0.0)
    if not keep.any():
        raise DataError("the feature covariance is zero: the detector cannot be fitted")
    return eigvecs[:, keep] / np.sqrt(eigvals[keep])[None, :]
