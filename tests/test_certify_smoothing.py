"""Randomized smoothing: closed form on a linear model, Clopper-Pearson against scipy,
abstentions, and no certificate contradicted by an attack."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import binomtest, norm

from robustlab.attacks import PGD
from robustlab.certify import ABSTAIN, Smooth, clopper_pearson_lower
from robustlab.certify.summary import certified_curve
from tests.certify_fixtures import (  # noqa: F401 (autouse fixture)
    digits_test,
    linear_classifier,
    one_thread,
    trained_small_cnn,
)


def test_clopper_pearson_matches_scipy_exact_interval():
    n, alpha = 500, 0.001
    ks = torch.tensor([0, 1, 250, 499, 500])
    low = clopper_pearson_lower(ks, n, alpha)
    for k, value in zip(ks.tolist(), low.tolist(), strict=True):
        ref = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
        assert value == pytest.approx(ref, abs=1e-12)


def test_linear_certificate_matches_closed_form():
    # binary linear classifier: logit_1 - logit_0 = w.x + b; under N(0, s^2 I) noise
    # p_A = Phi(|m| / (s ||w||)), so the exact radius s * Phi^-1(p_A) is |m| / ||w||
    torch.manual_seed(0)
    w = torch.randn(16)
    weight, sigma, n = torch.stack([torch.zeros(16), w]), 0.5, 20_000
    margins = torch.tensor([0.4, 1.0, -1.6, 2.5]) * sigma * w.norm()  # p_A 0.66 .. 0.994
    x = torch.full((4, 16), 0.5)
    bias = margins - x @ w  # so that w.x + b = margins
    models = [linear_classifier(weight, torch.tensor([0.0, float(b)])) for b in bias]
    for i, model in enumerate(models):
        smooth = Smooth(model, num_classes=2, sigma=sigma, seed=i)
        cls, radius = smooth.certify(x[i : i + 1].view(1, 1, 4, 4), 100, n, alpha=0.001)
        exact = float(margins[i].abs() / w.norm())
        p_a = norm.cdf(exact / sigma)
        assert int(cls) == int(margins[i] > 0)
        # the lower confidence bound costs about 3.1 standard errors of p_A
        slack = sigma * 4.0 * (p_a * (1 - p_a) / n) ** 0.5 / norm.pdf(norm.ppf(p_a)) + 1e-3
        assert exact - slack <= float(radius) <= exact


def test_boundary_point_abstains_and_is_counted():
    weight = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    model = linear_classifier(weight, torch.zeros(2))  # boundary: x0 == x1
    x = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).view(2, 1, 1, 2)
    smooth = Smooth(model, num_classes=2, sigma=0.25, seed=0)
    classes, radii = smooth.certify(x, 100, 2000, alpha=0.001)
    assert classes.tolist() == [ABSTAIN, 1] and radii[0] == 0 and radii[1] > 0
    assert smooth.predict(x, 2000, alpha=0.001).tolist() == [ABSTAIN, 1]
    assert (classes == ABSTAIN).sum() == 1


def test_certified_accuracy_curve_and_clean_accuracy():
    model = trained_small_cnn()
    images, labels = digits_test(60)
    smooth = Smooth(model, 10, sigma=0.1, seed=0)
    classes, radii = smooth.certify(images, 50, 400, alpha=0.001, batch_size=4000)
    curve = certified_curve(classes == labels, radii, [0.0, 0.05, 0.1, 0.2, 0.4])
    values = list(curve.values())
    assert values == sorted(values, reverse=True)
    majority = Smooth(model, 10, sigma=0.1, seed=1).sample_counts(images, 400).argmax(1)
    assert curve[0.0] <= float((majority == labels).double().mean()) + 1e-9
    assert 0.5 < curve[0.0]


def test_no_certificate_inside_an_adversarial_radius():
    # sigma tiny: the smoothed classifier is the base model away from its boundary, so a
    # radius certified for the smoothed model must hold no adversarial example of the base model
    model = trained_small_cnn()
    images, labels = digits_test(16)
    classes, radii = Smooth(model, 10, sigma=0.05, seed=0).certify(images, 50, 500, 0.001)
    checked = 0
    for i in torch.nonzero((classes == labels) & (radii > 0))[:, 0].tolist():
        attack = PGD(model, eps=float(radii[i]), alpha=float(radii[i]) / 4, steps=20, norm="L2")
        result = attack.run(images[i : i + 1], labels[i : i + 1])
        assert not bool(result.success[0]), f"example {i}: adversarial within {float(radii[i])}"
        checked += 1
    assert checked >= 12
