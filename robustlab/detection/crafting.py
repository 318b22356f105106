"""Adversarial and noisy examples for detection: only label-flipping attacks count.

Every split is reduced to the examples the model classifies correctly; an attack's positives
are those of them whose label flips, noisy negatives those whose label survives the noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from robustlab.models.inference import model_device, predict
from robustlab.progress import progress

logger = logging.getLogger(__name__)

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Crafted:
    """One split under one attack: the successful adversarial examples and the accuracy."""

    positives: torch.Tensor
    robust_accuracy: float


@dataclass
class Split:
    """Clean examples the model gets right, and every attack's successful examples."""

    clean: torch.Tensor
    labels: torch.Tensor
    total: int
    attacked: dict[Hashable, Crafted]


def run_attack(
    model: nn.Module,
    attack: AttackFn,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
) -> torch.Tensor:
    """``attack`` applied batch by batch on the model's device; adversarial images on CPU."""
    device = model_device(model)
    out = []
    for start in progress(range(0, len(images), batch_size), desc="attack"):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        out.append(attack(x, y).detach().cpu())
    return torch.cat(out)


def judge(
    model: nn.Module, adv: torch.Tensor, labels: torch.Tensor, *, total: int, batch_size: int
) -> Crafted:
    """Keep the adversarial examples whose label flipped; accuracy over ``total`` examples."""
    still_correct = predict(model, adv, batch_size) == labels
    return Crafted(adv[~still_correct], float(still_correct.sum()) / max(total, 1))


def craft(
    model: nn.Module,
    attack: AttackFn,
    clean: torch.Tensor,
    labels: torch.Tensor,
    *,
    total: int,
    batch_size: int,
) -> Crafted:
    """Attack the correctly classified examples; keep those whose label flips."""
    adv = run_attack(model, attack, clean, labels, batch_size=batch_size)
    return judge(model, adv, labels, total=total, batch_size=batch_size)


def craft_split(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: Mapping[Hashable, AttackFn],
    *,
    batch_size: int,
    name: str,
    given: Mapping[Hashable, torch.Tensor] | None = None,
) -> Split:
    """The correct clean examples of a split and, per attack, the ones it flips.

    ``given[key]``: adversarial images already crafted for every row of ``images`` (e.g. by
    the robustness evaluation); the attack is then not run again.
    """
    images, labels = images.detach().cpu(), labels.detach().cpu().long()
    correct = predict(model, images, batch_size) == labels
    clean, clean_labels = images[correct], labels[correct]
    attacked = {}
    for key, attack in attacks.items():
        if given and key in given:
            adv = given[key].detach().cpu()[correct]
            attacked[key] = judge(
                model, adv, clean_labels, total=len(images), batch_size=batch_size
            )
        else:
            attacked[key] = craft(
                model, attack, clean, clean_labels, total=len(images), batch_size=batch_size
            )
        flipped = len(attacked[key].positives)
        logger.info("%s %s: %d of %d correct examples flipped", name, key, flipped, len(clean))
    return Split(clean, clean_labels, len(images), attacked)


def noisy_negatives(
    model: nn.Module,
    clean: torch.Tensor,
    labels: torch.Tensor,
    *,
    std: float,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """Gaussian-noise copies of clean examples that the model still classifies correctly."""
    if std <= 0 or len(clean) == 0:
        return clean[:0]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    noisy = (clean + std * noise).clamp(0.0, 1.0)
    return noisy[predict(model, noisy, batch_size) == labels]
