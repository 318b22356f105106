"""A custom attack written as torchattacks documents it, on ``robustlab.torchattacks.Attack``:
normalization, the targeted modes, ``save``/``load`` and ``MultiAttack`` all work on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustlab.torchattacks as torchattacks
from robustlab.errors import InputError
from robustlab.torchattacks.attack import Attack
from tests.torchattacks_fixtures import accuracy, cifar_shaped, cifar_shaped_model

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


class StepTowards(Attack):
    """One FGSM-like step on the logit of the target (or away from the label), recording the
    labels and the images it was given."""

    def __init__(self, model, eps=8 / 255):
        super().__init__("StepTowards", model)
        self.eps = eps
        self.supported_mode = ["default", "targeted"]
        self.seen = []

    def forward(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        if self.targeted:
            labels = self.get_target_label(images, labels)
        self.seen.append((images.min().item(), labels.clone()))
        images.requires_grad = True
        picked = self.get_logits(images).gather(1, labels[:, None]).sum()
        grad = torch.autograd.grad(picked, images)[0]
        sign = 1 if self.targeted else -1
        return (images + sign * self.eps * grad.sign()).clamp(0, 1).detach()


class TakesNormalized(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x * STD[0] + MEAN[0])


@pytest.fixture(scope="module")
def cifar():
    return cifar_shaped_model(), *cifar_shaped(12, seed=4)


def test_subclassing_as_torchattacks_documents_it(cifar):
    model, images, labels = cifar
    atk = StepTowards(model)
    assert atk.attack == "StepTowards" and atk.model_name == "Sequential"
    assert atk.get_mode() == "default" and repr(atk).startswith("StepTowards(model_name=")
    adv = atk(images, labels)
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6
    assert accuracy(model, adv, labels) < accuracy(model, images, labels)


def test_targeted_modes_reach_forward(cifar):
    model, images, labels = cifar
    atk = StepTowards(model)
    atk.set_mode_targeted_by_function(lambda x, y: (y + 3) % 10, quiet=True)
    atk(images, labels)
    assert torch.equal(atk.seen[-1][1], (labels + 3) % 10)
    atk.set_mode_targeted_least_likely(kth_min=1, quiet=True)
    atk(images, labels)
    assert torch.equal(atk.seen[-1][1], atk.get_least_likely_label(images, labels))
    atk.set_mode_targeted_random(quiet=True)
    atk(images, labels)
    assert (atk.seen[-1][1] != labels).all()
    atk.set_mode_targeted_by_label(quiet=True)
    atk(images, (labels + 1) % 10)
    assert torch.equal(atk.seen[-1][1], (labels + 1) % 10)


def test_normalization_is_undone_for_forward_and_redone_after(cifar):
    model, images, labels = cifar
    net = TakesNormalized(model).eval()
    atk = StepTowards(net)
    atk.set_normalization_used(mean=MEAN, std=STD)
    normalized = (images - MEAN[0]) / STD[0]
    adv = atk(normalized, labels)
    assert atk.seen[-1][0] >= 0  # forward got [0, 1] images
    expected = (StepTowards(model)(images, labels) - MEAN[0]) / STD[0]
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        atk(normalized * 255, labels)  # outside [0, 1] once the normalization is undone


def test_save_load_and_multiattack(cifar, tmp_path):
    model, images, labels = cifar
    both = torchattacks.MultiAttack([StepTowards(model, eps=1 / 255), torchattacks.FGSM(model)])
    loader = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    robust, rates, _, _ = both.save(loader, tmp_path / "adv.pt", verbose=False, return_verbose=True)
    assert robust <= 100 * accuracy(model, images, labels) and len(rates) == 2
    saved = torch.load(tmp_path / "adv.pt", weights_only=True)
    assert saved["adv_inputs"].shape == images.shape and torch.equal(saved["labels"], labels)
    (adv, got), *_ = StepTowards.load(tmp_path / "adv.pt", batch_size=12)
    assert torch.equal(adv, saved["adv_inputs"]) and torch.equal(got, labels)
    assert accuracy(model, adv, labels) == pytest.approx(robust / 100)
