"""The masking symptoms read off attack curves, as typed checks (Athalye, Carlini & Wagner 2018;
Carlini et al. 2019): accuracy must not rise with eps, iterative attacks must be at least as
strong as single-step ones, and the loss used should not matter much.

Each function returns a [`Check`][robustlab.evaluation.checks.Check]; a symptom is a "warn" only
when the two accuracies lie outside each other's 95% interval (more than test-set noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from robustlab.evaluation.checks import PASS, WARN, Check
from robustlab.evaluation.grid import EpsCurve, EpsPoint

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
MARGIN_GAP = 0.05  # cross-entropy must leave this much more accuracy than the margin loss


def _clearly_above(high: EpsPoint, low: EpsPoint, min_gap: float = 0.0) -> bool:
    # Each estimate lies outside the other's 95% interval: more than test-set noise.
    gap = high.accuracy - low.accuracy
    return gap > min_gap and high.accuracy > low.ci[1] and low.accuracy < high.ci[0]


def _finite_points(points: Iterable[EpsPoint]) -> list[EpsPoint]:
    return sorted((p for p in points if p.eps != float("inf")), key=lambda p: p.eps)


def rising_accuracy(curves: Curves) -> Check:
    """Whether some curve's accuracy clearly rises with eps (a larger budget never helps)."""
    for key, curve in curves.items():
        points = _finite_points(curve.points)
        for i, small in enumerate(points):
            large = next((p for p in points[i + 1 :] if _clearly_above(p, small)), None)
            if large is not None:
                return Check(
                    WARN,
                    f"{key} accuracy rises from {small.accuracy:.3f} at eps={small.eps:g} to "
                    f"{large.accuracy:.3f} at eps={large.eps:g}; a larger budget can never help "
                    "a model, so the attack is failing to follow its gradient",
                )
    return Check(PASS, f"no curve's accuracy rises with eps ({len(curves)} curves)")


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


def iterative_weaker(curves: Curves) -> Check:
    """Whether an iterative attack clearly leaves more accuracy than a single-step one."""
    pairs = _paired(curves, SINGLE_STEP, ITERATIVE)
    for single, iterative, sp, ip in pairs:
        if _clearly_above(ip, sp):
            return Check(
                WARN,
                f"iterative {iterative} leaves accuracy {ip.accuracy:.3f} at eps={ip.eps:g}, "
                f"above single-step {single} ({sp.accuracy:.3f}); iterative attacks should be "
                "at least as strong, so the loss surface is likely obfuscated",
            )
    if not pairs:
        return Check(PASS, "no single-step and iterative curves to compare")
    return Check(PASS, f"iterative attacks are at least as strong ({len(pairs)} pairs)")


def margin_stronger(curves: Curves, min_gap: float = MARGIN_GAP) -> Check:
    """Whether the logit-margin loss clearly beats cross-entropy (a saturated softmax)."""
    ce = sorted(k for k, c in curves.items() if c.params.get("loss", "ce") == "ce")
    margin = sorted(k for k, c in curves.items() if c.params.get("loss") == "margin")
    compared = 0
    for ce_key in ce:
        for margin_key in margin:
            ce_curve, m_curve = curves[ce_key], curves[margin_key]
            if ce_curve.attack != m_curve.attack or ce_curve.norm != m_curve.norm:
                continue
            by_eps = {p.eps: p for p in _finite_points(m_curve.points)}
            for point in _finite_points(ce_curve.points):
                other = by_eps.get(point.eps)
                compared += other is not None
                if other is not None and _clearly_above(point, other, min_gap):
                    return Check(
                        WARN,
                        f"{ce_key} (cross-entropy) leaves accuracy {point.accuracy:.3f} at "
                        f"eps={point.eps:g} but {margin_key} (logit margin) only "
                        f"{other.accuracy:.3f}; saturated softmax gradients (e.g. defensive "
                        "distillation) hide the model's weakness from cross-entropy attacks",
                    )
    if not compared:
        return Check(PASS, "no cross-entropy and margin curves of one attack to compare")
    return Check(PASS, f"cross-entropy and margin losses agree ({compared} points compared)")


CURVE_CHECKS = {
    "rising_accuracy": rising_accuracy,
    "iterative_weaker": iterative_weaker,
    "margin_stronger": margin_stronger,
}


def curve_checks(curves: Curves) -> dict[str, Check]:
    """Every curve check on ``curves`` (attack key -> curve; their ``attack``, ``norm`` and
    ``params["loss"]`` pair them up)."""
    return {name: check(curves) for name, check in CURVE_CHECKS.items()}


__all__ = [
    "CURVE_CHECKS",
    "ITERATIVE",
    "SINGLE_STEP",
    "curve_checks",
    "iterative_weaker",
    "margin_stronger",
    "rising_accuracy",
]
