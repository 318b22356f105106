"""torchattacks' own catalogue test, in its shape, on ``robustlab.torchattacks``.

As torchattacks' ``code_coverage/test_atks.py`` does: every class of ``__all__`` less
``__wrapper__`` is built with the model alone (SPSA also with ``max_batch_size=5``; JSMA with
``gamma=0.001``, one iteration: its default 0.1 allows 153 saliency-map iterations over
3072 x 3072 pixel pairs per image, minutes on a CPU, of torchattacks' own code), attacks
five CIFAR-shaped images under ``torch.enable_grad()`` inside a ``no_grad`` test, must not raise
the accuracy, and does so again after ``set_mode_targeted_random`` where ``"targeted"`` is a
supported mode. The model and images are a local stand-in for robustbench's (no download).
"""

from __future__ import annotations

import pytest
import torch

import robustlab.torchattacks as torchattacks
from tests.torchattacks_fixtures import accuracy, cifar_shaped, cifar_shaped_model

N_EXAMPLES = 5
ATTACK_CLASSES = sorted(set(torchattacks.__all__) - set(torchattacks.__wrapper__))
OPTIONS = {"SPSA": {"max_batch_size": 5}, "JSMA": {"gamma": 0.001}}


@pytest.fixture(scope="module")
def cifar():
    """(model, images, labels, clean accuracy), built once, run on one thread (tiny batches:
    threads only add overhead on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = cifar_shaped_model()
    images, labels = cifar_shaped(N_EXAMPLES, seed=1)
    yield model, images, labels, accuracy(model, images, labels)
    torch.set_num_threads(threads)


def test_the_stand_in_classifies_its_images(cifar):
    assert cifar[3] == 1.0  # robust <= clean would hold trivially for a model that is wrong


@torch.no_grad()
@pytest.mark.parametrize("name", ATTACK_CLASSES)
def test_every_attack_with_its_defaults(name, cifar):
    model, images, labels, clean = cifar
    options = OPTIONS.get(name, {})
    atk = getattr(torchattacks, name)(model, **options)
    torch.manual_seed(0)
    with torch.enable_grad():
        adv = atk(images, labels)
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert accuracy(model, adv, labels) <= clean
    assert not model.training and all(p.grad is None for p in model.parameters())
    if "targeted" in atk.supported_mode:
        atk.set_mode_targeted_random(quiet=True)
        with torch.enable_grad():
            adv = atk(images, labels)
        assert atk.targeted and atk.get_mode() == "targeted(random)"
        assert accuracy(model, adv, labels) <= clean


def test_import_version():
    """torchattacks' test_import: the package has a version, the one it mirrors."""
    import torchattacks as reference

    assert torchattacks.__version__ == reference.__version__ == "3.5.1"
