"""Evaluate a model against several attacks over an eps grid and summarise for results.json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from robustlab.attacks.catalogue import attack_norm, attack_options, build_attack, takes_eps
from robustlab.attacks.evaluation import (
    EpsCurve,
    minimal_perturbation_point,
    robust_accuracy,
)
from robustlab.attacks.masking import (
    GradientHealth,
    gradient_health,
    gradient_masking_warnings,
    large_eps_check,
)
from robustlab.errors import ConfigError
from robustlab.models.runtime import eval_device, predict

log = logging.getLogger(__name__)


@dataclass
class AttackSpec:
    """An attack by name (see ``list_attacks``) with its options.

    ``eps``: the attack's own grid (e.g. L2 radii), else the evaluation's grid. For attacks
    with a step size ``alpha`` and ``steps``, ``kwargs["step_size"]`` sets ``alpha`` as a
    fraction of eps; without either, ``alpha = 2.5 * eps / steps`` (Madry et al.) so the step
    scales with the budget instead of staying at a fixed 2/255.
    """

    name: str
    kwargs: dict = field(default_factory=dict)
    eps: Sequence[float] | None = None


def attack_factory(spec: AttackSpec, model: nn.Module) -> Callable[[float], object]:
    """``eps -> attack`` for a spec, checking its options once up front."""
    kwargs = dict(spec.kwargs)
    step_size = kwargs.pop("step_size", None)
    options = attack_options(spec.name)
    if "eps" in kwargs:
        raise ConfigError(f"attack {spec.name!r}: give eps through the eps grid, not its options")
    if step_size is not None and "alpha" not in options:
        raise ConfigError(f"attack {spec.name!r} has no step size; remove step_size")

    def make(eps: float) -> object:
        options_now = dict(kwargs)
        if "alpha" in options and "alpha" not in options_now and "steps" in options:
            steps = max(int(options_now.get("steps", options["steps"])), 1)
            fraction = step_size if step_size is not None else 2.5 / steps
            options_now["alpha"] = fraction * eps
        return build_attack(spec.name, model, eps=eps, **options_now)

    make(0.0)  # fail on a bad option before any time is spent
    return make


@dataclass
class RobustnessReport:
    """Clean accuracy, one curve per attack, masking diagnostics and warnings."""

    clean_accuracy: float
    n: int
    curves: dict[str, EpsCurve]
    gradient_health: GradientHealth | None = None
    large_eps: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_results(self) -> dict:
        """The results.json fields; eps keys are ``repr(float(eps))`` (``"inf"`` without eps)."""
        accuracy, ci, cost, medians = {}, {}, {}, {}
        schedules = {key: curve.schedule for key, curve in self.curves.items()}
        for key, curve in self.curves.items():
            accuracy[key] = {repr(p.eps): p.accuracy for p in curve.points}
            ci[key] = {repr(p.eps): [p.ci[0], p.ci[1]] for p in curve.points}
            cost[key] = {
                repr(p.eps): {"grad_evals": p.grad_evals, "seconds": p.seconds}
                for p in curve.points
            }
            for point in curve.points:
                if point.eps == float("inf"):
                    medians[key] = point.median_norm
        results = {
            "clean_accuracy": self.clean_accuracy,
            "n_eval": self.n,
            "robust_accuracy": accuracy,
            "robust_accuracy_ci": ci,
            "attack_cost": cost,
            "attack_schedule": schedules,
            "warnings": list(self.warnings),
        }
        if medians:
            results["median_perturbation"] = medians
        if self.gradient_health is not None:
            results["gradient_health"] = {
                "zero_fraction": self.gradient_health.zero_fraction,
                "nonfinite_fraction": self.gradient_health.nonfinite_fraction,
            }
        if self.large_eps is not None:
            results["large_eps_accuracy"] = {repr(float(self.large_eps[0])): self.large_eps[1]}
        return results


def evaluate_robustness(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: dict[str, AttackSpec],
    eps_grid: Sequence[float],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    large_eps: float | None = None,
    check_gradients: bool = True,
    schedule: str = "continuation",
    continuation_steps: int | None = None,
) -> RobustnessReport:
    """Robust accuracy of ``model`` under every attack in ``attacks`` over ``eps_grid``.

    Attacks without an eps (CW, DeepFool) run once and are reported at eps = inf with their
    median perturbation norm. ``schedule``/``continuation_steps``: how PGD covers the eps grid
    (see :func:`robust_accuracy`). ``large_eps`` adds a PGD sanity run at that Linf radius; the
    gradient-masking checks run last and fill ``report.warnings``.
    """
    device = eval_device(model, device)
    labels = labels.cpu()
    correct = predict(model, images, batch_size, device) == labels
    clean = float(correct.float().mean()) if len(labels) else 0.0
    curves = {}
    for key, spec in attacks.items():
        norm = attack_norm(spec.name, spec.kwargs)
        if takes_eps(spec.name):
            grid = spec.eps if spec.eps is not None else eps_grid
            factory = attack_factory(spec, model)
            curve = robust_accuracy(
                model,
                images,
                labels,
                factory,
                grid,
                batch_size,
                device,
                key,
                correct,
                schedule=schedule,
                continuation_steps=continuation_steps,
            )
        else:
            attack = build_attack(spec.name, model, **spec.kwargs)
            point = minimal_perturbation_point(
                model, attack, images, labels, correct, batch_size, device, key
            )
            curve = EpsCurve(spec.name, clean, len(labels), [point], schedule="single run")
        curve.attack, curve.norm, curve.params = spec.name.lower(), norm, dict(spec.kwargs)
        curves[key] = curve
        log.info("%s: %s", key, {p.eps: round(p.accuracy, 4) for p in curve.points})
    report = RobustnessReport(clean, len(labels), curves)
    if check_gradients:
        report.gradient_health = gradient_health(model, images[:batch_size], labels[:batch_size])
    if large_eps is not None:
        report.large_eps = (float(large_eps), large_eps_check(model, images, labels, eps=large_eps))
    report.warnings = gradient_masking_warnings(report)
    for warning in report.warnings:
        log.warning(warning)
    return report
