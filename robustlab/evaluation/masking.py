"""Gradient-masking checks: signs that an evaluation over-states robustness.

Following Athalye, Carlini & Wagner (2018), 'Obfuscated Gradients Give a False Sense of
Security', and Carlini et al. (2019), 'On Evaluating Adversarial Robustness': accuracy should
fall as eps grows and reach ~0 at a huge eps, iterative attacks should beat single-step ones,
input gradients should be informative, and the loss used should not matter much.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.pgd import PGD
from robustlab.evaluation.grid import EpsCurve, EpsPoint, robust_accuracy
from robustlab.inputs import check_images
from robustlab.models.runtime import model_context, model_device

Curves = Mapping[str, EpsCurve]

SINGLE_STEP = {"fgsm", "ffgsm", "rfgsm"}
ITERATIVE = {
    "pgd",
    "bim",
    "mifgsm",
    "apgd",
    "apgd_t",
    "apgdt",
    "torchattacks.apgd",
    "autoattack",
    "eotpgd",
    "upgd",
    "nifgsm",
}


@dataclass
class GradientHealth:
    """Fractions of examples whose input gradient is all zero / has a non-finite entry."""

    zero_fraction: float
    nonfinite_fraction: float
    n: int


def gradient_health(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> GradientHealth:
    """Check that cross-entropy input gradients carry a signal for every example.

    ``images`` must be valid inputs: a NaN or inf pixel is an input error (InputError naming the
    rows), never counted as the model's non-finite gradient."""
    check_images(images)
    device = model_device(model)
    zero = nonfinite = 0
    with model_context(model, "eval"), torch.enable_grad():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].detach().to(device).requires_grad_(True)
            y = labels[start : start + batch_size].to(device)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            grad = torch.autograd.grad(loss, x, allow_unused=True)[0]
            flat = torch.zeros_like(x).flatten(1) if grad is None else grad.flatten(1)
            finite = torch.isfinite(flat).all(dim=1)
            nonfinite += int((~finite).sum())
            zero += int((finite & (flat == 0).all(dim=1)).sum())
    n = len(images)
    return GradientHealth(zero / max(n, 1), nonfinite / max(n, 1), n)


def large_eps_check(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = 0.5,
    steps: int = 20,
    max_examples: int = 256,
    batch_size: int = 256,
    judge: nn.Module | None = None,
) -> float:
    """Accuracy under Linf PGD at a huge eps (0.5 lets any pixel reach any value); ~0 if sound.
    ``judge``: the model whose predictions count (e.g. a majority vote over a randomized
    ``model``'s draws); the attack crafts on ``model``."""
    images, labels = images[:max_examples], labels[:max_examples]

    def factory(e: float) -> PGD:
        return PGD(model, eps=e, alpha=madry_step_size(e, steps), steps=steps)

    curve = robust_accuracy(
        judge or model, images, labels, factory, [eps], batch_size, name="large-eps PGD"
    )
    return curve.points[0].accuracy


def _clearly_above(high: EpsPoint, low: EpsPoint, min_gap: float = 0.0) -> bool:
    # Each estimate lies outside the other's 95% interval: more than test-set noise.
    gap = high.accuracy - low.accuracy
    return gap > min_gap and high.accuracy > low.ci[1] and low.accuracy < high.ci[0]


def _finite_points(points: Iterable[EpsPoint]) -> list[EpsPoint]:
    return sorted((p for p in points if p.eps != float("inf")), key=lambda p: p.eps)


def _rising_accuracy(curves: Curves) -> list[str]:
    warnings = []
    for key, curve in curves.items():
        points = _finite_points(curve.points)
        for i, small in enumerate(points):
            large = next((p for p in points[i + 1 :] if _clearly_above(p, small)), None)
            if large is not None:
                warnings.append(
                    f"gradient masking suspected: {key} accuracy rises from {small.accuracy:.3f} "
                    f"at eps={small.eps:g} to {large.accuracy:.3f} at eps={large.eps:g}; a larger "
                    "budget can never help a model, so the attack is failing to follow its gradient"
                )
                break
    return warnings


def _paired(curves: Curves, weak: set[str], strong: set[str]) -> list[tuple]:
    """(weak key, strong key, weak point, strong point) at shared eps of same-norm curves."""
    pairs = []
    for wkey, wcurve in curves.items():
        for skey, scurve in curves.items():
            if wkey == skey or wcurve.norm != scurve.norm:
                continue
            if wcurve.attack.lower() in weak and scurve.attack.lower() in strong:
                by_eps = {p.eps: p for p in _finite_points(scurve.points)}
                pairs.extend(
                    (wkey, skey, p, by_eps[p.eps])
                    for p in _finite_points(wcurve.points)
                    if p.eps in by_eps
                )
    return pairs


def _iterative_weaker(curves: Curves) -> list[str]:
    warnings = []
    for single, iterative, sp, ip in _paired(curves, SINGLE_STEP, ITERATIVE):
        if _clearly_above(ip, sp):
            warnings.append(
                f"gradient masking suspected: iterative {iterative} leaves accuracy "
                f"{ip.accuracy:.3f} at eps={ip.eps:g}, above single-step {single} "
                f"({sp.accuracy:.3f}); iterative attacks should be at least as strong, "
                "so the loss surface is likely obfuscated"
            )
            break
    return warnings


def _margin_much_stronger(curves: Curves, min_gap: float) -> list[str]:
    ce = {k for k, c in curves.items() if c.params.get("loss", "ce") == "ce"}
    margin = {k for k, c in curves.items() if c.params.get("loss") == "margin"}
    for ce_key in sorted(ce):
        for margin_key in sorted(margin):
            ce_curve, m_curve = curves[ce_key], curves[margin_key]
            if ce_curve.attack != m_curve.attack or ce_curve.norm != m_curve.norm:
                continue
            by_eps = {p.eps: p for p in _finite_points(m_curve.points)}
            for point in _finite_points(ce_curve.points):
                other = by_eps.get(point.eps)
                if other is not None and _clearly_above(point, other, min_gap):
                    return [
                        f"gradient masking suspected: {ce_key} (cross-entropy) leaves accuracy "
                        f"{point.accuracy:.3f} at eps={point.eps:g} but {margin_key} "
                        f"(logit margin) only {other.accuracy:.3f}; saturated softmax gradients "
                        "(e.g. defensive distillation) hide the model's weakness from "
                        "cross-entropy attacks"
                    ]
    return []


def _health_warnings(health: GradientHealth | None, zero_threshold: float) -> list[str]:
    warnings = []
    if health is not None and health.zero_fraction > zero_threshold:
        warnings.append(
            f"gradient masking suspected: {health.zero_fraction:.1%} of examples have an all-zero "
            "input gradient, so gradient attacks cannot move them (shattered/saturated gradients)"
        )
    if health is not None and health.nonfinite_fraction > 0:
        warnings.append(
            f"gradient masking suspected: {health.nonfinite_fraction:.1%} of valid (finite) "
            "examples have NaN/inf input gradients; attack results on them are meaningless"
        )
    return warnings


def gradient_masking_warnings(
    curves: Mapping[str, EpsCurve],
    large_eps: tuple[float, float] | None = None,
    health: GradientHealth | None = None,
    large_eps_threshold: float = 0.1,
    zero_gradient_threshold: float = 0.05,
    margin_gap: float = 0.05,
) -> list[str]:
    """Plain-language warnings for every gradient-masking symptom found.

    ``curves``: attack key -> :class:`EpsCurve` (its ``attack``, ``norm`` and ``params["loss"]``
    pair the curves up); ``large_eps``: ``(eps, accuracy)`` of :func:`large_eps_check`;
    ``health``: :func:`gradient_health`'s result. Missing diagnostics are skipped.
    """
    warnings = _rising_accuracy(curves) + _iterative_weaker(curves)
    warnings += _margin_much_stronger(curves, margin_gap)
    if large_eps is not None and large_eps[1] > large_eps_threshold:
        eps, acc = large_eps
        warnings.append(
            f"gradient masking suspected: accuracy is still {acc:.3f} under PGD at eps={eps:g}, "
            "where an unbroken attack should reach ~0 (Carlini et al. 2019)"
        )
    return warnings + _health_warnings(health, zero_gradient_threshold)
