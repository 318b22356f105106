"""torchattacks' own catalogue test with ``robustlab.attacks`` in place of ``torchattacks``.

Every attack class of ``torchattacks.__all__`` is built with only the model (its defaults),
attacks a handful of digits with a tiny trained model, and must not raise the accuracy; where
``'targeted'`` is in ``supported_mode``, again after ``set_mode_targeted_random()``. The
digits are given three channels because some torchattacks attacks (TIFGSM, PIFGSM) assume RGB.
"""

from __future__ import annotations

import inspect
import time
from functools import lru_cache

import pytest
import torch
import torchattacks
from torch import nn

import robustlab.attacks
from tests.attack_fixtures import digits_split, fit_briefly

WRAPPERS = set(torchattacks.__wrapper__)
ATTACK_CLASSES = [name for name in torchattacks.__all__ if name not in WRAPPERS]
N_DIGITS = 8


@lru_cache(maxsize=1)
def rgb_net() -> nn.Module:
    """conv-ReLU-linear on 3x8x8 digits, trained once per process (well under a second); it
    normalises nothing inside."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    )
    train_x, train_y, _, _ = digits_split()
    return fit_briefly(net, train_x.expand(-1, 3, -1, -1), train_y, epochs=8)


@pytest.fixture()
def rgb_model() -> nn.Module:
    """The trained net, run on one thread (tiny batches: threads only add overhead, which
    turns seconds into minutes on a busy machine)."""
    net, threads = rgb_net().eval(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield net
    torch.set_num_threads(threads)
    net.eval()
    for param in net.parameters():
        param.grad = None
        param.requires_grad_(True)


@pytest.fixture(scope="session")
def rgb_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first held-out digits that the model classifies correctly, as (N, 3, 8, 8)."""
    _, _, test_x, test_y = digits_split()
    images, net = test_x.expand(-1, 3, -1, -1).contiguous(), rgb_net()
    with torch.no_grad():
        right = net(images).argmax(1) == test_y
    return images[right][:N_DIGITS], test_y[right][:N_DIGITS]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


@pytest.mark.parametrize("name", ATTACK_CLASSES)
def test_every_attack_with_its_defaults(name, rgb_model, rgb_digits):
    images, labels = rgb_digits
    atk = getattr(robustlab.attacks, name)(rgb_model)
    clean = accuracy(rgb_model, images, labels)
    started = time.perf_counter()
    adv = atk(images, labels)
    seconds = time.perf_counter() - started
    assert adv.shape == images.shape and adv.dtype == images.dtype
    robust = accuracy(rgb_model, adv, labels)
    assert robust <= clean, f"{name}: robust {robust} > clean {clean} ({seconds:.1f} s)"
    assert not rgb_model.training and all(p.grad is None for p in rgb_model.parameters())
    if "targeted" in atk.supported_mode:
        atk.set_mode_targeted_random(quiet=True)
        assert atk.targeted and atk.attack_mode == "targeted(random)"
        assert accuracy(rgb_model, atk(images, labels), labels) <= clean


def test_every_name_is_here_native_or_adapted():
    native, adapted = robustlab.attacks.TORCHATTACKS_NATIVE, robustlab.attacks.TORCHATTACKS_ADAPTED
    assert sorted(native + adapted) == sorted(torchattacks.__all__)
    assert not set(native) & set(adapted)
    for name in native:
        assert not issubclass(
            getattr(robustlab.attacks, name), robustlab.attacks.TorchattacksAttack
        )
    for name in adapted:
        cls = getattr(robustlab.attacks, name)
        assert issubclass(cls, robustlab.attacks.TorchattacksAttack) and cls.port.__name__ == name
    assert set(torchattacks.__all__) <= set(robustlab.attacks.__all__)


def _positional(cls: type) -> list[tuple[str, object]]:
    parameters = inspect.signature(cls).parameters.values()
    return [(p.name, p.default) for p in parameters if p.kind is not p.KEYWORD_ONLY]


@pytest.mark.parametrize("name", torchattacks.__all__)
def test_signature_is_torchattacks(name):
    """Parameters, their order and defaults are torchattacks'; robustlab's own options, if any,
    are keyword-only after them."""
    ours, theirs = getattr(robustlab.attacks, name), getattr(torchattacks, name)
    assert _positional(ours) == _positional(theirs)


def test_positional_arguments_land_where_torchattacks_puts_them(rgb_model):
    apgd = robustlab.attacks.APGD(rgb_model, "L2", 0.5, 3, 2, 7, "dlr", 2, 0.5)
    assert (apgd.norm, apgd.eps, apgd.steps, apgd.n_restarts, apgd.seed) == ("L2", 0.5, 3, 2, 7)
    assert (apgd.loss, apgd.eot_iter, apgd.rho) == ("dlr", 2, 0.5)
    square = robustlab.attacks.Square(rgb_model, "L2", 0.5, 20, 2, 0.4)
    assert (square.norm, square.eps, square.n_queries, square.n_restarts) == ("L2", 0.5, 20, 2)
    pgd = robustlab.attacks.PGD(rgb_model, 0.1, 0.01, 4, False)
    assert (pgd.eps, pgd.alpha, pgd.steps, pgd.random_start) == (0.1, 0.01, 4, False)
    l2 = robustlab.attacks.PGDL2(rgb_model)
    assert (l2.norm, l2.eps, l2.alpha, l2.steps) == ("L2", 1.0, 0.2, 10)
    apgdt = robustlab.attacks.APGDT(rgb_model, "Linf", 0.1, 5, n_classes=4)
    assert apgdt.target_classes == 3 and apgdt.steps == 5
    cw = robustlab.attacks.CW(rgb_model, 0.5, 0, 7)
    assert (cw.c, cw.kappa, cw.steps) == (0.5, 0, 7) and isinstance(cw.attack, torchattacks.CW)
    cw.steps = 3  # an option set on the adapter reaches the port
    assert cw.attack.steps == 3
