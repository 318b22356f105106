"""Seeded parity with the installed torchattacks.

Every native drop-in class (`robustlab.torchattacks.native.NATIVE`) returns torchattacks'
images to 1e-6 under the same seed, in every attack mode and with normalized inputs; the
adapted classes run torchattacks' own code and return its images exactly. robustlab's own
`robustlab.attacks.PGD` differs by design (it stops each example early).
"""

from __future__ import annotations

import pytest
import torch
import torchattacks as reference

import robustlab.attacks
import robustlab.torchattacks as torchattacks
from robustlab.torchattacks.native import NATIVE
from tests.torchattacks_fixtures import accuracy, cifar_shaped, cifar_shaped_model

TOLERANCE = 1e-6
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]
NATIVE_OPTIONS = {
    "FGSM": {},
    "PGD": {"steps": 5},
    "PGDL2": {"eps": 0.5, "alpha": 0.1, "steps": 5},
}
MODES = [
    None,
    ("set_mode_targeted_random", {}),
    ("set_mode_targeted_least_likely", {"kth_min": 2}),
    ("set_mode_targeted_by_function", {"target_map_function": lambda x, y: (y + 1) % 10}),
]


@pytest.fixture(scope="module")
def cifar():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield (cifar_shaped_model(), *cifar_shaped(16, seed=1))
    torch.set_num_threads(threads)


class TakesNormalized(torch.nn.Module):
    """The stand-in as torchattacks users have it: it expects normalized inputs."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.std + self.mean)


def seeded(attack, images, labels, seed=0):
    torch.manual_seed(seed)
    return attack(images, labels)


def test_native_is_what_the_guide_says():
    assert NATIVE == ("FGSM", "PGD", "PGDL2")
    for name in torchattacks.__all__:
        port = getattr(reference, name)
        assert issubclass(getattr(torchattacks, name), port) is (name not in NATIVE)


@pytest.mark.parametrize("mode", MODES, ids=["default", "random", "least-likely", "function"])
@pytest.mark.parametrize("name", NATIVE)
def test_native_equals_torchattacks(name, mode, cifar):
    model, images, labels = cifar
    ours = getattr(torchattacks, name)(model, **NATIVE_OPTIONS[name])
    theirs = getattr(reference, name)(model, **NATIVE_OPTIONS[name])
    if mode is not None:
        method, options = mode
        getattr(ours, method)(**options, quiet=True)
        getattr(theirs, method)(**options, quiet=True)
    expected = seeded(theirs, images, labels)
    assert (seeded(ours, images, labels) - expected).abs().max() <= TOLERANCE
    assert accuracy(model, expected, labels) < 1  # the comparison is not between clean images


@pytest.mark.parametrize("name", NATIVE)
def test_native_equals_torchattacks_on_normalized_inputs(name, cifar):
    model, images, labels = cifar
    net = TakesNormalized(model).eval()
    normalized = (images - net.mean) / net.std
    ours = getattr(torchattacks, name)(net, **NATIVE_OPTIONS[name])
    theirs = getattr(reference, name)(net, **NATIVE_OPTIONS[name])
    for attack in (ours, theirs):
        attack.set_normalization_used(mean=MEAN, std=STD)
    expected = seeded(theirs, normalized, labels)
    assert expected.min() < 0  # normalized space, not [0, 1]
    assert (seeded(ours, normalized, labels) - expected).abs().max() <= TOLERANCE


@pytest.mark.parametrize(
    "build",
    [
        lambda lib, m: lib.APGD(m, steps=5),
        lambda lib, m: lib.APGDT(m, steps=3, n_classes=10),
        lambda lib, m: lib.Square(m, n_queries=30),
        lambda lib, m: lib.CW(m, steps=5),
    ],
    ids=["APGD", "APGDT", "Square", "CW"],
)
def test_adapted_equals_torchattacks(build, cifar):
    """Seeded inside (APGD, APGDT, Square) or deterministic (CW): the same images."""
    model, images, labels = cifar
    expected = seeded(build(reference, model), images, labels)
    assert torch.equal(seeded(build(torchattacks, model), images, labels), expected)


def test_unbroken_rows_come_back_clean_as_in_torchattacks(cifar):
    """torchattacks' APGD returns the clean image for a row it did not break; robustlab's own
    APGD returns its best attempt (a point on the way, useful to a continuation)."""
    model, images, labels = cifar
    adv = torchattacks.APGD(model, eps=1 / 255, steps=3)(images, labels)
    unbroken = model(adv).argmax(1) == labels
    assert unbroken.any() and torch.equal(adv[unbroken], images[unbroken])
    best = robustlab.attacks.APGD(model, eps=1 / 255, steps=3)(images, labels)
    assert not torch.equal(best[unbroken], images[unbroken])


def test_robustlab_pgd_stops_early_the_drop_in_does_not(cifar):
    model, images, labels = cifar
    expected = seeded(reference.PGD(model), images, labels)
    assert torch.equal(seeded(torchattacks.PGD(model), images, labels), expected)
    early = seeded(robustlab.attacks.PGD(model), images, labels)
    assert (early - expected).abs().max() > 1 / 255
    assert accuracy(model, early, labels) == accuracy(model, expected, labels) == 0
