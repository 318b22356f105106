"""L0 (sparse) robustness: accuracy as a curve over a budget of changed pixels.

The L0 size of a perturbation is the number of changed pixels, counted over spatial positions:
a pixel changed in any of its channels counts once. The catalogue's sparse attacks
(torchattacks' SparseFool, JSMA, OnePixel, through `robustlab.attacks.build_attack`) take
no pixel budget; they either minimise the number of pixels or cap it by their own option. So
each attack runs once per example, and its measured pixel count places it on the curve: an
example is robust at budget ``k`` unless it is misclassified clean, or an attack produced a
misclassified image that changed at most ``k`` pixels. Budget 0 is the clean accuracy, the curve
never increases, and a success counts at every budget from its own pixel count up.

Every attack runs on every clean-correct example (not only on the survivors of the earlier
ones, as the eps-grid worst case does), because the per-example worst case needs each attack's
own pixel count: it is the smallest count among the attacks that fooled the example.

The module sits beside, not inside, ``robustlab.attacks``: it only uses that package's public
``build_attack``/``AttackSpec``, as a user's script would.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robustlab.attacks import AttackSpec, build_attack
from robustlab.errors import ConfigError
from robustlab.inputs import check_batch
from robustlab.models.inference import eval_device, predict
from robustlab.progress import progress_bar

log = logging.getLogger(__name__)

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The catalogue's sparse attacks at their torchattacks defaults (JSMA: at most 10% of the
# input features; OnePixel: one pixel, differential evolution with 10 steps).
DEFAULT_ATTACKS = {
    "sparsefool": AttackSpec("SparseFool"),
    "jsma": AttackSpec("JSMA"),
    "onepixel": AttackSpec("OnePixel"),
}
DEFAULT_BUDGETS = (0, 1, 2, 3, 5, 10, 20, 40, 80)
WORST_CASE = "l0_worst_case"


def changed_pixels(
    images: torch.Tensor, adv_images: torch.Tensor, tol: float = 0.0
) -> torch.Tensor:
    """Per example, the number of spatial positions where some channel moved by more than tol."""
    if images.shape != adv_images.shape or images.ndim != 4:
        raise ValueError(
            f"need two (N, C, H, W) batches of one shape, got {tuple(images.shape)} and "
            f"{tuple(adv_images.shape)}"
        )
    moved = (adv_images.to(images.device) - images).abs() > tol
    return moved.any(dim=1).flatten(1).sum(dim=1)


def accuracy_over_budgets(needed: torch.Tensor, budgets: Sequence[int]) -> tuple[float, ...]:
    """Fraction of examples whose fewest fooling pixels exceed each budget (``needed > k``)."""
    if len(needed) == 0:
        return tuple(0.0 for _ in budgets)
    return tuple(float((needed > k).float().mean()) for k in budgets)


@dataclass
class L0Curve:
    """One attack's (or the worst case's) accuracy per pixel budget and per-example counts.

    ``needed[i]``: the fewest changed pixels of a misclassified image found for example ``i``;
    0 when ``i`` is misclassified clean, ``inf`` when nothing fooled it. ``pixels[i]``: the
    changed pixels of the attack's output (of the fooling image for the worst case); 0 where
    nothing was attacked. ``fooled[i]``: clean-correct and fooled.
    """

    attack: str
    budgets: tuple[int, ...]
    accuracy: tuple[float, ...]
    needed: torch.Tensor
    pixels: torch.Tensor
    fooled: torch.Tensor
    seconds: float

    @property
    def median_pixels(self) -> float | None:
        """Median changed pixels over the fooled examples (None when none was fooled)."""
        counts = self.pixels[self.fooled].float()
        return float(counts.median()) if len(counts) else None


@dataclass
class L0Report:
    """Clean accuracy and one `L0Curve` per attack, plus the per-example worst case."""

    clean_accuracy: float
    n: int
    budgets: tuple[int, ...]
    curves: dict[str, L0Curve]

    def to_results(self) -> dict:
        """results.json fields: ``robust_accuracy[key]`` per budget (keys ``str(k)``, pixels),
        every curve's norm ``"L0"`` in ``robust_accuracy_norm``, the median changed pixels of
        the fooled examples, the examples attacked and each attack's seconds."""
        return {
            "robust_accuracy": {
                key: {str(k): acc for k, acc in zip(c.budgets, c.accuracy, strict=True)}
                for key, c in self.curves.items()
            },
            "robust_accuracy_norm": {key: "L0" for key in self.curves},
            "median_perturbation": {key: c.median_pixels for key, c in self.curves.items()},
            "l0_n_eval": self.n,
            "l0_seconds": {key: c.seconds for key, c in self.curves.items() if key != WORST_CASE},
        }


def _check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    values = tuple(budgets)
    if not values or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in values):
        raise ConfigError(f"pixel budgets must be integers >= 0, got {list(values)}")
    return tuple(sorted(set(values)))


def _as_attack(spec: AttackSpec | AttackFn, model: nn.Module) -> AttackFn:
    if isinstance(spec, AttackSpec):
        return build_attack(spec.name, model, **spec.kwargs)
    return spec


def _attack_all(
    model: nn.Module,
    attack: AttackFn,
    images: torch.Tensor,
    labels: torch.Tensor,
    correct: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    tol: float,
    desc: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(changed pixels, fooled) per example; only clean-correct examples are attacked."""
    pixels = torch.zeros(len(labels), dtype=torch.long)
    fooled = torch.zeros(len(labels), dtype=torch.bool)
    index = correct.nonzero().flatten()
    with progress_bar(desc, total=len(index), unit="img") as bar:
        for chunk in index.split(batch_size):
            x, y = images[chunk].to(device), labels[chunk].to(device)
            adv = attack(x, y).detach().to(device)
            pixels[chunk] = changed_pixels(x, adv, tol).cpu()
            fooled[chunk] = predict(model, adv, batch_size, device) != labels[chunk]
            bar.update(len(chunk))
    return pixels, fooled


def l0_robustness(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: Mapping[str, AttackSpec | AttackFn] | None = None,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    tol: float = 0.0,
) -> L0Report:
    """Accuracy under each sparse attack, and their per-example worst case, per pixel budget.

    ``attacks``: key -> `AttackSpec` (built with ``build_attack``) or any callable
    ``attack(images, labels) -> adv_images``; default: SparseFool, JSMA and OnePixel. ``tol``:
    a channel counts as changed when it moved by more than ``tol`` (0: any change at all).
    """
    budgets = _check_budgets(budgets)
    check_batch(images, labels, model=model)
    if not (isinstance(tol, int | float) and tol >= 0):
        raise ConfigError(f"tol must be a number >= 0, got {tol!r}")
    device = eval_device(model, device)
    labels = labels.cpu()
    correct = predict(model, images, batch_size, device) == labels
    clean_wrong = torch.where(correct, math.inf, 0.0)
    curves: dict[str, L0Curve] = {}
    for key, spec in (DEFAULT_ATTACKS if attacks is None else attacks).items():
        attack = (
            build_attack(spec.name, model, **spec.kwargs) if isinstance(spec, AttackSpec) else spec
        )
        began = time.perf_counter()
        pixels, fooled = _attack_all(
            model,
            attack,
            images,
            labels,
            correct,
            batch_size=batch_size,
            device=device,
            tol=tol,
            desc=f"L0 {key}",
        )
        needed = torch.where(fooled, pixels.float(), clean_wrong)
        curves[key] = L0Curve(
            attack=getattr(spec, "name", key),
            budgets=budgets,
            accuracy=accuracy_over_budgets(needed, budgets),
            needed=needed,
            pixels=pixels,
            fooled=fooled,
            seconds=time.perf_counter() - began,
        )
        log.info("L0 %s: %s", key, dict(zip(budgets, curves[key].accuracy, strict=True)))
    if curves:
        curves[WORST_CASE] = _worst_case(list(curves.values()), budgets)
    clean = float(correct.float().mean()) if len(labels) else 0.0
    return L0Report(clean, len(labels), budgets, curves)


def _worst_case(curves: list[L0Curve], budgets: tuple[int, ...]) -> L0Curve:
    """Per example, the attack that fooled it with the fewest pixels."""
    needed = torch.stack([c.needed for c in curves])
    best, which = needed.min(dim=0)
    pixels = torch.stack([c.pixels for c in curves]).gather(0, which[None])[0]
    fooled = torch.stack([c.fooled for c in curves]).any(dim=0)
    pixels = torch.where(fooled, pixels, 0)
    seconds = sum(c.seconds for c in curves)
    return L0Curve(
        attack="worst_case",
        budgets=budgets,
        accuracy=accuracy_over_budgets(best, budgets),
        needed=best,
        pixels=pixels,
        fooled=fooled,
        seconds=seconds,
    )
