"""Every torchattacks name in robustlab's catalogue (`build_attack`): built by name with
torchattacks' options, run on digits through robustlab's adapter or native class, and the
positional arguments of robustlab's native classes where torchattacks puts them."""

from __future__ import annotations

import inspect
from functools import lru_cache

import pytest
import torch
import torchattacks
from torch import nn

import robustlab.attacks
from robustlab.attacks import attack_options, build_attack, list_attacks
from robustlab.attacks.ported import ADAPTED, NATIVE
from tests.attack_fixtures import digits_split, fit_briefly

WRAPPERS = set(torchattacks.__wrapper__)
# a representative few run end to end here; every class runs in test_torchattacks_dropin.py
# with budgets that break 8x8 digits (the defaults are for CIFAR-10)
RUN_BY_NAME = {
    "BIM": {"eps": 0.3},
    "CW": {},
    "DeepFool": {},
    "MIFGSM": {"eps": 0.3},
    "APGDT": {"eps": 0.3},
    "PGDL2": {"eps": 2.0, "alpha": 0.5},
    "Square": {"eps": 0.3, "n_queries": 100},
    "EOTPGD": {"eps": 0.3, "alpha": 0.05, "eot_iter": 1},
}
N_DIGITS = 8


@lru_cache(maxsize=1)
def rgb_net() -> nn.Module:
    """conv-ReLU-linear on 3x8x8 digits (some torchattacks attacks assume RGB), trained once
    per process."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    )
    train_x, train_y, _, _ = digits_split()
    return fit_briefly(net, train_x.expand(-1, 3, -1, -1), train_y, epochs=8)


@pytest.fixture(scope="module")
def rgb_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The net and the first held-out digits it classifies correctly, as (N, 3, 8, 8)."""
    _, _, test_x, test_y = digits_split()
    images, net = test_x.expand(-1, 3, -1, -1).contiguous(), rgb_net().eval()
    with torch.no_grad():
        right = net(images).argmax(1) == test_y
    return net, images[right][:N_DIGITS], test_y[right][:N_DIGITS]


def test_every_torchattacks_name_is_in_the_catalogue():
    names = {name.lower() for name in list_attacks()}
    assert all(name.lower() in names for name in torchattacks.__all__)
    assert sorted(NATIVE + ADAPTED) == sorted(torchattacks.__all__)


@pytest.mark.parametrize("name", sorted(set(torchattacks.__all__) - WRAPPERS))
def test_options_by_name_are_torchattacks_parameters(name):
    theirs = inspect.signature(getattr(torchattacks, name)).parameters
    expected = {key: p.default for key, p in theirs.items() if key != "model"}
    ours = attack_options(name)
    assert {key: ours[key] for key in expected} == expected


@pytest.mark.parametrize("name", list(RUN_BY_NAME))
def test_built_by_name_it_attacks(name, rgb_digits):
    net, images, labels = rgb_digits
    atk = build_attack(name, net, **RUN_BY_NAME[name])
    adv = atk(images, labels)
    with torch.no_grad():
        robust = (net(adv).argmax(1) == labels).float().mean().item()
    assert adv.shape == images.shape and robust < 1
    assert not net.training and all(p.grad is None for p in net.parameters())


def test_positional_arguments_land_where_torchattacks_puts_them(rgb_digits):
    net = rgb_digits[0]
    apgd = robustlab.attacks.APGD(net, "L2", 0.5, 3, 2, 7, "dlr", 2, 0.5)
    assert (apgd.norm, apgd.eps, apgd.steps, apgd.n_restarts, apgd.seed) == ("L2", 0.5, 3, 2, 7)
    assert (apgd.loss, apgd.eot_iter, apgd.rho) == ("dlr", 2, 0.5)
    square = robustlab.attacks.Square(net, "L2", 0.5, 20, 2, 0.4)
    assert (square.norm, square.eps, square.n_queries, square.n_restarts) == ("L2", 0.5, 20, 2)
    pgd = robustlab.attacks.PGD(net, 0.1, 0.01, 4, False)
    assert (pgd.eps, pgd.alpha, pgd.steps, pgd.random_start) == (0.1, 0.01, 4, False)
    l2 = robustlab.attacks.PGDL2(net)
    assert (l2.norm, l2.eps, l2.alpha, l2.steps) == ("L2", 1.0, 0.2, 10)
    apgdt = robustlab.attacks.APGDT(net, "Linf", 0.1, 5, n_classes=4)
    assert apgdt.target_classes == 3 and apgdt.steps == 5
    cw = build_attack("CW", net, c=0.5, kappa=0, steps=7)
    assert (cw.c, cw.kappa, cw.steps) == (0.5, 0, 7) and isinstance(cw.attack, torchattacks.CW)
    cw.steps = 3  # an option set on the adapter reaches the port
    assert cw.attack.steps == 3
