"""torchattacks' base-class surface on robustlab's attacks: normalisation, device, repr,
supported modes, and the wrappers (MultiAttack mixed, LGV through the adapter)."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import robustlab.attacks
from robustlab.attacks import build_attack
from robustlab.errors import ConfigError
from robustlab.models import Normalize
from tests.attack_fixtures import digits, digits_split, model  # noqa: F401  (pytest fixtures)

MEAN, STD = [0.3], [0.4]
EPS = 0.1


def normalised(images: torch.Tensor) -> torch.Tensor:
    return (images - MEAN[0]) / STD[0]


class TakesNormalised(nn.Module):
    """The trained digits model as a torchattacks user has it: trained on normalised inputs,
    with no normalisation inside (no robustlab ``Normalize``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * STD[0] + MEAN[0])


def seeded(attack, images, labels, seed=0):
    torch.manual_seed(seed)
    return attack(images, labels)


@pytest.mark.parametrize(
    "build",
    [
        lambda lib, m: lib.FGSM(m, eps=EPS),
        lambda lib, m: lib.MIFGSM(m, eps=EPS, steps=3),
        lambda lib, m: (
            lib.PGD(m, eps=EPS, alpha=0.03, steps=4, early_stop=False)
            if lib is robustlab.attacks
            else lib.PGD(m, eps=EPS, alpha=0.03, steps=4)
        ),
    ],
    ids=["native-fgsm", "adapted-mifgsm", "native-pgd"],
)
def test_set_normalization_used_matches_torchattacks(model, digits, build):  # noqa: F811
    """A model without internal normalisation, normalised inputs: robustlab's attack takes and
    returns what torchattacks' does (same seed)."""
    images, labels = normalised(digits[0][:32]), digits[1][:32]
    net = TakesNormalised(model).eval()
    ours, theirs = build(robustlab.attacks, net), build(torchattacks, net)
    for attack in (ours, theirs):
        attack.set_normalization_used(mean=MEAN, std=STD)
    expected = seeded(theirs, images, labels)
    torch.testing.assert_close(seeded(ours, images, labels), expected, rtol=0, atol=1e-5)
    assert expected.min() < 0  # normalised space, not [0, 1]
    assert ours.normalization_used is not None and "normalization_used=True" in repr(ours)


def test_the_model_sees_normalised_images(model, digits):  # noqa: F811
    seen = []
    handle = model.register_forward_pre_hook(
        lambda _m, inputs: seen.append(float(inputs[0].detach().min()))
    )
    try:
        attack = robustlab.attacks.FGSM(model, eps=EPS)
        attack.set_normalization_used(MEAN, STD)
        attack(normalised(digits[0][:8]), digits[1][:8])
    finally:
        handle.remove()
    assert seen and all(value == pytest.approx(-MEAN[0] / STD[0]) for value in seen)


def test_a_model_that_normalises_inside_gets_a_warning_not_twice(model, digits):  # noqa: F811
    inside = nn.Sequential(Normalize(1, MEAN, STD), model).eval()
    images, labels = digits[0][:16], digits[1][:16]
    for build in (robustlab.attacks.FGSM, robustlab.attacks.BIM):
        attack = build(inside, eps=EPS)
        with pytest.warns(UserWarning, match="normalises its inputs inside"):
            attack.set_normalization_used(MEAN, STD)
        adv = attack(normalised(images), labels)
        expected = normalised(build(inside, eps=EPS)(images, labels))
        torch.testing.assert_close(adv, expected, rtol=0, atol=1e-5)


def test_device_modes_logits_and_repr(model, digits):  # noqa: F811
    images = digits[0][:8]
    native, adapted = robustlab.attacks.PGD(model), robustlab.attacks.CW(model)
    assert native.supported_mode == ["default", "targeted"]
    assert adapted.supported_mode == torchattacks.CW(model).supported_mode
    assert robustlab.attacks.APGDT(model).supported_mode == ["default"]
    for attack in (native, adapted):
        attack.set_device("cpu")
        assert torch.device(attack.device) == torch.device("cpu")
        attack.set_model_training_mode(model_training=False)
        torch.testing.assert_close(attack.get_logits(images), model(images).detach())
    assert repr(adapted) == repr(adapted.attack)
    text = repr(native)
    assert text.startswith("PGD(model_name=TinyCNN, device=cpu, ")
    assert "eps=0.0313" in text and "attack_mode=default" in text
    native.set_mode_targeted_least_likely(quiet=True)
    assert native.targeted and "attack_mode=targeted(least-likely)" in repr(native)


def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(images).argmax(1) == labels).float().mean().item()


def test_multiattack_mixes_robustlab_and_torchattacks(model, digits):  # noqa: F811
    images, labels = digits[0][:48], digits[1][:48]
    attacks = [
        robustlab.attacks.FGSM(model, eps=0.05),  # native
        robustlab.attacks.CW(model, c=1, steps=10),  # adapted
        torchattacks.FGSM(model, eps=0.15),  # plain torchattacks
    ]
    mixed = robustlab.attacks.MultiAttack(attacks)
    adv = mixed(images, labels)
    alone = [accuracy(model, attack(images, labels), labels) for attack in attacks]
    assert accuracy(model, adv, labels) <= min(alone) < accuracy(model, images, labels)
    by_name = build_attack("MultiAttack", model, attacks=attacks)
    torch.testing.assert_close(by_name(images, labels), adv)
    with pytest.raises(ConfigError, match="same model|model given"):
        build_attack("MultiAttack", nn.Linear(64, 10), attacks=attacks)
    with pytest.raises(ValueError, match="two or more"):
        robustlab.attacks.MultiAttack(attacks[:1])
    with pytest.raises(ConfigError, match="default"):
        mixed.set_mode_targeted_random()


def test_lgv_works_through_the_adapter(model, digits):  # noqa: F811
    train_x, train_y, _, _ = digits_split()
    loader = DataLoader(TensorDataset(train_x[:128], train_y[:128]), batch_size=16)
    images, labels = digits[0][:16], digits[1][:16]
    torch.manual_seed(0)
    lgv = robustlab.attacks.LGV(model, loader, verbose=False)  # defaults: 10 epochs x 4
    adv = lgv(images, labels)
    assert len(lgv.list_models) == 10 * 4 and lgv.model is model
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6  # the default BIM budget
    assert accuracy(model, adv, labels) <= accuracy(model, images, labels)
    assert not model.training and all(p.grad is None for p in model.parameters())
