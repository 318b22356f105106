"""Minimum-norm perturbations: FMN against exact distances of a linear model, the curve against
a fixed-eps suite, and the certificate <= attack sandwich."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.attacks import PGD
from robustlab.certify import (
    combine_min_norms,
    lipschitz_bound,
    margin_certificate,
    median_norm,
    min_norm_perturbations,
    robust_accuracy_curve,
)
from tests.certify_fixtures import (  # noqa: F401 (autouse fixture)
    digits_test,
    linear_classifier,
    linear_distance,
    one_thread,
    trained_small_cnn,
)


@pytest.mark.parametrize(("norm", "dual"), [("L2", 2.0), ("Linf", 1.0)])
def test_fmn_finds_the_exact_linear_distance(norm, dual):
    # small weights, images mid-grey: the nearest boundary point lies inside [0, 1]
    torch.manual_seed(0)
    weight, bias = torch.randn(5, 64), torch.zeros(5)
    model = linear_classifier(weight, bias)
    x = 0.5 + 0.02 * torch.randn(40, 1, 8, 8)
    labels = model(x).argmax(1)
    exact = linear_distance(weight, bias, x, dual).double()
    found = min_norm_perturbations(model, x, labels, norm, steps=200)
    assert (found >= exact * (1 - 1e-4)).all()  # nothing can beat the exact distance
    assert (found <= exact * 1.05).float().mean() >= 0.9  # and FMN gets close to it


@pytest.mark.parametrize("norm", ["L2", "Linf"])
def test_fmn_reaches_a_boundary_that_the_box_puts_out_of_linear_reach(norm):
    # margin = 10 x_a + x_b - 0.2 with x_a at the box floor: the gradient points mostly out of
    # the box, so the linear estimate of the boundary from every clipped iterate falls short
    # (FMN stalled there once); only x_b can move, by exactly the margin x_b - 0.2
    model = linear_classifier(torch.tensor([[10.0, 1.0], [0.0, 0.0]]), torch.tensor([-0.2, 0.0]))
    x_b = torch.linspace(0.4, 0.9, 6)
    images = torch.stack([torch.zeros(6), x_b], dim=1).reshape(6, 1, 1, 2)
    found = min_norm_perturbations(model, images, torch.zeros(6, dtype=torch.long), norm)
    assert torch.allclose(found, (x_b - 0.2).double(), rtol=1e-3)


def suite_smallest_eps(model, images, labels, grid) -> torch.Tensor:
    """Per example the smallest eps of ``grid`` at which Linf PGD-20 breaks it (inf: never)."""
    smallest = torch.full((len(images),), math.inf, dtype=torch.float64)
    smallest[model(images).argmax(1) != labels] = 0.0
    for eps in grid:
        alive = torch.isinf(smallest)
        if not alive.any():
            break
        result = PGD(model, eps=eps, alpha=eps / 4, steps=20).run(images[alive], labels[alive])
        index = torch.nonzero(alive)[:, 0][result.success.cpu()]
        smallest[index] = eps
    return smallest


def test_min_norm_curve_is_monotone_and_below_the_fixed_eps_curve():
    model = trained_small_cnn()
    images, labels = digits_test(64)
    grid = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3]
    suite = suite_smallest_eps(model, images, labels, grid)
    found = min_norm_perturbations(model, images, labels, "Linf", steps=60)
    combined = combine_min_norms(found, suite)
    fine = [0.0125 * i for i in range(25)]
    curve = robust_accuracy_curve(combined, fine)
    values = [curve[e] for e in sorted(curve)]
    assert values == sorted(values, reverse=True)
    suite_curve = robust_accuracy_curve(suite, grid)
    assert all(robust_accuracy_curve(combined, [e])[e] <= suite_curve[e] for e in grid)
    # FMN alone is a real attack: it breaks most examples below the largest grid eps
    assert (found <= 0.3).double().mean() >= 0.8
    assert median_norm(combined) == pytest.approx(float(combined.median()))


def test_certificate_below_attack_on_trained_model():
    model = trained_small_cnn()
    images, labels = digits_test(32)
    found = min_norm_perturbations(model, images, labels, "L2", steps=60)
    radii = margin_certificate(model, images, lipschitz_bound(model, (1, 8, 8)).bound, labels)
    assert (radii <= found).all()
    assert (found[radii > 0] > 0).all() and torch.isfinite(found).double().mean() > 0.9


def test_combine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        combine_min_norms(torch.zeros(3), torch.zeros(4))
