"""Norm-ball geometry shared by the iterative attacks: steepest-ascent steps and projections.

Every function takes a per-example radius or step size, either a float or a tensor of shape
(N,), so that one batch can hold examples attacked at different eps (the eps-continuation
schedule) or with different step sizes (APGD's per-example step-size halving).
"""

from __future__ import annotations

import torch

from robustlab.attacks import l1

NORMS = ("Linf", "L2", "L1")
# Added to gradient norms before dividing, as torchattacks does.
EPS_DIVISION = 1e-10


def madry_step_size(eps: float, steps: int) -> float:
    """PGD's step size ``2.5 * eps / steps`` (Madry et al. 2018): enough to cross the ball
    2.5 times in ``steps`` steps, so the step scales with the budget instead of staying fixed."""
    return 2.5 * float(eps) / max(int(steps), 1)


def per_row(value: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A float as is, a (N,) tensor reshaped to broadcast over the non-batch dims of ``like``."""
    if isinstance(value, torch.Tensor):
        return value.reshape(-1, *[1] * (like.ndim - 1))
    return float(value)


def row_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example Linf, L2 or L1 norm of a perturbation batch."""
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(len(flat))
    if norm == "L1":
        return flat.abs().sum(dim=1)
    return flat.norm(p=2, dim=1)


def ascent_step(
    adv: torch.Tensor,
    grad: torch.Tensor,
    alpha: float | torch.Tensor,
    norm: str,
    quantile: float = l1.DEFAULT_QUANTILE,
    eps_for_division: float = EPS_DIVISION,
) -> torch.Tensor:
    """``adv`` moved by ``alpha`` along the steepest-ascent direction of ``grad`` in ``norm``
    (sign for Linf, the normalised gradient for L2 (``eps_for_division`` added to its norm),
    the sparse sign step on the top ``1 - quantile`` coordinates for L1); not projected."""
    if norm == "L1":
        return l1.sparse_ascent_step(adv, grad, alpha, quantile)
    alpha = per_row(alpha, adv)
    if norm == "Linf":
        return adv + alpha * grad.sign()
    grad_norms = per_row(row_norms(grad, "L2") + eps_for_division, adv)
    return adv + alpha * grad / grad_norms


def project(
    adv: torch.Tensor, images: torch.Tensor, eps: float | torch.Tensor, norm: str
) -> torch.Tensor:
    """Back into the ``norm`` ball of radius ``eps`` around ``images``, then into [0, 1]
    (torchattacks' order), detached. L1: the exact projection onto the ball ∩ [0, 1]."""
    if norm == "L1":
        return l1.project_l1_box(adv, images, eps)
    delta = adv - images
    if norm == "Linf":
        radius = per_row(eps, adv)
        if isinstance(radius, torch.Tensor):
            delta = torch.maximum(torch.minimum(delta, radius), -radius)
        else:
            delta = torch.clamp(delta, min=-radius, max=radius)
        return torch.clamp(images + delta, min=0, max=1).detach()
    norms = row_norms(delta, "L2")
    # eps / 0 is inf (no scaling needed) but 0 / 0 is nan: both mean "inside the ball".
    factor = (eps / norms).nan_to_num(nan=1.0).clamp(max=1.0)
    return torch.clamp(images + delta * per_row(factor, adv), min=0, max=1).detach()


def random_start(images: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A random point of the ball, clipped to [0, 1], drawn as torchattacks.PGD / PGDL2 draw it
    (same calls in the same order, so seeded runs agree). L1: see `l1.random_start_l1`."""
    if norm == "L1":
        return l1.random_start_l1(images, eps)
    if norm == "Linf":
        adv = images + torch.empty_like(images).uniform_(-eps, eps)
        return torch.clamp(adv, min=0, max=1).detach()
    delta = torch.empty_like(images).normal_()
    n = per_row(row_norms(delta, "L2"), images)
    r = torch.zeros_like(n).uniform_(0, 1)
    delta *= r / n * eps
    return torch.clamp(images + delta, min=0, max=1).detach()
