"""Native APGD / APGD-T: agreement with torchattacks' ports of the reference code, the ball,
the step-size schedule and the model contract."""

from __future__ import annotations

import pytest
import torch
import torchattacks

from robustlab.attacks import APGD, build_attack
from robustlab.attacks.base import perturbation_norm
from robustlab.errors import ConfigError
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def _accuracy(net, images, labels):
    with torch.no_grad():
        return (net(images).argmax(1) == labels).float().mean().item()


def _norms(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


@pytest.mark.parametrize(
    ("norm", "eps", "loss"),
    # radii where examples survive both (0.63-0.90 of 0.975 clean): at a radius where both
    # reach 0 the comparison could not fail
    [("Linf", 0.03, "ce"), ("Linf", 0.03, "dlr"), ("L2", 0.3, "ce"), ("L2", 0.3, "dlr")],
)
def test_apgd_at_least_as_strong_as_torchattacks(model, digits, norm, eps, loss):  # noqa: F811
    images, labels = digits
    ours = APGD(model, eps=eps, steps=20, norm=norm, loss=loss, seed=1)(images, labels)
    theirs = torchattacks.APGD(model, eps=eps, steps=20, norm=norm, loss=loss, seed=1)(
        images, labels
    )
    survivors = _accuracy(model, theirs, labels)
    assert 0.3 < survivors < _accuracy(model, images, labels)
    assert _accuracy(model, ours, labels) <= survivors
    assert (_norms(ours - images, norm) <= eps + 1e-5).all()
    assert ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_apgd_t_at_least_as_strong_as_torchattacks(model, digits, eps):  # noqa: F811
    images, labels = digits
    ours = APGD(model, eps=eps, steps=15, loss="dlr", targeted=True, n_target_classes=4)
    theirs = torchattacks.APGDT(model, eps=eps, steps=15, n_classes=5)  # 4 targets
    adv = ours(images, labels)
    assert _accuracy(model, adv, labels) <= _accuracy(model, theirs(images, labels), labels)
    assert (_norms(adv - images, "Linf") <= eps + 1e-6).all()


def test_apgd_beats_pgd_at_equal_budget(model, digits):  # noqa: F811
    images, labels = digits
    torch.manual_seed(0)
    pgd = build_attack("pgd", model, eps=0.05, alpha=2.5 * 0.05 / 20, steps=20)(images, labels)
    apgd = APGD(model, eps=0.05, steps=20)(images, labels)
    assert _accuracy(model, apgd, labels) <= _accuracy(model, pgd, labels)


def test_checkpoints_follow_the_reference_schedule(model):  # noqa: F811
    # p_j = 0, 0.22, then gaps shrinking by 0.03 down to 0.06 (Croce & Hein 2020, sec. 3.2)
    assert APGD(model, steps=100).checkpoints() == [21, 40, 56, 69, 79, 86, 92, 98]
    assert APGD(model, steps=10).checkpoints() == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_run_reports_success_cost_and_early_stop(model, digits):  # noqa: F811
    images, labels = digits
    result = APGD(model, eps=0.1, steps=10).run(images, labels)
    with torch.no_grad():
        fooled = model(result.adv_images).argmax(1) != labels
    assert torch.equal(result.success, fooled)
    correct = int((model(images).argmax(1) == labels).sum())
    # one evaluation at the start, then fewer per step as fooled examples leave
    assert correct < result.grad_evals < 11 * correct
    full = APGD(model, eps=0.1, steps=10, early_stop=False).run(images, labels)
    assert full.grad_evals == 11 * correct
    assert torch.equal(full.success, result.success)  # rows independent: same outcome


def test_restores_the_model(model, digits):  # noqa: F811
    images, labels = digits[0][:32], digits[1][:32]
    model.train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        APGD(model, eps=0.1, steps=5, loss="dlr", targeted=True, n_target_classes=2)(images, labels)
        assert model.training and all(m.training for m in model.modules())
        assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())
        assert all(p.grad is None and p.requires_grad for p in model.parameters())
    finally:
        model.eval()


def test_registered_names_and_bad_options(model):  # noqa: F811
    assert isinstance(build_attack("apgd", model, steps=5), APGD)
    apgd_t = build_attack("apgd_t", model, steps=5)
    assert apgd_t.target_classes == 9 and apgd_t.loss == "dlr"
    ported = build_attack("torchattacks.APGD", model, steps=5)
    assert ported.attack.__class__ is torchattacks.APGD
    for kwargs in ({"norm": "L3"}, {"steps": 0}, {"rho": 1.5}, {"loss": "hinge"}):
        with pytest.raises(ConfigError):
            APGD(model, **kwargs)
    with pytest.raises(ConfigError):
        APGD(model, targeted=True).set_mode_targeted_random()


@pytest.mark.parametrize("norm", ["Linf", "L2", "L1"])
def test_one_radius_per_image(model, digits, norm):  # noqa: F811
    # A tensor of equal radii is the float run, draw for draw; mixed radii keep every row in
    # its own ball, and a row of radius 0 never leaves its image.
    images, labels = digits[0][:24], digits[1][:24]
    eps = {"Linf": 0.1, "L2": 1.0, "L1": 3.0}[norm]
    args = {"steps": 8, "norm": norm, "loss": "dlr", "targeted": True, "n_target_classes": 2}
    same = APGD(model, eps=torch.full((24,), eps), **args)(images, labels)
    torch.testing.assert_close(same, APGD(model, eps=eps, **args)(images, labels), rtol=0, atol=0)
    radii = torch.tensor([0.0, eps / 2, eps] * 8)
    adv = APGD(model, eps=radii, **args)(images, labels)
    sizes = perturbation_norm(adv - images, norm)
    assert (sizes <= radii * (1 + 1e-4) + 1e-6).all()
    assert torch.equal(adv[radii == 0], images[radii == 0])
    assert (sizes[radii == eps] > eps / 2).any()
    with pytest.raises(ValueError, match="one eps per image"):
        APGD(model, eps=radii[:5], norm=norm)(images, labels)
    with pytest.raises(ConfigError):
        APGD(model, eps=torch.tensor([0.1, -0.1]))
