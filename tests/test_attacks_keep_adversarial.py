"""Adversarial examples kept by the robustness evaluation reproduce its robust accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from robustlab.attacks import AttackSpec
from robustlab.attacks.geometry import row_norms
from robustlab.errors import ConfigError
from robustlab.evaluation import evaluate_robustness
from tests.attack_fixtures import digits, model, trained_tiny_cnn  # noqa: F401

GRID = [0.0, 0.05, 0.1, 0.2]
L2_GRID = [0.5, 1.0]
ATTACKS = {
    "pgd": AttackSpec("pgd", {"steps": 8}),
    "pgd_l2": AttackSpec("pgd_l2", {"steps": 8}, eps=L2_GRID),
    "fgsm": AttackSpec("fgsm"),
}
PAIRS = [(k, e) for k in ("pgd", "fgsm") for e in GRID] + [("pgd_l2", e) for e in L2_GRID]


def correct_on(net, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(images).argmax(1) == labels


def accuracy_at(curve, eps: float) -> float:
    return curve.points[curve.eps.index(eps)].accuracy


@pytest.fixture(scope="module", params=["continuation", "full"])
def kept(request):
    net = trained_tiny_cnn()
    from tests.attack_fixtures import digits_split

    images, labels = digits_split()[2][:96], digits_split()[3][:96]
    torch.manual_seed(0)
    report = evaluate_robustness(
        net, images, labels, ATTACKS, GRID, batch_size=32, check_gradients=False,
        schedule=request.param, keep_adversarial=PAIRS, suite="none",
    )  # fmt: skip
    return net, images, labels, report


def test_kept_images_reproduce_every_curve_exactly(kept):
    net, images, labels, report = kept
    assert report.curves["pgd"].schedule in ("continuation", "full")
    assert set(report.adversarial) == set(PAIRS)
    for (key, eps), adv in report.adversarial.items():
        assert adv.shape == images.shape and adv.device.type == "cpu"
        survivors = int(correct_on(net, adv, labels).sum())
        curve = report.curves[key]
        assert survivors == round(accuracy_at(curve, eps) * len(labels)), (key, eps)
        # survivors are exactly the examples the curve never broke at eps' <= eps
        assert torch.equal(correct_on(net, adv, labels), curve.broken_eps > eps)


def test_kept_images_lie_in_the_ball_and_in_the_unit_box(kept):
    _, images, _, report = kept
    for (key, eps), adv in report.adversarial.items():
        norms = row_norms(adv - images, report.curves[key].norm)
        assert float(norms.max()) <= eps + 1e-5, (key, eps)
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_rows_follow_the_first_fooling_eps(kept):
    net, images, labels, report = kept
    curve, adversarial = report.curves["pgd"], report.adversarial
    clean_wrong = ~correct_on(net, images, labels)
    for eps in GRID:
        # misclassified clean: the clean image, at every eps
        assert torch.equal(adversarial[("pgd", eps)][clean_wrong], images[clean_wrong])
    # broken at 0.05: the same adversarial example is kept at every larger eps
    first = curve.broken_eps == 0.05
    assert first.any()
    for eps in (0.1, 0.2):
        assert torch.equal(adversarial[("pgd", eps)][first], adversarial[("pgd", 0.05)][first])
    # survivors of 0.1 carry the attack's final iterate there, not the clean image
    survived = curve.broken_eps > 0.1
    moved = row_norms(adversarial[("pgd", 0.1)][survived] - images[survived], "Linf")
    assert survived.any() and bool((moved > 0.05).all())
    assert torch.equal(adversarial[("pgd", 0.0)], images)  # eps = 0: nothing attacked


def test_nothing_kept_reaches_results_json(kept):
    _, _, _, report = kept
    results = report.to_results()
    json.dumps(results)  # plain numbers and strings only
    assert "adversarial" not in json.dumps(results)


@pytest.mark.parametrize("suite", ["none", "fast"])
def test_worst_case_kept_images_give_the_worst_case_accuracy(model, digits, suite):  # noqa: F811
    images, labels = digits[0][:48], digits[1][:48]
    attacks = {"pgd": AttackSpec("pgd", {"steps": 5}), "fgsm": AttackSpec("fgsm")}
    grid = [0.05, 0.1]
    keep = [("worst_case", 0.05), ("worst_case", 0.1), ("pgd", 0.1)]
    report = evaluate_robustness(
        model, images, labels, attacks, grid, batch_size=32, check_gradients=False,
        suite=suite, keep_adversarial=keep,
    )  # fmt: skip
    worst = report.worst_case
    assert set(report.adversarial) == set(keep)  # the curves' own worst-case copies are gone
    for eps, accuracy in zip(worst.eps, worst.accuracy, strict=True):
        adv = report.adversarial[("worst_case", eps)]
        survivors = correct_on(model, adv, labels)
        assert int(survivors.sum()) == round(accuracy * len(labels))
        assert torch.equal(survivors, worst.broken_eps > eps)
        assert float(row_norms(adv - images, "Linf").max()) <= eps + 1e-5
    # rows PGD broke first come from PGD's own kept images
    by_pgd = torch.tensor([by == "pgd" for by in worst.broken_by]) & (worst.broken_eps <= 0.1)
    assert by_pgd.any()
    kept_pgd = report.adversarial[("pgd", 0.1)][by_pgd]
    assert torch.equal(report.adversarial[("worst_case", 0.1)][by_pgd], kept_pgd)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("pgd", 0.3), "not evaluated at eps=0.3"),
        (("pgd_l2", 0.1), r"grid: \[0.5, 1.0\]"),
        (("worst_case", 0.5), "worst_case was not evaluated"),
        (("apgd", 0.1), "not an evaluated attack"),
        (("deepfool", 0.1), "without an eps budget"),
        (("pgd",), r"\(attack key, eps\) pairs"),
    ],
)
def test_asking_for_what_was_not_evaluated_is_a_config_error(model, digits, pair, message):  # noqa: F811
    attacks = dict(ATTACKS, deepfool=AttackSpec("DeepFool", {"steps": 2}))
    with pytest.raises(ConfigError, match=message):
        evaluate_robustness(model, *digits, attacks, [0.1], keep_adversarial=[pair])
