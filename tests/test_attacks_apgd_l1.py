"""L1-APGD (Croce & Hein 2021): the ball and the box, the per-row top-k step, the sparsity
rule, strength against L1 PGD at equal budget, APGD-T in L1 and the apgd_l1 config."""

from __future__ import annotations

import pytest
import torch

from robustlab.app.builders import attack_spec
from robustlab.app.validate import validate_config
from robustlab.attacks import APGD, PGD
from robustlab.attacks.apgd_state import RunState
from robustlab.attacks.catalogue import attack_factory, attack_norm
from robustlab.attacks.geometry import row_norms
from robustlab.attacks.l1 import top_k_sign_step
from robustlab.evaluation import robust_accuracy
from tests.app_helpers import compose_tiny
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)

TOL = 1e-5


def correct_count(net, images, labels) -> int:
    with torch.no_grad():
        return int((net(images).argmax(1) == labels).sum())


def in_ball_and_box(adv, images, eps) -> bool:
    radius = torch.as_tensor(eps, dtype=images.dtype).expand(len(images))
    inside = row_norms(adv - images, "L1") <= radius * (1 + TOL) + TOL
    return bool(inside.all()) and adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_stays_in_the_l1_ball_and_box_and_lowers_accuracy(model, digits, loss):  # noqa: F811
    images, labels = digits
    adv = APGD(model, eps=2.0, steps=20, norm="L1", loss=loss)(images, labels)
    assert in_ball_and_box(adv, images, 2.0)
    clean = correct_count(model, images, labels)
    assert correct_count(model, adv, labels) < clean - 0.3 * len(labels)


def test_protocol_steps_respect_a_radius_per_row(model, digits):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    attack = APGD(model, eps=3.0, steps=10, norm="L1")
    radii = torch.linspace(0.1, 6.0, len(images))
    adv = attack.project(attack.start(images), images, radii)
    assert in_ball_and_box(adv, images, radii)
    with attack.model_context():
        for _ in range(3):
            grad, _ = attack.gradient(adv, images, labels)
            adv = attack.step(adv, images, grad, eps=radii, alpha=radii / 2)
            assert in_ball_and_box(adv, images, radii)
    # a point deep outside the ball lands on the sphere of its own radius
    far = attack.project(torch.ones_like(images), images, radii)
    assert torch.allclose(row_norms(far - images, "L1"), radii, rtol=1e-4)


# L1 eps 1 on these 8x8 digits is one or two pixels' worth: there L1-APGD is on par with L1
# PGD's sparse step (over its seeds, 170-176 of 397 digits stay correct against PGD's 170, so
# a 200-digit subset may differ by a few examples either way); from eps 2 on it is stronger.
@pytest.mark.parametrize(("eps", "slack"), [(1.0, 0.03), (2.0, 0.0)])
def test_at_least_as_strong_as_l1_pgd_at_equal_budget(model, digits, eps, slack):  # noqa: F811
    images, labels = digits
    torch.manual_seed(0)
    pgd = PGD(model, eps, alpha=0.1 * eps, steps=20, norm="L1")(images, labels)
    apgd = APGD(model, "L1", eps, 20)(images, labels)
    allowed = correct_count(model, pgd, labels) + slack * len(labels)
    assert correct_count(model, apgd, labels) <= allowed


def test_targeted_dlr_in_l1(model, digits):  # noqa: F811
    images, labels = digits
    attack = APGD(model, eps=2.0, steps=20, norm="L1", loss="dlr", targeted=True)
    result = attack.run(images, labels)
    assert attack.target_classes == 9 and in_ball_and_box(result.adv_images, images, 2.0)
    with torch.no_grad():
        fooled = model(result.adv_images).argmax(1) != labels
    assert torch.equal(result.success, fooled)
    assert correct_count(model, result.adv_images, labels) < 0.5 * len(labels)


def test_top_k_step_moves_each_rows_own_count_of_coordinates():
    grad = torch.tensor([[4.0, -3.0, 2.0, 1.0], [4.0, -3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    adv = torch.full((3, 4), 0.5)
    adv[2, 3] = 1.0  # at the top of the box with grad > 0: cannot move, so it is skipped
    moved = top_k_sign_step(adv, grad, torch.tensor([1.0, 0.6, 0.2]), torch.tensor([1, 3, 1]))
    step = moved - adv
    assert torch.allclose(step[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(step[1], torch.tensor([0.2, -0.2, 0.2, 0.0]))
    assert torch.allclose(step[2], torch.tensor([0.0, 0.0, 0.2, 0.0]))


def test_sparsity_rule_resets_sparser_rows_and_shrinks_the_others():
    images = torch.zeros(2, 1, 10, 10)
    adv = images + 0.1
    loss = torch.zeros(2)
    radius = torch.ones(2)
    data = (images, None, None, radius)
    state = RunState(data, adv, adv.clone(), loss, step_size=radius, steps=100, first=0.0)
    state.step_size = torch.tensor([0.5, 0.12])
    state.best[0, 0, :5] = 0.0  # row 0: 50 of 100 coordinates left changed, was 100: sparser
    state.best[1, 0, 0, :3] = 0.0  # row 1: 97 changed, 3% sparser only
    state.check_sparsity()
    assert torch.allclose(state.step_size, torch.tensor([1.0, 0.1]))  # 0.12 / 1.5 -> floor 0.1
    assert torch.allclose(state.sparsity, torch.tensor([50 / 100 / 1.5, 97 / 100 / 1.5]))
    assert torch.equal(state.top_k(), torch.tensor([34, 65]))
    assert torch.equal(state.adv[0], state.best[0]) and torch.equal(state.adv[1], adv[1])


def test_l1_checkpoints_every_four_percent(model):  # noqa: F811
    assert APGD(model, steps=100, norm="L1").checkpoints() == list(range(3, 100, 4))
    assert APGD(model, steps=10, norm="L1").checkpoints() == list(range(10))


def test_eps_grid_runs_apgd_l1_afresh_per_eps(model, digits):  # noqa: F811
    images, labels = digits
    grid = [0.5, 1.0, 2.0]
    curve = robust_accuracy(model, images, labels, lambda e: APGD(model, "L1", e, 10), grid)
    assert curve.schedule == "full" and curve.norm == "L1"
    assert curve.accuracy == sorted(curve.accuracy, reverse=True)
    assert curve.accuracy[-1] < curve.clean_accuracy - 0.3


def test_apgd_l1_config_builds_the_l1_attack(tmp_path, model):  # noqa: F811
    cfg = compose_tiny(tmp_path, "+attack@eval.attacks.apgd_l1=apgd_l1")
    validate_config(cfg)
    spec = attack_spec(cfg.eval.attacks.apgd_l1)
    attack = attack_factory(spec, model)(2.0)
    assert spec.eps == [1.0, 2.0, 4.0] and attack_norm(spec.name, spec.kwargs) == "L1"
    assert isinstance(attack, APGD) and attack.norm == "L1" and attack.alpha == pytest.approx(2.0)
