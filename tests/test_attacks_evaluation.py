"""The eps-grid evaluator, the multi-attack report, the Wilson interval and masking checks."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.attacks import FGSM, AttackSpec
from robustlab.evaluation import (
    EpsCurve,
    EpsPoint,
    evaluate_robustness,
    gradient_health,
    gradient_masking_warnings,
    robust_accuracy,
    wilson_interval,
)
from tests.attack_fixtures import TinyCNN, digits, model, trained_tiny_cnn  # noqa: F401


def test_wilson_interval_matches_hand_computation():
    # 80 of 100, z = 1.96: centre = (0.8 + 0.019208) / 1.038416, half = 1.96 * sqrt(0.0016 +
    # 0.00009604) / 1.038416  ->  (0.711, 0.867) to 3 decimals (Wilson 1927; Newcombe 1998).
    lo, hi = wilson_interval(80, 100)
    assert lo == pytest.approx(0.7111, abs=1e-4) and hi == pytest.approx(0.8666, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_eps_grid_agrees_with_attacking_each_eps(model, digits):  # noqa: F811
    images, labels = digits
    grid = [0.2, 0.02, 0.05, 0.1]
    curve = robust_accuracy(
        model, images, labels, lambda e: FGSM(model, eps=e), grid, batch_size=64
    )
    assert curve.eps == sorted(grid)
    with torch.no_grad():
        alive = model(images).argmax(1) == labels
    assert curve.clean_accuracy == pytest.approx(alive.float().mean().item())
    for point in curve.points:
        attacked_before = int(alive.sum())
        with torch.no_grad():
            survives = model(FGSM(model, eps=point.eps)(images, labels)).argmax(1) == labels
        alive = alive & survives  # fooled at a smaller eps stays fooled
        # FGSM is deterministic; batch composition may move one borderline example at most.
        assert abs(point.accuracy - alive.float().mean().item()) <= 1 / len(labels) + 1e-9
        assert point.grad_evals == pytest.approx(attacked_before, abs=1)
        assert point.n == len(labels) and point.ci[0] <= point.accuracy <= point.ci[1]
    accuracies = curve.accuracy
    assert all(b <= a for a, b in zip(accuracies, accuracies[1:], strict=False))
    assert accuracies[0] > accuracies[-1]


def test_evaluate_robustness_results(model, digits):  # noqa: F811
    images, labels = digits[0][:120], digits[1][:120]
    attacks = {
        "fgsm": AttackSpec("fgsm"),
        "pgd": AttackSpec("pgd", {"steps": 5}),
        "pgd_margin": AttackSpec("pgd", {"steps": 5, "loss": "margin"}),
        "cw": AttackSpec("CW", {"steps": 10, "lr": 0.05}),
    }
    report = evaluate_robustness(
        model, images, labels, attacks, [0.05, 0.1], large_eps=0.5, suite="none"
    )
    results = report.to_results()
    assert set(results["robust_accuracy"]) == set(attacks) | {"worst_case"}
    # without a suite, the worst case is the per-example worst over the Linf curves
    for eps in ("0.05", "0.1"):
        worst = results["robust_accuracy"]["worst_case"][eps]
        assert worst <= min(results["robust_accuracy"][k][eps] for k in ("fgsm", "pgd"))
    assert results["worst_case"]["suite"] == "none"
    assert set(results["robust_accuracy"]["pgd"]) == {"0.05", "0.1"}
    assert set(results["robust_accuracy"]["cw"]) == {"inf"}
    assert results["median_perturbation"]["cw"] > 0
    for eps in ("0.05", "0.1"):
        assert results["robust_accuracy"]["pgd"][eps] <= results["robust_accuracy"]["fgsm"][eps]
        lo, hi = results["robust_accuracy_ci"]["pgd"][eps]
        assert lo <= results["robust_accuracy"]["pgd"][eps] <= hi
        assert isinstance(results["attack_cost"]["pgd"][eps]["grad_evals"], int)
    assert results["robust_accuracy"]["pgd"]["0.1"] < results["clean_accuracy"]
    assert results["large_eps_accuracy"]["0.5"] < 0.1
    assert results["warnings"] == []  # a healthy, undefended model shows no masking symptom


def _curve(attack, accuracies, n=500, **params):
    points = [
        EpsPoint(eps, acc, wilson_interval(round(acc * n), n), 0, 0.0, n)
        for eps, acc in accuracies.items()
    ]
    return EpsCurve(attack, 0.95, n, points, "Linf", params)


def _warnings(curves, large_eps=None, health=None):
    return gradient_masking_warnings(curves, large_eps, health)


def test_masking_checks_fire_on_symptoms():
    rising = {"pgd": _curve("pgd", {0.05: 0.3, 0.1: 0.6})}
    assert any("rises" in w for w in _warnings(rising))
    weaker = {"fgsm": _curve("fgsm", {0.1: 0.2}), "pgd": _curve("pgd", {0.1: 0.5}, loss="ce")}
    assert any("single-step" in w for w in _warnings(weaker))
    margin = {
        "pgd": _curve("pgd", {0.1: 0.6}, loss="ce"),
        "pgd_margin": _curve("pgd", {0.1: 0.1}, loss="margin"),
    }
    assert any("margin" in w for w in _warnings(margin))
    large = {"pgd": _curve("pgd", {0.1: 0.2})}
    assert any("eps=0.5" in w for w in _warnings(large, large_eps=(0.5, 0.4)))
    assert _warnings(large, large_eps=(0.5, 0.05)) == []


def test_masking_checks_silent_on_healthy_curves():
    healthy = {
        "fgsm": _curve("fgsm", {0.05: 0.5, 0.1: 0.3}),
        "pgd": _curve("pgd", {0.05: 0.4, 0.1: 0.1}, loss="ce"),
        "pgd_margin": _curve("pgd", {0.05: 0.39, 0.1: 0.1}, loss="margin"),
        "cw": EpsCurve("cw", 0.95, 500, [EpsPoint(math.inf, 0.0, (0.0, 0.01), 0, 0.0, 500)]),
    }
    assert _warnings(healthy, large_eps=(0.5, 0.0)) == []
    noisy = {"pgd": _curve("pgd", {0.05: 0.30, 0.1: 0.32}, n=100)}
    assert _warnings(noisy) == []


class _Sign(torch.nn.Module):
    def forward(self, x):
        return torch.sign(x)


class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _NanLayer(torch.nn.Module):
    def forward(self, x):
        return _NanGrad.apply(x)


def test_gradient_health_detects_dead_and_broken_gradients(model, digits):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    healthy = gradient_health(model, images, labels)
    assert healthy.zero_fraction == 0 and healthy.nonfinite_fraction == 0 and healthy.n == 64
    dead = gradient_health(TinyCNN(activation=_Sign()).eval(), images, labels)
    assert dead.zero_fraction == 1.0
    broken = gradient_health(TinyCNN(activation=_NanLayer()).eval(), images, labels)
    assert broken.nonfinite_fraction == 1.0
    assert any("100.0% all-zero" in w for w in _warnings({}, health=dead))
    assert any("100.0% non-finite" in w for w in _warnings({}, health=broken))
    assert _warnings({}, health=healthy) == []


def test_evaluator_accepts_plain_torchattacks(model, digits):  # noqa: F811
    import torchattacks

    images, labels = digits
    grid = [0.05, 0.1]
    theirs = robust_accuracy(model, images, labels, lambda e: torchattacks.FGSM(model, eps=e), grid)
    ours = robust_accuracy(model, images, labels, lambda e: FGSM(model, eps=e), grid)
    for a, b in zip(theirs.points, ours.points, strict=True):
        assert abs(a.accuracy - b.accuracy) <= 1 / len(labels) + 1e-9
        assert a.grad_evals == pytest.approx(b.grad_evals, abs=1)  # counted by forward hook
