"""L1-ball geometry: the projection onto {L1 ball} ∩ [0, 1] box, the sparse steepest-ascent step
and a random start, all per row and vectorised over the batch.

The L1 ball's steepest-ascent direction is a single coordinate (the largest |grad|), which
makes plain L1 PGD crawl; Tramèr & Boneh (2019, "Adversarial Training and Robustness for
Multiple Perturbations", https://arxiv.org/abs/1904.13000) instead move along sign(grad) on
the coordinates whose |grad| is in the top (1 - q) fraction, skipping coordinates pinned at
the box bound in the gradient's direction (they cannot move, and counting them wastes the step).
"""

from __future__ import annotations

import math

import torch

# Bisection halvings of the soft-threshold level: 2^-60 of the initial bracket is below the
# float64 resolution, so the level is exact up to the dtype (float32 stops changing at ~25).
BISECTION_STEPS = 60
# Default quantile of the sparse step (Tramèr & Boneh): the top 1% coordinates by |grad|.
DEFAULT_QUANTILE = 0.99


def _radius(eps: float | torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """eps as an (N,) tensor on the rows' device and dtype."""
    radius = torch.as_tensor(eps, dtype=rows.dtype, device=rows.device)
    return radius.expand(len(rows)) if radius.ndim == 0 else radius.reshape(len(rows))


def project_l1_box(
    adv: torch.Tensor, images: torch.Tensor, eps: float | torch.Tensor
) -> torch.Tensor:
    """The Euclidean projection of ``adv`` onto {z : ||z - images||_1 <= eps, 0 <= z <= 1}.

    For v = adv - images the solution is d_i = clip(sign(v_i) max(|v_i| - lam, 0), -x_i, 1 - x_i)
    (KKT of the box-constrained L1 projection) with lam = 0 if that is inside the ball, else
    the lam > 0 where ||d(lam)||_1 = eps; ||d(lam)||_1 is nonincreasing in lam, so lam is found
    by bisection, all rows at once. Returns the detached projected images.
    """
    v = (adv - images).flatten(1)
    x = images.flatten(1)
    # The bound of the box in the direction of v_i: how far coordinate i may move that way.
    room = torch.where(v > 0, 1 - x, x).clamp(min=0)
    magnitude = v.abs()
    radius = _radius(eps, v).clamp(min=0)

    def mass(lam: torch.Tensor) -> torch.Tensor:
        return torch.minimum((magnitude - lam[:, None]).clamp(min=0), room).sum(dim=1)

    low = torch.zeros_like(radius)
    high = magnitude.amax(dim=1) if v.shape[1] else torch.zeros_like(radius)
    outside = mass(low) > radius
    for _ in range(BISECTION_STEPS if bool(outside.any()) else 0):
        mid = (low + high) / 2
        too_big = mass(mid) > radius
        low = torch.where(too_big, mid, low)
        high = torch.where(too_big, high, mid)
    # high always satisfies the budget (mass(max|v|) = 0); rows already inside take lam = 0.
    lam = torch.where(outside, high, torch.zeros_like(high))
    d = torch.minimum((magnitude - lam[:, None]).clamp(min=0), room) * v.sign()
    return (images + d.reshape(images.shape)).clamp(0, 1).detach()


def sparse_ascent_step(
    adv: torch.Tensor,
    grad: torch.Tensor,
    alpha: float | torch.Tensor,
    quantile: float = DEFAULT_QUANTILE,
) -> torch.Tensor:
    """``adv`` moved by L1 length ``alpha`` along sign(grad) on its top coordinates; not projected.

    The chosen coordinates of a row are those that can move (not at 0 with grad < 0 nor at 1
    with grad > 0, grad != 0) whose |grad| is at least the k-th largest such value,
    k = max(1, ceil((1 - quantile) * dim)); ``quantile=0`` moves every movable coordinate
    equally. The step is sign(grad) on them, scaled so its L1 norm is ``alpha``.
    """
    dim = grad[0].numel() if len(grad) else 0
    k = min(max(1, math.ceil((1 - float(quantile)) * dim - 1e-9)), dim) if dim else 0
    return top_k_sign_step(adv, grad, alpha, torch.full((len(grad),), k, device=grad.device))


def top_k_sign_step(
    adv: torch.Tensor, grad: torch.Tensor, alpha: float | torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """`sparse_ascent_step` with its own count ``k[i]`` (>= 1) of top coordinates per row
    (L1-APGD adapts it per example); not projected."""
    flat_adv, flat_grad = adv.flatten(1), grad.flatten(1)
    if flat_grad.shape[1] == 0:
        return adv.detach().clone()
    movable = (flat_grad != 0) & ~((flat_adv <= 0) & (flat_grad < 0))
    movable &= ~((flat_adv >= 1) & (flat_grad > 0))
    score = torch.where(movable, flat_grad.abs(), torch.zeros_like(flat_grad))
    ranked = score.sort(dim=1, descending=True).values
    rank = (k.to(score.device).long() - 1).clamp(0, score.shape[1] - 1)
    threshold = ranked.gather(1, rank[:, None])
    chosen = movable & (score >= threshold)
    direction = flat_grad.sign() * chosen
    count = chosen.sum(dim=1, keepdim=True).clamp(min=1)
    step = _radius(alpha, flat_grad)[:, None] * direction / count
    return adv.detach() + step.reshape(adv.shape)


def random_start_l1(images: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """A random point of the L1 ball: a Laplace direction (uniform on the L1 sphere) at a radius
    drawn uniformly in [0, eps], then projected onto the ball ∩ [0, 1]."""
    flat = torch.empty_like(images.flatten(1)).exponential_() * (
        torch.randint_like(images.flatten(1), 0, 2) * 2 - 1
    )
    norms = flat.abs().sum(dim=1, keepdim=True).clamp(min=1e-12)
    radius = torch.rand(len(images), 1, dtype=images.dtype, device=images.device)
    delta = flat / norms * radius * _radius(eps, flat)[:, None]
    return project_l1_box(images + delta.reshape(images.shape), images, eps)
