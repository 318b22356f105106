"""torchattacks compatibility: a torchattacks script runs with only its import changed."""

from __future__ import annotations

import pytest
import torch
import torchattacks

import robustlab.attacks
import robustlab.evaluation
from robustlab.attacks import FGSM, PGD, load_adversarial
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def torchattacks_script(library, net, images, labels, path):
    """A typical torchattacks user script; ``library`` is the imported module."""
    atk = library.PGD(net, eps=0.3, alpha=0.03, steps=20, random_start=True)
    atk.set_model_training_mode(model_training=False, batchnorm_training=False)
    atk.set_mode_targeted_by_label(quiet=True)
    target = (labels + 1) % 10
    by_label = atk(images, target)
    atk.set_mode_targeted_least_likely(kth_min=1)
    least_likely = atk(images, labels)
    atk.set_mode_targeted_by_function(target_map_function=lambda im, lab: (lab + 2) % 10)
    by_function = atk(images, labels)
    atk.set_mode_targeted_random()
    random_target = atk(images, labels)
    atk.set_mode_default()
    untargeted = atk(images, labels)
    logits = atk.get_logits(images)
    loader = [(images[:32], labels[:32]), (images[32:], labels[32:])]
    robust, _, _ = atk.save(loader, save_path=path, verbose=False, return_verbose=True)
    return {
        "by_label": (by_label, target),
        "least_likely": least_likely,
        "by_function": (by_function, (labels + 2) % 10),
        "random": random_target,
        "untargeted": untargeted,
        "logits": logits,
        "robust": robust,
    }


def test_script_runs_with_only_the_import_changed(model, digits, tmp_path):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    ours = torchattacks_script(robustlab.attacks, model, images, labels, tmp_path / "ours")
    theirs = torchattacks_script(torchattacks, model, images, labels, tmp_path / "theirs.pt")
    with torch.no_grad():
        predict = lambda x: model(x).argmax(1)  # noqa: E731
        for key in ("by_label", "by_function"):
            for result in (ours, theirs):
                adv, target = result[key]
                assert (predict(adv) == target).float().mean() > 0.8
        assert (predict(ours["random"]) != labels).float().mean() > 0.8
        assert (predict(ours["untargeted"]) != labels).float().mean() > 0.9
    assert torch.equal(ours["logits"], theirs["logits"])
    assert abs(ours["robust"] - theirs["robust"]) <= 100 * 3 / 64
    saved = load_adversarial(tmp_path / "ours")
    assert saved["adv_inputs"].shape == images.shape and torch.equal(saved["labels"], labels)
    # torchattacks' own format: a torch.save dict that loads without unpickling code
    raw = torch.load(tmp_path / "ours", weights_only=True)
    assert raw["save_type"] == "float" and torch.equal(raw["adv_inputs"], saved["adv_inputs"])


def test_a_safetensors_path_gets_safetensors(model, digits, tmp_path):  # noqa: F811
    images, labels = digits[0][:16], digits[1][:16]
    path = tmp_path / "adv.safetensors"
    FGSM(model, eps=0.1).save([(images, labels)], path, verbose=False, save_clean_inputs=True)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    saved = load_adversarial(path)
    assert torch.equal(saved["clean_inputs"], images)
    assert torch.equal(saved["adv_inputs"], FGSM(model, eps=0.1)(images, labels))


def test_least_likely_targets_match_torchattacks(model, digits):  # noqa: F811
    images, labels = digits[0][:32], digits[1][:32]
    ours, theirs = PGD(model), torchattacks.PGD(model)
    for kth in (1, 3):
        ours.set_mode_targeted_least_likely(kth_min=kth)
        theirs.set_mode_targeted_least_likely(kth_min=kth, quiet=True)
        expected = theirs.get_least_likely_label(images, labels)
        assert torch.equal(ours.least_likely_label(images, labels), expected)
    targets = ours.random_target_label(images, labels)
    assert (targets != labels).all() and targets.max() < 10


def test_save_as_uint8(model, digits, tmp_path):  # noqa: F811
    images, labels = digits[0][:16], digits[1][:16]
    FGSM(model, eps=0.1).save([(images, labels)], tmp_path / "adv", verbose=False, save_type="int")
    saved = load_adversarial(tmp_path / "adv")
    expected = FGSM(model, eps=0.1)(images, labels)
    assert (saved["adv_inputs"] - expected).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    "bad", [lambda x: x * 255, lambda x: (x * 255).to(torch.uint8), lambda x: x - 0.5]
)
def test_inputs_outside_the_contract_are_one_value_error(model, digits, bad):  # noqa: F811
    images, labels = digits[0][:8], digits[1][:8]
    for attack in (FGSM(model), PGD(model, steps=2), robustlab.attacks.APGD(model, steps=2)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            attack(bad(images), labels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robustlab.evaluation.worst_case(model, bad(images), labels, [0.1], suite="fast")
