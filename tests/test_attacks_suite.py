"""The worst-case suite: survivors-only sequence of attacks over an eps grid."""

from __future__ import annotations

import json

import pytest
import torch
import torchattacks
from torch import nn

from robustlab.attacks import PGD, AttackSpec
from robustlab.errors import ConfigError
from robustlab.evaluation import evaluate_robustness, wilson_interval, worst_case
from robustlab.evaluation.suite import snap_to_grid, suite_attack, suite_attacks
from tests.attack_fixtures import digits, model, trained_tiny_cnn  # noqa: F401

GRID = [0.05, 0.1, 0.2]


@pytest.fixture(scope="module")
def fast_result():
    net = trained_tiny_cnn()
    from tests.attack_fixtures import digits_split

    images, labels = digits_split()[2][:100], digits_split()[3][:100]
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    result = worst_case(net, images, labels, GRID, suite="fast", batch_size=64)
    assert torch.equal(before, torch.random.get_rng_state())  # the global generator is untouched
    return net, images, labels, result


def test_worst_case_is_at_least_as_strong_as_each_attack_alone(fast_result):
    net, images, labels, result = fast_result
    assert result.accuracy == sorted(result.accuracy, reverse=True)
    for eps, accuracy in zip(GRID, result.accuracy, strict=True):
        adv = torchattacks.APGD(net, eps=eps, steps=50, loss="ce")(images, labels)
        with torch.no_grad():
            alone = int((net(adv).argmax(1) == labels).sum())
        assert round(accuracy * len(labels)) <= alone
    assert result.accuracy[-1] < result.accuracy[0]


def test_record_and_counts_agree(fast_result):
    _, images, labels, result = fast_result
    n, before = len(labels), round((result.broken_eps > 0).float().sum().item())
    table = result.first_broken_by()
    for eps, accuracy, (lo, hi) in zip(GRID, result.accuracy, result.ci, strict=True):
        survivors = round(accuracy * n)
        assert (lo, hi) == wilson_interval(survivors, n)
        assert sum(table[repr(eps)].values()) == before - survivors  # first broken at this eps
        before = survivors
    for at, by in zip(result.broken_eps.tolist(), result.broken_by, strict=True):
        assert (by is None) == (at == float("inf"))
        assert by in (None, "clean", "apgd_ce", "apgd_t", "square")
    assert result.attack_cost["apgd_ce"]["grad_evals"] > 0
    assert result.attack_cost["square"]["forward_evals"] > 0


def test_to_results_and_record_file(fast_result, tmp_path):
    _, _, _, result = fast_result
    out = result.to_results()
    assert set(out["robust_accuracy"]["worst_case"]) == {"0.05", "0.1", "0.2"}
    assert out["robust_accuracy"]["worst_case"]["0.1"] == result.accuracy[1]
    assert out["robust_accuracy_ci"]["worst_case"]["0.1"] == list(result.ci[1])
    block = out["worst_case"]
    assert block["suite"] == "fast" and set(block["first_broken_by"]) == {"0.05", "0.1", "0.2"}
    assert set(block["attack_cost"]) == {"apgd_ce", "apgd_t", "square"}
    json.dumps(out)  # plain JSON
    record = json.loads(result.save_record(tmp_path / "worst_case.json").read_text())
    assert len(record["broken_eps"]) == result.n and record["broken_by"] == result.broken_by


class Quantised(nn.Module):
    """Inputs rounded to 4 grey levels first: the input gradient is zero almost everywhere
    (shattered gradients), so only a gradient-free attack can find what is there to find."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 3) / 3)


def test_square_breaking_what_gradients_miss_is_flagged(model, digits):  # noqa: F811
    images, labels = digits[0][:48], digits[1][:48]
    masked = Quantised(model).eval()
    result = worst_case(masked, images, labels, [0.2], suite="fast")
    assert result.first_broken_by()["0.2"].get("square", 0) > 0
    assert result.masking and any("Square" in w for w in result.warnings)


def test_report_worst_case_spans_every_attack(model, digits):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    attacks = {"pgd": AttackSpec("pgd", {"steps": 5}), "fgsm": AttackSpec("fgsm")}
    report = evaluate_robustness(model, images, labels, attacks, [0.05, 0.1], suite="fast")
    results = report.to_results()
    worst = results["robust_accuracy"]["worst_case"]
    assert list(results["robust_accuracy"])[0] == "worst_case"
    for eps in ("0.05", "0.1"):
        assert worst[eps] <= min(results["robust_accuracy"][k][eps] for k in attacks)
    counts = results["worst_case"]["first_broken_by"]
    assert counts["0.05"].get("pgd", 0) > 0  # the curves ran first; the suite took survivors


def test_bad_suite_is_a_config_error(model, digits):  # noqa: F811
    with pytest.raises(ConfigError, match="suite"):
        worst_case(model, *digits, [0.1], suite="strong")
    with pytest.raises(ConfigError, match="suite"):
        suite_attacks(model, 0.1, suite="none")
    with pytest.raises(ConfigError, match="suite attack 'fab'"):
        suite_attack("fab", model, 0.1)


@pytest.mark.parametrize("prior", [None, "unbroken"])
def test_linear_model_breaks_match_the_closed_form(prior):
    """On a linear model the smallest Linf perturbation that changes the prediction is known:
    min over classes j of (f_y - f_j) / ||w_y - w_j||_1 (the box [0, 1] stays inactive for
    images inside [0.3, 0.7] and eps < 0.3). Every example must be broken exactly at the
    smallest grid eps at or above that radius: never earlier (the suite cannot beat the optimum)
    and never later (an attack that descends from the frontier must not miss it), with or
    without a prior that broke nothing."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    images = 0.3 + 0.4 * torch.rand(120, 1, 8, 8)
    with torch.no_grad():
        logits = net(images)
    labels = logits.argmax(1)  # every example correct clean
    weight = net[1].weight.detach()
    gaps = logits.gather(1, labels[:, None]) - logits  # f_y - f_j
    norms = (weight[labels][:, None, :] - weight[None, :, :]).abs().sum(-1)
    radius = torch.where(gaps > 0, gaps / norms, torch.inf).min(1).values.double()
    grid = [0.03, 0.05, 0.06, 0.07, 0.08, 0.1]  # spans the radii (0.033 to 0.12)
    grid_t = torch.tensor(grid, dtype=torch.float64)
    near_grid = ((radius[:, None] - grid_t).abs() / grid_t).min(1).values < 0.02
    prior = None if prior is None else {"nothing": torch.full((120,), torch.inf)}
    result = worst_case(net, images, labels, grid, suite="fast", batch_size=64, prior=prior)
    expected = snap_to_grid(radius, grid)
    assert (result.broken_eps >= expected)[~near_grid].all()
    assert torch.equal(result.broken_eps[~near_grid], expected[~near_grid])
    assert len(set(expected[~near_grid].tolist())) >= 4  # the grid is really exercised


def test_l1_suite_runs_the_apgds_and_beats_l1_pgd(fast_result):
    """Under L1 the suite is APGD-CE then APGD-T (Square has no L1 version), each example
    inside its L1 ball; it is stronger than L1 PGD alone from L1 eps 1 on and on par below,
    where L1-APGD and PGD's sparse step differ by one example of 60 either way over seeds."""
    net, images, labels, _ = fast_result
    grid = [0.5, 1.0, 2.0]
    result = worst_case(net, images[:60], labels[:60], grid, suite="fast", norm="L1")
    assert set(result.attack_cost) == {"apgd_ce", "apgd_t"} and result.norm == "L1"
    assert result.accuracy[-1] < result.accuracy[0]
    for eps, accuracy in zip(grid, result.accuracy, strict=True):
        adv = PGD(net, eps=eps, alpha=0.1 * eps, steps=20, norm="L1")(images[:60], labels[:60])
        with torch.no_grad():
            alone = int((net(adv).argmax(1) == labels[:60]).sum())
        assert round(accuracy * 60) <= alone + (1 if eps < 1.0 else 0)
