"""Minimum-norm adversarial perturbations and the robust-accuracy-vs-eps curve they imply.

FMN, "Fast Minimum-norm Adversarial Attacks through Adaptive Norm Constraints" (Pintor, Roli,
Brendel & Biggio, NeurIPS 2021) [https://arxiv.org/abs/2102.12827], for the L2 and Linf norms,
inputs in [0, 1]. Each step: normalised gradient step on the logit margin
``z_y - max_{j != y} z_j``, projection onto an Lp ball of radius ``eps`` and onto [0, 1]; ``eps``
shrinks by ``1 - gamma`` while the iterate is adversarial (never above the best norm found),
grows by ``1 + gamma`` when it is not, and until a first adversarial is found is set to a linear
estimate of the distance to the boundary ``|margin| / ||grad||_dual`` (times ``1 + gamma`` here, so
that it steps just past the boundary rather than onto it). Step size and gamma follow cosine
schedules (``alpha``: ``alpha_init`` -> ``alpha_init / 100``; ``gamma``: 0.05 -> 0.001) as in the
paper.

A smallest perturbation ``d_i`` per example gives the whole curve at once: the example is robust
at ``eps`` iff ``d_i > eps``. Combined with the smallest breaking eps of a fixed-eps suite
(elementwise minimum), the curve can only be at or below that suite's curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from robustlab.errors import ConfigError, InputError
from robustlab.models.inference import model_context, model_device
from robustlab.progress import progress

DUAL = {"L2": 2.0, "Linf": 1.0}
ORDER = {"L2": 2.0, "Linf": math.inf}


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    own = logits.gather(1, labels[:, None])[:, 0]
    return own - logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)


def _project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    view = eps.view(-1, *([1] * (delta.ndim - 1)))
    if norm == "Linf":
        return torch.maximum(torch.minimum(delta, view), -view)
    size = delta.flatten(1).norm(dim=1).view_as(view)
    return delta * torch.clamp(view / size.clamp(min=1e-12), max=1.0)


def fmn_batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    norm: str = "L2",
    *,
    steps: int = 100,
    alpha_init: float = 1.0,
    gamma_init: float = 0.05,
    gamma_final: float = 0.001,
) -> torch.Tensor:
    """FMN on one batch (model in eval mode, tensors on its device): the smallest adversarial
    example found per example, or the clean image where none was found."""
    delta = torch.zeros_like(images, requires_grad=True)
    eps = torch.full((len(images),), math.inf, device=images.device)
    best_norm = torch.full_like(eps, math.inf)
    best_adv = images.clone()
    found = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    alpha_final = alpha_init / 100
    shape = (-1, *([1] * (images.ndim - 1)))
    for step in range(steps):
        cosine = (1 + math.cos(math.pi * step / steps)) / 2
        alpha = alpha_final + (alpha_init - alpha_final) * cosine
        gamma = gamma_final + (gamma_init - gamma_final) * cosine
        size = delta.detach().flatten(1).norm(p=ORDER[norm], dim=1)
        margin = _margin(model(images + delta), labels)
        (grad,) = torch.autograd.grad(-margin.sum(), delta)  # ascend: leave the true class
        adversarial = margin.detach() < 0
        better = adversarial & (size < best_norm)
        best_norm = torch.where(better, size, best_norm)
        best_adv[better] = (images + delta.detach())[better]
        found |= adversarial
        to_boundary = margin.detach().abs() / grad.flatten(1).norm(p=DUAL[norm], dim=1).clamp(
            min=1e-12
        )
        # before the first success the paper jumps to the linear estimate of the boundary; the
        # extra (1 + gamma) steps past it (a linear model would otherwise sit on it forever),
        # and the estimate never falls below the last one: where the box clips the step short
        # of the boundary, the estimate from the clipped point can repeat forever, so the
        # ball grows by (1 + gamma) a step instead
        last = torch.where(eps.isinf(), 0.0, eps)  # inf: no estimate yet
        grown = torch.where(found, eps, torch.maximum(size + to_boundary, last)) * (1 + gamma)
        eps = torch.where(adversarial, torch.minimum(eps * (1 - gamma), best_norm), grown)
        direction = grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(shape)
        with torch.no_grad():
            moved = _project(delta + alpha * direction, eps, norm)
            delta.copy_((images + moved).clamp(0.0, 1.0) - images)
    return best_adv


def min_norm_perturbations(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    norm: str = "L2",
    *,
    steps: int = 100,
    batch_size: int = 256,
    alpha_init: float = 1.0,
) -> torch.Tensor:
    """Per example the norm of the smallest adversarial perturbation FMN finds (CPU float64):
    0 where the clean image is already misclassified, ``inf`` where no adversarial was found.

    Every returned norm is re-checked: the perturbed image is misclassified by the model.
    """
    if norm not in ORDER:
        raise ConfigError(f"norm must be one of {', '.join(ORDER)}, got {norm!r}")
    device = model_device(model)
    norms = []
    batches = range(0, len(images), batch_size)
    with model_context(model, "eval"):
        for start in progress(batches, desc=f"FMN {norm}", total=len(batches)):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            adv = fmn_batch(model, x, y, norm, steps=steps, alpha_init=alpha_init)
            with torch.no_grad():
                wrong = model(adv).argmax(1) != y
            size = (adv - x).flatten(1).norm(p=ORDER[norm], dim=1).double()
            norms.append(torch.where(wrong, size, torch.full_like(size, math.inf)).cpu())
    return torch.cat(norms) if norms else torch.zeros(0, dtype=torch.float64)


def combine_min_norms(*per_example: torch.Tensor | None) -> torch.Tensor:
    """Elementwise minimum of per-example smallest breaking norms from several sources (FMN, a
    fixed-eps suite's smallest breaking eps with ``inf`` for never broken); ``None`` is skipped."""
    present = [t.detach().cpu().double() for t in per_example if t is not None]
    if not present:
        raise InputError("combine_min_norms needs at least one tensor")
    if len({t.shape for t in present}) != 1:
        raise InputError(
            f"per-example tensors differ in shape: {[tuple(t.shape) for t in present]}"
        )
    return torch.stack(present).amin(dim=0)


def robust_accuracy_curve(min_norms: torch.Tensor, eps_grid: Iterable[float]) -> dict[float, float]:
    """Robust accuracy at every eps from per-example smallest breaking norms: the share of
    examples whose smallest adversarial perturbation is strictly larger than eps (non-increasing
    in eps by construction)."""
    norms = min_norms.detach().cpu().double()
    if norms.numel() == 0:
        raise InputError("no examples: min_norms is empty")
    return {float(eps): float((norms > eps).double().mean()) for eps in sorted(eps_grid)}


def median_norm(min_norms: torch.Tensor) -> float:
    """The eps at which robust accuracy falls to 50% (the median of the per-example norms,
    misclassified examples counting 0 and unbroken ones infinity)."""
    return float(min_norms.detach().cpu().double().median())
