"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified Adversarial Robustness via
Randomized Smoothing"), in the shape of the reference code (locuslab/smoothing): one small class.

The smoothed classifier is ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``. If the
top class has probability ``p_A`` then ``g`` is constant on the L2 ball of radius
``sigma * Phi^-1(p_A)`` around ``x`` (Theorem 1 with ``p_B = 1 - p_A``). ``certify`` estimates
``p_A`` from below with a one-sided Clopper-Pearson bound, so the radius holds with probability
at least ``1 - alpha`` per example. The noise is not clipped to [0, 1], as in the paper: the
theorem is about the Gaussian measure on the whole space.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import beta, binomtest, norm
from torch import nn

from robustlab.errors import ConfigError
from robustlab.inputs import check_images, model_dtype
from robustlab.models.inference import model_context, model_device
from robustlab.progress import progress_bar

ABSTAIN = -1


def clopper_pearson_lower(successes: torch.Tensor, trials: int, alpha: float) -> torch.Tensor:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower bound of a binomial proportion.

    ``Beta(alpha; k, n - k + 1)`` quantile, 0 for ``k = 0``: the same value as the reference's
    ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``.
    """
    k = successes.detach().cpu().double().numpy()
    low = beta.ppf(alpha, k, trials - k + 1)
    low[k == 0] = 0.0
    return torch.from_numpy(low)


class Smooth:
    """A smoothed classifier around ``model`` (takes [0, 1] images, returns logits).

    ``seed`` seeds one ``torch.Generator`` on the model's device; successive calls continue its
    stream, so a fresh ``Smooth`` with the same seed repeats a run exactly.

    Examples::
        >>> smoothed = Smooth(model, num_classes=10, sigma=0.25)
        >>> classes, radii = smoothed.certify(images, n0=100, n=100_000, alpha=0.001)
        >>> classes = smoothed.predict(images, n=1000, alpha=0.001)   # -1 = abstain
    """

    ABSTAIN = ABSTAIN

    def __init__(self, model: nn.Module, num_classes: int, sigma: float, seed: int = 0) -> None:
        if not sigma > 0 or not math.isfinite(sigma):
            raise ConfigError(f"sigma must be a finite number > 0, got {sigma!r}")
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        self.model, self.num_classes, self.sigma = model, int(num_classes), float(sigma)
        self.device = model_device(model)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    @torch.no_grad()
    def sample_counts(self, images: torch.Tensor, num: int, batch_size: int = 1000) -> torch.Tensor:
        """Per example, how often each class wins under ``num`` noise draws: (N, classes) int64.

        Noise draws of all examples are laid end to end and cut into batches of ``batch_size``
        images, so small inputs fill whole batches even when ``num`` is small.
        """
        if num < 1 or batch_size < 1:
            raise ConfigError(f"need num >= 1 and batch_size >= 1, got {num}, {batch_size}")
        check_images(images, dtype=model_dtype(self.model))
        images = images.to(self.device)
        counts = torch.zeros(len(images), self.num_classes, dtype=torch.long, device=self.device)
        total = len(images) * num
        bar = progress_bar("smoothing", total=total, unit="sample")
        with model_context(self.model, "eval"), bar:
            for start in range(0, total, batch_size):
                owner = torch.arange(start, min(start + batch_size, total), device=self.device)
                owner = owner // num
                clean = images[owner]
                noise = torch.randn(
                    clean.shape, generator=self.generator, device=self.device, dtype=clean.dtype
                )
                winners = self.model(clean + self.sigma * noise).argmax(dim=1)
                counts.index_put_((owner, winners), torch.ones_like(winners), accumulate=True)
                bar.update(len(owner))
        return counts.cpu()

    def predict(
        self, images: torch.Tensor, n: int, alpha: float, batch_size: int = 1000
    ) -> torch.Tensor:
        """The smoothed prediction per example, or -1 (abstain) where the top two classes are
        not separated by a two-sided binomial test at level ``alpha`` (Cohen et al.'s PREDICT).
        """
        _check_alpha(alpha)
        counts = self.sample_counts(images, n, batch_size)
        top2 = counts.topk(2, dim=1)
        classes = top2.indices[:, 0].clone()
        for i, (n_a, n_b) in enumerate(top2.values.tolist()):
            if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
                classes[i] = ABSTAIN
        return classes

    def certify(
        self, images: torch.Tensor, n0: int, n: int, alpha: float, *, batch_size: int = 1000
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per example the smoothed class (-1 = abstain) and its certified L2 radius (0 when
        abstaining): Cohen et al.'s CERTIFY with ``n0`` selection and ``n`` estimation draws.

        Returns CPU tensors ``(classes int64 (N,), radii float64 (N,))``.
        """
        _check_alpha(alpha)
        guess = self.sample_counts(images, n0, batch_size).argmax(dim=1)
        counts = self.sample_counts(images, n, batch_size)
        p_lower = clopper_pearson_lower(counts.gather(1, guess[:, None])[:, 0], n, alpha)
        certified = p_lower > 0.5
        radii = torch.zeros(len(images), dtype=torch.float64)
        radii[certified] = self.sigma * torch.from_numpy(norm.ppf(p_lower[certified].numpy()))
        classes = torch.where(certified, guess, torch.full_like(guess, ABSTAIN))
        return classes, radii


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"alpha must be in (0, 0.5), got {alpha!r} (the reference uses 0.001)")
