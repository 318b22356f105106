"""L0 evaluation: pixel counting, the budget curve's rules, and the catalogue's sparse attacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustlab.errors import ConfigError
from robustlab.evaluation.l0 import WORST_CASE, accuracy_over_budgets, changed_pixels, l0_robustness
from robustlab.models.inference import predict
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def test_changed_pixels_counts_positions_not_channels():
    rng = np.random.default_rng(0)
    images = torch.rand(4, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    adv = images.clone()
    expected = []
    for i in range(4):
        # Random (channel, row, col) entries; several channels of one position count once.
        entries = {(int(c), int(h), int(w)) for c, h, w in rng.integers(0, (3, 5, 6), (3 * i, 3))}
        for c, h, w in entries:
            adv[i, c, h, w] = (adv[i, c, h, w] + 0.5) % 1.0
        expected.append(len({(h, w) for _, h, w in entries}))
    assert changed_pixels(images, adv).tolist() == expected
    assert changed_pixels(images, images.clone()).tolist() == [0, 0, 0, 0]


def test_changed_pixels_tolerance_and_shape_check():
    images = torch.zeros(1, 1, 2, 2)
    adv = torch.tensor([[[[1e-7, 0.2], [0.0, 1.0]]]])
    assert changed_pixels(images, adv).tolist() == [3]
    assert changed_pixels(images, adv, tol=1e-6).tolist() == [2]
    with pytest.raises(ValueError, match="one shape"):
        changed_pixels(images, adv[..., :1])


def test_accuracy_over_budgets_closed_form():
    needed = torch.tensor([0.0, math.inf, 3.0, 1.0, 5.0])
    # k=0: all but the clean error; k=1: also not example 3; k=3: not 2; k=5: not 4.
    expected = (0.8, 0.6, 0.6, 0.4, 0.4, 0.2, 0.2)
    assert accuracy_over_budgets(needed, (0, 1, 2, 3, 4, 5, 100)) == pytest.approx(expected)


def _flip_first(count_of):
    """A fake attack that changes exactly ``count_of(i)`` pixels (row-major) of example i."""

    def attack(images, labels):
        adv = images.clone()
        for i in range(len(adv)):
            flat = adv[i, 0].view(-1)
            k = count_of(float(images[i].sum()))
            flat[:k] = (flat[:k] + 0.5) % 1.0
        return adv

    return attack


def test_budget_rule_with_known_pixel_counts(model, digits):  # noqa: F811
    images, labels = digits[0][:80], digits[1][:80]
    # The pixel count depends only on the image, so it can be recomputed here.
    counts = {"few": lambda s: int(s * 7) % 6, "many": lambda s: 3 + int(s * 11) % 20}
    report = l0_robustness(
        model, images, labels, {k: _flip_first(f) for k, f in counts.items()}, budgets=range(30)
    )
    correct = predict(model, images) == labels
    assert (
        report.curves["few"].accuracy[0] == report.clean_accuracy == float(correct.float().mean())
    )
    for key, count_of in counts.items():
        curve = report.curves[key]
        k = torch.tensor([count_of(float(x.sum())) for x in images])
        assert torch.equal(curve.pixels[correct], k[correct])
        assert torch.equal(curve.pixels[~correct], torch.zeros_like(k[~correct]))
        assert curve.fooled.any() and not curve.fooled[~correct].any()
        for budget, acc in zip(curve.budgets, curve.accuracy, strict=True):
            # Never robust from its own pixel count up, robust below it.
            robust = correct & ~(curve.fooled & (k <= budget))
            assert acc == pytest.approx(float(robust.float().mean()))
    worst = report.curves[WORST_CASE]
    best = torch.minimum(report.curves["few"].needed, report.curves["many"].needed)
    assert torch.equal(worst.needed, best)
    assert all(
        w <= min(a, b)
        for w, a, b in zip(
            worst.accuracy, report.curves["few"].accuracy, report.curves["many"].accuracy,
            strict=True,
        )
    )  # fmt: skip


def test_catalogue_sparse_attacks_on_a_trained_model(model, digits):  # noqa: F811
    images, labels = digits[0][:24], digits[1][:24]
    report = l0_robustness(model, images, labels, budgets=(0, 1, 2, 4, 8, 16, 64))
    correct = predict(model, images) == labels
    assert set(report.curves) == {"sparsefool", "jsma", "onepixel", WORST_CASE}
    for key, curve in report.curves.items():
        acc = curve.accuracy
        assert acc[0] == report.clean_accuracy, key
        assert all(a >= b for a, b in zip(acc, acc[1:], strict=False)), key
        for budget, value in zip(curve.budgets, acc, strict=True):
            robust = correct & ~(curve.fooled & (curve.pixels <= budget))
            assert value == pytest.approx(float(robust.float().mean())), key
    assert report.curves["onepixel"].pixels.max() <= 1  # its own cap
    assert report.curves["jsma"].pixels.max() <= 8  # 10% of 64 features, two per iteration
    assert report.curves["sparsefool"].accuracy[-1] < report.clean_accuracy
    results = report.to_results()
    assert results["robust_accuracy_norm"] == {k: "L0" for k in report.curves}
    assert list(results["robust_accuracy"]["jsma"]) == ["0", "1", "2", "4", "8", "16", "64"]
    assert results["l0_n_eval"] == 24


def test_bad_budgets_and_tolerance_are_config_errors(model, digits):  # noqa: F811
    images, labels = digits
    for budgets in ([], [-1, 2], [0.5]):
        with pytest.raises(ConfigError, match="budgets"):
            l0_robustness(model, images[:2], labels[:2], {}, budgets=budgets)
    with pytest.raises(ConfigError, match="tol"):
        l0_robustness(model, images[:2], labels[:2], {}, tol=-1.0)
